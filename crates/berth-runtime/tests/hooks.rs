//! OCI hooks on real containers: each kind at its moment with the state on stdin, in
//! order, with its own args and env; failures and timeouts.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use common::{cleanup, require_root, Bundle, Output, Runtime};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

/// A host dir (0777) bind-mounted at /shared; hooks and the process log to `hooks.log` in it.
fn shared_dir(rt: &Runtime, b: &mut Bundle) -> PathBuf {
    let host = rt.dir().join("shared");
    fs::create_dir_all(&host).unwrap();
    fs::set_permissions(&host, fs::Permissions::from_mode(0o777)).unwrap();
    b.mkdir("shared");
    b.set(
        "/mounts/-",
        json!({"destination": "/shared", "type": "bind", "source": host, "options": ["rbind", "rw"]}),
    );
    host
}

/// A hook running `/bin/sh` (the host's, or the rootfs's for startContainer) that appends
/// `<name> <its stdin>` to `log`. Only shell builtins: hooks get no PATH.
fn logging_hook(name: &str, log: &Path) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("IFS= read -r s; echo \"$0 $s\" >> {}", log.display()), name],
    })
}

/// `(name, rest of line)` for each line of the log.
fn log_lines(log: &Path) -> Vec<(String, String)> {
    fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (name, rest) = l.split_once(' ').unwrap_or((l, ""));
            (name.to_owned(), rest.to_owned())
        })
        .collect()
}

fn names(log: &Path) -> Vec<String> {
    log_lines(log).into_iter().map(|(n, _)| n).collect()
}

fn stdin_of(log: &Path, name: &str) -> Value {
    let (_, rest) = log_lines(log)
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name} did not run: {:?}", names(log)));
    serde_json::from_str(&rest).unwrap_or_else(|e| panic!("{name} stdin not JSON ({e}): {rest}"))
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Asserts `out` failed mentioning `words`, leaving no state dir, cgroup or process.
#[track_caller]
fn assert_failed_leaving_nothing(rt: &Runtime, b: &Bundle, out: &Output, words: &[&str]) {
    out.assert_failure();
    for w in words {
        assert!(out.stderr.contains(w), "stderr lacks {w:?}:\n{out}");
    }
    let left: Vec<_> = fs::read_dir(rt.root())
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left under --root: {left:?}");
    let rel = b.spec()["linux"]["cgroupsPath"]
        .as_str()
        .unwrap()
        .trim_start_matches('/')
        .to_string();
    let cgroups: Vec<_> = cleanup::cgroup_mounts()
        .into_iter()
        .map(|m| m.join(&rel))
        .filter(|p| p.exists())
        .collect();
    assert!(cgroups.is_empty(), "cgroups left: {cgroups:?}");
    let procs = cleanup::marked_processes(|t| t == rt.token());
    assert!(procs.is_empty(), "processes left: {procs:?}");
}

#[test]
fn every_hook_kind_runs_at_its_moment_with_the_state_on_stdin() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    let shared = shared_dir(&rt, &mut b);
    let log = shared.join("hooks.log");
    let inside = Path::new("/shared/hooks.log");
    b.set(
        "/hooks",
        json!({
            "prestart": [logging_hook("prestart", &log)],
            "createRuntime": [logging_hook("createRuntime", &log)],
            // Before pivot_root: the host's /bin/sh and the host path still work.
            "createContainer": [logging_hook("createContainer", &log)],
            // After pivot_root, inside the container: the rootfs's /bin/sh and its path.
            "startContainer": [logging_hook("startContainer", inside)],
            "poststart": [logging_hook("poststart", &log)],
            "poststop": [logging_hook("poststop", &log)],
        }),
    );
    b.args(&["/bin/sh", "-c", "echo 'process -' >> /shared/hooks.log"]);
    let id = rt.id("hooks");

    rt.create(&id, &b).assert_success();
    assert_eq!(
        names(&log),
        ["prestart", "createRuntime", "createContainer"],
        "after create"
    );
    let pid = rt.state_json(&id)["pid"].clone();
    for hook in ["prestart", "createRuntime", "createContainer"] {
        let st = stdin_of(&log, hook);
        assert_eq!(st["id"], id.as_str(), "{hook}: {st}");
        assert_eq!(st["pid"], pid, "{hook}: {st}");
        assert_eq!(st["status"], "creating", "{hook}: {st}");
        assert_eq!(st["ociVersion"], "1.2.0", "{hook}: {st}");
        let bundle = b.path().canonicalize().unwrap();
        assert_eq!(st["bundle"], bundle.display().to_string(), "{hook}: {st}");
    }

    rt.start(&id).assert_success();
    // poststart runs before start returns; the process may still be writing.
    wait_until("the process line", || {
        names(&log).iter().any(|n| n == "process")
    });
    rt.wait_for_status(&id, "stopped", WAIT);
    let order = names(&log);
    let at = |n: &str| {
        order
            .iter()
            .position(|x| x == n)
            .unwrap_or_else(|| panic!("{n} missing: {order:?}"))
    };
    assert!(at("createContainer") < at("startContainer"), "{order:?}");
    assert!(at("startContainer") < at("process"), "{order:?}");
    assert!(!order.contains(&"poststop".to_owned()), "{order:?}");
    let st = stdin_of(&log, "startContainer");
    assert_eq!(st["id"], id.as_str(), "{st}");
    let st = stdin_of(&log, "poststart");
    assert_eq!(
        (&st["status"], &st["pid"]),
        (&json!("running"), &pid),
        "{st}"
    );

    rt.delete(&id).assert_success();
    let order = names(&log);
    assert_eq!(
        order.last().map(String::as_str),
        Some("poststop"),
        "{order:?}"
    );
    assert_eq!(order.len(), 7, "a hook ran twice: {order:?}");
    let st = stdin_of(&log, "poststop");
    assert_eq!(st["status"], "stopped", "{st}");
    assert_eq!(st["id"], id.as_str(), "{st}");
}

#[test]
fn hooks_of_one_kind_run_in_order() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    let log = rt.dir().join("order.log");
    b.set(
        "/hooks/prestart",
        json!([
            logging_hook("first", &log),
            logging_hook("second", &log),
            logging_hook("third", &log)
        ]),
    );
    rt.create(&rt.id("order"), &b).assert_success();
    assert_eq!(names(&log), ["first", "second", "third"]);
}

#[test]
fn hook_args_and_env_are_honoured() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    let log = rt.dir().join("env.log");
    let script = format!(
        "echo \"$0|$1|$FOO|${{HOME-unset}}|${{BERTH_TEST_TOKEN-unset}}\" >> {}",
        log.display()
    );
    b.set(
        "/hooks/createRuntime",
        json!([{
            "path": "/bin/sh",
            "args": ["sh", "-c", script, "zero", "one"],
            "env": ["FOO=bar baz"],
        }]),
    );
    rt.create(&rt.id("env"), &b).assert_success();
    // Only the hook's own env: nothing inherited from the runtime (the shell would
    // make up a PATH of its own, so HOME and the test token are what is checked).
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "zero|one|bar baz|unset|unset\n"
    );
}

#[test]
fn failing_prestart_hook_fails_create_and_leaves_nothing() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set(
        "/hooks/prestart",
        json!([{"path": "/bin/sh", "args": ["sh", "-c", "echo hook-said-no >&2; exit 3"]}]),
    );
    let out = rt.create(&rt.id("badhook"), &b);
    assert_failed_leaving_nothing(&rt, &b, &out, &["prestart", "hook-said-no", "3"]);
}

/// Host processes whose command line is exactly `argv`.
fn processes_with_cmdline(argv: &[&str]) -> Vec<i32> {
    let want: Vec<u8> = argv
        .iter()
        .flat_map(|a| [a.as_bytes(), b"\0"].concat())
        .collect();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == want))
        .collect()
}

#[test]
fn hook_over_its_timeout_is_killed_and_fails_create() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    let sleep = ["/bin/sleep", "37.25"];
    b.set(
        "/hooks/prestart",
        json!([{"path": sleep[0], "args": sleep, "timeout": 1}]),
    );
    let out = rt.create(&rt.id("slowhook"), &b);
    assert!(out.elapsed < Duration::from_secs(15), "{out}");
    assert_failed_leaving_nothing(&rt, &b, &out, &["prestart", "timed out"]);
    assert!(processes_with_cmdline(&sleep).is_empty(), "hook not killed");
}

#[test]
fn failing_poststart_and_poststop_hooks_only_warn() {
    require_root!();
    let mut rt = Runtime::new();
    // Warnings go to the --log file (stderr gets them only with --debug).
    let runtime_log = rt.dir().join("runtime.log");
    let l = runtime_log.display().to_string();
    rt.global(&["--log", &l]);
    let mut b = rt.bundle();
    let log = rt.dir().join("warn.log");
    let failing = |name: &str| {
        json!([{
            "path": "/bin/sh",
            "args": ["sh", "-c", format!("echo \"$0 -\" >> {}; exit 1", log.display()), name],
        }])
    };
    b.set("/hooks/poststart", failing("poststart"))
        .set("/hooks/poststop", failing("poststop"))
        .probe(&["sleep", "inf"]);
    let id = rt.id("warn");
    rt.create(&id, &b).assert_success();
    rt.start(&id).assert_success();
    let warnings = || fs::read_to_string(&runtime_log).unwrap_or_default();
    let warned = |stage: &str| {
        warnings()
            .lines()
            .any(|l| l.contains("WARN") && l.contains(&format!("{stage} hook")))
    };
    assert!(warned("poststart"), "no poststart warning:\n{}", warnings());
    assert_eq!(rt.state_json(&id)["status"], "running");
    rt.delete_force(&id).assert_success();
    assert!(warned("poststop"), "no poststop warning:\n{}", warnings());
    assert!(!rt.root().join(&id).exists(), "state dir left");
    assert_eq!(names(&log), ["poststart", "poststop"]);
}

#[test]
fn poststart_runs_after_the_process_was_executed() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    let shared = shared_dir(&rt, &mut b);
    let log = shared.join("hooks.log");
    b.set(
        "/hooks",
        json!({
            "startContainer": [logging_hook("startContainer", Path::new("/shared/hooks.log"))],
            "poststart": [logging_hook("poststart", &log)],
        }),
    );
    // The process's first act marks that it was executed.
    b.args(&[
        "/bin/sh",
        "-c",
        "echo 'process -' >> /shared/hooks.log; exec sleep 1000",
    ]);
    let id = rt.id("poststart");
    rt.create(&id, &b).assert_success();
    rt.start(&id).assert_success();
    wait_until("the process line", || {
        names(&log).iter().any(|n| n == "process")
    });
    // The spec: poststart is called after the user-specified process is executed.
    // startContainer, which runs just before that exec, must come first in any case.
    let order = names(&log);
    let at = |n: &str| order.iter().position(|x| x == n).unwrap();
    assert!(at("startContainer") < at("poststart"), "{order:?}");
}
