//! End-to-end tests (as root) of `top`, `stats`, `run -i` and `run -t`, under
//! the process and the container isolation. The pty tests run `berth` under
//! util-linux's `script`, which gives it a terminal.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

mod common;

use common::{Root, BERTH};

const LEVELS: [&str; 2] = ["process", "container"];

#[test]
fn top_and_stats_of_a_running_container() {
    let Some(root) = Root::new() else { return };
    for iso in LEVELS {
        let isolation = format!("--isolation={iso}");
        root.ok(&[
            "run",
            "-d",
            &isolation,
            "--name",
            iso,
            "--memory",
            "32m",
            "busybox",
            "sh",
            "-c",
            "sleep 1000 & sleep 1000",
        ]);
        root.eventually("two sleeps", || {
            root.ok(&["top", iso]).matches("sleep 1000").count() == 2
        });
        let top = root.ok(&["top", iso]);
        assert!(top.starts_with("UID"), "{top}");
        let stats = root.ok(&["stats", "--no-stream", iso]);
        let line = stats.lines().nth(1).unwrap_or_default();
        assert!(line.contains(iso) && line.contains("/ 33.554MB"), "{stats}");
        let json: serde_json::Value =
            serde_json::from_str(&root.ok(&["stats", "--no-stream", "--format", "json", iso]))
                .unwrap();
        assert_eq!(json[0]["memory_limit"], 32 << 20, "{json}");
        assert!(json[0]["pids"].as_u64().unwrap() >= 2, "{json}");
        assert!(json[0]["cpu_percent"].as_f64().is_some());
        // Every running container by default.
        assert!(root.ok(&["stats", "--no-stream"]).contains(iso));
        root.ok(&["rm", "-f", iso]);
        let (code, _, err) = root.run(&["top", iso]);
        assert_eq!(code, 125, "{err}");
    }
    root.assert_no_containers();
}

#[test]
fn interactive_stdin_reaches_the_process() {
    let Some(root) = Root::new() else { return };
    for iso in LEVELS {
        let isolation = format!("--isolation={iso}");
        let run = |interactive: bool| {
            let mut args = vec!["--root", root.path().to_str().unwrap(), "run", "--rm"];
            if interactive {
                args.push("-i");
            }
            args.extend([isolation.as_str(), "busybox", "cat"]);
            let mut child = Command::new(BERTH)
                .args(&args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            // Without -i berth may have closed its stdin already.
            let _ = child.stdin.take().unwrap().write_all(b"hi\n");
            let out = child.wait_with_output().unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
            )
        };
        assert_eq!(run(true), (Some(0), "hi\n".to_owned()), "{iso}");
        assert_eq!(
            run(false),
            (Some(0), String::new()),
            "{iso}: stdin is /dev/null"
        );
    }
    root.assert_no_containers();
}

#[test]
fn tty_gives_the_process_a_terminal() {
    let Some(root) = Root::new() else { return };
    if !Path::new("/usr/bin/script").exists() {
        eprintln!("SKIP: script (util-linux) missing");
        return;
    }
    let probe = "test -t 0 && test -t 1 && echo tty || echo no tty";
    for iso in LEVELS {
        let isolation = format!("--isolation={iso}");
        let cmd = format!(
            "{BERTH} --root {} run --rm -t {isolation} busybox sh -c '{probe}'",
            root.path().display()
        );
        let out = Command::new("script")
            .args(["-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
        assert_eq!(out.status.code(), Some(0), "{iso}: {text}");
        assert!(
            text.ends_with("tty\n") && !text.contains("no tty"),
            "{iso}: {text:?}"
        );
        // Nobody could relay a detached container's pty.
        let (code, _, err) = root.run(&["run", "-d", "-t", &isolation, "busybox", "true"]);
        assert_eq!(code, 125);
        assert!(err.contains("-t needs the foreground"), "{err}");
        // Without -t (and without a terminal of its own) it has none.
        let (code, out, _) = root.run(&["run", "--rm", &isolation, "busybox", "sh", "-c", probe]);
        assert_eq!((code, out.as_str()), (0, "no tty\n"), "{iso}");
    }
    root.assert_no_containers();
}
