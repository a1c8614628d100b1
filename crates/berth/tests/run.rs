//! End-to-end tests of the `berth` binary (as root): images built on the machine,
//! containers run in the foreground, and what is left afterwards. Each test has
//! its own `--root` in a temp dir; a guard force-removes its containers, unmounts
//! whatever is still mounted under it and deletes it, even when the test fails.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{Registry, Root, BERTH};

use berth_engine::build::{busybox_layer, LayerBuilder, HOST_BUSYBOX};
use berth_image::{Reference, RegistryClient, RegistryOptions, RunConfig};
use berth_snapshot::Kind;

fn busybox() -> Vec<u8> {
    busybox_layer(Path::new(HOST_BUSYBOX)).unwrap()
}

#[test]
fn default_image_echo_and_exit_codes() {
    let Some(root) = Root::new() else { return };
    let (code, out, err) = root.run(&["run", "--rm", "busybox", "echo", "hi"]);
    assert_eq!((code, out.as_str()), (0, "hi\n"), "stderr: {err}");
    let (code, _, _) = root.run(&["run", "--rm", "busybox", "sh", "-c", "exit 3"]);
    assert_eq!(code, 3);
    root.assert_no_containers();
    assert_eq!(root.snapshots(Kind::Committed).len(), 1);
    let (code, out, _) = root.run(&["images"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("localhost/berth/busybox") && out.contains("latest"),
        "{out}"
    );
    let (_, json, _) = root.run(&["images", "--format", "json"]);
    let images: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(images.as_array().unwrap().len(), 1);
}

#[test]
fn default_image_is_deterministic() {
    let Some(a) = Root::new() else { return };
    let Some(b) = Root::new() else { return };
    let (_, da, _) = a.run(&["image", "default"]);
    let (_, db, _) = b.run(&["image", "default"]);
    assert!(
        da.starts_with("localhost/berth/busybox:latest sha256:"),
        "{da}"
    );
    assert_eq!(da, db);
}

#[test]
fn image_config_and_flags() {
    let Some(root) = Root::new() else { return };
    let app = LayerBuilder::new()
        .dir("srv", 0o755)
        .file("srv/hello", b"hello file\n", 0o644)
        .finish();
    root.import(
        "localhost/app:1",
        &[busybox(), app],
        RunConfig {
            env: Some(vec!["PATH=/bin".into(), "GREETING=hello".into()]),
            working_dir: Some("/srv".into()),
            user: Some("www-data".into()),
            entrypoint: Some(vec!["sh".into(), "-c".into()]),
            cmd: Some(vec!["echo $GREETING; pwd; id -u; id -g; cat hello".into()]),
            ..RunConfig::default()
        },
    );
    let (code, out, err) = root.run(&["run", "--rm", "localhost/app:1"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "hello\n/srv\n33\n33\nhello file\n");

    let env_file = root.path().join("env");
    fs::write(&env_file, "# comment\nFROM_FILE=yes\nGREETING=file\n").unwrap();
    let (code, out, err) = root.run(&[
        "run",
        "--rm",
        "--env-file",
        env_file.to_str().unwrap(),
        "-e",
        "GREETING=bye",
        "-w",
        "/",
        "-u",
        "1234:5678",
        "--hostname",
        "box",
        "localhost/app:1",
        "echo $GREETING $FROM_FILE; pwd; id -u; id -g; hostname",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "bye yes\n/\n1234\n5678\nbox\n");

    let (code, out, err) = root.run(&[
        "run",
        "--rm",
        "--entrypoint",
        "/bin/echo",
        "-u",
        "root",
        "localhost/app:1",
        "x",
    ]);
    assert_eq!((code, out.as_str()), (0, "x\n"), "{err}");
    root.assert_no_containers();
}

#[test]
fn read_only_volumes_and_tmpfs() {
    let Some(root) = Root::new() else { return };
    let vol = root.path().join("vol");
    fs::create_dir(&vol).unwrap();
    fs::write(vol.join("f"), "data\n").unwrap();
    let spec = format!("{}:/data:ro", vol.display());
    let (code, out, err) = root.run(&[
        "run",
        "--rm",
        "--read-only",
        "--tmpfs",
        "/scratch",
        "-v",
        &spec,
        "busybox",
        "sh",
        "-c",
        "cat /data/f; touch /data/g || echo ro-vol; touch /x || echo ro-root; touch /scratch/t && echo tmpfs",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "data\nro-vol\nro-root\ntmpfs\n");
    assert!(!vol.join("g").exists());
    let rw = format!("{}:/data", vol.display());
    let (code, _, err) = root.run(&["run", "--rm", "-v", &rw, "busybox", "touch", "/data/g"]);
    assert_eq!(code, 0, "{err}");
    assert!(vol.join("g").exists());
    root.assert_no_containers();
}

#[test]
fn network_and_limits() {
    let Some(root) = Root::new() else { return };
    let (code, out, _) = root.run(&["run", "--rm", "busybox", "ls", "/sys/class/net"]);
    assert_eq!((code, out.as_str()), (0, "lo\n"));
    let (code, out, _) = root.run(&[
        "run",
        "--rm",
        "--network",
        "host",
        "busybox",
        "readlink",
        "/proc/self/ns/net",
    ]);
    assert_eq!(code, 0);
    let host = fs::read_link("/proc/self/ns/net").unwrap();
    assert_eq!(out.trim(), host.to_string_lossy());
    let (code, out, err) = root.run(&[
        "run",
        "--rm",
        "--memory",
        "64m",
        "--pids-limit",
        "20",
        "busybox",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/memory/memory.limit_in_bytes \
         /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max 2>/dev/null",
    ]);
    assert!(code == 0 || code == 1, "{err}");
    assert!(out.contains("67108864") && out.contains("20"), "{out}");
    root.assert_no_containers();
}

#[test]
fn kept_container_shows_in_ps_and_rm_removes_it() {
    let Some(root) = Root::new() else { return };
    let (code, _, _) = root.run(&["run", "--name", "keep", "busybox", "sh", "-c", "exit 7"]);
    assert_eq!(code, 7);
    assert_eq!(root.container_dirs().len(), 1);
    assert_eq!(root.mounts(), Vec::<String>::new(), "root left mounted");
    let (_, out, _) = root.run(&["ps"]);
    assert!(!out.contains("keep"), "{out}");
    let (_, out, _) = root.run(&["ps", "-a"]);
    assert!(out.contains("keep") && out.contains("Exited (7)"), "{out}");
    let (_, json, _) = root.run(&["ps", "-a", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(list[0]["status"], "exited");
    assert_eq!(list[0]["exit_code"], 7);
    let (code, _, err) = root.run(&["run", "--name", "keep", "busybox", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("already in use"), "{err}");
    let (code, _, err) = root.run(&["rm", "keep"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = root.run(&["rm", "keep"]);
    assert_eq!(code, 1);
    assert!(err.contains("no such container"), "{err}");
    root.assert_no_containers();
}

#[test]
fn concurrent_runs_on_a_fresh_root() {
    let Some(root) = Root::new() else { return };
    let children: Vec<_> = (0..4)
        .map(|i| {
            Command::new(BERTH)
                .arg("--root")
                .arg(root.path())
                .args(["run", "--rm", "busybox", "echo"])
                .arg(i.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (i, child) in children.into_iter().enumerate() {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{err}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{i}\n"));
    }
    assert_eq!(root.snapshots(Kind::Committed).len(), 1);
    root.assert_no_containers();
}

#[test]
fn rm_force_kills_a_running_container() {
    let Some(root) = Root::new() else { return };
    let child = Command::new(BERTH)
        .arg("--root")
        .arg(root.path())
        .args(["run", "--name", "sleeper", "busybox", "sleep", "60"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !root.run(&["ps"]).1.contains("sleeper") {
        assert!(Instant::now() < deadline, "never showed as running");
        std::thread::sleep(Duration::from_millis(50));
    }
    let (code, _, err) = root.run(&["rm", "sleeper"]);
    assert_eq!(code, 1);
    assert!(err.contains("is running"), "{err}");
    let (code, _, err) = root.run(&["rm", "-f", "sleeper"]);
    assert_eq!(code, 0, "{err}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(128 + 9),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    root.assert_no_containers();
}

#[test]
fn images_sharing_a_layer_share_its_snapshot() {
    let Some(root) = Root::new() else { return };
    let base = busybox();
    let extra = LayerBuilder::new().file("extra", b"1\n", 0o644).finish();
    root.import(
        "localhost/one:1",
        std::slice::from_ref(&base),
        RunConfig::default(),
    );
    root.import("localhost/two:1", &[base, extra], RunConfig::default());
    for image in ["localhost/one:1", "localhost/two:1"] {
        let (code, _, err) = root.run(&["run", "--rm", image, "true"]);
        assert_eq!(code, 0, "{image}: {err}");
    }
    let (code, out, _) = root.run(&["run", "--rm", "localhost/two:1", "cat", "/extra"]);
    assert_eq!((code, out.as_str()), (0, "1\n"));
    assert_eq!(root.snapshots(Kind::Committed).len(), 2);
    root.assert_no_containers();
}

#[test]
fn hostile_layer_fails_and_leaves_nothing() {
    let Some(root) = Root::new() else { return };
    let evil = LayerBuilder::new().raw_file("../x", b"owned\n").finish();
    root.import("localhost/evil:1", &[busybox(), evil], RunConfig::default());
    let (code, out, err) = root.run(&["run", "--rm", "localhost/evil:1", "true"]);
    assert_eq!(code, 125, "{out}");
    assert!(
        err.contains("unpacking layer") && err.contains("escapes"),
        "{err}"
    );
    // The good base layer stays committed; nothing else is left.
    assert_eq!(root.snapshots(Kind::Committed).len(), 1);
    root.assert_no_containers();
    assert!(!root.path().join("snapshots/x").exists());
    assert!(!root.path().join("snapshots/snapshots/x").exists());
}

#[test]
fn failing_command_leaves_nothing() {
    let Some(root) = Root::new() else { return };
    let (code, _, err) = root.run(&["run", "busybox", "/nonexistent"]);
    assert_eq!(code, 125);
    assert!(err.contains("/nonexistent"), "{err}");
    let (code, _, err) = root.run(&["run", "--rm", "no/such-image", "true"]);
    assert_eq!(code, 125);
    assert!(err.contains("not found"), "{err}");
    root.assert_no_containers();
}

#[test]
fn pull_from_a_registry_then_run() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some(source) = Root::new() else { return };
    let Some(root) = Root::new() else { return };
    let app = LayerBuilder::new().file("pulled", b"yes\n", 0o644).finish();
    source.import(
        "localhost/src:1",
        &[busybox(), app],
        RunConfig {
            cmd: Some(vec!["cat".into(), "/pulled".into()]),
            ..RunConfig::default()
        },
    );
    let engine = source.engine();
    let (_, digest) = engine.resolve_image("localhost/src:1").unwrap();
    let target: Reference = format!("{}/test/app:v1", registry.addr).parse().unwrap();
    RegistryClient::new(RegistryOptions::default())
        .push(&target, engine.blobs(), &digest)
        .unwrap();

    let name = target.to_string();
    let (code, out, err) = root.run(&["pull", &name]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&digest.to_string()), "{out}");
    assert_eq!(
        err.lines().count(),
        3,
        "one line per blob (config + 2 layers): {err}"
    );
    let (code, out, _) = root.run(&["images"]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("{}/test/app", registry.addr)) && out.contains("v1"),
        "{out}"
    );
    let (code, out, err) = root.run(&["run", "--rm", &name]);
    assert_eq!((code, out.as_str()), (0, "yes\n"), "{err}");
    root.assert_no_containers();
}

#[test]
fn leftovers_of_an_interrupted_create_are_swept() {
    let Some(root) = Root::new() else { return };
    let (code, _, _) = root.run(&["image", "default"]);
    assert_eq!(code, 0);
    // What a `berth run` killed mid-create leaves: a container directory without
    // a record, with its snapshot prepared and mounted, and an unpack in progress.
    let engine = root.engine();
    let id = "f".repeat(64);
    let dir = root.path().join("containers").join(&id);
    fs::create_dir_all(dir.join("rootfs")).unwrap();
    let mounts = engine
        .snapshots()
        .prepare(&format!("container-{id}"), None)
        .unwrap();
    berth_snapshot::mount_all(&mounts, &dir.join("rootfs")).unwrap();
    // (Named after its unpacking process, gone now.)
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let extract = format!("extract-{}-abc", gone.id());
    engine.snapshots().prepare(&extract, None).unwrap();
    let (code, out, err) = root.run(&["run", "--rm", "busybox", "echo", "ok"]);
    assert_eq!((code, out.as_str()), (0, "ok\n"), "{err}");
    root.assert_no_containers();
}

/// A container removed by the command that runs it gets a `volatile` overlay (no
/// sync of the host's filesystem when it goes); one that stays does not, since a
/// volatile upper layer can never be mounted again.
#[test]
fn only_a_foreground_rm_root_is_volatile() {
    let Some(root) = Root::new() else { return };
    let script = "grep ' / overlay ' /proc/mounts | grep -c volatile || true";
    let (code, out, err) = root.run(&["run", "--rm", "busybox", "sh", "-c", script]);
    assert_eq!((code, out.trim()), (0, "1"), "stderr: {err}");
    let (code, out, err) = root.run(&["run", "--name", "kept", "busybox", "sh", "-c", script]);
    assert_eq!((code, out.trim()), (0, "0"), "stderr: {err}");
    // The kept one starts again on its (non-volatile) upper layer.
    let (code, _, err) = root.run(&["start", "kept"]);
    assert_eq!(code, 0, "stderr: {err}");
    let (code, _, err) = root.run(&["rm", "-f", "kept"]);
    assert_eq!(code, 0, "stderr: {err}");
    root.assert_no_containers();
}

/// Podman's default capabilities and a seccomp deny list; `--cap-add`,
/// `--cap-drop` and `--security-opt` change them, and bad values are refused
/// before anything is made.
#[test]
fn capabilities_and_seccomp() {
    let Some(root) = Root::new() else { return };
    let status = "grep -E '^(CapEff|Seccomp):' /proc/self/status";
    let (code, out, err) = root.run(&["run", "--rm", "busybox", "sh", "-c", status]);
    assert_eq!(code, 0, "stderr: {err}");
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
    // NET_BIND_SERVICE SYS_CHROOT SETFCAP.
    assert!(out.contains("CapEff:\t00000000800405fb"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    // New namespaces are denied by the default profile even with SYS_ADMIN…
    let unshare = "unshare -n true && echo made || echo denied";
    let (_, out, _) = root.run(&[
        "run",
        "--rm",
        "--cap-add",
        "sys_admin",
        "busybox",
        "sh",
        "-c",
        unshare,
    ]);
    assert_eq!(out.trim(), "denied");
    // …and allowed without it.
    let (_, out, err) = root.run(&[
        "run",
        "--rm",
        "--cap-add",
        "CAP_SYS_ADMIN",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "sh",
        "-c",
        unshare,
    ]);
    assert_eq!(out.trim(), "made", "stderr: {err}");
    let (_, out, _) = root.run(&[
        "run",
        "--rm",
        "--cap-drop",
        "ALL",
        "--cap-add",
        "NET_RAW",
        "busybox",
        "sh",
        "-c",
        status,
    ]);
    assert!(out.contains("CapEff:\t0000000000002000"), "{out}");
    // A profile file: OCI format, here denying mkdir.
    let profile = root.path().join("profile.json");
    fs::write(
        &profile,
        r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO","errnoRet":1}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let (code, _, err) = root.run(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "mkdir",
        "/d",
    ]);
    assert_ne!(code, 0, "mkdir ran under a profile denying it: {err}");
    assert!(err.contains("not permitted"), "{err}");
    for bad in [
        ["--cap-add", "FLY"],
        ["--security-opt", "label=disable"],
        ["--security-opt", "seccomp=/nonexistent.json"],
    ] {
        let (code, _, err) = root.run(&["run", "--rm", bad[0], bad[1], "busybox", "true"]);
        assert_eq!(code, 125, "{bad:?}: {err}");
        assert!(err.contains(bad[1].trim_start_matches("seccomp=")), "{err}");
    }
    root.assert_no_containers();
}
