//! Validation of `linux.seccomp` and the list of libseccomp rules it becomes,
//! without touching libseccomp's filter state (so it is unit-testable).

use libseccomp::{ScmpAction, ScmpArch, ScmpArgCompare};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompFilterFlag, LinuxSeccompOperator, LinuxSyscall};

use crate::mapping::{self, MAX_ARG_INDEX};
use crate::SeccompError;

/// JSON path of the section, the prefix of every field in an error.
pub(crate) const ROOT: &str = "linux.seccomp";

/// Syscalls the init makes after loading the filter and before anyone holds
/// the notify fd (writing to the runtime over the create channel): notifying
/// them would hang `create`. runc refuses `write` for the same reason.
const NOTIFY_FORBIDDEN: [&str; 3] = ["write", "sendto", "sendmsg"];

/// Everything the filter will be built from.
#[derive(Debug)]
pub(crate) struct Plan {
    pub default_action: ScmpAction,
    /// Architectures to add, with the field each came from.
    pub arches: Vec<(String, ScmpArch)>,
    pub flags: Vec<(String, LinuxSeccompFilterFlag)>,
    pub rules: Vec<Rule>,
    /// Some rule uses `SCMP_ACT_NOTIFY`: loading yields a notify fd.
    pub notify: bool,
}

/// One libseccomp rule: `action` for syscall `name` when all `conditions` hold.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Rule {
    /// JSON path of the name, e.g. `linux.seccomp.syscalls[3].names[0]`.
    pub field: String,
    pub name: String,
    pub action: ScmpAction,
    pub conditions: Vec<ScmpArgCompare>,
}

/// Checks `seccomp` and lists the rules it asks for.
pub(crate) fn plan(seccomp: &LinuxSeccomp) -> Result<Plan, SeccompError> {
    let default_action = mapping::action(
        seccomp.default_action(),
        seccomp.default_errno_ret(),
        &format!("{ROOT}.defaultErrnoRet"),
    )?;
    if default_action == ScmpAction::Notify {
        // Every syscall of the init, including the one handing the fd over,
        // would wait on an agent that does not have the fd yet (runc refuses too).
        return Err(SeccompError::invalid(
            format!("{ROOT}.defaultAction"),
            "SCMP_ACT_NOTIFY cannot be the default action",
        ));
    }
    let arches = arches(seccomp)?;
    let flags = seccomp
        .flags()
        .iter()
        .flatten()
        .enumerate()
        .map(|(i, f)| (format!("{ROOT}.flags[{i}]"), *f))
        .collect();
    let mut rules = Vec::new();
    let mut notify = false;
    for (i, syscall) in seccomp.syscalls().iter().flatten().enumerate() {
        let field = format!("{ROOT}.syscalls[{i}]");
        let action = syscall_action(seccomp, syscall, &field)?;
        let conditions = conditions(syscall, &field)?;
        if action == default_action {
            // libseccomp refuses such rules; they change nothing anyway.
            tracing::debug!("{field}: same action as the default, skipped");
            continue;
        }
        notify |= action == ScmpAction::Notify;
        for (j, name) in syscall.names().iter().enumerate() {
            for conds in &conditions {
                rules.push(Rule {
                    field: format!("{field}.names[{j}]"),
                    name: name.clone(),
                    action,
                    conditions: conds.clone(),
                });
            }
        }
    }
    Ok(Plan {
        default_action,
        arches,
        flags,
        rules,
        notify,
    })
}

/// The listed architectures; the machine's own must be among them, or the
/// profile was written for another machine.
fn arches(seccomp: &LinuxSeccomp) -> Result<Vec<(String, ScmpArch)>, SeccompError> {
    let Some(list) = seccomp.architectures().as_ref().filter(|l| !l.is_empty()) else {
        return Ok(Vec::new());
    };
    let native = ScmpArch::native();
    let arches: Vec<_> = list
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("{ROOT}.architectures[{i}]"), mapping::arch(*a)))
        .collect();
    let has_native = arches
        .iter()
        .any(|(_, a)| *a == native || *a == ScmpArch::Native);
    if !has_native {
        return Err(SeccompError::invalid(
            format!("{ROOT}.architectures"),
            format!("does not include this machine's architecture ({native:?})"),
        ));
    }
    Ok(arches)
}

fn syscall_action(
    seccomp: &LinuxSeccomp,
    syscall: &LinuxSyscall,
    field: &str,
) -> Result<ScmpAction, SeccompError> {
    let action = mapping::action(
        syscall.action(),
        syscall.errno_ret(),
        &format!("{field}.errnoRet"),
    )?;
    if action != ScmpAction::Notify {
        return Ok(action);
    }
    if seccomp.listener_path().is_none() {
        return Err(SeccompError::invalid(
            format!("{field}.action"),
            format!("SCMP_ACT_NOTIFY needs {ROOT}.listenerPath"),
        ));
    }
    if let Some(name) = syscall
        .names()
        .iter()
        .find(|n| NOTIFY_FORBIDDEN.contains(&n.as_str()))
    {
        return Err(SeccompError::invalid(
            format!("{field}.action"),
            format!("SCMP_ACT_NOTIFY cannot be used for {name}: the init needs it to pass the notify fd on"),
        ));
    }
    Ok(action)
}

/// The condition sets of one `syscalls[]` entry: one set (all ANDed) when
/// every argument index appears once; otherwise, as runc does, one set per
/// condition (ORed), since libseccomp takes only one condition per argument in
/// a rule. No args: one empty set.
fn conditions(
    syscall: &LinuxSyscall,
    field: &str,
) -> Result<Vec<Vec<ScmpArgCompare>>, SeccompError> {
    let args = syscall.args().as_deref().unwrap_or_default();
    let mut counts = [0usize; MAX_ARG_INDEX + 1];
    let mut conds = Vec::with_capacity(args.len());
    for (k, arg) in args.iter().enumerate() {
        let cond = mapping::condition(arg, &format!("{field}.args[{k}]"))?;
        if arg.op() != LinuxSeccompOperator::ScmpCmpMaskedEq && arg.value_two().unwrap_or(0) != 0 {
            tracing::debug!("{field}.args[{k}].valueTwo: only SCMP_CMP_MASKED_EQ uses it, ignored");
        }
        counts[arg.index()] += 1;
        conds.push(cond);
    }
    if counts.iter().any(|&c| c > 1) {
        Ok(conds.into_iter().map(|c| vec![c]).collect())
    } else {
        Ok(vec![conds])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libseccomp::ScmpCompareOp;
    use serde_json::json;

    pub(crate) fn profile(v: serde_json::Value) -> LinuxSeccomp {
        serde_json::from_value(v).expect("valid linux.seccomp JSON")
    }

    fn err(v: serde_json::Value) -> String {
        plan(&profile(v))
            .expect_err("profile must be refused")
            .to_string()
    }

    fn one_rule(action: &str, errno: Option<u32>) -> Plan {
        let mut sc = json!({"names": ["mkdirat"], "action": action});
        if let Some(e) = errno {
            sc["errnoRet"] = json!(e);
        }
        plan(&profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "listenerPath": "/run/agent.sock",
            "syscalls": [sc],
        })))
        .expect("valid profile")
    }

    #[test]
    fn every_action_maps() {
        let cases = [
            ("SCMP_ACT_KILL", ScmpAction::KillThread),
            ("SCMP_ACT_KILL_THREAD", ScmpAction::KillThread),
            ("SCMP_ACT_KILL_PROCESS", ScmpAction::KillProcess),
            ("SCMP_ACT_TRAP", ScmpAction::Trap),
            ("SCMP_ACT_ERRNO", ScmpAction::Errno(libc::EPERM)),
            ("SCMP_ACT_TRACE", ScmpAction::Trace(libc::EPERM as u16)),
            ("SCMP_ACT_LOG", ScmpAction::Log),
            ("SCMP_ACT_NOTIFY", ScmpAction::Notify),
        ];
        for (name, want) in cases {
            let p = one_rule(name, None);
            assert_eq!(p.rules.len(), 1, "{name}");
            assert_eq!(p.rules[0].action, want, "{name}");
            assert_eq!(p.notify, name == "SCMP_ACT_NOTIFY", "{name}");
        }
        // Allow is the default here, so its rule is dropped.
        assert!(one_rule("SCMP_ACT_ALLOW", None).rules.is_empty());
    }

    #[test]
    fn errno_ret_is_carried_by_errno_and_trace() {
        assert_eq!(
            one_rule("SCMP_ACT_ERRNO", Some(38)).rules[0].action,
            ScmpAction::Errno(38)
        );
        assert_eq!(
            one_rule("SCMP_ACT_TRACE", Some(7)).rules[0].action,
            ScmpAction::Trace(7)
        );
    }

    #[test]
    fn default_action_and_errno() {
        let p = plan(&profile(
            json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38}),
        ))
        .unwrap();
        assert_eq!(p.default_action, ScmpAction::Errno(38));
        let p = plan(&profile(json!({"defaultAction": "SCMP_ACT_ERRNO"}))).unwrap();
        assert_eq!(p.default_action, ScmpAction::Errno(libc::EPERM));
        let p = plan(&profile(json!({"defaultAction": "SCMP_ACT_KILL_PROCESS"}))).unwrap();
        assert_eq!(p.default_action, ScmpAction::KillProcess);
    }

    #[test]
    fn errno_ret_on_an_action_without_one_names_the_field() {
        let e = err(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mkdirat"], "action": "SCMP_ACT_KILL", "errnoRet": 1},
            ],
        }));
        assert_eq!(
            e,
            "linux.seccomp.syscalls[1].errnoRet: only SCMP_ACT_ERRNO and SCMP_ACT_TRACE take \
             an errno, not SCMP_ACT_KILL"
        );
        let e = err(json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}));
        assert!(e.starts_with("linux.seccomp.defaultErrnoRet: "), "{e}");
        let e = err(json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 70000}));
        assert_eq!(
            e,
            "linux.seccomp.defaultErrnoRet: 70000 does not fit in 16 bits"
        );
    }

    #[test]
    fn notify_needs_a_listener_path() {
        let e = err(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["getpid"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["a"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["b"], "action": "SCMP_ACT_ERRNO"},
                {"names": ["mkdirat"], "action": "SCMP_ACT_NOTIFY"},
            ],
        }));
        assert_eq!(
            e,
            "linux.seccomp.syscalls[3].action: SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath"
        );
    }

    #[test]
    fn notify_is_refused_as_default_and_for_write() {
        let e = err(json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/x"}));
        assert_eq!(
            e,
            "linux.seccomp.defaultAction: SCMP_ACT_NOTIFY cannot be the default action"
        );
        let e = err(json!({
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/x",
            "syscalls": [{"names": ["read", "write"], "action": "SCMP_ACT_NOTIFY"}],
        }));
        assert_eq!(
            e,
            "linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY cannot be used for write: \
             the init needs it to pass the notify fd on"
        );
    }

    #[test]
    fn architectures_must_include_the_native_one() {
        let e = err(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_S390X", "SCMP_ARCH_PPC64LE"],
        }));
        assert!(
            e.starts_with("linux.seccomp.architectures: does not include this machine's"),
            "{e}"
        );
        let p = plan(&profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_NATIVE", "SCMP_ARCH_X86"],
        })))
        .unwrap();
        assert_eq!(p.arches.len(), 2);
        assert_eq!(
            p.arches[1],
            ("linux.seccomp.architectures[1]".into(), ScmpArch::X86)
        );
    }

    #[test]
    fn every_arch_maps_to_its_libseccomp_twin() {
        use std::str::FromStr;
        for a in crate::mapping::ALL_ARCHES {
            // Both spell them SCMP_ARCH_*; the OCI spelling is what config.json has.
            let name = serde_json::to_value(a).unwrap();
            let twin = ScmpArch::from_str(name.as_str().unwrap()).unwrap();
            assert_eq!(crate::mapping::arch(a), twin, "{name}");
        }
    }

    #[test]
    fn every_operator_maps() {
        let cases = [
            ("SCMP_CMP_NE", ScmpCompareOp::NotEqual),
            ("SCMP_CMP_LT", ScmpCompareOp::Less),
            ("SCMP_CMP_LE", ScmpCompareOp::LessOrEqual),
            ("SCMP_CMP_EQ", ScmpCompareOp::Equal),
            ("SCMP_CMP_GE", ScmpCompareOp::GreaterEqual),
            ("SCMP_CMP_GT", ScmpCompareOp::Greater),
        ];
        for (op, want) in cases {
            let p = plan(&profile(json!({
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["personality"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 0, "value": 42, "op": op}]}],
            })))
            .unwrap();
            assert_eq!(
                p.rules[0].conditions,
                vec![ScmpArgCompare::new(0, want, 42)],
                "{op}"
            );
        }
        // MASKED_EQ: value is the mask, valueTwo the datum.
        let p = plan(&profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["clone"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": 0x7E020000u64, "valueTwo": 0,
                          "op": "SCMP_CMP_MASKED_EQ"}]}],
        })))
        .unwrap();
        assert_eq!(
            p.rules[0].conditions,
            vec![ScmpArgCompare::new(
                0,
                ScmpCompareOp::MaskedEqual(0x7E020000),
                0
            )]
        );
    }

    #[test]
    fn arg_index_past_five_names_the_field() {
        let e = err(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 1, "value": 1, "op": "SCMP_CMP_EQ"},
                         {"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}],
        }));
        assert_eq!(
            e,
            "linux.seccomp.syscalls[0].args[1].index: 6 is past the last syscall argument (5)"
        );
    }

    #[test]
    fn distinct_arg_indexes_make_one_anded_rule_per_name() {
        let p = plan(&profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["socket", "socketpair"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": 16, "op": "SCMP_CMP_EQ"},
                         {"index": 2, "value": 9, "op": "SCMP_CMP_EQ"}]}],
        })))
        .unwrap();
        let both = vec![
            ScmpArgCompare::new(0, ScmpCompareOp::Equal, 16),
            ScmpArgCompare::new(2, ScmpCompareOp::Equal, 9),
        ];
        assert_eq!(p.rules.len(), 2);
        assert_eq!(p.rules[0].name, "socket");
        assert_eq!(p.rules[0].field, "linux.seccomp.syscalls[0].names[0]");
        assert_eq!(p.rules[0].conditions, both);
        assert_eq!(p.rules[1].name, "socketpair");
        assert_eq!(p.rules[1].conditions, both);
    }

    #[test]
    fn a_repeated_arg_index_splits_into_one_rule_per_condition() {
        let p = plan(&profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": ["socket"], "action": "SCMP_ACT_ERRNO",
                "args": [{"index": 0, "value": 2, "op": "SCMP_CMP_EQ"},
                         {"index": 0, "value": 10, "op": "SCMP_CMP_EQ"},
                         {"index": 1, "value": 3, "op": "SCMP_CMP_EQ"}]}],
        })))
        .unwrap();
        let conds: Vec<_> = p.rules.iter().map(|r| r.conditions.clone()).collect();
        assert_eq!(
            conds,
            vec![
                vec![ScmpArgCompare::new(0, ScmpCompareOp::Equal, 2)],
                vec![ScmpArgCompare::new(0, ScmpCompareOp::Equal, 10)],
                vec![ScmpArgCompare::new(1, ScmpCompareOp::Equal, 3)],
            ]
        );
    }

    #[test]
    fn rules_with_the_default_action_are_dropped() {
        let p = plan(&profile(json!({
            "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38,
            "syscalls": [
                {"names": ["a"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38},
                {"names": ["b"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1},
            ],
        })))
        .unwrap();
        assert_eq!(p.rules.len(), 1);
        assert_eq!(p.rules[0].name, "b");
    }

    #[test]
    fn flags_keep_their_field() {
        let p = plan(&profile(json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_TSYNC"],
        })))
        .unwrap();
        assert_eq!(
            p.flags,
            vec![
                (
                    "linux.seccomp.flags[0]".into(),
                    LinuxSeccompFilterFlag::SeccompFilterFlagLog
                ),
                (
                    "linux.seccomp.flags[1]".into(),
                    LinuxSeccompFilterFlag::SeccompFilterFlagTsync
                ),
            ]
        );
    }

    /// Unknown actions, operators, archs and flags never reach `compile`:
    /// parsing config.json refuses them, and with serde_path_to_error (as the
    /// runtime parses config.json) the message has the path.
    #[test]
    fn unknown_enum_values_are_refused_by_parsing_with_their_path() {
        let text = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["a"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["b"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["c"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["d"], "action": "SCMP_ACT_BOGUS"}]}"#;
        let de = &mut serde_json::Deserializer::from_str(text);
        let e = serde_path_to_error::deserialize::<_, LinuxSeccomp>(de).unwrap_err();
        assert_eq!(e.path().to_string(), "syscalls[3].action");
        for bad in [
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_Z80"]}"#,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NOPE"]}"#,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"],
                "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_XX"}]}]}"#,
        ] {
            assert!(serde_json::from_str::<LinuxSeccomp>(bad).is_err(), "{bad}");
        }
    }
}
