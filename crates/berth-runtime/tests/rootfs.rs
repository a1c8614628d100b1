//! The container's root filesystem: pivot_root and chroot, read-only root, every mount
//! type and option, propagation, devices, masked and read-only paths, sysctls, and a
//! hostile rootfs whose symlinks point at the host.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::Command;

use common::{cleanup, require_root, Bundle, Runtime};
use serde_json::{json, Value};

const EROFS: i64 = libc::EROFS as i64;

/// The probe's mountinfo entry for `mount_point` (the last one: the top of a stack).
fn mount<'a>(report: &'a Value, mount_point: &str) -> &'a Value {
    report["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|m| m["mount_point"] == mount_point)
        .unwrap_or_else(|| panic!("{mount_point} is not a mount point: {}", report["mounts"]))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

#[track_caller]
fn assert_options(m: &Value, wanted: &[&str]) {
    let opts = strings(&m["mount_options"]);
    for w in wanted {
        assert!(opts.contains(w), "{} lacks {w}: {m}", m["mount_point"]);
    }
}

fn add_mount(b: &mut Bundle, m: Value) {
    b.set("/mounts/-", m);
}

/// Whether anything is mounted at or below `dir` in the test's (host) mount namespace.
fn host_mounts_under(dir: &Path) -> Vec<String> {
    cleanup::mounts()
        .into_iter()
        .filter(|(p, _, _)| p.starts_with(dir))
        .map(|(p, _, _)| p.display().to_string())
        .collect()
}

fn check_host_invisible(rt: &Runtime, report: &Value, b: &Bundle) {
    let host_cfg = b.config_path().display().to_string();
    let st = &report["stat"][&host_cfg];
    assert_eq!(st["exists"], false, "host path visible inside: {st}");
    // No mount of the host's tree is left in the container's view.
    for m in report["mounts"].as_array().unwrap() {
        let mp = m["mount_point"].as_str().unwrap();
        assert!(
            !mp.starts_with(rt.dir().to_str().unwrap()),
            "host mount visible: {m}"
        );
    }
    let root = mount(report, "/");
    let rootfs = b.rootfs().display().to_string();
    let r = root["root"].as_str().unwrap();
    assert!(
        rootfs.ends_with(r) && r.ends_with("/rootfs"),
        "/ is not the rootfs ({rootfs}): {root}"
    );
}

#[test]
fn pivot_root_hides_the_host() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    let cfg = b.config_path().display().to_string();
    b.probe(&["report", "--stat", &cfg]);
    let report = rt.report(&b);
    check_host_invisible(&rt, &report, &b);
    assert_eq!(report["cwd"], "/");
}

#[test]
fn no_pivot_chroots_and_hides_the_host() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    let cfg = b.config_path().display().to_string();
    b.probe(&["report", "--stat", &cfg]);
    let id = rt.id("nopivot");
    let report = rt
        .run_with(&id, &b, &["--no-pivot"])
        .assert_success()
        .json();
    check_host_invisible(&rt, &report, &b);
}

#[test]
fn readonly_root_but_writable_tmpfs() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    add_mount(
        &mut b,
        json!({"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}),
    );
    b.probe(&["report", "--write", "/x", "--write", "/tmp/x"]);
    let report = rt.report(&b);
    assert_eq!(report["write"]["/x"]["errno"], EROFS, "{}", report["write"]);
    assert_eq!(report["write"]["/tmp/x"]["ok"], true, "{}", report["write"]);
    assert_options(mount(&report, "/"), &["ro"]);

    // And with readonly false, / is writable.
    b.set("/root/readonly", json!(false));
    let report = rt.report(&b);
    assert_eq!(report["write"]["/x"]["ok"], true, "{}", report["write"]);
}

#[test]
fn bind_mount_with_ro_nosuid_nodev_noexec() {
    require_root!();
    let rt = Runtime::new();
    let src = rt.dir().join("bindsrc");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("hello"), "hi").unwrap();
    let mut b = rt.bundle();
    add_mount(
        &mut b,
        json!({
            "destination": "/mnt/b", "type": "bind", "source": src,
            "options": ["bind", "ro", "nosuid", "nodev", "noexec"]
        }),
    );
    add_mount(
        &mut b,
        json!({
            "destination": "/mnt/w", "type": "none", "source": src,
            "options": ["bind", "rw"]
        }),
    );
    b.probe(&[
        "report",
        "--read",
        "/mnt/b/hello",
        "--write",
        "/mnt/b/new",
        "--write",
        "/mnt/w/new",
    ]);
    let report = rt.report(&b);
    assert_options(
        mount(&report, "/mnt/b"),
        &["ro", "nosuid", "nodev", "noexec"],
    );
    let w = mount(&report, "/mnt/w");
    assert_options(w, &["rw"]);
    assert!(!strings(&w["mount_options"]).contains(&"noexec"), "{w}");
    assert_eq!(report["read"]["/mnt/b/hello"]["content"], "hi");
    assert_eq!(report["write"]["/mnt/b/new"]["errno"], EROFS);
    assert_eq!(report["write"]["/mnt/w/new"]["ok"], true);
    assert!(
        src.join("new").exists(),
        "rw bind did not write to the source"
    );
}

#[test]
fn rbind_brings_submounts_and_rro_makes_them_read_only() {
    require_root!();
    let rt = Runtime::new();
    let src = rt.dir().join("rbindsrc");
    fs::create_dir_all(src.join("sub")).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "subtmp"])
        .arg(src.join("sub"))
        .status()
        .unwrap();
    assert!(st.success());
    let mut b = rt.bundle();
    add_mount(
        &mut b,
        json!({"destination": "/mnt/plain", "type": "bind", "source": src, "options": ["bind"]}),
    );
    add_mount(
        &mut b,
        json!({"destination": "/mnt/r", "type": "bind", "source": src, "options": ["rbind", "nosuid"]}),
    );
    add_mount(
        &mut b,
        json!({"destination": "/mnt/rro", "type": "bind", "source": src, "options": ["rbind", "rro"]}),
    );
    b.probe(&[
        "report",
        "--write",
        "/mnt/r/sub/x",
        "--write",
        "/mnt/rro/sub/x",
    ]);
    let report = rt.report(&b);
    let mps: Vec<&str> = report["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mount_point"].as_str().unwrap())
        .collect();
    assert!(
        !mps.contains(&"/mnt/plain/sub"),
        "bind is not recursive: {mps:?}"
    );
    assert_eq!(mount(&report, "/mnt/r/sub")["fstype"], "tmpfs");
    assert_options(mount(&report, "/mnt/r"), &["nosuid"]);
    assert_eq!(report["write"]["/mnt/r/sub/x"]["ok"], true);
    assert_options(mount(&report, "/mnt/rro"), &["ro"]);
    assert_options(mount(&report, "/mnt/rro/sub"), &["ro"]);
    assert_eq!(report["write"]["/mnt/rro/sub/x"]["errno"], EROFS);
}

#[test]
fn tmpfs_with_size_and_mode() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    add_mount(
        &mut b,
        json!({
            "destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "size=1m", "mode=0710"]
        }),
    );
    b.probe(&["report", "--stat", "/mnt/t"]);
    let report = rt.report(&b);
    let m = mount(&report, "/mnt/t");
    assert_eq!(m["fstype"], "tmpfs");
    assert_options(m, &["nosuid", "rw"]);
    let sup = strings(&m["super_options"]);
    assert!(sup.contains(&"size=1024k"), "{m}");
    assert!(sup.contains(&"mode=710"), "{m}");
    assert_eq!(report["stat"]["/mnt/t"]["mode"], 0o710);
}

#[test]
fn proc_sysfs_devpts_mqueue_are_mounted() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.probe(&[
        "report",
        "--write",
        "/sys/kernel/x",
        "--stat",
        "/dev/pts/ptmx",
        "--stat",
        "/dev/shm",
    ]);
    let report = rt.report(&b);
    assert_eq!(mount(&report, "/proc")["fstype"], "proc");
    let sys = mount(&report, "/sys");
    assert_eq!(sys["fstype"], "sysfs");
    assert_options(sys, &["ro", "nosuid", "nodev", "noexec"]);
    assert_eq!(report["write"]["/sys/kernel/x"]["ok"], false);
    let pts = mount(&report, "/dev/pts");
    assert_eq!(pts["fstype"], "devpts");
    let sup = strings(&pts["super_options"]);
    for o in ["mode=620", "ptmxmode=666", "gid=5"] {
        assert!(sup.contains(&o), "devpts lacks {o}: {pts}");
    }
    assert_eq!(report["stat"]["/dev/pts/ptmx"]["file_type"], "char");
    let mq = mount(&report, "/dev/mqueue");
    assert_eq!(mq["fstype"], "mqueue");
    assert_options(mq, &["nosuid", "nodev", "noexec"]);
    let shm = mount(&report, "/dev/shm");
    assert_eq!(shm["fstype"], "tmpfs");
    assert_options(shm, &["nosuid", "nodev", "noexec"]);
    assert_eq!(report["stat"]["/dev/shm"]["mode"], 0o1777);
}

#[test]
fn cgroup_v1_hierarchies_are_visible_read_only() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.probe(&[
        "report",
        "--write",
        "/sys/fs/cgroup/memory/x",
        "--stat",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "--stat",
        "/sys/fs/cgroup/pids/pids.max",
    ]);
    let report = rt.report(&b);
    let cgroup_mounts: Vec<&Value> = report["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["mount_point"]
                .as_str()
                .unwrap()
                .starts_with("/sys/fs/cgroup/")
                && m["fstype"] == "cgroup"
        })
        .collect();
    let points: Vec<&str> = cgroup_mounts
        .iter()
        .map(|m| m["mount_point"].as_str().unwrap())
        .collect();
    for ctrl in ["memory", "pids", "devices", "freezer"] {
        let p = format!("/sys/fs/cgroup/{ctrl}");
        assert!(points.contains(&p.as_str()), "{p} missing: {points:?}");
    }
    for m in &cgroup_mounts {
        assert_options(m, &["ro", "nosuid", "nodev", "noexec"]);
    }
    assert_eq!(report["write"]["/sys/fs/cgroup/memory/x"]["ok"], false);
    for f in [
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        "/sys/fs/cgroup/pids/pids.max",
    ] {
        assert_eq!(report["stat"][f]["exists"], true, "{f} not visible");
    }
}

#[test]
fn mount_propagation_options() {
    require_root!();
    let rt = Runtime::new();
    let src = rt.dir().join("propsrc");
    fs::create_dir(&src).unwrap();
    let mut b = rt.bundle();
    for (dest, prop) in [
        ("/mnt/shared", "shared"),
        ("/mnt/private", "rprivate"),
        ("/mnt/unbindable", "unbindable"),
    ] {
        add_mount(
            &mut b,
            json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", prop]}),
        );
    }
    let report = rt.report(&b);
    assert_eq!(mount(&report, "/mnt/shared")["propagation"], "shared");
    assert_eq!(mount(&report, "/mnt/private")["propagation"], "private");
    assert_eq!(
        mount(&report, "/mnt/unbindable")["propagation"],
        "unbindable"
    );
}

#[test]
fn rootfs_propagation_applies_to_the_root() {
    require_root!();
    let rt = Runtime::new();
    for (prop, want) in [("shared", "shared"), ("private", "private")] {
        let mut b = rt.bundle();
        b.set("/linux/rootfsPropagation", json!(prop));
        let report = rt.report(&b);
        assert_eq!(
            mount(&report, "/")["propagation"],
            want,
            "rootfsPropagation {prop}"
        );
    }
}

#[test]
fn default_devices_and_dev_symlinks() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    let devs = [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ];
    let links = [
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
        ("/dev/ptmx", "pts/ptmx"),
    ];
    let mut args = vec!["report"];
    for (p, _, _) in &devs {
        args.extend(["--stat", p]);
    }
    for (p, _) in &links {
        args.extend(["--stat", p]);
    }
    args.extend(["--read", "/dev/null"]);
    b.probe(&args);
    let report = rt.report(&b);
    for (p, major, minor) in devs {
        let st = &report["stat"][p];
        assert_eq!(st["file_type"], "char", "{p}: {st}");
        assert_eq!(
            (st["major"].clone(), st["minor"].clone()),
            (json!(major), json!(minor)),
            "{p}: {st}"
        );
        assert_eq!(st["mode"], 0o666, "{p}: {st}");
    }
    for (p, target) in links {
        let st = &report["stat"][p];
        assert_eq!(st["file_type"], "symlink", "{p}: {st}");
        assert_eq!(st["symlink_target"], target, "{p}: {st}");
    }
    assert_eq!(
        report["read"]["/dev/null"]["content"], "",
        "/dev/null is usable"
    );
}

#[test]
fn linux_devices_are_created() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set(
        "/linux/devices",
        json!([
            { "path": "/dev/mynull", "type": "c", "major": 1, "minor": 3,
              "fileMode": 0o600, "uid": 1000, "gid": 1001 },
            { "path": "/dev/sub/myzero", "type": "c", "major": 1, "minor": 5 }
        ]),
    );
    b.probe(&[
        "report",
        "--stat",
        "/dev/mynull",
        "--stat",
        "/dev/sub/myzero",
    ]);
    let report = rt.report(&b);
    let st = &report["stat"]["/dev/mynull"];
    assert_eq!(st["file_type"], "char", "{st}");
    assert_eq!(
        (st["major"].as_u64(), st["minor"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(st["mode"], 0o600, "{st}");
    assert_eq!(
        (st["uid"].as_u64(), st["gid"].as_u64()),
        (Some(1000), Some(1001))
    );
    let st = &report["stat"]["/dev/sub/myzero"];
    assert_eq!(st["file_type"], "char", "{st}");
    assert_eq!(
        (st["major"].as_u64(), st["minor"].as_u64()),
        (Some(1), Some(5))
    );
}

#[test]
fn masked_paths_hide_files_and_directories() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.write_file("/secret/key", "SECRET");
    b.write_file("/etc/token", "TOKEN");
    b.set("/linux/maskedPaths/-", json!("/secret"))
        .set("/linux/maskedPaths/-", json!("/etc/token"))
        .set("/linux/maskedPaths/-", json!("/does/not/exist"));
    b.probe(&[
        "report",
        "--read",
        "/etc/token",
        "--read",
        "/proc/timer_list",
        "--stat",
        "/secret/key",
        "--write",
        "/secret/new",
    ]);
    let report = rt.report(&b);
    assert_eq!(report["read"]["/etc/token"]["content"], "");
    assert_eq!(report["read"]["/proc/timer_list"]["content"], "");
    assert_eq!(report["stat"]["/secret/key"]["exists"], false);
    assert_eq!(report["write"]["/secret/new"]["errno"], EROFS);
    let m = mount(&report, "/secret");
    assert_eq!(m["fstype"], "tmpfs");
    assert_options(m, &["ro"]);
    assert_eq!(mount(&report, "/sys/firmware")["fstype"], "tmpfs");
}

#[test]
fn readonly_paths_cannot_be_written() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set("/root/readonly", json!(false))
        .set("/linux/readonlyPaths/-", json!("/data"));
    b.mkdir("/data");
    b.probe(&[
        "report",
        "--write",
        "/data/x",
        "--write",
        "/tmp/x",
        "--write-data",
        "/proc/sys/kernel/domainname",
        "x",
    ]);
    let report = rt.report(&b);
    let w = &report["write"];
    assert_eq!(w["/data/x"]["errno"], EROFS, "{w}");
    assert_eq!(w["/tmp/x"]["ok"], true, "{w}");
    assert_eq!(w["/proc/sys/kernel/domainname"]["errno"], EROFS, "{w}");
    // procfs answers ENOENT before EROFS for a new file: check the mount instead.
    assert_options(mount(&report, "/proc/irq"), &["ro"]);
    assert_options(mount(&report, "/data"), &["ro"]);
}

#[test]
fn sysctls_are_set_inside_only() {
    require_root!();
    let host = |p: &str| fs::read_to_string(p).unwrap();
    let fwd = "/proc/sys/net/ipv4/ip_forward";
    let rmid = "/proc/sys/kernel/shm_rmid_forced";
    let (fwd0, rmid0) = (host(fwd), host(rmid));
    // Ask the container for the opposite of the host's values, whatever they are.
    let flip = |v: &str| if v.trim() == "0" { "1" } else { "0" };
    let (want_fwd, want_rmid) = (flip(&fwd0), flip(&rmid0));
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set(
        "/linux/sysctl",
        json!({ "net.ipv4.ip_forward": want_fwd, "kernel.shm_rmid_forced": want_rmid }),
    );
    b.probe(&[
        "report",
        "--sysctl",
        "net.ipv4.ip_forward",
        "--sysctl",
        "kernel.shm_rmid_forced",
    ]);
    let report = rt.report(&b);
    assert_eq!(
        report["sysctls"]["net.ipv4.ip_forward"]["content"],
        format!("{want_fwd}\n")
    );
    assert_eq!(
        report["sysctls"]["kernel.shm_rmid_forced"]["content"],
        format!("{want_rmid}\n")
    );
    assert_eq!(
        (host(fwd), host(rmid)),
        (fwd0, rmid0),
        "host sysctls changed"
    );
}

#[test]
fn hostile_symlinks_cannot_redirect_mounts_to_the_host() {
    require_root!();
    let rt = Runtime::new();
    let host = cleanup::make_temp_dir("hostile-target");
    let host_s = host.display().to_string();
    let mut b = rt.bundle();
    let root = b.rootfs();
    symlink(&host, root.join("abs")).unwrap();
    let ups = "../".repeat(12);
    symlink(
        format!("{ups}{}", host_s.trim_start_matches('/')),
        root.join("rel"),
    )
    .unwrap();
    symlink("/chain2", root.join("chain1")).unwrap();
    symlink(format!("..{host_s}"), root.join("chain2")).unwrap();
    fs::create_dir_all(root.join("etc")).unwrap();
    symlink("../../abs/deep", root.join("etc/viaetc")).unwrap();
    for dest in ["/abs/a", "/rel/r", "/chain1/c", "/etc/viaetc/e"] {
        add_mount(
            &mut b,
            json!({"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
        );
    }
    add_mount(
        &mut b,
        json!({"destination": "/abs", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}),
    );
    b.probe(&["report", "--write", "/abs/marker"]);
    let report = rt.report(&b);

    // Inside: each mount landed on the host path's counterpart inside the rootfs.
    for sub in ["a", "r", "c", "deep/e"] {
        let inside = format!("{host_s}/{sub}");
        assert_eq!(mount(&report, &inside)["fstype"], "tmpfs", "{inside}");
    }
    assert_eq!(report["write"]["/abs/marker"]["ok"], true);
    // Outside: nothing was created in, or mounted on, the host directory.
    let entries: Vec<_> = fs::read_dir(&host).unwrap().flatten().collect();
    assert!(entries.is_empty(), "host dir written: {entries:?}");
    assert!(host_mounts_under(&host).is_empty(), "host dir mounted on");
    assert!(root.join(host_s.trim_start_matches('/')).is_dir());
    cleanup::remove_tree(&host);
}
