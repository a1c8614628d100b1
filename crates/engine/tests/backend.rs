//! The engine's library API with the container backend's step-by-step lifecycle
//! (create, start, wait, delete), as root; everything is removed even on failure.

use std::path::Path;

use berth_engine::{Engine, Isolation, Phase, RunFlags, RunOptions};

/// Removes every container and the root, even when the test fails.
struct Cleanup(Engine, Option<tempfile::TempDir>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(list) = self.0.list_containers(true) {
            for c in list {
                let _ = self.0.remove(&c.record.id, true);
            }
        }
        if let Some(dir) = self.1.take() {
            let _ = dir.close();
        }
    }
}

fn setup() -> Option<Cleanup> {
    if !nix::unistd::geteuid().is_root() || !Path::new("/bin/busybox").exists() {
        eprintln!("SKIP: needs root and /bin/busybox");
        return None;
    }
    let dir = tempfile::Builder::new()
        .prefix("berth-engine-")
        .tempdir()
        .unwrap();
    Some(Cleanup(Engine::open(dir.path()).unwrap(), Some(dir)))
}

#[test]
fn create_start_wait_delete() {
    let Some(c) = setup() else { return };
    let engine = &c.0;
    let record = engine
        .create(&RunOptions {
            image: "busybox".into(),
            flags: RunFlags {
                command: vec!["sh".into(), "-c".into(), "exit 5".into()],
                ..RunFlags::default()
            },
            ..RunOptions::default()
        })
        .unwrap();
    assert_eq!(record.phase, Phase::Created);
    let bundle = engine.root().join("containers").join(&record.id);
    assert!(bundle.join("config.json").exists());
    let backend = engine.backend(Isolation::Container);
    assert!(!backend.exists(&record.id));
    let pid = backend.create(&record.id, &bundle).unwrap();
    assert!(backend.exists(&record.id));
    backend.start(&record.id).unwrap();
    assert_eq!(backend.wait(&record.id, pid).unwrap(), 5);
    backend.delete(&record.id, false).unwrap();
    engine.remove(&record.id[..12], false).unwrap();
    assert!(!bundle.exists());
    assert!(engine.list_containers(true).unwrap().is_empty());
}

#[test]
fn a_layer_must_match_its_diff_id() {
    use berth_engine::build::LayerBuilder;
    use berth_image::{manifest::media_type, Descriptor, Digest};
    use berth_snapshot::Kind;

    let Some(c) = setup() else { return };
    let engine = &c.0;
    let tar = LayerBuilder::new().file("a", b"a\n", 0o644).finish();
    let digest = engine.blobs().put_bytes(&tar).unwrap();
    let layer = Descriptor::new(media_type::OCI_LAYER_TAR, digest.clone(), tar.len() as u64);
    let lie = Digest::of_bytes(b"some other layer");
    let err = berth_engine::layers::ensure(
        engine.blobs(),
        engine.snapshots(),
        std::slice::from_ref(&layer),
        std::slice::from_ref(&lie),
    )
    .unwrap_err();
    assert!(
        matches!(err, berth_engine::EngineError::DiffIdMismatch { .. }),
        "{err}"
    );
    assert!(engine.snapshots().list().unwrap().is_empty());
    // The true diff id (an uncompressed layer's is its digest) works, once.
    let top = berth_engine::layers::ensure(
        engine.blobs(),
        engine.snapshots(),
        std::slice::from_ref(&layer),
        std::slice::from_ref(&digest),
    )
    .unwrap();
    assert_eq!(top, Some(digest.to_string()));
    let list = engine.snapshots().list().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].kind, Kind::Committed);
}

#[test]
fn process_backend_step_by_step() {
    let Some(c) = setup() else { return };
    let engine = &c.0;
    let record = engine
        .create(&RunOptions {
            image: "busybox".into(),
            isolation: Isolation::Process,
            flags: RunFlags {
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    "read x < /dev/zero; exit 4".into(),
                ],
                pids_limit: Some(20),
                ..RunFlags::default()
            },
            ..RunOptions::default()
        })
        .unwrap();
    let bundle = engine.root().join("containers").join(&record.id);
    let rootfs = bundle.join("rootfs");
    let backend = engine.backend(Isolation::Process);
    assert!(!backend.exists(&record.id));
    let pid = backend.create(&record.id, &bundle).unwrap();
    assert!(backend.exists(&record.id));
    // Created: blocked before exec, already in its cgroup, /proc and /dev mounted.
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap();
    assert_ne!(comm.trim(), "sh");
    assert_eq!(backend.pids(&record.id).unwrap(), vec![pid]);
    let below = berth_engine::mounts::mounts_below(&rootfs);
    assert!(below.contains(&rootfs.join("proc")), "{below:?}");
    assert!(below.contains(&rootfs.join("dev")), "{below:?}");
    backend.start(&record.id).unwrap();
    let usage = backend.usage(&record.id).unwrap();
    assert!(usage.pids >= 1);
    assert!(matches!(
        backend.delete(&record.id, false),
        Err(berth_engine::BackendError::Process(_))
    ));
    backend.kill(&record.id, nix::libc::SIGKILL).unwrap();
    assert_eq!(backend.wait(&record.id, pid).unwrap(), 137);
    backend.delete(&record.id, false).unwrap();
    assert!(!backend.exists(&record.id));
    assert!(berth_engine::mounts::mounts_below(&rootfs).is_empty());
    assert!(!Path::new(&format!("/sys/fs/cgroup/pids/berth/{}", record.id)).exists());
    engine.remove(&record.id, false).unwrap();
    assert!(!bundle.exists());
}
