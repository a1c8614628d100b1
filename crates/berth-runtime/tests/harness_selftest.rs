//! Tests of the test harness itself; none of them needs berth-runtime to work.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use common::{assets, bundle, cleanup, Bundle, Runtime};
use serde_json::{json, Value};

#[test]
fn bundle_has_busybox_probe_and_valid_config() {
    let mut b = Bundle::new();
    let rootfs = b.rootfs();
    for f in ["bin/busybox", "bin/berth-probe"] {
        let meta = fs::metadata(rootfs.join(f)).unwrap();
        assert!(
            meta.permissions().mode() & 0o111 != 0,
            "{f} is not executable"
        );
        assert!(assets::is_static_elf(&rootfs.join(f)), "{f} is not static");
    }
    for applet in [
        "sh", "ls", "cat", "echo", "sleep", "true", "false", "id", "mount",
    ] {
        let link = fs::read_link(rootfs.join("bin").join(applet)).unwrap();
        assert_eq!(link.to_str(), Some("busybox"), "/bin/{applet}");
    }
    for d in ["proc", "sys", "dev", "tmp", "etc"] {
        assert!(rootfs.join(d).is_dir(), "/{d}");
    }

    b.config(|c| c["process"]["args"] = json!(["/bin/sh", "-c", "true"]))
        .set("/linux/resources/pids/limit", json!(10))
        .set(
            "/process/rlimits/-",
            json!({"type": "RLIMIT_CORE", "hard": 0, "soft": 0}),
        )
        .set("/annotations/a~1b", json!("x"))
        .remove("/linux/maskedPaths/0")
        .without_namespace("network")
        .env("FOO=bar");
    let on_disk: Value = serde_json::from_slice(&fs::read(b.config_path()).unwrap()).unwrap();
    assert_eq!(&on_disk, b.spec());
    assert_eq!(on_disk["process"]["args"], json!(["/bin/sh", "-c", "true"]));
    assert_eq!(on_disk["linux"]["resources"]["pids"]["limit"], 10);
    assert_eq!(on_disk["linux"]["resources"]["devices"][0]["access"], "rwm");
    assert_eq!(on_disk["process"]["rlimits"][1]["type"], "RLIMIT_CORE");
    assert_eq!(on_disk["annotations"]["a/b"], "x");
    assert_eq!(on_disk["linux"]["maskedPaths"][0], "/proc/asound");
    let types: Vec<&str> = on_disk["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["pid", "ipc", "uts", "mount"]);
    assert!(on_disk["process"]["env"]
        .as_array()
        .unwrap()
        .contains(&json!("FOO=bar")));
    assert_eq!(on_disk["root"]["path"], "rootfs");

    let dir = b.path().to_path_buf();
    drop(b);
    assert!(!dir.exists(), "standalone bundle not removed on drop");
}

#[test]
fn runtime_bundles_carry_token_and_cgroup_path_and_are_cleaned_up() {
    let rt = Runtime::new();
    let b = rt.bundle();
    let token = rt.token().to_owned();
    assert!(b.path().starts_with(rt.dir()));
    assert!(rt.root().is_dir());
    assert_eq!(
        b.spec()["linux"]["cgroupsPath"],
        format!("/berth-test/{token}/b0")
    );
    let marker = format!("{}={token}", bundle::TOKEN_ENV);
    assert!(b.spec()["process"]["env"]
        .as_array()
        .unwrap()
        .contains(&json!(marker)));
    let id = rt.id("x");
    assert!(cleanup::has_token(&id, &token));
    assert!(!cleanup::has_token(&format!("{token}0-x"), &token));

    // A stray "container" process carrying the token must be killed by the guard.
    let mut stray = Command::new("sleep")
        .arg("600")
        .env(bundle::TOKEN_ENV, &token)
        .spawn()
        .unwrap();
    let dir = rt.dir().to_path_buf();
    drop(rt);
    assert!(!dir.exists(), "runtime temp dir not removed");
    let status = stray.wait().unwrap();
    assert!(!status.success(), "stray process was not killed");
}

#[test]
fn cleanup_unmounts_and_removes_even_on_panic() {
    common::require_root!();
    let dir = std::sync::Arc::new(std::sync::Mutex::new(None));
    let seen = dir.clone();
    let result = std::panic::catch_unwind(move || {
        let rt = Runtime::new();
        let target = rt.dir().join("mnt");
        fs::create_dir(&target).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "tmpfs"])
            .arg(&target)
            .status()
            .unwrap();
        assert!(st.success());
        *seen.lock().unwrap() = Some(rt.dir().to_path_buf());
        panic!("deliberate");
    });
    assert!(result.is_err());
    let dir = dir.lock().unwrap().clone().unwrap();
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(cleanup::mounts()
        .iter()
        .all(|(p, _, _)| !p.starts_with(&dir)));
}

#[test]
fn token_pids_are_parsed_from_names() {
    assert_eq!(cleanup::token_pid("bt123-4"), Some(123));
    assert_eq!(cleanup::token_pid("berth-test-bt77-0-rt"), Some(77));
    assert_eq!(cleanup::token_pid("berth-test"), None);
    assert_eq!(cleanup::token_pid("bt12x-3"), None);
    assert_eq!(cleanup::token_pid("abt5-"), None);
}

#[test]
fn probe_reports_on_the_host() {
    let out = Command::new(assets::probe())
        .args(["report", "--stat", "/dev/null", "--read", "/proc/self/comm"])
        .args(["--sysctl", "kernel.ostype", "--write", "/nonexistent/x"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(r["pid"].as_u64().unwrap() > 1);
    for key in [
        "ppid",
        "uid",
        "gid",
        "groups",
        "umask",
        "cwd",
        "env",
        "hostname",
        "domainname",
        "namespaces",
        "uid_map",
        "gid_map",
        "capabilities",
        "no_new_privs",
        "seccomp",
        "rlimits",
        "oom_score_adj",
        "mounts",
        "fds",
        "cgroup",
        "clocks",
        "tty",
    ] {
        assert!(!r[key].is_null(), "{key} missing");
    }
    for ns in ["pid", "mnt", "net", "uts", "ipc", "user", "cgroup"] {
        assert!(r["namespaces"][ns].as_u64().is_some(), "namespace {ns}");
    }
    for set in [
        "inheritable",
        "permitted",
        "effective",
        "bounding",
        "ambient",
    ] {
        assert_eq!(r["capabilities"][set]["hex"].as_str().unwrap().len(), 16);
    }
    assert!(r["rlimits"]["RLIMIT_NOFILE"]["soft"].as_u64().is_some());
    assert!(r["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["mount_point"] == "/proc" && m["fstype"] == "proc"));
    assert!(r["clocks"]["monotonic"].as_f64().unwrap() > 0.0);
    assert_eq!(r["stat"]["/dev/null"]["file_type"], "char");
    assert_eq!(r["stat"]["/dev/null"]["major"], 1);
    assert_eq!(r["stat"]["/dev/null"]["minor"], 3);
    assert_eq!(r["read"]["/proc/self/comm"]["content"], "berth-probe\n");
    assert_eq!(r["sysctls"]["kernel.ostype"]["content"], "Linux\n");
    assert_eq!(r["write"]["/nonexistent/x"]["ok"], false);
    assert_eq!(r["write"]["/nonexistent/x"]["error"], "ENOENT");
    assert_eq!(r["tty"]["stdout"]["isatty"], false);

    let run = |args: &[&str]| Command::new(assets::probe()).args(args).output().unwrap();
    assert_eq!(run(&["exit", "7"]).status.code(), Some(7));
    assert_eq!(run(&["print", "hello", "world"]).stdout, b"hello world\n");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(run(&["kill-self", "SIGTERM"]).status.signal(), Some(15));
}
