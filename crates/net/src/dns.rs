//! The name server of a network (Docker's embedded DNS): `berth __dns NETWORK`, a
//! small process listening on UDP port 53 of the gateway address. It answers A
//! queries for the names in the network's lease file (re-read when it changes),
//! forwards every other query to the host's name servers, and exits when the
//! network has no container left (or on SIGTERM from the last detach).

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::error::{io_err, NetError};
use crate::state::{read_json, Leases, NetworkConfig};

/// The hidden verb of the `berth` binary that runs [`serve`].
pub const DNS_VERB: &str = "__dns";

const TYPE_A: u16 = 1;
const CLASS_IN: u16 = 1;

/// A parsed query: its id, the lowercased name without the final dot, its type
/// and class, and where the question ends.
#[derive(Debug, PartialEq, Eq)]
pub struct Query {
    /// The header id.
    pub id: u16,
    /// `web` or `example.com`.
    pub name: String,
    /// QTYPE.
    pub qtype: u16,
    /// QCLASS.
    pub qclass: u16,
    /// Bytes of header + question.
    pub end: usize,
}

/// Parses a query (one question, no compression in it); None if malformed or not
/// a standard query.
pub fn parse_query(msg: &[u8]) -> Option<Query> {
    if msg.len() < 12 {
        return None;
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    if flags & 0x8000 != 0 || (flags >> 11) & 0xf != 0 || qdcount != 1 {
        return None;
    }
    let mut i = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*msg.get(i)?);
        i += 1;
        if len == 0 {
            break;
        }
        if len > 63 {
            return None; // compression or reserved: not in a question we answer
        }
        let label = msg.get(i..i + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        i += len;
        if i > 12 + 255 {
            return None;
        }
    }
    let rest = msg.get(i..i + 4)?;
    Some(Query {
        id: u16::from_be_bytes([msg[0], msg[1]]),
        name: labels.join("."),
        qtype: u16::from_be_bytes([rest[0], rest[1]]),
        qclass: u16::from_be_bytes([rest[2], rest[3]]),
        end: i + 4,
    })
}

/// The answer to `query` (whose bytes are `msg`): the question echoed, `ip` as an
/// A record if any, else NXDOMAIN (or an empty NOERROR for another type of a
/// known name).
pub fn answer(msg: &[u8], query: &Query, ip: Option<Ipv4Addr>, known: bool) -> Vec<u8> {
    let mut out = msg[..query.end].to_vec();
    let rd = msg[2] & 0x01;
    out[2] = 0x80 | 0x04 | rd; // QR, AA, RD copied
    let rcode = if known { 0 } else { 3 };
    out[3] = 0x80 | rcode; // RA
    let ancount: u16 = ip.is_some().into();
    out[4..6].copy_from_slice(&1u16.to_be_bytes());
    out[6..8].copy_from_slice(&ancount.to_be_bytes());
    out[8..12].fill(0);
    if let Some(ip) = ip {
        out.extend_from_slice(&[0xc0, 0x0c]); // the question's name
        out.extend_from_slice(&TYPE_A.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&60u32.to_be_bytes());
        out.extend_from_slice(&4u16.to_be_bytes());
        out.extend_from_slice(&ip.octets());
    }
    out
}

/// The address of `name` among the leases: a container's name, hostname or id
/// prefix, with or without the network's name as domain.
pub fn lookup(leases: &Leases, network: &str, name: &str) -> Option<Ipv4Addr> {
    let name = name
        .strip_suffix(&format!(".{}", network.to_ascii_lowercase()))
        .unwrap_or(name);
    leases.leases.iter().find_map(|l| {
        let hit = l.names.iter().any(|n| n.eq_ignore_ascii_case(name))
            || (name.len() >= 12 && l.container.starts_with(name));
        hit.then_some(l.ip)
    })
}

/// The host's name servers (from /etc/resolv.conf), port 53.
fn upstreams() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Relays `msg` to the first upstream that answers; SERVFAIL otherwise.
fn forward(msg: &[u8], ups: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in ups {
        let bind: SocketAddr = if up.is_ipv4() {
            "0.0.0.0:0".parse().ok()?
        } else {
            "[::]:0".parse().ok()?
        };
        let Ok(sock) = UdpSocket::bind(bind) else {
            continue;
        };
        let _ = sock.set_read_timeout(Some(Duration::from_secs(2)));
        if sock.connect(up).and_then(|()| sock.send(msg)).is_err() {
            continue;
        }
        let mut buf = [0u8; 4096];
        if let Ok(n) = sock.recv(&mut buf) {
            return Some(buf[..n].to_vec());
        }
    }
    let mut fail = msg.get(..12)?.to_vec();
    fail[2] = 0x80 | (msg[2] & 0x01);
    fail[3] = 0x80 | 2;
    fail[4..12].fill(0);
    Some(fail)
}

struct Names {
    path: PathBuf,
    stamp: Option<SystemTime>,
    leases: Leases,
}

impl Names {
    fn refresh(&mut self) {
        let stamp = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if stamp != self.stamp {
            self.stamp = stamp;
            self.leases = read_json(&self.path).unwrap_or_default();
        }
    }
}

/// Serves network `dir` (its `network.json` and `leases.json`) until it has no
/// lease left. Queries are answered one at a time; forwarded ones in a thread.
pub fn serve(dir: &Path) -> Result<(), NetError> {
    let net: NetworkConfig = read_json(&dir.join("network.json"))?;
    // The server of an earlier life of the network may still be going away.
    let mut tries = 0;
    let sock = loop {
        match UdpSocket::bind((net.gateway, 53)) {
            Ok(s) => break s,
            Err(e) if tries < 50 && e.kind() == std::io::ErrorKind::AddrInUse => {
                tries += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(io_err("binding port 53 for", dir)(e)),
        }
    };
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(io_err("configuring socket of", dir))?;
    let mut names = Names {
        path: dir.join("leases.json"),
        stamp: None,
        leases: Leases::default(),
    };
    let ups = upstreams();
    let mut buf = [0u8; 1500];
    loop {
        let (n, peer) = match sock.recv_from(&mut buf) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                names.refresh();
                if names.leases.leases.is_empty() || !dir.exists() {
                    return Ok(());
                }
                continue;
            }
            Err(e) => return Err(io_err("receiving on", dir)(e)),
        };
        let msg = &buf[..n];
        let Some(q) = parse_query(msg) else { continue };
        names.refresh();
        let ip = lookup(&names.leases, &net.name, &q.name);
        if ip.is_some() || q.qclass != CLASS_IN {
            let a = if q.qtype == TYPE_A { ip } else { None };
            let _ = sock.send_to(&answer(msg, &q, a, ip.is_some()), peer);
        } else if let Ok(reply_sock) = sock.try_clone() {
            let msg = msg.to_vec();
            let ups = ups.clone();
            std::thread::spawn(move || {
                if let Some(reply) = forward(&msg, &ups) {
                    let _ = reply_sock.send_to(&reply, peer);
                }
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Lease;

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut m = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for label in name.split('.') {
            m.push(label.len() as u8);
            m.extend_from_slice(label.as_bytes());
        }
        m.push(0);
        m.extend_from_slice(&qtype.to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m
    }

    #[test]
    fn parse_answer_nxdomain() {
        let m = query("Web.mynet", TYPE_A);
        let q = parse_query(&m).unwrap();
        assert_eq!((q.id, q.name.as_str(), q.qtype), (0x1234, "web.mynet", 1));
        let leases = Leases {
            leases: vec![Lease {
                container: "ab".repeat(32),
                names: vec!["web".into()],
                ip: Ipv4Addr::new(10, 1, 0, 2),
                veth: "v".into(),
                ifname: "eth0".into(),
                netns: "/x".into(),
                ports: vec![],
            }],
            last: None,
        };
        let ip = lookup(&leases, "mynet", &q.name);
        assert_eq!(ip, Some(Ipv4Addr::new(10, 1, 0, 2)));
        assert_eq!(lookup(&leases, "mynet", "abababababab"), ip);
        assert_eq!(lookup(&leases, "mynet", "db"), None);
        let a = answer(&m, &q, ip, true);
        assert_eq!(&a[..2], &[0x12, 0x34]);
        assert_eq!(a[3] & 0x0f, 0);
        assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1);
        assert_eq!(&a[a.len() - 4..], &[10, 1, 0, 2]);
        let nx = answer(&m, &q, None, false);
        assert_eq!(nx[3] & 0x0f, 3);
        assert_eq!(nx.len(), q.end);
    }

    #[test]
    fn malformed_queries() {
        assert!(parse_query(&[0; 5]).is_none());
        let mut m = query("a", TYPE_A);
        m[2] |= 0x80; // a response
        assert!(parse_query(&m).is_none());
        let mut m = query("abc", TYPE_A);
        m[12] = 60; // label runs past the end
        assert!(parse_query(&m).is_none());
        let mut m = query("a", TYPE_A);
        m.truncate(m.len() - 2);
        assert!(parse_query(&m).is_none());
        let mut m = query("a", TYPE_A);
        m[12] = 0xc0; // a pointer
        assert!(parse_query(&m).is_none());
    }
}
