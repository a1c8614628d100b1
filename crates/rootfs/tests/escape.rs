//! Security tests (root only): a hostile rootfs whose symlinks point outside it must
//! never make a mount, directory, file or device land outside the rootfs.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

use common::*;
use serde_json::json;

/// rootfs/abs -> <outside> (absolute), rootfs/dots -> ../../../…/<outside>,
/// rootfs/chain1 -> chain2 -> /chain3 -> ../../<outside>, rootfs/etclink -> /etc.
fn hostile_rootfs(dir: &Path) {
    let rootfs = rootfs(dir);
    let outside = outside(dir);
    let relative = outside.strip_prefix("/").unwrap();
    symlink(&outside, rootfs.join("abs")).unwrap();
    symlink(
        Path::new("../../../../../../../../../..").join(relative),
        rootfs.join("dots"),
    )
    .unwrap();
    symlink("chain2", rootfs.join("chain1")).unwrap();
    symlink("/chain3", rootfs.join("chain2")).unwrap();
    symlink(
        Path::new("../../../../../..").join(relative),
        rootfs.join("chain3"),
    )
    .unwrap();
    symlink("/etc", rootfs.join("etclink")).unwrap();
}

fn hostile_spec(dir: &Path) -> oci_spec::runtime::Spec {
    let marker = dir.join("marker");
    spec(json!({
        "mounts": [
            {"destination": "/abs/t1", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/dots/t2", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/chain1/t3", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/abs/f1", "source": marker, "options": ["bind", "ro"]},
            {"destination": "/etclink", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/../../../../evil", "source": marker, "options": ["bind"]}
        ],
        "linux": {"devices": [{"path": "/abs/devnode", "type": "c", "major": 1, "minor": 3}]}
    }))
}

#[test]
fn symlinks_pointing_outside_stay_inside() {
    if let Some(dir) = child_dir() {
        let (rootfs, bundle) = (rootfs(&dir), bundle(&dir));
        berth_rootfs::prepare(&hostile_spec(&dir), &options(&rootfs, &bundle), None).unwrap();
        let outside = outside(&dir);
        let moved = inside(&rootfs, &outside);
        for name in ["t1", "t2", "t3"] {
            assert_eq!(mount_at(moved.join(name)).fstype, "tmpfs", "{name}");
            assert!(
                !is_mount_point(outside.join(name)),
                "{name} mounted on the host path"
            );
        }
        assert_options(&mount_at(moved.join("f1")), &["ro"]);
        assert_eq!(fs::read_to_string(moved.join("f1")).unwrap(), "marker");
        assert_eq!(mount_at(rootfs.join("etc")).fstype, "tmpfs");
        assert!(!is_mount_point("/etc"), "tmpfs landed on the host's /etc");
        assert!(is_mount_point(rootfs.join("evil")));
        assert_eq!(node(moved.join("devnode")).0, libc::S_IFCHR);
        assert!(
            fs::read_dir(&outside).unwrap().next().is_none(),
            "host dir touched"
        );
        return;
    }
    let Some(dir) = setup() else { return };
    hostile_rootfs(dir.path());
    run_child(
        "symlinks_pointing_outside_stay_inside",
        dir.path(),
        Ns::Mount,
    );
    assert!(
        fs::read_dir(outside(dir.path())).unwrap().next().is_none(),
        "host dir touched"
    );
    assert!(!dir.path().join("evil").exists() && !Path::new("/evil").exists());
}

#[test]
fn dev_symlinked_outside_keeps_devices_inside() {
    if let Some(dir) = child_dir() {
        let (rootfs, bundle) = (rootfs(&dir), bundle(&dir));
        let spec = spec(
            json!({"mounts": [{"destination": "/dev/pts", "type": "devpts", "source": "devpts"}]}),
        );
        berth_rootfs::prepare(&spec, &options(&rootfs, &bundle), None).unwrap();
        let moved = inside(&rootfs, &outside(&dir));
        assert_eq!(node(moved.join("null")), (libc::S_IFCHR, 1, 3, 0o666));
        assert_eq!(
            fs::read_link(moved.join("ptmx")).unwrap(),
            Path::new("pts/ptmx")
        );
        assert!(is_mount_point(moved.join("pts")));
        return;
    }
    let Some(dir) = setup() else { return };
    let rootfs = rootfs(dir.path());
    fs::remove_dir(rootfs.join("dev")).unwrap();
    symlink(outside(dir.path()), rootfs.join("dev")).unwrap();
    run_child(
        "dev_symlinked_outside_keeps_devices_inside",
        dir.path(),
        Ns::Mount,
    );
    assert!(
        fs::read_dir(outside(dir.path())).unwrap().next().is_none(),
        "host dir touched"
    );
}

#[test]
fn dangling_symlinks_are_created_inside() {
    if let Some(dir) = child_dir() {
        let (rootfs, bundle) = (rootfs(&dir), bundle(&dir));
        let spec = spec(json!({"mounts": [
            {"destination": "/dangle/x", "type": "tmpfs", "source": "tmpfs"},
            {"destination": "/dfile", "source": dir.join("marker"), "options": ["bind"]}
        ]}));
        berth_rootfs::prepare(&spec, &options(&rootfs, &bundle), None).unwrap();
        let moved = inside(&rootfs, &outside(&dir));
        assert!(is_mount_point(moved.join("missing/x")));
        assert_eq!(
            fs::read_to_string(moved.join("missing-file")).unwrap(),
            "marker"
        );
        return;
    }
    let Some(dir) = setup() else { return };
    let target = outside(dir.path()).join("missing");
    symlink(&target, rootfs(dir.path()).join("dangle")).unwrap();
    symlink(
        outside(dir.path()).join("missing-file"),
        rootfs(dir.path()).join("dfile"),
    )
    .unwrap();
    run_child(
        "dangling_symlinks_are_created_inside",
        dir.path(),
        Ns::Mount,
    );
    assert!(
        fs::read_dir(outside(dir.path())).unwrap().next().is_none(),
        "created on the host"
    );
}

#[test]
fn symlink_loop_is_a_clear_error() {
    if let Some(dir) = child_dir() {
        let (rootfs, bundle) = (rootfs(&dir), bundle(&dir));
        let spec = spec(
            json!({"mounts": [{"destination": "/loop1/x", "type": "tmpfs", "source": "tmpfs"}]}),
        );
        let err = berth_rootfs::prepare(&spec, &options(&rootfs, &bundle), None).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("resolving /loop1/x inside the rootfs: ELOOP"),
            "{message}"
        );
        return;
    }
    let Some(dir) = setup() else { return };
    symlink("/loop2", rootfs(dir.path()).join("loop1")).unwrap();
    symlink("loop1", rootfs(dir.path()).join("loop2")).unwrap();
    run_child("symlink_loop_is_a_clear_error", dir.path(), Ns::Mount);
}
