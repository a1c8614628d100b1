//! The container process's credentials: rlimits, user and groups, capabilities,
//! no_new_privs. Applied by the init just before it waits for `start`.

use caps::errors::CapsError;
use caps::{CapSet, Capability as Cap, CapsHashSet};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::unistd::{setgroups, setresgid, setresuid, Gid, Uid};
use oci_spec::runtime::{LinuxCapabilities, PosixRlimit, PosixRlimitType, Process};

use crate::sys;

/// What went wrong setting credentials.
#[derive(Debug, thiserror::Error)]
pub enum CredsError {
    #[error("setting {name} to {soft}:{hard}: {source}")]
    Rlimit {
        name: String,
        soft: u64,
        hard: u64,
        source: nix::Error,
    },
    #[error("setting {name} to {soft}:{hard}: the hard limit here is {current}, and raising it needs CAP_SYS_RESOURCE, which this host's capability bounding set does not have")]
    RlimitAboveHard {
        name: String,
        soft: u64,
        hard: u64,
        current: u64,
    },
    #[error("writing oom_score_adj {value}: {source}")]
    OomScore { value: i32, source: std::io::Error },
    #[error("{action}: {source}")]
    Sys { action: String, source: nix::Error },
    #[error("{action}: {source}")]
    Caps {
        action: String,
        source: caps::errors::CapsError,
    },
}

fn sys_err(action: impl Into<String>) -> impl FnOnce(nix::Error) -> CredsError {
    let action = action.into();
    move |source| CredsError::Sys { action, source }
}

/// The credential syscalls, narrow enough for a recording fake in unit tests.
pub trait CredSys {
    fn getrlimit(&self, res: Resource) -> nix::Result<(u64, u64)>;
    fn setrlimit(&self, res: Resource, soft: u64, hard: u64) -> nix::Result<()>;
    fn set_keep_caps(&self, on: bool) -> nix::Result<()>;
    fn setgroups(&self, groups: &[Gid]) -> nix::Result<()>;
    fn setresgid(&self, gid: Gid) -> nix::Result<()>;
    fn setresuid(&self, uid: Uid) -> nix::Result<()>;
    fn read_caps(&self, set: CapSet) -> Result<CapsHashSet, CapsError>;
    fn drop_bounding(&self, cap: Cap) -> Result<(), CapsError>;
    fn set_caps(&self, set: CapSet, value: &CapsHashSet) -> Result<(), CapsError>;
    fn raise_ambient(&self, cap: Cap) -> Result<(), CapsError>;
}

/// The kernel.
pub struct RealCredSys;

impl CredSys for RealCredSys {
    fn getrlimit(&self, res: Resource) -> nix::Result<(u64, u64)> {
        getrlimit(res)
    }
    fn setrlimit(&self, res: Resource, soft: u64, hard: u64) -> nix::Result<()> {
        setrlimit(res, soft, hard)
    }
    fn set_keep_caps(&self, on: bool) -> nix::Result<()> {
        sys::set_keep_caps(on)
    }
    fn setgroups(&self, groups: &[Gid]) -> nix::Result<()> {
        setgroups(groups)
    }
    fn setresgid(&self, gid: Gid) -> nix::Result<()> {
        setresgid(gid, gid, gid)
    }
    fn setresuid(&self, uid: Uid) -> nix::Result<()> {
        setresuid(uid, uid, uid)
    }
    fn read_caps(&self, set: CapSet) -> Result<CapsHashSet, CapsError> {
        caps::read(None, set)
    }
    fn drop_bounding(&self, cap: Cap) -> Result<(), CapsError> {
        caps::drop(None, CapSet::Bounding, cap)
    }
    fn set_caps(&self, set: CapSet, value: &CapsHashSet) -> Result<(), CapsError> {
        caps::set(None, set, value)
    }
    fn raise_ambient(&self, cap: Cap) -> Result<(), CapsError> {
        caps::raise(None, CapSet::Ambient, cap)
    }
}

/// Map an OCI rlimit type to nix's resource.
pub fn resource(typ: PosixRlimitType) -> Resource {
    use PosixRlimitType as T;
    match typ {
        T::RlimitCpu => Resource::RLIMIT_CPU,
        T::RlimitFsize => Resource::RLIMIT_FSIZE,
        T::RlimitData => Resource::RLIMIT_DATA,
        T::RlimitStack => Resource::RLIMIT_STACK,
        T::RlimitCore => Resource::RLIMIT_CORE,
        T::RlimitRss => Resource::RLIMIT_RSS,
        T::RlimitNproc => Resource::RLIMIT_NPROC,
        T::RlimitNofile => Resource::RLIMIT_NOFILE,
        T::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        T::RlimitAs => Resource::RLIMIT_AS,
        T::RlimitLocks => Resource::RLIMIT_LOCKS,
        T::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        T::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        T::RlimitNice => Resource::RLIMIT_NICE,
        T::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        T::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

/// The spec's name for an rlimit type ("RLIMIT_NOFILE").
pub fn rlimit_name(typ: PosixRlimitType) -> String {
    serde_json::to_value(typ)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{typ:?}"))
}

/// Apply every rlimit, explaining the failure when a hard limit would have to rise.
pub fn apply_rlimits(sys: &dyn CredSys, limits: &[PosixRlimit]) -> Result<(), CredsError> {
    for l in limits {
        let res = resource(l.typ());
        if let Err(source) = sys.setrlimit(res, l.soft(), l.hard()) {
            let name = rlimit_name(l.typ());
            let current = sys.getrlimit(res).map(|(_, h)| h).unwrap_or(0);
            if source == nix::Error::EPERM && l.hard() > current {
                return Err(CredsError::RlimitAboveHard {
                    name,
                    soft: l.soft(),
                    hard: l.hard(),
                    current,
                });
            }
            return Err(CredsError::Rlimit {
                name,
                soft: l.soft(),
                hard: l.hard(),
                source,
            });
        }
    }
    Ok(())
}

/// Write /proc/self/oom_score_adj.
pub fn set_oom_score_adj(value: i32) -> Result<(), CredsError> {
    std::fs::write("/proc/self/oom_score_adj", value.to_string())
        .map_err(|source| CredsError::OomScore { value, source })
}

fn to_caps(set: &Option<oci_spec::runtime::Capabilities>) -> CapsHashSet {
    set.iter()
        .flatten()
        .filter_map(|c| format!("CAP_{c}").parse::<Cap>().ok())
        .collect()
}

/// Switch to the process's user and groups and set the five capability sets.
/// `setgroups_allowed` is false in a user namespace whose setgroups is denied.
pub fn apply_user_and_caps(
    sys: &dyn CredSys,
    process: &Process,
    setgroups_allowed: bool,
) -> Result<(), CredsError> {
    let caps = process.capabilities().clone().unwrap_or_default();
    let bounding = drop_bounding(sys, &caps)?;
    sys.set_keep_caps(true)
        .map_err(sys_err("setting PR_SET_KEEPCAPS"))?;
    let user = process.user();
    if setgroups_allowed {
        let groups: Vec<Gid> = user
            .additional_gids()
            .iter()
            .flatten()
            .map(|g| Gid::from_raw(*g))
            .collect();
        sys.setgroups(&groups)
            .map_err(sys_err(format!("setting groups {groups:?}")))?;
    }
    let (uid, gid) = (Uid::from_raw(user.uid()), Gid::from_raw(user.gid()));
    sys.setresgid(gid)
        .map_err(sys_err(format!("setting gid {gid}")))?;
    sys.setresuid(uid)
        .map_err(sys_err(format!("setting uid {uid}")))?;
    sys.set_keep_caps(false)
        .map_err(sys_err("clearing PR_SET_KEEPCAPS"))?;
    set_caps(sys, &caps, &bounding)
}

fn caps_err(action: &str) -> impl FnOnce(CapsError) -> CredsError + '_ {
    move |source| CredsError::Caps {
        action: action.to_string(),
        source,
    }
}

/// Drop what the spec's bounding set lacks; returns the bounding set left.
fn drop_bounding(sys: &dyn CredSys, caps: &LinuxCapabilities) -> Result<CapsHashSet, CredsError> {
    let keep = to_caps(caps.bounding());
    let current = sys
        .read_caps(CapSet::Bounding)
        .map_err(caps_err("reading bounding set"))?;
    let mut dropped: Vec<Cap> = current.difference(&keep).copied().collect();
    dropped.sort_by_key(|c| c.index());
    for cap in dropped {
        sys.drop_bounding(cap)
            .map_err(caps_err(&format!("dropping {cap} from the bounding set")))?;
    }
    Ok(current.intersection(&keep).copied().collect())
}

fn set_caps(
    sys: &dyn CredSys,
    caps: &LinuxCapabilities,
    bounding: &CapsHashSet,
) -> Result<(), CredsError> {
    let clamp = |s: CapsHashSet| -> CapsHashSet { s.intersection(bounding).copied().collect() };
    let permitted = clamp(to_caps(caps.permitted()));
    let effective: CapsHashSet = clamp(to_caps(caps.effective()))
        .intersection(&permitted)
        .copied()
        .collect();
    let inheritable = clamp(to_caps(caps.inheritable()));
    // Inheritable first (needs the full permitted set), then effective (a subset of the
    // new permitted set), then permitted (which must still contain effective).
    sys.set_caps(CapSet::Inheritable, &inheritable)
        .map_err(caps_err("setting inheritable capabilities"))?;
    sys.set_caps(CapSet::Effective, &effective)
        .map_err(caps_err("setting effective capabilities"))?;
    sys.set_caps(CapSet::Permitted, &permitted)
        .map_err(caps_err("setting permitted capabilities"))?;
    let mut ambient: Vec<Cap> = to_caps(caps.ambient())
        .into_iter()
        .filter(|c| permitted.contains(c) && inheritable.contains(c))
        .collect();
    ambient.sort_by_key(|c| c.index());
    sys.set_caps(CapSet::Ambient, &CapsHashSet::new())
        .map_err(caps_err("clearing ambient capabilities"))?;
    for cap in ambient {
        sys.raise_ambient(cap)
            .map_err(caps_err(&format!("raising ambient {cap}")))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rlimit_names_match_the_spec() {
        assert_eq!(rlimit_name(PosixRlimitType::RlimitNofile), "RLIMIT_NOFILE");
        assert_eq!(
            resource(PosixRlimitType::RlimitNproc),
            Resource::RLIMIT_NPROC
        );
    }

    #[test]
    fn spec_capability_names_convert() {
        let set: oci_spec::runtime::Capabilities =
            serde_json::from_str(r#"["CAP_KILL","CAP_NET_BIND_SERVICE","CAP_AUDIT_WRITE"]"#)
                .unwrap();
        let caps = to_caps(&Some(set));
        assert!(caps.contains(&Cap::CAP_KILL));
        assert!(caps.contains(&Cap::CAP_NET_BIND_SERVICE));
        assert_eq!(caps.len(), 3);
    }

    use std::cell::RefCell;

    /// Records every call; fails setrlimit with EPERM above `hard_limit`.
    #[derive(Default)]
    struct Fake {
        calls: RefCell<Vec<String>>,
        hard_limit: u64,
        bounding: CapsHashSet,
    }

    impl Fake {
        fn log(&self, s: String) {
            self.calls.borrow_mut().push(s);
        }
        fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
    }

    fn names(set: &CapsHashSet) -> String {
        let mut v: Vec<String> = set.iter().map(|c| c.to_string()).collect();
        v.sort();
        v.join(",")
    }

    impl CredSys for Fake {
        fn getrlimit(&self, _: Resource) -> nix::Result<(u64, u64)> {
            Ok((self.hard_limit, self.hard_limit))
        }
        fn setrlimit(&self, res: Resource, soft: u64, hard: u64) -> nix::Result<()> {
            self.log(format!("setrlimit {res:?} {soft} {hard}"));
            if hard > self.hard_limit {
                return Err(nix::Error::EPERM);
            }
            Ok(())
        }
        fn set_keep_caps(&self, on: bool) -> nix::Result<()> {
            self.log(format!("keepcaps {on}"));
            Ok(())
        }
        fn setgroups(&self, groups: &[Gid]) -> nix::Result<()> {
            self.log(format!("setgroups {groups:?}"));
            Ok(())
        }
        fn setresgid(&self, gid: Gid) -> nix::Result<()> {
            self.log(format!("setresgid {gid}"));
            Ok(())
        }
        fn setresuid(&self, uid: Uid) -> nix::Result<()> {
            self.log(format!("setresuid {uid}"));
            Ok(())
        }
        fn read_caps(&self, _: CapSet) -> Result<CapsHashSet, CapsError> {
            Ok(self.bounding.clone())
        }
        fn drop_bounding(&self, cap: Cap) -> Result<(), CapsError> {
            self.log(format!("drop {cap}"));
            Ok(())
        }
        fn set_caps(&self, set: CapSet, value: &CapsHashSet) -> Result<(), CapsError> {
            self.log(format!("set {set:?} [{}]", names(value)));
            Ok(())
        }
        fn raise_ambient(&self, cap: Cap) -> Result<(), CapsError> {
            self.log(format!("ambient {cap}"));
            Ok(())
        }
    }

    fn process(json: &str) -> Process {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn rlimit_above_the_hard_limit_names_the_missing_capability() {
        let fake = Fake {
            hard_limit: 1024,
            ..Default::default()
        };
        let limits: Vec<PosixRlimit> = serde_json::from_str(
            r#"[{"type":"RLIMIT_CORE","soft":0,"hard":0},{"type":"RLIMIT_NOFILE","soft":2048,"hard":2048}]"#,
        )
        .unwrap();
        let err = apply_rlimits(&fake, &limits).unwrap_err().to_string();
        assert!(
            err.contains("RLIMIT_NOFILE")
                && err.contains("CAP_SYS_RESOURCE")
                && err.contains("1024"),
            "{err}"
        );
        assert_eq!(
            fake.calls().len(),
            2,
            "stops at the failing limit: {:?}",
            fake.calls()
        );
    }

    #[test]
    fn user_switch_and_capabilities_happen_in_a_safe_order() {
        let fake = Fake {
            bounding: [
                Cap::CAP_CHOWN,
                Cap::CAP_KILL,
                Cap::CAP_SETUID,
                Cap::CAP_NET_RAW,
            ]
            .into_iter()
            .collect(),
            ..Default::default()
        };
        let p = process(
            r#"{"cwd":"/","user":{"uid":1000,"gid":100,"additionalGids":[5,6]},
                "capabilities":{"bounding":["CAP_CHOWN","CAP_KILL"],"permitted":["CAP_CHOWN","CAP_KILL"],
                "effective":["CAP_KILL","CAP_NET_RAW"],"inheritable":["CAP_KILL"],
                "ambient":["CAP_KILL","CAP_CHOWN"]}}"#,
        );
        apply_user_and_caps(&fake, &p, true).unwrap();
        assert_eq!(
            fake.calls(),
            vec![
                "drop CAP_SETUID",
                "drop CAP_NET_RAW",
                "keepcaps true",
                "setgroups [Gid(5), Gid(6)]",
                "setresgid 100",
                "setresuid 1000",
                "keepcaps false",
                "set Inheritable [CAP_KILL]",
                // NET_RAW is outside the bounding set: never effective.
                "set Effective [CAP_KILL]",
                "set Permitted [CAP_CHOWN,CAP_KILL]",
                "set Ambient []",
                // CHOWN is not inheritable, so it cannot be ambient.
                "ambient CAP_KILL",
            ]
        );
    }

    #[test]
    fn setgroups_is_skipped_where_denied() {
        let fake = Fake::default();
        apply_user_and_caps(
            &fake,
            &process(r#"{"cwd":"/","user":{"uid":0,"gid":0}}"#),
            false,
        )
        .unwrap();
        assert!(
            !fake.calls().iter().any(|c| c.starts_with("setgroups")),
            "{:?}",
            fake.calls()
        );
    }
}
