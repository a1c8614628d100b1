//! The `/etc/hosts` and `/etc/resolv.conf` a networked container gets (files in
//! its directory, bind-mounted by the engine).

use std::net::Ipv4Addr;

/// An `--add-host NAME:IP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// The name.
    pub name: String,
    /// The address.
    pub ip: std::net::IpAddr,
}

impl std::str::FromStr for HostEntry {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, ip) = s
            .split_once(':')
            .ok_or_else(|| format!("--add-host {s:?}: expected NAME:IP"))?;
        let ip = ip
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("--add-host {s:?}: {ip:?} is not an address"))?;
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(format!("--add-host {s:?}: bad name"));
        }
        Ok(Self {
            name: name.to_owned(),
            ip,
        })
    }
}

/// `/etc/hosts`: localhost, the container's own address and names, `--add-host`.
pub fn hosts(ip: Option<Ipv4Addr>, names: &[String], extra: &[HostEntry]) -> String {
    let mut s = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    if let Some(ip) = ip {
        s.push_str(&format!("{ip}\t{}\n", names.join(" ")));
    }
    for e in extra {
        s.push_str(&format!("{}\t{}\n", e.ip, e.name));
    }
    s
}

/// `/etc/resolv.conf`: the network's name server, then the `--dns` ones.
pub fn resolv_conf(gateway: Option<Ipv4Addr>, dns: &[std::net::IpAddr]) -> String {
    let mut s = String::new();
    for ns in gateway.map(std::net::IpAddr::V4).iter().chain(dns) {
        s.push_str(&format!("nameserver {ns}\n"));
    }
    s.push_str("options ndots:0\n");
    s
}

/// The host's name servers (`/etc/resolv.conf`) a container can reach: loopback
/// ones (a local stub resolver) are left out, as Docker does.
pub fn host_nameservers() -> Vec<std::net::IpAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .filter(|ip| !ip.is_loopback())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files() {
        let extra: HostEntry = "db:10.0.0.9".parse().unwrap();
        let h = hosts(
            Some(Ipv4Addr::new(10, 88, 0, 2)),
            &["web".into(), "abc".into()],
            &[extra],
        );
        assert!(h.contains("10.88.0.2\tweb abc\n") && h.contains("10.0.0.9\tdb\n"));
        let r = resolv_conf(
            Some(Ipv4Addr::new(10, 88, 0, 1)),
            &["9.9.9.9".parse().unwrap()],
        );
        assert!(r.starts_with("nameserver 10.88.0.1\nnameserver 9.9.9.9\n"));
        assert!("nocolon".parse::<HostEntry>().is_err());
        assert!("a:b".parse::<HostEntry>().is_err());
    }
}
