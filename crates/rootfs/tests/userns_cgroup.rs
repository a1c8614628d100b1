//! Real-kernel tests (root only) for a user namespace (locked mount flags, devices
//! bound from the host) and for the `cgroup` mount type with given cgroup mounts.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use berth_cgroups::ContainerCgroupMount;
use common::*;
use serde_json::json;

#[test]
fn user_namespace_keeps_locked_flags_and_binds_devices() {
    if let Some(dir) = child_dir() {
        let spec = spec(json!({
            "root": {"path": "rootfs", "readonly": true},
            "mounts": [
                {"destination": "/proc", "source": "/proc", "options": ["rbind"]},
                {"destination": "/data", "source": "hostdata", "options": ["rbind", "ro"]}
            ]
        }));
        let (rootfs, bundle) = (rootfs(&dir), bundle(&dir));
        let opts = berth_rootfs::RootfsOptions {
            in_user_ns: true,
            ..options(&rootfs, &bundle)
        };
        berth_rootfs::prepare(&spec, &opts, None).unwrap();
        assert_options(
            &mount_at(rootfs.join("data")),
            &["ro", "nosuid", "nodev", "noexec"],
        );
        assert!(
            is_mount_point(rootfs.join("dev/null")),
            "/dev/null not bound from the host"
        );
        assert_eq!(node(rootfs.join("dev/null")).0, libc::S_IFCHR);
        berth_rootfs::pivot(&opts).unwrap();
        berth_rootfs::finalize(&spec).unwrap();
        assert_eq!(errno_of(fs::write("/newfile", "x")), libc::EROFS);
        assert_options(&mount_at("/"), &["ro", "nosuid", "nodev", "noexec"]);
        fs::write("/dev/null", "discarded").unwrap();
        return;
    }
    let Some(dir) = setup() else { return };
    run_child(
        "user_namespace_keeps_locked_flags_and_binds_devices",
        dir.path(),
        Ns::User,
    );
}

fn cgroup_entry(name: &str, host_dir: PathBuf, unified: bool) -> ContainerCgroupMount {
    fs::create_dir_all(&host_dir).unwrap();
    fs::write(host_dir.join("tasks"), name).unwrap();
    ContainerCgroupMount {
        name: name.into(),
        host_dir,
        unified,
    }
}

fn cgroup_spec() -> oci_spec::runtime::Spec {
    spec(json!({"mounts": [
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
    ]}))
}

#[test]
fn cgroup_v1_gets_tmpfs_binds_and_symlinks() {
    if let Some(dir) = child_dir() {
        let mounts = [
            cgroup_entry("cpu,cpuacct", dir.join("cg/cpu"), false),
            cgroup_entry("memory", dir.join("cg/memory"), false),
            cgroup_entry("unified", dir.join("cg/unified"), true),
        ];
        let (rootfs, bundle) = (rootfs(&dir), bundle(&dir));
        berth_rootfs::prepare_with_cgroup_mounts(
            &cgroup_spec(),
            &options(&rootfs, &bundle),
            &mounts,
        )
        .unwrap();
        let base = rootfs.join("sys/fs/cgroup");
        let tmpfs = mount_at(&base);
        assert_eq!(tmpfs.fstype, "tmpfs");
        assert_options(&tmpfs, &["ro", "nosuid", "nodev", "noexec", "mode=755"]);
        for name in ["cpu,cpuacct", "memory", "unified"] {
            assert_options(&mount_at(base.join(name)), &["ro", "nosuid"]);
            assert_eq!(
                fs::read_to_string(base.join(name).join("tasks")).unwrap(),
                name
            );
        }
        assert_eq!(
            fs::read_link(base.join("cpu")).unwrap(),
            Path::new("cpu,cpuacct")
        );
        assert_eq!(
            fs::read_link(base.join("cpuacct")).unwrap(),
            Path::new("cpu,cpuacct")
        );
        return;
    }
    let Some(dir) = setup() else { return };
    run_child(
        "cgroup_v1_gets_tmpfs_binds_and_symlinks",
        dir.path(),
        Ns::Mount,
    );
}

#[test]
fn cgroup_v2_without_namespace_binds_the_container_cgroup() {
    if let Some(dir) = child_dir() {
        let mounts = [cgroup_entry("", dir.join("cg/v2"), true)];
        let (rootfs, bundle) = (rootfs(&dir), bundle(&dir));
        berth_rootfs::prepare_with_cgroup_mounts(
            &cgroup_spec(),
            &options(&rootfs, &bundle),
            &mounts,
        )
        .unwrap();
        let base = rootfs.join("sys/fs/cgroup");
        assert_options(&mount_at(&base), &["ro", "nosuid", "nodev", "noexec"]);
        assert_eq!(fs::read_to_string(base.join("tasks")).unwrap(), "");
        return;
    }
    let Some(dir) = setup() else { return };
    run_child(
        "cgroup_v2_without_namespace_binds_the_container_cgroup",
        dir.path(),
        Ns::Mount,
    );
}

#[test]
fn cgroup_without_manager_mounts_cgroup2_or_skips() {
    if let Some(dir) = child_dir() {
        let (rootfs, bundle) = (rootfs(&dir), bundle(&dir));
        berth_rootfs::prepare(&cgroup_spec(), &options(&rootfs, &bundle), None).unwrap();
        let base = rootfs.join("sys/fs/cgroup");
        if is_mount_point(&base) {
            let mount = mount_at(&base);
            assert_eq!(mount.fstype, "cgroup2");
            assert_options(&mount, &["ro"]);
        }
        return;
    }
    let Some(dir) = setup() else { return };
    run_child(
        "cgroup_without_manager_mounts_cgroup2_or_skips",
        dir.path(),
        Ns::Mount,
    );
}
