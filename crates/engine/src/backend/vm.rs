//! `--isolation vm`: the container's image and command in a QEMU micro-VM with its
//! own kernel (berth-vm), driven by the guest agent.
//!
//! - create: config.json → the agent's [`RunRequest`] (args, env, cwd, user, hostname,
//!   read-only `-v` volumes over virtio-9p, `--tmpfs`), guest memory from
//!   `linux.resources.memory.limit` (default 256 MiB), vCPUs from the CPU quota
//!   (rounded up). The root disk is a qcow2 overlay over a base ext4 image cached
//!   per image (keyed by its top layer's chain id, built once from its read-only
//!   layers: the [`ANNOTATION_CHAIN`] and [`ANNOTATION_LAYERS`] annotations the
//!   engine writes). On a network ([`ANNOTATION_NETWORK`]), a tap bridged to the
//!   interface of the container's namespace (`berth_net::tap`) becomes the guest's
//!   virtio-net device, with the address; the `/etc/hosts` and `/etc/resolv.conf`
//!   the engine bind-mounts for a container are copied into the guest instead.
//!   QEMU is started in its own process group, the caller its
//!   parent, in the cgroup `/berth/vm-<id>` (memory: guest + overhead; CPU quota);
//!   `<state_root>/<id>/` holds its state (see `berth_vm::instance`), so `kill`,
//!   `delete`, `usage` work from any later `berth`. create returns once the agent
//!   is up.
//! - start hands the request to the agent; wait copies the command's stdout and
//!   stderr live to this process's fds 1 and 2, forwards the signals this process
//!   gets, and returns the exit code (128+N for signal N). Unless this process's
//!   stdin is /dev/null (`berth run` without `-i`, the monitor of `-d`), it is
//!   copied to the command's (closed at its end). With `process.terminal` (`-t`) the
//!   command runs on a pty in the guest, this process's terminal is in raw mode
//!   while wait relays, and its size follows SIGWINCH.
//! - kill: SIGKILL ends QEMU (QMP `quit`); other signals go to the command through
//!   the waiting process. delete removes the overlay, sockets, state and cgroup.

use std::collections::HashMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use berth_vm::instance::{self, State};
use berth_vm::{
    Accel, BootSpec, ExitStatus, GuestFile, GuestMount, GuestNetwork, Instance, Nic, RunRequest,
    Share,
};
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceType, LinuxResourcesBuilder, Spec,
};

use super::{Backend, BackendError, Usage};

/// Annotation: the chain id of the image's top layer (the base disk's cache key).
pub const ANNOTATION_CHAIN: &str = "org.berth.image.chain";
/// Annotation: the image's read-only layer directories, top first, `:`-separated.
pub const ANNOTATION_LAYERS: &str = "org.berth.image.layers";
/// Annotation: `kvm` or `tcg` (`--accel`); detected when absent.
pub const ANNOTATION_ACCEL: &str = "org.berth.vm.accel";

/// Annotation: the network the guest joins ([`VmNetwork`] as JSON), through the
/// network namespace of the config: the address it takes over from the interface.
pub const ANNOTATION_NETWORK: &str = "org.berth.vm.network";

/// Writes what the vm backend needs beyond the OCI config into its annotations:
/// the image's identity and read-only layers (for the base disk, from the
/// container's overlay `mounts`), `--accel`, and the network the guest joins.
pub(crate) fn annotate(
    spec: &mut oci_spec::runtime::Spec,
    top: Option<&str>,
    mounts: &[berth_snapshot::Mount],
    accel: Option<berth_vm::Accel>,
    network: Option<VmNetwork>,
) {
    let mut annotations = spec.annotations().clone().unwrap_or_default();
    let lowerdir = mounts
        .iter()
        .flat_map(|m| &m.options)
        .find_map(|o| o.strip_prefix("lowerdir="));
    annotations.insert(ANNOTATION_CHAIN.into(), top.unwrap_or("empty").into());
    annotations.insert(
        ANNOTATION_LAYERS.into(),
        lowerdir.unwrap_or_default().into(),
    );
    if let Some(accel) = accel {
        annotations.insert(ANNOTATION_ACCEL.into(), accel.name().into());
    }
    if let Some(net) = network {
        annotations.insert(
            ANNOTATION_NETWORK.into(),
            serde_json::to_string(&net).expect("serialises"),
        );
    }
    spec.set_annotations(Some(annotations));
}

/// What [`ANNOTATION_NETWORK`] holds.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct VmNetwork {
    /// The interface in the namespace that has the address (`eth0`).
    pub ifname: String,
    /// The address.
    pub address: std::net::Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// The default route's gateway (none on an internal network).
    pub gateway: Option<std::net::Ipv4Addr>,
}

/// Files of the container's directory bind-mounted on a container's /etc: a VM
/// gets copies written into its disk.
const ETC_FILES: &[&str] = &["/etc/hosts", "/etc/resolv.conf"];

/// Guest memory without `--memory`.
const DEFAULT_MEMORY_MIB: u64 = 256;
/// Less than this does not boot the guest kernel with its initramfs.
const MIN_MEMORY_MIB: u64 = 128;
/// Host memory QEMU needs beyond the guest's RAM (its own heap, devices, and under
/// TCG the translation cache, capped at 128 MiB by `tb-size`).
const OVERHEAD_MIB: u64 = 256;

/// The vm backend, its state under `state_root`.
#[derive(Debug, Clone)]
pub struct VmBackend {
    state_root: PathBuf,
    /// VMs booted by this process, between create and wait.
    booted: Arc<Mutex<HashMap<String, Booted>>>,
}

#[derive(Debug)]
struct Booted {
    vm: Instance,
    request: RunRequest,
    /// This process's fds 1 and 2 when it booted the VM: the monitor points its own
    /// at /dev/null once the container runs, keeping the log pipes for the workload.
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    /// This process's fd 0 when it booted the VM, unless /dev/null.
    stdin: Option<OwnedFd>,
}

fn config_err(msg: impl Into<String>) -> BackendError {
    BackendError::Config(msg.into())
}

/// What create derives from config.json.
struct Plan {
    request: RunRequest,
    memory_mib: u64,
    cpus: u32,
    cpu_quota: Option<(i64, u64)>,
    shares: Vec<Share>,
    accel: Option<Accel>,
    chain: Option<String>,
    layers: Vec<PathBuf>,
    /// The network, and the namespace whose interface it is on.
    network: Option<(VmNetwork, PathBuf)>,
}

fn plan(spec: &Spec) -> Result<Plan, BackendError> {
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| config_err("config.json has no process"))?;
    let user = process.user();
    let mut request = RunRequest::new(process.args().clone().unwrap_or_default());
    request.env = process.env().clone().unwrap_or_default();
    request.cwd = process.cwd().display().to_string();
    request.uid = user.uid();
    request.gid = user.gid();
    request.additional_gids = user.additional_gids().clone().unwrap_or_default();
    request.hostname = spec.hostname().clone();
    request.terminal = process.terminal().unwrap_or(false);
    request.readonly_root = spec
        .root()
        .as_ref()
        .and_then(|r| r.readonly())
        .unwrap_or(false);
    let mut shares = Vec::new();
    for m in spec.mounts().iter().flatten() {
        let options = m.options().clone().unwrap_or_default();
        let destination = m.destination().display().to_string();
        match m.typ().as_deref() {
            Some("bind") if ETC_FILES.contains(&destination.as_str()) => {
                let source = m
                    .source()
                    .clone()
                    .ok_or_else(|| config_err(format!("{destination}: no source")))?;
                let contents = std::fs::read_to_string(&source)
                    .map_err(|e| config_err(format!("reading {}: {e}", source.display())))?;
                request.files.push(GuestFile {
                    path: destination,
                    contents,
                });
            }
            Some("bind") => {
                let source = m
                    .source()
                    .clone()
                    .ok_or_else(|| config_err(format!("volume {destination}: no source")))?;
                if !options.iter().any(|o| o == "ro") {
                    return Err(config_err(format!(
                        "volume {}:{destination}: --isolation vm shares volumes read-only \
                         only (add :ro)",
                        source.display()
                    )));
                }
                let tag = format!("berth{}", shares.len());
                request.mounts.push(GuestMount::Share {
                    tag: tag.clone(),
                    destination,
                    readonly: true,
                });
                shares.push(Share {
                    source,
                    tag,
                    readonly: true,
                });
            }
            // The guest has its own /dev (devtmpfs); other tmpfs are `--tmpfs`.
            Some("tmpfs") if !destination.starts_with("/dev") => {
                request.mounts.push(GuestMount::Tmpfs { destination });
            }
            _ => {}
        }
    }
    let resources = spec.linux().as_ref().and_then(|l| l.resources().clone());
    let memory_mib = match resources
        .as_ref()
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit())
    {
        Some(limit) if limit > 0 => (limit as u64).div_ceil(1 << 20),
        _ => DEFAULT_MEMORY_MIB,
    };
    if memory_mib < MIN_MEMORY_MIB {
        return Err(config_err(format!(
            "--memory {memory_mib}m: a VM needs at least {MIN_MEMORY_MIB}m"
        )));
    }
    let cpu_quota = resources
        .as_ref()
        .and_then(|r| r.cpu().as_ref())
        .and_then(|c| Some((c.quota()?, c.period()?)))
        .filter(|&(q, p)| q > 0 && p > 0);
    let cpus = cpu_quota.map_or(1, |(q, p)| (q as u64).div_ceil(p).max(1) as u32);
    let annotations = spec.annotations().clone().unwrap_or_default();
    let accel = annotations
        .get(ANNOTATION_ACCEL)
        .map(|a| a.parse::<Accel>().map_err(config_err))
        .transpose()?;
    let layers = annotations
        .get(ANNOTATION_LAYERS)
        .map(|l| {
            l.split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    let network = match annotations.get(ANNOTATION_NETWORK) {
        Some(json) => {
            let net: VmNetwork = serde_json::from_str(json)
                .map_err(|e| config_err(format!("{ANNOTATION_NETWORK}: {e}")))?;
            let netns = spec
                .linux()
                .as_ref()
                .and_then(|l| l.namespaces().clone())
                .unwrap_or_default()
                .into_iter()
                .find(|n| n.typ() == LinuxNamespaceType::Network)
                .and_then(|n| n.path().clone())
                .ok_or_else(|| {
                    config_err(format!(
                        "{ANNOTATION_NETWORK} without a network namespace path"
                    ))
                })?;
            request.network = Some(GuestNetwork {
                address: net.address,
                prefix: net.prefix,
                gateway: net.gateway,
            });
            Some((net, netns))
        }
        None => None,
    };
    Ok(Plan {
        request,
        memory_mib,
        cpus,
        cpu_quota,
        shares,
        accel,
        chain: annotations.get(ANNOTATION_CHAIN).cloned(),
        layers,
        network,
    })
}

/// The signals a foreground `berth run` forwards to the command, and SIGWINCH
/// (a resize of the command's pty).
fn forwarded_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::Signal::*;
    let mut set = nix::sys::signal::SigSet::empty();
    for s in [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH] {
        set.add(s);
    }
    set
}

/// A duplicate of this process's fd 0, unless it is /dev/null (or closed).
fn attached_stdin() -> Option<OwnedFd> {
    let fd = std::io::stdin().as_fd().try_clone_to_owned().ok()?;
    let st = nix::sys::stat::fstat(&fd).ok()?;
    let null = nix::sys::stat::stat("/dev/null").ok()?;
    let is_null =
        (st.st_mode & nix::libc::S_IFMT) == nix::libc::S_IFCHR && st.st_rdev == null.st_rdev;
    (!is_null).then_some(fd)
}

/// The size of the terminal `fd` is, if it is one.
fn window_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let mut ws = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize struct that lives for the call.
    let r = unsafe { nix::libc::ioctl(fd.as_raw_fd(), nix::libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// The size of our terminal, on stdin or else stdout. (Only a foreground run has
/// one: `-t` is refused with `-d`. Taken afresh each time: a copy of the fds kept by
/// the signal thread, which outlives wait, would hold the monitor's log pipes open.)
fn terminal_size() -> Option<(u16, u16)> {
    window_size(std::io::stdin().as_fd()).or_else(|| window_size(std::io::stdout().as_fd()))
}

/// A terminal in raw mode for as long as this lives (restored on drop).
struct RawMode {
    fd: OwnedFd,
    saved: nix::sys::termios::Termios,
}

impl RawMode {
    /// `None` unless `fd` is a terminal.
    fn enter(fd: &OwnedFd) -> Option<Self> {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        let fd = fd.try_clone().ok()?;
        let saved = tcgetattr(&fd).ok()?;
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        tcsetattr(&fd, SetArg::TCSANOW, &raw).ok()?;
        Some(Self { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ =
            nix::sys::termios::tcsetattr(&self.fd, nix::sys::termios::SetArg::TCSANOW, &self.saved);
    }
}

/// An unbuffered writer to `fd`, or a sink.
fn writer(fd: Option<OwnedFd>) -> Box<dyn std::io::Write + Send> {
    match fd {
        Some(fd) => Box::new(File::from(fd)),
        None => Box::new(std::io::sink()),
    }
}

impl VmBackend {
    /// A backend keeping its state under `state_root`.
    pub fn new(state_root: impl Into<PathBuf>) -> Self {
        Self {
            state_root: state_root.into(),
            booted: Arc::default(),
        }
    }

    fn dir(&self, id: &str) -> PathBuf {
        self.state_root.join(id)
    }

    fn cache_dir(&self) -> PathBuf {
        self.state_root.join("cache")
    }

    fn cgroup_path(id: &str) -> String {
        format!("/berth/vm-{id}")
    }

    fn base_disk(&self, plan: &Plan, bundle: &Path) -> Result<PathBuf, BackendError> {
        Ok(match &plan.chain {
            Some(chain) => {
                berth_vm::disk::base_image_of_layers(chain, &plan.layers, &self.cache_dir())?
            }
            // A bundle not made by the engine: its rootfs, fingerprinted.
            None => berth_vm::disk::base_image(&bundle.join("rootfs"), &self.cache_dir())?,
        })
    }

    fn make_cgroup(
        id: &str,
        plan: &Plan,
    ) -> Result<Box<dyn berth_cgroups::CgroupManager>, BackendError> {
        let err = |e: oci_spec::OciSpecError| config_err(format!("resources: {e}"));
        let limit = ((plan.memory_mib + OVERHEAD_MIB) << 20) as i64;
        let mut resources = LinuxResourcesBuilder::default().memory(
            LinuxMemoryBuilder::default()
                .limit(limit)
                .build()
                .map_err(err)?,
        );
        if let Some((quota, period)) = plan.cpu_quota {
            resources = resources.cpu(
                LinuxCpuBuilder::default()
                    .quota(quota)
                    .period(period)
                    .build()
                    .map_err(err)?,
            );
        }
        let cgroup = berth_cgroups::manager(&Self::cgroup_path(id))?;
        cgroup.create()?;
        cgroup.apply(&resources.build().map_err(err)?)?;
        Ok(cgroup)
    }

    fn boot(&self, id: &str, bundle: &Path, dir: &Path) -> Result<Booted, BackendError> {
        let config = bundle.join("config.json");
        let spec = Spec::load(&config)
            .map_err(|e| config_err(format!("reading {}: {e}", config.display())))?;
        let mut plan = plan(&spec)?;
        let stdin = attached_stdin();
        plan.request.stdin = stdin.is_some();
        if plan.request.terminal {
            plan.request.window = terminal_size();
        }
        let base = self.base_disk(&plan, bundle)?;
        let vm = berth_vm::Vm::new(berth_vm::VmConfig {
            cache_dir: self.cache_dir(),
            accel: plan.accel,
            ..berth_vm::VmConfig::default()
        })?;
        let cgroup = Self::make_cgroup(id, &plan)?;
        let nic = match &plan.network {
            Some((net, netns)) => {
                let tap = berth_net::tap::join_tap(netns, &net.ifname, net.address, net.prefix)
                    .map_err(|e| config_err(format!("joining the VM to its network: {e}")))?;
                Some(Nic {
                    tap,
                    mac: berth_net::tap::guest_mac(net.address),
                })
            }
            None => None,
        };
        let spec = BootSpec {
            base,
            memory_mib: plan.memory_mib as u32,
            cpus: plan.cpus,
            shares: plan.shares,
            nic,
        };
        let booted = vm.boot(dir, &spec, |pid| {
            cgroup.add_task(pid).map_err(|e| berth_vm::VmError::Tool {
                what: "moving qemu into its cgroup".into(),
                output: e.to_string(),
            })
        })?;
        // From here the signals meant for the command wait for `wait` to forward
        // them (every thread made after inherits the mask; QEMU already runs).
        let _ = forwarded_signals().thread_block();
        booted.serve_signals()?;
        Ok(Booted {
            vm: booted,
            request: plan.request,
            stdout: std::io::stdout().as_fd().try_clone_to_owned().ok(),
            stderr: std::io::stderr().as_fd().try_clone_to_owned().ok(),
            stdin,
        })
    }

    fn remove_cgroup(id: &str) {
        if let Ok(cgroup) = berth_cgroups::load(&Self::cgroup_path(id)) {
            if let Err(e) = cgroup.remove() {
                tracing::warn!("removing the cgroup of VM {id}: {e}");
            }
        }
    }
}

impl Backend for VmBackend {
    fn create(&self, id: &str, bundle: &Path) -> Result<i32, BackendError> {
        std::fs::create_dir_all(&self.state_root)
            .map_err(|e| config_err(format!("creating {}: {e}", self.state_root.display())))?;
        let dir = self.dir(id);
        std::fs::create_dir(&dir)
            .map_err(|e| config_err(format!("creating {}: {e}", dir.display())))?;
        match self.boot(id, bundle, &dir) {
            Ok(booted) => {
                let pid = booted.vm.pid();
                self.booted
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(id.to_owned(), booted);
                Ok(pid)
            }
            Err(e) => {
                let _ = self.delete(id, true);
                Err(e)
            }
        }
    }

    fn start(&self, id: &str) -> Result<(), BackendError> {
        let mut booted = self.booted.lock().unwrap_or_else(|e| e.into_inner());
        let b = booted
            .get_mut(id)
            .ok_or_else(|| config_err(format!("VM {id} was not booted by this process")))?;
        b.vm.start(b.request.clone())?;
        Ok(())
    }

    fn wait(&self, id: &str, _pid: i32) -> Result<i32, BackendError> {
        let booted = self
            .booted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id)
            .ok_or_else(|| config_err(format!("VM {id} was not booted by this process")))?;
        let dir = self.dir(id);
        let terminal = booted.request.terminal;
        let control = booted.vm.control();
        std::thread::spawn(move || {
            let set = forwarded_signals();
            while let Ok(signal) = set.wait() {
                if signal == nix::sys::signal::Signal::SIGWINCH {
                    if let Some((rows, cols)) = terminal_size().filter(|_| terminal) {
                        let _ = control.resize(rows, cols);
                    }
                } else {
                    let _ = instance::signal(&dir, signal as i32);
                }
            }
        });
        // Restored when wait returns, error or not.
        let _raw = match (&booted.stdin, terminal) {
            (Some(fd), true) => RawMode::enter(fd),
            _ => None,
        };
        if let Some(fd) = booted.stdin {
            booted.vm.attach_stdin(File::from(fd))?;
        }
        let (out, err) = (writer(booted.stdout), writer(booted.stderr));
        Ok(match booted.vm.wait(out, err)? {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(n) => 128 + n,
        })
    }

    fn kill(&self, id: &str, signal: i32) -> Result<(), BackendError> {
        let dir = self.dir(id);
        if signal == nix::libc::SIGKILL {
            instance::kill(&dir)?;
        } else {
            instance::signal(&dir, signal)?;
        }
        Ok(())
    }

    fn delete(&self, id: &str, force: bool) -> Result<(), BackendError> {
        let dir = self.dir(id);
        if !dir.exists() {
            return Ok(());
        }
        let alive = State::load(&dir).is_ok_and(|s| s.alive());
        if alive && !force {
            return Err(config_err(format!("VM {id} is running")));
        }
        // Ours: dropping it kills and reaps QEMU.
        let ours = self
            .booted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        drop(ours);
        if State::load(&dir).is_ok_and(|s| s.alive()) {
            instance::kill(&dir)?;
        }
        Self::remove_cgroup(id);
        std::fs::remove_dir_all(&dir)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::NotFound => Ok(()),
                _ => Err(e),
            })
            .map_err(|e| config_err(format!("removing {}: {e}", dir.display())))
    }

    fn exists(&self, id: &str) -> bool {
        self.dir(id).is_dir()
    }

    fn pids(&self, id: &str) -> Result<Vec<i32>, BackendError> {
        let state = State::load(&self.dir(id))?;
        Ok(if state.alive() {
            vec![state.pid]
        } else {
            vec![]
        })
    }

    fn usage(&self, id: &str) -> Result<Usage, BackendError> {
        let state = State::load(&self.dir(id))?;
        let stats = berth_cgroups::load(&Self::cgroup_path(id))?.stats()?;
        let limit = stats.memory.usage.limit;
        Ok(Usage {
            cpu_ns: stats.cpu.usage.total,
            memory_bytes: stats.memory.usage.usage,
            memory_limit: (limit > 0 && limit < i64::MAX as u64 / 2).then_some(limit),
            pids: u64::from(state.alive()),
            ksm_merged_pages: instance::ksm_merging_pages(state.pid),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{MountBuilder, ProcessBuilder, UserBuilder};

    fn spec() -> Spec {
        let mut spec = Spec::default();
        spec.set_process(Some(
            ProcessBuilder::default()
                .args(vec!["sh".to_owned(), "-c".to_owned(), "id".to_owned()])
                .env(vec!["PATH=/bin".to_owned()])
                .cwd("/srv")
                .user(
                    UserBuilder::default()
                        .uid(7u32)
                        .gid(8u32)
                        .additional_gids(vec![9u32])
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        ));
        spec.set_hostname(Some("h".into()));
        spec
    }

    #[test]
    fn request_from_the_config() {
        let p = plan(&spec()).unwrap();
        assert_eq!(p.request.args, ["sh", "-c", "id"]);
        assert_eq!(p.request.cwd, "/srv");
        assert_eq!((p.request.uid, p.request.gid), (7, 8));
        assert_eq!(p.request.additional_gids, [9]);
        assert_eq!(p.request.hostname.as_deref(), Some("h"));
        assert_eq!((p.memory_mib, p.cpus), (256, 1));
        // runc's default mounts (/proc, /dev tmpfs…) are the guest kernel's own.
        assert!(p.request.mounts.is_empty());
        assert!(p.chain.is_none() && p.accel.is_none());
        // stdin is decided at boot (this process's fd 0), the pty by the config.
        assert!(!p.request.stdin && !p.request.terminal);
        let mut s = spec();
        s.process_mut().as_mut().unwrap().set_terminal(Some(true));
        assert!(plan(&s).unwrap().request.terminal);
    }

    #[test]
    fn network_and_etc_files() {
        use oci_spec::runtime::LinuxNamespaceBuilder;
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, "10.89.9.2\tvm\n").unwrap();
        let mut s = spec();
        s.set_mounts(Some(vec![MountBuilder::default()
            .destination("/etc/hosts")
            .typ("bind")
            .source(&hosts)
            .options(vec!["rbind".into(), "rw".into()])
            .build()
            .unwrap()]));
        let net = VmNetwork {
            ifname: "eth0".into(),
            address: [10, 89, 9, 2].into(),
            prefix: 24,
            gateway: Some([10, 89, 9, 1].into()),
        };
        s.set_annotations(Some(
            [(
                ANNOTATION_NETWORK.to_owned(),
                serde_json::to_string(&net).unwrap(),
            )]
            .into(),
        ));
        // Without the namespace to find the interface in: refused.
        assert!(plan(&s).is_err());
        let linux = s.linux_mut().as_mut().unwrap();
        linux.set_namespaces(Some(vec![LinuxNamespaceBuilder::default()
            .typ(LinuxNamespaceType::Network)
            .path("/r/netns/x")
            .build()
            .unwrap()]));
        let p = plan(&s).unwrap();
        assert_eq!(p.network, Some((net, PathBuf::from("/r/netns/x"))));
        assert_eq!(
            p.request.network,
            Some(GuestNetwork {
                address: [10, 89, 9, 2].into(),
                prefix: 24,
                gateway: Some([10, 89, 9, 1].into()),
            })
        );
        // The read-write bind of /etc/hosts becomes a copy in the guest.
        assert_eq!(
            p.request.files,
            [GuestFile {
                path: "/etc/hosts".into(),
                contents: "10.89.9.2\tvm\n".into()
            }]
        );
        assert!(p.shares.is_empty() && p.request.mounts.is_empty());
    }

    #[test]
    fn resources_volumes_and_annotations() {
        let mut s = spec();
        let linux = s.linux_mut().as_mut().unwrap();
        linux.set_resources(Some(
            LinuxResourcesBuilder::default()
                .memory(
                    LinuxMemoryBuilder::default()
                        .limit(160 << 20)
                        .build()
                        .unwrap(),
                )
                .cpu(
                    LinuxCpuBuilder::default()
                        .quota(150_000)
                        .period(100_000u64)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        ));
        let ro = MountBuilder::default()
            .destination("/data")
            .typ("bind")
            .source("/srv/data")
            .options(vec!["rbind".into(), "ro".into()])
            .build()
            .unwrap();
        s.set_mounts(Some(vec![ro.clone()]));
        s.set_annotations(Some(
            [
                (ANNOTATION_CHAIN.to_owned(), "sha256:abc".to_owned()),
                (ANNOTATION_LAYERS.to_owned(), "/l/2:/l/1".to_owned()),
                (ANNOTATION_ACCEL.to_owned(), "tcg".to_owned()),
            ]
            .into(),
        ));
        let p = plan(&s).unwrap();
        assert_eq!((p.memory_mib, p.cpus), (160, 2));
        assert_eq!(p.cpu_quota, Some((150_000, 100_000)));
        assert_eq!(p.shares.len(), 1);
        assert_eq!(
            p.request.mounts,
            [GuestMount::Share {
                tag: "berth0".into(),
                destination: "/data".into(),
                readonly: true
            }]
        );
        assert_eq!(p.layers, [PathBuf::from("/l/2"), PathBuf::from("/l/1")]);
        assert_eq!(p.accel, Some(Accel::Tcg));
        let mut rw = ro;
        rw.set_options(Some(vec!["rbind".into(), "rw".into()]));
        s.set_mounts(Some(vec![rw]));
        let e = plan(&s).err().unwrap().to_string();
        assert!(e.contains("read-only"), "{e}");
    }
}
