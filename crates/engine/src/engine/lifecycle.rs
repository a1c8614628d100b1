//! Detached containers after `create`: run -d, start, stop, kill, restart, wait,
//! logs. Each start goes through a monitor ([`super::monitor`]); the monitor
//! records the exit, so the others poll the record.

use std::path::Path;
use std::time::{Duration, Instant};

use super::Engine;
use crate::error::EngineError;
use crate::lock::EngineLock;
use crate::logs::{LogEntry, LogReader, LogsOptions};
use crate::record::{Phase, Record};
use crate::RunOptions;

const POLL: Duration = Duration::from_millis(50);

/// Whether `pid` is a live process (a zombie is not).
pub(crate) fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command's closing parenthesis.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

fn state_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Created => "created",
        Phase::Running => "running",
        Phase::Exited => "exited",
    }
}

/// Parses `TERM`, `SIGTERM` or `15`.
pub fn parse_signal(text: &str) -> Result<i32, EngineError> {
    if let Ok(n) = text.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| EngineError::Invalid(format!("unknown signal {text:?}")))
}

impl Engine {
    /// Creates a container and starts it under a monitor; returns once it runs.
    /// If it cannot start, nothing of it is left.
    pub fn run_detached(&self, opts: &RunOptions) -> Result<Record, EngineError> {
        let record = self.create(opts)?;
        let _lock = EngineLock::acquire(&self.root)?;
        if let Err(e) = self.spawn_monitor(&record.id) {
            if let Err(c) = self.cleanup(&record.id) {
                tracing::warn!("cleaning up container {}: {c}", record.id);
            }
            return Err(e);
        }
        self.find(&record.id)
    }

    /// Starts a created or exited container under a monitor, on the same root.
    pub fn start(&self, name_or_id: &str) -> Result<Record, EngineError> {
        let _lock = EngineLock::acquire(&self.root)?;
        let record = self.find(name_or_id)?;
        let status = self.status(&record);
        if status == Phase::Running {
            return Err(EngineError::BadState {
                name: record.name,
                state: state_name(status),
                action: "start",
            });
        }
        self.spawn_monitor(&record.id)?;
        self.find(&record.id)
    }

    /// Sends `signal` to a running container's processes.
    pub fn kill(&self, name_or_id: &str, signal: i32) -> Result<Record, EngineError> {
        let record = self.find(name_or_id)?;
        let status = self.status(&record);
        if status != Phase::Running {
            return Err(EngineError::BadState {
                name: record.name,
                state: state_name(status),
                action: "kill",
            });
        }
        self.backend(record.isolation)
            .kill(&record.id, signal)
            .map_err(|source| EngineError::Backend {
                action: "signalling",
                id: record.id.clone(),
                source: Box::new(source),
            })?;
        Ok(record)
    }

    /// SIGTERM, then SIGKILL after `timeout`; returns once it has exited. A
    /// container that is not running is left as it is.
    pub fn stop(&self, name_or_id: &str, timeout: Duration) -> Result<Record, EngineError> {
        let record = self.find(name_or_id)?;
        if self.status(&record) != Phase::Running {
            return Ok(record);
        }
        let backend = self.backend(record.isolation);
        let _ = backend.kill(&record.id, nix::libc::SIGTERM);
        if let Some(r) = self.wait_until_stopped(&record.id, Some(timeout))? {
            return Ok(r);
        }
        let _ = backend.kill(&record.id, nix::libc::SIGKILL);
        match self.wait_until_stopped(&record.id, Some(Duration::from_secs(10)))? {
            Some(r) => Ok(r),
            None => Err(EngineError::BadState {
                name: record.name,
                state: "running",
                action: "stop it within 10 s of SIGKILL",
            }),
        }
    }

    /// Stops (see [`Engine::stop`]) and starts again.
    pub fn restart(&self, name_or_id: &str, timeout: Duration) -> Result<Record, EngineError> {
        let record = self.stop(name_or_id, timeout)?;
        self.start(&record.id)
    }

    /// Waits for the container to exit; returns its exit code.
    pub fn wait(&self, name_or_id: &str) -> Result<i32, EngineError> {
        let record = self.find(name_or_id)?;
        let Some(done) = self.wait_until_stopped(&record.id, None)? else {
            unreachable!("no timeout")
        };
        done.exit_code.ok_or(EngineError::BadState {
            name: record.name,
            state: state_name(done.phase),
            action: "tell its exit code",
        })
    }

    /// Polls the record until the container no longer runs; `None` on timeout.
    /// A record removed meanwhile (`--rm`) reads as its last state, exited.
    fn wait_until_stopped(
        &self,
        id: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<Record>, EngineError> {
        let dir = self.container_dir(id);
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut last = Record::load(&dir)?;
        loop {
            match Record::load(&dir) {
                Ok(r) => last = r,
                Err(_) if !dir.exists() => {
                    last.phase = Phase::Exited;
                    return Ok(Some(last));
                }
                Err(_) => {} // being rewritten
            }
            let status = self.status(&last);
            if status != Phase::Running {
                // The monitor may have recorded the exit and gone between our read
                // and our look at it: the record as it is now says how it ended.
                if last.phase == Phase::Running {
                    if let Ok(now) = Record::load(&dir) {
                        if now.phase != Phase::Running {
                            return Ok(Some(now));
                        }
                    }
                }
                last.phase = status;
                return Ok(Some(last));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(None);
            }
            std::thread::sleep(POLL);
        }
    }

    /// The container's log entries, given to `sink` in order; with `follow` until
    /// the container exits.
    pub fn logs(
        &self,
        name_or_id: &str,
        opts: LogsOptions,
        sink: &mut dyn FnMut(&LogEntry) -> std::io::Result<()>,
    ) -> Result<(), EngineError> {
        let record = self.find(name_or_id)?;
        let dir = self.container_dir(&record.id);
        let path = dir.join("ctr.log");
        let mut reader = LogReader::new();
        let read = |reader: &mut LogReader| {
            reader.read_new(&path).map_err(|source| EngineError::Io {
                action: "reading",
                path: path.clone(),
                source,
            })
        };
        let mut entries = read(&mut reader)?;
        if let Some(n) = opts.tail {
            entries.drain(..entries.len().saturating_sub(n));
        }
        let mut emit = |entries: Vec<LogEntry>| -> Result<(), EngineError> {
            for e in &entries {
                sink(e).map_err(|source| EngineError::Io {
                    action: "writing logs of",
                    path: path.clone(),
                    source,
                })?;
            }
            Ok(())
        };
        emit(entries)?;
        if !opts.follow {
            return Ok(());
        }
        loop {
            let running = match Record::load(&dir) {
                Ok(r) => self.status(&r) == Phase::Running,
                Err(_) => false,
            };
            emit(read(&mut reader)?)?;
            if !running || !Path::new(&dir).exists() {
                return Ok(());
            }
            std::thread::sleep(POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("TERM").unwrap(), 15);
        assert_eq!(parse_signal("sigkill").unwrap(), 9);
        assert_eq!(parse_signal("USR1").unwrap(), nix::libc::SIGUSR1);
        assert_eq!(parse_signal("2").unwrap(), 2);
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("0").is_err());
    }

    #[test]
    fn our_own_process_is_alive_and_a_free_pid_is_not() {
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(u32::MAX - 1));
    }
}
