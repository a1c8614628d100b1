//! `checkpoint` and `restore` through CRIU (its command line, see [`criu`]).
//!
//! Checkpoint dumps the init's process tree with the container's rootfs as CRIU's
//! `--root`, every bind mount of the spec (and every v1 cgroup hierarchy bound into
//! the container) declared as an external mount keyed by its destination, and writes
//! `descriptor.json` beside the images: the keys restore must map back to host paths.
//! Without `--leave-running` CRIU kills the tree; the container's record stays, its
//! status derived as `stopped` (the init is gone), so `state` shows what happened and
//! `restore` can reuse the id: a stopped leftover is deleted (as `delete` would) before
//! the restored container takes its place. A `delete` cleans it up just as well.
//!
//! Restore makes a fresh record from `--bundle` (config copy, cgroup created and its
//! resources applied as `create` does), bind-mounts the bundle's rootfs at
//! `<state dir>/criu-root` (CRIU wants the new root to be a mount point), maps each
//! external mount key to the bundle's source for that destination, and runs
//! `criu restore --restore-detached --pidfile`. The restored init's pid and start time
//! go into the state with phase `created` and no exec FIFO, so its status is `running`.
//! In the foreground the runtime is a child subreaper, so the restored init is
//! reparented to it when CRIU exits: it forwards signals, reaps the init, deletes the
//! container and returns the exit code, like `run`.

pub mod criu;

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};
use serde::{Deserialize, Serialize};

use crate::container::{bad_status, Runtime, Status, OCI_VERSION};
use crate::error::ContainerError;
use crate::namespaces::Namespaces;
use crate::state::{self, ContainerDir, StateError};
use crate::{container, id, spec, sys};

pub use criu::{CgroupsMode, CommonFlags};
use criu::{Criu, DumpPlan, RestorePlan};

/// File in the image directory describing what restore needs.
pub const DESCRIPTOR: &str = "descriptor.json";
const DESCRIPTOR_VERSION: u32 = 1;
/// Mount point of the rootfs for `criu restore --root`, in the container's state dir.
const CRIU_ROOT: &str = "criu-root";
const RESTORE_PID_FILE: &str = "criu-restore.pid";

/// What went wrong checkpointing or restoring.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("criu not found ({name}): install it (apt-get install criu) or pass --criu PATH")]
    CriuMissing { name: PathBuf },
    #[error("running {binary}: {source}")]
    Spawn {
        binary: PathBuf,
        source: std::io::Error,
    },
    #[error("`{} check` failed: this kernel or this criu cannot checkpoint:\n{output}", binary.display())]
    CriuCheck { binary: PathBuf, output: String },
    #[error("criu {action} failed ({status}); {}:\n{tail}", log.display())]
    Criu {
        action: &'static str,
        status: String,
        log: PathBuf,
        tail: String,
    },
    #[error("image path {path}: {reason}")]
    ImagePath { path: PathBuf, reason: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Container(#[from] ContainerError),
}

impl From<StateError> for CheckpointError {
    fn from(e: StateError) -> Self {
        Self::Container(e.into())
    }
}

impl From<spec::SpecError> for CheckpointError {
    fn from(e: spec::SpecError) -> Self {
        Self::Container(e.into())
    }
}

impl From<id::IdError> for CheckpointError {
    fn from(e: id::IdError) -> Self {
        Self::Container(e.into())
    }
}

impl From<berth_cgroups::CgroupError> for CheckpointError {
    fn from(e: berth_cgroups::CgroupError) -> Self {
        Self::Container(e.into())
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError {
    let path = path.to_path_buf();
    move |source| CheckpointError::Io {
        action,
        path,
        source,
    }
}

/// runc's `checkpoint` flags.
#[derive(Debug, Clone, Default)]
pub struct CheckpointOptions {
    /// The criu binary (runc's global `--criu`); `criu` on `$PATH` when unset.
    pub criu: Option<PathBuf>,
    pub image_path: PathBuf,
    /// Where CRIU's log goes; the image path when unset.
    pub work_path: Option<PathBuf>,
    pub leave_running: bool,
    pub pre_dump: bool,
    /// Images of an earlier pre-dump, relative to `image_path` (or absolute).
    pub parent_path: Option<PathBuf>,
    pub flags: CommonFlags,
}

/// runc's `restore` flags.
#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub criu: Option<PathBuf>,
    pub id: String,
    pub bundle: PathBuf,
    pub image_path: PathBuf,
    pub work_path: Option<PathBuf>,
    pub detach: bool,
    pub pid_file: Option<PathBuf>,
    /// Accepted for runc compatibility: CRIU sets up the restored root itself.
    pub no_pivot: bool,
    pub flags: CommonFlags,
}

/// How a mount the container had was handed to CRIU as external.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum ExternalMount {
    /// A bind mount of the spec: restore binds the bundle's source for `destination`.
    Bind { destination: String },
    /// One cgroup hierarchy bound under the cgroup mount: restore binds the new
    /// container cgroup of the hierarchy `name` ("" for a pure cgroup2 host).
    Cgroup { destination: String, name: String },
}

impl ExternalMount {
    /// CRIU's key: the mount point inside the container.
    pub fn key(&self) -> &str {
        match self {
            Self::Bind { destination } | Self::Cgroup { destination, .. } => destination,
        }
    }
}

/// `descriptor.json`: what restore needs besides CRIU's images, independent of the
/// bundle the container came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub version: u32,
    pub oci_version: String,
    /// The container checkpointed (informational: restore takes its own id).
    pub id: String,
    pub created: String,
    /// True for `--pre-dump` images, which only serve as a parent.
    pub pre_dump: bool,
    pub external_mounts: Vec<ExternalMount>,
    /// The init's stdio at checkpoint (restore hands it its own in their place).
    #[serde(default)]
    pub stdio: Vec<StdioFd>,
}

/// One of the init's fds 0–2 at checkpoint: files outside the container (runtime's
/// stdio) are dumped as CRIU external files; restore replaces each, pipes too, with the
/// restoring runtime's own fd of the same number (`--inherit-fd`), as runc does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StdioFd {
    pub fd: i32,
    /// What /proc/PID/fd/N pointed to (informational).
    pub path: String,
    /// CRIU's name for the file: `file[mnt_id:ino]`, `tty[rdev:dev]`, `pipe:[ino]`…
    pub key: String,
    /// Declared with `--external` at dump (files and ttys; pipes and sockets are not).
    pub external: bool,
}

/// The init's stdio as CRIU will name it.
fn stdio_of(pid: i32) -> Vec<StdioFd> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for fd in 0..3 {
        let link = PathBuf::from(format!("/proc/{pid}/fd/{fd}"));
        let Ok(target) = std::fs::read_link(&link) else {
            continue;
        };
        let path = target.to_string_lossy().into_owned();
        let (key, external) = if !path.starts_with('/') {
            (path.clone(), false) // pipe:[ino], socket:[ino], anon_inode:...
        } else {
            let Ok(meta) = std::fs::metadata(&link) else {
                continue;
            };
            if path.starts_with("/dev/pts/") {
                (format!("tty[{:x}:{:x}]", meta.rdev(), meta.dev()), true)
            } else {
                let Some(mnt_id) = fd_mnt_id(pid, fd) else {
                    continue;
                };
                (format!("file[{mnt_id:x}:{:x}]", meta.ino()), true)
            }
        };
        out.push(StdioFd {
            fd,
            path,
            key,
            external,
        });
    }
    out
}

fn fd_mnt_id(pid: i32, fd: i32) -> Option<u64> {
    let info = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Each key once (fds 1 and 2 often share a file), first fd first.
fn unique_keys(stdio: &[StdioFd], only_external: bool) -> Vec<(i32, String)> {
    let mut out: Vec<(i32, String)> = Vec::new();
    for s in stdio {
        if (!only_external || s.external) && !out.iter().any(|(_, k)| *k == s.key) {
            out.push((s.fd, s.key.clone()));
        }
    }
    out
}

impl Descriptor {
    fn load(images: &Path) -> Result<Self, CheckpointError> {
        let path = images.join(DESCRIPTOR);
        let data = std::fs::read(&path).map_err(|e| CheckpointError::ImagePath {
            path: images.to_path_buf(),
            reason: match e.kind() {
                std::io::ErrorKind::NotFound => {
                    format!("no {DESCRIPTOR}: not a checkpoint made by berth-runtime")
                }
                _ => format!("reading {DESCRIPTOR}: {e}"),
            },
        })?;
        serde_json::from_slice(&data).map_err(|e| CheckpointError::ImagePath {
            path: images.to_path_buf(),
            reason: format!("{DESCRIPTOR} is corrupt: {e}"),
        })
    }

    fn save(&self, images: &Path) -> Result<(), CheckpointError> {
        let data = serde_json::to_vec_pretty(self).expect("descriptor serialises");
        Ok(state::write_atomic(&images.join(DESCRIPTOR), &data, 0o600)?)
    }
}

fn is_bind(m: &Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .any(|o| o == "bind" || o == "rbind")
}

fn destination_key(m: &Mount) -> String {
    let d = m.destination().to_string_lossy();
    match d.trim_end_matches('/') {
        "" => "/".to_string(),
        t => t.to_string(),
    }
}

/// The mounts CRIU must not dump but take as external: the spec's bind mounts, and
/// the cgroup hierarchies bound from the host under a `cgroup` mount.
pub fn external_mounts(
    spec: &Spec,
    cgroup_mounts: &[berth_cgroups::ContainerCgroupMount],
) -> Vec<ExternalMount> {
    let own_cgroupns = Namespaces::from_spec(spec).creates(LinuxNamespaceType::Cgroup);
    let mut out = Vec::new();
    for m in spec.mounts().as_deref().unwrap_or(&[]) {
        let destination = destination_key(m);
        if m.typ().as_deref() == Some("cgroup") {
            let pure_v2 = matches!(cgroup_mounts, [only] if only.unified && only.name.is_empty());
            if pure_v2 && own_cgroupns {
                continue; // a real cgroup2 mount inside the namespace: CRIU dumps it
            }
            for cg in cgroup_mounts {
                let destination = if cg.name.is_empty() {
                    destination.clone()
                } else {
                    format!("{}/{}", destination.trim_end_matches('/'), cg.name)
                };
                out.push(ExternalMount::Cgroup {
                    destination,
                    name: cg.name.clone(),
                });
            }
        } else if is_bind(m) {
            out.push(ExternalMount::Bind { destination });
        }
    }
    out
}

/// Refuse what this implementation cannot checkpoint, with the reason.
fn check_supported(spec: &Spec) -> Result<(), CheckpointError> {
    let ns = Namespaces::from_spec(spec);
    if let Some((kind, path)) = ns.join.first() {
        return Err(CheckpointError::Unsupported(format!(
            "checkpoint of a container that joins the {kind} namespace {} is not supported",
            path.display()
        )));
    }
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    if terminal {
        return Err(CheckpointError::Unsupported(
            "checkpoint/restore of a container with process.terminal is not supported".into(),
        ));
    }
    Ok(())
}

fn absolute(path: &Path) -> Result<PathBuf, CheckpointError> {
    std::path::absolute(path).map_err(io_err("resolving", path))
}

fn make_dir(path: &Path) -> Result<(), CheckpointError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io_err("creating", path))
}

impl Runtime {
    /// Checkpoint a running container into `opts.image_path`.
    pub fn checkpoint(&self, id: &str, opts: &CheckpointOptions) -> Result<(), CheckpointError> {
        let criu = Criu::find_and_check(opts.criu.as_deref())?;
        let dir = self.open(id)?;
        let st = dir.load()?;
        let status = self.status_of(&dir, &st);
        if status != Status::Running {
            return Err(
                bad_status(id, status, "only a running container can be checkpointed").into(),
            );
        }
        let spec = container::load_saved_spec(&dir)?;
        check_supported(&spec)?;
        let cgroup = berth_cgroups::manager(&st.cgroup_path)?;
        let has_cgroup_mount = spec
            .mounts()
            .as_deref()
            .unwrap_or(&[])
            .iter()
            .any(|m| m.typ().as_deref() == Some("cgroup"));
        let cgroup_mounts = if has_cgroup_mount {
            cgroup.container_mounts()?
        } else {
            Vec::new()
        };
        let external = external_mounts(&spec, &cgroup_mounts);
        let stdio = stdio_of(st.pid);
        let images = absolute(&opts.image_path)?;
        make_dir(&images)?;
        let work = match &opts.work_path {
            Some(w) => absolute(w)?,
            None => images.clone(),
        };
        make_dir(&work)?;
        if (opts.pre_dump || opts.parent_path.is_some()) && !criu.has_feature("mem_dirty_track") {
            return Err(CheckpointError::Unsupported(
                "--pre-dump and --parent-path need memory dirty tracking, which this kernel lacks (`criu check --feature mem_dirty_track` fails: no soft-dirty bits)".into(),
            ));
        }
        if let Some(parent) = &opts.parent_path {
            let resolved = images.join(parent);
            if !resolved.join(DESCRIPTOR).is_file() {
                return Err(CheckpointError::ImagePath {
                    path: resolved,
                    reason: "parent path holds no pre-dump (no descriptor.json)".into(),
                });
            }
        }
        let plan = DumpPlan {
            pre_dump: opts.pre_dump,
            pid: st.pid,
            images: images.clone(),
            work: work.clone(),
            root: st.rootfs.clone(),
            leave_running: opts.leave_running,
            parent: opts.parent_path.clone(),
            external_mounts: external.iter().map(|m| m.key().to_string()).collect(),
            external_files: unique_keys(&stdio, true)
                .into_iter()
                .map(|(_, k)| k)
                .collect(),
            flags: opts.flags.clone(),
        };
        criu.run(plan.action(), &plan.args(), &work)?;
        Descriptor {
            version: DESCRIPTOR_VERSION,
            oci_version: OCI_VERSION.into(),
            id: id.to_string(),
            created: state::now_rfc3339(),
            pre_dump: opts.pre_dump,
            external_mounts: external,
            stdio,
        }
        .save(&images)?;
        if !opts.pre_dump && !opts.leave_running {
            // CRIU has killed the tree; wait (briefly) until the init is really gone so
            // that the status reads `stopped` as soon as we return.
            if let Ok(fd) = sys::pidfd_open(st.pid) {
                sys::pidfd_wait_exit(&fd, Duration::from_secs(5));
            }
        }
        Ok(())
    }

    /// Restore a container from `opts.image_path`; detached: 0 once it runs, else its
    /// exit code after it ends (the container is then deleted, as after `run`).
    pub fn restore(&self, opts: &RestoreOptions) -> Result<i32, CheckpointError> {
        id::validate(&opts.id)?;
        let images = absolute(&opts.image_path)?;
        if !images.is_dir() {
            return Err(CheckpointError::ImagePath {
                path: images,
                reason: "no such directory".into(),
            });
        }
        let descriptor = Descriptor::load(&images)?;
        if descriptor.pre_dump {
            return Err(CheckpointError::ImagePath {
                path: images,
                reason: "holds a pre-dump, which only serves as --parent-path of a checkpoint"
                    .into(),
            });
        }
        let criu = Criu::find_and_check(opts.criu.as_deref())?;
        let loaded = spec::load(&opts.bundle)?;
        check_supported(&loaded.spec)?;
        self.replace_stopped(&opts.id)?;
        if !opts.detach {
            sys::set_child_subreaper().map_err(|e| ContainerError::sys("becoming subreaper", e))?;
        }
        // Foreground: block the forwarded signals before the init can exit (run's way).
        let set = crate::run::forwarded_signals();
        if !opts.detach {
            nix::sys::signal::sigprocmask(
                nix::sys::signal::SigmaskHow::SIG_BLOCK,
                Some(&set),
                None,
            )
            .map_err(|e| ContainerError::sys("blocking signals", e))?;
        }
        let dir = ContainerDir::create(&self.root, &opts.id)?;
        let cgroup_path = container::default_cgroup_path(&loaded.spec, &opts.id);
        let mut pid = None;
        let result = self.restore_in(
            &dir,
            &criu,
            &images,
            &descriptor,
            &loaded,
            &cgroup_path,
            opts,
            &mut pid,
        );
        let pid = match (result, pid) {
            (Ok(()), Some(pid)) => pid,
            (result, pid) => {
                crate::create::undo_create(dir, pid, &cgroup_path);
                result?;
                return Err(CheckpointError::Unsupported(
                    "criu restore reported no pid".into(),
                ));
            }
        };
        if opts.detach {
            return Ok(0);
        }
        drop(dir);
        let code = crate::run::wait_forwarding(pid, &set, None)?;
        self.delete_stopped(&opts.id)?;
        Ok(code)
    }

    /// Make way for a restore: the id must be free, or its container stopped (the
    /// leftover of a checkpoint), which is then deleted.
    fn replace_stopped(&self, id: &str) -> Result<(), CheckpointError> {
        let status = match self.state(id) {
            Ok(st) => st.status,
            Err(ContainerError::State(StateError::NotFound(_))) => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        if status != Status::Stopped {
            return Err(bad_status(
                id,
                status,
                "restore needs the id free or its container stopped",
            )
            .into());
        }
        Ok(self.delete(id, false)?)
    }

    #[allow(clippy::too_many_arguments)]
    fn restore_in(
        &self,
        dir: &ContainerDir,
        criu: &Criu,
        images: &Path,
        descriptor: &Descriptor,
        loaded: &spec::LoadedSpec,
        cgroup_path: &str,
        opts: &RestoreOptions,
        pid_out: &mut Option<i32>,
    ) -> Result<(), CheckpointError> {
        let spec = &loaded.spec;
        dir.save_config(&loaded.raw, true)?;
        let mut st = crate::create::creating_state(&opts.id, loaded, cgroup_path);
        dir.save_transient(&st)?;
        let cgroup = berth_cgroups::manager(cgroup_path)?;
        cgroup.create()?;
        cgroup.apply(&crate::create::create_resources(spec))?;
        let external = map_external_mounts(descriptor, loaded, cgroup.as_ref())?;
        let work = match &opts.work_path {
            Some(w) => absolute(w)?,
            None => images.to_path_buf(),
        };
        make_dir(&work)?;
        let pid_file = dir.path.join(RESTORE_PID_FILE);
        let root = RootMount::bind(&loaded.rootfs, &dir.path.join(CRIU_ROOT))?;
        let plan = RestorePlan {
            images: images.to_path_buf(),
            work: work.clone(),
            root: root.path.clone(),
            pid_file: pid_file.clone(),
            cgroup_root: cgroup_path.to_string(),
            external_mounts: external,
            inherit_fds: unique_keys(&descriptor.stdio, false),
            flags: opts.flags.clone(),
        };
        let ran = criu.run(criu::Action::Restore, &plan.args(), &work);
        // The pid file may exist even when criu failed after forking the tree.
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok());
        *pid_out = pid;
        drop(root);
        ran?;
        let pid = pid.ok_or_else(|| CheckpointError::Io {
            action: "reading the restored pid from",
            path: pid_file.clone(),
            source: std::io::ErrorKind::NotFound.into(),
        })?;
        let _ = std::fs::remove_file(&pid_file);
        crate::create::mark_created(&mut st, pid)?;
        dir.save(&st)?;
        if let Some(f) = &opts.pid_file {
            state::write_atomic(f, pid.to_string().as_bytes(), 0o644)?;
        }
        Ok(())
    }
}

/// Each external mount key of the checkpoint with the host path it gets now.
fn map_external_mounts(
    descriptor: &Descriptor,
    loaded: &spec::LoadedSpec,
    cgroup: &dyn berth_cgroups::CgroupManager,
) -> Result<Vec<(String, PathBuf)>, CheckpointError> {
    let mounts = loaded.spec.mounts().as_deref().unwrap_or(&[]);
    let mut cgroup_mounts = None;
    let mut out = Vec::new();
    for ext in &descriptor.external_mounts {
        let source = match ext {
            ExternalMount::Bind { destination } => {
                let m = mounts
                    .iter()
                    .find(|m| is_bind(m) && destination_key(m) == *destination)
                    .ok_or_else(|| {
                        CheckpointError::Unsupported(format!(
                            "the checkpoint has a bind mount at {destination} but the bundle's config has none there"
                        ))
                    })?;
                let src = m.source().clone().unwrap_or_default();
                loaded.bundle.join(src)
            }
            ExternalMount::Cgroup { name, destination } => {
                if cgroup_mounts.is_none() {
                    cgroup_mounts = Some(cgroup.container_mounts()?);
                }
                cgroup_mounts
                    .as_deref()
                    .unwrap_or(&[])
                    .iter()
                    .find(|c| c.name == *name)
                    .map(|c| c.host_dir.clone())
                    .ok_or_else(|| {
                        CheckpointError::Unsupported(format!(
                            "the checkpoint has the cgroup hierarchy {name:?} at {destination} but this host has none"
                        ))
                    })?
            }
        };
        out.push((ext.key().to_string(), source));
    }
    Ok(out)
}

/// The rootfs bind-mounted where `criu restore --root` wants a mount point; unmounted
/// (lazily) and removed on drop.
struct RootMount {
    path: PathBuf,
}

impl RootMount {
    fn bind(rootfs: &Path, at: &Path) -> Result<Self, CheckpointError> {
        std::fs::create_dir_all(at).map_err(io_err("creating", at))?;
        mount(
            Some(rootfs),
            at,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| {
            ContainerError::sys(
                format!("bind-mounting {} at {}", rootfs.display(), at.display()),
                e,
            )
        })?;
        Ok(Self {
            path: at.to_path_buf(),
        })
    }
}

impl Drop for RootMount {
    fn drop(&mut self) {
        if let Err(e) = umount2(&self.path, MntFlags::MNT_DETACH) {
            tracing::warn!("unmounting {}: {e}", self.path.display());
        }
        let _ = std::fs::remove_dir(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_cgroups::ContainerCgroupMount;

    fn spec_with(mounts: serde_json::Value, cgroupns: bool) -> Spec {
        let mut ns = vec![serde_json::json!({"type": "mount"})];
        if cgroupns {
            ns.push(serde_json::json!({"type": "cgroup"}));
        }
        serde_json::from_value(serde_json::json!({
            "ociVersion": "1.2.0",
            "root": {"path": "rootfs"},
            "mounts": mounts,
            "linux": {"namespaces": ns}
        }))
        .unwrap()
    }

    fn cg(name: &str, unified: bool) -> ContainerCgroupMount {
        ContainerCgroupMount {
            name: name.into(),
            host_dir: format!("/sys/fs/cgroup/{name}/c").into(),
            unified,
        }
    }

    #[test]
    fn binds_and_v1_hierarchies_are_external_other_mounts_are_not() {
        let spec = spec_with(
            serde_json::json!([
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/data/", "type": "bind", "source": "/host"},
                {"destination": "/etc/x", "type": "none", "source": "/h", "options": ["rbind", "ro"]},
                {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}
            ]),
            true,
        );
        let ext = external_mounts(&spec, &[cg("memory", false), cg("unified", true)]);
        assert_eq!(
            ext,
            vec![
                ExternalMount::Bind {
                    destination: "/data".into()
                },
                ExternalMount::Bind {
                    destination: "/etc/x".into()
                },
                ExternalMount::Cgroup {
                    destination: "/sys/fs/cgroup/memory".into(),
                    name: "memory".into()
                },
                ExternalMount::Cgroup {
                    destination: "/sys/fs/cgroup/unified".into(),
                    name: "unified".into()
                },
            ]
        );
    }

    #[test]
    fn pure_cgroup2_in_own_namespace_is_dumped_not_external() {
        let mounts = serde_json::json!([
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup"}
        ]);
        let v2 = [cg("", true)];
        assert!(external_mounts(&spec_with(mounts.clone(), true), &v2).is_empty());
        assert_eq!(
            external_mounts(&spec_with(mounts, false), &v2),
            vec![ExternalMount::Cgroup {
                destination: "/sys/fs/cgroup".into(),
                name: String::new()
            }]
        );
    }

    #[test]
    fn descriptor_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let d = Descriptor {
            version: DESCRIPTOR_VERSION,
            oci_version: OCI_VERSION.into(),
            id: "c".into(),
            created: state::now_rfc3339(),
            pre_dump: false,
            external_mounts: vec![ExternalMount::Bind {
                destination: "/data".into(),
            }],
            stdio: vec![StdioFd {
                fd: 1,
                path: "/tmp/out".into(),
                key: "file[18:2a]".into(),
                external: true,
            }],
        };
        d.save(dir.path()).unwrap();
        assert_eq!(Descriptor::load(dir.path()).unwrap(), d);
        let empty = tempfile::tempdir().unwrap();
        let err = Descriptor::load(empty.path()).unwrap_err().to_string();
        assert!(
            err.contains("not a checkpoint made by berth-runtime"),
            "{err}"
        );
    }
}
