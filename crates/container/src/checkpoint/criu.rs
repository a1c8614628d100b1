//! The `criu` binary, driven by its command line: finding it, `criu check`, building
//! the `dump` / `pre-dump` / `restore` argument lists, and running them with their log
//! in the work directory (whose tail goes into the error when CRIU fails).

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::CheckpointError;

/// How many lines of CRIU's log an error quotes.
const LOG_TAIL_LINES: usize = 15;

/// runc's `--manage-cgroups-mode`, passed on as CRIU's `--manage-cgroups`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CgroupsMode {
    #[default]
    Soft,
    Full,
    Strict,
    Ignore,
}

impl CgroupsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Soft => "soft",
            Self::Full => "full",
            Self::Strict => "strict",
            Self::Ignore => "ignore",
        }
    }
}

impl std::str::FromStr for CgroupsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "soft" => Ok(Self::Soft),
            "full" => Ok(Self::Full),
            "strict" => Ok(Self::Strict),
            "ignore" => Ok(Self::Ignore),
            _ => Err(format!(
                "manage-cgroups mode {s:?}: expected soft, full, strict or ignore"
            )),
        }
    }
}

/// The CRIU verb being run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Dump,
    PreDump,
    Restore,
}

impl Action {
    pub fn verb(self) -> &'static str {
        match self {
            Self::Dump => "dump",
            Self::PreDump => "pre-dump",
            Self::Restore => "restore",
        }
    }
    /// The log file CRIU writes in the work directory (runc's names).
    pub fn log_name(self) -> &'static str {
        match self {
            Self::Dump | Self::PreDump => "dump.log",
            Self::Restore => "restore.log",
        }
    }
}

/// Options shared by dump and restore (runc's flags of the same names).
#[derive(Debug, Clone, Default)]
pub struct CommonFlags {
    pub tcp_established: bool,
    pub ext_unix_sk: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub cgroups_mode: CgroupsMode,
}

/// Everything a `criu dump` / `pre-dump` needs.
#[derive(Debug, Clone)]
pub struct DumpPlan {
    pub pre_dump: bool,
    pub pid: i32,
    pub images: PathBuf,
    pub work: PathBuf,
    pub root: PathBuf,
    pub leave_running: bool,
    /// Relative to `images` (as CRIU wants), or absolute.
    pub parent: Option<PathBuf>,
    /// Mount points inside the container dumped as external (key = the mount point).
    pub external_mounts: Vec<String>,
    /// Files outside the container (its stdio) dumped as external: `file[mnt:ino]`.
    pub external_files: Vec<String>,
    pub flags: CommonFlags,
}

/// Everything a `criu restore` needs.
#[derive(Debug, Clone)]
pub struct RestorePlan {
    pub images: PathBuf,
    pub work: PathBuf,
    pub root: PathBuf,
    pub pid_file: PathBuf,
    /// Container cgroup the restored tree goes into (`--cgroup-root`).
    pub cgroup_root: String,
    /// (key = mount point at dump, host source now).
    pub external_mounts: Vec<(String, PathBuf)>,
    /// (our fd, key of the external file it replaces): `--inherit-fd fd[N]:KEY`.
    pub inherit_fds: Vec<(i32, String)>,
    pub flags: CommonFlags,
}

fn push_common(args: &mut Vec<OsString>, flags: &CommonFlags, action: Action) {
    args.push(format!("--manage-cgroups={}", flags.cgroups_mode.as_str()).into());
    // pre-dump only copies memory: sockets, jobs and locks are the final dump's business.
    if action == Action::PreDump {
        return;
    }
    for (on, flag) in [
        (flags.tcp_established, "--tcp-established"),
        (flags.ext_unix_sk, "--ext-unix-sk"),
        (flags.shell_job, "--shell-job"),
        (flags.file_locks, "--file-locks"),
    ] {
        if on {
            args.push(flag.into());
        }
    }
}

fn push_paths(args: &mut Vec<OsString>, images: &Path, work: &Path, root: &Path, action: Action) {
    args.push("--images-dir".into());
    args.push(images.into());
    args.push("--work-dir".into());
    args.push(work.into());
    args.push("--root".into());
    args.push(root.into());
    args.push("--log-file".into());
    args.push(action.log_name().into());
    args.push("-v4".into());
}

impl DumpPlan {
    pub fn action(&self) -> Action {
        if self.pre_dump {
            Action::PreDump
        } else {
            Action::Dump
        }
    }

    /// `criu dump ...` (or `pre-dump`) arguments, without the binary.
    pub fn args(&self) -> Vec<OsString> {
        let action = self.action();
        let mut args: Vec<OsString> = vec![action.verb().into()];
        args.push("--tree".into());
        args.push(self.pid.to_string().into());
        push_paths(&mut args, &self.images, &self.work, &self.root, action);
        push_common(&mut args, &self.flags, action);
        if self.pre_dump {
            // A pre-dump always leaves the tree running and tracks dirty memory so the
            // next dump only writes what changed.
            args.push("--track-mem".into());
        } else if self.leave_running {
            args.push("--leave-running".into());
        }
        if let Some(parent) = &self.parent {
            args.push("--prev-images-dir".into());
            args.push(parent.into());
            args.push("--track-mem".into());
        }
        for dest in &self.external_mounts {
            args.push("--external".into());
            args.push(format!("mnt[{dest}]:{dest}").into());
        }
        for key in &self.external_files {
            args.push("--external".into());
            args.push(key.into());
        }
        args
    }
}

impl RestorePlan {
    /// `criu restore ...` arguments, without the binary.
    pub fn args(&self) -> Vec<OsString> {
        let action = Action::Restore;
        let mut args: Vec<OsString> = vec![action.verb().into()];
        push_paths(&mut args, &self.images, &self.work, &self.root, action);
        push_common(&mut args, &self.flags, action);
        args.push("--restore-detached".into());
        args.push("--pidfile".into());
        args.push(self.pid_file.clone().into());
        if self.flags.cgroups_mode != CgroupsMode::Ignore {
            args.push("--cgroup-root".into());
            args.push(self.cgroup_root.clone().into());
        }
        for (key, source) in &self.external_mounts {
            let mut spec = OsString::from(format!("mnt[{key}]:"));
            spec.push(source);
            args.push("--external".into());
            args.push(spec);
        }
        for (fd, key) in &self.inherit_fds {
            args.push("--inherit-fd".into());
            args.push(format!("fd[{fd}]:{key}").into());
        }
        args
    }
}

/// The criu binary to run.
#[derive(Debug, Clone)]
pub struct Criu {
    pub binary: PathBuf,
}

impl Criu {
    /// `explicit` (runc's global `--criu`), else `criu` on `$PATH`; then `criu check`.
    pub fn find_and_check(explicit: Option<&Path>) -> Result<Self, CheckpointError> {
        let binary = match explicit {
            Some(p) if p.components().count() > 1 => p.to_path_buf(),
            Some(name) => search_path(name).ok_or_else(|| CheckpointError::CriuMissing {
                name: name.to_path_buf(),
            })?,
            None => search_path(Path::new("criu")).ok_or_else(|| CheckpointError::CriuMissing {
                name: PathBuf::from("criu"),
            })?,
        };
        if !binary.is_file() {
            return Err(CheckpointError::CriuMissing { name: binary });
        }
        let criu = Self { binary };
        criu.check()?;
        Ok(criu)
    }

    /// `criu check --feature NAME`: whether this kernel and criu have that feature.
    pub fn has_feature(&self, name: &str) -> bool {
        Command::new(&self.binary)
            .args(["check", "--feature", name])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// `criu check`: the kernel and this criu can checkpoint at all.
    fn check(&self) -> Result<(), CheckpointError> {
        let out = Command::new(&self.binary)
            .arg("check")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| CheckpointError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        if out.status.success() {
            return Ok(());
        }
        let mut text = String::from_utf8_lossy(&out.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stdout));
        Err(CheckpointError::CriuCheck {
            binary: self.binary.clone(),
            output: last_lines(&text, LOG_TAIL_LINES),
        })
    }

    /// Run `criu ARGS` with our stdout and stderr (and, for a restore, our stdin: the
    /// restored process inherits them through `--inherit-fd`); on failure the error
    /// quotes the tail of its log in `work`.
    pub fn run(
        &self,
        action: Action,
        args: &[OsString],
        work: &Path,
    ) -> Result<(), CheckpointError> {
        tracing::debug!(
            "running {} {}",
            self.binary.display(),
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        let stdin = match action {
            Action::Restore => Stdio::inherit(),
            Action::Dump | Action::PreDump => Stdio::null(),
        };
        let status = Command::new(&self.binary)
            .args(args)
            .stdin(stdin)
            .status()
            .map_err(|source| CheckpointError::Spawn {
                binary: self.binary.clone(),
                source,
            })?;
        if status.success() {
            return Ok(());
        }
        let log = work.join(action.log_name());
        let tail = std::fs::read_to_string(&log)
            .map(|t| last_errors(&t))
            .unwrap_or_else(|e| format!("(no log: {e})"));
        Err(CheckpointError::Criu {
            action: action.verb(),
            status: status.to_string(),
            log,
            tail,
        })
    }
}

fn search_path(name: &Path) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The log's error lines (CRIU marks them `Error (`), else its last lines.
fn last_errors(log: &str) -> String {
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("Error (")).collect();
    if errors.is_empty() {
        return last_lines(log, LOG_TAIL_LINES);
    }
    errors[errors.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(args: &[OsString]) -> Vec<String> {
        args.iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn dump_plan() -> DumpPlan {
        DumpPlan {
            pre_dump: false,
            pid: 42,
            images: "/img".into(),
            work: "/work".into(),
            root: "/rootfs".into(),
            leave_running: false,
            parent: None,
            external_mounts: vec!["/data".into()],
            external_files: vec!["file[18:2a]".into()],
            flags: CommonFlags::default(),
        }
    }

    #[test]
    fn dump_declares_bind_mounts_external_and_kills_by_default() {
        let args = strings(&dump_plan().args());
        assert_eq!(args[0], "dump");
        assert!(args.windows(2).any(|w| w == ["--tree", "42"]));
        assert!(args.windows(2).any(|w| w == ["--root", "/rootfs"]));
        assert!(args
            .windows(2)
            .any(|w| w == ["--external", "mnt[/data]:/data"]));
        assert!(args.contains(&"--manage-cgroups=soft".to_string()));
        assert!(!args.contains(&"--leave-running".to_string()));
        assert!(!args.contains(&"--track-mem".to_string()));
    }

    #[test]
    fn pre_dump_tracks_memory_and_final_dump_names_its_parent() {
        let mut plan = dump_plan();
        plan.pre_dump = true;
        plan.flags.tcp_established = true;
        let args = strings(&plan.args());
        assert_eq!(args[0], "pre-dump");
        assert!(args.contains(&"--track-mem".to_string()));
        assert!(!args.contains(&"--tcp-established".to_string()));
        assert!(!args.contains(&"--leave-running".to_string()));

        let mut plan = dump_plan();
        plan.parent = Some("../pre".into());
        plan.leave_running = true;
        let args = strings(&plan.args());
        assert!(args
            .windows(2)
            .any(|w| w == ["--prev-images-dir", "../pre"]));
        assert!(args.contains(&"--track-mem".to_string()));
        assert!(args.contains(&"--leave-running".to_string()));
    }

    #[test]
    fn restore_maps_external_mounts_to_their_new_sources() {
        let plan = RestorePlan {
            images: "/img".into(),
            work: "/work".into(),
            root: "/state/criu-root".into(),
            pid_file: "/work/restore.pid".into(),
            cgroup_root: "/berth/c".into(),
            external_mounts: vec![("/data".into(), "/host/data".into())],
            inherit_fds: vec![(1, "pipe:[77]".into())],
            flags: CommonFlags {
                file_locks: true,
                ..CommonFlags::default()
            },
        };
        let args = strings(&plan.args());
        assert_eq!(args[0], "restore");
        assert!(args.contains(&"--restore-detached".to_string()));
        assert!(args.contains(&"--file-locks".to_string()));
        assert!(args
            .windows(2)
            .any(|w| w == ["--external", "mnt[/data]:/host/data"]));
        assert!(args.windows(2).any(|w| w == ["--cgroup-root", "/berth/c"]));
        assert!(args
            .windows(2)
            .any(|w| w == ["--pidfile", "/work/restore.pid"]));
    }

    #[test]
    fn error_tail_prefers_error_lines() {
        let log = "(0.1) a\n(0.2) Error (criu/mount.c:1): mnt: boom\n(0.3) b\n";
        assert_eq!(last_errors(log), "(0.2) Error (criu/mount.c:1): mnt: boom");
        assert_eq!(last_errors("x\ny\n"), "x\ny");
    }

    #[test]
    fn cgroups_mode_parses_runc_names() {
        assert_eq!("full".parse::<CgroupsMode>().unwrap(), CgroupsMode::Full);
        assert!("bogus".parse::<CgroupsMode>().is_err());
    }
}
