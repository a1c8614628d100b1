//! Named volumes: `<root>/volumes/<name>/` holds `volume.json` (written atomically)
//! and `_data/`, the content a container gets bind-mounted for `-v NAME:/dst`.
//! As with Docker, `-v` creates a missing volume, and an empty volume is seeded
//! with what the image has at the destination. A volume is in use while a
//! container's config mounts it; `rm` refuses such a volume without `force`.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{io_err, EngineError};
use crate::lock::EngineLock;
use crate::spec::RunFlags;
use crate::Engine;

/// `volume.json`, and a line of `berth volume ls`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// The name.
    pub name: String,
    /// Creation time, seconds since the epoch.
    pub created: u64,
    /// The directory containers mount (`.../_data`).
    pub mountpoint: PathBuf,
}

/// Letters, digits, `_`, `.`, `-`, starting with a letter or digit (as Docker).
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= 128
}

/// Copies the tree at `from` into the existing directory `to`: directories, files
/// and symlinks (not followed) with their modes and owners; other kinds are skipped.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = fs::symlink_metadata(from)?;
    lchown(to, Some(meta.uid()), Some(meta.gid()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type()?;
        if kind.is_dir() {
            fs::create_dir(&dst)?;
            copy_tree(&src, &dst)?;
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&src)?, &dst)?;
            let m = fs::symlink_metadata(&src)?;
            lchown(&dst, Some(m.uid()), Some(m.gid()))?;
        } else if kind.is_file() {
            fs::copy(&src, &dst)?;
            let m = fs::symlink_metadata(&src)?;
            lchown(&dst, Some(m.uid()), Some(m.gid()))?;
            fs::set_permissions(&dst, fs::Permissions::from_mode(m.mode() & 0o7777))?;
        }
    }
    Ok(())
}

impl Engine {
    fn volumes_dir(&self) -> PathBuf {
        self.root().join("volumes")
    }

    fn volume_dir(&self, name: &str) -> Result<PathBuf, EngineError> {
        if !valid_name(name) {
            return Err(EngineError::Invalid(format!(
                "volume name {name:?}: use letters, digits, '_', '.', '-'"
            )));
        }
        Ok(self.volumes_dir().join(name))
    }

    /// Creates volume `name` (a random one without), or returns it if it exists.
    pub fn volume_create(&self, name: Option<&str>) -> Result<VolumeRecord, EngineError> {
        let _lock = EngineLock::acquire(self.root())?;
        let name = match name {
            Some(n) => n.to_owned(),
            None => super::engine::random_id()?,
        };
        self.ensure_volume(&name).map(|(v, _)| v)
    }

    /// The volume and whether it was made now. The caller holds the engine lock.
    fn ensure_volume(&self, name: &str) -> Result<(VolumeRecord, bool), EngineError> {
        let dir = self.volume_dir(name)?;
        if let Ok(v) = self.volume_inspect(name) {
            return Ok((v, false));
        }
        let data = dir.join("_data");
        fs::create_dir_all(&data).map_err(io_err("creating", &data))?;
        let record = VolumeRecord {
            name: name.to_owned(),
            created: super::engine::now(),
            mountpoint: data,
        };
        let (tmp, path) = (dir.join(".volume.json.tmp"), dir.join("volume.json"));
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&tmp)?;
            serde_json::to_writer_pretty(&mut f, &record)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(io_err("writing volume record", &path))?;
        Ok((record, true))
    }

    /// Volume `name`.
    pub fn volume_inspect(&self, name: &str) -> Result<VolumeRecord, EngineError> {
        let path = self.volume_dir(name)?.join("volume.json");
        let bytes = fs::read(&path).map_err(|_| EngineError::VolumeNotFound(name.to_owned()))?;
        serde_json::from_slice(&bytes).map_err(|e| EngineError::Io {
            action: "parsing volume record",
            path,
            source: e.into(),
        })
    }

    /// Every volume, by name.
    pub fn volume_list(&self) -> Result<Vec<VolumeRecord>, EngineError> {
        let dir = self.volumes_dir();
        let mut out: Vec<VolumeRecord> = match fs::read_dir(&dir) {
            Ok(rd) => rd
                .flatten()
                .filter_map(|e| self.volume_inspect(&e.file_name().to_string_lossy()).ok())
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(e) => return Err(io_err("listing", &dir)(e)),
        };
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Names of the containers whose config mounts `volume`.
    fn volume_users(&self, volume: &VolumeRecord) -> Result<Vec<String>, EngineError> {
        let mut users = Vec::new();
        for c in self.list_containers(true)? {
            let config = self.root().join("containers").join(&c.record.id);
            let Ok(spec) = oci_spec::runtime::Spec::load(config.join("config.json")) else {
                continue;
            };
            let mounts = spec.mounts().clone().unwrap_or_default();
            if mounts
                .iter()
                .any(|m| m.source().as_deref() == Some(volume.mountpoint.as_path()))
            {
                users.push(c.record.name);
            }
        }
        Ok(users)
    }

    /// Removes volume `name`; one in use only with `force`.
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<(), EngineError> {
        let _lock = EngineLock::acquire(self.root())?;
        let volume = self.volume_inspect(name)?;
        if let (false, Some(user)) = (force, self.volume_users(&volume)?.into_iter().next()) {
            return Err(EngineError::VolumeInUse {
                volume: name.to_owned(),
                container: user,
            });
        }
        let dir = self.volume_dir(name)?;
        fs::remove_dir_all(&dir).map_err(io_err("removing", &dir))
    }

    /// Removes every volume no container uses; returns their names.
    pub fn volume_prune(&self) -> Result<Vec<String>, EngineError> {
        let mut removed = Vec::new();
        for v in self.volume_list()? {
            if self.volume_users(&v)?.is_empty() && self.volume_remove(&v.name, false).is_ok() {
                removed.push(v.name);
            }
        }
        Ok(removed)
    }

    /// `flags` with each named volume replaced by its directory, created (and seeded
    /// from the image at its destination while empty). The caller holds the lock.
    pub(crate) fn resolve_volumes(
        &self,
        flags: &RunFlags,
        rootfs: &Path,
    ) -> Result<RunFlags, EngineError> {
        let mut flags = flags.clone();
        for v in flags.volumes.iter_mut().filter(|v| v.named) {
            let (volume, _) = self.ensure_volume(&v.source.to_string_lossy())?;
            let empty = fs::read_dir(&volume.mountpoint)
                .map_err(io_err("reading", &volume.mountpoint))?
                .next()
                .is_none();
            if empty {
                seed(rootfs, &v.destination, &volume.mountpoint)?;
            }
            v.source = volume.mountpoint;
            v.named = false;
        }
        Ok(flags)
    }
}

/// Copies what the image has at `dest` (resolved inside `rootfs`) into `data`.
fn seed(rootfs: &Path, dest: &str, data: &Path) -> Result<(), EngineError> {
    let root = berth_rootfs::Root::open(rootfs).map_err(|e| EngineError::Invalid(e.to_string()))?;
    let Ok(Some(fd)) = root.open_existing(Path::new(dest)) else {
        return Ok(()); // nothing there: the volume stays empty
    };
    use std::os::fd::AsRawFd;
    let src = PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    if !src.is_dir() {
        return Ok(());
    }
    // Through the fd's magic link, then no symlink is followed: nothing outside
    // the rootfs is read.
    let resolved = fs::read_link(&src).map_err(io_err("resolving", &src))?;
    copy_tree(&resolved, data).map_err(io_err("seeding the volume from", resolved))
}
