//! The command line itself: `spec`, `features`, global flags, `--log`, help and version.

mod common;

use std::fs;
use std::process::{Command, Stdio};

use common::{require_root, Runtime};
use serde_json::{json, Value};

fn read_json(path: &std::path::Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn namespace_types(spec: &Value) -> Vec<String> {
    spec["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces")
        .iter()
        .map(|n| n["type"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn spec_writes_a_config_that_run_accepts() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    fs::remove_file(b.config_path()).unwrap();
    let dir = b.path().display().to_string();
    rt.cmd(&["spec", "--bundle", &dir]).assert_success();
    let mut spec = read_json(&b.config_path());
    assert_eq!(spec["ociVersion"], "1.2.0");
    assert_eq!(spec["root"]["path"], "rootfs");
    assert_eq!(spec["process"]["terminal"], true);
    // Only what a test run needs changes: no terminal, the probe as the process.
    spec["process"]["terminal"] = json!(false);
    spec["process"]["args"] = json!(["/bin/berth-probe", "report"]);
    let token = format!("{}={}", common::bundle::TOKEN_ENV, rt.token());
    spec["process"]["env"]
        .as_array_mut()
        .unwrap()
        .push(json!(token));
    b.config(|c| *c = spec);
    let id = rt.id("spec");
    let report = rt.run(&id, &b).assert_success().json();
    assert_eq!(report["pid"], 1);
    assert_eq!(report["hostname"], "berth");
    assert!(!rt.root().join(&id).exists());
}

#[test]
fn spec_rootless_has_a_mapped_user_namespace_and_no_network_namespace() {
    let rt = Runtime::new();
    let dir = rt.dir().join("rootless");
    fs::create_dir(&dir).unwrap();
    let d = dir.display().to_string();
    rt.cmd(&["spec", "--rootless", "--bundle", &d])
        .assert_success();
    let spec = read_json(&dir.join("config.json"));
    let ns = namespace_types(&spec);
    assert!(ns.contains(&"user".to_owned()), "{ns:?}");
    assert!(!ns.contains(&"network".to_owned()), "{ns:?}");
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    assert_eq!(
        spec["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": uid, "size": 1}])
    );
    assert_eq!(
        spec["linux"]["gidMappings"],
        json!([{"containerID": 0, "hostID": gid, "size": 1}])
    );
}

#[test]
fn spec_refuses_to_overwrite_an_existing_config() {
    let rt = Runtime::new();
    let dir = rt.dir().join("existing");
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("config.json"), "{\"mine\": true}").unwrap();
    let d = dir.display().to_string();
    let out = rt.cmd(&["spec", "--bundle", &d]);
    out.assert_failure();
    assert!(out.stderr.contains("already exists"), "{out}");
    assert_eq!(
        fs::read_to_string(dir.join("config.json")).unwrap(),
        "{\"mine\": true}"
    );
}

#[test]
fn features_prints_json_with_namespaces_hooks_and_cgroups() {
    let rt = Runtime::new();
    let f = rt.cmd(&["features"]).assert_success().json();
    assert_eq!(f["ociVersionMax"], "1.2.0");
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .unwrap_or_else(|| panic!("not an array: {v}"))
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    };
    let ns = list(&f["linux"]["namespaces"]);
    for want in ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"] {
        assert!(ns.iter().any(|n| n == want), "{want} missing from {ns:?}");
    }
    let hooks = list(&f["hooks"]);
    for want in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(
            hooks.iter().any(|h| h == want),
            "{want} missing from {hooks:?}"
        );
    }
    assert_eq!(f["linux"]["cgroup"]["v1"], true);
    assert_eq!(f["linux"]["cgroup"]["v2"], true);
    assert_eq!(f["linux"]["cgroup"]["systemd"], false);
}

#[test]
fn systemd_cgroup_flag_is_refused_clearly() {
    let mut rt = Runtime::new();
    rt.global(&["--systemd-cgroup"]);
    let b = rt.bundle();
    let id = rt.id("systemd");
    let out = rt.create(&id, &b);
    out.assert_failure();
    assert!(out.stderr.contains("not supported"), "{out}");
    assert!(!rt.root().join(&id).exists(), "state dir left");
}

#[test]
fn log_json_writes_the_error_as_json_lines() {
    let mut rt = Runtime::new();
    let log = rt.dir().join("runtime.log");
    let l = log.display().to_string();
    rt.global(&["--log", &l, "--log-format", "json"]);
    let id = rt.id("nosuch");
    let out = rt.state(&id);
    out.assert_failure();
    let text = fs::read_to_string(&log).expect("log file written");
    let lines: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    // runc's shape, which containerd's shim parses: {"level":"error","msg":…,"time":…}.
    let error = lines
        .iter()
        .find(|v| v["level"] == "error")
        .unwrap_or_else(|| panic!("no error line in {text}"));
    let msg = error["msg"].as_str().unwrap_or_default();
    assert!(
        msg.contains(&id) && msg.contains("does not exist"),
        "{error}"
    );
    assert!(error["time"].is_string(), "{error}");
}

#[test]
fn version_and_help_work() {
    let rt = Runtime::new();
    let run = |arg: &str| {
        Command::new(rt.binary())
            .arg(arg)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let v = run("--version");
    assert!(v.status.success());
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(
        text.starts_with("berth-runtime ") && text.trim().len() > "berth-runtime ".len(),
        "{text}"
    );
    let h = run("--help");
    assert!(h.status.success());
    let help = String::from_utf8_lossy(&h.stdout);
    for verb in [
        "create", "start", "state", "kill", "delete", "run", "list", "spec",
    ] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(verb)),
            "{verb} not in help:\n{help}"
        );
    }
}

#[test]
fn unknown_command_fails() {
    let rt = Runtime::new();
    let out = rt.cmd(&["frobnicate", "x"]);
    out.assert_failure();
    assert!(out.stderr.contains("frobnicate"), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
}
