//! Bad bundles and bad ids: every one fails with a message naming the problem and leaves
//! nothing behind (no state dir, no cgroup, no process).

mod common;

use std::fs;
use std::path::PathBuf;

use common::{cleanup, require_root, Bundle, Output, Runtime};
use serde_json::json;

/// The bundle's cgroup directories that exist, in every hierarchy.
fn cgroup_dirs(b: &Bundle) -> Vec<PathBuf> {
    let Some(rel) = b.spec()["linux"]["cgroupsPath"].as_str() else {
        return Vec::new();
    };
    let rel = rel.trim_start_matches('/').to_string();
    cleanup::cgroup_mounts()
        .into_iter()
        .map(|m| m.join(&rel))
        .filter(|p| p.is_dir())
        .collect()
}

/// Asserts the command failed, mentions every one of `words` and left nothing behind.
#[track_caller]
fn assert_refused(rt: &Runtime, b: Option<&Bundle>, out: &Output, words: &[&str]) {
    out.assert_failure();
    for w in words {
        assert!(out.stderr.contains(w), "stderr lacks {w:?}:\n{out}");
    }
    assert!(
        !out.stderr.contains("panicked"),
        "the runtime crashed:\n{out}"
    );
    let left: Vec<_> = fs::read_dir(rt.root())
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left under --root: {left:?}\n{out}");
    if let Some(b) = b {
        let cgroups = cgroup_dirs(b);
        assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}\n{out}");
    }
    let procs = cleanup::marked_processes(|t| t == rt.token());
    assert!(procs.is_empty(), "processes left: {procs:?}\n{out}");
}

#[test]
fn missing_config_json_is_refused() {
    require_root!();
    let rt = Runtime::new();
    let b = rt.bundle();
    fs::remove_file(b.config_path()).unwrap();
    let out = rt.create(&rt.id("noconfig"), &b);
    assert_refused(&rt, Some(&b), &out, &["config.json"]);
}

#[test]
fn malformed_json_is_refused() {
    require_root!();
    let rt = Runtime::new();
    let b = rt.bundle();
    fs::write(b.config_path(), "{\"ociVersion\": \"1.2.0\", not json").unwrap();
    let out = rt.create(&rt.id("malformed"), &b);
    let path = b.config_path().canonicalize().unwrap();
    assert_refused(&rt, Some(&b), &out, &[&path.display().to_string()]);
}

#[test]
fn wrong_field_type_names_the_field_and_the_file() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set("/process/user/uid", json!("zero"));
    let out = rt.create(&rt.id("wrongtype"), &b);
    let path = b.config_path().canonicalize().unwrap();
    assert_refused(
        &rt,
        Some(&b),
        &out,
        &["process.user.uid", &path.display().to_string()],
    );
}

#[test]
fn unknown_namespace_type_is_refused() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set("/linux/namespaces/-", json!({"type": "bogus"}));
    let out = rt.create(&rt.id("badns"), &b);
    assert_refused(&rt, Some(&b), &out, &["linux.namespaces[5].type"]);
}

#[test]
fn missing_rootfs_is_refused() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set("/root/path", json!("no-such-rootfs"));
    let out = rt.create(&rt.id("norootfs"), &b);
    assert_refused(&rt, Some(&b), &out, &["root.path", "no-such-rootfs"]);
}

#[test]
fn id_in_use_is_refused_and_the_existing_container_survives() {
    require_root!();
    let rt = Runtime::new();
    let mut first = rt.bundle();
    first.probe(&["sleep", "inf"]);
    let id = rt.id("taken");
    rt.create(&id, &first).assert_success();
    let before = rt.state_json(&id);
    let second = rt.bundle();
    let out = rt.create(&id, &second);
    out.assert_failure();
    assert!(out.stderr.contains("already exists"), "{out}");
    assert!(cgroup_dirs(&second).is_empty(), "second cgroup made");
    let after = rt.state_json(&id);
    assert_eq!(after["status"], "created");
    assert_eq!(after["pid"], before["pid"]);
    assert_eq!(after["bundle"], before["bundle"]);
    assert!(rt.root().join(&id).join("exec.fifo").exists());
}

#[test]
fn invalid_ids_are_refused() {
    require_root!();
    let rt = Runtime::new();
    let b = rt.bundle();
    for (id, word) in [("a/b", "invalid"), ("..", "invalid"), ("", "empty")] {
        let out = rt.create(id, &b);
        assert_refused(&rt, Some(&b), &out, &[word]);
    }
    // Nothing escaped the root either: `a/b` would have made <root>/a, `..` the parent.
    assert!(!rt.root().join("a").exists());
    assert!(!rt.dir().join("config.json").exists());
}

#[test]
fn missing_executable_is_named_and_nothing_is_left() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.args(&["/bin/no-such-program", "x"]);
    let out = rt.create(&rt.id("noexec"), &b);
    assert_refused(&rt, Some(&b), &out, &["/bin/no-such-program"]);

    b.args(&["no-such-program-on-path"]);
    let out = rt.create(&rt.id("nopath"), &b);
    assert_refused(&rt, Some(&b), &out, &["no-such-program-on-path"]);
}

#[test]
fn rlimit_above_the_hard_limit_fails_clearly() {
    require_root!();
    let rt = Runtime::new();
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let hard = lim.rlim_max + 1;
    let mut b = rt.bundle();
    b.set(
        "/process/rlimits",
        json!([{"type": "RLIMIT_NOFILE", "hard": hard, "soft": 1024}]),
    );
    let out = rt.create(&rt.id("rlimit"), &b);
    assert_refused(&rt, Some(&b), &out, &["RLIMIT_NOFILE", "CAP_SYS_RESOURCE"]);
    assert!(out.stderr.contains(&lim.rlim_max.to_string()), "{out}");
}

#[test]
fn negative_memory_limit_is_refused() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set("/linux/resources/memory/limit", json!(-5));
    let out = rt.create(&rt.id("negmem"), &b);
    assert_refused(&rt, Some(&b), &out, &["memory", "-5"]);
}

#[test]
fn cgroups_path_with_dotdot_is_refused() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    let escape = format!("/berth-test/{}/../../escape-{}", rt.token(), rt.token());
    b.set("/linux/cgroupsPath", json!(escape));
    let out = rt.create(&rt.id("dotdot"), &b);
    assert_refused(&rt, Some(&b), &out, &["cgroupsPath", ".."]);
    let escaped = cleanup::find_cgroups(&|n: &str| n == format!("escape-{}", rt.token()));
    assert!(escaped.is_empty(), "{escaped:?}");
}
