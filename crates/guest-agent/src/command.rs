//! The command: spawned chrooted into the root disk, signalled, reaped.

use std::ffi::CString;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use berth_guest_agent::protocol::{ExitStatus, HostMessage, RunRequest};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{Gid, Pid, Uid};

use crate::boot::NEW_ROOT;
use crate::error::AgentError;

/// `args[0]` as a path inside `root`: as given if it has a slash, else the first PATH
/// entry holding it (symlinks are not followed here: they point inside the disk).
fn resolve(root: &Path, request: &RunRequest) -> Result<String, AgentError> {
    let name = request
        .args
        .first()
        .ok_or_else(|| AgentError::Protocol("the run request has no args".into()))?;
    if name.contains('/') {
        return Ok(name.clone());
    }
    request
        .path_var()
        .split(':')
        .filter(|dir| dir.starts_with('/'))
        .map(|dir| format!("{}/{name}", dir.trim_end_matches('/')))
        .find(|p| {
            root.join(p.trim_start_matches('/'))
                .symlink_metadata()
                .is_ok()
        })
        .ok_or_else(|| AgentError::Protocol(format!("{name}: not found in PATH")))
}

fn cstring(s: &str, what: &str) -> Result<CString, AgentError> {
    CString::new(s).map_err(|_| AgentError::Protocol(format!("{what} contains a NUL byte")))
}

/// Starts the command as the request says, with stdin from /dev/null.
pub fn spawn(request: &RunRequest, stdout: File, stderr: File) -> Result<Pid, AgentError> {
    let program = resolve(Path::new(NEW_ROOT), request)?;
    let root = cstring(NEW_ROOT, "the root")?;
    let cwd = cstring(&request.cwd, "cwd")?;
    let (uid, gid) = (Uid::from_raw(request.uid), Gid::from_raw(request.gid));
    let groups: Vec<Gid> = request
        .additional_gids
        .iter()
        .copied()
        .map(Gid::from_raw)
        .collect();
    let mut cmd = Command::new(&program);
    cmd.args(&request.args[1..])
        .env_clear()
        .envs(request.env.iter().filter_map(|e| e.split_once('=')))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    // SAFETY: the agent is single-threaded here (the signal thread starts after spawn),
    // so the child may run any code; the closure only makes system calls on data
    // prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::chroot(root.as_c_str())?;
            nix::unistd::chdir(cwd.as_c_str())?;
            nix::unistd::setgroups(&groups)?;
            nix::unistd::setgid(gid)?;
            nix::unistd::setuid(uid)?;
            Ok(())
        });
    }
    let child = cmd.spawn().map_err(|source| AgentError::Io {
        what: format!("starting {program}"),
        source,
    })?;
    Ok(Pid::from_raw(child.id() as i32))
}

/// Forwards [`HostMessage::Signal`]s read from the control port to `pid`, on a thread.
pub fn forward_signals(reader: BufReader<File>, pid: Pid) {
    std::thread::spawn(move || {
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if let Ok(HostMessage::Signal(n)) = serde_json::from_str(&line) {
                if let Ok(sig) = Signal::try_from(n) {
                    let _ = kill(pid, sig);
                }
            }
        }
    });
}

/// Reaps every child (PID 1 inherits orphans) until `pid` ends; returns how it ended.
pub fn wait(pid: Pid) -> Result<ExitStatus, AgentError> {
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => return Ok(ExitStatus::Code(code)),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => {
                return Ok(ExitStatus::Signal(sig as i32))
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(source) => {
                return Err(AgentError::Sys {
                    what: "waiting for the command".into(),
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_in_the_root_by_path() {
        let root = std::env::temp_dir().join(format!("agent-resolve-{}", std::process::id()));
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::write(root.join("usr/bin/tool"), b"").unwrap();
        // A dangling (absolute) symlink still counts: it resolves inside the guest.
        let _ = std::os::unix::fs::symlink("/bin/busybox", root.join("bin/sh"));
        let mut r = RunRequest::new(["sh", "-c", "true"]);
        assert_eq!(resolve(&root, &r).unwrap(), "/bin/sh");
        r.args[0] = "tool".into();
        assert_eq!(resolve(&root, &r).unwrap(), "/usr/bin/tool");
        r.env = vec!["PATH=/bin".into()];
        assert!(resolve(&root, &r)
            .unwrap_err()
            .to_string()
            .contains("not found"));
        r.args[0] = "./rel/x".into();
        assert_eq!(resolve(&root, &r).unwrap(), "./rel/x");
        r.args.clear();
        assert!(resolve(&root, &r).is_err());
        std::fs::remove_dir_all(&root).unwrap();
    }
}
