//! The container's root filesystem: mounts, devices, pivot_root, masked and read-only
//! paths. Every path taken from the spec is resolved inside the rootfs, so that a
//! symlink in a hostile rootfs never makes a mount land outside it.
//!
//! Called by the container's init process, already in its new mount namespace, in this
//! order: [`prepare`] → (createRuntime / createContainer hooks) → [`pivot`] → [`finalize`].
//! The host's /proc must be visible until [`pivot`] (mounts go through /proc/self/fd).
//!
//! Modules by role: `resolve` (safe lookup and creation inside the rootfs), `options`
//! (mount option parsing), `mounts` and `cgroup` (the `mounts` entries), `copyup`
//! (tmpcopyup), `devices`, `pivot`, `paths` (masked and read-only paths), `sys` (the
//! syscall wrappers).

use std::path::Path;

use nix::mount::MsFlags;
use oci_spec::runtime::Spec;

mod cgroup;
mod copyup;
mod devices;
mod error;
pub mod mountinfo;
mod mounts;
mod options;
mod paths;
mod pivot;
mod resolve;
mod sys;

pub use error::RootfsError;

use cgroup::CgroupSource;
use mounts::Mounter;
pub use resolve::Root;

/// Options that do not come from the spec.
#[derive(Debug, Clone, Copy)]
pub struct RootfsOptions<'a> {
    /// The rootfs directory on the host (absolute, canonical).
    pub rootfs: &'a Path,
    /// The bundle directory (relative mount sources are resolved against it).
    pub bundle: &'a Path,
    /// chroot instead of pivot_root (runc's --no-pivot).
    pub no_pivot: bool,
    /// The process is in a new user namespace: devices are bind-mounted, not mknod'ed.
    pub in_user_ns: bool,
    /// The container got a new cgroup namespace.
    pub in_cgroup_ns: bool,
}

/// Set mount propagation, make the rootfs a mount point, perform every `mounts` entry,
/// create default and `linux.devices` devices and the /dev symlinks.
pub fn prepare(
    spec: &Spec,
    opts: &RootfsOptions<'_>,
    cgroup: Option<&dyn berth_cgroups::CgroupManager>,
) -> Result<(), RootfsError> {
    let source = cgroup.map_or(CgroupSource::None, CgroupSource::Manager);
    prepare_from(spec, opts, source)
}

/// Test hook: [`prepare`] with the cgroup mounts given directly instead of asked of a
/// [`berth_cgroups::CgroupManager`].
#[doc(hidden)]
pub fn prepare_with_cgroup_mounts(
    spec: &Spec,
    opts: &RootfsOptions<'_>,
    cgroup_mounts: &[berth_cgroups::ContainerCgroupMount],
) -> Result<(), RootfsError> {
    prepare_from(spec, opts, CgroupSource::Fixed(cgroup_mounts))
}

fn prepare_from(
    spec: &Spec,
    opts: &RootfsOptions<'_>,
    cgroup: CgroupSource<'_>,
) -> Result<(), RootfsError> {
    let propagation = rootfs_propagation(spec)?.unwrap_or(MsFlags::MS_SLAVE | MsFlags::MS_REC);
    set_root_propagation(propagation)?;
    make_rootfs_parent_private(opts.rootfs)?;
    bind_rootfs(opts.rootfs)?;
    let root = Root::open(opts.rootfs)?;
    let mounter = Mounter { root: &root, opts };
    for mount in spec.mounts().iter().flatten() {
        mounter.entry(mount, cgroup)?;
    }
    if devices::dev_is_host_bind(spec) {
        return Ok(());
    }
    for device in devices::wanted(spec)? {
        devices::create(&root, &device, opts.in_user_ns)?;
    }
    devices::symlinks(&root, spec)
}

/// pivot_root into the rootfs (or chroot with `no_pivot`) and detach the old root.
pub fn pivot(opts: &RootfsOptions<'_>) -> Result<(), RootfsError> {
    if opts.no_pivot {
        pivot::move_root_into(opts.rootfs)
    } else {
        pivot::pivot_root_into(opts.rootfs)
    }
}

/// After pivot: maskedPaths, readonlyPaths, `root.readonly`, rootfsPropagation.
pub fn finalize(spec: &Spec) -> Result<(), RootfsError> {
    let root = Root::open(Path::new("/"))?;
    // Like runc, create a missing process.cwd while / is still writable.
    if let Some(cwd) = spec.process().as_ref().map(|p| p.cwd()) {
        if root.open_existing(cwd)?.is_none() {
            root.mkdir_all(cwd)?;
        }
    }
    let linux = spec.linux().as_ref();
    for path in linux
        .and_then(|l| l.masked_paths().as_ref())
        .into_iter()
        .flatten()
    {
        paths::mask(&root, Path::new(path))?;
    }
    for path in linux
        .and_then(|l| l.readonly_paths().as_ref())
        .into_iter()
        .flatten()
    {
        paths::make_readonly(&root, Path::new(path))?;
    }
    if spec.root().as_ref().and_then(|r| r.readonly()) == Some(true) {
        paths::readonly_root(&root)?;
    }
    match rootfs_propagation(spec)? {
        Some(flags) => set_root_propagation(flags),
        None => Ok(()),
    }
}

/// `linux.rootfsPropagation` as mount flags; `None` when unset.
fn rootfs_propagation(spec: &Spec) -> Result<Option<MsFlags>, RootfsError> {
    let Some(value) = spec
        .linux()
        .as_ref()
        .and_then(|l| l.rootfs_propagation().as_deref())
    else {
        return Ok(None);
    };
    options::rootfs_propagation(value)
        .map(Some)
        .ok_or_else(|| RootfsError::InvalidSpec {
            field: "linux.rootfsPropagation".into(),
            reason: format!("unknown propagation {value:?}"),
        })
}

/// Change the propagation of the current `/` (recursively with an r-variant).
fn set_root_propagation(flags: MsFlags) -> Result<(), RootfsError> {
    nix::mount::mount(None::<&str>, "/", None::<&str>, flags, None::<&str>).map_err(|errno| {
        RootfsError::Propagation {
            propagation: format!("{:#x}", flags.bits()),
            dest: "/".into(),
            errno,
        }
    })
}

/// pivot_root refuses a shared parent mount, and a shared parent would carry the
/// container's mounts back to the host: make the mount holding the rootfs private.
fn make_rootfs_parent_private(rootfs: &Path) -> Result<(), RootfsError> {
    let mounts = mountinfo::read()?;
    let parent = mountinfo::containing(&mounts, rootfs).ok_or_else(mountinfo::not_found)?;
    if !parent
        .optional
        .iter()
        .any(|field| field.starts_with("shared:"))
    {
        return Ok(());
    }
    let flags = MsFlags::MS_PRIVATE;
    nix::mount::mount(
        None::<&str>,
        &parent.mount_point,
        None::<&str>,
        flags,
        None::<&str>,
    )
    .map_err(|errno| RootfsError::Propagation {
        propagation: "private".into(),
        dest: parent.mount_point.clone(),
        errno,
    })
}

/// Bind the rootfs onto itself so it is a mount point pivot_root can use.
fn bind_rootfs(rootfs: &Path) -> Result<(), RootfsError> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
    nix::mount::mount(Some(rootfs), rootfs, None::<&str>, flags, None::<&str>)
        .map_err(|errno| RootfsError::mount("bind of the rootfs", rootfs, errno))
}
