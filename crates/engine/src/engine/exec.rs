//! `exec`: another process in a running container, through berth-container's
//! `Runtime::exec` (in the foreground: signals are forwarded, a pty is relayed
//! with `tty`, and the exit code is the process's).

use std::path::PathBuf;

use berth_container::exec::{ExecOptions, ExecOverrides, ExecProcess};

use super::Engine;
use crate::error::EngineError;
use crate::record::Phase;
use crate::user;

/// What `berth exec` was asked.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// `K=V`, or `K` for the engine's own value of K.
    pub env: Vec<String>,
    /// The working directory (default: the container's).
    pub workdir: Option<String>,
    /// user[:group] or uid[:gid], resolved in the container's root.
    pub user: Option<String>,
    /// Allocate a pty.
    pub tty: bool,
}

impl Engine {
    /// Runs a process in a running container; returns its exit code.
    pub fn exec(&self, name_or_id: &str, req: &ExecRequest) -> Result<i32, EngineError> {
        let record = self.find(name_or_id)?;
        if self.status(&record) != Phase::Running {
            return Err(EngineError::BadState {
                name: record.name,
                state: "not running",
                action: "exec",
            });
        }
        if req.command.is_empty() {
            return Err(EngineError::Invalid("exec: no command given".into()));
        }
        let mut overrides = ExecOverrides {
            args: req.command.clone(),
            cwd: req.workdir.as_ref().map(PathBuf::from),
            tty: req.tty,
            ..ExecOverrides::default()
        };
        for e in &req.env {
            if e.contains('=') {
                overrides.env.push(e.clone());
            } else if let Ok(v) = std::env::var(e) {
                overrides.env.push(format!("{e}={v}"));
            }
        }
        if let Some(spec) = &req.user {
            let ids = user::resolve(&self.container_dir(&record.id).join("rootfs"), spec)?;
            overrides.uid = Some(ids.uid);
            overrides.gid = Some(ids.gid);
            overrides.additional_gids = ids.additional_gids;
        }
        let opts = ExecOptions {
            process: ExecProcess::Inline(overrides),
            console_socket: None,
            pid_file: None,
            preserve_fds: 0,
            detach: false,
        };
        self.container_backend()
            .runtime()
            .exec(&record.id, &opts)
            .map_err(|source| EngineError::Backend {
                action: "executing in",
                id: record.id.clone(),
                source: Box::new(source.into()),
            })
    }
}
