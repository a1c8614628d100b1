//! `exec`: another process in a running container, through berth-container's
//! `Runtime::exec` (in the foreground: signals are forwarded, a pty is relayed
//! with `tty`, and the exit code is the process's).

use std::path::PathBuf;

use berth_container::exec::{ExecOptions, ExecOverrides, ExecProcess};
use oci_spec::runtime::Spec;

use super::Engine;
use crate::backend::Isolation;
use crate::error::EngineError;
use crate::record::Phase;
use crate::spec::set_env;
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
    /// exec for `--isolation process`: the container's config with the request's
    /// command, env, cwd, user and terminal, run by the process backend.
    fn exec_process(&self, id: &str, req: &ExecRequest) -> Result<i32, EngineError> {
        let dir = self.container_dir(id);
        let config = dir.join("config.json");
        let mut spec = Spec::load(&config).map_err(|e| EngineError::Invalid(e.to_string()))?;
        let mut process = spec.process().clone().unwrap_or_default();
        process.set_args(Some(req.command.clone()));
        let mut env = process.env().clone().unwrap_or_default();
        for e in &req.env {
            if e.contains('=') {
                set_env(&mut env, e.clone());
            } else if let Ok(v) = std::env::var(e) {
                set_env(&mut env, format!("{e}={v}"));
            }
        }
        process.set_env(Some(env));
        if let Some(cwd) = &req.workdir {
            process.set_cwd(cwd.into());
        }
        if let Some(user) = &req.user {
            let ids = user::resolve(&dir.join("rootfs"), user)?;
            let mut u = process.user().clone();
            u.set_uid(ids.uid);
            u.set_gid(ids.gid);
            u.set_additional_gids(Some(ids.additional_gids));
            process.set_user(u);
        }
        process.set_terminal(Some(req.tty));
        spec.set_process(Some(process));
        self.process
            .exec(id, &spec)
            .map_err(|source| EngineError::Backend {
                action: "executing in",
                id: id.to_owned(),
                source: Box::new(source),
            })
    }

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
        if record.isolation == Isolation::Process {
            return self.exec_process(&record.id, req);
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
