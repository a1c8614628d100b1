//! Shared by the `berth` end-to-end tests: [`Root`], a temp engine root that is the
//! cleanup guard (on drop, even when a test fails: `rm -f` every container, SIGKILL
//! monitors still alive, lazily unmount whatever is mounted under it, delete it), and
//! [`Registry`], Debian's `docker-registry` on 127.0.0.1, killed on drop.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_engine::build::{import_image, HOST_BUSYBOX};
use berth_engine::{Engine, Record};
use berth_image::{Reference, RunConfig};
use berth_snapshot::Kind;

pub const BERTH: &str = env!("CARGO_BIN_EXE_berth");

/// A temp engine root, cleaned up on drop.
pub struct Root {
    dir: Option<tempfile::TempDir>,
}

impl Root {
    /// None (after saying SKIP) when not root or busybox-static is missing.
    pub fn new() -> Option<Self> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIP: needs root");
            return None;
        }
        if !Path::new(HOST_BUSYBOX).exists() {
            eprintln!("SKIP: {HOST_BUSYBOX} missing (apt-get install busybox-static)");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-e2e-")
            .tempdir()
            .unwrap();
        Some(Self { dir: Some(dir) })
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().unwrap().path()
    }

    pub fn berth(&self, args: &[&str]) -> Output {
        Command::new(BERTH)
            .arg("--root")
            .arg(self.path())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Runs and returns (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        let out = self.berth(args);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// Runs, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "berth {args:?}: {out}{err}");
        out
    }

    pub fn engine(&self) -> Engine {
        Engine::open(self.path()).unwrap()
    }

    /// Imports an image made of `layers` under `name`.
    pub fn import(&self, name: &str, layers: &[Vec<u8>], run: RunConfig) {
        let engine = self.engine();
        let reference: Reference = name.parse().unwrap();
        import_image(engine.blobs(), engine.images(), &reference, layers, run).unwrap();
    }

    pub fn blob_count(&self) -> usize {
        self.engine().blobs().list().unwrap().len()
    }

    pub fn snapshots(&self, kind: Kind) -> Vec<String> {
        self.engine()
            .snapshots()
            .list()
            .unwrap()
            .into_iter()
            .filter(|i| i.kind == kind)
            .map(|i| i.key)
            .collect()
    }

    pub fn committed(&self) -> Vec<String> {
        self.snapshots(Kind::Committed)
    }

    pub fn container_dirs(&self) -> Vec<PathBuf> {
        match fs::read_dir(self.path().join("containers")) {
            Ok(rd) => rd.map(|e| e.unwrap().path()).collect(),
            Err(_) => vec![],
        }
    }

    /// The record of the container named `name`.
    pub fn record(&self, name: &str) -> Record {
        self.container_dirs()
            .iter()
            .filter_map(|d| Record::load(d).ok())
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no record named {name}"))
    }

    /// Mount points under the root, deepest last.
    pub fn mounts(&self) -> Vec<String> {
        let prefix = self.path().to_string_lossy().into_owned();
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
            .filter(|m| m.starts_with(&prefix))
            .collect()
    }

    /// Polls `f` for up to 15 s.
    pub fn eventually(&self, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Nothing of any container is left: no dirs, mounts, active snapshots or
    /// runtime state.
    pub fn assert_no_containers(&self) {
        assert_eq!(self.container_dirs(), Vec::<PathBuf>::new());
        assert_eq!(self.mounts(), Vec::<String>::new());
        assert_eq!(self.snapshots(Kind::Active), Vec::<String>::new());
        let runtime: Vec<_> = fs::read_dir(self.path().join("runtime")).unwrap().collect();
        assert!(runtime.is_empty(), "runtime state left: {runtime:?}");
        if let Ok(rd) = fs::read_dir(self.path().join("process")) {
            let left: Vec<_> = rd.collect();
            assert!(left.is_empty(), "process state left: {left:?}");
        }
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        let monitors: Vec<u32> = self
            .container_dirs()
            .iter()
            .filter_map(|d| Record::load(d).ok()?.pid)
            .collect();
        for dir in self.container_dirs() {
            let id = dir.file_name().unwrap().to_string_lossy().into_owned();
            let _ = self.berth(&["rm", "-f", &id]);
        }
        for pid in monitors {
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
        for m in self.mounts().iter().rev() {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
        if let Some(dir) = self.dir.take() {
            let path = dir.path().to_owned();
            if dir.close().is_err() {
                eprintln!("could not remove {}", path.display());
            }
        }
    }
}

/// Debian's `docker-registry` on 127.0.0.1, killed on drop.
pub struct Registry {
    child: Child,
    _dir: tempfile::TempDir,
    pub addr: String,
}

/// The user and password of [`Registry::start_with_auth`].
pub const REGISTRY_USER: &str = "berth";
pub const REGISTRY_PASSWORD: &str = "s3cret";

impl Registry {
    /// An open registry; None (after saying SKIP) when the package is missing.
    pub fn start() -> Option<Self> {
        Self::spawn(None)
    }

    /// A registry with htpasswd auth ([`REGISTRY_USER`] / [`REGISTRY_PASSWORD`]).
    pub fn start_with_auth() -> Option<Self> {
        // bcrypt (cost 4) of "s3cret".
        const HTPASSWD: &str =
            "berth:$2b$04$Z4ojyvyncaKUSTPa19liR.NvN1azbctaWs5QSZ28kjoRAmtozxGM6\n";
        Self::spawn(Some(HTPASSWD))
    }

    fn spawn(htpasswd: Option<&str>) -> Option<Self> {
        const BIN: &str = "/usr/bin/docker-registry";
        if !Path::new(BIN).exists() {
            eprintln!("SKIP: {BIN} missing (apt-get install docker-registry)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if let Some(lines) = htpasswd {
            let file = dir.path().join("htpasswd");
            fs::write(&file, lines).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).unwrap();
        let log = fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let registry = Self {
            child,
            _dir: dir,
            addr,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(mut s) = TcpStream::connect(&registry.addr) {
                let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
                let mut head = [0u8; 12];
                if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") {
                    return Some(registry);
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("registry on {} did not come up", registry.addr);
    }
}

impl Registry {
    /// Where the registry keeps the content of blob `digest` (to corrupt it).
    pub fn blob_file(&self, digest: &berth_image::Digest) -> PathBuf {
        let hex = digest.hex();
        self._dir
            .path()
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Why `--isolation vm` cannot run here (not root, no QEMU, no kernel from
/// scripts/fetch-kernel.sh), if it cannot.
fn vm_unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("not root".into());
    }
    for (tool, arg) in [
        ("qemu-system-x86_64", "--version"),
        ("qemu-img", "--version"),
        ("mkfs.ext4", "-V"),
    ] {
        if !Command::new(tool)
            .arg(arg)
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(format!("{tool} missing (scripts/install-deps.sh)"));
        }
    }
    berth_vm::Kernel::locate(None).err().map(|e| e.to_string())
}

/// True when a VM test may go on; false after a loud SKIP; a panic instead when
/// `BERTH_REQUIRE_VM` is set.
pub fn vm_available() -> bool {
    let Some(why) = vm_unavailable() else {
        return true;
    };
    if std::env::var_os("BERTH_REQUIRE_VM").is_some() {
        panic!("BERTH_REQUIRE_VM is set but the VM tests cannot run: {why}");
    }
    eprintln!("\n\n*** SKIP: berth --isolation vm tests: {why} ***\n");
    false
}

/// The static guest agent, built once per test process (`BERTH_GUEST_AGENT`
/// overrides).
pub fn guest_agent() -> &'static Path {
    static AGENT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    AGENT.get_or_init(|| {
        if let Some(p) = std::env::var_os("BERTH_GUEST_AGENT") {
            return PathBuf::from(p);
        }
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
        let target_dir = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(d) => PathBuf::from(d).join("guest-agent"),
            None => workspace.join("target/guest-agent"),
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(&cargo)
            .current_dir(&workspace)
            .args(["build", "--quiet", "--release", "-p", "berth-guest-agent"])
            .arg("--target")
            .arg(&triple)
            .arg("--target-dir")
            .arg(&target_dir)
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
