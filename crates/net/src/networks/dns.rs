//! The name server of a user-defined network (`berth __dns NET`).

use super::*;

impl Networks {
    pub(super) fn dns_pid(&self, net: &NetworkConfig) -> Option<i32> {
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

    pub(super) fn start_dns(&self, net: &NetworkConfig) {
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

    pub(super) fn stop_dns(&self, net: &NetworkConfig) {
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

/// Parses `--dns` addresses.
pub fn parse_dns(s: &str) -> Result<IpAddr, String> {
    s.parse()
        .map_err(|_| format!("--dns {s:?}: not an IP address"))
}
