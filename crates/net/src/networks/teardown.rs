//! What goes when a network empties: its link, rules and name server, after the
//! grace period (`berth __netgc`), and `system prune` of a crash's leftovers.

use super::*;

impl Networks {
    /// Removes the network's host link and stops its name server.
    pub(super) fn teardown(&self, net: &NetworkConfig) {
        sys::delete_links(self.teardown_link(net).as_slice());
    }

    /// Stops the network's name server; the host link to remove, if there.
    pub(super) fn teardown_link(&self, net: &NetworkConfig) -> Option<String> {
        self.stop_dns(net);
        sys::link_exists(&net.interface).then(|| net.interface.clone())
    }

    /// The network's link, rules and name server go `TEARDOWN_GRACE` after its
    /// last container, unless another comes: `berth __netgc NAME` waits and then
    /// runs [`Networks::collect`] (or, without a `berth` to run, it happens now).
    pub(super) fn schedule_teardown(&self, net: &NetworkConfig) {
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
}
