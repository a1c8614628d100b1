//! A VM that outlives the command that boots it, for the engine's `--isolation vm`.
//!
//! [`Vm::boot`] makes the VM's directory's overlay, starts QEMU in its own process
//! group (the caller stays its parent and reaps it), records it in `state.json` and
//! waits for the agent's Ready. The command's stdout and stderr come over unix
//! sockets, copied live by [`Instance::wait`]; its stdin (`-i`) goes over another,
//! fed by [`Instance::attach_stdin`], whose end the guest reads as end of file. Any later process reaches the VM
//! through its directory alone: [`State::load`], [`signal`] (through `signal.sock`,
//! served by the process holding the control connection), [`kill`] (QMP `quit`).
//!
//! ```text
//! <dir>/state.json     QEMU's pid and start time, accelerator, memory, cpus
//!       root.qcow2     the VM's copy-on-write overlay of the base disk
//!       control.sock   agent protocol (held by the booting process)
//!       stdout.sock    the command's output (read live)
//!       stderr.sock
//!       stdin.sock     the command's input (-i); half-closed at the input's end
//!       signal.sock    "N\n" → HostMessage::Signal(N) on the control port
//!       qmp.sock       QMP
//!       console.log    the guest's serial console; qemu.log QEMU's own output
//!       killed         written by [`kill`]: the end was asked for
//! ```

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_guest_agent::protocol::{GuestMessage, HostMessage};
use berth_guest_agent::{ExitStatus, RunRequest};
use serde::{Deserialize, Serialize};

use crate::qemu::{self, QemuArgs, Share};
use crate::vm::console_excerpt;
use crate::{disk, unix, Vm, VmError};

/// How long QEMU may take to boot the guest up to the agent's Ready.
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
/// The state file in a VM's directory.
const STATE_FILE: &str = "state.json";
const SIGNAL_SOCKET: &str = "signal.sock";
const KILLED_MARK: &str = "killed";

/// With `$BERTH_VM_TIMING` set, prints how long since `since` a phase ended.
fn timing(phase: &str, since: Instant) {
    if std::env::var_os("BERTH_VM_TIMING").is_some() {
        eprintln!("berth-vm: {phase}: {:?}", since.elapsed());
    }
}

/// The fd number QEMU finds the tap on.
const TAP_FD: i32 = 3;

/// A network device for the guest: a tap (made by the caller, in the network
/// namespace it belongs to), handed to QEMU as an inherited fd.
#[derive(Debug)]
pub struct Nic {
    /// The tap (`/dev/net/tun` after `TUNSETIFF`).
    pub tap: OwnedFd,
    /// The guest's MAC.
    pub mac: String,
}

/// What to boot.
#[derive(Debug)]
pub struct BootSpec {
    /// The base disk (raw ext4) the VM's overlay is made over.
    pub base: PathBuf,
    /// Guest memory.
    pub memory_mib: u32,
    /// Virtual CPUs.
    pub cpus: u32,
    /// Host directories shared over virtio-9p.
    pub shares: Vec<Share>,
    /// A virtio-net device on a tap.
    pub nic: Option<Nic>,
}

/// What `state.json` holds: enough for any process to find and end the VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// QEMU's pid.
    pub pid: i32,
    /// QEMU's start time (field 22 of /proc/PID/stat), to tell it from a later
    /// process with the same pid.
    pub start_time: u64,
    /// `kvm` or `tcg`.
    pub accel: String,
    /// Guest memory.
    pub memory_mib: u32,
    /// Virtual CPUs.
    pub cpus: u32,
}

/// Field 22 of /proc/PID/stat (start time in clock ticks) and whether the process
/// is a zombie; `None` if there is no such process.
fn proc_start(pid: i32) -> Option<(u64, bool)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state).
    let zombie = matches!(fields.first(), Some(&"Z") | Some(&"X"));
    Some((fields.get(19)?.parse().ok()?, zombie))
}

impl State {
    /// The state in `dir`.
    pub fn load(dir: &Path) -> Result<Self, VmError> {
        let path = dir.join(STATE_FILE);
        let text = std::fs::read(&path)
            .map_err(|e| VmError::io(format!("reading {}", path.display()), e))?;
        serde_json::from_slice(&text)
            .map_err(|e| VmError::Protocol(format!("parsing {}: {e}", path.display())))
    }

    /// Written to a temp file, synced, renamed.
    fn save(&self, dir: &Path) -> Result<(), VmError> {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| VmError::io(format!("creating a file in {}", dir.display()), e))?;
        let data = serde_json::to_vec(self).expect("state serialises");
        tmp.write_all(&data)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| VmError::io("writing state.json", e))?;
        let path = dir.join(STATE_FILE);
        tmp.persist(&path)
            .map_err(|e| VmError::io(format!("renaming to {}", path.display()), e.error))?;
        Ok(())
    }

    /// Whether this QEMU still runs (same pid and start time, not a zombie).
    pub fn alive(&self) -> bool {
        proc_start(self.pid).is_some_and(|(start, zombie)| start == self.start_time && !zombie)
    }
}

/// A booted VM, held by the process that booted it (QEMU's parent).
pub struct Instance {
    dir: PathBuf,
    child: Child,
    state: State,
    control: Arc<Mutex<UnixStream>>,
    reader: BufReader<UnixStream>,
    stdout: UnixStream,
    stderr: UnixStream,
    stdin: UnixStream,
    stop_signals: Arc<AtomicBool>,
}

/// Sends messages to a running VM's agent from any thread (see [`Instance::control`]).
#[derive(Debug, Clone)]
pub struct Control(Arc<Mutex<UnixStream>>);

impl Control {
    /// Tells the agent the size of the host's terminal, for the command's pty.
    pub fn resize(&self, rows: u16, cols: u16) -> Result<(), VmError> {
        send_on(&self.0, &HostMessage::Resize { rows, cols })
    }
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("dir", &self.dir)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// Retries connecting to `name` in `dir` until QEMU has made it.
fn connect_when_there(
    dir: &Path,
    name: &str,
    child: &mut Child,
    deadline: Instant,
) -> Result<UnixStream, VmError> {
    let path = dir.join(name);
    loop {
        if let Ok(s) = unix::connect(&path) {
            return Ok(s);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let log = std::fs::read_to_string(dir.join("qemu.log")).unwrap_or_default();
            return Err(VmError::Tool {
                what: "starting qemu".into(),
                output: format!("{status}: {}", log.trim_end()),
            });
        }
        if Instant::now() > deadline {
            return Err(VmError::Timeout(BOOT_TIMEOUT));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

impl Vm {
    /// Boots a VM in `dir` (which must exist and be empty) over `spec.base`, and
    /// waits for its agent. `place` gets QEMU's pid as soon as it runs (to put it in
    /// a cgroup). On error QEMU is killed; the directory is the caller's.
    pub fn boot(
        &self,
        dir: &Path,
        spec: &BootSpec,
        place: impl FnOnce(i32) -> Result<(), VmError>,
    ) -> Result<Instance, VmError> {
        let t0 = Instant::now();
        let overlay = dir.join("root.qcow2");
        disk::create_overlay(&spec.base, &overlay)?;
        timing("overlay made", t0);
        let args = QemuArgs {
            accel: self.accel,
            kernel: self.kernel.vmlinux.clone(),
            initrd: self.initramfs.clone(),
            disk: overlay,
            memory_mib: spec.memory_mib,
            cpus: spec.cpus,
            dir: dir.to_path_buf(),
            shares: spec.shares.clone(),
            live_output: true,
            net: spec.nic.as_ref().map(|n| qemu::NetDevice {
                fd: TAP_FD,
                mac: n.mac.clone(),
            }),
        };
        let log_path = dir.join("qemu.log");
        let log = File::create(&log_path).map_err(|e| VmError::io("creating qemu.log", e))?;
        let log2 = log
            .try_clone()
            .map_err(|e| VmError::io("cloning qemu.log", e))?;
        let mut command = Command::new(&self.config.qemu);
        if let Some(nic) = &spec.nic {
            let tap = nic.tap.as_raw_fd();
            // SAFETY: the closure runs in the child between fork and exec and only
            // makes async-signal-safe calls (dup2, fcntl) on fds it does not own:
            // the tap (open in the parent until spawn returns) becomes fd TAP_FD,
            // without close-on-exec.
            unsafe {
                command.pre_exec(move || {
                    let r = if tap == TAP_FD {
                        nix::libc::fcntl(tap, nix::libc::F_SETFD, 0)
                    } else {
                        nix::libc::dup2(tap, TAP_FD)
                    };
                    if r < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let mut child = command
            .args(args.to_args())
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            // Out of the caller's process group: a ^C at its terminal is forwarded to
            // the command by the caller, not delivered to QEMU.
            .process_group(0)
            .spawn()
            .map_err(|e| VmError::io(format!("starting {}", self.config.qemu.display()), e))?;
        let pid = child.id() as i32;
        timing("qemu spawned", t0);
        let booted = (|| {
            place(pid)?;
            let (start_time, _) = proc_start(pid).ok_or_else(|| VmError::Tool {
                what: "starting qemu".into(),
                output: "it exited at once".into(),
            })?;
            let state = State {
                pid,
                start_time,
                accel: self.accel.name().into(),
                memory_mib: spec.memory_mib,
                cpus: spec.cpus,
            };
            state.save(dir)?;
            let deadline = Instant::now() + BOOT_TIMEOUT;
            let control = connect_when_there(dir, qemu::CONTROL_SOCKET, &mut child, deadline)?;
            let stdout = connect_when_there(dir, qemu::STDOUT_SOCKET, &mut child, deadline)?;
            let stderr = connect_when_there(dir, qemu::STDERR_SOCKET, &mut child, deadline)?;
            let stdin = connect_when_there(dir, qemu::STDIN_SOCKET, &mut child, deadline)?;
            control
                .set_read_timeout(Some(BOOT_TIMEOUT))
                .map_err(|e| VmError::Protocol(format!("setting a timeout: {e}")))?;
            let reader = BufReader::new(
                control
                    .try_clone()
                    .map_err(|e| VmError::Protocol(format!("cloning the socket: {e}")))?,
            );
            Ok((state, control, reader, stdout, stderr, stdin))
        })();
        let (state, control, reader, stdout, stderr, stdin) = match booted {
            Ok(parts) => parts,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let mut vm = Instance {
            dir: dir.to_path_buf(),
            child,
            state,
            control: Arc::new(Mutex::new(control)),
            reader,
            stdout,
            stderr,
            stdin,
            stop_signals: Arc::new(AtomicBool::new(false)),
        };
        timing("sockets connected", t0);
        match vm.receive() {
            Ok(Some(GuestMessage::Ready)) => timing("agent ready", t0),
            Ok(Some(GuestMessage::Error(e))) => return Err(vm.fail(VmError::Guest(e))),
            Ok(Some(other)) => {
                let e = VmError::Protocol(format!("expected ready, got {other:?}"));
                return Err(vm.fail(e));
            }
            Ok(None) => return Err(vm.died()),
            Err(e) => return Err(vm.fail(e)),
        }
        Ok(vm)
    }
}

impl Instance {
    /// QEMU's pid.
    pub fn pid(&self) -> i32 {
        self.state.pid
    }

    /// What `state.json` says.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// Kills QEMU and returns `e`.
    fn fail(&mut self, e: VmError) -> VmError {
        let _ = self.child.kill();
        let _ = self.child.wait();
        e
    }

    fn send(&self, msg: &HostMessage) -> Result<(), VmError> {
        send_on(&self.control, msg)
    }

    /// The next message, `None` at end of stream (QEMU exited).
    fn receive(&mut self) -> Result<Option<GuestMessage>, VmError> {
        crate::vm::read_message(&mut self.reader, BOOT_TIMEOUT)
    }

    /// Listens on `signal.sock` on a thread: each `N\n` received becomes a signal
    /// for the command, until the instance is dropped.
    pub fn serve_signals(&self) -> Result<(), VmError> {
        let path = self.dir.join(SIGNAL_SOCKET);
        let listener =
            unix::bind(&path).map_err(|e| VmError::io(format!("binding {}", path.display()), e))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| VmError::io("making the signal socket non-blocking", e))?;
        let control = Arc::clone(&self.control);
        let stop = Arc::clone(&self.stop_signals);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let Ok((conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
                let mut line = String::new();
                let mut conn = BufReader::new(conn);
                let reply = match conn.read_line(&mut line).ok().map(|_| line.trim().parse()) {
                    Some(Ok(n)) => match send_on(&control, &HostMessage::Signal(n)) {
                        Ok(()) => "ok\n".to_owned(),
                        Err(e) => format!("{e}\n"),
                    },
                    _ => format!("bad request {line:?}\n"),
                };
                let _ = conn.get_mut().write_all(reply.as_bytes());
            }
        });
        Ok(())
    }

    /// A handle sending messages to the agent (terminal size), for another thread.
    pub fn control(&self) -> Control {
        Control(Arc::clone(&self.control))
    }

    /// Copies `input` to the command's stdin on a thread, as it comes; at its end
    /// (or a read error) shuts the connection for writing, which the command reads
    /// as end of file. Meant for a request with `stdin` set, once started.
    pub fn attach_stdin(&self, mut input: impl Read + Send + 'static) -> Result<(), VmError> {
        let mut to = self
            .stdin
            .try_clone()
            .map_err(|e| VmError::io("cloning the stdin socket", e))?;
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match input.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            // Half-closed only: QEMU reads what is left, then the end (a full close
            // is a hang-up to QEMU, which then drops the unread data).
            let _ = to.shutdown(std::net::Shutdown::Write);
        });
        Ok(())
    }

    /// Hands `request` to the agent and returns once the command runs (its pid in
    /// the guest).
    pub fn start(&mut self, request: RunRequest) -> Result<i32, VmError> {
        let t0 = Instant::now();
        self.send(&HostMessage::Run(request))?;
        loop {
            match self.receive() {
                Ok(Some(GuestMessage::Started { pid })) => {
                    timing("command started", t0);
                    return Ok(pid);
                }
                Ok(Some(GuestMessage::Ready)) => {}
                Ok(Some(GuestMessage::Exited(_))) => {
                    return Err(VmError::Protocol("exit reported before start".into()))
                }
                Ok(Some(GuestMessage::Error(e))) => {
                    self.reap();
                    return Err(VmError::Guest(e));
                }
                Ok(None) => return Err(self.died()),
                Err(e) => return Err(self.fail(e)),
            }
        }
    }

    /// Copies the command's stdout and stderr to `out` and `err` as they come,
    /// until the command ends and QEMU exits; returns how the command ended. A VM
    /// ended by [`kill`] reads as SIGKILL; any other early end is [`VmError::Died`].
    pub fn wait<O, E>(mut self, out: O, err: E) -> Result<ExitStatus, VmError>
    where
        O: Write + Send + 'static,
        E: Write + Send + 'static,
    {
        let copy = |from: &UnixStream, mut to: Box<dyn Write + Send>| {
            let from = from.try_clone();
            std::thread::spawn(move || {
                let Ok(mut from) = from else { return };
                let mut buf = [0u8; 8192];
                loop {
                    match from.read(&mut buf) {
                        Ok(0) => return,
                        Ok(n) => {
                            if to.write_all(&buf[..n]).and_then(|()| to.flush()).is_err() {
                                return;
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => return,
                    }
                }
            })
        };
        let copiers = [
            copy(&self.stdout, Box::new(out)),
            copy(&self.stderr, Box::new(err)),
        ];
        let _ = self.reader.get_ref().set_read_timeout(None);
        let t0 = Instant::now();
        let ended = loop {
            match self.receive() {
                Ok(Some(GuestMessage::Exited(status))) => {
                    timing("command exited", t0);
                    break Ok(status);
                }
                Ok(Some(GuestMessage::Started { .. } | GuestMessage::Ready)) => {}
                Ok(Some(GuestMessage::Error(e))) => break Err(VmError::Guest(e)),
                Ok(None) => break Err(self.died()),
                Err(e) => break Err(self.fail(e)),
            }
        };
        if ended.is_ok() {
            // The command's output is in our sockets already (a guest write returns
            // once QEMU has passed it on) and the overlay is discarded with the VM:
            // the guest's power-off is not worth waiting for.
            let _ = self.child.kill();
        }
        self.reap();
        timing("qemu reaped", t0);
        // QEMU is gone: the output sockets are at their end.
        let _ = self.stdout.shutdown(std::net::Shutdown::Both);
        let _ = self.stderr.shutdown(std::net::Shutdown::Both);
        for c in copiers {
            let _ = c.join();
        }
        match ended {
            Err(VmError::Died { .. }) if self.dir.join(KILLED_MARK).exists() => {
                Ok(ExitStatus::Signal(9))
            }
            other => other,
        }
    }

    /// Waits up to 10 s for QEMU to exit after the guest powered off, then kills it.
    fn reap(&mut self) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + Duration::from_secs(10);
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }

    /// The error for a VM that ended early, with QEMU's status and the console.
    fn died(&mut self) -> VmError {
        let status = self.reap();
        let console = std::fs::read(self.dir.join("console.log")).unwrap_or_default();
        let console = console_excerpt(&String::from_utf8_lossy(&console));
        let qemu = match status {
            Some(s) => format!("qemu exited ({s})"),
            None => "qemu ended".to_owned(),
        };
        VmError::Died {
            console: if console.is_empty() {
                qemu
            } else {
                format!("{qemu}\n{console}")
            },
        }
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.stop_signals.store(true, Ordering::Relaxed);
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn send_on(control: &Mutex<UnixStream>, msg: &HostMessage) -> Result<(), VmError> {
    let mut c = control.lock().unwrap_or_else(|e| e.into_inner());
    c.write_all(msg.to_line().as_bytes())
        .map_err(|e| VmError::Protocol(format!("sending: {e}")))
}

/// Sends `signal` to the command of the VM in `dir`, through the process that booted
/// it (see the module doc).
pub fn signal(dir: &Path, signal: i32) -> Result<(), VmError> {
    let path = dir.join(SIGNAL_SOCKET);
    let mut conn = unix::connect(&path)
        .map_err(|e| VmError::io(format!("connecting to {}", path.display()), e))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .and_then(|()| conn.write_all(format!("{signal}\n").as_bytes()))
        .map_err(|e| VmError::io(format!("writing to {}", path.display()), e))?;
    let mut reply = String::new();
    let _ = BufReader::new(conn).read_line(&mut reply);
    match reply.trim() {
        "ok" => Ok(()),
        "" => Err(VmError::Protocol("no reply to the signal request".into())),
        other => Err(VmError::Protocol(other.to_owned())),
    }
}

/// Ends the VM in `dir` at once (QMP `quit`, else SIGKILL) and waits up to 10 s for
/// QEMU to be gone. Its command reads as killed by SIGKILL.
pub fn kill(dir: &Path) -> Result<(), VmError> {
    let state = State::load(dir)?;
    if !state.alive() {
        return Ok(());
    }
    let _ = File::create(dir.join(KILLED_MARK));
    let quit = crate::Qmp::connect(&dir.join(qemu::QMP_SOCKET)).and_then(|mut q| q.quit());
    let until = Instant::now() + Duration::from_secs(10);
    let mut signalled = false;
    while state.alive() {
        if (quit.is_err() || Instant::now() + Duration::from_secs(8) > until) && !signalled {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(state.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            signalled = true;
        }
        if Instant::now() > until {
            return Err(VmError::Tool {
                what: format!("killing qemu (pid {})", state.pid),
                output: "still running after 10 s".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Pages of QEMU's memory merged by KSM (`/proc/PID/ksm_merging_pages`), if the
/// kernel reports it.
pub fn ksm_merging_pages(pid: i32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/ksm_merging_pages"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_tells_live_processes() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id() as i32;
        let (start_time, zombie) = proc_start(me).unwrap();
        assert!(!zombie);
        let state = State {
            pid: me,
            start_time,
            accel: "tcg".into(),
            memory_mib: 256,
            cpus: 1,
        };
        state.save(dir.path()).unwrap();
        let loaded = State::load(dir.path()).unwrap();
        assert_eq!(loaded, state);
        assert!(loaded.alive());
        let other = State {
            start_time: start_time + 1,
            ..state
        };
        assert!(!other.alive());
    }
}
