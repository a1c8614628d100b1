//! `-p [HOSTIP:][HOSTPORT:]CTRPORT[/tcp|udp]`: [`PortSpec`] as typed, and the
//! [`PortMapping`] it becomes once a host port is chosen.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::NetError;

/// tcp or udp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// A `-p` as typed: the host port may be left to the engine (0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    /// The host address to listen on (all when None).
    pub host_ip: Option<Ipv4Addr>,
    /// 0: any free port.
    pub host_port: u16,
    /// The container's port.
    pub container_port: u16,
    /// tcp or udp.
    pub proto: Proto,
}

/// A published port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// The host address (all when None).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<Ipv4Addr>,
    /// The host port.
    pub host_port: u16,
    /// The container's port.
    pub container_port: u16,
    /// tcp or udp.
    pub proto: Proto,
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ip = self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        write!(
            f,
            "{}/{} -> {ip}:{}",
            self.container_port, self.proto, self.host_port
        )
    }
}

impl PortMapping {
    /// Whether the two would claim the same host socket.
    pub fn conflicts(&self, other: &PortMapping) -> bool {
        self.proto == other.proto
            && self.host_port == other.host_port
            && (self.host_ip.is_none() || other.host_ip.is_none() || self.host_ip == other.host_ip)
    }
}

fn port(text: &str, whole: &str) -> Result<u16, String> {
    match text.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!(
            "port mapping {whole:?}: {text:?} is not a port (1-65535)"
        )),
    }
}

impl FromStr for PortSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (rest, proto) = match s.rsplit_once('/') {
            Some((r, "tcp")) => (r, Proto::Tcp),
            Some((r, "udp")) => (r, Proto::Udp),
            Some((_, p)) => return Err(format!("port mapping {s:?}: unknown protocol {p:?}")),
            None => (s, Proto::Tcp),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let (host_ip, host_port, ctr) = match parts.as_slice() {
            [c] => (None, "", *c),
            [h, c] => (None, *h, *c),
            [ip, h, c] => (Some(*ip), *h, *c),
            _ => {
                return Err(format!(
                    "port mapping {s:?}: expected [HOSTIP:][HOSTPORT:]CTRPORT[/tcp|udp]"
                ))
            }
        };
        let host_ip = match host_ip {
            None | Some("") => None,
            Some(ip) => Some(
                ip.parse::<Ipv4Addr>()
                    .map_err(|_| format!("port mapping {s:?}: {ip:?} is not an IPv4 address"))?,
            ),
        };
        Ok(Self {
            host_ip: host_ip.filter(|ip| !ip.is_unspecified()),
            host_port: if host_port.is_empty() {
                0
            } else {
                port(host_port, s)?
            },
            container_port: port(ctr, s)?,
            proto,
        })
    }
}

/// Tries to bind the host side (a free port is found when `host_port` is 0): the
/// port must be free on the host now. The socket is closed again at once.
pub fn claim(spec: &PortSpec) -> Result<PortMapping, NetError> {
    let addr = SocketAddrV4::new(
        spec.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
        spec.host_port,
    );
    let bound = match spec.proto {
        Proto::Tcp => TcpListener::bind(addr).and_then(|l| l.local_addr()),
        Proto::Udp => UdpSocket::bind(addr).and_then(|u| u.local_addr()),
    };
    let local = bound.map_err(|e| {
        NetError::Invalid(format!(
            "publishing {}/{}: host port {addr} is not available: {e}",
            spec.container_port, spec.proto
        ))
    })?;
    Ok(PortMapping {
        host_ip: spec.host_ip,
        host_port: local.port(),
        container_port: spec.container_port,
        proto: spec.proto,
    })
}

/// The image's `ExposedPorts` keys (`80/tcp`) as specs with any host port (`-P`).
pub fn exposed(keys: &[String]) -> Vec<PortSpec> {
    keys.iter()
        .filter_map(|k| {
            let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
            let proto = match proto {
                "udp" => Proto::Udp,
                "tcp" => Proto::Tcp,
                _ => return None,
            };
            Some(PortSpec {
                host_ip: None,
                host_port: 0,
                container_port: p.parse().ok().filter(|p| *p > 0)?,
                proto,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<PortSpec, String> {
        s.parse()
    }

    #[test]
    fn forms() {
        assert_eq!(
            p("8080:80").unwrap(),
            PortSpec {
                host_ip: None,
                host_port: 8080,
                container_port: 80,
                proto: Proto::Tcp
            }
        );
        let s = p("127.0.0.1:53:5353/udp").unwrap();
        assert_eq!(s.host_ip, Some(Ipv4Addr::LOCALHOST));
        assert_eq!(
            (s.host_port, s.container_port, s.proto),
            (53, 5353, Proto::Udp)
        );
        assert_eq!(p("80").unwrap().host_port, 0);
        assert_eq!(p("127.0.0.1::80").unwrap().host_port, 0);
        assert_eq!(p("0.0.0.0:1:2").unwrap().host_ip, None);
    }

    #[test]
    fn malformed() {
        for bad in [
            "",
            "x:80",
            "80:0",
            "80:70000",
            "1:2:3:4",
            "80/sctp",
            "300.0.0.1:1:2",
            "8080:",
            "-1:80",
        ] {
            assert!(p(bad).is_err(), "{bad:?} accepted");
        }
        assert!(p("80/sctp").unwrap_err().contains("protocol"));
    }

    #[test]
    fn conflicts() {
        let m = |ip: Option<Ipv4Addr>, port, proto| PortMapping {
            host_ip: ip,
            host_port: port,
            container_port: 1,
            proto,
        };
        let any = m(None, 80, Proto::Tcp);
        assert!(any.conflicts(&m(Some(Ipv4Addr::LOCALHOST), 80, Proto::Tcp)));
        assert!(!any.conflicts(&m(None, 80, Proto::Udp)));
        assert!(!any.conflicts(&m(None, 81, Proto::Tcp)));
        let a = m(Some(Ipv4Addr::LOCALHOST), 80, Proto::Tcp);
        assert!(!a.conflicts(&m(Some(Ipv4Addr::new(10, 0, 0, 1)), 80, Proto::Tcp)));
    }

    #[test]
    fn exposed_keys() {
        let e = exposed(&[
            "80/tcp".into(),
            "53/udp".into(),
            "x/tcp".into(),
            "1/sctp".into(),
        ]);
        assert_eq!(e.len(), 2);
        assert_eq!((e[1].container_port, e[1].proto), (53, Proto::Udp));
    }
}
