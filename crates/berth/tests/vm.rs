//! `berth run --isolation vm` end to end, through the real binary. Needs root,
//! qemu-system-x86_64 and scripts/fetch-kernel.sh's kernel; without them each test
//! prints `SKIP` loudly and passes, unless `BERTH_REQUIRE_VM` is set (scripts/test.sh
//! sets it once it has the kernel): then it fails. Each boot takes seconds under TCG:
//! the tests are few, each packs several checks into one VM, and they run in parallel.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_engine::{Isolation, Phase};
use common::{Root, BERTH};

/// A root for a VM test, or `None` after a loud SKIP (a panic with BERTH_REQUIRE_VM).
fn vm_root() -> Option<Root> {
    common::vm_available().then(Root::new).flatten()
}

fn berth_cmd(root: &Root, args: &[&str]) -> Command {
    let mut cmd = Command::new(BERTH);
    cmd.arg("--root")
        .arg(root.path())
        .args(args)
        .env("BERTH_GUEST_AGENT", common::guest_agent())
        .stdin(Stdio::null());
    cmd
}

fn berth(root: &Root, args: &[&str]) -> (i32, String, String) {
    let out: Output = berth_cmd(root, args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// VM state directories left under the root (the image cache aside).
fn vm_dirs(root: &Root) -> Vec<PathBuf> {
    std::fs::read_dir(root.path().join("vm"))
        .map(|rd| {
            rd.map(|e| e.unwrap().path())
                .filter(|p| p.file_name().unwrap() != "cache")
                .collect()
        })
        .unwrap_or_default()
}

/// QEMU processes whose command line names a file under the root.
fn qemus(root: &Root) -> Vec<i32> {
    let needle = root.path().to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
                && std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.starts_with("qemu"))
        })
        .collect()
}

/// Nothing of any VM is left: no container, state directory, QEMU or cgroup.
fn assert_no_vms(root: &Root, ids: &[String]) {
    root.assert_no_containers();
    assert_eq!(vm_dirs(root), Vec::<PathBuf>::new());
    assert_eq!(qemus(root), Vec::<i32>::new());
    for id in ids {
        for hierarchy in ["", "memory/", "unified/"] {
            let cg = format!("/sys/fs/cgroup/{hierarchy}berth/vm-{id}");
            assert!(!Path::new(&cg).exists(), "{cg} left");
        }
    }
}

/// The id of the only VM state directory, once there is one.
fn wait_for_vm(root: &Root) -> (String, berth_vm::instance::State) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(dir) = vm_dirs(root).first() {
            if let Ok(state) = berth_vm::instance::State::load(dir) {
                let id = dir.file_name().unwrap().to_string_lossy().into_owned();
                return (id, state);
            }
        }
        assert!(Instant::now() < deadline, "no VM appeared");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn output_status_env_cwd_user_volume_memory_readonly_and_nothing_left() {
    let Some(root) = vm_root() else { return };
    let vol = tempfile::tempdir().unwrap();
    std::fs::write(vol.path().join("f"), "from the host\n").unwrap();
    let volume = format!("{}:/data:ro", vol.path().display());
    let script = "echo out; echo err >&2; echo \"FOO=$FOO\"; pwd; id -u; id -g; \
                  cat /data/f; touch /data/x 2>/dev/null && echo data-writable; \
                  grep MemTotal /proc/meminfo; nproc; \
                  touch /rootfile 2>/dev/null && echo root-writable; \
                  touch /scratch/x && echo scratch-ok; exit 3";
    let (code, out, err) = berth(
        &root,
        &[
            "run",
            "--rm",
            "--isolation",
            "vm",
            "-e",
            "FOO=bar",
            "-w",
            "/tmp",
            "-u",
            "1000:1001",
            "-v",
            &volume,
            "--memory",
            "160m",
            "--cpus",
            "1.5",
            "--read-only",
            "--tmpfs",
            "/scratch",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    assert_eq!(code, 3, "stdout: {out}\nstderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..6],
        ["out", "FOO=bar", "/tmp", "1000", "1001", "from the host"],
        "{out}"
    );
    assert!(err.contains("err\n"), "{err}");
    assert!(!out.contains("data-writable"), "{out}");
    assert!(!vol.path().join("x").exists());
    // The guest sees the memory asked for (less what its kernel keeps).
    let mem_kb: u64 = lines[6].split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!((100_000..=160 * 1024).contains(&mem_kb), "{}", lines[6]);
    assert_eq!(lines[7], "2", "--cpus 1.5 is 2 vCPUs");
    // --read-only root, a writable --tmpfs.
    assert_eq!(lines[8], "scratch-ok", "{out}");
    assert_no_vms(&root, &[]);
    assert!(std::fs::read_dir(root.path().join("vm/cache"))
        .unwrap()
        .any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("base-")));
}

#[test]
fn detached_logs_usage_and_stop() {
    let Some(root) = vm_root() else { return };
    let script = "echo started; echo to-err >&2; trap 'echo got-term; exit 7' TERM; \
                  while true; do sleep 0.1; done";
    let (code, out, err) = berth(
        &root,
        &[
            "run",
            "-d",
            "--name",
            "v",
            "--isolation",
            "vm",
            "busybox",
            "sh",
            "-c",
            script,
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let id = out.trim().to_owned();
    root.eventually("the VM's output in the logs", || {
        berth(&root, &["logs", "v"]).1.contains("started")
    });
    let (_, _, log_err) = berth(&root, &["logs", "v"]);
    assert!(log_err.contains("to-err"), "{log_err}");
    // The monitor is QEMU's parent, not the `berth run -d` that has exited.
    let (vm_id, state) = wait_for_vm(&root);
    assert_eq!(vm_id, id);
    assert!(state.alive());
    let record = root.record("v");
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", state.pid)).unwrap();
    let ppid: u32 = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(Some(ppid), record.pid);
    let engine = root.engine();
    let backend = engine.backend(Isolation::Vm);
    assert_eq!(backend.pids(&id).unwrap(), [state.pid]);
    let usage = backend.usage(&id).unwrap();
    assert!(usage.memory_bytes > 0 && usage.cpu_ns > 0, "{usage:?}");
    assert_eq!(usage.memory_limit, Some((256 + 256) << 20));
    assert!(usage.ksm_merged_pages.is_some(), "{usage:?}");
    // The trap runs: SIGTERM reached the command in the guest.
    let (code, out, err) = berth(&root, &["stop", "-t", "60", "v"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(root.record("v").phase, Phase::Exited);
    assert_eq!(root.record("v").exit_code, Some(7));
    assert!(berth(&root, &["logs", "v"]).1.contains("got-term"));
    assert!(!state.alive());
    berth(&root, &["rm", "v"]);
    assert_no_vms(&root, &[id]);
}

#[test]
fn qemu_killed_from_the_host_is_reported_and_cleaned_up() {
    let Some(root) = vm_root() else { return };
    let child = berth_cmd(
        &root,
        &[
            "run",
            "--isolation",
            "vm",
            "busybox",
            "sh",
            "-c",
            "echo up; sleep 600",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let (id, state) = wait_for_vm(&root);
    // Kill it once the command runs (its output came through).
    std::thread::sleep(Duration::from_millis(500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(state.pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("qemu exited (signal: 9") && err.contains("VM ended"),
        "{err}"
    );
    assert_no_vms(&root, &[id]);
}

#[test]
fn guest_panic_is_a_clear_error() {
    let Some(root) = vm_root() else { return };
    let (code, out, err) = berth(
        &root,
        &[
            "run",
            "--rm",
            "--isolation",
            "vm",
            "busybox",
            "sh",
            "-c",
            "echo c > /proc/sysrq-trigger",
        ],
    );
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains("Kernel panic - not syncing: sysrq triggered crash"),
        "{err}"
    );
    assert_no_vms(&root, &[]);
}

#[test]
fn read_write_volumes_are_refused() {
    let Some(root) = vm_root() else { return };
    let vol = tempfile::tempdir().unwrap();
    let volume = format!("{}:/data", vol.path().display());
    let (code, _, err) = berth(
        &root,
        &[
            "run",
            "--rm",
            "--isolation",
            "vm",
            "-v",
            &volume,
            "busybox",
            "true",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("read-only only (add :ro)"), "{err}");
    assert_no_vms(&root, &[]);
}

#[test]
fn interactive_stdin_and_tty() {
    let Some(root) = vm_root() else { return };
    // -i: the host's stdin is the command's, to its very end (the last bytes were
    // once lost to QEMU dropping unread data at a hang-up).
    let mut child = berth_cmd(
        &root,
        &["run", "--rm", "-i", "--isolation", "vm", "busybox", "cat"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let input: Vec<u8> = (0..100_000)
        .flat_map(|i| format!("line {i}\n").into_bytes())
        .collect();
    let mut stdin = child.stdin.take().unwrap();
    let sent = input.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&sent));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stdout == input,
        "{} of {} bytes",
        out.stdout.len(),
        input.len()
    );
    // -t under script(1): a pty in the guest, of the host terminal's size.
    if !Path::new("/usr/bin/script").exists() {
        eprintln!("SKIP: script (util-linux) missing");
        return;
    }
    let probe = "test -t 0 && test -t 1 && echo tty || echo no tty; stty size";
    let cmd = format!(
        "stty rows 33 cols 77; {BERTH} --root {} run --rm -t --isolation vm busybox sh -c '{probe}'",
        root.path().display()
    );
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("BERTH_GUEST_AGENT", common::guest_agent())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.ends_with("tty\n33 77\n") && !text.contains("no tty"),
        "{text:?}"
    );
    assert_no_vms(&root, &[]);
}
