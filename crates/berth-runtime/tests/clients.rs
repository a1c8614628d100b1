//! The real clients driving berth-runtime in runc's place: Podman 4.3 (conmon),
//! dockerd 20.10 (with the containerd it starts and the runc v2 shim) and containerd 1.6
//! through `ctr` (the path a Kubernetes RuntimeClass takes).
//!
//! Every test builds the busybox image offline (`scripts/clients/make-image.sh`), starts
//! its own client environment under a fresh temp dir (`scripts/clients/*-env.sh`: private
//! storage, state, sockets, cgroupfs driver, no network setup) and tears it all down on
//! drop, also when the test fails: containers removed, daemons and shims stopped,
//! mounts under the dir unmounted, the containers' parent cgroup
//! (`/berth-clients-<dir name>`) and the dir removed. A test that gets to its end also
//! asserts that nothing is left mounted, running or in a cgroup hierarchy.
//!
//! Tests skip LOUDLY (`SKIP: ...` on stderr) when not root or when a client is not
//! installed; `scripts/install-deps.sh` installs them (podman, docker.io, containerd).
//! Every command runs under `timeout`. The runtime is this crate's `berth-runtime`, or
//! `$BERTH_RUNTIME` (an absolute path, e.g. /usr/sbin/runc to check the tests).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const IMAGE: &str = "localhost/berth-busybox:latest";
/// Seconds for one client command (a container run, an exec...).
const CMD_TIMEOUT: u32 = 60;

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn scripts() -> PathBuf {
    workspace_root().join("scripts/clients")
}

fn runtime() -> PathBuf {
    match std::env::var_os("BERTH_RUNTIME") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_BIN_EXE_berth-runtime")),
    }
}

fn have(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `return`s from the test with a loud SKIP unless root and every program is installed.
macro_rules! require {
    ($($prog:expr),*) => {
        let test = std::thread::current().name().unwrap_or("clients").to_string();
        if !is_root() {
            eprintln!("SKIP: {test}: needs root");
            return;
        }
        for prog in [$($prog),*] {
            if !have(prog) {
                eprintln!(
                    "SKIP: {test}: `{prog}` is not installed (bash scripts/install-deps.sh installs it)"
                );
                return;
            }
        }
    };
}

/// One command's result, with the command line for messages.
struct Out {
    cmd: String,
    out: Output,
}

impl Out {
    fn code(&self) -> Option<i32> {
        self.out.status.code()
    }
    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }
    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }
    fn describe(&self) -> String {
        format!(
            "`{}` exited with {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.cmd,
            self.out.status,
            self.stdout(),
            self.stderr()
        )
    }
    #[track_caller]
    fn ok(self) -> Self {
        assert!(self.out.status.success(), "{}", self.describe());
        self
    }
    #[track_caller]
    fn code_is(self, want: i32) -> Self {
        assert_eq!(self.code(), Some(want), "{}", self.describe());
        self
    }
    #[track_caller]
    fn stdout_has(self, want: &str) -> Self {
        assert!(
            self.stdout().contains(want),
            "want {want:?} in stdout of {}",
            self.describe()
        );
        self
    }
}

/// Run `prog args` under `timeout`, stdin from /dev/null, output captured.
fn run(prog: &Path, args: &[&str], secs: u32) -> Out {
    run_stdin(prog, args, secs, None)
}

fn run_stdin(prog: &Path, args: &[&str], secs: u32, stdin: Option<&str>) -> Out {
    let cmd = format!("{} {}", prog.display(), args.join(" "));
    let mut c = Command::new("timeout");
    c.args(["-k", "5", &secs.to_string()]).arg(prog).args(args);
    c.stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = match stdin {
        None => c.stdin(Stdio::null()).output(),
        Some(text) => {
            let path = std::env::temp_dir().join(format!("berth-clients-stdin-{}", unique()));
            fs::write(&path, text).unwrap();
            let r = c.stdin(fs::File::open(&path).unwrap()).output();
            let _ = fs::remove_file(&path);
            r
        }
    }
    .unwrap_or_else(|e| panic!("running `{cmd}`: {e}"));
    Out { cmd, out }
}

/// Run `prog args` on a pty (util-linux `script`), for `-t` / `-it`. Output is the
/// terminal's, with \r\n line ends.
fn run_tty(prog: &Path, args: &[&str], secs: u32) -> Out {
    let line = std::iter::once(prog.display().to_string())
        .chain(args.iter().map(|a| a.to_string()))
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect::<Vec<_>>()
        .join(" ");
    let script = PathBuf::from("script");
    let mut out = run(&script, &["-qec", &line, "/dev/null"], secs);
    out.cmd = format!("script -qec {line:?} /dev/null");
    out
}

fn unique() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// Mount points at or under `dir`.
fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().into_owned();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| *m == d || m.starts_with(&format!("{d}/")))
        .collect()
}

/// Processes whose command line mentions `dir` (daemons, shims, conmon).
fn processes_under(dir: &Path) -> Vec<String> {
    let d = dir.to_string_lossy().into_owned();
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) || name == me {
            continue;
        }
        if let Ok(cmd) = fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(&d) {
                found.push(format!("{name}: {cmd}"));
            }
        }
    }
    found
}

/// A client environment under its own temp dir: `DIR/<tool>` wrappers and `DIR/cleanup`
/// made by `scripts/clients/<kind>-env.sh`.
struct ClientEnv {
    dir: PathBuf,
    kind: &'static str,
    done: bool,
}

impl ClientEnv {
    /// `kind` is podman, docker or containerd; `extra` goes to the env script after the
    /// runtime. Builds and loads the busybox image too.
    fn start(kind: &'static str, extra: &[&str]) -> ClientEnv {
        let dir = std::env::temp_dir().join(format!("berth-{kind}-{}", unique()));
        fs::create_dir_all(&dir).unwrap();
        let env = ClientEnv {
            dir,
            kind,
            done: false,
        };
        let rt = runtime();
        let script = scripts().join(format!("{kind}-env.sh"));
        let mut args = vec![
            script.to_str().unwrap(),
            env.dir.to_str().unwrap(),
            rt.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        run(Path::new("bash"), &args, 90).ok();
        let tar = env.dir.join("busybox.tar");
        run(
            Path::new("bash"),
            &[
                scripts().join("make-image.sh").to_str().unwrap(),
                tar.to_str().unwrap(),
                IMAGE,
            ],
            60,
        )
        .ok();
        let tar = tar.to_str().unwrap();
        match kind {
            "podman" => env.tool("podman", &["load", "-q", "-i", tar]),
            "docker" => env.tool("docker", &["load", "-q", "-i", tar]),
            _ => env.tool("ctr", &["images", "import", tar]),
        }
        .ok();
        env
    }

    /// Run one of the env's wrappers (`podman`, `docker`, `ctr`).
    fn tool(&self, tool: &str, args: &[&str]) -> Out {
        run(&self.dir.join(tool), args, CMD_TIMEOUT)
    }

    fn tool_stdin(&self, tool: &str, args: &[&str], stdin: &str) -> Out {
        run_stdin(&self.dir.join(tool), args, CMD_TIMEOUT, Some(stdin))
    }

    fn tool_tty(&self, tool: &str, args: &[&str]) -> Out {
        run_tty(&self.dir.join(tool), args, CMD_TIMEOUT)
    }

    /// The daemon's log, for failure messages.
    fn log_tail(&self) -> String {
        let log = match self.kind {
            "docker" => "dockerd.log",
            "containerd" => "containerd.log",
            _ => return String::new(),
        };
        let text = fs::read_to_string(self.dir.join(log)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    fn cleanup(&mut self) {
        if self.done {
            return;
        }
        self.done = true;
        let cleanup = self.dir.join("cleanup");
        if cleanup.exists() {
            let out = run(&cleanup, &[], 180);
            if !out.out.status.success() {
                eprintln!("{} cleanup: {}", self.kind, out.describe());
            }
        }
        // Belt and braces if the script was never written or did not finish.
        for m in mounts_under(&self.dir).iter().rev() {
            let _ = Command::new("umount").args(["-l", m]).status();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }

    /// Tear down now and check that nothing is left behind.
    fn finish(mut self) {
        self.cleanup();
        let mounts = mounts_under(&self.dir);
        assert!(
            mounts.is_empty(),
            "{}: mounts left behind: {mounts:?}",
            self.kind
        );
        let procs = processes_under(&self.dir);
        assert!(
            procs.is_empty(),
            "{}: processes left behind: {procs:#?}",
            self.kind
        );
        assert!(
            !self.dir.exists(),
            "{}: {} left behind",
            self.kind,
            self.dir.display()
        );
        let cg = format!(
            "berth-clients-{}",
            self.dir.file_name().unwrap().to_string_lossy()
        );
        let left: Vec<String> = fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
            .map(|h| h.path().join(&cg))
            .chain([Path::new("/sys/fs/cgroup").join(&cg)])
            .filter(|p| p.exists())
            .map(|p| p.display().to_string())
            .collect();
        assert!(
            left.is_empty(),
            "{}: cgroups left behind: {left:?}",
            self.kind
        );
    }
}

impl Drop for ClientEnv {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let tail = self.log_tail();
            if !tail.is_empty() {
                eprintln!("--- {} log (tail)\n{tail}", self.kind);
            }
        }
        self.cleanup();
    }
}

/// Whether CAP_SYS_RESOURCE (24) is in this process's bounding set.
fn have_cap_sys_resource() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .is_some_and(|caps| caps & (1 << 24) != 0)
}

fn hard_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) };
    r.rlim_max
}

// ---------------------------------------------------------------------------------------
// Podman 4.3 (conmon calls create / start / exec / pause / resume / kill / delete)

#[test]
fn podman_run_rm_and_tty() {
    require!("podman", "conmon", "script");
    let env = ClientEnv::start("podman", &[]);
    env.tool(
        "podman",
        &["run", "--rm", IMAGE, "echo", "hello from berth"],
    )
    .ok()
    .stdout_has("hello from berth");
    env.tool("podman", &["run", "--rm", IMAGE, "sh", "-c", "exit 3"])
        .code_is(3);
    env.tool_stdin("podman", &["run", "--rm", "-i", IMAGE, "cat"], "piped in\n")
        .ok()
        .stdout_has("piped in");
    env.tool_tty(
        "podman",
        &["run", "--rm", "-t", IMAGE, "sh", "-c", "tty; echo tty-ok"],
    )
    .ok()
    .stdout_has("/dev/pts/0")
    .stdout_has("tty-ok");
    env.finish();
}

#[test]
fn podman_detach_exec_pause_stop_rm() {
    require!("podman", "conmon", "script");
    let env = ClientEnv::start("podman", &[]);
    let id = env
        .tool("podman", &["run", "-d", IMAGE, "sleep", "300"])
        .ok()
        .stdout();
    let id = id.trim();
    env.tool("podman", &["exec", id, "echo", "exec-ok"])
        .ok()
        .stdout_has("exec-ok");
    env.tool(
        "podman",
        &[
            "exec",
            "-u",
            "nobody",
            "-w",
            "/tmp",
            "-e",
            "FOO=bar",
            id,
            "sh",
            "-c",
            "id -u; pwd; echo $FOO",
        ],
    )
    .ok()
    .stdout_has("65534\n/tmp\nbar");
    env.tool("podman", &["exec", id, "sh", "-c", "exit 7"])
        .code_is(7);
    env.tool_tty(
        "podman",
        &["exec", "-t", id, "sh", "-c", "tty; echo texec-ok"],
    )
    .ok()
    .stdout_has("texec-ok");
    env.tool("podman", &["pause", id]).ok();
    env.tool("podman", &["inspect", "--format", "{{.State.Status}}", id])
        .ok()
        .stdout_has("paused");
    env.tool("podman", &["unpause", id]).ok();
    env.tool("podman", &["inspect", "--format", "{{.State.Status}}", id])
        .ok()
        .stdout_has("running");
    // sleep is pid 1 and has no SIGTERM handler: stop falls back to SIGKILL after 1 s
    env.tool("podman", &["stop", "-t", "1", id]).ok();
    env.tool("podman", &["inspect", "--format", "{{.State.Status}}", id])
        .ok()
        .stdout_has("exited");
    env.tool("podman", &["rm", id]).ok();
    env.finish();
}

/// Without default_ulimits Podman asks for nofile=1048576:1048576; where that is above
/// the hard limit and CAP_SYS_RESOURCE is not in the bounding set, the failure must say
/// so (and nothing else: no "does not exist" from the cleanup's `delete --force`).
#[test]
fn podman_rlimit_above_hard_limit_error_is_clear() {
    require!("podman", "conmon");
    let env = ClientEnv::start("podman", &["--no-ulimits"]);
    let out = env.tool("podman", &["run", "--rm", IMAGE, "true"]);
    if have_cap_sys_resource() || hard_nofile() >= 1_048_576 {
        eprintln!("note: this host can raise RLIMIT_NOFILE to 1048576; checking success instead");
        out.ok();
    } else if std::env::var_os("BERTH_RUNTIME").is_none() {
        assert_ne!(out.code(), Some(0), "{}", out.describe());
        let err = out.stderr();
        for want in ["RLIMIT_NOFILE", "1048576", "hard limit", "CAP_SYS_RESOURCE"] {
            assert!(err.contains(want), "want {want:?} in {}", out.describe());
        }
        assert!(!err.contains("does not exist"), "{}", out.describe());
    }
    env.finish();
}

// ---------------------------------------------------------------------------------------
// dockerd 20.10 → containerd → containerd-shim-runc-v2 → berth-runtime
// (the shim passes --root, --log <bundle>/log.json and --log-format json)

fn docker_run<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["run", "--runtime", "berth", "--network", "none"];
    v.extend_from_slice(extra);
    v
}

#[test]
fn docker_run_tty_exec_pause() {
    require!("dockerd", "containerd", "containerd-shim-runc-v2", "script");
    let ip_forward = || std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").unwrap();
    let forward_before = ip_forward();
    let env = ClientEnv::start("docker", &[]);
    assert_eq!(
        ip_forward(),
        forward_before,
        "dockerd changed the host's ip_forward"
    );
    env.tool(
        "docker",
        &docker_run(&["--rm", IMAGE, "echo", "hello from berth"]),
    )
    .ok()
    .stdout_has("hello from berth");
    env.tool(
        "docker",
        &docker_run(&["--rm", IMAGE, "sh", "-c", "exit 3"]),
    )
    .code_is(3);
    env.tool_stdin(
        "docker",
        &docker_run(&["--rm", "-i", IMAGE, "cat"]),
        "piped in\n",
    )
    .ok()
    .stdout_has("piped in");
    env.tool_tty(
        "docker",
        &docker_run(&["--rm", "-it", IMAGE, "sh", "-c", "tty; echo tty-ok"]),
    )
    .ok()
    .stdout_has("/dev/pts/0")
    .stdout_has("tty-ok");

    let id = env
        .tool("docker", &docker_run(&["-d", IMAGE, "sleep", "300"]))
        .ok()
        .stdout();
    let id = id.trim();
    env.tool("docker", &["inspect", "-f", "{{.HostConfig.Runtime}}", id])
        .ok()
        .stdout_has("berth");
    env.tool("docker", &["exec", id, "echo", "exec-ok"])
        .ok()
        .stdout_has("exec-ok");
    env.tool(
        "docker",
        &[
            "exec",
            "-u",
            "nobody",
            "-w",
            "/tmp",
            "-e",
            "FOO=bar",
            id,
            "sh",
            "-c",
            "id -u; pwd; echo $FOO",
        ],
    )
    .ok()
    .stdout_has("65534\n/tmp\nbar");
    env.tool("docker", &["exec", id, "sh", "-c", "exit 7"])
        .code_is(7);
    env.tool_tty(
        "docker",
        &["exec", "-it", id, "sh", "-c", "tty; echo texec-ok"],
    )
    .ok()
    .stdout_has("texec-ok");
    env.tool("docker", &["pause", id]).ok();
    env.tool("docker", &["inspect", "-f", "{{.State.Status}}", id])
        .ok()
        .stdout_has("paused");
    env.tool("docker", &["unpause", id]).ok();
    env.tool("docker", &["stop", "-t", "1", id]).ok();
    env.tool("docker", &["inspect", "-f", "{{.State.Status}}", id])
        .ok()
        .stdout_has("exited");
    env.tool("docker", &["rm", id]).ok();
    env.finish();
}

// ---------------------------------------------------------------------------------------
// containerd 1.6 + ctr → containerd-shim-runc-v2 (BinaryName = berth-runtime): the path
// of a Kubernetes RuntimeClass.

#[test]
fn containerd_ctr_run_exec_pause() {
    require!("containerd", "ctr", "containerd-shim-runc-v2", "script");
    let env = ClientEnv::start("containerd", &[]);
    let rt = runtime();
    let rt = rt.to_str().unwrap();
    env.tool(
        "ctr",
        &[
            "run",
            "--rm",
            "--runc-binary",
            rt,
            IMAGE,
            "c1",
            "echo",
            "hello from berth",
        ],
    )
    .ok()
    .stdout_has("hello from berth");
    env.tool(
        "ctr",
        &[
            "run",
            "--rm",
            "--runc-binary",
            rt,
            IMAGE,
            "c2",
            "sh",
            "-c",
            "exit 3",
        ],
    )
    .code_is(3);
    env.tool_tty(
        "ctr",
        &[
            "run",
            "--rm",
            "-t",
            "--runc-binary",
            rt,
            IMAGE,
            "c3",
            "sh",
            "-c",
            "tty; echo tty-ok",
        ],
    )
    .ok()
    .stdout_has("/dev/pts/0")
    .stdout_has("tty-ok");

    env.tool(
        "ctr",
        &[
            "run",
            "-d",
            "--runc-binary",
            rt,
            IMAGE,
            "c4",
            "sleep",
            "300",
        ],
    )
    .ok();
    env.tool(
        "ctr",
        &["tasks", "exec", "--exec-id", "e1", "c4", "echo", "exec-ok"],
    )
    .ok()
    .stdout_has("exec-ok");
    env.tool(
        "ctr",
        &[
            "tasks",
            "exec",
            "--exec-id",
            "e2",
            "c4",
            "sh",
            "-c",
            "exit 7",
        ],
    )
    .code_is(7);
    env.tool("ctr", &["tasks", "pause", "c4"]).ok();
    env.tool("ctr", &["tasks", "ls"]).ok().stdout_has("PAUSED");
    env.tool("ctr", &["tasks", "resume", "c4"]).ok();
    env.tool("ctr", &["tasks", "ls"]).ok().stdout_has("RUNNING");
    env.tool("ctr", &["tasks", "kill", "-s", "KILL", "c4"]).ok();
    // the shim reports the exit asynchronously
    let mut stopped = false;
    for _ in 0..100 {
        if env
            .tool("ctr", &["tasks", "ls"])
            .ok()
            .stdout()
            .contains("STOPPED")
        {
            stopped = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(stopped, "c4 did not stop after SIGKILL");
    env.tool("ctr", &["tasks", "delete", "c4"]).ok();
    env.tool("ctr", &["containers", "delete", "c4"]).ok();
    env.finish();
}
