//! Which cgroup hierarchies the host has, from `/proc/self/mountinfo`, and which cgroup
//! a process is in, from `/proc/<pid>/cgroup`. The parsers take `&str` so that they can
//! be tested on text captured from v1, v2 and hybrid hosts.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::CgroupError;
use crate::fsutil;

/// How the host mounted its cgroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// Only v1 hierarchies (one per controller or group of controllers).
    V1,
    /// Only the unified (v2) hierarchy.
    V2,
    /// v1 controllers plus a cgroup2 mount (usually /sys/fs/cgroup/unified) that holds
    /// whatever controllers v1 did not take.
    Hybrid,
}

/// One mounted v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V1Hierarchy {
    /// Where it is mounted, e.g. /sys/fs/cgroup/cpu,cpuacct.
    pub mount_point: PathBuf,
    /// Controllers bound to it ("cpu", "cpuacct"), or "name=systemd" for a named one.
    pub controllers: Vec<String>,
    /// The cgroup of the hierarchy that is mounted (mountinfo's root field, "/" on hosts).
    pub root: String,
}

impl V1Hierarchy {
    /// A hierarchy mounted at `mount_point` with `controllers` (used to build fakes).
    pub fn new(mount_point: impl Into<PathBuf>, controllers: &[&str]) -> Self {
        Self {
            mount_point: mount_point.into(),
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
            root: "/".into(),
        }
    }

    /// True if `controller` is bound to this hierarchy.
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }

    /// The mount directory's own name ("cpu,cpuacct", "memory", "systemd").
    pub fn dir_name(&self) -> String {
        dir_name(&self.mount_point)
    }
}

pub(crate) fn dir_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Every cgroup hierarchy of the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hierarchies {
    /// v1 hierarchies in mount order, each listed once.
    pub v1: Vec<V1Hierarchy>,
    /// Mount point of the cgroup2 hierarchy, if any.
    pub unified: Option<PathBuf>,
}

static HOST: OnceLock<Hierarchies> = OnceLock::new();

impl Hierarchies {
    /// The host's hierarchies; /proc/self/mountinfo is parsed once per process.
    pub fn host() -> Result<&'static Hierarchies, CgroupError> {
        if let Some(h) = HOST.get() {
            return Ok(h);
        }
        let path = Path::new("/proc/self/mountinfo");
        let h =
            Self::from_mountinfo(&fsutil::read(path)?).map_err(|reason| CgroupError::Parse {
                path: path.into(),
                reason,
            })?;
        Ok(HOST.get_or_init(|| h))
    }

    /// Parse mountinfo text. A hierarchy mounted twice (bind mounts) is listed once, at
    /// its first mount point.
    pub fn from_mountinfo(text: &str) -> Result<Self, String> {
        let mut h = Hierarchies::default();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let m = parse_mountinfo_line(line).map_err(|e| format!("line {}: {e}", n + 1))?;
            match m.fstype {
                "cgroup2" if h.unified.is_none() => h.unified = Some(m.mount_point),
                "cgroup" => {
                    let controllers = v1_controllers(m.super_options);
                    if controllers.is_empty() || h.v1.iter().any(|x| x.controllers == controllers) {
                        continue;
                    }
                    h.v1.push(V1Hierarchy {
                        mount_point: m.mount_point,
                        controllers,
                        root: m.root,
                    });
                }
                _ => {}
            }
        }
        Ok(h)
    }

    /// The layout these hierarchies form.
    pub fn layout(&self) -> Result<Layout, CgroupError> {
        let real_v1 = self
            .v1
            .iter()
            .any(|h| h.controllers.iter().any(|c| !c.starts_with("name=")));
        match (real_v1, self.unified.is_some()) {
            (true, true) => Ok(Layout::Hybrid),
            (true, false) => Ok(Layout::V1),
            (false, true) => Ok(Layout::V2),
            (false, false) => Err(CgroupError::NoHierarchy),
        }
    }

    /// The v1 hierarchy holding `controller`.
    pub fn v1_hierarchy(&self, controller: &str) -> Option<&V1Hierarchy> {
        self.v1.iter().find(|h| h.has(controller))
    }
}

/// The host's layout (mountinfo is parsed once per process).
pub fn detect() -> Result<Layout, CgroupError> {
    Hierarchies::host()?.layout()
}

struct MountLine<'a> {
    root: String,
    mount_point: PathBuf,
    fstype: &'a str,
    super_options: &'a str,
}

fn parse_mountinfo_line(line: &str) -> Result<MountLine<'_>, String> {
    // id parent maj:min root mount-point options [optional...] - fstype source super-options
    let fields: Vec<&str> = line.split(' ').collect();
    if fields.len() < 7 {
        return Err(format!("too few fields in {line:?}"));
    }
    let sep = fields
        .iter()
        .skip(6)
        .position(|f| *f == "-")
        .map(|p| p + 6)
        .ok_or_else(|| format!("no \" - \" separator in {line:?}"))?;
    if fields.len() < sep + 4 {
        return Err(format!("too few fields after the separator in {line:?}"));
    }
    Ok(MountLine {
        root: unescape(fields[3]),
        mount_point: PathBuf::from(unescape(fields[4])),
        fstype: fields[sep + 1],
        super_options: fields[sep + 3],
    })
}

/// Undo mountinfo's octal escapes (\040 for space and so on).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|c| (b'0'..=b'7').contains(c)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Controllers named in a v1 mount's super options ("rw,cpu,cpuacct" → cpu, cpuacct).
fn v1_controllers(super_options: &str) -> Vec<String> {
    const NOT_CONTROLLERS: [&str; 5] = ["rw", "ro", "xattr", "clone_children", "noprefix"];
    super_options
        .split(',')
        .filter(|o| !NOT_CONTROLLERS.contains(o))
        .filter(|o| !o.contains('=') || o.starts_with("name="))
        .map(str::to_string)
        .collect()
}

/// One line of /proc/<pid>/cgroup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcCgroup {
    /// Hierarchy id (0 for the unified hierarchy).
    pub hierarchy_id: u32,
    /// Controllers of that hierarchy (empty for the unified one).
    pub controllers: Vec<String>,
    /// The process's cgroup in it.
    pub path: String,
}

/// Parse /proc/<pid>/cgroup text.
pub fn parse_proc_cgroup(text: &str) -> Result<Vec<ProcCgroup>, String> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut it = l.splitn(3, ':');
            let (Some(id), Some(ctrls), Some(path)) = (it.next(), it.next(), it.next()) else {
                return Err(format!("expected id:controllers:path, found {l:?}"));
            };
            let hierarchy_id = id
                .parse()
                .map_err(|_| format!("bad hierarchy id in {l:?}"))?;
            let controllers = ctrls
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            Ok(ProcCgroup {
                hierarchy_id,
                controllers,
                path: path.to_string(),
            })
        })
        .collect()
}

/// The layout implied by /proc/<pid>/cgroup alone: only "0::" is v2, no "0::" is v1.
pub fn layout_from_proc_cgroup(entries: &[ProcCgroup]) -> Option<Layout> {
    let unified = entries.iter().any(|e| e.hierarchy_id == 0);
    let v1 = entries
        .iter()
        .any(|e| e.hierarchy_id != 0 && e.controllers.iter().any(|c| !c.starts_with("name=")));
    match (v1, unified) {
        (true, true) => Some(Layout::Hybrid),
        (true, false) => Some(Layout::V1),
        (false, true) => Some(Layout::V2),
        (false, false) => None,
    }
}

/// The cgroups of process `pid` (0 for the caller).
pub fn process_cgroups(pid: i32) -> Result<Vec<ProcCgroup>, CgroupError> {
    let path = if pid == 0 {
        PathBuf::from("/proc/self/cgroup")
    } else {
        PathBuf::from(format!("/proc/{pid}/cgroup"))
    };
    let text = fsutil::read(&path)?;
    parse_proc_cgroup(&text).map_err(|reason| CgroupError::Parse { path, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
24 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const V1: &str = "\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/usr/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,net_cls,net_prio
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
99 98 0:28 /docker/abc /mnt/memory\\040copy rw,relatime - cgroup cgroup rw,memory
";

    const V2: &str = "\
22 1 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
26 22 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

    #[test]
    fn hybrid_mountinfo() {
        let h = Hierarchies::from_mountinfo(HYBRID).unwrap();
        assert_eq!(h.layout().unwrap(), Layout::Hybrid);
        assert_eq!(h.v1.len(), 9);
        assert_eq!(h.unified, Some(PathBuf::from("/sys/fs/cgroup/unified")));
        assert_eq!(
            h.v1_hierarchy("memory").unwrap().mount_point,
            Path::new("/sys/fs/cgroup/memory")
        );
        let sd = h.v1_hierarchy("name=systemd").unwrap();
        assert_eq!(sd.dir_name(), "systemd");
    }

    #[test]
    fn v1_mountinfo_joint_controllers_and_duplicates() {
        let h = Hierarchies::from_mountinfo(V1).unwrap();
        assert_eq!(h.layout().unwrap(), Layout::V1);
        let cpu = h.v1_hierarchy("cpuacct").unwrap();
        assert_eq!(cpu.controllers, ["cpu", "cpuacct"]);
        assert_eq!(cpu.dir_name(), "cpu,cpuacct");
        // release_agent= is not a controller, name=systemd is kept.
        assert_eq!(h.v1[0].controllers, ["name=systemd"]);
        // The bind mount of memory later in the table is ignored.
        assert_eq!(h.v1.iter().filter(|x| x.has("memory")).count(), 1);
        assert!(h.v1_hierarchy("net_prio").is_some());
    }

    #[test]
    fn v2_mountinfo() {
        let h = Hierarchies::from_mountinfo(V2).unwrap();
        assert_eq!(h.layout().unwrap(), Layout::V2);
        assert!(h.v1.is_empty());
        assert_eq!(h.unified, Some(PathBuf::from("/sys/fs/cgroup")));
    }

    #[test]
    fn no_cgroups_is_an_error() {
        let h = Hierarchies::from_mountinfo("1 0 0:1 / / rw - ext4 /dev/sda rw\n").unwrap();
        assert!(matches!(h.layout(), Err(CgroupError::NoHierarchy)));
    }

    #[test]
    fn malformed_mountinfo() {
        assert!(Hierarchies::from_mountinfo("1 2 3\n").is_err());
        assert!(Hierarchies::from_mountinfo("1 0 0:1 / / rw shared:1 cgroup x rw\n").is_err());
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape("/mnt/a\\040b"), "/mnt/a b");
        assert_eq!(unescape("/x\\"), "/x\\");
        assert_eq!(unescape("/x\\04"), "/x\\04");
    }

    #[test]
    fn proc_cgroup_all_layouts() {
        let hybrid = "9:name=systemd:/\n4:memory:/process_api/ba0e\n2:cpu,cpuacct:/\n0::/\n";
        let e = parse_proc_cgroup(hybrid).unwrap();
        assert_eq!(e.len(), 4);
        assert_eq!(e[1].controllers, ["memory"]);
        assert_eq!(e[1].path, "/process_api/ba0e");
        assert_eq!(e[2].controllers, ["cpu", "cpuacct"]);
        assert_eq!(layout_from_proc_cgroup(&e), Some(Layout::Hybrid));

        let v2 = parse_proc_cgroup("0::/user.slice/user-0.slice/session-1.scope\n").unwrap();
        assert_eq!(v2[0].controllers, Vec::<String>::new());
        assert_eq!(layout_from_proc_cgroup(&v2), Some(Layout::V2));

        let v1 = parse_proc_cgroup("3:memory:/docker/x\n1:name=systemd:/docker/x\n").unwrap();
        assert_eq!(layout_from_proc_cgroup(&v1), Some(Layout::V1));

        // A path may contain ':'.
        let odd = parse_proc_cgroup("0::/a:b\n").unwrap();
        assert_eq!(odd[0].path, "/a:b");
        assert!(parse_proc_cgroup("garbage\n").is_err());
    }

    #[test]
    fn this_host_parses() {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        Hierarchies::from_mountinfo(&text).unwrap();
        process_cgroups(0).unwrap();
    }
}
