//! Running OCI hooks: the container state on stdin, the hook's own env, a timeout.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use oci_spec::runtime::Hook;

use crate::sys;

/// What went wrong running a hook.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{stage} hook {path}: starting: {source}")]
    Spawn {
        stage: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{stage} hook {path}: exited with {status}{stderr}")]
    Failed {
        stage: &'static str,
        path: PathBuf,
        status: String,
        stderr: String,
    },
    #[error("{stage} hook {path}: timed out after {secs}s and was killed")]
    Timeout {
        stage: &'static str,
        path: PathBuf,
        secs: i64,
    },
}

/// Run each hook in order, stopping at the first failure.
pub fn run_all(stage: &'static str, hooks: &[Hook], state_json: &str) -> Result<(), HookError> {
    hooks.iter().try_for_each(|h| run(stage, h, state_json))
}

/// Run one hook with `state_json` on its stdin.
pub fn run(stage: &'static str, hook: &Hook, state_json: &str) -> Result<(), HookError> {
    let path = hook.path().clone();
    let mut cmd = Command::new(&path);
    if let Some(args) = hook.args() {
        if let Some((argv0, rest)) = args.split_first() {
            cmd.arg0(argv0).args(rest);
        }
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::inherit())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|source| HookError::Spawn {
        stage,
        path: path.clone(),
        source,
    })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin must not fail the write.
        let _ = stdin.write_all(state_json.as_bytes());
    }
    if let Some(secs) = hook.timeout().filter(|s| *s > 0) {
        let pidfd = sys::pidfd_open(child.id() as i32);
        let exited = match &pidfd {
            Ok(fd) => sys::pidfd_wait_exit(fd, Duration::from_secs(secs as u64)),
            Err(_) => true,
        };
        if !exited {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HookError::Timeout { stage, path, secs });
        }
    }
    let out = child
        .wait_with_output()
        .map_err(|source| HookError::Spawn {
            stage,
            path: path.clone(),
            source,
        })?;
    if out.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&out.stderr).trim().to_string();
    Err(HookError::Failed {
        stage,
        path,
        status: out.status.to_string(),
        stderr: if text.is_empty() {
            String::new()
        } else {
            format!(": {text}")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn hook_reads_state_and_sees_only_its_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(&format!(
            r#"{{"path":"/bin/sh","args":["sh","-c","cat > {0}; echo \"$FOO:$HOME\" >> {0}"],"env":["FOO=bar"]}}"#,
            out.display()
        ));
        run("prestart", &h, r#"{"id":"x"}"#).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "{\"id\":\"x\"}bar:\n"
        );
    }

    #[test]
    fn failing_and_slow_hooks_are_errors() {
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","echo nope >&2; exit 3"]}"#);
        let err = run("poststart", &h, "{}").unwrap_err().to_string();
        assert!(
            err.contains("exit status: 3") && err.contains("nope"),
            "{err}"
        );
        let h = hook(r#"{"path":"/bin/sh","args":["sh","-c","sleep 5"],"timeout":1}"#);
        assert!(matches!(
            run("prestart", &h, "{}"),
            Err(HookError::Timeout { .. })
        ));
        let h = hook(r#"{"path":"/nonexistent/hook"}"#);
        assert!(matches!(
            run("prestart", &h, "{}"),
            Err(HookError::Spawn { .. })
        ));
    }
}
