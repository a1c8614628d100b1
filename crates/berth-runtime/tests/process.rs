//! `process`: args, env, cwd, user and groups, umask, capabilities, noNewPrivileges,
//! rlimits, oomScoreAdj, the HOME default and the PATH lookup of args[0].

mod common;

use std::fs;

use common::{require_root, Runtime};
use serde_json::{json, Value};

fn names(report: &Value, set: &str) -> Vec<String> {
    let mut v: Vec<String> = report["capabilities"][set]["names"]
        .as_array()
        .unwrap_or_else(|| panic!("no {set} set: {}", report["capabilities"]))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

fn caps(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

#[test]
fn args_env_and_cwd() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.args(&["/bin/berth-probe", "report", "--stat", "/etc"])
        .env("FOO=bar")
        .env("WEIRD=a=b c")
        .env("EMPTY=")
        .set("/process/cwd", json!("/etc"));
    let report = rt.report(&b);
    assert_eq!(
        report["args"],
        json!(["/bin/berth-probe", "report", "--stat", "/etc"])
    );
    let env = &report["env"];
    assert_eq!(env["FOO"], "bar");
    assert_eq!(env["WEIRD"], "a=b c");
    assert_eq!(env["EMPTY"], "");
    assert_eq!(env["TERM"], "xterm");
    assert!(
        env.get("CARGO").is_none(),
        "the runtime's env leaked: {env}"
    );
    assert_eq!(report["cwd"], "/etc");
}

#[test]
fn missing_cwd_is_created() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set("/process/cwd", json!("/var/lib/work"));
    let report = rt.report(&b);
    assert_eq!(report["cwd"], "/var/lib/work");
}

#[test]
fn user_groups_and_umask() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set(
        "/process/user",
        json!({ "uid": 1000, "gid": 1001, "additionalGids": [5, 2000], "umask": 0o027 }),
    );
    let report = rt.report(&b);
    assert_eq!(
        report["uid"],
        json!({"real": 1000, "effective": 1000, "saved": 1000})
    );
    assert_eq!(
        report["gid"],
        json!({"real": 1001, "effective": 1001, "saved": 1001})
    );
    let mut groups: Vec<u64> = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g.as_u64().unwrap())
        .collect();
    groups.sort();
    groups.dedup();
    groups.retain(|&g| g != 1001); // the primary gid may or may not be listed
    assert_eq!(groups, [5, 2000]);
    assert_eq!(report["umask"], 0o027);
}

#[test]
fn five_capability_sets_as_configured() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set(
        "/process/capabilities",
        json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL"],
            "permitted": ["CAP_CHOWN", "CAP_KILL"],
            "effective": ["CAP_CHOWN", "CAP_KILL"],
            "inheritable": ["CAP_KILL"],
            "ambient": ["CAP_KILL"]
        }),
    );
    let report = rt.report(&b);
    let both = caps(&["CAP_CHOWN", "CAP_KILL"]);
    assert_eq!(names(&report, "bounding"), both);
    assert_eq!(names(&report, "permitted"), both);
    assert_eq!(names(&report, "effective"), both);
    assert_eq!(names(&report, "inheritable"), caps(&["CAP_KILL"]));
    assert_eq!(names(&report, "ambient"), caps(&["CAP_KILL"]));
}

#[test]
fn non_root_keeps_ambient_caps_in_effective() {
    require_root!();
    let rt = Runtime::new();
    let set = |ambient: &[&str]| {
        json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "ambient": ambient
        })
    };
    let mut b = rt.bundle();
    b.set("/process/user", json!({"uid": 1000, "gid": 1000}))
        .set(
            "/process/capabilities",
            set(&["CAP_KILL", "CAP_NET_BIND_SERVICE"]),
        );
    let report = rt.report(&b);
    assert_eq!(report["uid"]["effective"], 1000);
    let amb = caps(&["CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    assert_eq!(names(&report, "ambient"), amb);
    assert_eq!(names(&report, "effective"), amb);
    assert_eq!(names(&report, "permitted"), amb);
    assert_eq!(
        names(&report, "bounding"),
        caps(&["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"])
    );

    // Without ambient caps, a non-root process execs with none.
    b.set("/process/capabilities", set(&[]));
    let report = rt.report(&b);
    assert!(names(&report, "effective").is_empty(), "{report}");
    assert!(names(&report, "permitted").is_empty(), "{report}");
}

#[test]
fn no_new_privileges_on_and_off() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set("/process/noNewPrivileges", json!(true));
    assert_eq!(rt.report(&b)["no_new_privs"], true);
    b.set("/process/noNewPrivileges", json!(false));
    assert_eq!(rt.report(&b)["no_new_privs"], false);
    b.remove("/process/noNewPrivileges");
    assert_eq!(rt.report(&b)["no_new_privs"], false);
}

#[test]
fn rlimits_are_set() {
    require_root!();
    let host_hard = |res| {
        let mut r = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `r` is valid for writes.
        assert_eq!(unsafe { libc::getrlimit(res, &mut r) }, 0);
        r.rlim_max
    };
    let nofile_hard = host_hard(libc::RLIMIT_NOFILE).min(4096) - 1;
    let nproc_hard = host_hard(libc::RLIMIT_NPROC).min(10_000) - 1;
    let core_hard = host_hard(libc::RLIMIT_CORE).min(1 << 20);
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set(
        "/process/rlimits",
        json!([
            { "type": "RLIMIT_NOFILE", "soft": 333, "hard": nofile_hard },
            { "type": "RLIMIT_CORE", "soft": 0, "hard": core_hard },
            { "type": "RLIMIT_NPROC", "soft": 444, "hard": nproc_hard }
        ]),
    );
    let report = rt.report(&b);
    let r = &report["rlimits"];
    assert_eq!(
        r["RLIMIT_NOFILE"],
        json!({"soft": 333, "hard": nofile_hard})
    );
    assert_eq!(r["RLIMIT_CORE"], json!({"soft": 0, "hard": core_hard}));
    assert_eq!(r["RLIMIT_NPROC"], json!({"soft": 444, "hard": nproc_hard}));
}

#[test]
fn oom_score_adj_is_set() {
    require_root!();
    let host: i32 = fs::read_to_string("/proc/self/oom_score_adj")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(host <= 500, "raising to 500 needs the host at or below it");
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set("/process/oomScoreAdj", json!(500));
    assert_eq!(rt.report(&b)["oom_score_adj"], 500);
}

#[test]
fn home_defaults_from_passwd() {
    require_root!();
    let rt = Runtime::new();
    for (uid, home) in [(0, "/root"), (65534, "/nonexistent"), (4321, "/")] {
        let mut b = rt.bundle();
        b.set("/process/user", json!({"uid": uid, "gid": uid}));
        let report = rt.report(&b);
        assert_eq!(report["env"]["HOME"], home, "uid {uid}");
    }
    // An explicit HOME wins.
    let mut b = rt.bundle();
    b.env("HOME=/somewhere");
    assert_eq!(rt.report(&b)["env"]["HOME"], "/somewhere");
}

#[test]
fn args0_without_slash_is_looked_up_in_path() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.mkdir("/opt/tools");
    fs::copy(
        b.rootfs().join("bin/berth-probe"),
        b.rootfs().join("opt/tools/probe-x"),
    )
    .unwrap();
    b.mkdir("/nowhere/probe-x"); // a directory of that name earlier in PATH is skipped
    b.env("PATH=/nowhere:/opt/tools:/bin")
        .args(&["probe-x", "report"]);
    let report = rt.report(&b);
    assert_eq!(report["exe"], "/opt/tools/probe-x");
    assert_eq!(report["args"][0], "probe-x");

    // And a name that is nowhere in PATH fails.
    b.args(&["no-such-program"]);
    let id = rt.id("nopath");
    rt.run(&id, &b).assert_failure();
}
