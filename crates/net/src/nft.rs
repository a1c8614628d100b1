//! The one nftables table berth owns, `inet berth`, rendered whole from the
//! networks that have containers and replaced atomically (`nft -f -`: create,
//! delete, define, in one transaction). No other table is ever touched.
//!
//! ```text
//! prerouting / output (nat)  fib daddr type local → jump publish
//! publish                    [ip daddr HOSTIP] tcp|udp dport P dnat ip to CTR:P
//! postrouting (nat)          subnet → outside: masquerade (not for internal)
//!                            127.0.0.0/8 → subnet: masquerade (published ports
//!                            reached from the host's loopback; route_localnet)
//! forward (filter)           no subnet to another; internal subnets: nothing in
//!                            or out
//! ```

use std::fmt::Write;

use crate::ports::Proto;
use crate::state::{Leases, NetworkConfig};

/// What the forward chain does with what it refuses: an ICMP error, so that a
/// client fails at once instead of waiting for a timeout.
const REJECT: &str = "reject with icmpx type admin-prohibited";

/// The table's family and name.
pub const TABLE: &str = "inet berth";

/// The whole script for `nft -f -`: the table replaced by one holding the rules
/// for `active` networks, or just removed when there are none.
pub fn render(active: &[(NetworkConfig, Leases)]) -> String {
    let mut s = format!("table {TABLE} {{}}\ndelete table {TABLE}\n");
    if active.is_empty() {
        return s;
    }
    let mut publish = String::new();
    let mut post = String::new();
    let mut forward = String::new();
    for (net, leases) in active {
        let sub = net.subnet;
        for l in &leases.leases {
            for p in &l.ports {
                let daddr = p
                    .host_ip
                    .map(|ip| format!("ip daddr {ip} "))
                    .unwrap_or_default();
                let proto = match p.proto {
                    Proto::Tcp => "tcp",
                    Proto::Udp => "udp",
                };
                let _ = writeln!(
                    publish,
                    "\t\tmeta nfproto ipv4 {daddr}{proto} dport {} dnat ip to {}:{}",
                    p.host_port, l.ip, p.container_port
                );
            }
        }
        let _ = writeln!(post, "\t\tip saddr 127.0.0.0/8 ip daddr {sub} masquerade");
        // Networks are isolated from each other (as Docker's), also when the host
        // forwards between their links.
        let others: Vec<String> = active
            .iter()
            .filter(|(o, _)| o.name != net.name)
            .map(|(o, _)| o.subnet.to_string())
            .collect();
        if !others.is_empty() {
            let _ = writeln!(
                forward,
                "\t\tip saddr {sub} ip daddr {{ {} }} {REJECT}",
                others.join(", ")
            );
        }
        if net.internal {
            let _ = writeln!(forward, "\t\tip saddr {sub} ip daddr != {sub} {REJECT}");
            let _ = writeln!(forward, "\t\tip daddr {sub} ip saddr != {sub} {REJECT}");
        } else {
            let _ = writeln!(post, "\t\tip saddr {sub} ip daddr != {sub} masquerade");
        }
    }
    let _ = write!(
        s,
        "table {TABLE} {{
\tchain prerouting {{
\t\ttype nat hook prerouting priority dstnat; policy accept;
\t\tfib daddr type local jump publish
\t}}
\tchain output {{
\t\ttype nat hook output priority -100; policy accept;
\t\tfib daddr type local jump publish
\t}}
\tchain publish {{
{publish}\t}}
\tchain postrouting {{
\t\ttype nat hook postrouting priority srcnat; policy accept;
{post}\t}}
\tchain forward {{
\t\ttype filter hook forward priority filter; policy accept;
{forward}\t}}
}}
"
    );
    s
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::ports::PortMapping;
    use crate::state::{Driver, Lease};

    fn net(name: &str, subnet: &str, internal: bool) -> NetworkConfig {
        let subnet: crate::Ipv4Cidr = subnet.parse().unwrap();
        NetworkConfig {
            name: name.into(),
            driver: Driver::Bridge,
            gateway: subnet.nth(1).unwrap(),
            subnet,
            internal,
            interface: format!("br-{name}"),
            created: 0,
        }
    }

    #[test]
    fn empty_removes_the_table() {
        let s = render(&[]);
        assert_eq!(s, "table inet berth {}\ndelete table inet berth\n");
    }

    #[test]
    fn ports_masquerade_and_internal() {
        let lease = Lease {
            container: "c".into(),
            names: vec![],
            ip: Ipv4Addr::new(10, 88, 0, 2),
            veth: "vb".into(),
            ifname: "eth0".into(),
            netns: "/x".into(),
            ports: vec![
                PortMapping {
                    host_ip: None,
                    host_port: 8080,
                    container_port: 80,
                    proto: Proto::Tcp,
                },
                PortMapping {
                    host_ip: Some(Ipv4Addr::LOCALHOST),
                    host_port: 5353,
                    container_port: 53,
                    proto: Proto::Udp,
                },
            ],
        };
        let s = render(&[
            (
                net("a", "10.88.0.0/16", false),
                Leases {
                    leases: vec![lease],
                    last: None,
                },
            ),
            (net("b", "10.90.0.0/24", true), Leases::default()),
        ]);
        assert!(s.starts_with("table inet berth {}\ndelete table inet berth\n"));
        assert!(s.contains("tcp dport 8080 dnat ip to 10.88.0.2:80"), "{s}");
        assert!(s.contains("ip daddr 127.0.0.1 udp dport 5353 dnat ip to 10.88.0.2:53"));
        assert!(s.contains("ip saddr 10.88.0.0/16 ip daddr != 10.88.0.0/16 masquerade"));
        assert!(!s.contains("ip saddr 10.90.0.0/24 ip daddr != 10.90.0.0/24 masquerade"));
        assert!(s.contains("ip saddr 10.90.0.0/24 ip daddr != 10.90.0.0/24 reject"));
        assert!(s.contains("ip saddr 127.0.0.0/8 ip daddr 10.88.0.0/16 masquerade"));
        assert!(s.contains("ip saddr 10.88.0.0/16 ip daddr { 10.90.0.0/24 } reject with icmpx type admin-prohibited"));
        assert!(s.contains("ip saddr 10.90.0.0/24 ip daddr { 10.88.0.0/16 } reject with icmpx type admin-prohibited"));
        // Only our table is named.
        for line in s
            .lines()
            .filter(|l| l.starts_with("table") || l.starts_with("delete"))
        {
            assert!(line.contains("inet berth"), "{line}");
        }
    }
}
