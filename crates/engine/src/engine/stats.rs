//! `top` and `stats`: a running container's processes (the backend's pids read
//! from /proc) and its resource use (the backend's [`Usage`], sampled twice for
//! the CPU share).

use std::time::{Duration, Instant};

use serde::Serialize;

use super::Engine;
use crate::backend::Usage;
use crate::error::EngineError;
use crate::record::{Phase, Record};

/// A line of `berth top`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcessInfo {
    /// The real uid.
    pub uid: u32,
    /// The host pid.
    pub pid: i32,
    /// The parent's host pid.
    pub ppid: i32,
    /// The state letter (R, S, D, Z…).
    pub state: char,
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// The command line (or `[comm]` when it has none).
    pub command: String,
}

/// A line of `berth stats`.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerStats {
    /// The container's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// CPU used over the sampling interval, in percent of one CPU.
    pub cpu_percent: f64,
    /// The backend's figures at the end of the interval.
    #[serde(flatten)]
    pub usage: Usage,
}

/// What /proc says about `pid`; `None` if it is gone.
pub fn process_info(pid: i32) -> Option<ProcessInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|u| u.parse().ok())
        .unwrap_or(0);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let command = if cmdline.is_empty() {
        format!("[{comm}]")
    } else {
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        args.join(" ")
    };
    Some(ProcessInfo {
        uid,
        pid,
        // Fields after the command: state, ppid, …, utime (14), stime (15).
        ppid: fields.get(1)?.parse().ok()?,
        state: fields.first()?.chars().next()?,
        cpu_ticks: num(11)? + num(12)?,
        command,
    })
}

impl Engine {
    fn running(&self, name_or_id: &str, action: &'static str) -> Result<Record, EngineError> {
        let record = self.find(name_or_id)?;
        if self.status(&record) != Phase::Running {
            return Err(EngineError::BadState {
                name: record.name,
                state: "not running",
                action,
            });
        }
        Ok(record)
    }

    fn usage_of(&self, record: &Record) -> Result<Usage, EngineError> {
        self.backend(record.isolation)
            .usage(&record.id)
            .map_err(|source| EngineError::Backend {
                action: "reading the resource use of",
                id: record.id.clone(),
                source: Box::new(source),
            })
    }

    /// The processes of a running container.
    pub fn top(&self, name_or_id: &str) -> Result<Vec<ProcessInfo>, EngineError> {
        let record = self.running(name_or_id, "list its processes")?;
        let pids = self
            .backend(record.isolation)
            .pids(&record.id)
            .map_err(|source| EngineError::Backend {
                action: "listing the processes of",
                id: record.id.clone(),
                source: Box::new(source),
            })?;
        Ok(pids.into_iter().filter_map(process_info).collect())
    }

    /// The resource use of running containers over `interval`.
    pub fn stats(
        &self,
        names: &[String],
        interval: Duration,
    ) -> Result<Vec<ContainerStats>, EngineError> {
        let records = names
            .iter()
            .map(|n| self.running(n, "show its resource use"))
            .collect::<Result<Vec<_>, _>>()?;
        let before: Vec<_> = records.iter().map(|r| self.usage_of(r)).collect();
        let start = Instant::now();
        std::thread::sleep(interval);
        let mut out = Vec::new();
        for (record, before) in records.into_iter().zip(before) {
            let usage = self.usage_of(&record)?;
            let wall = start.elapsed().as_nanos().max(1) as f64;
            let used = usage.cpu_ns.saturating_sub(before?.cpu_ns) as f64;
            out.push(ContainerStats {
                id: record.id,
                name: record.name,
                cpu_percent: used * 100.0 / wall,
                usage,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn our_own_process_reads_back() {
        let me = super::process_info(std::process::id() as i32).unwrap();
        assert_eq!(me.pid, std::process::id() as i32);
        assert_eq!(me.uid, nix::unistd::getuid().as_raw());
        assert!(!me.command.is_empty());
        assert!(super::process_info(i32::MAX).is_none());
    }
}
