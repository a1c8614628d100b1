//! One micro-VM run: start QEMU, hand the request to the agent, collect the outcome.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use berth_guest_agent::protocol::{GuestMessage, HostMessage};
use berth_guest_agent::{ExitStatus, RunRequest};

use crate::qemu::{self, Accel, QemuArgs};
use crate::{disk, initramfs, Kernel, Qmp, VmError};

/// Default directory for the initramfs and base images.
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/berth/vm";

/// How VMs are made.
#[derive(Debug, Clone)]
pub struct VmConfig {
    /// Kernel cache (`None`: `$BERTH_KERNEL_DIR` or /var/cache/berth/kernel).
    pub kernel_dir: Option<PathBuf>,
    /// The static guest agent (`None`: `$BERTH_GUEST_AGENT`, else `berth-guest-agent`
    /// next to the current executable).
    pub agent: Option<PathBuf>,
    /// Where the initramfs and base images are cached.
    pub cache_dir: PathBuf,
    /// Where each VM's directory (overlay, sockets, output) is made.
    pub run_dir: PathBuf,
    /// `None`: [`Accel::detect`].
    pub accel: Option<Accel>,
    /// Guest memory.
    pub memory_mib: u32,
    /// Longest a run may take, boot included; the VM is killed after.
    pub timeout: Duration,
    /// The QEMU binary.
    pub qemu: PathBuf,
}

impl Default for VmConfig {
    fn default() -> Self {
        Self {
            kernel_dir: None,
            agent: None,
            cache_dir: PathBuf::from(DEFAULT_CACHE_DIR),
            run_dir: std::env::temp_dir(),
            accel: None,
            memory_mib: 256,
            timeout: Duration::from_secs(120),
            qemu: PathBuf::from("qemu-system-x86_64"),
        }
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmOutcome {
    /// The command's exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: Vec<u8>,
    /// Everything it wrote to stderr.
    pub stderr: Vec<u8>,
}

/// A kernel and initramfs ready to boot VMs.
#[derive(Debug)]
pub struct Vm {
    pub(crate) config: VmConfig,
    pub(crate) kernel: Kernel,
    pub(crate) initramfs: PathBuf,
    pub(crate) accel: Accel,
}

fn locate_agent(config: &VmConfig) -> Result<PathBuf, VmError> {
    let candidates = [
        config.agent.clone(),
        std::env::var_os("BERTH_GUEST_AGENT").map(PathBuf::from),
        std::env::current_exe()
            .ok()
            .and_then(|e| Some(e.parent()?.join("berth-guest-agent"))),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .ok_or(VmError::NoAgent)
}

impl Vm {
    /// Finds the kernel and the agent and builds (or reuses) the initramfs.
    pub fn new(config: VmConfig) -> Result<Self, VmError> {
        let kernel = Kernel::locate(config.kernel_dir.as_deref())?;
        let agent = locate_agent(&config)?;
        let initramfs = initramfs::cached(&kernel, &agent, &config.cache_dir)?;
        let accel = config.accel.unwrap_or_else(Accel::detect);
        Ok(Self {
            config,
            kernel,
            initramfs,
            accel,
        })
    }

    /// The accelerator VMs use.
    pub fn accel(&self) -> Accel {
        self.accel
    }

    /// The initramfs VMs boot with.
    pub fn initramfs(&self) -> &Path {
        &self.initramfs
    }

    /// Runs `request` in a VM whose root disk is a copy of `rootfs`, and waits for it.
    pub fn run(&self, rootfs: &Path, request: RunRequest) -> Result<VmOutcome, VmError> {
        self.start(rootfs, request)?.wait()
    }

    /// Boots a VM for `request` and hands it the request; [`RunningVm::wait`] ends it.
    pub fn start(&self, rootfs: &Path, request: RunRequest) -> Result<RunningVm, VmError> {
        let base = disk::base_image(rootfs, &self.config.cache_dir)?;
        let dir = tempfile::Builder::new()
            .prefix("berth-vm-")
            .tempdir_in(&self.config.run_dir)
            .map_err(|e| VmError::io("creating the VM's directory", e))?;
        let overlay = dir.path().join("root.qcow2");
        disk::create_overlay(&base, &overlay)?;
        let args = QemuArgs {
            accel: self.accel,
            kernel: self.kernel.vmlinux.clone(),
            initrd: self.initramfs.clone(),
            disk: overlay,
            memory_mib: self.config.memory_mib,
            cpus: 1,
            dir: dir.path().to_path_buf(),
            shares: Vec::new(),
            live_output: false,
            net: None,
        };
        let log_path = dir.path().join("qemu.log");
        let log = File::create(&log_path).map_err(|e| VmError::io("creating qemu.log", e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| VmError::io("cloning qemu.log", e))?;
        let child = Command::new(&self.config.qemu)
            .args(args.to_args())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .spawn()
            .map_err(|e| VmError::io(format!("starting {}", self.config.qemu.display()), e))?;
        let mut vm = RunningVm {
            child,
            dir,
            control: None,
            deadline: Instant::now() + self.config.timeout,
            timeout: self.config.timeout,
        };
        vm.connect()?;
        vm.expect_ready()?;
        vm.send(&HostMessage::Run(request))?;
        Ok(vm)
    }
}

/// A booted VM. Dropping it kills QEMU and removes the VM's directory.
#[derive(Debug)]
pub struct RunningVm {
    child: Child,
    dir: tempfile::TempDir,
    control: Option<BufReader<UnixStream>>,
    deadline: Instant,
    timeout: Duration,
}

impl RunningVm {
    /// The VM's directory (overlay, sockets, output files), removed when it ends.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// QEMU's pid on the host.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new QMP connection to this VM's QEMU.
    pub fn qmp(&self) -> Result<Qmp, VmError> {
        Qmp::connect(&qemu::qmp_socket(self.dir.path()))
    }

    /// Sends signal `signal` to the command in the guest.
    pub fn signal(&mut self, signal: i32) -> Result<(), VmError> {
        self.send(&HostMessage::Signal(signal))
    }

    /// Waits for the control socket QEMU creates and connects to it.
    fn connect(&mut self) -> Result<(), VmError> {
        let path = qemu::control_socket(self.dir.path());
        loop {
            if let Ok(s) = crate::unix::connect(&path) {
                self.control = Some(BufReader::new(s));
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let log =
                    std::fs::read_to_string(self.dir.path().join("qemu.log")).unwrap_or_default();
                return Err(VmError::Tool {
                    what: "starting qemu".into(),
                    output: format!("{status}: {}", log.trim_end()),
                });
            }
            if Instant::now() > self.deadline {
                return Err(VmError::Timeout(self.timeout));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn send(&mut self, msg: &HostMessage) -> Result<(), VmError> {
        let control = self.control.as_mut().expect("connected");
        control
            .get_mut()
            .write_all(msg.to_line().as_bytes())
            .map_err(|e| VmError::Protocol(format!("sending: {e}")))
    }

    /// The next message, `None` at end of stream (QEMU exited).
    fn receive(&mut self) -> Result<Option<GuestMessage>, VmError> {
        let remaining = self.deadline.saturating_duration_since(Instant::now());
        let control = self.control.as_mut().expect("connected");
        control
            .get_ref()
            .set_read_timeout(Some(remaining.max(Duration::from_millis(1))))
            .map_err(|e| VmError::Protocol(format!("setting a timeout: {e}")))?;
        let message = read_message(control, self.timeout);
        if matches!(message, Err(VmError::Timeout(_))) {
            self.kill();
        }
        message
    }

    fn expect_ready(&mut self) -> Result<(), VmError> {
        match self.receive()? {
            Some(GuestMessage::Ready) => Ok(()),
            Some(GuestMessage::Error(e)) => Err(VmError::Guest(e)),
            Some(other) => Err(VmError::Protocol(format!("expected ready, got {other:?}"))),
            None => Err(self.died()),
        }
    }

    /// Waits for the command to end and QEMU to exit; returns the command's status and
    /// output. The VM's directory is removed either way.
    pub fn wait(mut self) -> Result<VmOutcome, VmError> {
        let status = loop {
            match self.receive()? {
                Some(GuestMessage::Started { .. }) | Some(GuestMessage::Ready) => {}
                Some(GuestMessage::Exited(status)) => break status,
                Some(GuestMessage::Error(e)) => return Err(VmError::Guest(e)),
                None => return Err(self.died()),
            }
        };
        self.reap();
        let read = |p: PathBuf| {
            std::fs::read(&p).map_err(|e| VmError::io(format!("reading {}", p.display()), e))
        };
        Ok(VmOutcome {
            status,
            stdout: read(qemu::stdout_file(self.dir.path()))?,
            stderr: read(qemu::stderr_file(self.dir.path()))?,
        })
    }

    /// Kills QEMU at once (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to 10 s for QEMU to exit after the guest powered off, then kills it.
    fn reap(&mut self) {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.kill();
    }

    /// The error for a VM that ended early, with the end of its console.
    fn died(&mut self) -> VmError {
        self.reap();
        let console = std::fs::read(qemu::console_file(self.dir.path())).unwrap_or_default();
        let console = String::from_utf8_lossy(&console);
        VmError::Died {
            console: console_excerpt(&console),
        }
    }
}

/// The agent's next message on its control port: `Ok(None)` at end of stream
/// (QEMU exited), `Err(VmError::Timeout(timeout))` when the read timed out.
pub(crate) fn read_message(
    reader: &mut impl BufRead,
    timeout: Duration,
) -> Result<Option<GuestMessage>, VmError> {
    let mut line = Vec::new();
    match reader.read_until(b'\n', &mut line) {
        Ok(0) => Ok(None),
        Ok(_) => serde_json::from_slice(&line).map(Some).map_err(|e| {
            VmError::Protocol(format!("parsing {:?}: {e}", String::from_utf8_lossy(&line)))
        }),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Err(VmError::Timeout(timeout))
        }
        Err(e) => Err(VmError::Protocol(format!("reading: {e}"))),
    }
}

/// From the first kernel panic line if there is one (its reason comes first, the trace
/// after), else the last lines; 30 lines at most.
pub(crate) fn console_excerpt(console: &str) -> String {
    let lines: Vec<&str> = console.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.contains("Kernel panic"))
        .unwrap_or(lines.len().saturating_sub(30));
    lines[start..lines.len().min(start + 30)].join("\n")
}

impl Drop for RunningVm {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            self.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn console_excerpt_starts_at_the_panic() {
        let mut console: Vec<String> = (0..50).map(|i| format!("line {i}")).collect();
        console[10] = "[ 1.8] Kernel panic - not syncing: sysrq triggered crash".into();
        let excerpt = console_excerpt(&console.join("\n"));
        assert!(excerpt.starts_with("[ 1.8] Kernel panic"));
        assert_eq!(excerpt.lines().count(), 30);
        let quiet = console_excerpt("a\nb");
        assert_eq!(quiet, "a\nb");
    }
}
