//! [`Networks`]: the networks under an engine root, and containers joining and
//! leaving them. Every change holds the state lock (`networks/.lock`).
//!
//! A network's kernel objects (its bridge or dummy link with the gateway address,
//! its rules in `inet berth`, its name server) exist while it has a container:
//! they are made by the first attach and removed by the last detach.

use std::collections::BTreeSet;
use std::fs::{self, DirBuilder};
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::DirBuilderExt;
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

    /// Joins container `req.container` to `req.network`: creates its namespace at
    /// `netns` if `create_netns` (else it exists), checks the ports and the address,
    /// then the veth, address, routes, rules and name server. On error nothing of
    /// it is left.
    pub fn attach(
        &self,
        req: &AttachRequest,
        netns: &Path,
        create_netns: bool,
    ) -> Result<Attachment, NetError> {
        let _l = self.lock()?;
        let net = self.load(&req.network)?;
        let mut leases = self.leases(&net.name)?;
        // Input first: nothing is changed before everything checks out.
        let mut taken: Vec<PortMapping> = Vec::new();
        for c in self.configs()? {
            for l in self.leases(&c.name)?.leases {
                taken.extend(l.ports);
            }
        }
        let mut mappings = Vec::new();
        for spec in &req.ports {
            if let Some(clash) = taken
                .iter()
                .chain(&mappings)
                .find(|m| spec.host_port != 0 && m.conflicts(&as_mapping(spec)))
            {
                return Err(invalid(format!(
                    "publishing {}/{}: host port {} is already published ({clash})",
                    spec.container_port, spec.proto, spec.host_port
                )));
            }
            mappings.push(ports::claim(spec)?);
        }
        let ip = ipam::allocate(&net, &leases, req.ip)?;
        let ifname = (0..)
            .map(|n| format!("eth{n}"))
            .find(|n| {
                !self
                    .container_leases(&req.container)
                    .iter()
                    .any(|(_, l)| &l.ifname == n)
            })
            .expect("unbounded");
        let veth = format!(
            "vb{}{}",
            &req.container[..req.container.len().min(8)],
            &ifname[3..]
        );
        let lease = Lease {
            container: req.container.clone(),
            names: req.names.clone(),
            ip,
            veth,
            ifname,
            netns: netns.to_owned(),
            ports: mappings,
        };
        // A network left empty keeps its link for a grace period (see `collect`):
        // the next container finds it made.
        let realized = sys::link_exists(&net.interface);
        let _ = fs::remove_file(self.net_dir(&net.name).join("idle"));
        leases.last = Some(ip);
        // The lease first (what the rules are made from), then the rules in a
        // thread while the links are made: nft and rtnetlink wait for the
        // kernel's RCU grace periods under different locks, so they overlap.
        leases.leases.push(lease.clone());
        self.save_leases(&net.name, &leases)?;
        let undo = Undo {
            nets: self,
            lease: Some((
                net.name.clone(),
                lease.container.clone(),
                lease.ifname.clone(),
            )),
            netns: create_netns.then(|| netns.to_owned()),
            veth: Some(lease.veth.clone()),
            net: (!realized).then(|| net.clone()),
        };
        let (rules, links) = std::thread::scope(|s| {
            let rules = s.spawn(|| self.apply_rules(!realized));
            let links = self.make_links(&net, &lease, create_netns, !realized);
            let rules = rules
                .join()
                .unwrap_or_else(|_| Err(NetError::Invalid("the nft thread panicked".into())));
            (rules, links)
        });
        links?;
        rules?;
        if net.name != DEFAULT_NETWORK {
            self.start_dns(&net);
        }
        undo.disarm();
        Ok(Attachment {
            network: net.name,
            ip,
            prefix: net.subnet.prefix(),
            gateway: net.gateway,
            ifname: lease.ifname,
            ports: lease.ports,
        })
    }

    /// The namespace (if asked), the network's link (on its first container) and
    /// the container's veth.
    fn make_links(
        &self,
        net: &NetworkConfig,
        lease: &Lease,
        create_netns: bool,
        realize: bool,
    ) -> Result<(), NetError> {
        if create_netns {
            let dir = self.root.join("netns");
            if !dir.exists() {
                DirBuilder::new()
                    .mode(0o711)
                    .create(&dir)
                    .map_err(io_err("creating", &dir))?;
                sys::make_shared_dir(&dir)?;
            }
            sys::create_netns(&lease.netns, || Ok(()))?;
        }
        if realize {
            self.realize(net)?;
        }
        self.plug(net, lease)
    }

    /// Makes the network's host link with the gateway address, and forwarding on.
    fn realize(&self, net: &NetworkConfig) -> Result<(), NetError> {
        let i = &net.interface;
        let prefix = match net.driver {
            Driver::Bridge => net.subnet.prefix(),
            Driver::Routed => 32,
        };
        let mut nl = Rtnl::open()?;
        let index = match nl.link_index(i)? {
            Some(index) => index,
            None => {
                match net.driver {
                    Driver::Bridge => nl.add_link(i, LinkKind::Bridge)?,
                    // Without a dummy driver in the kernel, a bridge without
                    // ports holds the address as well.
                    Driver::Routed => match nl.add_link(i, LinkKind::Dummy) {
                        Ok(()) => {}
                        Err(_) => nl.add_link(i, LinkKind::Bridge)?,
                    },
                }
                nl.index_of(i)?
            }
        };
        nl.add_addr(index, i, net.gateway, prefix, true)?;
        nl.set_up(index, i)?;
        if net.driver == Driver::Bridge {
            sys::sysctl(&format!("net/ipv4/conf/{i}/route_localnet"), "1")?;
        }
        sys::sysctl("net/ipv4/ip_forward", "1")
    }

    /// The veth of `lease`, host end first (made with its peer already in the
    /// namespace), then its end in the namespace, from a thread joined to it.
    fn plug(&self, net: &NetworkConfig, lease: &Lease) -> Result<(), NetError> {
        let (v, eth, ip, gw) = (&lease.veth, &lease.ifname, lease.ip, net.gateway);
        let ns = fs::File::open(&lease.netns)
            .map_err(io_err("opening network namespace", &lease.netns))?;
        let mut nl = Rtnl::open()?;
        match net.driver {
            Driver::Bridge => {
                let master = nl.index_of(&net.interface)?;
                nl.add_veth(v, eth, ns.as_fd(), Some(master))?;
            }
            Driver::Routed => {
                nl.add_veth(v, eth, ns.as_fd(), None)?;
                let dev = nl.index_of(v)?;
                nl.add_route(&Route {
                    dst: ip,
                    prefix: 32,
                    gateway: None,
                    src: Some(gw),
                    dev,
                })?;
                sys::sysctl(&format!("net/ipv4/conf/{v}/proxy_arp"), "1")?;
                sys::sysctl(&format!("net/ipv4/conf/{v}/route_localnet"), "1")?;
            }
        }
        drop(nl);
        drop(ns);
        let prefix = match net.driver {
            Driver::Bridge => net.subnet.prefix(),
            Driver::Routed => 32,
        };
        sys::in_netns(&lease.netns, || {
            let mut nl = Rtnl::open()?;
            nl.set_up(LOOPBACK_INDEX, "lo")?;
            let dev = nl.index_of(eth)?;
            nl.add_addr(dev, eth, ip, prefix, false)?;
            nl.set_up(dev, eth)?;
            if net.driver == Driver::Routed {
                nl.add_route(&Route {
                    dst: gw,
                    prefix: 32,
                    gateway: None,
                    src: None,
                    dev,
                })?;
            }
            // The default route only through the first interface, and not out
            // of an internal network.
            if eth == "eth0" && !net.internal {
                nl.add_route(&Route {
                    dst: Ipv4Addr::UNSPECIFIED,
                    prefix: 0,
                    gateway: Some(gw),
                    src: None,
                    dev,
                })?;
            }
            Ok(())
        })
    }

    /// Removes the network's host link and stops its name server.
    fn teardown(&self, net: &NetworkConfig) {
        sys::delete_links(self.teardown_link(net).as_slice());
    }

    /// Stops the network's name server; the host link to remove, if there.
    fn teardown_link(&self, net: &NetworkConfig) -> Option<String> {
        self.stop_dns(net);
        sys::link_exists(&net.interface).then(|| net.interface.clone())
    }

    /// Replaces `inet berth` with the rules of the networks that have containers;
    /// skipped when the same ruleset was applied last (unless `force`).
    fn apply_rules(&self, force: bool) -> Result<(), NetError> {
        match self.rules_to_apply(force)? {
            Some(script) => {
                sys::nft_apply(&script)?;
                write_transient(&self.dir.join(".nft"), cached(&script).as_bytes())
            }
            None => Ok(()),
        }
    }

    /// The script for `nft -f -` if it differs from the last one applied (or
    /// `force`); the cache is removed until it is applied.
    fn rules_to_apply(&self, force: bool) -> Result<Option<String>, NetError> {
        let mut active = Vec::new();
        for c in self.configs()? {
            let leases = self.leases(&c.name)?;
            // An empty network whose link is still there (its grace period) keeps
            // its rules, so that the next container changes nothing.
            if !leases.leases.is_empty() || sys::link_exists(&c.interface) {
                active.push((c, leases));
            }
        }
        let script = nft::render(&active);
        let cache = self.dir.join(".nft");
        if !force && fs::read_to_string(&cache).is_ok_and(|s| s == cached(&script)) {
            return Ok(None);
        }
        let _ = fs::remove_file(&cache);
        Ok(Some(script))
    }

    /// Every lease of container `id`, with its network.
    fn container_leases(&self, id: &str) -> Vec<(NetworkConfig, Lease)> {
        let mut out = Vec::new();
        for c in self.configs().unwrap_or_default() {
            for l in self.leases(&c.name).unwrap_or_default().leases {
                if l.container == id {
                    out.push((c.clone(), l));
                }
            }
        }
        out
    }

    /// The attachments of container `id`.
    pub fn attachments(&self, id: &str) -> Vec<Attachment> {
        let Ok(_l) = self.lock() else { return vec![] };
        self.container_leases(id)
            .into_iter()
            .map(|(c, l)| Attachment {
                network: c.name,
                ip: l.ip,
                prefix: c.subnet.prefix(),
                gateway: c.gateway,
                ifname: l.ifname,
                ports: l.ports,
            })
            .collect()
    }

    /// Takes container `id` off `network` (every network if None): its veths,
    /// leases and rules; a network left empty loses its link and name server.
    /// With `network` None the namespace file goes too. Nothing there is fine.
    pub fn detach(&self, id: &str, network: Option<&str>) -> Result<(), NetError> {
        let l = self.lock()?;
        if let Some(n) = network {
            self.load(n)?;
        }
        let mut any = false;
        let mut veths = Vec::new();
        let mut emptied = Vec::new();
        for c in self.configs()? {
            if network.is_some_and(|n| n != c.name) {
                continue;
            }
            let mut leases = self.leases(&c.name)?;
            let (gone, kept): (Vec<Lease>, Vec<Lease>) =
                leases.leases.drain(..).partition(|l| l.container == id);
            if gone.is_empty() {
                continue;
            }
            any = true;
            leases.leases = kept;
            // A veth whose namespace file goes below needs nothing: the
            // kernel deletes it with the namespace, in a worker of its own (link
            // removal waits for RCU grace periods: ~20 ms that the command does
            // not wait for). Addresses are handed out round robin, so a new
            // container does not get a dying one's at once.
            veths.extend(
                gone.iter()
                    .filter(|l| network.is_some() || l.netns != self.netns_path(id))
                    .map(|l| l.veth.clone()),
            );
            self.save_leases(&c.name, &leases)?;
            if leases.leases.is_empty() {
                emptied.push(c);
            }
        }
        if any {
            // Rule changes go in the background too (nft waits for RCU grace
            // periods as well), but holding the state lock (nft inherits its fd)
            // so that the next change of any network comes after them. A veth
            // left in a namespace that stays (`network disconnect`) is deleted
            // here.
            let rules = self.rules_to_apply(false)?;
            sys::delete_links(&veths);
            if let Some(script) = rules {
                sys::spawn_detached("nft", &["-f", "-"], &script, Some(l.as_fd()))?;
                write_atomic(&self.dir.join(".nft"), script.as_bytes())?;
            }
        }
        for c in &emptied {
            self.schedule_teardown(c);
        }
        if network.is_none() {
            sys::remove_netns(&self.netns_path(id))?;
        }
        Ok(())
    }

    /// The network's link, rules and name server go `TEARDOWN_GRACE` after its
    /// last container, unless another comes: `berth __netgc NAME` waits and then
    /// runs [`Networks::collect`] (or, without a `berth` to run, it happens now).
    fn schedule_teardown(&self, net: &NetworkConfig) {
        // The token says which idle period the collector was started for: an
        // attach removes it, a later detach writes a new one.
        let token = format!(
            "{}-{}",
            std::process::id(),
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        );
        let idle = self.net_dir(&net.name).join("idle");
        // (A token lost in a crash only means the link stays until prune.)
        let spawned = write_transient(&idle, token.as_bytes()).is_ok()
            && self.exe.as_ref().is_some_and(|exe| {
                Command::new(exe)
                    .arg("--root")
                    .arg(&self.root)
                    .arg(GC_VERB)
                    .arg(&net.name)
                    .arg(&token)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .process_group(0)
                    .spawn()
                    .is_ok()
            });
        if !spawned {
            let _ = fs::remove_file(&idle);
            self.teardown(net);
            if let Err(e) = self.apply_rules(false) {
                tracing::warn!("{e}");
            }
        }
    }

    /// `berth __netgc NAME TOKEN`: after `TEARDOWN_GRACE`, removes the link,
    /// rules and name server of network `name` if it has had no container since
    /// the detach that wrote `TOKEN` to its `idle` file.
    pub fn collect(&self, name: &str, token: &str) -> Result<(), NetError> {
        std::thread::sleep(TEARDOWN_GRACE);
        if !self.dir.exists() {
            return Ok(()); // the whole root is gone
        }
        let _l = self.lock()?;
        let idle = self.net_dir(name).join("idle");
        if fs::read_to_string(&idle).ok().as_deref() != Some(token) {
            return Ok(()); // used meanwhile (or removed)
        }
        let Ok(net) = self.load(name) else {
            return Ok(());
        };
        if !self.leases(name)?.leases.is_empty() {
            return Ok(());
        }
        let _ = fs::remove_file(&idle);
        self.teardown(&net);
        self.apply_rules(false)
    }

    /// Finds what a crash left: leases whose container directory
    /// (`<root>/containers/<id>`) is gone, namespace files of no container, host
    /// veths (`vb…`) of no lease; removes them.
    pub fn prune(&self) -> Result<NetPrune, NetError> {
        let mut report = NetPrune::default();
        let exists = |id: &str| self.root.join("containers").join(id).exists();
        let mut stale = BTreeSet::new();
        {
            let _l = self.lock()?;
            for c in self.configs()? {
                for l in self.leases(&c.name)?.leases {
                    if !exists(&l.container) {
                        report.leases.push(format!("{}:{}", c.name, l.container));
                        stale.insert(l.container);
                    }
                }
            }
        }
        for id in &stale {
            self.detach(id, None)?;
        }
        let _l = self.lock()?;
        if let Ok(rd) = fs::read_dir(self.root.join("netns")) {
            for e in rd.flatten() {
                let id = e.file_name().to_string_lossy().into_owned();
                if !exists(&id) {
                    sys::remove_netns(&e.path())?;
                    report.netns.push(id);
                }
            }
        }
        let mut veths = BTreeSet::new();
        let mut active = Vec::new();
        for c in self.configs()? {
            let leases = self.leases(&c.name)?;
            veths.extend(leases.leases.iter().map(|l| l.veth.clone()));
            if leases.leases.is_empty() {
                self.teardown(&c);
            } else {
                active.push(c);
            }
        }
        for link in sys::links() {
            let ours = link.starts_with("vb") && link.len() == 11;
            if ours && !veths.contains(&link) {
                sys::delete_links(std::slice::from_ref(&link));
                report.links.push(link);
            }
        }
        self.apply_rules(true)?;
        Ok(report)
    }

    // ---- the name server ----

    fn dns_pid(&self, net: &NetworkConfig) -> Option<i32> {
        let pid: i32 = fs::read_to_string(self.net_dir(&net.name).join("dns.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let ours =
            args.contains(&crate::dns::DNS_VERB.as_bytes()) && args.contains(&net.name.as_bytes());
        ours.then_some(pid)
    }

    fn start_dns(&self, net: &NetworkConfig) {
        let Some(exe) = &self.exe else { return };
        if self.dns_pid(net).is_some() {
            return;
        }
        let child = Command::new(exe)
            .arg("--root")
            .arg(&self.root)
            .arg(crate::dns::DNS_VERB)
            .arg(&net.name)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        match child {
            Ok(c) => {
                let path = self.net_dir(&net.name).join("dns.pid");
                if let Err(e) = write_atomic(&path, format!("{}\n", c.id()).as_bytes()) {
                    tracing::warn!("{e}");
                }
            }
            Err(e) => tracing::warn!("starting the name server of {}: {e}", net.name),
        }
    }

    fn stop_dns(&self, net: &NetworkConfig) {
        if let Some(pid) = self.dns_pid(net) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
        let _ = fs::remove_file(self.net_dir(&net.name).join("dns.pid"));
    }

    /// The name server's life: serves network `name` until it is empty.
    pub fn serve_dns(&self, name: &str) -> Result<(), NetError> {
        crate::dns::serve(&self.net_dir(name))
    }
}

use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;

fn as_mapping(s: &PortSpec) -> PortMapping {
    PortMapping {
        host_ip: s.host_ip,
        host_port: s.host_port,
        container_port: s.container_port,
        proto: s.proto,
    }
}

/// Undoes a half-made attach unless disarmed.
struct Undo<'a> {
    nets: &'a Networks,
    lease: Option<(String, String, String)>,
    netns: Option<PathBuf>,
    veth: Option<String>,
    net: Option<NetworkConfig>,
}

impl Undo<'_> {
    fn disarm(mut self) {
        self.lease = None;
        self.netns = None;
        self.veth = None;
        self.net = None;
    }
}

impl Drop for Undo<'_> {
    fn drop(&mut self) {
        let mut links: Vec<String> = self.veth.iter().cloned().collect();
        if let Some(net) = &self.net {
            links.extend(self.nets.teardown_link(net));
        }
        sys::delete_links(&links);
        if let Some(ns) = &self.netns {
            let _ = sys::remove_netns(ns);
        }
        if let Some((net, id, ifname)) = &self.lease {
            if let Ok(mut leases) = self.nets.leases(net) {
                leases
                    .leases
                    .retain(|l| !(&l.container == id && &l.ifname == ifname));
                let _ = self.nets.save_leases(net, &leases);
            }
            let _ = self.nets.apply_rules(true);
        }
    }
}

/// Parses `--dns` addresses.
pub fn parse_dns(s: &str) -> Result<IpAddr, String> {
    s.parse()
        .map_err(|_| format!("--dns {s:?}: not an IP address"))
}

/// What `.nft` holds for `script`: the script applied in this boot's, this network
/// namespace's kernel (a reboot or another namespace has none of it).
fn cached(script: &str) -> String {
    use std::os::unix::fs::MetadataExt;
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let netns = fs::metadata("/proc/self/ns/net").map_or(0, |m| m.ino());
    format!("# boot {} netns {netns}\n{script}", boot.trim())
}
