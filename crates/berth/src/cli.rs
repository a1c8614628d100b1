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
pub struct RunArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// The container's name.
    #[arg(long)]
    pub name: Option<String>,
    /// process or container.
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
    /// none or host.
    #[arg(long, default_value = "none")]
    pub network: Network,
    /// Memory limit (bytes, or with b/k/m/g).
    #[arg(short = 'm', long, value_parser = berth_engine::spec::parse_memory)]
    pub memory: Option<i64>,
    /// CPU limit, in CPUs.
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Most processes.
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// Bind mount SRC:DST[:ro].
    #[arg(short = 'v', long = "volume")]
    pub volume: Vec<Volume>,
    /// Mount a tmpfs at this path.
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// The image.
    pub image: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
