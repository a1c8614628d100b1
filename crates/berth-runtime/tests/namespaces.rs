//! Namespaces: new ones are new, absent ones are the host's, `path` ones are joined, and
//! the per-namespace settings (id maps, time offsets, hostname, cgroup root) take effect.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use common::{require_root, Bundle, Runtime};
use serde_json::{json, Value};

/// Inode of `/proc/<pid>/ns/<name>` on the host.
fn ns_inode(pid: &str, name: &str) -> u64 {
    let p = format!("/proc/{pid}/ns/{name}");
    fs::metadata(&p)
        .unwrap_or_else(|e| panic!("{p}: {e}"))
        .ino()
}

fn probe_ns(report: &Value, name: &str) -> u64 {
    report["namespaces"][name]
        .as_u64()
        .unwrap_or_else(|| panic!("probe did not report namespace {name}: {report}"))
}

/// The uid/gid mapping the user-namespace tests use: 0 → 100000, 65536 ids.
fn map_ids(b: &mut Bundle) {
    b.namespace("user", None)
        .set(
            "/linux/uidMappings",
            json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]),
        )
        .set(
            "/linux/gidMappings",
            json!([{ "containerID": 0, "hostID": 100000, "size": 65536 }]),
        );
}

/// Runs the probe once with a new namespace of spec type `ty` and once without it, and
/// checks that the first sees an inode other than the host's and the second the host's.
fn check_new_and_shared(ty: &str, proc_name: &str) {
    let rt = Runtime::new();
    let host = ns_inode("self", proc_name);

    let mut with = rt.bundle();
    match ty {
        "user" => map_ids(&mut with),
        "time" => drop(with.namespace("time", None)),
        _ => drop(with.namespace(ty, None)),
    }
    let inside = probe_ns(&rt.report(&with), proc_name);
    assert_ne!(
        inside, host,
        "{ty}: a new namespace was asked for, the probe is in the host's"
    );

    let mut without = rt.bundle();
    without.without_namespace(ty);
    if ty == "uts" {
        // A hostname needs a private UTS namespace.
        without.remove("/hostname");
    }
    let shared = probe_ns(&rt.report(&without), proc_name);
    assert_eq!(
        shared, host,
        "{ty}: no namespace was asked for, the probe should share the host's"
    );
}

#[test]
fn pid_namespace_is_new_or_shared() {
    require_root!();
    check_new_and_shared("pid", "pid");
}

#[test]
fn network_namespace_is_new_or_shared() {
    require_root!();
    check_new_and_shared("network", "net");
}

#[test]
fn uts_namespace_is_new_or_shared() {
    require_root!();
    check_new_and_shared("uts", "uts");
}

#[test]
fn ipc_namespace_is_new_or_shared() {
    require_root!();
    check_new_and_shared("ipc", "ipc");
}

#[test]
fn cgroup_namespace_is_new_or_shared() {
    require_root!();
    check_new_and_shared("cgroup", "cgroup");
}

#[test]
fn time_namespace_is_new_or_shared() {
    require_root!();
    check_new_and_shared("time", "time");
}

#[test]
fn user_namespace_is_new_or_shared() {
    require_root!();
    check_new_and_shared("user", "user");
}

/// Without a mount namespace the container would mount over the host, so only the new
/// case is checked.
#[test]
fn mount_namespace_is_new() {
    require_root!();
    let rt = Runtime::new();
    let b = rt.bundle();
    let report = rt.report(&b);
    assert_ne!(probe_ns(&report, "mnt"), ns_inode("self", "mnt"));
}

#[test]
fn probe_is_pid_1_of_a_new_pid_namespace() {
    require_root!();
    let rt = Runtime::new();
    let b = rt.bundle();
    let report = rt.report(&b);
    assert_eq!(report["pid"], 1, "{report}");
    assert_eq!(report["ppid"], 0, "pid 1's parent is outside its namespace");
}

#[test]
fn namespaces_with_a_path_are_joined() {
    require_root!();
    let rt = Runtime::new();
    let mut a = rt.bundle();
    a.probe(&["sleep", "inf"]).set("/hostname", json!("alpha"));
    let a_id = rt.id("a");
    rt.run_detached(&a_id, &a).assert_success();
    let pid = rt.state_json(&a_id)["pid"].as_i64().unwrap().to_string();

    let mut b = rt.bundle();
    b.namespace("network", Some(&format!("/proc/{pid}/ns/net")))
        .namespace("uts", Some(&format!("/proc/{pid}/ns/uts")))
        .remove("/hostname");
    let report = rt.report(&b);
    assert_eq!(probe_ns(&report, "net"), ns_inode(&pid, "net"));
    assert_eq!(probe_ns(&report, "uts"), ns_inode(&pid, "uts"));
    assert_eq!(report["hostname"], "alpha", "B sees A's UTS namespace");
    // The namespaces not given by path are still new, not A's.
    assert_ne!(probe_ns(&report, "ipc"), ns_inode(&pid, "ipc"));
    assert_ne!(probe_ns(&report, "mnt"), ns_inode(&pid, "mnt"));
}

#[test]
fn user_namespace_maps_ids() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    map_ids(&mut b);
    b.probe(&["report", "--stat", "/bin/busybox", "--stat", "/etc/passwd"]);
    let report = rt.report(&b);
    assert_eq!(report["uid_map_entries"], json!([[0, 100000, 65536]]));
    assert_eq!(report["gid_map_entries"], json!([[0, 100000, 65536]]));
    assert_eq!(
        report["uid"],
        json!({"real": 0, "effective": 0, "saved": 0})
    );
    assert_eq!(
        report["gid"],
        json!({"real": 0, "effective": 0, "saved": 0})
    );
    // The rootfs belongs to host root, which is not mapped: it shows as the overflow ids.
    for f in ["/bin/busybox", "/etc/passwd"] {
        let st = &report["stat"][f];
        assert_eq!(st["exists"], true, "{f}: {st}");
        assert_eq!(st["uid"], 65534, "{f}: {st}");
        assert_eq!(st["gid"], 65534, "{f}: {st}");
    }
}

#[test]
fn time_namespace_offsets_shift_clocks() {
    require_root!();
    const MONO: f64 = 86_400.0 * 3.0;
    const BOOT: f64 = 86_400.0 * 7.0;
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.namespace("time", None).set(
        "/linux/timeOffsets",
        json!({
            "monotonic": { "secs": MONO as i64, "nanosecs": 0 },
            "boottime": { "secs": BOOT as i64, "nanosecs": 0 }
        }),
    );
    let clock = |id| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is valid for writes.
        assert_eq!(unsafe { libc::clock_gettime(id, &mut ts) }, 0);
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    };
    let (mono0, boot0) = (clock(libc::CLOCK_MONOTONIC), clock(libc::CLOCK_BOOTTIME));
    let report = rt.report(&b);
    let (mono1, boot1) = (clock(libc::CLOCK_MONOTONIC), clock(libc::CLOCK_BOOTTIME));
    let mono = report["clocks"]["monotonic"].as_f64().unwrap();
    let boot = report["clocks"]["boottime"].as_f64().unwrap();
    assert!(
        mono >= mono0 + MONO && mono <= mono1 + MONO,
        "monotonic {mono} not in [{}, {}]",
        mono0 + MONO,
        mono1 + MONO
    );
    assert!(
        boot >= boot0 + BOOT && boot <= boot1 + BOOT,
        "boottime {boot} not in [{}, {}]",
        boot0 + BOOT,
        boot1 + BOOT
    );
}

#[test]
fn hostname_and_domainname_are_set() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set("/hostname", json!("box-17"))
        .set("/domainname", json!("example.test"));
    let report = rt.report(&b);
    assert_eq!(report["hostname"], "box-17");
    assert_eq!(report["domainname"], "example.test");
    let mut host = [0u8; 256];
    // SAFETY: the buffer is valid for 256 bytes.
    let r = unsafe { libc::gethostname(host.as_mut_ptr().cast(), 256) };
    assert_eq!(r, 0);
    assert!(
        !host.starts_with(b"box-17\0"),
        "the host's hostname was changed"
    );
}

#[test]
fn cgroup_namespace_roots_proc_self_cgroup() {
    require_root!();
    let rt = Runtime::new();
    let mut with = rt.bundle();
    with.namespace("cgroup", None);
    let lines = rt.report(&with)["cgroup"].clone();
    let lines: Vec<&str> = lines
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    assert!(lines.contains(&"0::/"), "{lines:?}");
    // Every hierarchy the container was placed in shows as its root.
    for ctrl in ["memory", "pids", "cpu", "devices"] {
        let line = lines
            .iter()
            .find(|l| {
                l.split(':')
                    .nth(1)
                    .is_some_and(|c| c.split(',').any(|x| x == ctrl))
            })
            .unwrap_or_else(|| panic!("no {ctrl} line in {lines:?}"));
        assert!(line.ends_with(":/"), "{ctrl}: {line}");
    }

    // Without it, the cgroupsPath shows.
    let without = rt.bundle();
    let path = without.spec()["linux"]["cgroupsPath"]
        .as_str()
        .unwrap()
        .to_owned();
    let report = rt.report(&without);
    assert!(
        report["cgroup"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().ends_with(&path)),
        "no line ends with {path}: {}",
        report["cgroup"]
    );
}
