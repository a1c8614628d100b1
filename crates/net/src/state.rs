//! The networks' state on disk, under `<root>/networks/`:
//!
//! ```text
//! .lock                  flock'd around every change of any network (and read)
//! .nft                   the ruleset last given to nft (to skip an unchanged one)
//! <name>/network.json    NetworkConfig
//! <name>/leases.json     Leases: one per attached container (ip, veth, ports)
//! <name>/dns.pid         the name server of the network (`berth __dns NAME`)
//! ```
//!
//! Every file is written atomically: temp file, fsync, rename, fsync of the dir.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::cidr::Ipv4Cidr;
use crate::error::{io_err, NetError};
use crate::ports::PortMapping;

/// How containers are connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    /// A Linux bridge with the gateway address; a veth per container on it.
    #[default]
    Bridge,
    /// No bridge (OpenVZ venet style): a veth per container with a /32 host route;
    /// the gateway address sits on a dummy link and answers the containers' ARP.
    Routed,
}

impl std::str::FromStr for Driver {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "bridge" => Ok(Self::Bridge),
            "routed" => Ok(Self::Routed),
            o => Err(format!("unknown network driver {o:?} (bridge or routed)")),
        }
    }
}

impl std::fmt::Display for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Driver::Bridge => "bridge",
            Driver::Routed => "routed",
        })
    }
}

/// `network.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// The name.
    pub name: String,
    /// bridge or routed.
    pub driver: Driver,
    /// The subnet.
    pub subnet: Ipv4Cidr,
    /// The gateway (on the bridge or dummy link), also the name server.
    pub gateway: Ipv4Addr,
    /// No route out, no forwarding to or from outside the subnet.
    #[serde(default)]
    pub internal: bool,
    /// The host link: the bridge, or the routed network's dummy.
    pub interface: String,
    /// Seconds since the epoch.
    #[serde(default)]
    pub created: u64,
}

/// One attached container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The container's id.
    pub container: String,
    /// Its name (what the name server answers to), and its hostname.
    pub names: Vec<String>,
    /// Its address.
    pub ip: Ipv4Addr,
    /// The host end of its veth.
    pub veth: String,
    /// Its end of the veth (eth0, eth1…).
    pub ifname: String,
    /// The network namespace file.
    pub netns: PathBuf,
    /// Published ports.
    #[serde(default)]
    pub ports: Vec<PortMapping>,
}

/// `leases.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leases {
    /// In allocation order.
    pub leases: Vec<Lease>,
    /// The address handed out last (the next search starts after it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Ipv4Addr>,
}

/// Reads a JSON file.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, NetError> {
    let bytes = fs::read(path).map_err(io_err("reading", path))?;
    serde_json::from_slice(&bytes).map_err(|e| NetError::Io {
        action: "parsing",
        path: path.to_owned(),
        source: e.into(),
    })
}

/// Writes `bytes` to `path` atomically and durably.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), NetError> {
    write_file(path, bytes, true)
}

/// Writes `bytes` to `path` atomically, without fsync: for what need not survive a
/// crash of the machine.
pub(crate) fn write_transient(path: &Path, bytes: &[u8]) -> Result<(), NetError> {
    write_file(path, bytes, false)
}

fn write_file(path: &Path, bytes: &[u8], durable: bool) -> Result<(), NetError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if durable {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err("writing", path))
}

/// Writes a JSON file atomically.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), NetError> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("serializable");
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// The exclusive lock on `networks/.lock`, held until dropped (and by the
/// children given its fd).
#[derive(Debug)]
pub struct StateLock {
    file: File,
}

impl std::os::fd::AsFd for StateLock {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.file.as_fd()
    }
}

impl StateLock {
    /// Blocks until the lock is ours.
    pub fn acquire(dir: &Path) -> Result<Self, NetError> {
        let path = dir.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("opening", &path))?;
        file.lock().map_err(io_err("locking", &path))?;
        Ok(Self { file })
    }
}

/// Whether `name` can be a network's name (and a file name).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= 64
}
