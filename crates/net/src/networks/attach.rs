//! Containers joining and leaving networks: the lease, the namespace, the links
//! (made on a network's first container), and undoing a half-made attach.

use super::*;

impl Networks {
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
    pub(super) fn make_links(
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
    pub(super) fn realize(&self, net: &NetworkConfig) -> Result<(), NetError> {
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
    pub(super) fn plug(&self, net: &NetworkConfig, lease: &Lease) -> Result<(), NetError> {
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

    /// Every lease of container `id`, with its network.
    pub(super) fn container_leases(&self, id: &str) -> Vec<(NetworkConfig, Lease)> {
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
}

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
