//! Real-kernel tests (root only): prepare / pivot / finalize in a child process with its
//! own mount namespace, then assertions on /proc/self/mountinfo and the file system.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::json;

fn standard_mounts(dir: &Path) -> serde_json::Value {
    json!([
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/data", "type": "bind", "source": "hostdata", "options": ["rbind", "ro", "nosuid"]},
        {"destination": "/etc/marker", "source": dir.join("marker"), "options": ["bind"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nodev", "noatime", "size=1m"]}
    ])
}

#[test]
fn mounts_devices_and_pivot() {
    if let Some(dir) = child_dir() {
        let spec = spec(json!({"mounts": standard_mounts(&dir)}));
        let (rootfs, bundle) = (rootfs(&dir), bundle(&dir));
        let opts = options(&rootfs, &bundle);
        berth_rootfs::prepare(&spec, &opts, None).unwrap();
        berth_rootfs::pivot(&opts).unwrap();
        berth_rootfs::finalize(&spec).unwrap();
        return check_standard_mounts(&dir);
    }
    let Some(dir) = setup() else { return };
    run_child("mounts_devices_and_pivot", dir.path(), Ns::Mount);
    assert_eq!(
        fs::read_to_string(dir.path().join("marker")).unwrap(),
        "marker"
    );
    assert!(fs::read_dir(outside(dir.path())).unwrap().next().is_none());
}

fn check_standard_mounts(dir: &Path) {
    assert!(
        Path::new("/bin/busybox").is_file(),
        "not inside the new root"
    );
    assert_eq!(mount_at("/proc").fstype, "proc");
    let dev = mount_at("/dev");
    assert_eq!(dev.fstype, "tmpfs");
    assert_options(&dev, &["nosuid", "size=65536k", "mode=755"]);
    assert_options(&mount_at("/dev/pts"), &["nosuid", "noexec", "ptmxmode=666"]);
    assert_options(&mount_at("/dev/shm"), &["nosuid", "noexec", "nodev"]);
    assert_eq!(mount_at("/dev/mqueue").fstype, "mqueue");
    let sys = mount_at("/sys");
    assert_eq!(sys.fstype, "sysfs");
    assert_options(&sys, &["ro", "nosuid", "noexec", "nodev"]);
    assert_options(&mount_at("/data"), &["ro", "nosuid"]);
    assert_eq!(fs::read_to_string("/data/hello").unwrap(), "hi");
    assert_eq!(fs::read_to_string("/etc/marker").unwrap(), "marker");
    assert_options(&mount_at("/tmp"), &["nodev", "noatime"]);
    let host = dir.to_str().unwrap();
    let leaked: Vec<_> = berth_rootfs::mountinfo::read()
        .unwrap()
        .into_iter()
        .filter(|m| m.mount_point.to_str().unwrap().starts_with(host))
        .collect();
    assert!(leaked.is_empty(), "old root still visible: {leaked:?}");
    check_default_devices();
}

fn check_default_devices() {
    let chr = libc::S_IFCHR;
    assert_eq!(node("/dev/null"), (chr, 1, 3, 0o666));
    assert_eq!(node("/dev/zero"), (chr, 1, 5, 0o666));
    assert_eq!(node("/dev/full"), (chr, 1, 7, 0o666));
    assert_eq!(node("/dev/random"), (chr, 1, 8, 0o666));
    assert_eq!(node("/dev/urandom"), (chr, 1, 9, 0o666));
    assert_eq!(node("/dev/tty"), (chr, 5, 0, 0o666));
    let link = |p: &str| fs::read_link(p).unwrap();
    assert_eq!(link("/dev/fd"), PathBuf::from("/proc/self/fd"));
    assert_eq!(link("/dev/stdin"), PathBuf::from("/proc/self/fd/0"));
    assert_eq!(link("/dev/stdout"), PathBuf::from("/proc/self/fd/1"));
    assert_eq!(link("/dev/stderr"), PathBuf::from("/proc/self/fd/2"));
    assert_eq!(link("/dev/ptmx"), PathBuf::from("pts/ptmx"));
    assert_eq!(
        fs::symlink_metadata("/dev/core").is_ok(),
        Path::new("/proc/kcore").exists()
    );
    fs::write("/dev/null", "discarded").unwrap();
}

#[test]
fn linux_devices_with_mode_and_owner() {
    if let Some(dir) = child_dir() {
        let spec = spec(json!({"linux": {"devices": [
            {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 0o600, "uid": 1000, "gid": 1001},
            {"path": "/dev/loop9", "type": "b", "major": 7, "minor": 9},
            {"path": "/dev/sub/fifo", "type": "p", "fileMode": 0o640},
            {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o660}
        ]}}));
        let (rootfs, bundle) = (rootfs(&dir), bundle(&dir));
        berth_rootfs::prepare(&spec, &options(&rootfs, &bundle), None).unwrap();
        assert_eq!(
            node(rootfs.join("dev/fuse")),
            (libc::S_IFCHR, 10, 229, 0o600)
        );
        let st = nix::sys::stat::stat(&rootfs.join("dev/fuse")).unwrap();
        assert_eq!((st.st_uid, st.st_gid), (1000, 1001));
        assert_eq!(node(rootfs.join("dev/loop9")), (libc::S_IFBLK, 7, 9, 0o666));
        assert_eq!(node(rootfs.join("dev/sub/fifo")).0, libc::S_IFIFO);
        assert_eq!(node(rootfs.join("dev/sub/fifo")).3, 0o640);
        assert_eq!(node(rootfs.join("dev/null")), (libc::S_IFCHR, 1, 3, 0o660));
        assert_eq!(node(rootfs.join("dev/zero")), (libc::S_IFCHR, 1, 5, 0o666));
        assert!(
            fs::symlink_metadata(rootfs.join("dev/ptmx")).is_err(),
            "no devpts, no ptmx link"
        );
        return;
    }
    let Some(dir) = setup() else { return };
    run_child("linux_devices_with_mode_and_owner", dir.path(), Ns::Mount);
}

#[test]
fn no_devices_when_dev_is_a_host_bind() {
    if let Some(dir) = child_dir() {
        let spec = spec(
            json!({"mounts": [{"destination": "/dev", "source": "/dev", "options": ["rbind"]}],
            "linux": {"devices": [{"path": "/dev/berth-test-node", "type": "c", "major": 1, "minor": 3}]}}),
        );
        let (rootfs, bundle) = (rootfs(&dir), bundle(&dir));
        berth_rootfs::prepare(&spec, &options(&rootfs, &bundle), None).unwrap();
        assert!(!rootfs.join("dev/berth-test-node").exists());
        assert!(is_mount_point(rootfs.join("dev")));
        return;
    }
    let Some(dir) = setup() else { return };
    run_child("no_devices_when_dev_is_a_host_bind", dir.path(), Ns::Mount);
    assert!(!Path::new("/dev/berth-test-node").exists());
}

#[test]
fn masked_and_readonly_paths() {
    if let Some(dir) = child_dir() {
        let spec = spec(json!({
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "linux": {
                "maskedPaths": ["/secret", "/secretfile", "/nothing/here", "/proc/keys", "/proc/kcore"],
                "readonlyPaths": ["/rodir", "/nothing", "/proc/sys"]
            }
        }));
        let (rootfs, bundle) = (rootfs(&dir), bundle(&dir));
        let opts = options(&rootfs, &bundle);
        berth_rootfs::prepare(&spec, &opts, None).unwrap();
        berth_rootfs::pivot(&opts).unwrap();
        berth_rootfs::finalize(&spec).unwrap();
        assert!(
            fs::read_dir("/secret").unwrap().next().is_none(),
            "/secret not masked"
        );
        let secret = mount_at("/secret");
        assert_eq!(secret.fstype, "tmpfs");
        assert_options(&secret, &["ro"]);
        assert_eq!(fs::read_to_string("/secretfile").unwrap(), "");
        assert_eq!(fs::read_to_string("/proc/keys").unwrap(), "");
        assert_eq!(errno_of(fs::write("/rodir/new", "x")), libc::EROFS);
        assert_eq!(fs::read_to_string("/rodir/f").unwrap(), "f");
        assert_options(&mount_at("/rodir"), &["ro", "nosuid", "nodev", "noexec"]);
        assert_options(&mount_at("/proc/sys"), &["ro", "nosuid", "nodev", "noexec"]);
        fs::write("/writable", "yes").unwrap();
        return;
    }
    let Some(dir) = setup() else { return };
    let rootfs = rootfs(dir.path());
    fs::create_dir_all(rootfs.join("secret")).unwrap();
    fs::write(rootfs.join("secret/file"), "s").unwrap();
    fs::write(rootfs.join("secretfile"), "top secret").unwrap();
    fs::create_dir_all(rootfs.join("rodir")).unwrap();
    fs::write(rootfs.join("rodir/f"), "f").unwrap();
    run_child("masked_and_readonly_paths", dir.path(), Ns::Mount);
    assert_eq!(
        fs::read_to_string(rootfs.join("secretfile")).unwrap(),
        "top secret"
    );
    assert_eq!(fs::read_to_string(rootfs.join("writable")).unwrap(), "yes");
}

#[test]
fn readonly_root_and_shared_propagation() {
    if let Some(dir) = child_dir() {
        let spec = spec(json!({
            "root": {"path": "rootfs", "readonly": true},
            "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                       {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}],
            "linux": {"rootfsPropagation": "rshared"}
        }));
        let (rootfs, bundle) = (rootfs(&dir), bundle(&dir));
        let opts = options(&rootfs, &bundle);
        berth_rootfs::prepare(&spec, &opts, None).unwrap();
        berth_rootfs::pivot(&opts).unwrap();
        berth_rootfs::finalize(&spec).unwrap();
        assert_eq!(errno_of(fs::write("/newfile", "x")), libc::EROFS);
        let root = mount_at("/");
        assert_options(&root, &["ro"]);
        assert!(
            root.optional.iter().any(|o| o.starts_with("shared:")),
            "/ not shared: {:?}",
            root.optional
        );
        fs::write("/tmp/ok", "tmp stays writable").unwrap();
        return;
    }
    let Some(dir) = setup() else { return };
    run_child(
        "readonly_root_and_shared_propagation",
        dir.path(),
        Ns::Mount,
    );
    assert!(!rootfs(dir.path()).join("newfile").exists());
}

#[test]
fn no_pivot_uses_move_and_chroot() {
    if let Some(dir) = child_dir() {
        let spec =
            spec(json!({"mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}]}));
        let (rootfs, bundle) = (rootfs(&dir), bundle(&dir));
        let opts = berth_rootfs::RootfsOptions {
            no_pivot: true,
            ..options(&rootfs, &bundle)
        };
        berth_rootfs::prepare(&spec, &opts, None).unwrap();
        berth_rootfs::pivot(&opts).unwrap();
        berth_rootfs::finalize(&spec).unwrap();
        assert!(Path::new("/bin/busybox").is_file());
        assert_eq!(std::env::current_dir().unwrap(), PathBuf::from("/"));
        assert_eq!(mount_at("/proc").fstype, "proc");
        assert_eq!(node("/dev/null").0, libc::S_IFCHR);
        return;
    }
    let Some(dir) = setup() else { return };
    run_child("no_pivot_uses_move_and_chroot", dir.path(), Ns::Mount);
}

#[test]
fn tmpcopyup_copies_existing_content() {
    if let Some(dir) = child_dir() {
        let spec = spec(
            json!({"mounts": [{"destination": "/etc/conf", "type": "tmpfs", "source": "tmpfs",
            "options": ["tmpcopyup", "mode=755", "nosuid"]}]}),
        );
        let (rootfs, bundle) = (rootfs(&dir), bundle(&dir));
        berth_rootfs::prepare(&spec, &options(&rootfs, &bundle), None).unwrap();
        let conf = rootfs.join("etc/conf");
        let mount = mount_at(&conf);
        assert_eq!(mount.fstype, "tmpfs");
        assert_options(&mount, &["nosuid"]);
        assert_eq!(fs::read_to_string(conf.join("a.txt")).unwrap(), "a");
        assert_eq!(
            fs::metadata(conf.join("a.txt"))
                .unwrap()
                .permissions()
                .mode()
                & 0o7777,
            0o640
        );
        assert_eq!(fs::read_to_string(conf.join("sub/b.txt")).unwrap(), "b");
        assert_eq!(
            fs::read_link(conf.join("link")).unwrap(),
            PathBuf::from("a.txt")
        );
        fs::write(conf.join("new"), "only in tmpfs").unwrap();
        return;
    }
    let Some(dir) = setup() else { return };
    let conf = rootfs(dir.path()).join("etc/conf");
    fs::create_dir_all(conf.join("sub")).unwrap();
    fs::write(conf.join("a.txt"), "a").unwrap();
    fs::set_permissions(conf.join("a.txt"), fs::Permissions::from_mode(0o640)).unwrap();
    fs::write(conf.join("sub/b.txt"), "b").unwrap();
    std::os::unix::fs::symlink("a.txt", conf.join("link")).unwrap();
    run_child("tmpcopyup_copies_existing_content", dir.path(), Ns::Mount);
    assert!(
        !conf.join("new").exists(),
        "write went to the rootfs, not the tmpfs"
    );
}

#[test]
fn recursive_read_only_reaches_submounts() {
    if let Some(dir) = child_dir() {
        let hostdata = bundle(&dir).join("hostdata");
        fs::create_dir_all(hostdata.join("sub")).unwrap();
        nix::mount::mount(
            Some("tmpfs"),
            &hostdata.join("sub"),
            Some("tmpfs"),
            nix::mount::MsFlags::empty(),
            None::<&str>,
        )
        .unwrap();
        let spec = spec(json!({"mounts": [
            {"destination": "/rro", "source": "hostdata", "options": ["rbind", "rro", "rnosuid"]},
            {"destination": "/ro", "source": "hostdata", "options": ["rbind", "ro"]}
        ]}));
        let (rootfs, bundle) = (rootfs(&dir), bundle(&dir));
        berth_rootfs::prepare(&spec, &options(&rootfs, &bundle), None).unwrap();
        assert_options(&mount_at(rootfs.join("rro")), &["ro", "nosuid"]);
        assert_options(&mount_at(rootfs.join("rro/sub")), &["ro", "nosuid"]);
        assert_options(&mount_at(rootfs.join("ro")), &["ro"]);
        assert_options(&mount_at(rootfs.join("ro/sub")), &["rw"]);
        return;
    }
    let Some(dir) = setup() else { return };
    run_child(
        "recursive_read_only_reaches_submounts",
        dir.path(),
        Ns::Mount,
    );
}

#[test]
fn idmap_is_rejected_clearly() {
    if let Some(dir) = child_dir() {
        let spec = spec(
            json!({"mounts": [{"destination": "/data", "source": "hostdata", "options": ["rbind", "idmap"]}]}),
        );
        let (rootfs, bundle) = (rootfs(&dir), bundle(&dir));
        let err = berth_rootfs::prepare(&spec, &options(&rootfs, &bundle), None).unwrap_err();
        assert_eq!(err.to_string(), "mount option idmap for /data: unsupported");
        let spec = spec_with_bad_proc();
        let err = berth_rootfs::prepare(&spec, &options(&rootfs, &bundle), None).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("mounting nosuchfs at /proc: ENODEV"),
            "{err}"
        );
        return;
    }
    let Some(dir) = setup() else { return };
    run_child("idmap_is_rejected_clearly", dir.path(), Ns::Mount);
}

fn spec_with_bad_proc() -> oci_spec::runtime::Spec {
    spec(json!({"mounts": [{"destination": "/proc", "type": "nosuchfs", "source": "x"}]}))
}
