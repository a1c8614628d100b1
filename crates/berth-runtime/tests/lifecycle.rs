//! The container lifecycle on the real kernel: create / start / state / kill / delete /
//! run / list, the state directory, exit codes, fds passed in, and terminals.

mod common;

use std::fs::{self, File};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::{cleanup, require_root, Bundle, ConsoleSocket, Runtime};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(10);

/// A host directory (mode 0777) bind-mounted read-write at /shared in the container.
fn shared_dir(rt: &Runtime, b: &mut Bundle) -> PathBuf {
    let host = unique(rt.dir().join("shared"));
    fs::create_dir_all(&host).unwrap();
    fs::set_permissions(&host, fs::Permissions::from_mode(0o777)).unwrap();
    b.mkdir("shared");
    b.set(
        "/mounts/-",
        json!({"destination": "/shared", "type": "bind", "source": host, "options": ["rbind", "rw"]}),
    );
    host
}

fn unique(mut p: PathBuf) -> PathBuf {
    let base = p.clone();
    let mut n = 0;
    while p.exists() {
        n += 1;
        p = PathBuf::from(format!("{}-{n}", base.display()));
    }
    p
}

/// The container's cgroup directories that exist now, in every hierarchy.
fn cgroup_dirs(b: &Bundle) -> Vec<PathBuf> {
    let rel = b.spec()["linux"]["cgroupsPath"]
        .as_str()
        .expect("harness sets cgroupsPath")
        .trim_start_matches('/')
        .to_string();
    cleanup::cgroup_mounts()
        .into_iter()
        .map(|m| m.join(&rel))
        .filter(|p| p.is_dir())
        .collect()
}

fn alive(pid: i64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s[s.rfind(')').unwrap() + 1..].trim_start().starts_with('Z'))
            .unwrap_or(false)
}

fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for `child` (killing it after `timeout`) and returns its status.
fn wait_child(child: &mut Child, timeout: Duration) -> ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("child did not exit within {timeout:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The last line of `text` that parses as a JSON object from its first `{` to its last
/// `}` (pty output has `\r\n`, and may carry echoed control characters around it).
fn last_json(text: &str) -> Value {
    text.lines()
        .rev()
        // Echoed control characters (e.g. `^@`) may also trail the object on its line.
        .filter_map(|l| Some(&l[l.find('{')?..=l.rfind('}')?]))
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON line in:\n{text}"))
}

#[test]
fn create_leaves_init_waiting_until_start() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    let shared = shared_dir(&rt, &mut b);
    b.args(&["/bin/sh", "-c", "touch /shared/ran; exec sleep 1000"]);
    let id = rt.id("wait");
    rt.create(&id, &b).assert_success();
    let st = rt.state_json(&id);
    assert_eq!(st["status"], "created");
    let pid = st["pid"].as_i64().unwrap();
    assert!(pid > 0 && alive(pid), "init pid {pid} is not alive");
    thread::sleep(Duration::from_millis(300));
    assert!(!shared.join("ran").exists(), "the process ran before start");
    rt.start(&id).assert_success();
    wait_until("/shared/ran", WAIT, || shared.join("ran").exists());
    let st = rt.state_json(&id);
    assert_eq!(st["status"], "running");
    assert_eq!(st["pid"].as_i64(), Some(pid));
}

#[test]
fn state_reports_oci_fields_and_annotations() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.probe(&["sleep", "inf"])
        .set("/annotations/org.example.key", json!("value-1"))
        .set("/annotations/other", json!("two"));
    let id = rt.id("state");
    rt.create(&id, &b).assert_success();
    let st = rt.state_json(&id);
    assert_eq!(st["ociVersion"], "1.2.0");
    assert_eq!(st["id"], id.as_str());
    assert_eq!(st["status"], "created");
    assert!(st["pid"].as_i64().unwrap() > 0);
    let bundle = b.path().canonicalize().unwrap();
    assert_eq!(st["bundle"], bundle.display().to_string());
    assert_eq!(
        st["annotations"],
        json!({"org.example.key": "value-1", "other": "two"})
    );
}

#[test]
fn pid_file_holds_the_init_pid_when_create_returns() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.probe(&["sleep", "inf"]);
    let id = rt.id("pidfile");
    let pid_file = rt.dir().join("init.pid");
    let pf = pid_file.display().to_string();
    rt.create_with(&id, &b, &["--pid-file", &pf])
        .assert_success();
    let written = fs::read_to_string(&pid_file).expect("pid file written by create");
    let st = rt.state_json(&id);
    assert_eq!(written.trim().parse::<i64>().ok(), st["pid"].as_i64());
}

#[test]
fn foreground_run_returns_the_exit_code() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.probe(&["exit", "7"]);
    rt.run(&rt.id("exit7"), &b).assert_code(7);
    b.probe(&["exit", "0"]);
    rt.run(&rt.id("exit0"), &b).assert_code(0);
}

#[test]
fn foreground_run_reports_self_signal_as_128_plus_n() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    // Without a pid namespace the probe is not a pid 1, so its own signal kills it.
    b.without_namespace("pid").probe(&["kill-self", "TERM"]);
    rt.run(&rt.id("selfterm"), &b)
        .assert_code(128 + libc::SIGTERM);
}

#[test]
fn foreground_run_reports_sigkill_from_outside_as_137() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.probe(&["sleep", "inf"]);
    let id = rt.id("extkill");
    let mut cmd = rt.command();
    cmd.args(["run", "--bundle"])
        .arg(b.path())
        .arg(&id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let st = rt.wait_for_status(&id, "running", WAIT);
    let pid = st["pid"].as_i64().unwrap() as i32;
    // SAFETY: kill takes no pointers.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let status = wait_child(&mut child, WAIT);
    assert_eq!(status.code(), Some(128 + libc::SIGKILL));
    // The foreground run deletes the container once it stops.
    assert!(!rt.root().join(&id).exists(), "state dir left after run");
}

/// Starts `probe trap SIGS...` detached and waits for it to be ready; returns the run output.
fn start_trap(rt: &Runtime, id: &str, sigs: &[&str]) -> common::Output {
    let mut b = rt.bundle();
    let mut args = vec!["trap"];
    args.extend_from_slice(sigs);
    b.probe(&args);
    let out = rt.run_detached(id, &b);
    out.assert_success();
    wait_until("the trap to be ready", WAIT, || {
        out.reread_stdout().contains("\"ready\":true")
    });
    out
}

#[test]
fn kill_accepts_signal_names_and_numbers() {
    require_root!();
    let rt = Runtime::new();
    for (arg, want) in [
        ("TERM", libc::SIGTERM),
        ("SIGUSR1", libc::SIGUSR1),
        ("12", libc::SIGUSR2),
    ] {
        let id = rt.id(&format!("kill-{arg}"));
        let out = start_trap(&rt, &id, &["TERM", "USR1", "USR2"]);
        rt.kill(&id, arg).assert_success();
        rt.wait_for_status(&id, "stopped", WAIT);
        let got = last_json(&out.reread_stdout());
        assert_eq!(got["signal"], want, "kill {arg}: {got}");
        rt.delete(&id).assert_success();
    }
    // 9 cannot be trapped: it ends the init.
    let id = rt.id("kill-9");
    let mut b = rt.bundle();
    b.probe(&["sleep", "inf"]);
    rt.run_detached(&id, &b).assert_success();
    rt.kill(&id, "9").assert_success();
    rt.wait_for_status(&id, "stopped", WAIT);
    rt.kill(&id, "NOSUCHSIG").assert_failure();
}

#[test]
fn kill_of_a_stopped_container_fails() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.probe(&["exit", "0"]);
    let id = rt.id("stopped");
    rt.run_detached(&id, &b).assert_success();
    rt.wait_for_status(&id, "stopped", WAIT);
    let out = rt.kill(&id, "KILL");
    out.assert_failure();
    assert!(out.stderr.contains("stopped"), "{out}");
}

#[test]
fn kill_all_signals_every_process_in_the_container() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    // No pid namespace: killing the init alone would leave the sleeps running.
    b.without_namespace("pid")
        .args(&["/bin/sh", "-c", "sleep 1000 & sleep 1000 & wait"]);
    let id = rt.id("killall");
    rt.run_detached(&id, &b).assert_success();
    rt.wait_for_status(&id, "running", WAIT);
    let pids_dir = cgroup_dirs(&b)
        .into_iter()
        .find(|p| p.starts_with("/sys/fs/cgroup/pids"))
        .expect("pids cgroup of the container");
    let procs = || fs::read_to_string(pids_dir.join("cgroup.procs")).unwrap();
    wait_until("three processes", WAIT, || procs().lines().count() == 3);
    rt.kill_all(&id, "KILL").assert_success();
    wait_until("an empty cgroup", WAIT, || procs().trim().is_empty());
    rt.wait_for_status(&id, "stopped", WAIT);
}

#[test]
fn delete_of_a_running_container_needs_force_and_removes_everything() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.probe(&["sleep", "inf"]);
    let id = rt.id("del");
    rt.run_detached(&id, &b).assert_success();
    let pid = rt.wait_for_status(&id, "running", WAIT)["pid"]
        .as_i64()
        .unwrap();
    let cgroups = cgroup_dirs(&b);
    assert!(
        cgroups.iter().any(|p| p.starts_with("/sys/fs/cgroup/pids")),
        "no pids cgroup: {cgroups:?}"
    );
    let out = rt.delete(&id);
    out.assert_failure();
    assert!(out.stderr.contains("force"), "{out}");
    assert_eq!(rt.state_json(&id)["status"], "running");

    rt.delete_force(&id).assert_success();
    assert!(!rt.root().join(&id).exists(), "state dir left");
    let left: Vec<_> = cgroups.iter().filter(|p| p.exists()).collect();
    assert!(left.is_empty(), "cgroup dirs left: {left:?}");
    wait_until("the init to die", WAIT, || !alive(pid));
    rt.state(&id).assert_failure();
}

#[test]
fn delete_of_a_created_container_kills_the_waiting_init() {
    require_root!();
    let rt = Runtime::new();
    let b = rt.bundle();
    let id = rt.id("delcreated");
    rt.create(&id, &b).assert_success();
    let pid = rt.state_json(&id)["pid"].as_i64().unwrap();
    rt.delete(&id).assert_success();
    assert!(!rt.root().join(&id).exists(), "state dir left");
    assert!(cgroup_dirs(&b).is_empty(), "cgroup left");
    wait_until("the init to die", WAIT, || !alive(pid));
}

#[test]
fn list_shows_each_container_with_its_status() {
    require_root!();
    let rt = Runtime::new();
    let mut created = rt.bundle();
    created.probe(&["sleep", "inf"]);
    let mut running = rt.bundle();
    running.probe(&["sleep", "inf"]);
    let mut stopped = rt.bundle();
    stopped.probe(&["exit", "0"]);
    let (c, r, s) = (rt.id("c"), rt.id("r"), rt.id("s"));
    rt.create(&c, &created).assert_success();
    rt.run_detached(&r, &running).assert_success();
    rt.run_detached(&s, &stopped).assert_success();
    rt.wait_for_status(&s, "stopped", WAIT);

    let list = rt.list_json();
    let status_of = |id: &str| {
        list.iter()
            .find(|e| e["id"] == id)
            .unwrap_or_else(|| panic!("{id} not listed: {list:?}"))["status"]
            .clone()
    };
    assert_eq!(list.len(), 3, "{list:?}");
    assert_eq!(status_of(&c), "created");
    assert_eq!(status_of(&r), "running");
    assert_eq!(status_of(&s), "stopped");

    let table = rt.cmd(&["list"]);
    table.assert_success();
    let mut lines = table.stdout.lines();
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("ID") && header.contains("STATUS"),
        "{table}"
    );
    for (id, status) in [(&c, "created"), (&r, "running"), (&s, "stopped")] {
        let row = table
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some(id.as_str()))
            .unwrap_or_else(|| panic!("{id} not in table:\n{table}"));
        assert_eq!(row.split_whitespace().nth(2), Some(status), "{row}");
    }
}

#[test]
fn run_detached_returns_while_the_container_runs() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.probe(&["sleep", "inf"]);
    let id = rt.id("detach");
    let out = rt.run_detached(&id, &b);
    out.assert_success();
    assert!(out.elapsed < Duration::from_secs(20), "{out}");
    assert_eq!(rt.state_json(&id)["status"], "running");
}

#[test]
fn foreground_run_passes_the_container_stdout_and_stderr() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.args(&["/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2"]);
    let out = rt.run(&rt.id("stdio"), &b);
    out.assert_success();
    assert_eq!(out.stdout, "to-stdout\n", "{out}");
    assert!(out.stderr.contains("to-stderr"), "{out}");
    assert!(!out.stdout.contains("to-stderr"), "{out}");
}

#[test]
fn concurrent_creates_of_one_id_have_exactly_one_winner() {
    require_root!();
    let rt = Runtime::new();
    let (b1, b2) = (rt.bundle(), rt.bundle());
    let id = rt.id("race");
    let (o1, o2) = thread::scope(|s| {
        let t1 = s.spawn(|| rt.create(&id, &b1));
        let t2 = s.spawn(|| rt.create(&id, &b2));
        (t1.join().unwrap(), t2.join().unwrap())
    });
    let (winner, loser) = match (o1.success(), o2.success()) {
        (true, false) => (o1, o2),
        (false, true) => (o2, o1),
        _ => panic!("expected exactly one success:\n{o1}\n{o2}"),
    };
    assert!(loser.stderr.contains("already exists"), "{loser}");
    let st = rt.state_json(&id);
    assert_eq!(st["status"], "created", "{winner}");
}

#[test]
fn state_dir_holds_exec_fifo_only_until_start() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.probe(&["sleep", "inf"]);
    let id = rt.id("fifo");
    rt.create(&id, &b).assert_success();
    let dir = rt.root().join(&id);
    assert!(dir.join("state.json").is_file());
    let fifo = fs::metadata(dir.join("exec.fifo")).expect("exec.fifo after create");
    assert!(fifo.file_type().is_fifo());
    rt.start(&id).assert_success();
    assert!(dir.join("state.json").is_file());
    assert!(
        !dir.join("exec.fifo").exists(),
        "exec.fifo left after start"
    );
}

/// Runs the runtime with `file` as its fd 3 (and `env`), stdout to a file; returns
/// (status, stdout, stderr).
fn run_with_fd3(
    rt: &Runtime,
    args: &[&str],
    file: &File,
    env: &[(&str, &str)],
) -> (ExitStatus, String, String) {
    let out = unique(rt.dir().join("fd3.out"));
    let err = unique(rt.dir().join("fd3.err"));
    let mut cmd = rt.command();
    cmd.args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(File::create(&out).unwrap())
        .stderr(File::create(&err).unwrap());
    let raw = file.as_raw_fd();
    // SAFETY: the closure only calls async-signal-safe dup2/fcntl on fds it owns.
    unsafe {
        cmd.pre_exec(move || {
            if raw == 3 {
                if libc::fcntl(3, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            } else if libc::dup2(raw, 3) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().unwrap();
    let status = wait_child(&mut child, Duration::from_secs(60));
    (
        status,
        fs::read_to_string(out).unwrap(),
        fs::read_to_string(err).unwrap(),
    )
}

fn fd_target(report: &Value, fd: i64) -> Option<String> {
    report["fds"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["fd"] == fd)
        .map(|f| f["target"].as_str().unwrap().to_owned())
}

#[test]
fn preserve_fds_passes_an_extra_fd_to_the_container() {
    require_root!();
    let rt = Runtime::new();
    let b = rt.bundle();
    let extra = rt.dir().join("extra-fd-file");
    let file = File::create(&extra).unwrap();
    let bundle = b.path().display().to_string();

    let id = rt.id("preserve");
    let (st, out, err) = run_with_fd3(
        &rt,
        &["run", "--preserve-fds", "1", "--bundle", &bundle, &id],
        &file,
        &[],
    );
    assert!(st.success(), "{st}: {err}");
    let report = last_json(&out);
    let target = fd_target(&report, 3).unwrap_or_else(|| panic!("fd 3 not open: {report}"));
    assert!(target.ends_with("extra-fd-file"), "fd 3 -> {target}");

    // Without the flag the same fd is closed at exec.
    let id = rt.id("nopreserve");
    let (st, out, err) = run_with_fd3(&rt, &["run", "--bundle", &bundle, &id], &file, &[]);
    assert!(st.success(), "{st}: {err}");
    assert_eq!(fd_target(&last_json(&out), 3), None, "fd 3 leaked");
}

#[test]
fn listen_fds_passes_the_fd_and_sets_listen_env() {
    require_root!();
    let rt = Runtime::new();
    let b = rt.bundle();
    let extra = rt.dir().join("listen-fd-file");
    let file = File::create(&extra).unwrap();
    let bundle = b.path().display().to_string();
    let id = rt.id("listen");
    let (st, out, err) = run_with_fd3(
        &rt,
        &["run", "--bundle", &bundle, &id],
        &file,
        &[("LISTEN_FDS", "1"), ("LISTEN_PID", "12345")],
    );
    assert!(st.success(), "{st}: {err}");
    let report = last_json(&out);
    let target = fd_target(&report, 3).unwrap_or_else(|| panic!("fd 3 not open: {report}"));
    assert!(target.ends_with("listen-fd-file"), "fd 3 -> {target}");
    assert_eq!(report["env"]["LISTEN_FDS"], "1");
    assert_eq!(
        report["env"]["LISTEN_PID"],
        report["pid"].to_string(),
        "LISTEN_PID must be the container process's own pid: {}",
        report["env"]
    );
}

/// Reads `f` in a thread until EOF/EIO; the text arrives on the returned channel.
fn read_all_in_thread(mut f: File) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            match f.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
}

#[test]
fn console_socket_receives_the_pty_master() {
    require_root!();
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set("/process/terminal", json!(true));
    let sock = ConsoleSocket::bind(rt.dir().join("console.sock"));
    let id = rt.id("console");
    let path = sock.path().display().to_string();
    rt.create_with(&id, &b, &["--console-socket", &path])
        .assert_success();
    let master = sock.master(WAIT);
    let text = read_all_in_thread(master);
    rt.start(&id).assert_success();
    let text = text
        .recv_timeout(WAIT)
        .expect("pty output until the probe exits");
    let report = last_json(&text);
    for fd in ["stdin", "stdout", "stderr"] {
        assert_eq!(report["tty"][fd]["isatty"], true, "{fd}: {}", report["tty"]);
    }
    assert_eq!(report["tty"]["stdout"]["ttyname"], "/dev/pts/0");
    assert!(
        report["tty"]["controlling"].is_string(),
        "{}",
        report["tty"]
    );
}

#[test]
fn foreground_run_with_terminal_relays_the_pty() {
    require_root!();
    if !Path::new("/usr/bin/script").exists() {
        eprintln!("skipped: needs script(1) from util-linux");
        return;
    }
    let rt = Runtime::new();
    let mut b = rt.bundle();
    b.set("/process/terminal", json!(true));
    let id = rt.id("relay");
    let inner = format!(
        "{} --root {} run --bundle {} {id}",
        rt.binary().display(),
        rt.root().display(),
        b.path().display()
    );
    let out_path = rt.dir().join("script.out");
    let mut child = std::process::Command::new("/usr/bin/script")
        .args(["-qec", &inner, "/dev/null"])
        .env(common::bundle::TOKEN_ENV, rt.token())
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_child(&mut child, Duration::from_secs(60));
    let text = fs::read_to_string(&out_path).unwrap();
    assert!(status.success(), "{status}:\n{text}");
    let report = last_json(&text);
    assert_eq!(report["tty"]["stdout"]["isatty"], true, "{}", report["tty"]);
    // The container's own pty (devpts newinstance), not script's host pty.
    assert_eq!(report["tty"]["stdout"]["ttyname"], "/dev/pts/0");
}
