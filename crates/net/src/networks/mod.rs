//! [`Networks`]: the networks under an engine root, and containers joining and
//! leaving them. Every change holds the state lock (`networks/.lock`).
//!
//! A network's kernel objects (its bridge or dummy link with the gateway address,
//! its rules in `inet berth`, its name server) exist while it has a container:
//! they are made by the first attach and removed `TEARDOWN_GRACE` after the last
//! detach. The roles are split: `attach`, `teardown`, `rules` (nftables), `dns`.

use std::collections::BTreeSet;
use std::fs::{self, DirBuilder};
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsFd;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::cidr::Ipv4Cidr;
use crate::error::{io_err, NetError};
use crate::ipam;
use crate::nft;
use crate::ports::{self, PortMapping, PortSpec};
use crate::rtnl::{LinkKind, Route, Rtnl};
use crate::state::{
    read_json, valid_name, write_atomic, write_json, write_transient, Driver, Lease, Leases,
    NetworkConfig, StateLock,
};
use crate::sys;

/// The hidden verb of the `berth` binary that runs [`Networks::collect`].
pub const GC_VERB: &str = "__netgc";

/// How long an empty network keeps its link, rules and name server.
pub const TEARDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(1);

/// `lo`'s index in every network namespace.
const LOOPBACK_INDEX: u32 = 1;

/// The default network's name.
pub const DEFAULT_NETWORK: &str = "bridge";

/// Subnets tried, in order, for the default network.
const DEFAULT_SUBNETS: &[&str] = &[
    "10.88.0.0/16",
    "10.89.0.0/16",
    "10.90.0.0/16",
    "10.91.0.0/16",
    "172.30.0.0/16",
    "192.168.188.0/24",
];

/// `network create`.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// The name.
    pub name: String,
    /// bridge or routed.
    pub driver: Driver,
    /// The subnet (default: a free /24 in 10.89-10.99).
    pub subnet: Option<Ipv4Cidr>,
    /// The gateway (default: the subnet's first host address).
    pub gateway: Option<Ipv4Addr>,
    /// `--internal`.
    pub internal: bool,
}

/// A container joining a network.
#[derive(Debug, Clone, Default)]
pub struct AttachRequest {
    /// The container's id.
    pub container: String,
    /// Its names on the network (its name, its hostname).
    pub names: Vec<String>,
    /// The network.
    pub network: String,
    /// `--ip`.
    pub ip: Option<Ipv4Addr>,
    /// `-p` (and `-P`'s exposed ports).
    pub ports: Vec<PortSpec>,
}

/// Where a container was attached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Attachment {
    /// The network.
    pub network: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// The gateway and name server.
    pub gateway: Ipv4Addr,
    /// Its interface (eth0…).
    pub ifname: String,
    /// Published ports.
    #[serde(default)]
    pub ports: Vec<PortMapping>,
}

/// What `system prune` found and removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NetPrune {
    /// Leases of containers whose directory is gone (`network:container`).
    pub leases: Vec<String>,
    /// Namespace files of no container.
    pub netns: Vec<String>,
    /// Host veth ends of no lease.
    pub links: Vec<String>,
}

/// The networks of one engine root.
#[derive(Debug, Clone)]
pub struct Networks {
    root: PathBuf,
    dir: PathBuf,
    exe: Option<PathBuf>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn invalid(s: impl Into<String>) -> NetError {
    NetError::Invalid(s.into())
}

mod attach;
mod dns;
mod rules;
mod teardown;

pub use dns::parse_dns;

impl Networks {
    /// The networks under engine root `root`; `exe` is the `berth` binary that
    /// runs the name servers (`berth --root ROOT __dns NAME`; none if None).
    pub fn new(root: &Path, exe: Option<PathBuf>) -> Self {
        Self {
            root: root.to_owned(),
            dir: root.join("networks"),
            exe,
        }
    }

    /// Where the namespace file of container `id` goes.
    pub fn netns_path(&self, id: &str) -> PathBuf {
        self.root.join("netns").join(id)
    }

    fn net_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn lock(&self) -> Result<StateLock, NetError> {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(io_err("creating", &self.dir))?;
        StateLock::acquire(&self.dir)
    }

    fn load(&self, name: &str) -> Result<NetworkConfig, NetError> {
        let path = self.net_dir(name).join("network.json");
        if !valid_name(name) || !path.exists() {
            return Err(NetError::NotFound(name.to_owned()));
        }
        read_json(&path)
    }

    fn leases(&self, name: &str) -> Result<Leases, NetError> {
        let path = self.net_dir(name).join("leases.json");
        if !path.exists() {
            return Ok(Leases::default());
        }
        read_json(&path)
    }

    fn save_leases(&self, name: &str, leases: &Leases) -> Result<(), NetError> {
        write_json(&self.net_dir(name).join("leases.json"), leases)
    }

    fn configs(&self) -> Result<Vec<NetworkConfig>, NetError> {
        let mut out = Vec::new();
        let Ok(rd) = fs::read_dir(&self.dir) else {
            return Ok(out);
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if valid_name(&name) && e.path().join("network.json").exists() {
                out.push(self.load(&name)?);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    // ---- network verbs ----

    /// Every network with its leases.
    pub fn list(&self) -> Result<Vec<(NetworkConfig, Leases)>, NetError> {
        let _l = self.lock()?;
        self.configs()?
            .into_iter()
            .map(|c| Ok((self.leases(&c.name)?, c)).map(|(l, c)| (c, l)))
            .collect()
    }

    /// One network with its leases.
    pub fn inspect(&self, name: &str) -> Result<(NetworkConfig, Leases), NetError> {
        let _l = self.lock()?;
        Ok((self.load(name)?, self.leases(name)?))
    }

    /// Checks `req` against the other networks and the host's routes, then writes
    /// the network's config (its kernel objects come with its first container).
    pub fn create(&self, req: &CreateRequest) -> Result<NetworkConfig, NetError> {
        let _l = self.lock()?;
        self.create_locked(req)
    }

    fn create_locked(&self, req: &CreateRequest) -> Result<NetworkConfig, NetError> {
        if !valid_name(&req.name) || matches!(req.name.as_str(), "none" | "host") {
            return Err(invalid(format!(
                "network name {:?}: use letters, digits, '_', '.', '-' (not none or host)",
                req.name
            )));
        }
        if self.net_dir(&req.name).join("network.json").exists() {
            return Err(NetError::Exists(req.name.clone()));
        }
        let others = self.configs()?;
        let routes = self.foreign_routes(&others)?;
        let taken = |c: &Ipv4Cidr| -> Option<String> {
            others
                .iter()
                .find(|o| o.subnet.overlaps(c))
                .map(|o| format!("network {} ({})", o.name, o.subnet))
                .or_else(|| {
                    routes
                        .iter()
                        .find(|(r, _)| r.overlaps(c))
                        .map(|(r, dev)| format!("host route {r} dev {dev}"))
                })
        };
        let subnet = match req.subnet {
            Some(s) => {
                if s.prefix() > 30 {
                    return Err(invalid(format!("subnet {s}: too small (at most /30)")));
                }
                if let Some(what) = taken(&s) {
                    return Err(invalid(format!("subnet {s} overlaps {what}")));
                }
                s
            }
            None => {
                let candidates: Vec<Ipv4Cidr> = if req.name == DEFAULT_NETWORK {
                    DEFAULT_SUBNETS
                        .iter()
                        .map(|s| s.parse().expect("valid"))
                        .collect()
                } else {
                    (89..=99u8)
                        .flat_map(|b| (0..=255u8).map(move |c| Ipv4Addr::new(10, b, c, 0)))
                        .filter_map(|a| Ipv4Cidr::new(a, 24))
                        .collect()
                };
                candidates
                    .into_iter()
                    .find(|c| taken(c).is_none())
                    .ok_or_else(|| invalid("no free subnet left; give one with --subnet"))?
            }
        };
        let gateway = match req.gateway {
            Some(g) if !subnet.is_host(g) => {
                return Err(invalid(format!(
                    "gateway {g} is not a host address of {subnet}"
                )))
            }
            Some(g) => g,
            None => ipam::default_gateway(&subnet).ok_or_else(|| invalid("subnet too small"))?,
        };
        let used: BTreeSet<String> = others.iter().map(|o| o.interface.clone()).collect();
        let interface = (0..)
            .map(|n| format!("berth{n}"))
            .find(|i| !used.contains(i))
            .expect("unbounded");
        let config = NetworkConfig {
            name: req.name.clone(),
            driver: req.driver,
            subnet,
            gateway,
            internal: req.internal,
            interface,
            created: now(),
        };
        let dir = self.net_dir(&req.name);
        DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io_err("creating", &dir))?;
        write_json(&dir.join("network.json"), &config)?;
        Ok(config)
    }

    /// Host routes (main table) not on links of ours.
    fn foreign_routes(&self, ours: &[NetworkConfig]) -> Result<Vec<(Ipv4Cidr, String)>, NetError> {
        Ok(sys::host_routes()?
            .into_iter()
            .filter(|(_, dev)| !dev.starts_with("vb") && !ours.iter().any(|o| &o.interface == dev))
            .collect())
    }

    /// Makes the default network's config if there is none.
    pub fn ensure_default(&self) -> Result<(), NetError> {
        let _l = self.lock()?;
        if self.net_dir(DEFAULT_NETWORK).join("network.json").exists() {
            return Ok(());
        }
        self.create_locked(&CreateRequest {
            name: DEFAULT_NETWORK.into(),
            ..Default::default()
        })
        .map(|_| ())
    }

    /// `network rm`: refused while containers use it; removes its kernel objects
    /// (if a crash left any) and its state.
    pub fn remove(&self, name: &str) -> Result<(), NetError> {
        let _l = self.lock()?;
        let net = self.load(name)?;
        let leases = self.leases(name)?;
        if !leases.leases.is_empty() {
            return Err(NetError::InUse {
                name: name.to_owned(),
                count: leases.leases.len(),
            });
        }
        self.teardown(&net);
        let dir = self.net_dir(name);
        fs::remove_dir_all(&dir).map_err(io_err("removing", &dir))?;
        self.apply_rules(true)
    }

    // ---- containers ----
}
