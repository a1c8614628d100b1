//! Two layers unpacked and committed in a chain, a container snapshot prepared on top
//! and mounted with overlayfs in a child process's private mount namespace (this test
//! binary re-executed with `--exact`), so no mount outlives the test even when it
//! fails. Needs root; skips loudly otherwise.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_snapshot::{mount_all, unmount, Limits, Mount, SnapshotError, Snapshotter};
use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use serde::{Deserialize, Serialize};

const CHILD_ENV: &str = "BERTH_SNAPSHOT_OVERLAY_CHILD";

/// What the child mounts and checks.
#[derive(Serialize, Deserialize)]
struct ChildPlan {
    container: Vec<Mount>,
    container_target: PathBuf,
    view: Vec<Mount>,
    view_target: PathBuf,
}

fn layer(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        match data {
            Some(data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(data.len() as u64);
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
            }
        }
        h.set_cksum();
        builder.append(&h, data.unwrap_or_default()).unwrap();
    }
    builder.into_inner().unwrap()
}

/// prepare on `parent`, unpack, commit as `name`.
fn add_layer(s: &Snapshotter, name: &str, parent: Option<&str>, tar: &[u8]) {
    let key = format!("extract-{name}");
    s.prepare(&key, parent).unwrap();
    s.unpack(&key, tar, Limits::default()).unwrap();
    s.commit(name, &key).unwrap();
}

#[test]
fn layers_mount_as_overlay() {
    if let Ok(plan) = std::env::var(CHILD_ENV) {
        child(serde_json::from_str(&plan).unwrap());
        return;
    }
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIP: overlay mount test needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let s = Snapshotter::new(dir.path().join("root")).unwrap();
    let l1 = layer(&[
        ("etc/", None),
        ("etc/motd", Some(b"hello")),
        ("etc/hosts", Some(b"127.0.0.1 localhost")),
        ("var/cache/", None),
        ("var/cache/old", Some(b"old")),
    ]);
    let l2 = layer(&[
        ("etc/.wh.motd", Some(b"")),
        ("etc/issue", Some(b"layer two")),
        ("var/cache/.wh..wh..opq", Some(b"")),
        ("var/cache/new", Some(b"new")),
    ]);
    // Gzip the second layer, as registries serve them.
    let l2 = {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&l2).unwrap();
        enc.finish().unwrap()
    };
    add_layer(&s, "l1", None, &l1);
    add_layer(&s, "l2", Some("l1"), &l2);
    let plan = ChildPlan {
        container: s.prepare("ctr", Some("l2")).unwrap(),
        container_target: dir.path().join("rootfs"),
        view: s.view("ro", Some("l2")).unwrap(),
        view_target: dir.path().join("view"),
    };
    fs::create_dir(&plan.container_target).unwrap();
    fs::create_dir(&plan.view_target).unwrap();

    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "layers_mount_as_overlay", "--nocapture"])
        .env(CHILD_ENV, serde_json::to_string(&plan).unwrap());
    // SAFETY: between fork and exec the closure only makes raw syscalls (unshare,
    // mount) that neither allocate nor take locks.
    unsafe {
        cmd.pre_exec(|| {
            nix::sched::unshare(CloneFlags::CLONE_NEWNS)?;
            nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )?;
            Ok(())
        });
    }
    let status = cmd.status().unwrap();
    assert!(status.success(), "child failed: {status}");

    // The child's mounts died with its namespace.
    assert_eq!(fs::read_dir(&plan.container_target).unwrap().count(), 0);
    // Writes went to the container's upper only.
    let upper = s.upper_dir("ctr").unwrap();
    assert_eq!(
        fs::read(upper.join("written")).unwrap(),
        b"by the container"
    );
    let hosts = fs::symlink_metadata(upper.join("etc/hosts")).unwrap();
    assert!(hosts.file_type().is_char_device() && hosts.rdev() == 0);
    let l1_fs = dir.path().join("root/snapshots/0/fs");
    assert!(!l1_fs.join("written").exists());
    assert_eq!(
        fs::read(l1_fs.join("etc/hosts")).unwrap(),
        b"127.0.0.1 localhost"
    );
    assert!(s.usage("ctr").unwrap().inodes >= 3);

    // Removal order: children first.
    for key in ["l2", "l1"] {
        assert!(matches!(
            s.remove(key),
            Err(SnapshotError::HasChildren { .. })
        ));
    }
    for key in ["ctr", "ro", "l2", "l1"] {
        s.remove(key)
            .unwrap_or_else(|e| panic!("removing {key}: {e}"));
    }
    assert!(s.list().unwrap().is_empty());
}

/// Runs in the child, in its own mount namespace.
fn child(plan: ChildPlan) {
    let root = &plan.container_target;
    mount_all(&plan.container, root).unwrap();
    check_merged(root);
    fs::write(root.join("written"), b"by the container").unwrap();
    fs::remove_file(root.join("etc/hosts")).unwrap();
    unmount(root).unwrap();

    let view = &plan.view_target;
    mount_all(&plan.view, view).unwrap();
    check_merged(view);
    let err = fs::write(view.join("nope"), b"").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ReadOnlyFilesystem, "{err}");
    unmount(view).unwrap();
}

fn check_merged(root: &Path) {
    // From both layers.
    assert_eq!(
        fs::read(root.join("etc/hosts")).unwrap(),
        b"127.0.0.1 localhost"
    );
    assert_eq!(fs::read(root.join("etc/issue")).unwrap(), b"layer two");
    // The whiteout hides the lower file.
    assert!(!root.join("etc/motd").exists());
    // The opaque directory hides the lower contents.
    let cache: Vec<_> = fs::read_dir(root.join("var/cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(cache, ["new"]);
}
