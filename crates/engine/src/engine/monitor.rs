//! The monitor: one process per detached container, like Podman's conmon.
//!
//! `berth run -d` and `berth start` re-exec the `berth` binary as
//! `berth --root R __monitor ID` ([`MONITOR_VERB`]) with its stdout a pipe (the
//! report channel) and hold the engine lock until the report arrives. The monitor
//! starts a new session, becomes child subreaper, connects fds 1 and 2 to pipes it
//! reads, creates and starts the container, writes `ok` or `error: ...` on the
//! report channel and closes it. Then it copies the container's output to
//! `ctr.log` ([`crate::logs`]), reaps the init, deletes the runtime's state and,
//! under the engine lock, records the exit (or removes the container with
//! `auto_remove`).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use nix::fcntl::OFlag;
use nix::unistd::{dup2_stderr, dup2_stdout, pipe2, setsid};

use super::{now, snapshot_key, unmount_if_mounted, Engine};
use crate::backend::Isolation;
use crate::error::{io_err, EngineError};
use crate::lock::EngineLock;
use crate::logs::{LogStream, LogWriter};
use crate::record::{Phase, Record};

/// The hidden verb of the `berth` binary that runs [`Engine::monitor`].
pub const MONITOR_VERB: &str = "__monitor";

/// The longest log entry; longer lines are split.
const MAX_LINE: u64 = 16 * 1024;

/// An error and its causes, joined with `: `.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn copy_lines(pipe: OwnedFd, stream: LogStream, log: Arc<Mutex<LogWriter>>) {
    let mut reader = BufReader::new(File::from(pipe));
    let mut line = Vec::new();
    loop {
        line.clear();
        match (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let mut w = log.lock().unwrap_or_else(|e| e.into_inner());
                let _ = w.write(stream, &line);
            }
        }
    }
}

impl Engine {
    /// Spawns the monitor of container `id` and waits for its report. The caller
    /// holds the engine lock.
    pub(super) fn spawn_monitor(&self, id: &str) -> Result<(), EngineError> {
        let exe = std::env::current_exe().map_err(io_err("finding", "/proc/self/exe"))?;
        let mut child = Command::new(&exe)
            .arg("--root")
            .arg(&self.root)
            .arg(MONITOR_VERB)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(io_err("starting the monitor", &exe))?;
        let mut report = String::new();
        if let Some(mut out) = child.stdout.take() {
            let _ = out.read_to_string(&mut report);
        }
        let report = report.trim();
        if report == "ok" {
            return Ok(()); // the monitor goes on; init reaps it after we exit
        }
        let message = match report.strip_prefix("error: ") {
            Some(m) => m.to_owned(),
            None => match child.wait() {
                Ok(status) => format!("the monitor died ({status})"),
                Err(e) => format!("the monitor died ({e})"),
            },
        };
        let _ = child.wait();
        Err(EngineError::Start {
            id: id.to_owned(),
            message,
        })
    }

    /// The monitor's whole life (see the module doc); its stdout is the report
    /// channel. Returns the container's exit code.
    pub fn monitor(&self, id: &str) -> Result<i32, EngineError> {
        let _ = setsid();
        // Hold no directory of the caller's busy.
        let _ = std::env::set_current_dir("/");
        let sys = |action: &'static str| {
            move |e: nix::Error| EngineError::Io {
                action,
                path: "(monitor)".into(),
                source: e.into(),
            }
        };
        let report_fd = std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .map_err(io_err("duplicating", "(stdout)"))?;
        let mut report = File::from(report_fd);
        let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("making a pipe"))?;
        let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(sys("making a pipe"))?;
        dup2_stdout(&out_w).map_err(sys("connecting stdout"))?;
        dup2_stderr(&err_w).map_err(sys("connecting stderr"))?;
        drop((out_w, err_w));
        let log_path = self.container_dir(id).join("ctr.log");
        let started = LogWriter::open(&log_path)
            .map_err(io_err("opening", &log_path))
            .and_then(|log| Ok((log, self.monitor_start(id)?)));
        let (log, (pid, isolation)) = match started {
            Ok(started) => {
                let _ = report.write_all(b"ok\n");
                started
            }
            Err(e) => {
                let _ = writeln!(report, "error: {}", chain(&e));
                return Err(e);
            }
        };
        drop(report);
        // Only the container holds the pipes' write ends now: EOF when it is gone.
        if let Ok(null) = File::options().write(true).open("/dev/null") {
            let _ = dup2_stdout(&null);
            let _ = dup2_stderr(&null);
        }
        let log = Arc::new(Mutex::new(log));
        let threads = [(out_r, LogStream::Stdout), (err_r, LogStream::Stderr)].map(|(fd, s)| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || copy_lines(fd, s, log))
        });
        let backend = self.backend(isolation);
        let code = backend.wait(id, pid).unwrap_or(255);
        // Whatever is left in its cgroup goes with the backend's state.
        let _ = backend.delete(id, true);
        for t in threads {
            let _ = t.join();
        }
        self.monitor_finish(id, code);
        Ok(code)
    }

    /// Mounts the root, creates and starts the container, records it running;
    /// returns the workload's pid and isolation level.
    fn monitor_start(&self, id: &str) -> Result<(i32, Isolation), EngineError> {
        let dir = self.container_dir(id);
        let mut record = Record::load(&dir)?;
        let backend_err = |action: &'static str| {
            move |source| EngineError::Backend {
                action,
                id: id.to_owned(),
                source: Box::new(source),
            }
        };
        let backend = self.backend(record.isolation);
        if backend.exists(id) {
            // State of an earlier run whose monitor died.
            backend
                .delete(id, true)
                .map_err(backend_err("deleting the old state of"))?;
        }
        self.mount_root(id)?;
        let pid = backend.create(id, &dir).map_err(backend_err("creating"))?;
        let before = record.clone();
        record.phase = Phase::Running;
        record.pid = Some(std::process::id());
        record.started = Some(now());
        record.exit_code = None;
        record.finished = None;
        let started = record
            .save(&dir)
            .and_then(|()| backend.start(id).map_err(backend_err("starting")));
        if let Err(e) = started {
            let _ = backend.delete(id, true);
            let _ = before.save(&dir);
            return Err(e);
        }
        Ok((pid, record.isolation))
    }

    /// (Re)mounts the container's snapshot on its rootfs.
    pub(super) fn mount_root(&self, id: &str) -> Result<(), EngineError> {
        let rootfs = self.container_dir(id).join("rootfs");
        unmount_if_mounted(&rootfs)?;
        let key = snapshot_key(id);
        let mounts = self
            .snapshots
            .mounts(&key)
            .map_err(|source| EngineError::Snapshot {
                action: format!("finding the root of container {id}"),
                source,
            })?;
        berth_snapshot::mount_all(&mounts, &rootfs).map_err(|source| EngineError::Mount {
            action: format!("mounting the root of container {id}"),
            source,
        })
    }

    /// Records the exit, or removes the container when it asked for that.
    fn monitor_finish(&self, id: &str, code: i32) {
        let _lock = EngineLock::acquire(&self.root);
        let dir = self.container_dir(id);
        let Ok(mut record) = Record::load(&dir) else {
            return; // removed meanwhile (`rm -f`)
        };
        if record.auto_remove {
            if let Err(e) = self.cleanup(id) {
                tracing::warn!("removing container {id}: {e}");
            }
            return;
        }
        let _ = unmount_if_mounted(&dir.join("rootfs"));
        record.phase = Phase::Exited;
        record.exit_code = Some(code);
        record.finished = Some(now());
        record.pid = None;
        if let Err(e) = record.save(&dir) {
            tracing::warn!("recording the exit of container {id}: {e}");
        }
    }
}
