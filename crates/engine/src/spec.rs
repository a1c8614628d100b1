//! The OCI runtime config of a container: runc's defaults (`runc spec`: mounts,
//! namespaces, capabilities, masked and read-only paths, a deny-all device
//! cgroup), then the image config (Entrypoint, Cmd, Env, WorkingDir, User), then
//! the `berth run` flags.

use std::path::{Path, PathBuf};

use berth_image::RunConfig;
use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxNamespaceType,
    LinuxPidsBuilder, LinuxResourcesBuilder, Mount, MountBuilder, Spec, UserBuilder,
};

use crate::error::EngineError;
use crate::user;

/// `--network`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Network {
    /// A new network namespace with only a loopback device (down).
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// A berth network (`bridge` is the default one): a namespace of its own,
    /// joined to the network by the engine before the runtime starts.
    Named(String),
    /// `container:NAME`: the network namespace of another container.
    Container(String),
}

impl std::str::FromStr for Network {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "host" => Ok(Self::Host),
            other => match other.strip_prefix("container:") {
                Some("") => Err("--network container: needs a container name".into()),
                Some(c) => Ok(Self::Container(c.to_owned())),
                None if berth_net::state::valid_name(other) => Ok(Self::Named(other.to_owned())),
                None => Err(format!(
                    "network {other:?}: none, host, container:NAME or a network's name"
                )),
            },
        }
    }
}

/// A `-v SRC:DST[:ro]` bind mount of a host path, or of a named volume when SRC
/// is not a path (the engine resolves it before [`build`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    /// The host path, or the volume's name when `named`.
    pub source: PathBuf,
    /// `source` is a named volume (`<root>/volumes/<name>/_data`).
    pub named: bool,
    /// The path in the container.
    pub destination: String,
    /// Mounted read-only.
    pub readonly: bool,
}

impl std::str::FromStr for Volume {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        let (src, dst, readonly) = match parts.as_slice() {
            [src, dst] => (*src, *dst, false),
            [src, dst, "ro"] => (*src, *dst, true),
            [src, dst, "rw"] => (*src, *dst, false),
            _ => return Err(format!("volume {s:?}: expected SRC:DST[:ro|rw]")),
        };
        let named = !src.starts_with('/');
        if !dst.starts_with('/') || (named && !crate::volumes::valid_name(src)) {
            return Err(format!(
                "volume {s:?}: SRC is an absolute path or a volume name, DST an absolute path"
            ));
        }
        Ok(Self {
            source: src.into(),
            named,
            destination: dst.into(),
            readonly,
        })
    }
}

/// What `berth run` asks for beyond the image.
#[derive(Debug, Clone, Default)]
pub struct RunFlags {
    /// Replaces the image's Entrypoint (and drops its Cmd).
    pub entrypoint: Option<String>,
    /// Replaces the image's Cmd when not empty.
    pub command: Vec<String>,
    /// `-e K=V` (or `-e K`: the engine's own value), after `env_files`.
    pub env: Vec<String>,
    /// `--env-file` paths: `K=V` lines, `#` comments.
    pub env_files: Vec<PathBuf>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `--hostname` (default: the first 12 characters of the id).
    pub hostname: Option<String>,
    /// `--read-only` root.
    pub read_only: bool,
    /// `--network`.
    pub network: Network,
    /// `--memory` in bytes.
    pub memory: Option<i64>,
    /// `--cpus`.
    pub cpus: Option<f64>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `-v`.
    pub volumes: Vec<Volume>,
    /// `--tmpfs` destinations.
    pub tmpfs: Vec<String>,
    /// `--cap-add`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`.
    pub cap_drop: Vec<String>,
    /// `--security-opt`.
    pub security: crate::security::SecurityOpts,
    /// `-t`: the process gets a pty (`process.terminal`).
    pub tty: bool,
    /// `--ip`, `-p`, `-P`, `--dns`, `--add-host`.
    pub net: crate::network::NetFlags,
    /// `--accel` (`--isolation vm`): `None` detects.
    pub accel: Option<berth_vm::Accel>,
}

/// Parses `--memory`: bytes with an optional `b`, `k`, `m` or `g` suffix.
pub fn parse_memory(s: &str) -> Result<i64, String> {
    let lower = s.trim().to_ascii_lowercase();
    let (num, shift) = match lower.char_indices().last() {
        Some((i, 'b')) => (&lower[..i], 0),
        Some((i, 'k')) => (&lower[..i], 10),
        Some((i, 'm')) => (&lower[..i], 20),
        Some((i, 'g')) => (&lower[..i], 30),
        _ => (lower.as_str(), 0),
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("memory {s:?}: expected a number with an optional b/k/m/g suffix"))?;
    n.checked_mul(1 << shift)
        .filter(|v| *v > 0)
        .ok_or_else(|| format!("memory {s:?}: out of range"))
}

pub(crate) fn set_env(env: &mut Vec<String>, entry: String) {
    let key = entry.split('=').next().unwrap_or_default().to_owned();
    env.retain(|e| e.split('=').next() != Some(key.as_str()));
    env.push(entry);
}

fn env_entry(text: &str) -> Option<String> {
    if text.contains('=') {
        Some(text.to_owned())
    } else {
        std::env::var(text).ok().map(|v| format!("{text}={v}"))
    }
}

fn invalid(msg: String) -> EngineError {
    EngineError::Invalid(msg)
}

/// The process environment: image Env, then env files, then `-e`.
fn environment(image: &RunConfig, flags: &RunFlags) -> Result<Vec<String>, EngineError> {
    let mut env = image.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(
            0,
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        );
    }
    for path in &flags.env_files {
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(format!("reading env file {}: {e}", path.display())))?;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(e) = env_entry(line) {
                set_env(&mut env, e);
            }
        }
    }
    for e in flags.env.iter().filter_map(|e| env_entry(e)) {
        set_env(&mut env, e);
    }
    Ok(env)
}

/// argv: Entrypoint + Cmd, with docker's overrides.
fn argv(image: &RunConfig, flags: &RunFlags) -> Result<Vec<String>, EngineError> {
    let mut args = match &flags.entrypoint {
        Some(e) if e.is_empty() => vec![],
        Some(e) => vec![e.clone()],
        None => image.entrypoint.clone().unwrap_or_default(),
    };
    if !flags.command.is_empty() {
        args.extend(flags.command.iter().cloned());
    } else if flags.entrypoint.is_none() {
        args.extend(image.cmd.clone().unwrap_or_default());
    }
    if args.is_empty() {
        return Err(invalid(
            "no command: the image has no Entrypoint or Cmd and none was given".into(),
        ));
    }
    Ok(args)
}

fn extra_mounts(flags: &RunFlags) -> Result<Vec<Mount>, EngineError> {
    let mut mounts = Vec::new();
    for v in &flags.volumes {
        if !v.source.exists() {
            return Err(invalid(format!(
                "volume source {} does not exist",
                v.source.display()
            )));
        }
        let mut options = vec!["rbind".to_owned()];
        options.push(if v.readonly { "ro" } else { "rw" }.into());
        mounts.push(
            MountBuilder::default()
                .destination(&v.destination)
                .typ("bind")
                .source(&v.source)
                .options(options)
                .build()
                .map_err(|e| invalid(format!("volume {}: {e}", v.destination)))?,
        );
    }
    for dst in &flags.tmpfs {
        if !dst.starts_with('/') {
            return Err(invalid(format!("tmpfs {dst:?}: path must be absolute")));
        }
        mounts.push(
            MountBuilder::default()
                .destination(dst)
                .typ("tmpfs")
                .source("tmpfs")
                .options(vec!["nosuid".into(), "nodev".into(), "mode=1777".into()])
                .build()
                .map_err(|e| invalid(format!("tmpfs {dst}: {e}")))?,
        );
    }
    Ok(mounts)
}

fn resources(flags: &RunFlags) -> Result<oci_spec::runtime::LinuxResources, EngineError> {
    let err = |e: oci_spec::OciSpecError| invalid(format!("resources: {e}"));
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .map_err(err)?;
    let mut b = LinuxResourcesBuilder::default().devices(vec![deny_all]);
    if let Some(limit) = flags.memory {
        b = b.memory(
            LinuxMemoryBuilder::default()
                .limit(limit)
                .build()
                .map_err(err)?,
        );
    }
    if let Some(cpus) = flags.cpus {
        if !(cpus > 0.0 && cpus <= 1024.0) {
            return Err(invalid(format!("--cpus {cpus}: out of range")));
        }
        let period = 100_000u64;
        let quota = (cpus * period as f64).round() as i64;
        b = b.cpu(
            LinuxCpuBuilder::default()
                .period(period)
                .quota(quota)
                .build()
                .map_err(err)?,
        );
    }
    if let Some(limit) = flags.pids_limit {
        b = b.pids(
            LinuxPidsBuilder::default()
                .limit(limit)
                .build()
                .map_err(err)?,
        );
    }
    b.build().map_err(err)
}

/// The config of container `id` whose root is mounted at `rootfs` (read for user
/// and group names), from the image's run config and `flags`.
pub fn build(
    id: &str,
    rootfs: &Path,
    image: &RunConfig,
    flags: &RunFlags,
) -> Result<Spec, EngineError> {
    let mut spec = Spec::default();
    let user_spec = flags
        .user
        .clone()
        .or_else(|| image.user.clone())
        .unwrap_or_default();
    let ids = user::resolve(rootfs, &user_spec)?;
    let cwd = flags
        .workdir
        .clone()
        .or_else(|| image.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(invalid(format!(
            "working directory {cwd:?} must be absolute"
        )));
    }
    let process = spec
        .process_mut()
        .as_mut()
        .expect("default spec has a process");
    process.set_args(Some(argv(image, flags)?));
    process.set_terminal(Some(flags.tty));
    process.set_env(Some(environment(image, flags)?));
    process.set_cwd(cwd.into());
    process.set_user(
        UserBuilder::default()
            .uid(ids.uid)
            .gid(ids.gid)
            .additional_gids(ids.additional_gids)
            .build()
            .map_err(|e| invalid(format!("user: {e}")))?,
    );
    let root = spec.root_mut().as_mut().expect("default spec has a root");
    root.set_path("rootfs".into());
    root.set_readonly(Some(flags.read_only));
    let hostname = flags
        .hostname
        .clone()
        .unwrap_or_else(|| id.chars().take(12).collect());
    spec.set_hostname(Some(hostname));
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.extend(extra_mounts(flags)?);
    spec.set_mounts(Some(mounts));
    if flags.network == Network::Host {
        set_network_namespace(&mut spec, None)?;
    }
    let linux = spec.linux_mut().as_mut().expect("default spec has linux");
    linux.set_resources(Some(resources(flags)?));
    crate::security::apply(&mut spec, &flags.cap_add, &flags.cap_drop, &flags.security)?;
    Ok(spec)
}

/// The config's network namespace: none of its own (`None`: the host's), or the
/// one at `path`.
pub(crate) fn set_network_namespace(
    spec: &mut Spec,
    path: Option<&Path>,
) -> Result<(), EngineError> {
    let linux = spec.linux_mut().as_mut().expect("default spec has linux");
    let mut namespaces: Vec<_> = linux
        .namespaces()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.typ() != LinuxNamespaceType::Network)
        .collect();
    if let Some(path) = path {
        namespaces.push(
            oci_spec::runtime::LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(path)
                .build()
                .map_err(|e| invalid(format!("network namespace: {e}")))?,
        );
    }
    linux.set_namespaces(Some(namespaces));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> RunConfig {
        RunConfig {
            env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
            entrypoint: Some(vec!["/ep".into()]),
            cmd: Some(vec!["c1".into()]),
            working_dir: Some("/srv".into()),
            ..RunConfig::default()
        }
    }

    #[test]
    fn argv_overrides() {
        let mut f = RunFlags::default();
        assert_eq!(argv(&image(), &f).unwrap(), ["/ep", "c1"]);
        f.command = vec!["x".into()];
        assert_eq!(argv(&image(), &f).unwrap(), ["/ep", "x"]);
        f.entrypoint = Some("/e2".into());
        assert_eq!(argv(&image(), &f).unwrap(), ["/e2", "x"]);
        f.command.clear();
        assert_eq!(argv(&image(), &f).unwrap(), ["/e2"]);
        assert!(argv(&RunConfig::default(), &RunFlags::default()).is_err());
    }

    #[test]
    fn env_overrides() {
        let f = RunFlags {
            env: vec!["A=2".into(), "B=3".into()],
            ..RunFlags::default()
        };
        assert_eq!(
            environment(&image(), &f).unwrap(),
            ["PATH=/bin", "A=2", "B=3"]
        );
    }

    #[test]
    fn flag_parsing() {
        assert_eq!(parse_memory("64m").unwrap(), 64 << 20);
        assert_eq!(parse_memory("1G").unwrap(), 1 << 30);
        assert_eq!(parse_memory("4096").unwrap(), 4096);
        assert!(parse_memory("lots").is_err());
        let v: Volume = "/a:/b:ro".parse().unwrap();
        assert!(v.readonly && v.destination == "/b");
        assert!("a:/b".parse::<Volume>().unwrap().named);
        assert!("../a:/b".parse::<Volume>().is_err());
        assert!(":/b".parse::<Volume>().is_err());
        assert!("/a:/b:rx".parse::<Volume>().is_err());
    }

    #[test]
    fn network_and_resources() {
        let dir = tempfile::tempdir().unwrap();
        let flags = RunFlags {
            network: Network::Host,
            memory: Some(1 << 26),
            cpus: Some(1.5),
            pids_limit: Some(10),
            read_only: true,
            ..RunFlags::default()
        };
        let spec = build("abcdef0123456789", dir.path(), &image(), &flags).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        let ns = linux.namespaces().as_ref().unwrap();
        assert!(ns.iter().all(|n| n.typ() != LinuxNamespaceType::Network));
        let res = linux.resources().as_ref().unwrap();
        assert_eq!(res.cpu().as_ref().unwrap().quota(), Some(150_000));
        assert_eq!(res.pids().as_ref().unwrap().limit(), 10);
        assert_eq!(spec.hostname().as_deref(), Some("abcdef012345"));
        assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
        let none = build("x", dir.path(), &image(), &RunFlags::default()).unwrap();
        let ns = none.linux().as_ref().unwrap().namespaces().clone().unwrap();
        assert!(ns.iter().any(|n| n.typ() == LinuxNamespaceType::Network));
    }
}
