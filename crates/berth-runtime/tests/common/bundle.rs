//! OCI bundles for tests: a busybox + berth-probe rootfs and an editable config.json.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::assets;
use super::cleanup;

/// Environment variable put into every container (and every runtime invocation) so the
/// cleanup guard can find the processes a test left behind.
pub const TOKEN_ENV: &str = "BERTH_TEST_TOKEN";

/// A bundle directory: `config.json` plus `rootfs/` with busybox (every applet linked
/// under /bin) and /bin/berth-probe.
///
/// The config starts as [`default_config`]; every change is written to disk at once, so
/// the runtime always sees what the test built. Bundles from [`super::Runtime::bundle`]
/// live in the runtime's temp dir; [`Bundle::new`] makes a standalone one that removes
/// itself (after lazily unmounting anything under it) on drop.
pub struct Bundle {
    dir: PathBuf,
    config: Value,
    owned: bool,
}

impl Bundle {
    /// A standalone bundle in a fresh temp dir.
    pub fn new() -> Bundle {
        let dir = cleanup::make_temp_dir("bundle");
        Bundle::create(dir, json!(null), true)
    }

    /// A bundle at `dir` (created), with `cgroups_path` (or none) and `token` in the env.
    pub(super) fn create_in(dir: PathBuf, cgroups_path: Option<&str>, token: &str) -> Bundle {
        let mut b = Bundle::create(dir, json!(token), false);
        if let Some(p) = cgroups_path {
            b.set("/linux/cgroupsPath", json!(p));
        }
        b
    }

    fn create(dir: PathBuf, token: Value, owned: bool) -> Bundle {
        populate_rootfs(&dir.join("rootfs"));
        let mut config = default_config();
        if let Some(t) = token.as_str() {
            push_env(&mut config, &format!("{TOKEN_ENV}={t}"));
        }
        let b = Bundle { dir, config, owned };
        b.write_config();
        b
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("rootfs")
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }

    /// The current config.
    pub fn spec(&self) -> &Value {
        &self.config
    }

    /// Edits the config and rewrites config.json:
    /// `b.config(|c| c["process"]["args"] = json!(["/bin/berth-probe", "report"]))`.
    pub fn config(&mut self, edit: impl FnOnce(&mut Value)) -> &mut Self {
        edit(&mut self.config);
        self.write_config();
        self
    }

    /// Sets the value at a JSON pointer (`/linux/resources/pids/limit`), creating missing
    /// objects on the way; a final `-` appends to an array.
    pub fn set(&mut self, pointer: &str, value: Value) -> &mut Self {
        set_pointer(&mut self.config, pointer, value);
        self.write_config();
        self
    }

    /// Removes the value at a JSON pointer, if present.
    pub fn remove(&mut self, pointer: &str) -> &mut Self {
        let (parent, key) = pointer.rsplit_once('/').expect("pointer starts with /");
        match self.config.pointer_mut(parent) {
            Some(Value::Object(m)) => drop(m.remove(&unescape_token(key))),
            Some(Value::Array(a)) => {
                if let Ok(i) = key.parse::<usize>() {
                    if i < a.len() {
                        a.remove(i);
                    }
                }
            }
            _ => {}
        }
        self.write_config();
        self
    }

    /// Sets `process.args`.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.set("/process/args", json!(args))
    }

    /// Sets `process.args` to `/bin/berth-probe ARGS...`.
    pub fn probe(&mut self, args: &[&str]) -> &mut Self {
        let mut all = vec!["/bin/berth-probe"];
        all.extend_from_slice(args);
        self.args(&all)
    }

    /// Appends `KEY=VALUE` to `process.env`.
    pub fn env(&mut self, entry: &str) -> &mut Self {
        push_env(&mut self.config, entry);
        self.write_config();
        self
    }

    /// Adds a namespace (`{"type": ty}`, with `path` if given), replacing one of that type.
    pub fn namespace(&mut self, ty: &str, path: Option<&str>) -> &mut Self {
        self.config(|c| {
            let list = c["linux"]["namespaces"]
                .as_array_mut()
                .expect("linux.namespaces is an array");
            list.retain(|n| n["type"] != ty);
            let mut ns = json!({ "type": ty });
            if let Some(p) = path {
                ns["path"] = json!(p);
            }
            list.push(ns);
        })
    }

    /// Removes the namespace of type `ty`.
    pub fn without_namespace(&mut self, ty: &str) -> &mut Self {
        self.config(|c| {
            if let Some(list) = c["linux"]["namespaces"].as_array_mut() {
                list.retain(|n| n["type"] != ty);
            }
        })
    }

    /// Writes `contents` to `rel` inside the rootfs (parents created).
    pub fn write_file(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.rootfs().join(rel.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, contents).unwrap_or_else(|e| panic!("writing {}: {e}", p.display()));
        p
    }

    /// Creates directory `rel` inside the rootfs (with parents).
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.rootfs().join(rel.trim_start_matches('/'));
        fs::create_dir_all(&p).unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
        p
    }

    fn write_config(&self) {
        let text = serde_json::to_string_pretty(&self.config).unwrap();
        fs::write(self.config_path(), text).expect("writing config.json");
    }
}

impl Default for Bundle {
    fn default() -> Self {
        Bundle::new()
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        if self.owned {
            cleanup::remove_tree(&self.dir);
        }
    }
}

fn push_env(config: &mut Value, entry: &str) {
    let env = config["process"]["env"]
        .as_array_mut()
        .expect("process.env is an array");
    let key = entry.split('=').next().unwrap_or(entry);
    env.retain(|e| e.as_str().and_then(|s| s.split('=').next()) != Some(key));
    env.push(json!(entry));
}

fn unescape_token(t: &str) -> String {
    t.replace("~1", "/").replace("~0", "~")
}

/// Sets `value` at `pointer` in `root`, creating objects (or filling arrays) on the way.
pub fn set_pointer(root: &mut Value, pointer: &str, value: Value) {
    assert!(
        pointer.starts_with('/'),
        "JSON pointer must start with /: {pointer}"
    );
    let tokens: Vec<String> = pointer[1..].split('/').map(unescape_token).collect();
    let mut cur = root;
    for (i, tok) in tokens.iter().enumerate() {
        let last = i == tokens.len() - 1;
        if cur.is_null() {
            *cur = json!({});
        }
        cur = match cur {
            Value::Object(m) => {
                if last {
                    m.insert(tok.clone(), value);
                    return;
                }
                m.entry(tok.clone()).or_insert(Value::Null)
            }
            Value::Array(a) => {
                let idx = if tok == "-" {
                    a.len()
                } else {
                    tok.parse()
                        .unwrap_or_else(|_| panic!("{pointer}: {tok} is not an index"))
                };
                if idx >= a.len() {
                    a.resize(idx + 1, Value::Null);
                }
                if last {
                    a[idx] = value;
                    return;
                }
                &mut a[idx]
            }
            other => panic!("{pointer}: cannot descend into {other}"),
        };
    }
    unreachable!("the last token always returns")
}

/// The runc 1.1 `runc spec` default (ociVersion bumped to 1.2.0), with a process that
/// needs no terminal (`terminal: false`) and runs `/bin/berth-probe report`.
pub fn default_config() -> Value {
    json!({
        "ociVersion": "1.2.0",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": ["/bin/berth-probe", "report"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm"
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": true },
        "hostname": "berth",
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            {
                "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
                "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]
            },
            {
                "destination": "/dev/pts", "type": "devpts", "source": "devpts",
                "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]
            },
            {
                "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
                "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]
            },
            {
                "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
                "options": ["nosuid", "noexec", "nodev"]
            },
            {
                "destination": "/sys", "type": "sysfs", "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"]
            },
            {
                "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]
            }
        ],
        "linux": {
            "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
            "namespaces": [
                { "type": "pid" },
                { "type": "network" },
                { "type": "ipc" },
                { "type": "uts" },
                { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

/// Fills `rootfs` with busybox, its applets, berth-probe and a minimal /etc.
pub fn populate_rootfs(rootfs: &Path) {
    for d in [
        "bin", "dev", "etc", "proc", "sys", "tmp", "root", "home", "run", "var", "usr/bin",
    ] {
        fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    fs::set_permissions(rootfs, fs::Permissions::from_mode(0o755)).unwrap();
    let bin = rootfs.join("bin");
    fs::copy(assets::busybox(), bin.join("busybox")).expect("copying busybox");
    fs::copy(assets::probe(), bin.join("berth-probe")).expect("copying berth-probe");
    for applet in assets::applets() {
        let _ = symlink("busybox", bin.join(applet));
    }
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    fs::write(
        rootfs.join("etc/group"),
        "root:x:0:\ntty:x:5:\nnogroup:x:65534:\n",
    )
    .unwrap();
    fs::write(rootfs.join("etc/hostname"), "berth\n").unwrap();
}
