//! Foreground `run`: create, start, forward signals to the init, reap it, delete,
//! and return its exit status the way a shell reports it.

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::container::{CreateOptions, Runtime};
use crate::error::ContainerError;
use crate::sys;

/// How the container's process ended, as a shell exit code (signal N → 128+N).
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

impl Runtime {
    /// Create and start; with `detach` return at once, otherwise wait for the init
    /// (forwarding signals to it), delete the container and return its exit code.
    pub fn run(&self, opts: &CreateOptions, detach: bool) -> Result<i32, ContainerError> {
        if !detach {
            sys::set_child_subreaper().map_err(|e| ContainerError::sys("becoming subreaper", e))?;
        }
        let pid = self.create(opts)?;
        // Block the signals we forward before the init can exit, so none is lost.
        let forwarded = forwarded_signals();
        if !detach {
            nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwarded), None)
                .map_err(|e| ContainerError::sys("blocking signals", e))?;
        }
        if let Err(e) = self.start(&opts.id) {
            let _ = self.delete(&opts.id, true);
            return Err(e);
        }
        if detach {
            return Ok(0);
        }
        let code = wait_forwarding(pid, &forwarded);
        self.delete_stopped(&opts.id)?;
        Ok(code)
    }
}

fn forwarded_signals() -> SigSet {
    let mut set = SigSet::all();
    for s in [Signal::SIGKILL, Signal::SIGSTOP, Signal::SIGSEGV, Signal::SIGBUS, Signal::SIGILL, Signal::SIGFPE] {
        set.remove(s);
    }
    set
}

/// Reap children until the init exits; every other signal goes to the init.
fn wait_forwarding(init: i32, set: &SigSet) -> i32 {
    let init = Pid::from_raw(init);
    loop {
        if let Some(code) = reap(init) {
            return code;
        }
        match set.wait() {
            Ok(Signal::SIGCHLD) => {}
            Ok(sig) => {
                let _ = nix::sys::signal::kill(init, sig);
            }
            Err(_) => {}
        }
    }
}

/// Reap every exited child; the init's exit code if it was among them.
fn reap(init: Pid) -> Option<i32> {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return None,
            Ok(status) if status.pid() == Some(init) => {
                if let Some(code) = exit_code(status) {
                    return Some(code);
                }
            }
            Ok(_) => {}
        }
    }
}
