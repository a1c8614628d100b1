//! `exec`: run another process in a created or running container, in all its
//! namespaces and its cgroup, with the container's process settings unless overridden.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::container::{bad_status, hook_state_json, load_saved_spec, Runtime, Status};
use crate::create::{compile_seccomp, open_clone_into};
use crate::error::ContainerError;
use crate::namespaces::Namespaces;
use crate::process::exec::{self, ExecConfig};
use crate::process::parent::forward_notify_fd;
use crate::run::{block_forwarded, console_pair, receive_fd, supervise};
use crate::state::{self, ContainerDir};
use crate::{spec, sys};

/// Changes to the container's process for an inline `exec` (runc's flags).
#[derive(Debug, Clone, Default)]
pub struct ExecOverrides {
    pub args: Vec<String>,
    /// `KEY=VALUE`, replacing the container's value of KEY.
    pub env: Vec<String>,
    pub cwd: Option<PathBuf>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub additional_gids: Vec<u32>,
    /// Capability names ("CAP_NET_ADMIN") added to the process's sets.
    pub caps: Vec<String>,
    pub no_new_privs: bool,
    pub tty: bool,
}

/// Where the exec'd process comes from.
#[derive(Debug, Clone)]
pub enum ExecProcess {
    /// A process.json (`-p`), used as is.
    File(PathBuf),
    /// The container's process with these changes.
    Inline(ExecOverrides),
}

/// Options for `exec`.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub process: ExecProcess,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
    pub preserve_fds: u32,
    pub detach: bool,
}

/// The container's process with `o` applied, as runc's exec flags do.
pub fn apply_overrides(base: &Process, o: &ExecOverrides) -> Result<Process, ContainerError> {
    let mut p = base.clone();
    p.set_args(Some(o.args.clone()));
    p.set_terminal(Some(o.tty));
    p.set_console_size(None);
    let mut env = p.env().clone().unwrap_or_default();
    for kv in &o.env {
        let key = kv.split('=').next().unwrap_or_default();
        env.retain(|e| e.split('=').next() != Some(key));
        env.push(kv.clone());
    }
    p.set_env(Some(env));
    if let Some(cwd) = &o.cwd {
        p.set_cwd(cwd.clone());
    }
    let mut user = p.user().clone();
    if let Some(uid) = o.uid {
        user.set_uid(uid);
    }
    if let Some(gid) = o.gid {
        user.set_gid(gid);
    }
    if !o.additional_gids.is_empty() {
        user.set_additional_gids(Some(o.additional_gids.clone()));
    }
    p.set_user(user);
    if !o.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let has_inheritable = caps.inheritable().is_some();
        for name in &o.caps {
            let cap: oci_spec::runtime::Capability = serde_json::from_value(name.as_str().into())
                .map_err(|_| {
                ContainerError::Unsupported(format!("--cap {name}: unknown capability"))
            })?;
            let add = |set: Option<oci_spec::runtime::Capabilities>| {
                let mut set = set.unwrap_or_default();
                set.insert(cap);
                Some(set)
            };
            caps.set_bounding(add(caps.bounding().clone()));
            caps.set_effective(add(caps.effective().clone()));
            caps.set_permitted(add(caps.permitted().clone()));
            // Ambient needs inheritable, which --cap does not set (runc's rule).
            if has_inheritable {
                caps.set_ambient(add(caps.ambient().clone()));
            }
        }
        p.set_capabilities(Some(caps));
    }
    if o.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

fn read_process_file(path: &Path) -> Result<Process, ContainerError> {
    let raw = std::fs::read(path).map_err(|source| ContainerError::Io {
        action: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    let mut de = serde_json::Deserializer::from_slice(&raw);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        ContainerError::Spec(spec::SpecError::Parse {
            path: path.to_path_buf(),
            field: e.path().to_string(),
            message: e.into_inner().to_string(),
        })
    })
}

fn check(p: &Process) -> Result<(), ContainerError> {
    if p.args()
        .as_ref()
        .is_none_or(|a| a.is_empty() || a[0].is_empty())
    {
        return Err(ContainerError::Unsupported("exec: no command given".into()));
    }
    if !p.cwd().is_absolute() {
        return Err(ContainerError::Unsupported(format!(
            "exec: cwd {:?} is not an absolute path",
            p.cwd()
        )));
    }
    Ok(())
}

/// The init's namespaces to join, user first: every kind the container has.
fn open_init_namespaces(
    spec: &Spec,
    pid: i32,
) -> Result<Vec<(LinuxNamespaceType, PathBuf, File)>, ContainerError> {
    let ns = Namespaces::from_spec(spec);
    let mut kinds: Vec<LinuxNamespaceType> = ns
        .create
        .iter()
        .copied()
        .chain(ns.join.iter().map(|(k, _)| *k))
        .collect();
    kinds.sort_by_key(|k| *k != LinuxNamespaceType::User);
    kinds
        .into_iter()
        .map(|kind| {
            let path = PathBuf::from(format!("/proc/{pid}/ns/{}", proc_name(kind)));
            File::open(&path)
                .map(|f| (kind, path.clone(), f))
                .map_err(|source| ContainerError::Io {
                    action: "opening namespace",
                    path,
                    source,
                })
        })
        .collect()
}

fn proc_name(kind: LinuxNamespaceType) -> &'static str {
    match kind {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

impl Runtime {
    /// Run a process in the container; foreground returns its exit code (128+N for
    /// signal N), detached returns 0 once it runs.
    pub fn exec(&self, id: &str, opts: &ExecOptions) -> Result<i32, ContainerError> {
        crate::id::validate(id)?;
        if !opts.detach {
            sys::set_child_subreaper().map_err(|e| ContainerError::sys("becoming subreaper", e))?;
        }
        let (pid, relay) = self.spawn_exec(id, opts)?;
        if opts.detach {
            return Ok(0);
        }
        let master = relay.as_ref().map(receive_fd).transpose()?;
        let set = block_forwarded()?;
        supervise(pid, &set, master.as_ref())
    }

    /// Everything under the container's lock: returns the pid and, when the runtime
    /// relays the terminal itself, its end of the console socketpair.
    fn spawn_exec(
        &self,
        id: &str,
        opts: &ExecOptions,
    ) -> Result<(i32, Option<UnixStream>), ContainerError> {
        let dir = ContainerDir::open(&self.root, id)?;
        let st = dir.load()?;
        let status = self.status_of(&dir, &st);
        if !matches!(status, Status::Created | Status::Running) {
            return Err(bad_status(
                id,
                status,
                "can only exec in a created or running container",
            ));
        }
        let spec = load_saved_spec(&dir)?;
        let process = match &opts.process {
            ExecProcess::File(path) => read_process_file(path)?,
            ExecProcess::Inline(o) => {
                let base = spec.process().clone().unwrap_or_default();
                apply_overrides(&base, o)?
            }
        };
        check(&process)?;
        let terminal = process.terminal().unwrap_or(false);
        let (console, relay) = match (&opts.console_socket, terminal, opts.detach) {
            (Some(path), true, _) => (Some(connect(path)?), None),
            (None, true, false) => {
                let (ours, theirs) = console_pair()?;
                (
                    Some(
                        theirs
                            .try_clone()
                            .map_err(|e| ContainerError::Init(e.to_string()))?,
                    ),
                    Some(ours),
                )
            }
            (None, true, true) => {
                return Err(ContainerError::Unsupported(
                    "exec --tty --detach needs --console-socket".into(),
                ))
            }
            (Some(_), false, _) => {
                return Err(ContainerError::Unsupported(
                    "--console-socket given without --tty".into(),
                ))
            }
            (None, false, _) => (None, None),
        };
        let joins = open_init_namespaces(&spec, st.pid)?;
        let root_path = PathBuf::from(format!("/proc/{}/root", st.pid));
        let root = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(&root_path)
            .map_err(|source| ContainerError::Io {
                action: "opening the container's root",
                path: root_path,
                source,
            })?;
        let cgroup = berth_cgroups::manager(&st.cgroup_path)?;
        let seccomp = std::cell::RefCell::new(compile_seccomp(&spec)?);
        let cfg = ExecConfig {
            process: &process,
            joins: &joins,
            root: &root,
            console_socket: console.as_ref().map(|c| c.as_raw_fd()),
            preserve_fds: opts.preserve_fds,
            lock_fd: dir.dir_file().as_raw_fd(),
            in_user_ns: joins.iter().any(|(k, _, _)| *k == LinuxNamespaceType::User),
            seccomp: &seccomp,
        };
        let forward = |pid: i32, fd: i32| {
            let state = hook_state_json(&st, Status::Running);
            forward_notify_fd(&spec, pid, fd, &state)
        };
        let clone_into = open_clone_into(&*cgroup)?;
        let pid = exec::spawn(
            &cfg,
            clone_into.as_ref().map(std::os::fd::AsFd::as_fd),
            &|p| Ok(cgroup.add_task(p)?),
            &forward,
        )?;
        if let Some(pid_file) = &opts.pid_file {
            state::write_atomic(pid_file, pid.to_string().as_bytes(), 0o644)?;
        }
        Ok((pid, relay))
    }
}

fn connect(path: &Path) -> Result<OwnedFd, ContainerError> {
    UnixStream::connect(path)
        .map(OwnedFd::from)
        .map_err(|source| ContainerError::Io {
            action: "connecting to console socket",
            path: path.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Process {
        serde_json::from_str(
            r#"{"cwd":"/","user":{"uid":0,"gid":0},"args":["sh"],
                "env":["PATH=/bin","A=1","B=2"],
                "capabilities":{"bounding":["CAP_KILL"],"effective":["CAP_KILL"],
                "permitted":["CAP_KILL"]}}"#,
        )
        .unwrap()
    }

    #[test]
    fn overrides_replace_args_env_user_and_add_caps() {
        let o = ExecOverrides {
            args: vec!["ls".into(), "-l".into()],
            env: vec!["A=9".into(), "C=3".into()],
            cwd: Some("/tmp".into()),
            uid: Some(1000),
            gid: Some(100),
            additional_gids: vec![5],
            caps: vec!["CAP_NET_ADMIN".into()],
            no_new_privs: true,
            tty: true,
        };
        let p = apply_overrides(&base(), &o).unwrap();
        assert_eq!(p.args().as_deref().unwrap(), ["ls", "-l"]);
        assert_eq!(
            p.env().as_deref().unwrap(),
            ["PATH=/bin", "B=2", "A=9", "C=3"]
        );
        assert_eq!(p.cwd(), Path::new("/tmp"));
        assert_eq!((p.user().uid(), p.user().gid()), (1000, 100));
        assert_eq!(p.user().additional_gids().as_deref(), Some(&[5][..]));
        let caps = p.capabilities().clone().unwrap();
        let admin = oci_spec::runtime::Capability::NetAdmin;
        assert!(caps.bounding().as_ref().unwrap().contains(&admin));
        assert!(caps.effective().as_ref().unwrap().contains(&admin));
        assert!(caps.ambient().is_none(), "no inheritable set: no ambient");
        assert_eq!(p.no_new_privileges(), Some(true));
        assert_eq!(p.terminal(), Some(true));
    }

    #[test]
    fn unknown_capability_and_empty_command_are_refused() {
        let o = ExecOverrides {
            args: vec!["sh".into()],
            caps: vec!["CAP_BOGUS".into()],
            ..Default::default()
        };
        assert!(apply_overrides(&base(), &o)
            .unwrap_err()
            .to_string()
            .contains("CAP_BOGUS"));
        let p = apply_overrides(&base(), &ExecOverrides::default()).unwrap();
        assert!(check(&p).is_err());
    }
}
