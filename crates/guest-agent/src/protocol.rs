//! Messages on the control port, one JSON object per line.

use serde::{Deserialize, Serialize};

/// Name of the virtio-console port carrying [`HostMessage`]s and [`GuestMessage`]s.
pub const CONTROL_PORT: &str = "berth.control";
/// Name of the port the command's stdout is connected to.
pub const STDOUT_PORT: &str = "berth.stdout";
/// Name of the port the command's stderr is connected to.
pub const STDERR_PORT: &str = "berth.stderr";
/// Name of the port the command's stdin comes from (with [`RunRequest::stdin`]); it
/// reads end of file once the host closes its side.
pub const STDIN_PORT: &str = "berth.stdin";
/// File in the initramfs listing the kernel modules to load, one path a line, in order.
pub const MODULE_LIST: &str = "/lib/modules/berth.list";
/// Like [`MODULE_LIST`], for the modules loaded only when the request shares host
/// directories (virtio-9p): each module loaded costs boot time.
pub const SHARE_MODULE_LIST: &str = "/lib/modules/berth-9p.list";
/// Like [`SHARE_MODULE_LIST`], for the modules loaded only when the request has a
/// network (virtio-net).
pub const NET_MODULE_LIST: &str = "/lib/modules/berth-net.list";
/// PATH used to find the command when the request's env has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What to run in the guest, and as whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRequest {
    /// The command and its arguments; `args[0]` is looked up in the env's PATH.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries, the command's whole environment.
    #[serde(default)]
    pub env: Vec<String>,
    /// Working directory inside the root disk.
    #[serde(default = "default_cwd")]
    pub cwd: String,
    /// User id of the command.
    #[serde(default)]
    pub uid: u32,
    /// Group id of the command.
    #[serde(default)]
    pub gid: u32,
    /// Supplementary groups of the command.
    #[serde(default)]
    pub additional_gids: Vec<u32>,
    /// Hostname of the guest, if set.
    #[serde(default)]
    pub hostname: Option<String>,
    /// Filesystems mounted in the root disk before the command starts, in order.
    #[serde(default)]
    pub mounts: Vec<GuestMount>,
    /// The root disk is remounted read-only once `mounts` are in place.
    #[serde(default)]
    pub readonly_root: bool,
    /// The guest's network interface (`eth0`, virtio-net), configured before the
    /// command starts; none: the guest has only `lo`.
    #[serde(default)]
    pub network: Option<GuestNetwork>,
    /// Files written into the root disk before the command starts (the network's
    /// `/etc/hosts` and `/etc/resolv.conf`), after `mounts`.
    #[serde(default)]
    pub files: Vec<GuestFile>,
    /// The command's stdin is [`STDIN_PORT`] (`-i`); else /dev/null.
    #[serde(default)]
    pub stdin: bool,
    /// The command runs on a pty (`-t`): the pty's output goes to [`STDOUT_PORT`],
    /// its input comes from [`STDIN_PORT`] with `stdin`.
    #[serde(default)]
    pub terminal: bool,
    /// The pty's size at start (rows, columns), with `terminal`; later changes come
    /// as [`HostMessage::Resize`].
    #[serde(default)]
    pub window: Option<(u16, u16)>,
}

/// The address of the guest's `eth0` (its MAC is set by the host, on the device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestNetwork {
    /// The address.
    pub address: std::net::Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix: u8,
    /// The default route's gateway, if any (none on an internal network).
    #[serde(default)]
    pub gateway: Option<std::net::Ipv4Addr>,
}

/// A file the agent writes into the root disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestFile {
    /// Absolute path in the root disk (its directory is made if missing).
    pub path: String,
    /// Its contents.
    pub contents: String,
}

/// A filesystem the agent mounts for the command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestMount {
    /// A host directory shared over virtio-9p, by its mount tag.
    Share {
        /// The 9p mount tag.
        tag: String,
        /// Absolute path in the root disk (made if missing).
        destination: String,
        /// Mounted read-only.
        readonly: bool,
    },
    /// An empty tmpfs.
    Tmpfs {
        /// Absolute path in the root disk (made if missing).
        destination: String,
    },
}

fn default_cwd() -> String {
    "/".to_owned()
}

impl RunRequest {
    /// A request for `args` as root in `/`, with an empty environment.
    pub fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            args: args.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: default_cwd(),
            uid: 0,
            gid: 0,
            additional_gids: Vec::new(),
            hostname: None,
            mounts: Vec::new(),
            readonly_root: false,
            network: None,
            files: Vec::new(),
            stdin: false,
            terminal: false,
            window: None,
        }
    }

    /// The PATH given in `env`, or [`DEFAULT_PATH`].
    pub fn path_var(&self) -> &str {
        self.env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
    }
}

/// Host → guest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostMessage {
    /// Run this command (once, first).
    Run(RunRequest),
    /// Send this signal to the command.
    Signal(i32),
    /// The host's terminal size, for the command's pty (with [`RunRequest::terminal`]).
    Resize {
        /// Rows.
        rows: u16,
        /// Columns.
        cols: u16,
    },
}

/// How the command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitStatus {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

/// Guest → host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestMessage {
    /// The agent is up and waits for a [`HostMessage::Run`].
    Ready,
    /// The command runs with this pid (in the guest).
    Started {
        /// Its pid in the guest.
        pid: i32,
    },
    /// The command ended; the guest powers off next.
    Exited(ExitStatus),
    /// The agent failed; the guest powers off next.
    Error(String),
}

impl GuestMessage {
    /// One line of JSON, newline included.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("guest messages serialise");
        s.push('\n');
        s
    }
}

impl HostMessage {
    /// One line of JSON, newline included.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).expect("host messages serialise");
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_as_lines() {
        let run = HostMessage::Run(RunRequest::new(["echo", "hi"]));
        let line = run.to_line();
        assert!(line.ends_with('\n') && !line[..line.len() - 1].contains('\n'));
        assert_eq!(serde_json::from_str::<HostMessage>(&line).unwrap(), run);
        let resize = HostMessage::Resize { rows: 24, cols: 80 };
        assert_eq!(resize.to_line(), "{\"resize\":{\"rows\":24,\"cols\":80}}\n");
        let exit = GuestMessage::Exited(ExitStatus::Code(3));
        assert_eq!(exit.to_line(), "{\"exited\":{\"code\":3}}\n");
        assert_eq!(
            serde_json::from_str::<GuestMessage>("\"ready\"").unwrap(),
            GuestMessage::Ready
        );
    }

    #[test]
    fn request_defaults_and_path() {
        let r: RunRequest = serde_json::from_str(r#"{"args":["true"]}"#).unwrap();
        assert_eq!(r.cwd, "/");
        assert!(!r.stdin && !r.terminal);
        assert_eq!(r.path_var(), DEFAULT_PATH);
        let r = RunRequest {
            env: vec!["PATH=/x".into(), "A=b".into()],
            ..r
        };
        assert_eq!(r.path_var(), "/x");
    }
}
