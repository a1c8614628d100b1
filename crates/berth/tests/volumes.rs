//! End-to-end tests of named volumes (as root): `berth volume` and `-v NAME:/dst`
//! under both the process and the container isolation. Each test has its own
//! `--root`, removed by its guard even when the test fails.

mod common;

use common::Root;

#[test]
fn volume_create_ls_inspect_rm_prune() {
    let Some(root) = Root::new() else { return };
    assert_eq!(root.ok(&["volume", "create", "v1"]), "v1\n");
    assert_eq!(
        root.ok(&["volume", "create", "v1"]),
        "v1\n",
        "create is idempotent"
    );
    let anon = root.ok(&["volume", "create"]);
    assert_eq!(anon.trim().len(), 64, "{anon}");
    let ls = root.ok(&["volume", "ls"]);
    assert!(
        ls.contains("local      v1\n") && ls.contains(anon.trim()),
        "{ls}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&root.ok(&["volume", "ls", "--format", "json"])).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);
    let inspect: serde_json::Value =
        serde_json::from_str(&root.ok(&["volume", "inspect", "v1"])).unwrap();
    let mountpoint = inspect[0]["mountpoint"].as_str().unwrap().to_owned();
    assert_eq!(
        mountpoint,
        root.path().join("volumes/v1/_data").to_string_lossy()
    );
    let (code, _, err) = root.run(&["volume", "inspect", "nope"]);
    assert_eq!(code, 125);
    assert!(err.contains("no such volume"), "{err}");
    let (code, _, _) = root.run(&["volume", "create", "../x"]);
    assert_ne!(code, 0);
    assert_eq!(root.ok(&["volume", "rm", "v1"]), "v1\n");
    assert_eq!(root.ok(&["volume", "prune"]), anon);
    assert_eq!(root.ok(&["volume", "ls"]), "DRIVER     VOLUME NAME\n");
}

#[test]
fn named_volumes_persist_are_seeded_and_refuse_rm_in_use() {
    let Some(root) = Root::new() else { return };
    for iso in ["process", "container"] {
        let isolation = format!("--isolation={iso}");
        let vol = format!("etc-{iso}:/etc");
        // A new volume is seeded from the image (busybox's /etc has passwd).
        let (code, out, err) = root.run(&[
            "run",
            "--rm",
            &isolation,
            "-v",
            &vol,
            "busybox",
            "sh",
            "-c",
            "cat /etc/passwd | head -1; echo kept > /etc/mine",
        ]);
        assert_eq!(code, 0, "{iso}: {err}");
        assert!(out.starts_with("root:"), "{iso}: {out}");
        let data = root.path().join(format!("volumes/etc-{iso}/_data"));
        assert_eq!(
            std::fs::read_to_string(data.join("mine")).unwrap(),
            "kept\n"
        );
        // The next container sees what the last one wrote.
        let (code, out, err) = root.run(&[
            "run",
            "--rm",
            &isolation,
            "-v",
            &format!("etc-{iso}:/other:ro"),
            "busybox",
            "sh",
            "-c",
            "cat /other/mine; touch /other/x || echo ro",
        ]);
        assert_eq!((code, out.as_str()), (0, "kept\nro\n"), "{iso}: {err}");
        // In use by a (stopped) container: rm refuses without -f.
        root.ok(&[
            "create", &isolation, "--name", iso, "-v", &vol, "busybox", "true",
        ]);
        let (code, _, err) = root.run(&["volume", "rm", &format!("etc-{iso}")]);
        assert_eq!(code, 1);
        assert!(err.contains("in use by container"), "{err}");
        assert_eq!(root.ok(&["volume", "prune"]), "");
        root.ok(&["rm", iso]);
        root.ok(&["volume", "rm", &format!("etc-{iso}")]);
    }
    // -f removes one in use.
    root.ok(&[
        "create",
        "--name",
        "c",
        "-v",
        "forced:/data",
        "busybox",
        "true",
    ]);
    root.ok(&["volume", "rm", "-f", "forced"]);
    root.ok(&["rm", "c"]);
    assert_eq!(root.ok(&["volume", "ls"]), "DRIVER     VOLUME NAME\n");
    root.assert_no_containers();
}
