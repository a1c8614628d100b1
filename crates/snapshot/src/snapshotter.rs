//! The overlay snapshotter, with containerd's lifecycle.
//!
//! A snapshot is a directory `<root>/snapshots/<id>/fs` (plus `work` for overlayfs)
//! known under a key in `<root>/metadata.json`. Snapshots are one of three kinds:
//!
//! - **active** (`prepare(key, parent)`): writable. Mounted as an overlay whose upper
//!   is its own `fs` and whose lowers are the parent chain; with no parent, a
//!   read-write bind of `fs`. Layers are built this way: prepare on top of the
//!   previous layer, unpack the layer into the snapshot ([`Snapshotter::unpack`]),
//!   then `commit` it under the layer's chain id. A container's root is an active
//!   snapshot on top of the image's last layer.
//! - **view** (`view(key, parent)`): read-only. A single-layer parent is a read-only
//!   bind of that layer; more layers an overlay of lowers only.
//! - **committed** (`commit(name, key)`): immutable, the only kind that may be a
//!   parent. Never mounted directly.
//!
//! `remove` refuses a snapshot that is the parent of another. Every operation holds a
//! `flock` on `<root>/lock` (exclusive to change, shared to read), and the metadata is
//! replaced atomically (temp file, fsync, rename). A crash between creating a
//! snapshot's directory and recording it leaves an unreferenced directory behind.
//!
//! Limits: the overlay options must fit one page ([`crate::mount::MAX_MOUNT_DATA`]),
//! which bounds the chain to roughly 60–100 layers depending on the root's length;
//! longer chains fail at mount time with `MountError::TooLong` (containerd works
//! around this with short symlinked paths; that is not done here). The root path must
//! not contain `:` or `,`, which overlay options cannot escape.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::mount::Mount;
use crate::unpack::{unpack_layer, Limits, UnpackError, UnpackStats};

/// The kind of a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Writable, from `prepare`.
    Active,
    /// Read-only, from `view`.
    View,
    /// Immutable, from `commit`; may be a parent.
    Committed,
}

/// What is known about one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// Its key (for committed snapshots, the name given to `commit`).
    pub key: String,
    /// Its kind.
    pub kind: Kind,
    /// The committed snapshot it sits on.
    pub parent: Option<String>,
    /// Creation (or commit) time, seconds since the epoch.
    pub created: u64,
}

/// The disk a snapshot's own directory uses (not its parents').
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Bytes allocated (hard links counted once).
    pub size: u64,
    /// Inodes, the top directory included.
    pub inodes: u64,
}

/// Why a snapshot operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The root path cannot be used in overlay options.
    #[error("snapshot root {0}: path must be absolute and contain no ':' or ','")]
    BadRoot(PathBuf),
    /// A filesystem operation failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Taking the metadata lock failed.
    #[error("locking {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// The metadata file is not valid.
    #[error("parsing snapshot metadata {path}")]
    Metadata {
        /// The metadata file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// No snapshot has this key.
    #[error("snapshot {0} not found")]
    NotFound(String),
    /// A snapshot with this key exists already.
    #[error("snapshot {0} already exists")]
    AlreadyExists(String),
    /// The parent is not a committed snapshot.
    #[error("preparing {key}: parent {parent} is not committed")]
    ParentNotCommitted {
        /// The snapshot being prepared.
        key: String,
        /// Its parent.
        parent: String,
    },
    /// The operation needs an active snapshot.
    #[error("{op} {key}: snapshot is {kind:?}, not active")]
    NotActive {
        /// What was being done.
        op: &'static str,
        /// The snapshot.
        key: String,
        /// Its kind.
        kind: Kind,
    },
    /// A committed snapshot cannot be mounted.
    #[error("mounting {0}: committed snapshots are not mounted, prepare or view one")]
    Committed(String),
    /// The snapshot is the parent of others.
    #[error("removing {key}: it is the parent of {child}")]
    HasChildren {
        /// The snapshot.
        key: String,
        /// One of its children.
        child: String,
    },
    /// An empty key.
    #[error("snapshot key must not be empty")]
    EmptyKey,
    /// Unpacking a layer into the snapshot failed.
    #[error("unpacking layer into snapshot {key}")]
    Unpack {
        /// The snapshot.
        key: String,
        /// The cause.
        #[source]
        source: UnpackError,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Metadata {
    next_id: u64,
    snapshots: BTreeMap<String, Record>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    id: u64,
    kind: Kind,
    parent: Option<String>,
    created: u64,
}

impl Metadata {
    fn get(&self, key: &str) -> Result<&Record, SnapshotError> {
        self.snapshots
            .get(key)
            .ok_or_else(|| SnapshotError::NotFound(key.to_owned()))
    }

    /// The ids of `parent` and its ancestors, nearest first.
    fn chain(&self, parent: Option<&str>) -> Result<Vec<u64>, SnapshotError> {
        let mut ids = Vec::new();
        let mut next = parent;
        while let Some(key) = next {
            let record = self.get(key)?;
            ids.push(record.id);
            next = record.parent.as_deref();
        }
        Ok(ids)
    }
}

/// Snapshots under one root directory.
#[derive(Debug, Clone)]
pub struct Snapshotter {
    root: PathBuf,
}

impl Snapshotter {
    /// Open (creating if needed) the snapshotter at `root`, an absolute path.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, SnapshotError> {
        let root = root.into();
        let text = root.to_string_lossy();
        if !root.is_absolute() || text.contains([':', ',']) {
            return Err(SnapshotError::BadRoot(root));
        }
        let snapshots = root.join("snapshots");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&snapshots)
            .map_err(io_err("creating", &snapshots))?;
        Ok(Self { root })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Create an active (writable) snapshot `key` on top of the committed `parent`
    /// and return how to mount it.
    pub fn prepare(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError> {
        self.create(key, parent, Kind::Active)
    }

    /// Create a read-only view `key` of the committed `parent` and return how to mount
    /// it.
    pub fn view(&self, key: &str, parent: Option<&str>) -> Result<Vec<Mount>, SnapshotError> {
        self.create(key, parent, Kind::View)
    }

    /// How to mount the active snapshot or view `key`.
    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>, SnapshotError> {
        let _lock = self.lock(FlockArg::LockShared)?;
        let meta = self.load()?;
        self.mounts_of(&meta, key)
    }

    /// Turn the active snapshot `key` into the committed snapshot `name`.
    pub fn commit(&self, name: &str, key: &str) -> Result<(), SnapshotError> {
        self.commit_as(name, key, None)
    }

    /// Commit the active snapshot `key` as `name` on top of the committed `parent`,
    /// whatever parent it was prepared on: for a layer unpacked before its parent
    /// was committed (each layer's directory holds only its own content, so where
    /// it sits in the chain is metadata).
    pub fn commit_onto(
        &self,
        name: &str,
        key: &str,
        parent: Option<&str>,
    ) -> Result<(), SnapshotError> {
        self.commit_as(name, key, Some(parent))
    }

    /// [`Snapshotter::commit`] (`reparent` `None`: the parent it was prepared on)
    /// and [`Snapshotter::commit_onto`] (`Some(parent)`, which must be committed).
    fn commit_as(
        &self,
        name: &str,
        key: &str,
        reparent: Option<Option<&str>>,
    ) -> Result<(), SnapshotError> {
        check_key(name)?;
        let _lock = self.lock(FlockArg::LockExclusive)?;
        let mut meta = self.load()?;
        let record = meta.get(key)?;
        if record.kind != Kind::Active {
            return Err(SnapshotError::NotActive {
                op: "committing",
                key: key.to_owned(),
                kind: record.kind,
            });
        }
        if let Some(Some(parent)) = reparent {
            if meta.get(parent)?.kind != Kind::Committed {
                return Err(SnapshotError::ParentNotCommitted {
                    key: key.to_owned(),
                    parent: parent.to_owned(),
                });
            }
        }
        if meta.snapshots.contains_key(name) {
            return Err(SnapshotError::AlreadyExists(name.to_owned()));
        }
        let mut record = meta.snapshots.remove(key).expect("checked above");
        record.kind = Kind::Committed;
        if let Some(parent) = reparent {
            record.parent = parent.map(str::to_owned);
        }
        record.created = now();
        meta.snapshots.insert(name.to_owned(), record);
        self.save(&meta)
    }

    /// Remove the snapshot `key`, which must not be the parent of another. Its
    /// directory goes after the metadata, so a failure there leaves only an
    /// unreferenced directory.
    pub fn remove(&self, key: &str) -> Result<(), SnapshotError> {
        let _lock = self.lock(FlockArg::LockExclusive)?;
        let mut meta = self.load()?;
        let id = meta.get(key)?.id;
        if let Some((child, _)) = meta
            .snapshots
            .iter()
            .find(|(_, r)| r.parent.as_deref() == Some(key))
        {
            return Err(SnapshotError::HasChildren {
                key: key.to_owned(),
                child: child.clone(),
            });
        }
        meta.snapshots.remove(key);
        self.save(&meta)?;
        let dir = self.dir(id);
        fs::remove_dir_all(&dir).map_err(io_err("removing", &dir))
    }

    /// What is known about `key`.
    pub fn stat(&self, key: &str) -> Result<Info, SnapshotError> {
        let _lock = self.lock(FlockArg::LockShared)?;
        let meta = self.load()?;
        Ok(info(key, meta.get(key)?))
    }

    /// Every snapshot, sorted by key.
    pub fn list(&self) -> Result<Vec<Info>, SnapshotError> {
        let _lock = self.lock(FlockArg::LockShared)?;
        let meta = self.load()?;
        Ok(meta.snapshots.iter().map(|(k, r)| info(k, r)).collect())
    }

    /// The disk used by `key`'s own directory.
    pub fn usage(&self, key: &str) -> Result<Usage, SnapshotError> {
        let _lock = self.lock(FlockArg::LockShared)?;
        let meta = self.load()?;
        let fs_dir = self.fs_dir(meta.get(key)?.id);
        let mut usage = Usage::default();
        let mut seen = HashSet::new();
        walk_usage(&fs_dir, &mut usage, &mut seen)?;
        Ok(usage)
    }

    /// The directory holding the files of the active snapshot `key` (the overlay
    /// upper), to unpack a layer into.
    pub fn upper_dir(&self, key: &str) -> Result<PathBuf, SnapshotError> {
        let _lock = self.lock(FlockArg::LockShared)?;
        let meta = self.load()?;
        let record = meta.get(key)?;
        if record.kind != Kind::Active {
            return Err(SnapshotError::NotActive {
                op: "writing into",
                key: key.to_owned(),
                kind: record.kind,
            });
        }
        Ok(self.fs_dir(record.id))
    }

    /// Unpack a layer into the active snapshot `key`. On error the snapshot is left
    /// half-written: the caller removes it.
    pub fn unpack<R: Read>(
        &self,
        key: &str,
        layer: R,
        limits: Limits,
    ) -> Result<UnpackStats, SnapshotError> {
        let upper = self.upper_dir(key)?;
        unpack_layer(layer, &upper, limits).map_err(|source| SnapshotError::Unpack {
            key: key.to_owned(),
            source,
        })
    }

    fn create(
        &self,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
    ) -> Result<Vec<Mount>, SnapshotError> {
        check_key(key)?;
        let _lock = self.lock(FlockArg::LockExclusive)?;
        let mut meta = self.load()?;
        if meta.snapshots.contains_key(key) {
            return Err(SnapshotError::AlreadyExists(key.to_owned()));
        }
        if let Some(parent) = parent {
            if meta.get(parent)?.kind != Kind::Committed {
                return Err(SnapshotError::ParentNotCommitted {
                    key: key.to_owned(),
                    parent: parent.to_owned(),
                });
            }
        }
        let id = meta.next_id;
        meta.next_id += 1;
        let dir = self.dir(id);
        // A leftover from a crash between mkdir and save is not ours to keep.
        if dir.exists() {
            fs::remove_dir_all(&dir).map_err(io_err("removing stale", &dir))?;
        }
        for (sub, mode) in [("", 0o700), ("fs", 0o755), ("work", 0o700)] {
            let path = dir.join(sub);
            fs::DirBuilder::new()
                .mode(mode)
                .create(&path)
                .map_err(io_err("creating", &path))?;
        }
        meta.snapshots.insert(
            key.to_owned(),
            Record {
                id,
                kind,
                parent: parent.map(str::to_owned),
                created: now(),
            },
        );
        if let Err(e) = self.save(&meta) {
            let _ = fs::remove_dir_all(&dir);
            return Err(e);
        }
        self.mounts_of(&meta, key)
    }

    fn mounts_of(&self, meta: &Metadata, key: &str) -> Result<Vec<Mount>, SnapshotError> {
        let record = meta.get(key)?;
        let lowers = meta.chain(record.parent.as_deref())?;
        let lowerdir = || {
            let dirs: Vec<_> = lowers
                .iter()
                .map(|id| self.fs_dir(*id).display().to_string())
                .collect();
            format!("lowerdir={}", dirs.join(":"))
        };
        let mount = match (record.kind, lowers.as_slice()) {
            (Kind::Committed, _) => return Err(SnapshotError::Committed(key.to_owned())),
            (Kind::Active, []) => Mount::bind(self.fs_dir(record.id), false),
            (Kind::Active, _) => Mount {
                kind: "overlay".into(),
                source: "overlay".into(),
                options: vec![
                    format!("workdir={}", self.dir(record.id).join("work").display()),
                    format!("upperdir={}", self.fs_dir(record.id).display()),
                    lowerdir(),
                ],
            },
            (Kind::View, []) => Mount::bind(self.fs_dir(record.id), true),
            (Kind::View, [only]) => Mount::bind(self.fs_dir(*only), true),
            (Kind::View, _) => Mount {
                kind: "overlay".into(),
                source: "overlay".into(),
                options: vec!["ro".into(), lowerdir()],
            },
        };
        Ok(vec![mount])
    }

    fn dir(&self, id: u64) -> PathBuf {
        self.root.join("snapshots").join(id.to_string())
    }

    fn fs_dir(&self, id: u64) -> PathBuf {
        self.dir(id).join("fs")
    }

    fn metadata_path(&self) -> PathBuf {
        self.root.join("metadata.json")
    }

    fn lock(&self, arg: FlockArg) -> Result<Flock<File>, SnapshotError> {
        let path = self.root.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("opening lock file", &path))?;
        Flock::lock(file, arg).map_err(|(_, source)| SnapshotError::Lock { path, source })
    }

    fn load(&self) -> Result<Metadata, SnapshotError> {
        let path = self.metadata_path();
        match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|source| SnapshotError::Metadata { path, source }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Metadata::default()),
            Err(e) => Err(io_err("reading", &path)(e)),
        }
    }

    /// Replace the metadata atomically: temp file, fsync, rename, fsync the root.
    fn save(&self, meta: &Metadata) -> Result<(), SnapshotError> {
        let path = self.metadata_path();
        let tmp = self.root.join("metadata.json.tmp");
        let bytes = serde_json::to_vec_pretty(meta).expect("metadata serialises");
        let mut file = File::create(&tmp).map_err(io_err("creating", &tmp))?;
        file.write_all(&bytes).map_err(io_err("writing", &tmp))?;
        file.sync_all().map_err(io_err("syncing", &tmp))?;
        fs::rename(&tmp, &path).map_err(io_err("renaming into place", &path))?;
        File::open(&self.root)
            .and_then(|d| d.sync_all())
            .map_err(io_err("syncing", &self.root))
    }
}

fn check_key(key: &str) -> Result<(), SnapshotError> {
    if key.is_empty() {
        return Err(SnapshotError::EmptyKey);
    }
    Ok(())
}

fn info(key: &str, record: &Record) -> Info {
    Info {
        key: key.to_owned(),
        kind: record.kind,
        parent: record.parent.clone(),
        created: record.created,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SnapshotError + 'a {
    move |source| SnapshotError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

fn walk_usage(
    path: &Path,
    usage: &mut Usage,
    seen: &mut HashSet<(u64, u64)>,
) -> Result<(), SnapshotError> {
    let meta = fs::symlink_metadata(path).map_err(io_err("inspecting", path))?;
    if seen.insert((meta.dev(), meta.ino())) {
        usage.inodes += 1;
        usage.size += meta.blocks() * 512;
    }
    if meta.is_dir() {
        for entry in fs::read_dir(path).map_err(io_err("reading", path))? {
            let entry = entry.map_err(io_err("reading", path))?;
            walk_usage(&entry.path(), usage, seen)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshotter() -> (tempfile::TempDir, Snapshotter) {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshotter::new(dir.path().join("root")).unwrap();
        (dir, s)
    }

    #[test]
    fn commit_onto_sets_the_parent_at_commit() {
        let (_dir, s) = snapshotter();
        s.prepare("base-x", None).unwrap();
        s.prepare("top-x", None).unwrap();
        assert!(matches!(
            s.commit_onto("top", "top-x", Some("base")),
            Err(SnapshotError::NotFound(_))
        ));
        assert!(matches!(
            s.commit_onto("top", "top-x", Some("base-x")),
            Err(SnapshotError::ParentNotCommitted { .. })
        ));
        s.commit_onto("base", "base-x", None).unwrap();
        s.commit_onto("top", "top-x", Some("base")).unwrap();
        let info = s.stat("top").unwrap();
        assert_eq!(
            (info.kind, info.parent.as_deref()),
            (Kind::Committed, Some("base"))
        );
        assert!(matches!(
            s.remove("base"),
            Err(SnapshotError::HasChildren { .. })
        ));
    }

    #[test]
    fn lifecycle_and_mounts() {
        let (_dir, s) = snapshotter();
        let m = s.prepare("l1-active", None).unwrap();
        assert_eq!(m[0].kind, "bind");
        assert_eq!(m[0].options, ["rw", "rbind"]);
        s.commit("l1", "l1-active").unwrap();
        assert!(matches!(
            s.stat("l1-active"),
            Err(SnapshotError::NotFound(_))
        ));
        s.prepare("l2-active", Some("l1")).unwrap();
        s.commit("l2", "l2-active").unwrap();

        let m = s.prepare("ctr", Some("l2")).unwrap();
        assert_eq!(m[0].kind, "overlay");
        let l1 = s.root().join("snapshots/0/fs");
        let l2 = s.root().join("snapshots/1/fs");
        assert_eq!(
            m[0].options[2],
            format!("lowerdir={}:{}", l2.display(), l1.display())
        );
        assert!(m[0].options[1].ends_with("snapshots/2/fs"));

        let v = s.view("v1", Some("l1")).unwrap();
        assert_eq!(v, vec![Mount::bind(l1, true)]);
        let v = s.view("v2", Some("l2")).unwrap();
        assert_eq!(v[0].kind, "overlay");
        assert_eq!(v[0].options[0], "ro");

        let info = s.stat("ctr").unwrap();
        assert_eq!(info.kind, Kind::Active);
        assert_eq!(info.parent.as_deref(), Some("l2"));
        let keys: Vec<_> = s.list().unwrap().into_iter().map(|i| i.key).collect();
        assert_eq!(keys, ["ctr", "l1", "l2", "v1", "v2"]);
    }

    #[test]
    fn rules_are_enforced() {
        let (_dir, s) = snapshotter();
        s.prepare("a", None).unwrap();
        assert!(matches!(
            s.prepare("a", None),
            Err(SnapshotError::AlreadyExists(_))
        ));
        assert!(matches!(
            s.prepare("b", Some("a")),
            Err(SnapshotError::ParentNotCommitted { .. })
        ));
        assert!(matches!(
            s.prepare("b", Some("nope")),
            Err(SnapshotError::NotFound(_))
        ));
        s.view("v", None).unwrap();
        assert!(matches!(
            s.commit("c", "v"),
            Err(SnapshotError::NotActive { .. })
        ));
        s.commit("c", "a").unwrap();
        assert!(matches!(s.mounts("c"), Err(SnapshotError::Committed(_))));
        s.prepare("child", Some("c")).unwrap();
        let err = s.remove("c").unwrap_err();
        assert_eq!(err.to_string(), "removing c: it is the parent of child");
        s.remove("child").unwrap();
        s.remove("c").unwrap();
        s.remove("v").unwrap();
        assert!(s.list().unwrap().is_empty());
        let left: Vec<_> = fs::read_dir(s.root().join("snapshots")).unwrap().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn usage_counts_own_files_once() {
        let (_dir, s) = snapshotter();
        s.prepare("a", None).unwrap();
        let upper = s.upper_dir("a").unwrap();
        fs::write(upper.join("f"), vec![1u8; 10_000]).unwrap();
        fs::hard_link(upper.join("f"), upper.join("g")).unwrap();
        let usage = s.usage("a").unwrap();
        assert_eq!(usage.inodes, 2);
        assert!(usage.size >= 10_000, "{usage:?}");
    }

    #[test]
    fn a_failed_unpack_is_removed_by_the_caller() {
        let (_dir, s) = snapshotter();
        s.prepare("bad", None).unwrap();
        let mut builder = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..4].copy_from_slice(b"../x");
        h.set_size(0);
        h.set_cksum();
        builder.append(&h, &[][..]).unwrap();
        let layer = builder.into_inner().unwrap();
        let err = s.unpack("bad", &layer[..], Limits::default()).unwrap_err();
        assert!(
            matches!(err, SnapshotError::Unpack { ref key, source: UnpackError::UnsafePath { .. } } if key == "bad"),
            "{err:?}"
        );
        s.remove("bad").unwrap();
        assert!(s.list().unwrap().is_empty());
    }

    #[test]
    fn concurrent_prepares_get_distinct_directories() {
        let (_dir, s) = snapshotter();
        std::thread::scope(|scope| {
            for t in 0..4 {
                let s = s.clone();
                scope.spawn(move || {
                    for i in 0..10 {
                        s.prepare(&format!("{t}-{i}"), None).unwrap();
                    }
                });
            }
        });
        let list = s.list().unwrap();
        assert_eq!(list.len(), 40);
        let dirs = fs::read_dir(s.root().join("snapshots")).unwrap().count();
        assert_eq!(dirs, 40);
        let uppers: HashSet<_> = list.iter().map(|i| s.upper_dir(&i.key).unwrap()).collect();
        assert_eq!(uppers.len(), 40);
    }

    #[test]
    fn bad_roots_are_refused() {
        assert!(matches!(
            Snapshotter::new("relative"),
            Err(SnapshotError::BadRoot(_))
        ));
        assert!(matches!(
            Snapshotter::new("/tmp/a:b"),
            Err(SnapshotError::BadRoot(_))
        ));
    }
}
