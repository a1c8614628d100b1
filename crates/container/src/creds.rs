//! The container process's credentials: rlimits, user and groups, capabilities,
//! no_new_privs. Applied by the init just before it waits for `start`.

use std::collections::HashSet;

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

fn sys(action: impl Into<String>) -> impl FnOnce(nix::Error) -> CredsError {
    let action = action.into();
    move |source| CredsError::Sys { action, source }
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
pub fn apply_rlimits(limits: &[PosixRlimit]) -> Result<(), CredsError> {
    for l in limits {
        let res = resource(l.typ());
        if let Err(source) = setrlimit(res, l.soft(), l.hard()) {
            let name = rlimit_name(l.typ());
            let current = getrlimit(res).map(|(_, h)| h).unwrap_or(0);
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
pub fn apply_user_and_caps(process: &Process, setgroups_allowed: bool) -> Result<(), CredsError> {
    let caps = process.capabilities().clone().unwrap_or_default();
    drop_bounding(&caps)?;
    sys::set_keep_caps(true).map_err(sys("setting PR_SET_KEEPCAPS"))?;
    let user = process.user();
    if setgroups_allowed {
        let groups: Vec<Gid> = user
            .additional_gids()
            .iter()
            .flatten()
            .map(|g| Gid::from_raw(*g))
            .collect();
        setgroups(&groups).map_err(sys(format!("setting groups {groups:?}")))?;
    }
    let (uid, gid) = (Uid::from_raw(user.uid()), Gid::from_raw(user.gid()));
    setresgid(gid, gid, gid).map_err(sys(format!("setting gid {gid}")))?;
    setresuid(uid, uid, uid).map_err(sys(format!("setting uid {uid}")))?;
    sys::set_keep_caps(false).map_err(sys("clearing PR_SET_KEEPCAPS"))?;
    set_caps(&caps)
}

fn caps_err(action: &str) -> impl FnOnce(caps::errors::CapsError) -> CredsError + '_ {
    move |source| CredsError::Caps {
        action: action.to_string(),
        source,
    }
}

fn drop_bounding(caps: &LinuxCapabilities) -> Result<(), CredsError> {
    let keep = to_caps(caps.bounding());
    let current = caps::read(None, CapSet::Bounding).map_err(caps_err("reading bounding set"))?;
    for cap in current.difference(&keep) {
        caps::drop(None, CapSet::Bounding, *cap)
            .map_err(caps_err(&format!("dropping {cap} from the bounding set")))?;
    }
    Ok(())
}

fn set_caps(caps: &LinuxCapabilities) -> Result<(), CredsError> {
    let bounding = caps::read(None, CapSet::Bounding).map_err(caps_err("reading bounding set"))?;
    let clamp = |s: CapsHashSet| -> CapsHashSet { s.intersection(&bounding).copied().collect() };
    let permitted = clamp(to_caps(caps.permitted()));
    let effective: CapsHashSet = clamp(to_caps(caps.effective()))
        .intersection(&permitted)
        .copied()
        .collect();
    let inheritable = clamp(to_caps(caps.inheritable()));
    // Inheritable first (needs the full permitted set), then effective (a subset of the
    // new permitted set), then permitted (which must still contain effective).
    caps::set(None, CapSet::Inheritable, &inheritable)
        .map_err(caps_err("setting inheritable capabilities"))?;
    caps::set(None, CapSet::Effective, &effective)
        .map_err(caps_err("setting effective capabilities"))?;
    caps::set(None, CapSet::Permitted, &permitted)
        .map_err(caps_err("setting permitted capabilities"))?;
    let ambient: HashSet<Cap> = to_caps(caps.ambient())
        .into_iter()
        .filter(|c| permitted.contains(c) && inheritable.contains(c))
        .collect();
    caps::clear(None, CapSet::Ambient).map_err(caps_err("clearing ambient capabilities"))?;
    for cap in ambient {
        caps::raise(None, CapSet::Ambient, cap)
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
}
