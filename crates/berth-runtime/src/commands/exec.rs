//! `exec`: a process.json or a command line with runc's overrides.

use anyhow::{bail, Context, Result};
use berth_container::exec::{ExecOptions, ExecOverrides, ExecProcess};
use berth_container::Runtime;

use crate::cli::ExecArgs;

pub fn run(rt: &Runtime, args: &ExecArgs) -> Result<i32> {
    let process = match (&args.process, args.command.is_empty()) {
        (Some(path), true) => ExecProcess::File(path.clone()),
        (Some(_), false) => bail!("give either --process or a command, not both"),
        (None, true) => bail!("exec: no command given (or use --process FILE)"),
        (None, false) => ExecProcess::Inline(overrides(args)?),
    };
    if args.process_label.is_some() || args.apparmor.is_some() {
        tracing::debug!("--process-label/--apparmor ignored: no LSM support");
    }
    let opts = ExecOptions {
        process,
        console_socket: args.console_socket.clone(),
        pid_file: args.pid_file.clone(),
        preserve_fds: args.preserve_fds,
        detach: args.detach,
    };
    Ok(rt.exec(&args.id, &opts)?)
}

fn overrides(args: &ExecArgs) -> Result<ExecOverrides> {
    let (uid, gid) = match &args.user {
        None => (None, None),
        Some(u) => parse_user(u)?,
    };
    for kv in &args.env {
        if !kv.contains('=') {
            bail!("--env {kv:?}: expected KEY=VALUE");
        }
    }
    Ok(ExecOverrides {
        args: args.command.clone(),
        env: args.env.clone(),
        cwd: args.cwd.clone(),
        uid,
        gid,
        additional_gids: args.additional_gids.clone(),
        caps: args.cap.clone(),
        no_new_privs: args.no_new_privs,
        tty: args.tty,
    })
}

/// "UID" or "UID:GID", numeric (names would need the container's /etc/passwd).
pub fn parse_user(text: &str) -> Result<(Option<u32>, Option<u32>)> {
    let (u, g) = match text.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (text, None),
    };
    let num = |s: &str| {
        s.parse::<u32>()
            .with_context(|| format!("--user {text:?}: expected UID[:GID] with numeric ids"))
    };
    Ok((Some(num(u)?), g.map(num).transpose()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users() {
        assert_eq!(parse_user("1000").unwrap(), (Some(1000), None));
        assert_eq!(parse_user("1000:100").unwrap(), (Some(1000), Some(100)));
        assert!(parse_user("bob").is_err());
    }
}
