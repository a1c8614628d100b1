//! A container's privileges: its capability set (`--cap-add`, `--cap-drop`) and
//! its seccomp profile and no_new_privs (`--security-opt`).
//!
//! Defaults, as Podman's:
//! - capabilities: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL, NET_BIND_SERVICE,
//!   SETFCAP, SETGID, SETPCAP, SETUID, SYS_CHROOT — in the bounding, effective and
//!   permitted sets (inheritable and ambient empty);
//! - seccomp: [`default_profile`], a deny list (every other system call allowed)
//!   of the calls that reach kernel surface a container has no use for, or that
//!   create namespaces and mounts; unlike Docker's allow list it does not break a
//!   program that needs a new but harmless system call. `seccomp=unconfined` turns
//!   it off, `seccomp=PATH` replaces it with an OCI `linux.seccomp` profile (Docker's
//!   profile format is accepted; its rules made conditional on capabilities or
//!   kernel versions — `includes`/`excludes` — are left out, which only denies more).

use std::collections::BTreeSet;
use std::path::PathBuf;

use oci_spec::runtime::{Capability, LinuxCapabilities, LinuxSeccomp, Spec};

use crate::error::EngineError;

/// Podman's default capabilities.
pub const DEFAULT_CAPS: [&str; 11] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// `--security-opt seccomp=…`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SeccompChoice {
    /// [`default_profile`].
    #[default]
    Default,
    /// No filter.
    Unconfined,
    /// A profile file.
    Profile(PathBuf),
}

/// What `--security-opt` asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecurityOpts {
    /// The seccomp profile.
    pub seccomp: SeccompChoice,
    /// `no-new-privileges`.
    pub no_new_privileges: bool,
}

impl SecurityOpts {
    /// Adds one `--security-opt` value.
    pub fn add(&mut self, text: &str) -> Result<(), String> {
        let (key, value) = text
            .split_once(['=', ':'])
            .map_or((text, None), |(k, v)| (k, Some(v)));
        match (key, value) {
            ("seccomp", Some("unconfined")) => self.seccomp = SeccompChoice::Unconfined,
            ("seccomp", Some(path)) if !path.is_empty() => {
                self.seccomp = SeccompChoice::Profile(PathBuf::from(path))
            }
            ("no-new-privileges", None | Some("true")) => self.no_new_privileges = true,
            ("no-new-privileges", Some("false")) => self.no_new_privileges = false,
            _ => {
                return Err(format!(
                    "security option {text:?}: expected seccomp=unconfined, seccomp=PATH or \
                     no-new-privileges[=true|false]"
                ))
            }
        }
        Ok(())
    }
}

/// Every capability this kernel knows, by name without `CAP_`.
fn all_caps() -> BTreeSet<String> {
    caps::all()
        .into_iter()
        .map(|c| c.to_string().trim_start_matches("CAP_").to_owned())
        .collect()
}

/// `cap_sys_admin`, `CAP_SYS_ADMIN` and `SYS_ADMIN` → `SYS_ADMIN`; `ALL` stays.
fn cap_name(text: &str) -> Result<String, EngineError> {
    let upper = text.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("CAP_").unwrap_or(&upper).to_owned();
    if name == "ALL" || all_caps().contains(&name) || name.parse::<Capability>().is_ok() {
        Ok(name)
    } else {
        Err(EngineError::Invalid(format!("unknown capability {text:?}")))
    }
}

/// The capability names after `add` and `drop` (applied in Docker's order:
/// drops first, so `--cap-drop ALL --cap-add X` keeps just X).
pub fn capability_set(add: &[String], drop: &[String]) -> Result<BTreeSet<String>, EngineError> {
    let add = add
        .iter()
        .map(|c| cap_name(c))
        .collect::<Result<Vec<_>, _>>()?;
    let drop = drop
        .iter()
        .map(|c| cap_name(c))
        .collect::<Result<Vec<_>, _>>()?;
    let mut set: BTreeSet<String> = DEFAULT_CAPS.iter().map(|c| (*c).to_owned()).collect();
    if drop.iter().any(|c| c == "ALL") {
        set.clear();
    }
    for c in &drop {
        set.remove(c);
    }
    if add.iter().any(|c| c == "ALL") {
        set.extend(all_caps());
    }
    set.extend(add.into_iter().filter(|c| c != "ALL"));
    Ok(set)
}

/// The deny list described in the module doc, as an OCI `linux.seccomp`.
pub fn default_profile() -> LinuxSeccomp {
    const EPERM: u32 = 1;
    const ENOSYS: u32 = 38;
    let denied = [
        "acct",
        "add_key",
        "bpf",
        "clock_adjtime",
        "clock_settime",
        "create_module",
        "delete_module",
        "finit_module",
        "fsconfig",
        "fsmount",
        "fsopen",
        "fspick",
        "get_kernel_syms",
        "init_module",
        "io_uring_enter",
        "io_uring_register",
        "io_uring_setup",
        "iopl",
        "ioperm",
        "kexec_file_load",
        "kexec_load",
        "keyctl",
        "lookup_dcookie",
        "mount",
        "mount_setattr",
        "move_mount",
        "name_to_handle_at",
        "nfsservctl",
        "open_by_handle_at",
        "open_tree",
        "perf_event_open",
        "pivot_root",
        "query_module",
        "quotactl",
        "reboot",
        "request_key",
        "setns",
        "settimeofday",
        "swapoff",
        "swapon",
        "_sysctl",
        "syslog",
        "umount2",
        "unshare",
        "uselib",
        "userfaultfd",
        "ustat",
        "vm86",
        "vm86old",
    ];
    // clone with any namespace flag is denied; clone3 (whose flags sit in memory
    // a filter cannot read) reports ENOSYS so that libcs fall back to clone.
    let ns_flags: [u64; 7] = [
        0x0002_0000, // CLONE_NEWNS
        0x0200_0000, // CLONE_NEWCGROUP
        0x0400_0000, // CLONE_NEWUTS
        0x0800_0000, // CLONE_NEWIPC
        0x1000_0000, // CLONE_NEWUSER
        0x2000_0000, // CLONE_NEWPID
        0x4000_0000, // CLONE_NEWNET
    ];
    let mut syscalls = vec![
        serde_json::json!({"names": denied.as_slice(), "action": "SCMP_ACT_ERRNO", "errnoRet": EPERM}),
        serde_json::json!({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": ENOSYS}),
    ];
    syscalls.extend(ns_flags.iter().map(|flag| {
        serde_json::json!({
            "names": ["clone"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": EPERM,
            "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
        })
    }));
    let profile = serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls,
    });
    serde_json::from_value(profile).expect("the default profile is a valid LinuxSeccomp")
}

/// Reads a profile file: OCI `linux.seccomp`, or Docker's format (its
/// conditional rules left out).
pub fn load_profile(path: &std::path::Path) -> Result<LinuxSeccomp, EngineError> {
    let bad =
        |why: String| EngineError::Invalid(format!("seccomp profile {}: {why}", path.display()));
    let text = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let mut value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
    let obj = value
        .as_object_mut()
        .ok_or_else(|| bad("not a JSON object".into()))?;
    if let Some(arch_map) = obj.remove("archMap") {
        // Docker lists architectures as a map; keep the main ones.
        if !obj.contains_key("architectures") {
            let archs: Vec<serde_json::Value> = arch_map
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a.get("architecture").cloned())
                .collect();
            obj.insert("architectures".into(), archs.into());
        }
    }
    if let Some(rules) = obj.get_mut("syscalls").and_then(|s| s.as_array_mut()) {
        let conditional = |rule: &serde_json::Value, key: &str| {
            rule.get(key)
                .and_then(|c| c.as_object())
                .is_some_and(|c| !c.is_empty())
        };
        rules.retain(|r| !conditional(r, "includes") && !conditional(r, "excludes"));
        for r in rules.iter_mut().filter_map(|r| r.as_object_mut()) {
            for key in ["includes", "excludes", "comment"] {
                r.remove(key);
            }
            if let Some(name) = r.remove("name") {
                r.entry("names").or_insert_with(|| vec![name].into());
            }
        }
    }
    obj.remove("comment");
    serde_json::from_value(value).map_err(|e| bad(e.to_string()))
}

/// Sets the spec's capabilities, seccomp profile and no_new_privs.
pub fn apply(
    spec: &mut Spec,
    cap_add: &[String],
    cap_drop: &[String],
    opts: &SecurityOpts,
) -> Result<(), EngineError> {
    let set: std::collections::HashSet<Capability> = capability_set(cap_add, cap_drop)?
        .iter()
        .filter_map(|c| c.parse().ok())
        .collect();
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set.clone()));
    caps.set_effective(Some(set.clone()));
    caps.set_permitted(Some(set));
    caps.set_inheritable(None);
    caps.set_ambient(None);
    let process = spec.process_mut().as_mut().expect("spec has a process");
    process.set_capabilities(Some(caps));
    process.set_no_new_privileges(Some(opts.no_new_privileges));
    let seccomp = match &opts.seccomp {
        SeccompChoice::Default => Some(default_profile()),
        SeccompChoice::Unconfined => None,
        SeccompChoice::Profile(path) => Some(load_profile(path)?),
    };
    let linux = spec.linux_mut().as_mut().expect("spec has linux");
    linux.set_seccomp(seccomp);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_arithmetic() {
        let set = capability_set(&[], &[]).unwrap();
        assert_eq!(set.len(), DEFAULT_CAPS.len());
        let set = capability_set(&["cap_sys_admin".into()], &["CHOWN".into()]).unwrap();
        assert!(set.contains("SYS_ADMIN") && !set.contains("CHOWN"));
        let set = capability_set(&["NET_RAW".into()], &["all".into()]).unwrap();
        assert_eq!(set.into_iter().collect::<Vec<_>>(), ["NET_RAW"]);
        assert!(capability_set(&["ALL".into()], &[]).unwrap().len() > 30);
        let err = capability_set(&["CAP_FLY".into()], &[]).unwrap_err();
        assert!(err.to_string().contains("CAP_FLY"), "{err}");
    }

    #[test]
    fn security_opts_parse() {
        let mut o = SecurityOpts::default();
        o.add("seccomp=unconfined").unwrap();
        assert_eq!(o.seccomp, SeccompChoice::Unconfined);
        o.add("seccomp=/p.json").unwrap();
        assert_eq!(o.seccomp, SeccompChoice::Profile("/p.json".into()));
        o.add("no-new-privileges").unwrap();
        assert!(o.no_new_privileges);
        o.add("no-new-privileges:false").unwrap();
        assert!(!o.no_new_privileges);
        assert!(o.add("label=disable").is_err());
        assert!(o.add("seccomp=").is_err());
    }

    #[test]
    fn default_profile_compiles() {
        let p = default_profile();
        assert!(p.syscalls().as_ref().unwrap().len() >= 9);
    }

    #[test]
    fn docker_format_profiles_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.json");
        std::fs::write(
            &path,
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,
               "archMap":[{"architecture":"SCMP_ARCH_X86_64","subArchitectures":[]}],
               "syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW","comment":"x"},
                 {"names":["ptrace"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_PTRACE"]}},
                 {"names":["mount"],"action":"SCMP_ACT_ALLOW","includes":{},"excludes":{}}]}"#,
        )
        .unwrap();
        let p = load_profile(&path).unwrap();
        let rules = p.syscalls().as_ref().unwrap();
        assert_eq!(rules.len(), 2);
        std::fs::write(&path, "[]").unwrap();
        assert!(load_profile(&path).is_err());
    }
}
