//! End-to-end tests of `berth pull` against a real `docker-registry` on 127.0.0.1
//! (as root): concurrent pulls, prune during a pull, a pull killed mid-download,
//! concurrent first runs, and hostile layers (decompression bomb, a blob whose
//! content is not its digest, tar escapes), each of which must fail with a clear
//! error, leave no blob, snapshot or mount, and write nothing outside the store.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use berth_engine::build::{busybox_layer, LayerBuilder, HOST_BUSYBOX};
use berth_engine::lock::PullLock;
use berth_image::{Reference, RegistryClient, RegistryOptions, RunConfig};
use berth_snapshot::Kind;
use common::{Registry, Root, BERTH};
use tar::{EntryType, Header};

fn busybox() -> Vec<u8> {
    busybox_layer(Path::new(HOST_BUSYBOX)).unwrap()
}

/// Imports `layers` into `source` and pushes them as `<registry>/test/<name>`;
/// returns the pushed name.
fn push(registry: &Registry, source: &Root, name: &str, layers: &[Vec<u8>]) -> String {
    let local = format!("localhost/src/{name}");
    source.import(&local, layers, RunConfig::default());
    let engine = source.engine();
    let (_, digest) = engine.resolve_image(&local).unwrap();
    let target: Reference = format!("{}/test/{name}", registry.addr).parse().unwrap();
    RegistryClient::new(RegistryOptions::default())
        .push(&target, engine.blobs(), &digest)
        .unwrap();
    target.to_string()
}

fn spawn_berth(root: &Root, args: &[&str]) -> Child {
    Command::new(BERTH)
        .arg("--root")
        .arg(root.path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn finish(child: Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Kills a child on drop (a test that fails must not leave a `berth` behind).
struct Reaper(Option<Child>);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn ingest_files(root: &Root) -> Vec<(String, u64)> {
    fs::read_dir(root.path().join("ingest"))
        .map(|rd| {
            rd.flatten()
                .map(|e| {
                    let len = e.metadata().map(|m| m.len()).unwrap_or(0);
                    (e.file_name().to_string_lossy().into_owned(), len)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every stored blob hashes to its name.
fn assert_store_consistent(root: &Root) {
    let engine = root.engine();
    for d in engine.blobs().list().unwrap() {
        engine
            .blobs()
            .verify(&d)
            .unwrap_or_else(|e| panic!("corrupt blob: {e}"));
    }
}

/// Deterministic incompressible bytes.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn concurrent_pulls_of_images_sharing_layers_both_succeed() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some(source) = Root::new() else { return };
    let Some(root) = Root::new() else { return };
    let base = busybox();
    let shared = LayerBuilder::new()
        .file("shared", &noise(2 << 20), 0o644)
        .finish();
    let a = push(
        &registry,
        &source,
        "a:1",
        &[
            base.clone(),
            shared.clone(),
            LayerBuilder::new().file("a", b"a\n", 0o644).finish(),
        ],
    );
    let b = push(
        &registry,
        &source,
        "b:1",
        &[
            base,
            shared,
            LayerBuilder::new().file("b", b"b\n", 0o644).finish(),
        ],
    );
    for round in 0..3 {
        let pulls = [
            Reaper(Some(spawn_berth(&root, &["pull", &a]))),
            Reaper(Some(spawn_berth(&root, &["pull", &b]))),
        ];
        for mut p in pulls {
            let (code, text) = finish(p.0.take().unwrap());
            assert_eq!(code, 0, "round {round}: {text}");
        }
        assert_store_consistent(&root);
        assert!(ingest_files(&root).is_empty(), "{:?}", ingest_files(&root));
        // base, base+shared, +a, +b: shared chains are unpacked once.
        assert_eq!(root.committed().len(), 4, "{:?}", root.committed());
        let (code, out, err) = root.run(&["run", "--rm", &a, "cat", "/a"]);
        assert_eq!((code, out.as_str()), (0, "a\n"), "{err}");
        let (code, out, err) = root.run(&["run", "--rm", &b, "cat", "/b"]);
        assert_eq!((code, out.as_str()), (0, "b\n"), "{err}");
        if round < 2 {
            root.ok(&["rmi", &a]);
            root.ok(&["rmi", &b]);
            assert_eq!(root.blob_count(), 0);
            assert!(root.committed().is_empty());
        }
    }
    root.assert_no_containers();
}

#[test]
fn pull_draws_bars_on_a_terminal_and_lines_otherwise() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some(source) = Root::new() else { return };
    let Some(root) = Root::new() else { return };
    if !Path::new("/usr/bin/script").exists() {
        eprintln!("SKIP: script(1) missing (bsdutils)");
        return;
    }
    let name = push(&registry, &source, "bars:1", &[busybox()]);
    let (code, _, err) = root.run(&["pull", &name]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "config and layer: {err}");
    assert!(lines
        .iter()
        .all(|l| l.starts_with("sha256:") && l.contains(" done ")));
    assert!(lines.iter().any(|l| l.ends_with(" B")), "{err}");
    assert!(lines.iter().any(|l| l.ends_with(" MB")), "{err}");
    root.ok(&["rmi", &name]);
    // On a pseudo-terminal: bars with a rate.
    let command = format!("{BERTH} --root {} pull {name}", root.path().display());
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("[====="), "{text}");
    assert!(text.contains("B/s"), "{text}");
    assert!(text.contains("done"), "{text}");
}

#[test]
fn prune_and_rmi_wait_for_a_pull_in_flight() {
    let Some(root) = Root::new() else { return };
    root.ok(&["image", "default"]);
    // What a pull has stored but not yet named: unreferenced for now.
    let engine = root.engine();
    let pulling = PullLock::shared(root.path()).unwrap();
    let pending = engine.blobs().put_bytes(b"a layer being pulled").unwrap();
    let prune = Reaper(Some(spawn_berth(&root, &["system", "prune"])));
    let rmi = Reaper(Some(spawn_berth(&root, &["rmi", "busybox"])));
    std::thread::sleep(Duration::from_millis(800));
    assert!(engine.blobs().has(&pending), "prune deleted a pulled blob");
    let mut waiting = [prune, rmi];
    for r in waiting.iter_mut() {
        assert!(
            r.0.as_mut().unwrap().try_wait().unwrap().is_none(),
            "prune/rmi did not wait for the pull"
        );
    }
    drop(pulling);
    for mut r in waiting {
        let (code, text) = finish(r.0.take().unwrap());
        assert_eq!(code, 0, "{text}");
    }
    assert!(!engine.blobs().has(&pending), "prune ran after the pull");
    assert_eq!(root.blob_count(), 0);
}

#[test]
fn a_pull_killed_mid_download_leaves_no_corrupt_blob_and_the_next_one_succeeds() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some(source) = Root::new() else { return };
    let Some(root) = Root::new() else { return };
    let big = LayerBuilder::new()
        .file("big", &noise(32 << 20), 0o644)
        .finish();
    let name = push(&registry, &source, "big:1", &[busybox(), big]);
    drop(source);

    let mut pull = Reaper(Some(spawn_berth(&root, &["pull", &name])));
    let deadline = Instant::now() + Duration::from_secs(60);
    // Kill it once a layer is partly downloaded.
    loop {
        if ingest_files(&root).iter().any(|(_, len)| *len > 4 << 20) {
            break;
        }
        let child = pull.0.as_mut().unwrap();
        assert!(
            child.try_wait().unwrap().is_none(),
            "pull ended before it could be killed"
        );
        assert!(Instant::now() < deadline, "no download seen");
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut child = pull.0.take().unwrap();
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!ingest_files(&root).is_empty(), "the kill came too late");
    assert_store_consistent(&root);
    let (code, out, err) = root.run(&["images"]);
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("test/big"), "half-pulled image listed: {out}");

    let (code, out, err) = root.run(&["pull", &name]);
    assert_eq!(code, 0, "{out}{err}");
    assert_store_consistent(&root);
    assert!(ingest_files(&root).is_empty(), "{:?}", ingest_files(&root));
    let (code, out, err) = root.run(&["run", "--rm", &name, "wc", "-c", "/big"]);
    assert_eq!((code, out.trim()), (0, "33554432 /big"), "{err}");
    root.assert_no_containers();
}

#[test]
fn concurrent_first_runs_of_a_new_image_unpack_once() {
    let Some(root) = Root::new() else { return };
    root.import(
        "localhost/fresh:1",
        &[
            busybox(),
            LayerBuilder::new()
                .file("data", &noise(4 << 20), 0o644)
                .finish(),
        ],
        RunConfig::default(),
    );
    assert!(root.committed().is_empty());
    let runs: Vec<Reaper> = (0..3)
        .map(|_| {
            Reaper(Some(spawn_berth(
                &root,
                &["run", "--rm", "localhost/fresh:1", "wc", "-c", "/data"],
            )))
        })
        .collect();
    for mut r in runs {
        let (code, text) = finish(r.0.take().unwrap());
        assert_eq!(code, 0, "{text}");
        assert!(text.contains("4194304 /data"), "{text}");
    }
    assert_eq!(root.committed().len(), 2);
    assert!(root.snapshots(Kind::Active).is_empty());
    root.assert_no_containers();
}

// ---- hostile layers ----

/// A tar whose names and link targets are written raw, unchecked.
struct RawTar(tar::Builder<Vec<u8>>);

impl RawTar {
    fn new() -> Self {
        Self(tar::Builder::new(Vec::new()))
    }

    fn entry(mut self, kind: EntryType, path: &str, link: &str, data: &[u8]) -> Self {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        if matches!(kind, EntryType::Char | EntryType::Block) {
            h.set_device_major(1).unwrap();
            h.set_device_minor(3).unwrap();
        }
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn file(self, path: &str, data: &[u8]) -> Self {
        self.entry(EntryType::Regular, path, "", data)
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// Nothing of a failed pull is left: no blob, snapshot, mount, ingest file or name.
fn assert_nothing_left(root: &Root, name: &str) {
    assert_eq!(root.blob_count(), 0, "blobs left after the failed pull");
    let snapshots = root.engine().snapshots().list().unwrap();
    assert!(snapshots.is_empty(), "snapshots left: {snapshots:?}");
    assert!(root.mounts().is_empty(), "{:?}", root.mounts());
    assert!(ingest_files(root).is_empty(), "{:?}", ingest_files(root));
    let (code, out, _) = root.run(&["images"]);
    assert_eq!(code, 0);
    let repository = name.rsplit_once(':').unwrap().0;
    assert!(!out.contains(repository), "{out}");
}

/// Pulls `name`, which must fail with an error containing `expect`; then runs the
/// same layers imported locally (as `load` would bring them), which must fail too.
fn assert_refused(root: &Root, name: &str, layers: &[Vec<u8>], expect: &str) {
    let (code, out, err) = root.run(&["pull", name]);
    assert_ne!(code, 0, "hostile pull of {name} succeeded: {out}{err}");
    assert!(err.contains(expect), "pull of {name}: {err}");
    assert_nothing_left(root, name);
    root.import("localhost/hostile:1", layers, RunConfig::default());
    let (code, out, err) = root.run(&["run", "--rm", "localhost/hostile:1", "true"]);
    assert_ne!(code, 0, "hostile run succeeded: {out}{err}");
    assert!(err.contains(expect), "run of {name}: {err}");
    // The good base layer stays unpacked (the image is still named); nothing else.
    assert!(
        root.committed().len() < layers.len(),
        "{:?}",
        root.committed()
    );
    root.assert_no_containers();
    root.ok(&["rmi", "localhost/hostile:1"]);
    assert_eq!(root.blob_count(), 0);
    assert!(root.committed().is_empty());
}

#[test]
fn hostile_tar_layers_are_refused_end_to_end() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some(source) = Root::new() else { return };
    let Some(root) = Root::new() else { return };
    let outside = tempfile::Builder::new()
        .prefix("berth-outside-")
        .tempdir()
        .unwrap();
    let host = outside.path().to_str().unwrap().to_owned();
    let victim = outside.path().join("victim");
    fs::write(&victim, b"host file").unwrap();
    let victim_s = victim.to_str().unwrap().to_owned();
    let up = "../".repeat(12);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot",
            RawTar::new()
                .file(&format!("{up}{}/dotdot", &host[1..]), b"x")
                .finish(),
            "escapes the layer",
        ),
        (
            "absolute",
            RawTar::new().file(&format!("{host}/abs"), b"x").finish(),
            "escapes the layer",
        ),
        (
            "symlink-out",
            RawTar::new()
                .entry(EntryType::Symlink, "out", &host, b"")
                .file("out/through", b"x")
                .finish(),
            "is a symlink",
        ),
        (
            "hardlink-out",
            RawTar::new()
                .entry(EntryType::Link, "hl", &victim_s, b"")
                .finish(),
            "escapes the layer",
        ),
        (
            "hardlink-dotdot",
            RawTar::new()
                .entry(
                    EntryType::Link,
                    "hl",
                    &format!("{up}{}", &victim_s[1..]),
                    b"",
                )
                .finish(),
            "escapes the layer",
        ),
        (
            "device",
            RawTar::new()
                .entry(EntryType::Char, "dev/mem", "", b"")
                .finish(),
            "device nodes are not allowed",
        ),
    ];
    for (what, layer, expect) in cases {
        let layers = [busybox(), layer];
        let name = push(&registry, &source, &format!("{what}:1"), &layers);
        assert_refused(&root, &name, &layers, expect);
        let leaked: Vec<_> = fs::read_dir(outside.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leaked, vec!["victim"], "{what}: written outside the store");
        assert_eq!(fs::read(&victim).unwrap(), b"host file");
        use std::os::unix::fs::MetadataExt;
        assert_eq!(fs::metadata(&victim).unwrap().nlink(), 1, "{what}");
    }
}

#[test]
fn a_decompression_bomb_is_stopped_by_the_size_and_entry_limits() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some(source) = Root::new() else { return };
    let Some(root) = Root::new() else { return };
    // 64 MiB of zeros, gzipped to a few tens of KiB, declared as a normal file.
    let bomb = LayerBuilder::new()
        .file("zeros", &vec![0u8; 64 << 20], 0o644)
        .finish();
    let layers = [busybox(), bomb];
    let name = push(&registry, &source, "bomb:1", &layers);
    let (code, out, err) = root.run(&["pull", &name]);
    assert_eq!(
        code, 0,
        "under the default limits it is a normal layer: {out}{err}"
    );
    root.ok(&["rmi", &name]);
    assert_eq!(root.blob_count(), 0);
    assert!(root.committed().is_empty());

    let limited = |args: &[&str], var: &str, value: &str| {
        let out = Command::new(BERTH)
            .arg("--root")
            .arg(root.path())
            .args(args)
            .env(var, value)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = limited(&["pull", &name], "BERTH_LAYER_MAX_BYTES", "16777216");
    assert_ne!(code, 0);
    assert!(
        err.contains("layer exceeds 16777216 uncompressed bytes"),
        "{err}"
    );
    assert_nothing_left(&root, &name);

    let many = (0..300).fold(RawTar::new(), |t, i| t.file(&format!("f{i}"), b""));
    let layers = [many.finish()];
    let name = push(&registry, &source, "many:1", &layers);
    let (code, err) = limited(&["pull", &name], "BERTH_LAYER_MAX_ENTRIES", "100");
    assert_ne!(code, 0);
    assert!(err.contains("layer exceeds 100 entries"), "{err}");
    assert_nothing_left(&root, &name);
}

#[test]
fn a_blob_whose_content_is_not_its_digest_is_refused() {
    let Some(registry) = Registry::start() else {
        return;
    };
    let Some(source) = Root::new() else { return };
    let Some(root) = Root::new() else { return };
    let layer = LayerBuilder::new()
        .file("payload", &noise(1 << 20), 0o644)
        .finish();
    let name = push(&registry, &source, "tampered:1", &[busybox(), layer]);
    // The registry serves what is on its disk: flip bytes of the top layer
    // (same size, other content).
    let engine = source.engine();
    let (_, digest) = engine.resolve_image("localhost/src/tampered:1").unwrap();
    let (manifest, _) = engine.read_image(&digest).unwrap();
    let top = &manifest.layers[1].digest;
    let file = registry.blob_file(top);
    let mut bytes = fs::read(&file).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid..mid + 16].iter_mut().for_each(|b| *b ^= 0xff);
    fs::write(&file, &bytes).unwrap();

    let (code, out, err) = root.run(&["pull", &name]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(
        err.contains(&format!("fetching blob {top}")) && err.contains("digest mismatch"),
        "{err}"
    );
    assert_nothing_left(&root, &name);
}
