//! Address allocation over a network's [`Leases`]: the gateway is the first host
//! address; containers get the lowest free one after it (or the one asked for).

use std::net::Ipv4Addr;

use crate::error::NetError;
use crate::state::{Leases, NetworkConfig};

/// An address for a new lease: `wanted` if it is free and usable, else the lowest
/// free host address.
pub fn allocate(
    net: &NetworkConfig,
    leases: &Leases,
    wanted: Option<Ipv4Addr>,
) -> Result<Ipv4Addr, NetError> {
    let used = |ip: Ipv4Addr| ip == net.gateway || leases.leases.iter().any(|l| l.ip == ip);
    if let Some(ip) = wanted {
        if !net.subnet.is_host(ip) {
            return Err(NetError::Invalid(format!(
                "--ip {ip} is not a host address of network {} ({})",
                net.name, net.subnet
            )));
        }
        if used(ip) {
            return Err(NetError::Invalid(format!(
                "--ip {ip} is already in use on network {}",
                net.name
            )));
        }
        return Ok(ip);
    }
    // Round robin from the last one handed out, so that an address just released
    // (its veth possibly still going away) is not reused at once.
    let size = 1u64 << (32 - net.subnet.prefix());
    let start = leases
        .last
        .filter(|ip| net.subnet.contains(*ip))
        .map(|ip| u64::from(u32::from(ip) - u32::from(net.subnet.network())) + 1)
        .unwrap_or(1);
    (0..size)
        .filter_map(|k| net.subnet.nth(((start + k) % size) as u32))
        .find(|ip| net.subnet.is_host(*ip) && !used(*ip))
        .ok_or_else(|| NetError::Exhausted(net.name.clone()))
}

/// The default gateway of `subnet`: its first host address.
pub fn default_gateway(subnet: &crate::Ipv4Cidr) -> Option<Ipv4Addr> {
    subnet.nth(1).filter(|ip| subnet.is_host(*ip))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Driver, Lease};

    fn net(subnet: &str) -> NetworkConfig {
        let subnet = subnet.parse().unwrap();
        NetworkConfig {
            name: "n".into(),
            driver: Driver::Bridge,
            gateway: default_gateway(&subnet).unwrap(),
            subnet,
            internal: false,
            interface: "br-n".into(),
            created: 0,
        }
    }

    fn lease(ip: Ipv4Addr) -> Lease {
        Lease {
            container: "c".into(),
            names: vec![],
            ip,
            veth: "v".into(),
            ifname: "eth0".into(),
            netns: "/x".into(),
            ports: vec![],
        }
    }

    #[test]
    fn lowest_free_and_exhaustion() {
        let n = net("10.1.0.0/29"); // .1 gateway, .2-.6 hosts, .7 broadcast
        let mut leases = Leases::default();
        let mut got = vec![];
        for _ in 0..5 {
            let ip = allocate(&n, &leases, None).unwrap();
            leases.leases.push(lease(ip));
            got.push(ip.octets()[3]);
        }
        assert_eq!(got, [2, 3, 4, 5, 6]);
        assert!(matches!(
            allocate(&n, &leases, None),
            Err(NetError::Exhausted(_))
        ));
        leases.leases.remove(1); // .3 released
        assert_eq!(allocate(&n, &leases, None).unwrap().octets()[3], 3);
    }

    #[test]
    fn round_robin_after_the_last() {
        let n = net("10.1.0.0/29");
        let mut leases = Leases {
            last: Some(Ipv4Addr::new(10, 1, 0, 2)),
            ..Leases::default()
        };
        // .2 was just released: .3 comes first, and after .6 it wraps to .2.
        assert_eq!(allocate(&n, &leases, None).unwrap().octets()[3], 3);
        leases.last = Some(Ipv4Addr::new(10, 1, 0, 6));
        assert_eq!(allocate(&n, &leases, None).unwrap().octets()[3], 2);
    }

    #[test]
    fn wanted_address() {
        let n = net("10.1.0.0/24");
        let mut leases = Leases::default();
        let ip = Ipv4Addr::new(10, 1, 0, 50);
        assert_eq!(allocate(&n, &leases, Some(ip)).unwrap(), ip);
        leases.leases.push(lease(ip));
        for bad in [ip, n.gateway, n.subnet.network(), n.subnet.broadcast()] {
            assert!(allocate(&n, &leases, Some(bad)).is_err(), "{bad}");
        }
        assert!(allocate(&n, &leases, Some(Ipv4Addr::new(10, 2, 0, 5))).is_err());
    }
}
