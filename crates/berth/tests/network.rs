//! End-to-end networking tests. Each test makes a network namespace of its own
//! (`ip netns add`) and runs every `berth` command inside it with `nsenter --net`
//! (the mount namespace stays the host's, so berth's namespace files and rootfs
//! mounts outlive each command): every bridge, veth, address, route, nftables
//! rule and packet stays in that namespace. An "outside" host, when a test needs
//! one, is a second namespace joined by a veth (198.18.0.0/24). The guard removes
//! containers and networks through `nsenter`, kills what still runs in the
//! namespaces and deletes them, even when the test fails.

use std::fs;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod common;

use common::{Root, BERTH};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

fn sh(cmd: &str, args: &[&str]) -> Output {
    Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A named network namespace, deleted on drop (after its processes are killed).
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Self {
        let name = format!(
            "berth-t{}-{}{tag}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let out = sh("ip", &["netns", "add", &name]);
        assert!(out.status.success(), "ip netns add: {out:?}");
        let ns = Self { name };
        ns.ip("link set lo up");
        ns
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    /// `ip -n NS ARGS…`, asserting success; returns stdout.
    fn ip(&self, args: &str) -> String {
        let mut a = vec!["-n", &self.name];
        a.extend(args.split_whitespace());
        let out = sh("ip", &a);
        assert!(out.status.success(), "ip {args}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A command in the namespace.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("nsenter");
        c.arg(format!("--net={}", self.path()))
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// `wget -qO- URL` from this namespace (busybox): the body, or None. (Not
    /// `wget -T`: Debian's static busybox 1.35 crashes with it.)
    fn get(&self, url: &str) -> Option<String> {
        let out = self
            .cmd(&["timeout", "5", "busybox", "wget", "-qO-", url])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let pids = sh("ip", &["netns", "pids", &self.name]);
        for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        let _ = sh("ip", &["netns", "del", &self.name]);
    }
}

/// A berth root used only from inside a namespace of its own.
struct NetTest {
    ns: Netns,
    outside: Option<(Netns, Option<Child>)>,
    www: tempfile::TempDir,
    root: Root,
    /// The guest agent for `--isolation vm` runs.
    agent: Option<&'static Path>,
}

impl NetTest {
    fn new() -> Option<Self> {
        let root = Root::new()?;
        for tool in ["ip", "nft", "nsenter"] {
            if !sh("sh", &["-c", &format!("command -v {tool}")])
                .status
                .success()
            {
                eprintln!("SKIP: {tool} missing (apt-get install iproute2 nftables util-linux)");
                return None;
            }
        }
        let www = tempfile::tempdir().unwrap();
        fs::write(www.path().join("index.html"), "hello from berth\n").unwrap();
        Some(Self {
            ns: Netns::new(""),
            outside: None,
            www,
            root,
            agent: None,
        })
    }

    /// berth in the namespace: (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let mut cmd = self
            .ns
            .cmd(&[BERTH, "--root", self.root.path().to_str().unwrap()]);
        if let Some(agent) = self.agent {
            cmd.env("BERTH_GUEST_AGENT", agent);
        }
        let out = cmd.args(args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "berth {args:?}: {out}{err}");
        out
    }

    /// `run -d` of busybox httpd serving "hello from berth" on port 80.
    fn web(&self, name: &str, extra: &[&str]) -> String {
        let vol = format!("{}:/www:ro", self.www.path().display());
        let mut args = vec!["run", "-d", "--name", name, "-v", &vol];
        args.extend(extra);
        args.extend(["busybox", "httpd", "-f", "-p", "80", "-h", "/www"]);
        self.ok(&args).trim().to_owned()
    }

    /// The container's address on its first network.
    fn ip_of(&self, name: &str) -> String {
        let rec = self.root.record(name);
        rec.networks.first().expect("attached").ip.to_string()
    }

    /// An "outside" host: a second namespace at 198.18.0.2, joined by a veth to
    /// ours (198.18.0.1), serving HTTP on port 80 with the host's busybox.
    fn outside(&mut self) {
        let out = Netns::new("o");
        let (a, b) = (format!("vo{}", out.name.len()), "vx0");
        self.ns.ip(&format!(
            "link add {a} type veth peer name {b} netns {}",
            out.name
        ));
        self.ns.ip(&format!("addr add 198.18.0.1/24 dev {a}"));
        self.ns.ip(&format!("link set {a} up"));
        out.ip(&format!("addr add 198.18.0.2/24 dev {b}"));
        out.ip(&format!("link set {b} up"));
        let server = out
            .cmd(&[
                "busybox",
                "httpd",
                "-f",
                "-p",
                "198.18.0.2:80",
                "-h",
                self.www.path().to_str().unwrap(),
            ])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.ns.get("http://198.18.0.2/").is_none() {
            assert!(Instant::now() < deadline, "outside server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.outside = Some((out, Some(server)));
    }

    fn outside_ns(&self) -> &Netns {
        &self.outside.as_ref().expect("outside()").0
    }

    /// Eventually the URL answers from inside a fresh container on `network`.
    fn container_gets(&self, network: &str, url: &str) -> bool {
        // Not `timeout` as PID 1: it signals its own parent, which would be the
        // namespace's init (immune to it).
        let script = format!("timeout 5 wget -qO- {url}; exit $?");
        let (code, out, _) = self.run(&[
            "run",
            "--rm",
            "--network",
            network,
            "busybox",
            "sh",
            "-c",
            &script,
        ]);
        code == 0 && out == "hello from berth\n"
    }

    /// Links, routes, nft table, netns files and name servers of berth: none
    /// (an empty network keeps its link, rules and name server for a grace period
    /// of 1 s, and veths go in the background: this waits up to 10 s).
    fn assert_clean(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.leftovers() {
                None => return,
                Some(what) if Instant::now() > deadline => panic!("left behind: {what}"),
                Some(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    fn leftovers(&self) -> Option<String> {
        let links = self.ns.ip("-br link");
        if links.contains("berth") || links.contains("vb") {
            return Some(links);
        }
        let routes = self.ns.ip("route");
        if routes.contains("10.8") || routes.contains("10.9") {
            return Some(routes);
        }
        let rules = self.ns.cmd(&["nft", "list", "ruleset"]).output().unwrap();
        let rules = String::from_utf8_lossy(&rules.stdout).into_owned();
        if rules.contains("berth") {
            return Some(rules);
        }
        let netns = self.root.path().join("netns");
        let files: Vec<_> = fs::read_dir(&netns)
            .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        if !files.is_empty() {
            return Some(format!("netns files {files:?}"));
        }
        let pids = sh("ip", &["netns", "pids", &self.ns.name]);
        if !pids.stdout.is_empty() {
            return Some(format!("processes {pids:?}"));
        }
        None
    }
}

impl Drop for NetTest {
    fn drop(&mut self) {
        // Inside the namespace, before `Root` (which would use the host's).
        for dir in self.root.container_dirs() {
            let id = dir.file_name().unwrap().to_string_lossy().into_owned();
            let _ = self.run(&["rm", "-f", &id]);
        }
        if let Ok(rd) = fs::read_dir(self.root.path().join("networks")) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if !n.starts_with('.') {
                    let _ = self.run(&["network", "rm", &n]);
                }
            }
        }
        if let Some((_, Some(server))) = self.outside.as_mut() {
            let _ = server.kill();
            let _ = server.wait();
        }
    }
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn two_containers_talk_by_ip_and_by_name() {
    let Some(t) = NetTest::new() else { return };
    t.ok(&["network", "create", "--subnet", "10.89.7.0/24", "app"]);
    t.web("web", &["--network", "app", "--hostname", "www"]);
    let ip = t.ip_of("web");
    assert!(ip.starts_with("10.89.7."), "{ip}");
    for target in [ip.as_str(), "web", "www", "web.app"] {
        let url = format!("http://{target}/");
        assert!(t.container_gets("app", &url), "{url} unreachable");
    }
    // A raw TCP exchange with nc, and the /etc files the container gets.
    let (code, out, err) = t.run(&[
        "run", "--rm", "--network", "app", "--add-host", "db:10.1.2.3", "--dns", "192.0.2.53",
        "busybox", "sh", "-c",
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc web 80 | tail -1; cat /etc/hosts /etc/resolv.conf",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("hello from berth\n"), "{out}");
    assert!(
        out.contains("10.1.2.3\tdb") && out.contains("nameserver 10.89.7.1\nnameserver 192.0.2.53"),
        "{out}"
    );
    // Unknown names are not made up.
    let (code, _, _) = t.run(&[
        "run",
        "--rm",
        "--network",
        "app",
        "busybox",
        "nslookup",
        "nosuchname",
    ]);
    assert_ne!(code, 0);
    // Another network does not reach it, not even by address.
    t.ok(&["network", "create", "other"]);
    assert!(!t.container_gets("other", &format!("http://{ip}/")));
    t.ok(&["rm", "-f", "web"]);
    t.ok(&["network", "rm", "app", "other"]);
    t.assert_clean();
}

fn published_port(driver: &str) {
    let Some(mut t) = NetTest::new() else { return };
    t.outside();
    let net = if driver == "routed" {
        t.ok(&["network", "create", "--driver", "routed", "rnet"]);
        "rnet"
    } else {
        "bridge"
    };
    t.web("pub", &["--network", net, "-p", "8080:80"]);
    assert_eq!(t.ok(&["port", "pub"]), "80/tcp -> 0.0.0.0:8080\n");
    for url in ["http://127.0.0.1:8080/", "http://198.18.0.1:8080/"] {
        let mut got = None;
        wait_for(url, || {
            got = t.ns.get(url);
            got.is_some()
        });
        assert_eq!(got.unwrap(), "hello from berth\n", "{url}");
    }
    // From the outside host, to our address.
    assert_eq!(
        t.outside_ns().get("http://198.18.0.1:8080/").as_deref(),
        Some("hello from berth\n")
    );
    // Outbound (masqueraded) and container to container.
    assert!(t.container_gets(net, "http://198.18.0.2/"));
    // By name on a user-defined network; by address on the default one (which has
    // no name server, as Docker's).
    let target = if net == "bridge" {
        t.ip_of("pub")
    } else {
        "pub".into()
    };
    assert!(t.container_gets(net, &format!("http://{target}/")));
    t.ok(&["rm", "-f", "pub"]);
    assert!(t.ns.get("http://127.0.0.1:8080/").is_none());
    if driver == "routed" {
        t.ok(&["network", "rm", "rnet"]);
    }
    t.assert_clean();
}

#[test]
fn published_port_answers_on_loopback_and_own_address() {
    published_port("bridge");
}

#[test]
fn routed_network_works_the_same() {
    published_port("routed");
}

#[test]
fn internal_network_has_no_way_out() {
    let Some(mut t) = NetTest::new() else { return };
    t.outside();
    t.ok(&["network", "create", "--internal", "sealed"]);
    t.ok(&["network", "create", "open"]);
    assert!(t.container_gets("open", "http://198.18.0.2/"));
    assert!(!t.container_gets("sealed", "http://198.18.0.2/"));
    // Still reachable inside the network, by name.
    t.web("inner", &["--network", "sealed"]);
    assert!(t.container_gets("sealed", "http://inner/"));
    let (_, routes, _) = t.run(&[
        "run",
        "--rm",
        "--network",
        "sealed",
        "busybox",
        "ip",
        "route",
    ]);
    assert!(!routes.contains("default"), "{routes}");
}

#[test]
fn rm_leaves_no_link_route_or_rule() {
    let Some(t) = NetTest::new() else { return };
    t.ok(&["network", "create", "--driver", "routed", "r"]);
    t.web("a", &["--network", "bridge", "-p", "8081:80"]);
    t.web("b", &["--network", "r", "-p", "127.0.0.1:8082:80"]);
    t.ok(&[
        "create",
        "--name",
        "c",
        "--network",
        "bridge",
        "busybox",
        "true",
    ]);
    let (code, out, _) = t.run(&[
        "run",
        "--name",
        "d",
        "--network",
        "container:a",
        "busybox",
        "ip",
        "-4",
        "addr",
    ]);
    assert_eq!(code, 0);
    assert!(out.contains(&t.ip_of("a")), "container:a sees {out}");
    let links = t.ns.ip("-br link");
    assert!(links.contains("berth") && links.contains("vb"), "{links}");
    t.ok(&["rm", "-f", "a", "b", "c", "d"]);
    t.assert_clean();
    // The networks stay (their config only) until `network rm`.
    let ls = t.ok(&["network", "ls"]);
    assert!(ls.contains("bridge") && ls.contains("routed"), "{ls}");
    t.ok(&["network", "rm", "r", "bridge"]);
    assert_eq!(t.ok(&["network", "ls"]).lines().count(), 1);
}

#[test]
fn fifty_concurrent_creates_get_distinct_addresses() {
    let Some(t) = NetTest::new() else { return };
    t.ok(&["image", "default"]);
    let t = &t;
    let ids: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| {
                s.spawn(move || {
                    t.ok(&["create", "--network", "bridge", "busybox", "true"])
                        .trim()
                        .to_owned()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(ids.len(), 50);
    let inspect: serde_json::Value =
        serde_json::from_str(&t.ok(&["network", "inspect", "bridge"])).unwrap();
    let leases = inspect[0]["leases"].as_array().unwrap();
    let mut ips: Vec<&str> = leases.iter().map(|l| l["ip"].as_str().unwrap()).collect();
    ips.sort();
    ips.dedup();
    assert_eq!(ips.len(), 50, "{ips:?}");
    let links = t.ns.ip("-br link");
    assert_eq!(links.matches("vb").count(), 50);
    let mut args = vec!["rm"];
    args.extend(ids.iter().map(String::as_str));
    t.ok(&args);
    t.assert_clean();
}

#[test]
fn bad_input_is_refused_before_anything_changes() {
    let Some(mut t) = NetTest::new() else { return };
    t.outside(); // a host route: 198.18.0.0/24 dev vo…
    t.ok(&["network", "create", "--subnet", "10.89.9.0/24", "n1"]);
    let refused = |args: &[&str], says: &str| {
        let (code, out, err) = t.run(args);
        assert_ne!(code, 0, "{args:?} accepted: {out}");
        assert!(err.contains(says), "{args:?}: {err}");
    };
    refused(
        &["network", "create", "--subnet", "10.89.0.0/16", "n2"],
        "overlaps network n1",
    );
    refused(
        &["network", "create", "--subnet", "198.18.0.0/16", "n2"],
        "overlaps host route",
    );
    refused(
        &["network", "create", "--subnet", "10.89.9.1/24", "n2"],
        "host bits",
    );
    refused(
        &[
            "network",
            "create",
            "--gateway",
            "10.1.1.1",
            "--subnet",
            "10.50.0.0/24",
            "n2",
        ],
        "gateway",
    );
    refused(&["network", "create", "n1"], "already exists");
    refused(
        &[
            "run",
            "--rm",
            "--network",
            "n1",
            "-p",
            "80:99999",
            "busybox",
            "true",
        ],
        "not a port",
    );
    refused(
        &[
            "run",
            "--rm",
            "--network",
            "n1",
            "-p",
            "1:2:3:4",
            "busybox",
            "true",
        ],
        "expected",
    );
    refused(
        &[
            "run",
            "--rm",
            "--network",
            "n1",
            "--ip",
            "10.89.9.1",
            "busybox",
            "true",
        ],
        "in use",
    );
    refused(
        &[
            "run",
            "--rm",
            "--network",
            "n1",
            "--ip",
            "10.7.0.5",
            "busybox",
            "true",
        ],
        "not a host address",
    );
    refused(
        &["run", "--rm", "--network", "nope", "busybox", "true"],
        "not found",
    );
    refused(
        &["run", "--rm", "-p", "80:80", "busybox", "true"],
        "need --network",
    );
    // A host port in use: by a listener in the namespace, then by another container.
    let mut listener =
        t.ns.cmd(&["busybox", "nc", "-l", "-p", "7777"])
            .spawn()
            .unwrap();
    wait_for("the listener", || {
        let out = t.ns.cmd(&["busybox", "netstat", "-ltn"]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).contains(":7777")
    });
    refused(
        &[
            "run",
            "--rm",
            "--network",
            "n1",
            "-p",
            "7777:80",
            "busybox",
            "true",
        ],
        "not available",
    );
    let _ = listener.kill();
    let _ = listener.wait();
    t.web("holder", &["--network", "n1", "-p", "7778:80"]);
    refused(
        &[
            "run",
            "--rm",
            "--network",
            "n1",
            "-p",
            "7778:80/tcp",
            "busybox",
            "true",
        ],
        "already published",
    );
    // Nothing of the refused ones is left.
    let dirs = t.root.container_dirs();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let inspect: serde_json::Value =
        serde_json::from_str(&t.ok(&["network", "inspect", "n1"])).unwrap();
    assert_eq!(inspect[0]["leases"].as_array().unwrap().len(), 1);
    assert_eq!(t.ns.ip("-br link").matches("vb").count(), 1);
    refused(&["network", "rm", "n1"], "in use");
    t.ok(&["rm", "-f", "holder"]);
    t.ok(&["network", "rm", "n1"]);
    t.assert_clean();
    assert!(!Path::new(&t.root.path().join("networks/n1")).exists());
}

#[test]
fn connect_disconnect_and_restart_keep_the_address() {
    let Some(t) = NetTest::new() else { return };
    t.ok(&["network", "create", "one"]);
    t.ok(&["network", "create", "two"]);
    t.web("srv", &["--network", "one"]);
    let ip = t.ip_of("srv");
    // Joined to a second network while running: reachable there by name.
    assert!(!t.container_gets("two", "http://srv/"));
    let out = t.ok(&["network", "connect", "two", "srv"]);
    assert!(out.starts_with("eth1 "), "{out}");
    assert!(t.container_gets("two", "http://srv/"));
    t.ok(&["network", "disconnect", "two", "srv"]);
    assert!(!t.container_gets("two", "http://srv/"));
    let (code, _, err) = t.run(&["network", "rm", "two"]);
    assert_eq!(code, 0, "{err}");
    // Stop and start: the lease (and the namespace) stay, the address too.
    t.ok(&["stop", "-t", "1", "srv"]);
    let inspect = t.ok(&["network", "inspect", "one"]);
    assert!(inspect.contains(&ip), "{inspect}");
    t.ok(&["start", "srv"]);
    assert_eq!(t.ip_of("srv"), ip);
    wait_for("srv again", || {
        t.container_gets("one", &format!("http://{ip}/"))
    });
    t.ok(&["rm", "-f", "srv"]);
    t.ok(&["network", "rm", "one"]);
    t.assert_clean();
}

#[test]
fn prune_finds_leftovers_after_a_crash() {
    let Some(t) = NetTest::new() else { return };
    t.ok(&["network", "create", "n"]);
    let id = t.ok(&["create", "--network", "n", "busybox", "true"]);
    let id = id.trim();
    // A crash that lost the container's directory: its lease, namespace file and
    // veth are still there.
    let dir = t.root.path().join("containers").join(id);
    nix::mount::umount2(&dir.join("rootfs"), nix::mount::MntFlags::MNT_DETACH).unwrap();
    fs::remove_dir_all(&dir).unwrap();
    assert!(t.ns.ip("-br link").contains("vb"));
    // And a namespace file and a veth of no lease at all.
    let stray = "f".repeat(64);
    let stray_ns = t.root.path().join("netns").join(&stray);
    fs::write(&stray_ns, "").unwrap();
    let out = sh(
        "unshare",
        &[&format!("--net={}", stray_ns.display()), "true"],
    );
    assert!(out.status.success(), "{out:?}");
    t.ns.ip("link add vbdeadbeef0 type veth peer name vbpeer");
    let out = t.ok(&["system", "prune"]);
    assert!(
        out.contains(&format!("Released stale lease: n:{id}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("Deleted network leftover: {stray}")),
        "{out}"
    );
    assert!(
        out.contains("Deleted network leftover: vbdeadbeef0"),
        "{out}"
    );
    assert!(!stray_ns.exists());
    let inspect: serde_json::Value =
        serde_json::from_str(&t.ok(&["network", "inspect", "n"])).unwrap();
    assert!(inspect[0]["leases"].as_array().unwrap().is_empty());
    t.ok(&["network", "rm", "n"]);
    t.assert_clean();
}

/// Seconds `wget` takes to fetch `url` (to /dev/null) from the test namespace.
fn fetch_secs(t: &NetTest, url: &str) -> f64 {
    let t0 = Instant::now();
    let out =
        t.ns.cmd(&["timeout", "60", "busybox", "wget", "-qO", "/dev/null", url])
            .output()
            .unwrap();
    assert!(out.status.success(), "{url}: {out:?}");
    t0.elapsed().as_secs_f64()
}

#[test]
fn vm_on_a_network_publishes_ports_and_talks_to_containers() {
    let Some(mut t) = NetTest::new() else { return };
    if !common::vm_available() {
        return;
    }
    t.agent = Some(common::guest_agent());
    t.ok(&["network", "create", "--subnet", "10.89.9.0/24", "vmnet"]);
    // 16 MiB to time a transfer with.
    fs::write(t.www.path().join("big"), vec![b'x'; 16 << 20]).unwrap();
    t.web(
        "vm",
        &["--isolation", "vm", "--network", "vmnet", "-p", "8080:80"],
    );
    let ip = t.ip_of("vm");
    assert!(ip.starts_with("10.89.9."), "{ip}");
    // The guest boots (seconds under TCG) before it answers.
    let url = "http://127.0.0.1:8080/";
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut got = None;
    while got.is_none() {
        assert!(Instant::now() < deadline, "{url}: no answer from the VM");
        std::thread::sleep(Duration::from_millis(200));
        got = t.ns.get(url);
    }
    assert_eq!(got.unwrap(), "hello from berth\n");
    // A container on the same network reaches the VM by address and by name.
    for target in [ip.as_str(), "vm", "vm.vmnet"] {
        let url = format!("http://{target}/");
        assert!(t.container_gets("vmnet", &url), "{url} unreachable");
    }
    // And a VM reaches a container by name (the network's name server), with the
    // /etc files a container gets.
    t.web("web", &["--network", "vmnet"]);
    let (code, out, err) = t.run(&[
        "run",
        "--rm",
        "--isolation",
        "vm",
        "--network",
        "vmnet",
        "--add-host",
        "db:10.1.2.3",
        "busybox",
        "sh",
        "-c",
        "wget -qO- http://web/; cat /etc/hosts /etc/resolv.conf; ip -o -4 addr show eth0",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("hello from berth\n"), "{out}");
    assert!(
        out.contains("10.1.2.3\tdb") && out.contains("nameserver 10.89.9.1"),
        "{out}"
    );
    assert!(out.contains("eth0    inet 10.89.9."), "{out}");
    // Stopped and started again: a new tap on the namespace's bridge, same address.
    t.ok(&["stop", "-t", "1", "vm"]);
    assert!(t.ns.get(url).is_none());
    t.ok(&["start", "vm"]);
    assert_eq!(t.ip_of("vm"), ip);
    let deadline = Instant::now() + Duration::from_secs(120);
    while t.ns.get(url).is_none() {
        assert!(Instant::now() < deadline, "{url}: no answer after start");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Transfer time, namespace → VM (virtio-net over a tap, emulated NIC) against
    // namespace → container (veth), through the same DNAT.
    t.web("ctr", &["--network", "vmnet", "-p", "8081:80"]);
    wait_for("the container", || {
        t.ns.get("http://127.0.0.1:8081/").is_some()
    });
    let vm = fetch_secs(&t, "http://127.0.0.1:8080/big");
    let ctr = fetch_secs(&t, "http://127.0.0.1:8081/big");
    eprintln!(
        "16 MiB over HTTP: VM {vm:.2} s ({:.0} MiB/s), container {ctr:.2} s ({:.0} MiB/s)",
        16.0 / vm,
        16.0 / ctr
    );
    // The guest has its own stack and one NIC: no container: join, no second network.
    let (code, _, err) = t.run(&[
        "run",
        "--rm",
        "--isolation",
        "vm",
        "--network",
        "container:vm",
        "busybox",
        "true",
    ]);
    assert!(code != 0 && err.contains("container:"), "{err}");
    let (code, _, err) = t.run(&["network", "connect", "bridge", "vm"]);
    assert!(code != 0 && err.contains("is a VM"), "{err}");
    t.ok(&["rm", "-f", "vm", "web", "ctr"]);
    assert!(t.ns.get(url).is_none());
    t.ok(&["network", "rm", "vmnet"]);
    t.assert_clean();
}
