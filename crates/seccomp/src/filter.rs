//! Building the libseccomp filter from a [`Plan`](crate::plan::Plan), and
//! loading it.

use std::os::fd::{FromRawFd, OwnedFd};

use libseccomp::{ScmpArch, ScmpFilterContext, ScmpSyscall, ScmpVersion};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompFilterFlag};

use crate::plan::{self, Plan, ROOT};
use crate::SeccompError;

/// A checked, built seccomp filter, not yet loaded. Made by [`compile`].
#[derive(Debug)]
pub struct Filter {
    ctx: ScmpFilterContext,
    notify: bool,
}

/// Checks `linux.seccomp` and builds its filter without loading it, so a bad
/// profile is refused at `create` with the field at fault.
///
/// Syscall names libseccomp does not know are skipped (logged at debug), as
/// runc does; everything else that is wrong is an error naming its field,
/// e.g. `linux.seccomp.syscalls[3].action`.
pub fn compile(seccomp: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    let plan = plan::plan(seccomp)?;
    build(&plan)
}

fn build_err(
    field: impl Into<String>,
    action: impl Into<String>,
) -> impl FnOnce(libseccomp::error::SeccompError) -> SeccompError {
    let (field, action) = (field.into(), action.into());
    move |source| SeccompError::Build {
        field,
        action,
        source,
    }
}

fn build(plan: &Plan) -> Result<Filter, SeccompError> {
    let mut ctx = ScmpFilterContext::new(plan.default_action).map_err(build_err(
        format!("{ROOT}.defaultAction"),
        "creating the filter",
    ))?;
    // libseccomp would set no_new_privs itself on load; that is the
    // process's noNewPrivileges to decide, not ours.
    ctx.set_ctl_nnp(false)
        .map_err(build_err(ROOT, "leaving no_new_privs alone"))?;
    for (field, arch) in &plan.arches {
        add_arch(&mut ctx, field, *arch)?;
    }
    for (field, flag) in &plan.flags {
        set_flag(&mut ctx, field, *flag)?;
    }
    for rule in &plan.rules {
        let Ok(syscall) = ScmpSyscall::from_name(&rule.name) else {
            tracing::debug!("{}: unknown syscall {:?}, skipped", rule.field, rule.name);
            continue;
        };
        let what = || format!("adding a rule for {}", rule.name);
        if rule.conditions.is_empty() {
            ctx.add_rule(rule.action, syscall)
                .map_err(build_err(&rule.field, what()))?;
        } else {
            ctx.add_rule_conditional(rule.action, syscall, &rule.conditions)
                .map_err(build_err(&rule.field, what()))?;
        }
    }
    Ok(Filter {
        ctx,
        notify: plan.notify,
    })
}

fn add_arch(ctx: &mut ScmpFilterContext, field: &str, arch: ScmpArch) -> Result<(), SeccompError> {
    if arch == ScmpArch::Native {
        return Ok(()); // a new filter always has it
    }
    let what = || format!("adding architecture {arch:?}");
    if ctx
        .is_arch_present(arch)
        .map_err(build_err(field, what()))?
    {
        return Ok(());
    }
    ctx.add_arch(arch).map_err(build_err(field, what()))?;
    Ok(())
}

/// Whether libseccomp can set `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`.
pub(crate) fn waitkill_supported() -> bool {
    libseccomp::check_api(7, ScmpVersion::from((2, 6, 0))).unwrap_or(false)
}

fn set_flag(
    ctx: &mut ScmpFilterContext,
    field: &str,
    flag: LinuxSeccompFilterFlag,
) -> Result<(), SeccompError> {
    let what = format!("setting {flag}");
    let res = match flag {
        LinuxSeccompFilterFlag::SeccompFilterFlagTsync => ctx.set_ctl_tsync(true),
        LinuxSeccompFilterFlag::SeccompFilterFlagLog => ctx.set_ctl_log(true),
        LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => ctx.set_ctl_ssb(true),
        LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
            if !waitkill_supported() {
                return Err(SeccompError::invalid(
                    field,
                    format!("{flag} needs libseccomp 2.6 or later and Linux 5.19 or later"),
                ));
            }
            ctx.set_ctl_waitkill(true)
        }
    };
    res.map(drop).map_err(build_err(field, what))
}

impl Filter {
    /// True when some rule uses `SCMP_ACT_NOTIFY`, so [`Filter::load`] will
    /// return a notify fd to hand to `linux.seccomp.listenerPath`.
    pub fn wants_notify_fd(&self) -> bool {
        self.notify
    }

    /// Loads the filter into the calling thread (every thread with
    /// `SECCOMP_FILTER_FLAG_TSYNC`) and the processes it then starts.
    ///
    /// The kernel takes a filter only from a caller with no_new_privs set or
    /// with `CAP_SYS_ADMIN` in its user namespace; this does not set
    /// no_new_privs itself (that is `process.noNewPrivileges`' to decide). So
    /// in the container's init: with no_new_privs, load last, right before
    /// exec, after dropping capabilities; without it, load just before
    /// dropping capabilities, while `CAP_SYS_ADMIN` is still held.
    ///
    /// Returns the notify fd (close-on-exec) when some rule uses
    /// `SCMP_ACT_NOTIFY`; one such filter per process.
    pub fn load(self) -> Result<Option<OwnedFd>, SeccompError> {
        self.ctx.load().map_err(SeccompError::Load)?;
        if !self.notify {
            return Ok(None);
        }
        let raw = self.ctx.get_notify_fd().map_err(SeccompError::NotifyFd)?;
        // SAFETY: libseccomp got `raw` from seccomp(2) while loading this
        // filter and only remembers the number: it never uses or closes it
        // again unless asked to reset its global state, which this crate does
        // not do. So the fd is open and nothing else owns it.
        Ok(Some(unsafe { OwnedFd::from_raw_fd(raw) }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile_json(v: serde_json::Value) -> Result<Filter, SeccompError> {
        compile(&serde_json::from_value(v).expect("valid linux.seccomp JSON"))
    }

    #[test]
    fn no_new_privs_is_left_to_the_caller() {
        let f = compile_json(json!({"defaultAction": "SCMP_ACT_ALLOW"})).unwrap();
        assert!(!f.ctx.get_ctl_nnp().unwrap());
    }

    #[test]
    fn flags_set_their_attribute() {
        let f = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                      "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        }))
        .unwrap();
        assert!(f.ctx.get_ctl_tsync().unwrap());
        assert!(f.ctx.get_ctl_log().unwrap());
        assert!(f.ctx.get_ctl_ssb().unwrap());
        let f = compile_json(json!({"defaultAction": "SCMP_ACT_ALLOW"})).unwrap();
        assert!(!f.ctx.get_ctl_tsync().unwrap());
        assert!(!f.ctx.get_ctl_log().unwrap());
    }

    #[test]
    fn wait_killable_recv_is_set_or_refused_with_its_field() {
        let r = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"],
        }));
        if waitkill_supported() {
            assert!(r.unwrap().ctx.get_ctl_waitkill().unwrap());
        } else {
            let e = r.unwrap_err().to_string();
            assert!(
                e.starts_with(
                    "linux.seccomp.flags[1]: SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs"
                ),
                "{e}"
            );
        }
    }

    #[test]
    fn architectures_are_added() {
        let f = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        }))
        .unwrap();
        for a in [ScmpArch::X8664, ScmpArch::X86, ScmpArch::X32] {
            assert!(f.ctx.is_arch_present(a).unwrap(), "{a:?}");
        }
        assert!(!f.ctx.is_arch_present(ScmpArch::Aarch64).unwrap());
    }

    #[test]
    fn an_arch_libseccomp_cannot_mix_in_names_its_field() {
        // A big-endian arch cannot share a filter with a little-endian one.
        let e = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_NATIVE", "SCMP_ARCH_S390X"],
        }))
        .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("linux.seccomp.architectures[1]: adding architecture S390X"),
            "{e}"
        );
    }

    #[test]
    fn unknown_syscalls_are_skipped() {
        let f = compile_json(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["no_such_syscall", "getpid"], "action": "SCMP_ACT_ALLOW"}],
        }))
        .unwrap();
        assert!(!f.wants_notify_fd());
    }

    #[test]
    fn notify_rules_want_an_fd() {
        let f = compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "syscalls": [{"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"}],
        }))
        .unwrap();
        assert!(f.wants_notify_fd());
    }

    #[test]
    fn every_action_and_operator_compiles() {
        let actions = [
            "SCMP_ACT_KILL",
            "SCMP_ACT_KILL_THREAD",
            "SCMP_ACT_KILL_PROCESS",
            "SCMP_ACT_TRAP",
            "SCMP_ACT_ERRNO",
            "SCMP_ACT_TRACE",
            "SCMP_ACT_LOG",
            "SCMP_ACT_NOTIFY",
        ];
        let ops = [
            "SCMP_CMP_NE",
            "SCMP_CMP_LT",
            "SCMP_CMP_LE",
            "SCMP_CMP_EQ",
            "SCMP_CMP_GE",
            "SCMP_CMP_GT",
            "SCMP_CMP_MASKED_EQ",
        ];
        let names = [
            "read", "mkdirat", "getpid", "getppid", "uname", "socket", "umask", "acct",
        ];
        let syscalls: Vec<_> = actions
            .iter()
            .zip(names)
            .enumerate()
            .map(|(i, (a, n))| {
                json!({"names": [n], "action": a,
                       "args": [{"index": i % 6, "value": 1, "valueTwo": 1, "op": ops[i % 7]}]})
            })
            .collect();
        compile_json(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "syscalls": syscalls,
        }))
        .unwrap();
    }
}
