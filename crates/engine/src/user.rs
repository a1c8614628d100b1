//! `User` of an image config or `-u`: `uid[:gid]`, or names looked up in the
//! image's `/etc/passwd` and `/etc/group`, read inside the rootfs (every path is
//! resolved with `openat2(RESOLVE_IN_ROOT)`, so an image's symlinks cannot point
//! the engine at the host's files).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

use crate::error::EngineError;

/// The ids a container's process runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    /// The user id.
    pub uid: u32,
    /// The primary group id.
    pub gid: u32,
    /// Supplementary groups (those of `/etc/group` listing the user by name).
    pub additional_gids: Vec<u32>,
}

/// Reads `path` (absolute, inside `rootfs`) at most 1 MiB; `None` when missing.
fn read_in_root(rootfs: &Path, path: &str) -> Option<String> {
    let root = File::open(rootfs).ok()?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let fd = openat2(&root, path, how).ok()?;
    let mut text = String::new();
    File::from(fd)
        .take(1 << 20)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// `(name, id, extra)` of each well-formed line of a passwd- or group-like file.
fn entries(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4 && f[2].parse::<u32>().is_ok())
}

/// Resolves `spec` (`user`, `user:group`, `uid`, `uid:gid`; empty means root).
pub fn resolve(rootfs: &Path, spec: &str) -> Result<Ids, EngineError> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let passwd = read_in_root(rootfs, "/etc/passwd").unwrap_or_default();
    let groups = read_in_root(rootfs, "/etc/group").unwrap_or_default();
    let by_name = entries(&passwd).find(|f| f[0] == user);
    let (uid, name, mut gid) = match user.parse::<u32>() {
        Ok(uid) => {
            let entry = entries(&passwd).find(|f| f[2] == user);
            let gid = entry.as_ref().and_then(|f| f[3].parse().ok()).unwrap_or(0);
            (uid, entry.map(|f| f[0].to_owned()), gid)
        }
        Err(_) => {
            let f = by_name.ok_or_else(|| {
                EngineError::Invalid(format!(
                    "user {user:?} not found in the image's /etc/passwd"
                ))
            })?;
            let gid = f[3].parse().unwrap_or(0);
            (f[2].parse().unwrap_or(0), Some(f[0].to_owned()), gid)
        }
    };
    if let Some(group) = group {
        gid = match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => entries(&groups)
                .find(|f| f[0] == group)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| {
                    EngineError::Invalid(format!(
                        "group {group:?} not found in the image's /etc/group"
                    ))
                })?,
        };
    }
    let mut additional_gids = Vec::new();
    if let Some(name) = name {
        for f in entries(&groups) {
            let member = f[3].split(',').any(|m| m == name);
            let id: u32 = f[2].parse().unwrap_or(0);
            if member && id != gid && !additional_gids.contains(&id) {
                additional_gids.push(id);
            }
        }
    }
    Ok(Ids {
        uid,
        gid,
        additional_gids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nweb:x:33:34::/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nwebg:x:34:\nusers:x:100:web,other\n",
        )
        .unwrap();
        dir
    }

    #[test]
    fn names_and_numbers() {
        let dir = root();
        let ids = |s| resolve(dir.path(), s).unwrap();
        assert_eq!(
            ids(""),
            Ids {
                uid: 0,
                gid: 0,
                additional_gids: vec![]
            }
        );
        assert_eq!(
            ids("web"),
            Ids {
                uid: 33,
                gid: 34,
                additional_gids: vec![100]
            }
        );
        assert_eq!(
            ids("1000"),
            Ids {
                uid: 1000,
                gid: 0,
                additional_gids: vec![]
            }
        );
        assert_eq!(
            ids("1000:5"),
            Ids {
                uid: 1000,
                gid: 5,
                additional_gids: vec![]
            }
        );
        assert_eq!(ids("33:users").gid, 100);
        assert!(resolve(dir.path(), "nobody").is_err());
        assert!(resolve(dir.path(), "root:nogroup").is_err());
    }

    #[test]
    fn symlinks_stay_in_the_root() {
        let dir = root();
        std::fs::remove_file(dir.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("etc/passwd")).unwrap();
        // The host's root entry must not be found through the link: /etc/passwd in
        // the root is the link itself, which resolves to itself → missing.
        assert!(resolve(dir.path(), "root").is_err());
    }
}
