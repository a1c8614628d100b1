//! [`Ipv4Cidr`]: an IPv4 subnet, `10.88.0.0/16`.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An IPv4 network address and prefix length (host bits zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// `addr/prefix` with the host bits cleared.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Self> {
        (prefix <= 32).then(|| Self {
            addr: Ipv4Addr::from(u32::from(addr) & mask(prefix)),
            prefix,
        })
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The broadcast address.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !mask(self.prefix))
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.prefix) == u32::from(self.addr)
    }

    /// Whether the two share an address.
    pub fn overlaps(&self, other: &Ipv4Cidr) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The `n`th address (0 is the network address).
    pub fn nth(&self, n: u32) -> Option<Ipv4Addr> {
        let size = 1u64 << (32 - self.prefix);
        (u64::from(n) < size).then(|| Ipv4Addr::from(u32::from(self.addr) + n))
    }

    /// Addresses a host may use: all but network and broadcast (for /31 and /32 all).
    pub fn is_host(&self, ip: Ipv4Addr) -> bool {
        self.contains(ip) && (self.prefix >= 31 || (ip != self.addr && ip != self.broadcast()))
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl FromStr for Ipv4Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || format!("subnet {s:?}: expected an IPv4 CIDR such as 10.89.0.0/24");
        let (a, p) = s.split_once('/').ok_or_else(err)?;
        let addr: Ipv4Addr = a.parse().map_err(|_| err())?;
        let prefix: u8 = p.parse().map_err(|_| err())?;
        let cidr = Self::new(addr, prefix).ok_or_else(err)?;
        if cidr.addr != addr {
            return Err(format!(
                "subnet {s:?}: host bits set (did you mean {cidr}?)"
            ));
        }
        Ok(cidr)
    }
}

impl TryFrom<String> for Ipv4Cidr {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Ipv4Cidr> for String {
    fn from(c: Ipv4Cidr) -> Self {
        c.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_contain() {
        let c: Ipv4Cidr = "10.88.0.0/16".parse().unwrap();
        assert!(c.contains("10.88.255.3".parse().unwrap()));
        assert!(!c.contains("10.89.0.1".parse().unwrap()));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 88, 255, 255));
        assert_eq!(c.nth(1), Some(Ipv4Addr::new(10, 88, 0, 1)));
        assert_eq!(c.nth(65536), None);
        assert!(!c.is_host(c.network()) && !c.is_host(c.broadcast()));
        assert!("10.88.0.1/16".parse::<Ipv4Cidr>().is_err());
        assert!("10.88.0.0/33".parse::<Ipv4Cidr>().is_err());
        assert!("10.88.0.0".parse::<Ipv4Cidr>().is_err());
        assert!("nonsense/8".parse::<Ipv4Cidr>().is_err());
    }

    #[test]
    fn overlap() {
        let a: Ipv4Cidr = "10.88.0.0/16".parse().unwrap();
        let b: Ipv4Cidr = "10.88.4.0/24".parse().unwrap();
        let c: Ipv4Cidr = "10.89.0.0/16".parse().unwrap();
        assert!(a.overlaps(&b) && b.overlaps(&a));
        assert!(!a.overlaps(&c));
        assert!("0.0.0.0/0".parse::<Ipv4Cidr>().unwrap().overlaps(&c));
    }
}
