//! End-to-end tests of the image verbs (as root): tag, rmi, inspect. Each test has
//! its own `--root` in a temp dir; a guard force-removes its containers, unmounts
//! whatever is still mounted under it and deletes it, even when the test fails.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};

mod common;

use berth_engine::build::HOST_BUSYBOX;
use common::{Registry, Root, BERTH};

const DEFAULT: &str = "localhost/berth/busybox:latest";

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

#[test]
fn tag_inspect_and_rmi_by_name() {
    let Some(root) = Root::new() else { return };
    root.ok(&["image", "default"]);
    root.ok(&["tag", DEFAULT, "example.com/a/b:v1"]);
    let v = json(&root.ok(&["inspect", "--type", "image", "example.com/a/b:v1"]));
    let img = &v[0];
    assert_eq!(
        img["repo_tags"],
        serde_json::json!(["example.com/a/b:v1", DEFAULT])
    );
    assert_eq!(img["layers"].as_array().unwrap().len(), 1);
    assert_eq!(img["config"]["config"]["Cmd"], serde_json::json!(["sh"]));
    let id = img["id"].as_str().unwrap().to_owned();
    // By id prefix too, and without --type.
    let by_id = json(&root.ok(&["inspect", &id["sha256:".len()..][..12]]));
    assert_eq!(by_id[0]["digest"], img["digest"]);

    // A tag to a digest reference is refused; an unknown source fails.
    let (code, _, err) = root.run(&["tag", "nosuchimage", "x:y"]);
    assert_ne!(code, 0);
    assert!(err.contains("not found"), "{err}");

    // Two names: removing one only untags.
    let blobs = root.blob_count();
    let out = root.ok(&["rmi", "example.com/a/b:v1"]);
    assert!(out.contains("Untagged: example.com/a/b:v1"), "{out}");
    assert!(!out.contains("Deleted"), "{out}");
    assert_eq!(root.blob_count(), blobs);
    // The last name removes the content.
    let out = root.ok(&["rmi", DEFAULT]);
    assert!(out.contains("Deleted: sha256:"), "{out}");
    assert_eq!(root.blob_count(), 0);
    let (code, _, _) = root.run(&["inspect", "--type", "image", DEFAULT]);
    assert_eq!(code, 1);
    let (code, _, err) = root.run(&["rmi", "nosuch"]);
    assert_eq!(code, 1);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn rmi_refuses_an_image_in_use_unless_forced_and_keeps_shared_content() {
    let Some(root) = Root::new() else { return };
    root.ok(&["image", "default"]);
    root.ok(&["run", "--name", "keep", DEFAULT, "true"]);
    let c = json(&root.ok(&["inspect", "keep"]));
    assert_eq!(c[0]["name"], "keep");
    assert_eq!(c[0]["status"], "exited");
    assert!(c[0]["spec"]["process"]["args"].is_array(), "{}", c[0]);
    let (code, _, err) = root.run(&["inspect", "--type", "image", "keep"]);
    assert_eq!(code, 1, "{err}");

    // The same content under another image: a second config over the same layer.
    root.ok(&["tag", DEFAULT, "other:1"]);
    let (code, _, err) = root.run(&["rmi", DEFAULT]);
    assert_eq!(code, 0, "{err}"); // not the last name: only untagged
    let (code, _, err) = root.run(&["rmi", "other:1"]);
    assert_eq!(code, 1);
    assert!(err.contains("in use by container keep"), "{err}");
    assert_eq!(root.committed().len(), 1);

    let out = root.ok(&["rmi", "-f", "other:1"]);
    assert!(out.contains("Removed container"), "{out}");
    assert!(out.contains("Deleted: sha256:"), "{out}");
    assert!(root.container_dirs().is_empty());
    assert!(root.committed().is_empty(), "{:?}", root.committed());
    assert_eq!(root.blob_count(), 0);
    assert!(root.mounts().is_empty());
}

#[test]
fn rmi_keeps_layers_another_image_shares() {
    let Some(root) = Root::new() else { return };
    root.ok(&["image", "default"]);
    root.ok(&["run", "--rm", DEFAULT, "true"]); // unpacks the layer
    let engine = root.engine();
    let (digest, _) = engine.lookup_image(DEFAULT).unwrap();
    let (manifest, _) = engine.read_image(&digest).unwrap();
    // Another image with the same layer and a different config.
    let layer = berth_engine::build::busybox_layer(Path::new(HOST_BUSYBOX)).unwrap();
    let run = berth_image::RunConfig {
        cmd: Some(vec!["echo".into(), "other".into()]),
        ..Default::default()
    };
    let other: berth_image::Reference = "other:1".parse().unwrap();
    berth_engine::build::import_image(engine.blobs(), engine.images(), &other, &[layer], run)
        .unwrap();
    root.ok(&["rmi", DEFAULT]);
    let blobs = engine.blobs();
    assert!(
        blobs.has(&manifest.layers[0].digest),
        "shared layer deleted"
    );
    assert!(!blobs.has(&manifest.config.digest), "own config kept");
    assert!(!blobs.has(&digest), "own manifest kept");
    assert_eq!(root.committed().len(), 1);
    let (code, out, err) = root.run(&["run", "--rm", "other:1"]);
    assert_eq!((code, out.trim()), (0, "other"), "{err}");
}

#[test]
fn save_rmi_load_run_round_trip_in_both_formats() {
    let Some(root) = Root::new() else { return };
    root.ok(&["image", "default"]);
    let before = json(&root.ok(&["inspect", "--type", "image", DEFAULT]));
    for format in ["docker-archive", "oci-archive"] {
        let archive = root.path().join(format!("img-{format}.tar"));
        let archive = archive.to_str().unwrap();
        root.ok(&["save", "-o", archive, "--format", format, DEFAULT]);
        let names: Vec<String> = fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains("berth-tmp"))
            .collect();
        assert!(names.is_empty(), "temp files left: {names:?}");
        let listing = Command::new("tar").args(["tf", archive]).output().unwrap();
        let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
        assert!(listing.contains("index.json"), "{listing}");
        assert!(listing.contains("oci-layout"), "{listing}");
        assert_eq!(
            listing.contains("manifest.json"),
            format == "docker-archive",
            "{listing}"
        );
        root.ok(&["rmi", DEFAULT]);
        assert_eq!(root.blob_count(), 0);
        let out = root.ok(&["load", "-i", archive]);
        assert!(out.contains(&format!("Loaded image: {DEFAULT}")), "{out}");
        let after = json(&root.ok(&["inspect", "--type", "image", DEFAULT]));
        assert_eq!(after[0]["digest"], before[0]["digest"], "{format}");
        let (code, out, err) = root.run(&["run", "--rm", DEFAULT, "echo", "loaded"]);
        assert_eq!((code, out.trim()), (0, "loaded"), "{err}");
    }
}

/// Writes a tar with `entries` (path, data) to `path`.
fn write_tar(path: &Path, entries: &[(&str, Vec<u8>)]) {
    let mut tar = tar::Builder::new(fs::File::create(path).unwrap());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        tar.append_data(&mut h, name, &data[..]).unwrap();
    }
    tar.finish().unwrap();
}

#[test]
fn load_of_a_classic_docker_archive_and_of_a_corrupt_one() {
    let Some(root) = Root::new() else { return };
    // A docker-archive as older `docker save` wrote it: plain layer tars.
    let layer = berth_engine::build::busybox_layer(Path::new(HOST_BUSYBOX)).unwrap();
    let diff_id = berth_image::Digest::of_bytes(&layer);
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["echo", "classic"]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id.to_string()]},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", berth_image::Digest::of_bytes(&config).hex());
    let manifest = serde_json::json!([{
        "Config": config_name, "RepoTags": ["classic:1"], "Layers": ["abc/layer.tar"],
    }]);
    let archive = root.path().join("classic.tar");
    write_tar(
        &archive,
        &[
            ("abc/layer.tar", layer.clone()),
            (&config_name, config.clone()),
            ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
        ],
    );
    let out = root.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert!(
        out.contains("Loaded image: docker.io/library/classic:1"),
        "{out}"
    );
    let (code, out, err) = root.run(&["run", "--rm", "classic:1"]);
    assert_eq!((code, out.trim()), (0, "classic"), "{err}");
    root.ok(&["rmi", "classic:1"]);
    assert_eq!(root.blob_count(), 0);

    // A layer whose content is not what the config says: nothing enters.
    let mut bad = layer;
    bad.extend_from_slice(&[0u8; 1024]);
    write_tar(
        &archive,
        &[
            ("abc/layer.tar", bad),
            (&config_name, config),
            ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
        ],
    );
    let (code, _, err) = root.run(&["load", "-i", archive.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(err.contains("image config says"), "{err}");
    assert_eq!(root.blob_count(), 0);
    assert!(json(&root.ok(&["images", "--format", "json"]))
        .as_array()
        .unwrap()
        .is_empty());

    // Not an archive at all.
    fs::write(&archive, b"hello").unwrap();
    let (code, _, err) = root.run(&["load", "-i", archive.to_str().unwrap()]);
    assert_ne!(code, 0, "{err}");
}

#[test]
fn export_a_container_then_import_and_run_it() {
    let Some(root) = Root::new() else { return };
    root.ok(&["image", "default"]);
    root.ok(&[
        "run",
        "--name",
        "box",
        DEFAULT,
        "sh",
        "-c",
        "echo mine > /root/note; rm /etc/group",
    ]);
    let archive = root.path().join("box.tar");
    let archive_s = archive.to_str().unwrap();
    root.ok(&["export", "-o", archive_s, "box"]);
    assert!(root.mounts().is_empty(), "{:?}", root.mounts());
    let listing = Command::new("tar")
        .args(["tf", archive_s])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(listing.lines().any(|l| l == "root/note"), "{listing}");
    assert!(listing.lines().any(|l| l == "bin/busybox"), "{listing}");
    assert!(!listing.contains("etc/group"), "{listing}");
    assert!(!listing.contains(".wh."), "{listing}");

    let out = root.ok(&["import", archive_s, "restored:1"]);
    assert!(
        out.starts_with("docker.io/library/restored:1 sha256:"),
        "{out}"
    );
    let (code, out, err) = root.run(&["run", "--rm", "restored:1", "cat", "/root/note"]);
    assert_eq!((code, out.trim()), (0, "mine"), "{err}");
    // Without a name; and a file that is not a tar.
    let out = root.ok(&["import", archive_s]);
    assert!(out.starts_with("localhost/import-"), "{out}");
    fs::write(&archive, b"not a tar").unwrap();
    let (code, _, err) = root.run(&["import", archive_s, "bad:1"]);
    assert_ne!(code, 0, "{err}");
    let (code, _, err) = root.run(&["export", "-o", archive_s, "nosuch"]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("no such container"), "{err}");
}

fn berth_stdin(root: &Root, args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(BERTH)
        .arg("--root")
        .arg(root.path())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn login_push_pull_logout_against_a_registry_with_basic_auth() {
    let Some(root) = Root::new() else { return };
    let Some(registry) = Registry::start_with_auth() else {
        return;
    };
    use std::os::unix::fs::PermissionsExt;
    let addr = registry.addr.as_str();
    let dest = format!("{addr}/test/busybox:v1");
    root.ok(&["image", "default"]);
    let auth_file = root.path().join("auth.json");

    let (code, _, err) = root.run(&["push", DEFAULT, &dest]);
    assert_ne!(code, 0);
    assert!(err.contains("auth"), "{err}");

    let (code, _, err) = berth_stdin(
        &root,
        &["login", "-u", "berth", "--password-stdin", addr],
        "wrong\n",
    );
    assert_ne!(code, 0);
    assert!(err.contains("credentials refused"), "{err}");
    assert!(!auth_file.exists());

    let (code, out, err) = berth_stdin(
        &root,
        &["login", "-u", "berth", "--password-stdin", addr],
        "s3cret\n",
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("Login Succeeded"), "{out}");
    let mode = fs::metadata(&auth_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let stored = json(&fs::read_to_string(&auth_file).unwrap());
    assert_eq!(stored["auths"][addr]["auth"], "YmVydGg6czNjcmV0");

    let out = root.ok(&["push", DEFAULT, &dest]);
    assert!(out.starts_with(&dest), "{out}");
    root.ok(&["rmi", DEFAULT]);
    assert_eq!(root.blob_count(), 0);
    root.ok(&["pull", &dest]);
    let (code, out, err) = root.run(&["run", "--rm", &dest, "echo", "pulled"]);
    assert_eq!((code, out.trim()), (0, "pulled"), "{err}");

    root.ok(&["logout", addr]);
    let (code, _, _) = root.run(&["logout", addr]);
    assert_eq!(code, 1);
    root.ok(&["rmi", &dest]);
    let (code, _, err) = root.run(&["pull", &dest]);
    assert_ne!(code, 0);
    assert!(err.contains("auth"), "{err}");
}

#[test]
fn system_df_and_prune() {
    let Some(root) = Root::new() else { return };
    root.ok(&["image", "default"]);
    root.ok(&[
        "run",
        "--name",
        "stopped",
        DEFAULT,
        "sh",
        "-c",
        "echo x > /big",
    ]);
    // An orphan blob and a layer no image names.
    let engine = root.engine();
    let orphan = engine.blobs().put_bytes(b"orphan").unwrap();
    let layer = berth_engine::build::LayerBuilder::new()
        .file("f", b"data", 0o644)
        .finish();
    let other: berth_image::Reference = "gone:1".parse().unwrap();
    berth_engine::build::import_image(
        engine.blobs(),
        engine.images(),
        &other,
        &[layer],
        Default::default(),
    )
    .unwrap();
    let (code, _, _) = root.run(&["run", "--rm", "gone:1", "/x"]);
    assert_ne!(code, 0); // no /x to exec, but the layer was unpacked
    engine.images().untag(&other).unwrap(); // its blobs and snapshot are now unreferenced

    let du = json(&root.ok(&["system", "df", "--format", "json"]));
    assert_eq!(du["images"]["total"], 1);
    assert_eq!(du["images"]["active"], 1);
    assert_eq!(du["containers"]["total"], 1);
    assert_eq!(du["containers"]["active"], 0);
    assert_eq!(du["layers"]["total"], 2);
    assert_eq!(du["layers"]["active"], 1);
    assert!(du["blobs"]["reclaimable"].as_u64().unwrap() > 0, "{du}");
    let table = root.ok(&["system", "df"]);
    assert!(table.contains("RECLAIMABLE"), "{table}");

    let out = root.ok(&["system", "prune"]);
    assert!(out.contains("Deleted container"), "{out}");
    assert!(root.container_dirs().is_empty());
    assert!(!engine.blobs().has(&orphan));
    assert_eq!(root.committed().len(), 1);
    let du = json(&root.ok(&["system", "df", "--format", "json"]));
    assert_eq!(du["blobs"]["reclaimable"], 0, "{du}");
    assert_eq!(du["layers"]["total"], 1);
    // The kept image still runs.
    let (code, out, err) = root.run(&["run", "--rm", DEFAULT, "echo", "kept"]);
    assert_eq!((code, out.trim()), (0, "kept"), "{err}");
    // --all removes images no container uses.
    let out = root.ok(&["system", "prune", "--all"]);
    assert!(out.contains(&format!("Deleted image: {DEFAULT}")), "{out}");
    assert_eq!(root.blob_count(), 0);
    assert!(root.committed().is_empty());
}

#[test]
fn busybox_alias_names_the_built_in_image_for_every_verb() {
    let Some(root) = Root::new() else { return };
    root.ok(&["run", "--rm", "busybox", "true"]);
    let inspected = json(&root.ok(&["inspect", "--type", "image", "busybox"]));
    assert_eq!(inspected[0]["repo_tags"][0], DEFAULT, "{inspected}");
    root.ok(&["rmi", "busybox"]);
    let (code, _, err) = root.run(&["inspect", "--type", "image", DEFAULT]);
    assert_ne!(code, 0, "the built-in image is still there: {err}");
    assert_eq!(root.blob_count(), 0, "rmi of the last name leaves no blob");
}
