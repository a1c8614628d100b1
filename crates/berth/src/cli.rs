//! The clap definition of every verb.

use std::path::PathBuf;

use berth_engine::{Isolation, Network, Volume};
use clap::{Args, Parser, Subcommand};

/// A daemonless container engine.
#[derive(Debug, Parser)]
#[command(name = "berth", version)]
pub struct Cli {
    /// Where images, snapshots and containers live.
    #[arg(long, env = "BERTH_ROOT", default_value = berth_engine::DEFAULT_ROOT, global = true)]
    pub root: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create and run a container in the foreground.
    Run(Box<RunArgs>),
    /// Pull an image from a registry.
    Pull(PullArgs),
    /// List images.
    Images(FormatArgs),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// List containers.
    Ps(PsArgs),
    /// Remove containers.
    Rm(RmArgs),
    /// Create a container without starting it.
    Create(Box<RunArgs>),
    /// Start created or exited containers in the background.
    Start(ContainersArgs),
    /// Stop running containers: SIGTERM, then SIGKILL after a timeout.
    Stop(StopArgs),
    /// Stop and start containers again.
    Restart(StopArgs),
    /// Send a signal to running containers.
    Kill(KillArgs),
    /// Wait for containers to exit and print their exit codes.
    Wait(ContainersArgs),
    /// Show a detached container's output.
    Logs(LogsArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// (Internal) the monitor of a detached container.
    #[command(name = "__monitor", hide = true)]
    Monitor(MonitorArgs),
    /// Give an image another name.
    Tag(TagArgs),
    /// Remove images (their content once no name is left).
    Rmi(RmiArgs),
    /// Show an image or a container as JSON.
    Inspect(InspectArgs),
    /// Write images to a tar archive.
    Save(SaveArgs),
    /// Load images from a tar archive (docker-archive or oci-archive).
    Load(LoadArgs),
    /// Write a container's filesystem to a tar archive.
    Export(ExportArgs),
    /// Make a one-layer image from a tar archive.
    Import(ImportArgs),
    /// Push an image to a registry.
    Push(PushArgs),
    /// Store credentials for a registry (checked with it first).
    Login(LoginArgs),
    /// Forget a registry's credentials.
    Logout(LogoutArgs),
    /// Disk usage and cleanup.
    #[command(subcommand)]
    System(SystemCommand),
    /// Manage named volumes.
    #[command(subcommand)]
    Volume(VolumeCommand),
    /// Show a running container's processes.
    Top(TopArgs),
    /// Show running containers' CPU, memory and process counts.
    Stats(StatsArgs),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCommand),
    /// Show a container's published ports.
    Port(PortArgs),
    /// (Internal) the name server of a network.
    #[command(name = "__dns", hide = true)]
    Dns(DnsArgs),
    /// (Internal) removes an empty network's link and rules after a grace period.
    #[command(name = "__netgc", hide = true)]
    NetGc(NetGcArgs),
}

#[derive(Debug, Subcommand)]
pub enum NetworkCommand {
    /// Create a network (its bridge, rules and name server come with its first
    /// container).
    Create(NetworkCreateArgs),
    /// List networks.
    Ls(FormatArgs),
    /// Show networks as JSON (config and leases).
    Inspect(NetworkNamesArgs),
    /// Remove networks no container uses.
    Rm(NetworkNamesArgs),
    /// Join a container to a network.
    Connect(NetworkConnectArgs),
    /// Take a container off a network.
    Disconnect(NetworkDisconnectArgs),
}

#[derive(Debug, Args)]
pub struct NetworkCreateArgs {
    /// bridge or routed.
    #[arg(long, default_value = "bridge")]
    pub driver: berth_engine::berth_net::Driver,
    /// IPv4 CIDR (default: a free /24 in 10.89.0.0-10.99.255.0).
    #[arg(long)]
    pub subnet: Option<berth_engine::berth_net::Ipv4Cidr>,
    /// The gateway (default: the subnet's first address).
    #[arg(long)]
    pub gateway: Option<std::net::Ipv4Addr>,
    /// No outbound route, no forwarding in or out.
    #[arg(long)]
    pub internal: bool,
    /// The network's name.
    pub name: String,
}

#[derive(Debug, Args)]
pub struct NetworkNamesArgs {
    /// Network names.
    #[arg(required = true)]
    pub networks: Vec<String>,
}

#[derive(Debug, Args)]
pub struct NetworkConnectArgs {
    /// The address on the network.
    #[arg(long)]
    pub ip: Option<std::net::Ipv4Addr>,
    /// The network.
    pub network: String,
    /// Name or id.
    pub container: String,
}

#[derive(Debug, Args)]
pub struct NetworkDisconnectArgs {
    /// The network.
    pub network: String,
    /// Name or id.
    pub container: String,
}

#[derive(Debug, Args)]
pub struct PortArgs {
    /// Name or id.
    pub container: String,
}

#[derive(Debug, Args)]
pub struct NetGcArgs {
    /// The network.
    pub network: String,
    /// The idle period it was started for.
    pub token: String,
}

#[derive(Debug, Args)]
pub struct DnsArgs {
    /// The network.
    pub network: String,
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the built-in busybox image (localhost/berth/busybox:latest) from the
    /// host's static busybox.
    Default,
    /// List images.
    Ls(FormatArgs),
}

#[derive(Debug, Args)]
pub struct FormatArgs {
    /// `table` or `json`.
    #[arg(long, default_value = "table")]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image reference.
    pub reference: String,
}

#[derive(Debug, Args)]
pub struct PsArgs {
    /// Show all containers, not only running ones.
    #[arg(short, long)]
    pub all: bool,
    /// `table` or `json`.
    #[arg(long, default_value = "table")]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Kill and remove a running container.
    #[arg(short, long)]
    pub force: bool,
    /// Names or ids.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ContainersArgs {
    /// Names or ids.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    /// Seconds to wait after SIGTERM before SIGKILL.
    #[arg(short = 't', long = "time", default_value_t = 10)]
    pub time: u64,
    /// Names or ids.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    /// The signal, by name (TERM, SIGHUP) or number.
    #[arg(short = 's', long = "signal", default_value = "KILL")]
    pub signal: String,
    /// Names or ids.
    #[arg(required = true)]
    pub containers: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing output until the container exits.
    #[arg(short, long)]
    pub follow: bool,
    /// Only the last N lines.
    #[arg(short = 'n', long)]
    pub tail: Option<usize>,
    /// Prefix each line with its time.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Name or id.
    pub container: String,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// Keep stdin open (otherwise it is /dev/null).
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// Set an environment variable (K=V, or K to pass the engine's own).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// The working directory.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// user[:group] or uid[:gid].
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Name or id.
    pub container: String,
    /// The command and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The container's id.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Run in the background and print the container's id.
    #[arg(short, long)]
    pub detach: bool,
    /// The container's name.
    #[arg(long)]
    pub name: Option<String>,
    /// Keep stdin open to the process (otherwise it is /dev/null).
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short, long)]
    pub tty: bool,
    /// process, container or vm.
    #[arg(long, default_value = "container")]
    pub isolation: Isolation,
    /// The hostname.
    #[arg(long)]
    pub hostname: Option<String>,
    /// Set an environment variable (K=V, or K to pass the engine's own).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read environment variables from a file.
    #[arg(long = "env-file")]
    pub env_file: Vec<PathBuf>,
    /// The working directory.
    #[arg(short = 'w', long = "workdir")]
    pub workdir: Option<String>,
    /// user[:group] or uid[:gid].
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Replace the image's entrypoint.
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Mount the root read-only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// none, host, container:NAME, or a network's name (`bridge`: the default
    /// network, made on first use).
    #[arg(long, default_value = "none")]
    pub network: Network,
    /// The container's IPv4 address on the network.
    #[arg(long)]
    pub ip: Option<std::net::Ipv4Addr>,
    /// Publish a port: [HOSTIP:][HOSTPORT:]CTRPORT[/tcp|udp].
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<berth_engine::berth_net::PortSpec>,
    /// Publish every port the image exposes on a free host port.
    #[arg(short = 'P', long = "publish-all")]
    pub publish_all: bool,
    /// A name server for /etc/resolv.conf (after the network's own).
    #[arg(long, value_parser = berth_engine::berth_net::parse_dns)]
    pub dns: Vec<std::net::IpAddr>,
    /// An /etc/hosts entry, NAME:IP.
    #[arg(long = "add-host")]
    pub add_host: Vec<berth_engine::berth_net::HostEntry>,
    /// Memory limit (bytes, or with b/k/m/g).
    #[arg(short = 'm', long, value_parser = berth_engine::spec::parse_memory)]
    pub memory: Option<i64>,
    /// CPU limit, in CPUs.
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Most processes.
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Bind mount SRC:DST[:ro]; SRC is a host path or a volume name.
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<Volume>,
    /// Mount a tmpfs at this path.
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Add a capability (SYS_ADMIN, CAP_NET_RAW, ALL…).
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    /// Drop a capability (ALL drops every one).
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    /// seccomp=unconfined, seccomp=PROFILE.json or no-new-privileges.
    #[arg(long = "security-opt")]
    pub security_opt: Vec<String>,
    /// With --isolation vm: kvm or tcg (default: KVM where it works).
    #[arg(long)]
    pub accel: Option<berth_engine::Accel>,
    /// The image.
    pub image: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Debug, Args)]
pub struct TagArgs {
    /// The image (name or id).
    pub source: String,
    /// The new name.
    pub target: String,
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Also remove the containers made from the image.
    #[arg(short, long)]
    pub force: bool,
    /// Names or ids.
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// `image` or `container` (default: a container if one has the name, else an image).
    #[arg(long = "type", value_parser = ["image", "container"])]
    pub kind: Option<String>,
    /// Names or ids.
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    /// The archive to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// `docker-archive` or `oci-archive`.
    #[arg(long, default_value = "docker-archive")]
    pub format: berth_engine::archive::ArchiveFormat,
    /// Names or ids.
    #[arg(required = true)]
    pub images: Vec<String>,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The archive to read.
    #[arg(short, long)]
    pub input: PathBuf,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The archive to write.
    #[arg(short, long)]
    pub output: PathBuf,
    /// Name or id.
    pub container: String,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The tar (plain, gzip or zstd).
    pub file: PathBuf,
    /// The image's name (default: localhost/import-<id>:latest).
    pub reference: Option<String>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The image (name or id).
    pub image: String,
    /// Where to push it (default: the image's name).
    pub destination: Option<String>,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The user name (asked on the terminal when missing).
    #[arg(short, long)]
    pub username: Option<String>,
    /// Read the password from standard input.
    #[arg(long = "password-stdin")]
    pub password_stdin: bool,
    /// The registry host (`127.0.0.1:5000`, `docker.io`).
    pub registry: String,
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    /// The registry host.
    pub registry: String,
}

#[derive(Debug, Subcommand)]
pub enum SystemCommand {
    /// Show the disk used by images, containers, layers and blobs.
    Df(FormatArgs),
    /// Remove stopped containers and every blob and layer no image needs.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Also remove every image no container uses.
    #[arg(short, long)]
    pub all: bool,
}

#[derive(Debug, Subcommand)]
pub enum VolumeCommand {
    /// Create a volume (a random name without NAME).
    Create(VolumeCreateArgs),
    /// List volumes.
    Ls(FormatArgs),
    /// Show volumes as JSON.
    Inspect(VolumeNamesArgs),
    /// Remove volumes.
    Rm(VolumeRmArgs),
    /// Remove every volume no container uses.
    Prune(VolumePruneArgs),
}

#[derive(Debug, Args)]
pub struct VolumeCreateArgs {
    /// The volume's name.
    pub name: Option<String>,
}

#[derive(Debug, Args)]
pub struct VolumeNamesArgs {
    /// Volume names.
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VolumeRmArgs {
    /// Remove volumes even when containers use them.
    #[arg(short, long)]
    pub force: bool,
    /// Volume names.
    #[arg(required = true)]
    pub names: Vec<String>,
}

#[derive(Debug, Args)]
pub struct VolumePruneArgs {
    /// Do not ask (berth never asks; accepted for Docker's scripts).
    #[arg(short, long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct TopArgs {
    /// Name or id.
    pub container: String,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Print one sample and exit.
    #[arg(long = "no-stream")]
    pub no_stream: bool,
    /// `table` or `json`.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Names or ids (default: every running container).
    pub containers: Vec<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
