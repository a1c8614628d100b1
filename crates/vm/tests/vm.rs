//! Boots real micro-VMs (QEMU microvm, TCG unless KVM works). Needs root,
//! qemu-system-x86_64 and scripts/fetch-kernel.sh's cache; without them each test prints
//! `SKIP: ...` and passes (unless `BERTH_REQUIRE_VM` is set, as `scripts/test.sh` does
//! once it has fetched the kernel). Each boot takes a few seconds under TCG: keep these few.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use berth_vm::{ExitStatus, Kernel, RunRequest, Vm, VmConfig, VmError};

/// Why VMs cannot run here, if they cannot.
fn skip_reason() -> Option<String> {
    if !nix_is_root() {
        return Some("not root".into());
    }
    if Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("qemu-system-x86_64 missing (apt-get install qemu-system-x86)".into());
    }
    if let Err(e) = Kernel::locate(None) {
        return Some(e.to_string());
    }
    for (tool, arg) in [("mkfs.ext4", "-V"), ("qemu-img", "--version")] {
        if !Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(format!("{tool} missing"));
        }
    }
    if !Path::new("/bin/busybox").is_file() {
        return Some("/bin/busybox missing (busybox-static)".into());
    }
    None
}

fn nix_is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
}

macro_rules! require_vm {
    () => {
        if let Some(why) = skip_reason() {
            // The test command installs QEMU and fetches the kernel: there, a missing
            // piece is a failure, not a skip.
            if std::env::var_os("BERTH_REQUIRE_VM").is_some() {
                panic!("BERTH_REQUIRE_VM is set but the VM tests cannot run: {why}");
            }
            eprintln!("\n\n*** SKIP: {}: {why} ***\n", module_path!());
            return;
        }
    };
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The static guest agent, built once per test process (`BERTH_GUEST_AGENT` overrides).
fn agent() -> &'static Path {
    static AGENT: OnceLock<PathBuf> = OnceLock::new();
    AGENT.get_or_init(|| {
        if let Some(p) = std::env::var_os("BERTH_GUEST_AGENT") {
            return PathBuf::from(p);
        }
        let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
        let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(d) => PathBuf::from(d).join("guest-agent"),
            None => workspace_root().join("target/guest-agent"),
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(&cargo)
            .current_dir(workspace_root())
            .args([
                "build",
                "--quiet",
                "--release",
                "-p",
                "berth-guest-agent",
                "--target",
            ])
            .arg(&triple)
            .arg("--target-dir")
            .arg(&target_dir)
            // --target keeps the static flags off build scripts and proc macros.
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .output()
            .expect("running cargo to build berth-guest-agent");
        assert!(
            out.status.success(),
            "building the static guest agent failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        target_dir.join(triple).join("release/berth-guest-agent")
    })
}

/// A busybox root directory shared by the tests (its base image is cached once).
fn busybox_rootfs() -> &'static Path {
    static ROOTFS: OnceLock<tempfile::TempDir> = OnceLock::new();
    ROOTFS
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap();
            let bin = dir.path().join("bin");
            for d in ["bin", "proc", "sys", "dev", "tmp", "etc", "work"] {
                std::fs::create_dir_all(dir.path().join(d)).unwrap();
            }
            std::fs::copy("/bin/busybox", bin.join("busybox")).unwrap();
            let list = Command::new("/bin/busybox").arg("--list").output().unwrap();
            for applet in String::from_utf8_lossy(&list.stdout).lines() {
                if !applet.is_empty() && applet != "busybox" && !applet.contains('/') {
                    std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
                }
            }
            dir
        })
        .path()
}

/// A Vm with caches in a per-process temp dir.
fn vm() -> Vm {
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let cache = CACHE.get_or_init(|| tempfile::tempdir().unwrap());
    Vm::new(VmConfig {
        agent: Some(agent().to_path_buf()),
        cache_dir: cache.path().to_path_buf(),
        timeout: Duration::from_secs(90),
        ..VmConfig::default()
    })
    .expect("preparing the VM")
}

fn req(args: &[&str]) -> RunRequest {
    RunRequest::new(args.iter().copied())
}

#[test]
fn echo_hello_and_exit_codes() {
    require_vm!();
    let vm = vm();
    let out = vm.run(busybox_rootfs(), req(&["echo", "hello"])).unwrap();
    assert_eq!(out.status, ExitStatus::Code(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\n");
    assert!(out.stderr.is_empty());

    let out = vm
        .run(
            busybox_rootfs(),
            req(&["sh", "-c", "echo x > /tmp/written; echo oops >&2; exit 3"]),
        )
        .unwrap();
    assert_eq!(out.status, ExitStatus::Code(3));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "oops\n");

    // Each VM writes to its own overlay: the base image is untouched.
    let out = vm
        .run(busybox_rootfs(), req(&["test", "-e", "/tmp/written"]))
        .unwrap();
    assert_eq!(out.status, ExitStatus::Code(1));

    let err = vm
        .run(busybox_rootfs(), req(&["no-such-command"]))
        .unwrap_err();
    assert!(
        matches!(&err, VmError::Guest(m) if m.contains("no-such-command: not found")),
        "{err}"
    );
}

#[test]
fn env_cwd_and_user_are_honoured() {
    require_vm!();
    let vm = vm();
    let mut r = req(&["sh", "-c", "echo $GREETING; pwd; id -u; id -g; hostname"]);
    r.env = vec!["GREETING=hi there".into(), "PATH=/bin".into()];
    r.cwd = "/work".into();
    r.uid = 1000;
    r.gid = 1001;
    r.hostname = Some("berth-guest".into());
    let out = vm.run(busybox_rootfs(), r).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hi there\n/work\n1000\n1001\nberth-guest\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status, ExitStatus::Code(0));
}

#[test]
fn guest_panic_is_a_clear_error_and_vm_dir_is_removed() {
    require_vm!();
    let vm = vm();
    let running = vm
        .start(
            busybox_rootfs(),
            req(&["sh", "-c", "echo c > /proc/sysrq-trigger"]),
        )
        .unwrap();
    let dir = running.dir().to_path_buf();
    assert!(dir.join("root.qcow2").is_file());
    let err = running.wait().unwrap_err();
    assert!(
        matches!(&err, VmError::Died { console } if console.contains("Kernel panic")),
        "{err}"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn qmp_reports_status_and_quit_kills_the_vm() {
    require_vm!();
    let vm = vm();
    let running = vm.start(busybox_rootfs(), req(&["sleep", "600"])).unwrap();
    let dir = running.dir().to_path_buf();
    let pid = running.pid();
    let mut qmp = running.qmp().unwrap();
    assert_eq!(qmp.status().unwrap(), "running");
    qmp.quit().unwrap();
    let err = running.wait().unwrap_err();
    assert!(matches!(err, VmError::Died { .. }), "{err}");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "qemu {pid} still there"
    );
    assert!(!dir.exists(), "{} left behind", dir.display());
}

#[test]
fn signals_are_forwarded_to_the_command() {
    require_vm!();
    let vm = vm();
    let mut running = vm.start(busybox_rootfs(), req(&["sleep", "600"])).unwrap();
    running.signal(15).unwrap();
    let out = running.wait().unwrap();
    assert_eq!(out.status, ExitStatus::Signal(15));
}

#[test]
fn timeout_kills_the_vm_and_cleans_up() {
    require_vm!();
    static CACHE: OnceLock<tempfile::TempDir> = OnceLock::new();
    let run_dir = tempfile::tempdir().unwrap();
    let vm = Vm::new(VmConfig {
        agent: Some(agent().to_path_buf()),
        cache_dir: CACHE
            .get_or_init(|| tempfile::tempdir().unwrap())
            .path()
            .into(),
        run_dir: run_dir.path().into(),
        timeout: Duration::from_millis(500),
        ..VmConfig::default()
    })
    .unwrap();
    let err = vm
        .run(busybox_rootfs(), req(&["sleep", "600"]))
        .unwrap_err();
    assert!(matches!(err, VmError::Timeout(_)), "{err}");
    let left: Vec<_> = std::fs::read_dir(run_dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}
