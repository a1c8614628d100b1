//! Integration-test harness for berth-runtime.
//!
//! ```ignore
//! mod common;
//! use common::{require_root, Runtime};
//! use serde_json::json;
//!
//! #[test]
//! fn hostname_is_set() {
//!     require_root!();
//!     let rt = Runtime::new();                       // temp --root; cleans up on drop
//!     let mut b = rt.bundle();                       // busybox + berth-probe rootfs
//!     b.config(|c| c["hostname"] = json!("box"));
//!     b.probe(&["report", "--stat", "/dev/null"]);   // process.args
//!     let report = rt.run(&rt.id("host"), &b).assert_success().json();
//!     assert_eq!(report["hostname"], "box");
//! }
//! ```
//!
//! * [`Runtime`] runs `berth-runtime --root <per-test temp dir> ...` (or `$BERTH_RUNTIME`,
//!   e.g. `/usr/sbin/runc`, to check a test against another runtime) with stdout/stderr in
//!   files, a timeout (60 s, `$BERTH_TEST_TIMEOUT`), and returns an [`Output`].
//!   It is also the cleanup guard: on drop (even while a failed test unwinds) it
//!   `delete --force`s every container it knows of (ids it was given, `list`, and the
//!   state dirs under its root), SIGKILLs every process carrying its token
//!   (`BERTH_TEST_TOKEN=<token>` is in the runtime's env and in the default
//!   `process.env`), removes the cgroups whose name holds its token (the default
//!   `linux.cgroupsPath` is `/berth-test/<token>/<bundle name>`, and ids from
//!   [`Runtime::id`] hold the token too), lazily unmounts everything under its temp dir
//!   and removes it. The first `Runtime` of a test process also sweeps what killed
//!   earlier runs left behind.
//! * [`Bundle`] is the bundle builder ([`bundle::default_config`] is runc's default spec
//!   with `terminal: false` and `args: ["/bin/berth-probe", "report"]`); edit it with
//!   [`Bundle::config`], [`Bundle::set`] (JSON pointer) and friends.
//! * [`ConsoleSocket`] receives the pty master for `--console-socket` tests.
//!
//! The probe: the rootfs needs a *static* berth-probe. If `$BERTH_PROBE` names one, it is
//! used as is; otherwise the first bundle of each test binary builds it once with
//! `$CARGO build -p berth-probe --release --target <arch>-unknown-linux-gnu` and
//! `RUSTFLAGS="-C target-feature=+crt-static"` into its own target dir
//! (`$CARGO_TARGET_DIR/probe`, else `target/probe`), so plain `cargo test` works.
//! Busybox comes from `/bin/busybox` (`$BERTH_BUSYBOX`); temp dirs go to
//! `$BERTH_TEST_TMPDIR` or the system temp dir. `BERTH_TEST_KEEP=1` skips the cleanup
//! (containers, processes and all) to debug a failing test by hand.
#![allow(dead_code, unused_macros, unused_imports)]

pub mod assets;
pub mod bundle;
pub mod cleanup;
pub mod console;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

pub use bundle::Bundle;
pub use console::ConsoleSocket;

/// Whether the tests run as root (most runtime tests need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Returns from the test (printing why) unless running as root.
macro_rules! require_root {
    () => {
        if !crate::common::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
    };
}
pub(crate) use require_root;

/// One runtime invocation's result. stdout/stderr were redirected to files, which stay
/// readable (see [`Output::reread_stdout`]) since a detached container keeps writing to
/// the stdio it inherited from `create`/`run -d`.
#[derive(Debug)]
pub struct Output {
    pub args: Vec<String>,
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub stdout_path: PathBuf,
    pub stderr_path: PathBuf,
    pub elapsed: Duration,
}

impl Output {
    /// Exit code (`None` if the runtime itself died of a signal).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn success(&self) -> bool {
        self.status.success()
    }

    /// Panics (showing the command and its output) unless it exited 0.
    #[track_caller]
    pub fn assert_success(&self) -> &Self {
        assert!(self.success(), "expected success:\n{self}");
        self
    }

    /// Panics unless it exited non-zero.
    #[track_caller]
    pub fn assert_failure(&self) -> &Self {
        assert!(!self.success(), "expected failure:\n{self}");
        self
    }

    /// Panics unless the exit code is `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(self.code(), Some(code), "unexpected exit code:\n{self}");
        self
    }

    /// stdout as JSON (the whole of it, else its last non-empty line).
    #[track_caller]
    pub fn json(&self) -> Value {
        let text = self.stdout.trim();
        serde_json::from_str(text)
            .or_else(|e| {
                let last = text.lines().rev().find(|l| !l.trim().is_empty()).ok_or(e)?;
                serde_json::from_str(last)
            })
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{self}"))
    }

    /// stdout as it is now (a detached container may have written more since).
    pub fn reread_stdout(&self) -> String {
        fs::read_to_string(&self.stdout_path).unwrap_or_default()
    }

    pub fn reread_stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }
}

impl std::fmt::Display for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "$ {}\n=> {} after {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.args.join(" "),
            self.status,
            self.elapsed,
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}

/// Runs the runtime binary against a per-test `--root`, and cleans up on drop.
pub struct Runtime {
    binary: PathBuf,
    token: String,
    dir: PathBuf,
    root: PathBuf,
    global: Vec<String>,
    timeout: Duration,
    ids: Mutex<BTreeSet<String>>,
    seq: AtomicU64,
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime::new()
    }
}

impl Runtime {
    pub fn new() -> Runtime {
        let token = cleanup::new_token();
        let dir = cleanup::make_temp_dir_for(&token, "rt");
        let root = dir.join("root");
        for d in [&root, &dir.join("bundles"), &dir.join("io")] {
            fs::create_dir_all(d).expect("creating test dirs");
        }
        let binary = std::env::var_os("BERTH_RUNTIME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_berth-runtime")));
        let timeout = std::env::var("BERTH_TEST_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .map_or(Duration::from_secs(60), Duration::from_secs);
        Runtime {
            binary,
            token,
            dir,
            root,
            global: Vec::new(),
            timeout,
            ids: Mutex::new(BTreeSet::new()),
            seq: AtomicU64::new(0),
        }
    }

    /// The `--root` state directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// This test's scratch dir (holds root/, bundles/, io/; anything else may go here).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// Extra global flags put after `--root` (`--systemd-cgroup`, `--log F`, ...).
    pub fn global(&mut self, args: &[&str]) -> &mut Self {
        self.global.extend(args.iter().map(|s| s.to_string()));
        self
    }

    pub fn set_timeout(&mut self, timeout: Duration) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// A container id unique to this test (`<token>-<name>`), remembered for cleanup.
    pub fn id(&self, name: &str) -> String {
        let id = format!("{}-{name}", self.token);
        self.remember(&id);
        id
    }

    fn remember(&self, id: &str) {
        self.ids.lock().unwrap().insert(id.to_owned());
    }

    fn next(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// A new bundle under this test's dir, its cgroupsPath `/berth-test/<token>/b<n>`.
    pub fn bundle(&self) -> Bundle {
        let name = format!("b{}", self.next());
        let cgroups_path = format!("/berth-test/{}/{name}", self.token);
        Bundle::create_in(
            self.dir.join("bundles").join(&name),
            Some(&cgroups_path),
            &self.token,
        )
    }

    /// A command for the runtime with `--root` and the global flags set, for tests that
    /// need to drive the process themselves (stdin, concurrent kill, ...). Its processes
    /// are cleaned up like the others, but remember ids with [`Runtime::id`].
    pub fn command(&self) -> Command {
        let mut c = Command::new(&self.binary);
        c.arg("--root").arg(&self.root).args(&self.global);
        c.env(bundle::TOKEN_ENV, &self.token);
        c
    }

    /// Runs `berth-runtime --root R <global> ARGS` to completion (panics on timeout).
    #[track_caller]
    pub fn cmd(&self, args: &[&str]) -> Output {
        match self.try_cmd(args, self.timeout) {
            Ok(out) => out,
            Err(msg) => panic!("{msg}"),
        }
    }

    fn try_cmd(&self, args: &[&str], timeout: Duration) -> Result<Output, String> {
        let n = self.next();
        let verb = args.first().copied().unwrap_or("none");
        let io = self.dir.join("io");
        let stdout_path = io.join(format!("{n}-{verb}.out"));
        let stderr_path = io.join(format!("{n}-{verb}.err"));
        let mut c = self.command();
        c.args(args).stdin(Stdio::null());
        let mut shown: Vec<String> = vec![self.binary.display().to_string()];
        shown.extend(c.get_args().map(|a| a.to_string_lossy().into_owned()));
        let file = |p: &Path| File::create(p).map_err(|e| format!("{}: {e}", p.display()));
        c.stdout(file(&stdout_path)?).stderr(file(&stderr_path)?);
        let start = Instant::now();
        let mut child = c
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", shown.join(" ")))?;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if start.elapsed() > timeout => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "timed out after {timeout:?}: {}\n--- stdout\n{}\n--- stderr\n{}",
                        shown.join(" "),
                        fs::read_to_string(&stdout_path).unwrap_or_default(),
                        fs::read_to_string(&stderr_path).unwrap_or_default()
                    ));
                }
                Ok(None) => thread::sleep(Duration::from_millis(2)),
                Err(e) => return Err(format!("waiting for {}: {e}", shown.join(" "))),
            }
        };
        Ok(Output {
            args: shown,
            status,
            stdout: fs::read_to_string(&stdout_path).unwrap_or_default(),
            stderr: fs::read_to_string(&stderr_path).unwrap_or_default(),
            stdout_path,
            stderr_path,
            elapsed: start.elapsed(),
        })
    }

    fn bundle_arg(bundle: &Bundle) -> String {
        bundle.path().display().to_string()
    }

    #[track_caller]
    pub fn create(&self, id: &str, bundle: &Bundle) -> Output {
        self.create_with(id, bundle, &[])
    }

    /// `create --bundle B EXTRA... ID` (EXTRA: `--pid-file F`, `--console-socket S`, ...).
    #[track_caller]
    pub fn create_with(&self, id: &str, bundle: &Bundle, extra: &[&str]) -> Output {
        self.remember(id);
        let b = Self::bundle_arg(bundle);
        let mut args = vec!["create", "--bundle", &b];
        args.extend_from_slice(extra);
        args.push(id);
        self.cmd(&args)
    }

    #[track_caller]
    pub fn start(&self, id: &str) -> Output {
        self.cmd(&["start", id])
    }

    #[track_caller]
    pub fn state(&self, id: &str) -> Output {
        self.cmd(&["state", id])
    }

    /// The state JSON (panics if `state` fails).
    #[track_caller]
    pub fn state_json(&self, id: &str) -> Value {
        self.state(id).assert_success().json()
    }

    #[track_caller]
    pub fn kill(&self, id: &str, signal: &str) -> Output {
        self.cmd(&["kill", id, signal])
    }

    #[track_caller]
    pub fn kill_all(&self, id: &str, signal: &str) -> Output {
        self.cmd(&["kill", "--all", id, signal])
    }

    #[track_caller]
    pub fn delete(&self, id: &str) -> Output {
        self.cmd(&["delete", id])
    }

    #[track_caller]
    pub fn delete_force(&self, id: &str) -> Output {
        self.cmd(&["delete", "--force", id])
    }

    /// Foreground `run --bundle B ID`: the output holds the container's stdout/stderr
    /// and the runtime's exit code is the container's (128+N if killed by signal N).
    #[track_caller]
    pub fn run(&self, id: &str, bundle: &Bundle) -> Output {
        self.run_with(id, bundle, &[])
    }

    #[track_caller]
    pub fn run_with(&self, id: &str, bundle: &Bundle, extra: &[&str]) -> Output {
        self.remember(id);
        let b = Self::bundle_arg(bundle);
        let mut args = vec!["run", "--bundle", &b];
        args.extend_from_slice(extra);
        args.push(id);
        self.cmd(&args)
    }

    #[track_caller]
    pub fn run_detached(&self, id: &str, bundle: &Bundle) -> Output {
        self.run_with(id, bundle, &["--detach"])
    }

    #[track_caller]
    pub fn list(&self) -> Output {
        self.cmd(&["list", "--format", "json"])
    }

    /// `list --format json` as an array (runc prints `null` for none).
    #[track_caller]
    pub fn list_json(&self) -> Vec<Value> {
        match self.list().assert_success().json() {
            Value::Null => Vec::new(),
            Value::Array(a) => a,
            other => panic!("list printed neither an array nor null: {other}"),
        }
    }

    /// Runs `bundle` (whose process should be the probe) with a fresh id and returns the
    /// JSON it printed; panics unless it exited 0.
    #[track_caller]
    pub fn report(&self, bundle: &Bundle) -> Value {
        let id = self.id(&format!("r{}", self.next()));
        self.run(&id, bundle).assert_success().json()
    }

    /// Polls `state` until `status` (`created`, `running`, `stopped`) or panics after
    /// `timeout`; returns the state JSON.
    #[track_caller]
    pub fn wait_for_status(&self, id: &str, status: &str, timeout: Duration) -> Value {
        let start = Instant::now();
        loop {
            let out = self.state(id);
            if out.success() {
                let state = out.json();
                if state["status"] == status {
                    return state;
                }
            }
            assert!(
                start.elapsed() < timeout,
                "{id} not {status} after {timeout:?}; last state:\n{out}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every container id this runtime may have: remembered, listed, or in the root dir.
    fn known_ids(&self) -> BTreeSet<String> {
        let mut ids = self.ids.lock().map(|g| g.clone()).unwrap_or_default();
        if let Ok(out) = self.try_cmd(&["list", "--format", "json"], Duration::from_secs(10)) {
            if let Ok(Value::Array(list)) = serde_json::from_str::<Value>(out.stdout.trim()) {
                ids.extend(
                    list.iter()
                        .filter_map(|c| c["id"].as_str().map(str::to_owned)),
                );
            }
        }
        if let Ok(rd) = fs::read_dir(&self.root) {
            ids.extend(
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.file_name().to_string_lossy().into_owned()),
            );
        }
        ids
    }

    fn cleanup(&mut self) {
        let quick = Duration::from_secs(10);
        let mut pids = BTreeSet::new();
        for id in self.known_ids() {
            if let Ok(out) = self.try_cmd(&["state", &id], quick) {
                let state: Value = serde_json::from_str(out.stdout.trim()).unwrap_or_default();
                // A stopped container's pid may already belong to someone else.
                let live = state["status"] != "stopped";
                if let Some(pid) = state["pid"].as_i64().filter(|&p| p > 0 && live) {
                    pids.insert(pid as i32);
                }
            }
            let _ = self.try_cmd(&["delete", "--force", &id], quick);
        }
        pids.extend(cleanup::marked_processes(|t| t == self.token));
        cleanup::kill_and_wait(&pids);
        let token = self.token.clone();
        for cg in cleanup::find_cgroups(&|name| cleanup::has_token(name, &token)) {
            cleanup::remove_cgroup_tree(&cg);
        }
        cleanup::remove_tree(&self.dir);
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if std::env::var_os("BERTH_TEST_KEEP").is_some() {
            eprintln!("BERTH_TEST_KEEP set: leaving {}", self.dir.display());
            return;
        }
        self.cleanup();
    }
}
