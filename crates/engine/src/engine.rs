//! [`Engine`]: the operations behind the `berth` verbs.

use std::fs::{self, DirBuilder, File};
use std::io::Read;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_image::manifest::{MAX_CONFIG_SIZE, MAX_MANIFEST_SIZE};
use berth_image::{BlobStore, Digest, ImageConfig, ImageManifest, ImageStore, Manifest, Reference};
use berth_snapshot::{mount_all, SnapshotError, Snapshotter};
use nix::errno::Errno;
use nix::mount::{umount2, MntFlags};
use serde::Serialize;

use crate::backend::{Backend, ContainerBackend, Isolation, ProcessBackend, VmBackend};
use crate::build;
use crate::error::{io_err, EngineError};
use crate::layers;
use crate::lock::{EngineLock, PullLock};
use crate::record::{Phase, Record};
use crate::spec::{self, Network, RunFlags};

mod exec;
mod lifecycle;
mod monitor;
mod stats;

pub use exec::ExecRequest;
pub use lifecycle::parse_signal;
pub use monitor::MONITOR_VERB;
pub use stats::{ContainerStats, ProcessInfo};

/// The default `--root`.
pub const DEFAULT_ROOT: &str = "/var/lib/berth";

/// What `berth run` was asked.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The image, as typed.
    pub image: String,
    /// `--name` (default: `berth_` and 8 characters of the id).
    pub name: Option<String>,
    /// `--rm`.
    pub remove: bool,
    /// `--isolation`.
    pub isolation: Isolation,
    /// The rest.
    pub flags: RunFlags,
}

/// A line of `berth images`.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSummary {
    /// `docker.io/library/busybox`.
    pub repository: String,
    /// `latest` (or the digest for a pinned reference).
    pub tag: String,
    /// The config's digest (Docker's image id).
    pub id: Digest,
    /// The manifest's digest.
    pub digest: Digest,
    /// Config plus compressed layers, in bytes.
    pub size: u64,
}

/// A line of `berth ps`.
#[derive(Debug, Clone, Serialize)]
pub struct ContainerSummary {
    /// What the record says, corrected when its `berth run` died.
    pub status: Phase,
    /// The record.
    #[serde(flatten)]
    pub record: Record,
}

/// The engine's stores under one root.
#[derive(Debug)]
pub struct Engine {
    root: PathBuf,
    blobs: BlobStore,
    images: ImageStore,
    snapshots: Snapshotter,
    container: ContainerBackend,
    process: ProcessBackend,
    vm: VmBackend,
}

pub(crate) fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn random_id() -> Result<String, EngineError> {
    let mut bytes = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(io_err("reading", "/dev/urandom"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        && name.len() <= 128
}

/// The key of a container's snapshot.
fn snapshot_key(id: &str) -> String {
    format!("container-{id}")
}

/// Unmounts `target` if something is mounted there, and first whatever a backend
/// stacked under it.
fn unmount_if_mounted(target: &Path) -> Result<(), EngineError> {
    crate::mounts::unmount_below(target);
    loop {
        match umount2(target, MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => continue, // stacked mounts: take them all off
            Err(Errno::EINVAL | Errno::ENOENT) => return Ok(()),
            Err(Errno::EBUSY) => {
                return umount2(target, MntFlags::UMOUNT_NOFOLLOW | MntFlags::MNT_DETACH).map_err(
                    |e| EngineError::Io {
                        action: "unmounting",
                        path: target.to_owned(),
                        source: e.into(),
                    },
                )
            }
            Err(e) => {
                return Err(EngineError::Io {
                    action: "unmounting",
                    path: target.to_owned(),
                    source: e.into(),
                })
            }
        }
    }
}

/// Whether `name` is one of the names the built-in image answers to.
pub(crate) fn is_default_name(reference: &Reference) -> bool {
    let default: Reference = build::DEFAULT_IMAGE.parse().expect("default name parses");
    let name = reference.name();
    reference.tag() == Some("latest")
        && (name == "docker.io/library/busybox"
            || name == "docker.io/berth/busybox"
            || name == default.name())
}

/// Removes a half-made container unless disarmed.
struct CreateGuard<'a> {
    engine: &'a Engine,
    id: String,
    armed: bool,
}

impl Drop for CreateGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = self.engine.cleanup(&self.id) {
                tracing::warn!("cleaning up container {}: {e}", self.id);
            }
        }
    }
}

impl Engine {
    /// Opens (creating) the engine's state under `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, EngineError> {
        let root: PathBuf = root.into();
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir()
                .map_err(io_err("resolving", &root))?
                .join(root)
        };
        for dir in [
            root.clone(),
            root.join("containers"),
            root.join("runtime"),
            root.join("process"),
            root.join("vm"),
        ] {
            DirBuilder::new()
                .recursive(true)
                .mode(0o711)
                .create(&dir)
                .map_err(io_err("creating", &dir))?;
        }
        let blobs = BlobStore::open(&root).map_err(|source| EngineError::Blob {
            action: format!("opening blob store in {}", root.display()),
            source,
        })?;
        let images = ImageStore::open(&root).map_err(|source| EngineError::Images {
            action: format!("opening image index in {}", root.display()),
            source,
        })?;
        let snap_root = root.join("snapshots");
        let snapshots = Snapshotter::new(&snap_root).map_err(|source| EngineError::Snapshot {
            action: format!("opening snapshotter in {}", snap_root.display()),
            source,
        })?;
        Ok(Self {
            container: ContainerBackend::new(root.join("runtime")),
            process: ProcessBackend::new(root.join("process")),
            vm: VmBackend::new(root.join("vm")),
            root,
            blobs,
            images,
            snapshots,
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The blob store.
    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// The image index.
    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    /// The snapshotter.
    pub fn snapshots(&self) -> &Snapshotter {
        &self.snapshots
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    /// The backend for `isolation`.
    pub fn backend(&self, isolation: Isolation) -> &dyn Backend {
        match isolation {
            Isolation::Process => &self.process,
            Isolation::Container => &self.container,
            Isolation::Vm => &self.vm,
        }
    }

    /// The container backend (for what only containers have, such as exec).
    pub(crate) fn container_backend(&self) -> &ContainerBackend {
        &self.container
    }

    // ---- images ----

    /// Builds the default busybox image and tags it; returns its manifest digest.
    /// Holds the pull lock shared, as a pull does, so that `system prune` does not
    /// take its blobs before they are tagged.
    pub fn default_image(&self) -> Result<Digest, EngineError> {
        let _storing = PullLock::shared(&self.root)?;
        build::default_image(&self.blobs, &self.images)
    }

    /// Parses an image name.
    pub fn parse_reference(text: &str) -> Result<Reference, EngineError> {
        text.parse().map_err(|source| EngineError::Reference {
            input: text.to_owned(),
            source,
        })
    }

    /// The manifest digest of `text`; the default image is built when a busybox
    /// name is asked for and not in the store.
    pub fn resolve_image(&self, text: &str) -> Result<(Reference, Digest), EngineError> {
        let reference = Self::parse_reference(text)?;
        let found = self
            .images
            .resolve(&reference)
            .map_err(|source| EngineError::Images {
                action: format!("looking up {reference}"),
                source,
            })?;
        match found {
            Some(d) => Ok((reference, d)),
            None if is_default_name(&reference) => {
                let default: Reference = build::DEFAULT_IMAGE.parse().expect("parses");
                let d = match self.images.resolve(&default) {
                    Ok(Some(d)) if self.blobs.has(&d) => d,
                    // (No pull lock here: `create` calls this holding the engine
                    // lock, which prune takes after the pull lock.)
                    _ => build::default_image(&self.blobs, &self.images)?,
                };
                Ok((default, d))
            }
            None => Err(EngineError::ImageNotFound(reference.to_string())),
        }
    }

    /// Reads a stored image's manifest and config.
    pub fn read_image(&self, digest: &Digest) -> Result<(ImageManifest, ImageConfig), EngineError> {
        let blob_err = |what: &str| {
            let action = format!("reading {what} {digest}");
            move |source| EngineError::Blob { action, source }
        };
        let bytes = self
            .blobs
            .read_small(digest, MAX_MANIFEST_SIZE)
            .map_err(blob_err("manifest"))?;
        let manifest = match Manifest::parse(None, &bytes) {
            Ok(Manifest::Image(m)) => m,
            Ok(Manifest::Index(_)) => return Err(EngineError::NotAnImage(digest.to_string())),
            Err(source) => {
                return Err(EngineError::Manifest {
                    action: format!("parsing manifest {digest}"),
                    source,
                })
            }
        };
        let config_bytes = self
            .blobs
            .read_small(&manifest.config.digest, MAX_CONFIG_SIZE)
            .map_err(blob_err("config of"))?;
        let config = ImageConfig::parse(&config_bytes)
            .and_then(|c| c.check_layers(&manifest).map(|()| c))
            .map_err(|source| EngineError::Manifest {
                action: format!("checking config of {digest}"),
                source,
            })?;
        Ok((manifest, config))
    }

    /// Every tagged image.
    pub fn list_images(&self) -> Result<Vec<ImageSummary>, EngineError> {
        let names = self.images.list().map_err(|source| EngineError::Images {
            action: "listing images".into(),
            source,
        })?;
        let mut out = Vec::new();
        for (name, digest) in names {
            let Ok((manifest, _)) = self.read_image(&digest) else {
                continue; // an index or a missing blob: not runnable, not listed
            };
            let (repository, tag) = match name.rsplit_once('@') {
                Some((repo, d)) => (repo.to_owned(), d.to_owned()),
                None => match name.rsplit_once(':') {
                    Some((repo, tag)) if !tag.contains('/') => (repo.to_owned(), tag.to_owned()),
                    _ => (name.clone(), String::new()),
                },
            };
            let size = manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>();
            out.push(ImageSummary {
                repository,
                tag,
                id: manifest.config.digest.clone(),
                digest,
                size,
            });
        }
        Ok(out)
    }

    // ---- containers ----

    /// Makes a container from the image: its layers' snapshots, its own mounted
    /// snapshot, config and record. On error nothing of it is left.
    pub fn create(&self, opts: &RunOptions) -> Result<Record, EngineError> {
        self.create_root(opts, false)
    }

    /// [`Engine::create`]; with `volatile` the root is an overlay that never syncs
    /// its upper layer (`volatile`): for a container removed by the same command
    /// that runs it, whose writes need not survive a crash. Unmounting such an
    /// overlay then costs no sync of the host's filesystem, and it cannot be mounted
    /// again (the kernel refuses), which such a container never needs.
    fn create_root(&self, opts: &RunOptions, volatile: bool) -> Result<Record, EngineError> {
        let joins_network = matches!(
            opts.flags.network,
            Network::Named(_) | Network::Container(_)
        );
        if matches!(opts.flags.network, Network::Container(_)) && opts.isolation == Isolation::Vm {
            return Err(EngineError::Invalid(
                "--isolation vm has a network stack of its own (its kernel's): it cannot \
                 share another container's (--network container:); use a network's name"
                    .into(),
            ));
        }
        if joins_network && opts.isolation == Isolation::Process {
            return Err(EngineError::Invalid(
                "--isolation process runs in the host's network namespace: \
                 use --network host (or none), or another isolation level"
                    .into(),
            ));
        }
        let _lock = EngineLock::acquire(&self.root)?;
        let (reference, digest) = self.resolve_image(&opts.image)?;
        let (manifest, config) = self.read_image(&digest)?;
        let top = layers::ensure(
            &self.blobs,
            &self.snapshots,
            &manifest.layers,
            &config.rootfs.diff_ids,
        )?;
        self.sweep_abandoned();
        let id = random_id()?;
        let name = match &opts.name {
            Some(n) if !valid_name(n) => {
                return Err(EngineError::Invalid(format!(
                    "container name {n:?}: use letters, digits, '_', '.', '-'"
                )))
            }
            Some(n) => n.clone(),
            None => format!("berth_{}", &id[..8]),
        };
        if self.records()?.iter().any(|r| r.name == name) {
            return Err(EngineError::NameInUse(name));
        }
        let dir = self.container_dir(&id);
        DirBuilder::new()
            .mode(0o711)
            .create(&dir)
            .map_err(io_err("creating container directory", &dir))?;
        let mut guard = CreateGuard {
            engine: self,
            id: id.clone(),
            armed: true,
        };
        let rootfs = dir.join("rootfs");
        fs::create_dir(&rootfs).map_err(io_err("creating", &rootfs))?;
        let mut mounts = self
            .snapshots
            .prepare(&snapshot_key(&id), top.as_deref())
            .map_err(|source| EngineError::Snapshot {
                action: format!("preparing the root of container {id}"),
                source,
            })?;
        if volatile {
            for m in mounts.iter_mut().filter(|m| m.kind == "overlay") {
                m.options.push("volatile".into());
            }
        }
        mount_all(&mounts, &rootfs).map_err(|source| EngineError::Mount {
            action: format!("mounting the root of container {id}"),
            source,
        })?;
        let run = config.config.clone().unwrap_or_default();
        let flags = self.resolve_volumes(&opts.flags, &rootfs)?;
        let mut spec = spec::build(&id, &rootfs, &run, &flags)?;
        let networks = self.connect(&id, &name, &dir, &run, &flags, &mut spec)?;
        if opts.isolation == Isolation::Vm {
            let network = match networks.first() {
                Some(a) => Some(self.vm_network(a)?),
                None => None,
            };
            crate::backend::vm::annotate(&mut spec, top.as_deref(), &mounts, flags.accel, network);
        }
        let config_path = dir.join("config.json");
        spec.save(&config_path)
            .map_err(|source| EngineError::Spec {
                path: config_path.clone(),
                source,
            })?;
        let record = Record {
            id: id.clone(),
            name,
            image: reference.to_string(),
            image_digest: digest,
            command: spec
                .process()
                .as_ref()
                .and_then(|p| p.args().clone())
                .unwrap_or_default(),
            created: now(),
            phase: Phase::Created,
            exit_code: None,
            pid: None,
            auto_remove: opts.remove,
            isolation: opts.isolation,
            removing: false,
            started: None,
            finished: None,
            networks,
        };
        record.save(&dir)?;
        guard.armed = false;
        Ok(record)
    }

    /// Creates and runs a container in the foreground; returns its exit code. With
    /// `opts.remove` nothing of it is left afterwards; otherwise it stays, exited,
    /// its root unmounted. If the backend fails, the container is removed.
    pub fn run(&self, opts: &RunOptions) -> Result<i32, EngineError> {
        let backend = self.backend(opts.isolation);
        let mut record = self.create_root(opts, opts.remove)?;
        let dir = self.container_dir(&record.id);
        record.phase = Phase::Running;
        record.pid = Some(std::process::id());
        record.started = Some(now());
        let ran = record.save(&dir).and_then(|()| {
            backend
                .run(&record.id, &dir)
                .map_err(|source| EngineError::Backend {
                    action: "running",
                    id: record.id.clone(),
                    source: Box::new(source),
                })
        });
        let code = match ran {
            Ok(code) => code,
            Err(e) => {
                // Killed by `rm -f` before it could start: as if killed after.
                let removing = Record::load(&dir).is_ok_and(|r| r.removing);
                let _lock = EngineLock::acquire(&self.root);
                if let Err(c) = self.cleanup(&record.id) {
                    tracing::warn!("cleaning up container {}: {c}", record.id);
                }
                if removing {
                    return Ok(128 + nix::libc::SIGKILL);
                }
                return Err(e);
            }
        };
        if opts.remove {
            let _lock = EngineLock::acquire(&self.root)?;
            self.cleanup(&record.id)?;
        } else if dir.exists() {
            // (A concurrent `rm -f` may have removed it already.)
            unmount_if_mounted(&dir.join("rootfs"))?;
            record.phase = Phase::Exited;
            record.exit_code = Some(code);
            record.pid = None;
            record.finished = Some(now());
            record.save(&dir)?;
        }
        Ok(code)
    }

    fn records(&self) -> Result<Vec<Record>, EngineError> {
        let dir = self.root.join("containers");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io_err("listing", &dir))? {
            let entry = entry.map_err(io_err("listing", &dir))?;
            // A directory without a record is a create in progress or a crash's
            // leftover; neither is listed.
            if let Ok(r) = Record::load(&entry.path()) {
                out.push(r);
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.name.cmp(&b.name)));
        Ok(out)
    }

    fn status(&self, r: &Record) -> Phase {
        if r.phase == Phase::Running {
            let alive = r.pid.is_some_and(lifecycle::process_alive);
            if !alive && !self.backend(r.isolation).exists(&r.id) {
                return Phase::Exited;
            }
        }
        r.phase
    }

    /// Containers, newest first; without `all` only running ones.
    pub fn list_containers(&self, all: bool) -> Result<Vec<ContainerSummary>, EngineError> {
        Ok(self
            .records()?
            .into_iter()
            .map(|record| ContainerSummary {
                status: self.status(&record),
                record,
            })
            .filter(|c| all || c.status == Phase::Running)
            .collect())
    }

    /// The record named by a name, an id, or a unique id prefix.
    pub fn find(&self, name_or_id: &str) -> Result<Record, EngineError> {
        let records = self.records()?;
        if let Some(r) = records
            .iter()
            .find(|r| r.name == name_or_id || r.id == name_or_id)
        {
            return Ok(r.clone());
        }
        let mut matches = records
            .into_iter()
            .filter(|r| !name_or_id.is_empty() && r.id.starts_with(name_or_id));
        match (matches.next(), matches.next()) {
            (Some(r), None) => Ok(r),
            (Some(_), Some(_)) => Err(EngineError::Ambiguous(name_or_id.to_owned())),
            _ => Err(EngineError::ContainerNotFound(name_or_id.to_owned())),
        }
    }

    /// Removes a container; a running one only with `force`: it is killed, its
    /// `berth run` is given up to 10 s to finish (and report 137), then whatever is
    /// left is removed. Returns its id.
    pub fn remove(&self, name_or_id: &str, force: bool) -> Result<String, EngineError> {
        let lock = EngineLock::acquire(&self.root)?;
        let record = self.find(name_or_id)?;
        if self.status(&record) != Phase::Running {
            self.cleanup(&record.id)?;
            return Ok(record.id);
        }
        if !force {
            return Err(EngineError::Running(record.name));
        }
        let mut removing = record.clone();
        removing.removing = true;
        removing.save(&self.container_dir(&record.id))?;
        let backend = self.backend(record.isolation);
        if backend.exists(&record.id) {
            // SIGKILL; it may already be exiting, which is fine.
            let _ = backend.kill(&record.id, nix::libc::SIGKILL);
        }
        drop(lock); // its `berth run --rm` takes the lock to clean up
        if let Some(pid) = record.pid {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while lifecycle::process_alive(pid) && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let _lock = EngineLock::acquire(&self.root)?;
        self.cleanup(&record.id)?;
        Ok(record.id)
    }

    /// Removes container directories without a record: creates interrupted by a
    /// crash or a signal (every create holds the engine lock until its record is
    /// written, and the caller holds it now).
    fn sweep_abandoned(&self) {
        let Ok(entries) = fs::read_dir(self.root.join("containers")) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.join("container.json").exists() {
                let id = entry.file_name().to_string_lossy().into_owned();
                if let Err(e) = self.cleanup(&id) {
                    tracing::warn!("removing abandoned container {id}: {e}");
                }
            }
        }
    }

    /// Removes everything of container `id`: the runtime's state, the mount, the
    /// snapshot, the directory. The caller holds the engine lock.
    fn cleanup(&self, id: &str) -> Result<(), EngineError> {
        let dir = self.container_dir(id);
        let record = Record::load(&dir).ok();
        // Without a record (an abandoned create) any backend may hold state.
        let levels = match &record {
            Some(r) => vec![r.isolation],
            None => Isolation::ALL.to_vec(),
        };
        for isolation in levels {
            let backend = self.backend(isolation);
            if backend.exists(id) {
                backend
                    .delete(id, true)
                    .map_err(|source| EngineError::Backend {
                        action: "deleting",
                        id: id.to_owned(),
                        source: Box::new(source),
                    })?;
            }
        }
        // Networks only for a container that may be on one: the network state
        // lock and files stay out of every other container's removal.
        let networked = record.as_ref().is_none_or(|r| !r.networks.is_empty())
            || self.networks().netns_path(id).exists();
        if networked {
            self.disconnect(id)?;
        }
        unmount_if_mounted(&dir.join("rootfs"))?;
        match self.snapshots.remove(&snapshot_key(id)) {
            Ok(()) | Err(SnapshotError::NotFound(_)) => {}
            Err(source) => {
                return Err(EngineError::Snapshot {
                    action: format!("removing the root of container {id}"),
                    source,
                })
            }
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err("removing", &dir)(e)),
        }
    }
}
