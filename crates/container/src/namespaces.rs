//! Which namespaces a container creates and which it joins, and doing either.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use nix::sched::{setns, unshare, CloneFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// What went wrong entering a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("opening {kind} namespace {path}: {source}")]
    Open {
        kind: LinuxNamespaceType,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("joining {kind} namespace {path}: {source}")]
    Join {
        kind: LinuxNamespaceType,
        path: PathBuf,
        source: nix::Error,
    },
    #[error("creating namespaces {flags:?}: {source}")]
    Unshare {
        flags: CloneFlags,
        source: nix::Error,
    },
}

/// The namespace plan taken from `linux.namespaces`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Namespaces {
    /// Namespaces to create, as clone flags (CLONE_NEWUSER handled separately).
    pub create: Vec<LinuxNamespaceType>,
    /// Namespaces to join: (kind, path). A user namespace comes first.
    pub join: Vec<(LinuxNamespaceType, PathBuf)>,
}

impl Namespaces {
    pub fn from_spec(spec: &Spec) -> Self {
        let mut plan = Namespaces::default();
        let list = spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default();
        for ns in list {
            match ns.path() {
                Some(p) => plan.join.push((ns.typ(), p.clone())),
                None => plan.create.push(ns.typ()),
            }
        }
        plan.join
            .sort_by_key(|(k, _)| *k != LinuxNamespaceType::User);
        plan
    }

    pub fn creates(&self, kind: LinuxNamespaceType) -> bool {
        self.create.contains(&kind)
    }

    /// Has its own namespace of `kind`, new or joined.
    pub fn has(&self, kind: LinuxNamespaceType) -> bool {
        self.creates(kind) || self.join.iter().any(|(k, _)| *k == kind)
    }

    /// Clone flags for every namespace to create except the user namespace.
    pub fn unshare_flags(&self) -> CloneFlags {
        self.create
            .iter()
            .filter(|k| **k != LinuxNamespaceType::User)
            .fold(CloneFlags::empty(), |acc, k| acc | flag(*k))
    }

    /// Open every namespace to join (done before forking, while paths resolve in the
    /// runtime's own mount namespace).
    pub fn open_joins(&self) -> Result<Vec<(LinuxNamespaceType, PathBuf, File)>, NamespaceError> {
        self.join
            .iter()
            .map(|(kind, path)| {
                File::open(path)
                    .map(|f| (*kind, path.clone(), f))
                    .map_err(|source| NamespaceError::Open {
                        kind: *kind,
                        path: path.clone(),
                        source,
                    })
            })
            .collect()
    }
}

/// The clone flag for a namespace kind.
pub fn flag(kind: LinuxNamespaceType) -> CloneFlags {
    CloneFlags::from_bits_retain(kind as i32)
}

/// Join one opened namespace.
pub fn join(kind: LinuxNamespaceType, path: &Path, file: &File) -> Result<(), NamespaceError> {
    setns(file.as_fd(), flag(kind)).map_err(|source| NamespaceError::Join {
        kind,
        path: path.to_path_buf(),
        source,
    })
}

/// Create namespaces with unshare(2).
pub fn create(flags: CloneFlags) -> Result<(), NamespaceError> {
    if flags.is_empty() {
        return Ok(());
    }
    unshare(flags).map_err(|source| NamespaceError::Unshare { flags, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_namespace_is_joined_first_and_flags_exclude_it() {
        let spec: Spec = serde_json::from_str(
            r#"{"ociVersion":"1.2.0","linux":{"namespaces":[
                {"type":"network","path":"/run/netns/x"},
                {"type":"user","path":"/proc/1/ns/user"},
                {"type":"pid"},{"type":"mount"},{"type":"time"}]}}"#,
        )
        .unwrap();
        let ns = Namespaces::from_spec(&spec);
        assert_eq!(ns.join[0].0, LinuxNamespaceType::User);
        assert_eq!(
            ns.unshare_flags(),
            CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::from_bits_retain(0x80)
        );
        assert!(ns.has(LinuxNamespaceType::Network));
        assert!(!ns.creates(LinuxNamespaceType::Network));
    }
}
