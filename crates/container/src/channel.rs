//! Typed messages between the runtime and the processes it forks, over a
//! SOCK_SEQPACKET socketpair (one datagram per message, JSON encoded).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{recv, send, socketpair, AddressFamily, MsgFlags, SockFlag, SockType};
use serde::{Deserialize, Serialize};

/// A message on the create channel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Message {
    /// Parent → intermediate: the cgroup is set up, go on.
    Proceed,
    /// Intermediate → parent: it has a new user namespace; write its id maps.
    MapIds,
    /// Parent → intermediate: the maps are written.
    IdsMapped,
    /// Intermediate → parent: the container's init has this host pid.
    InitPid(i32),
    /// Init → parent: mounts are done; run prestart and createRuntime hooks.
    RunCreateHooks,
    /// Parent → init: those hooks ran; the state JSON for the container's own hooks.
    HooksDone(String),
    /// Container process → parent: its seccomp notify fd has this number in its
    /// table; take it (pidfd_getfd) and hand it to the listener.
    SeccompFd(i32),
    /// Parent → container process: the notify fd reached the listener.
    SeccompFdSent,
    /// Init → parent: everything is ready; it now waits for `start`.
    Ready,
    /// Either way: something failed; the text says what.
    Error(String),
}

/// What went wrong on the channel.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("creating socketpair: {0}")]
    Create(nix::Error),
    #[error("sending {what} on the create channel: {source}")]
    Send {
        what: &'static str,
        source: nix::Error,
    },
    #[error("receiving on the create channel: {0}")]
    Recv(nix::Error),
    #[error("the other side of the create channel exited early")]
    Closed,
    #[error("malformed message on the create channel: {0}")]
    Malformed(serde_json::Error),
    #[error("expected {expected} on the create channel, got {got:?}")]
    Unexpected {
        expected: &'static str,
        got: Message,
    },
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    fd: OwnedFd,
}

/// A connected pair of channel ends.
pub fn pair() -> Result<(Channel, Channel), ChannelError> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(ChannelError::Create)?;
    Ok((Channel { fd: a }, Channel { fd: b }))
}

impl Channel {
    pub fn send(&self, msg: &Message) -> Result<(), ChannelError> {
        let data = serde_json::to_vec(msg).expect("message serialises");
        send(self.fd.as_raw_fd(), &data, MsgFlags::MSG_NOSIGNAL).map_err(|source| {
            ChannelError::Send {
                what: name(msg),
                source,
            }
        })?;
        Ok(())
    }

    pub fn recv(&self) -> Result<Message, ChannelError> {
        let mut buf = vec![0u8; 64 * 1024];
        let n = loop {
            match recv(self.fd.as_raw_fd(), &mut buf, MsgFlags::empty()) {
                Err(nix::Error::EINTR) => continue,
                r => break r.map_err(ChannelError::Recv)?,
            }
        };
        if n == 0 {
            return Err(ChannelError::Closed);
        }
        serde_json::from_slice(&buf[..n]).map_err(ChannelError::Malformed)
    }

    /// Receive and require `expected`; an `Error` from the peer is returned as `Err(text)`.
    pub fn expect(&self, expected: &'static str) -> Result<Result<Message, String>, ChannelError> {
        match self.recv()? {
            Message::Error(text) => Ok(Err(text)),
            got if name(&got) == expected => Ok(Ok(got)),
            got => Err(ChannelError::Unexpected { expected, got }),
        }
    }

    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn name(msg: &Message) -> &'static str {
    match msg {
        Message::Proceed => "Proceed",
        Message::MapIds => "MapIds",
        Message::IdsMapped => "IdsMapped",
        Message::InitPid(_) => "InitPid",
        Message::RunCreateHooks => "RunCreateHooks",
        Message::HooksDone(_) => "HooksDone",
        Message::SeccompFd(_) => "SeccompFd",
        Message::SeccompFdSent => "SeccompFdSent",
        Message::Ready => "Ready",
        Message::Error(_) => "Error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_cross_and_errors_surface() {
        let (a, b) = pair().unwrap();
        a.send(&Message::InitPid(42)).unwrap();
        assert_eq!(b.expect("InitPid").unwrap(), Ok(Message::InitPid(42)));
        a.send(&Message::Error("mounting proc: EPERM".into()))
            .unwrap();
        assert_eq!(
            b.expect("Ready").unwrap(),
            Err("mounting proc: EPERM".into())
        );
        a.send(&Message::Proceed).unwrap();
        assert!(matches!(
            b.expect("Ready"),
            Err(ChannelError::Unexpected { .. })
        ));
        drop(a);
        assert!(matches!(b.recv(), Err(ChannelError::Closed)));
    }
}
