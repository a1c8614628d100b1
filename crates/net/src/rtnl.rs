//! In-process rtnetlink (`NETLINK_ROUTE`): links, addresses and routes, with
//! messages from `netlink-packet-route` over a blocking `netlink-sys` socket. A
//! socket talks to the network namespace of the thread that opened it, so the
//! work inside a container's namespace opens its own [`Rtnl`] in a thread that
//! has `setns`'d there (see [`crate::sys::in_netns`]).
//!
//! Requests are acknowledged one by one (`NLM_F_ACK`): each call returns once the
//! kernel has made the change, or with the kernel's errno in
//! [`NetError::Netlink`] naming what was being done.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

use crate::error::NetError;

/// No such link.
const ENODEV: i32 = nix::errno::Errno::ENODEV as i32;

/// The main routing table.
const RT_TABLE_MAIN: u8 = 254;

/// A link type [`Rtnl::add_link`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// A Linux bridge.
    Bridge,
    /// A dummy link.
    Dummy,
}

/// A route for [`Rtnl::add_route`] (IPv4, main table).
#[derive(Debug, Clone, Copy)]
pub struct Route {
    /// The destination (`0.0.0.0/0` for the default route).
    pub dst: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// `via`.
    pub gateway: Option<Ipv4Addr>,
    /// `src`.
    pub src: Option<Ipv4Addr>,
    /// `dev`, by index.
    pub dev: u32,
}

/// A route of the main table, as [`Rtnl::main_routes`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteEntry {
    /// The destination.
    pub dst: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// The device's index (0 if none).
    pub dev: u32,
}

/// An rtnetlink socket of the calling thread's network namespace.
pub struct Rtnl {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl std::fmt::Debug for Rtnl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rtnl").field("seq", &self.seq).finish()
    }
}

fn nl_err(action: impl Into<String>) -> impl FnOnce(io::Error) -> NetError {
    let action = action.into();
    move |source| NetError::Netlink { action, source }
}

fn link_msg(index: u32, name: Option<&str>) -> LinkMessage {
    let mut m = LinkMessage::default();
    m.header.index = index;
    if let Some(name) = name {
        m.attributes.push(LinkAttribute::IfName(name.to_owned()));
    }
    m
}

fn up(m: &mut LinkMessage) {
    m.header.flags |= LinkFlags::Up;
    m.header.change_mask |= LinkFlags::Up;
}

impl Rtnl {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, NetError> {
        let what = "opening an rtnetlink socket";
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(nl_err(what))?;
        socket.bind_auto().map_err(nl_err(what))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(nl_err(what))?;
        Ok(Self {
            socket,
            seq: 0,
            buf: vec![0; 32 * 1024],
        })
    }

    /// Sends `msg` with `flags` and reads the answers up to the ack (or the end
    /// of the dump): the messages that came before it.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        action: impl FnOnce() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>, NetError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::from(msg));
        req.finalize();
        let mut out = vec![0; req.header.length as usize];
        req.serialize(&mut out);
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let fail = |source| NetError::Netlink {
            action: action(),
            source,
        };
        if let Err(e) = self.socket.send(&out, 0) {
            return Err(fail(e));
        }
        let mut answers = Vec::new();
        loop {
            let n = match self.socket.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n,
                Err(e) => return Err(fail(e)),
            };
            let mut offset = 0;
            while offset < n {
                let msg = match NetlinkMessage::<RouteNetlinkMessage>::deserialize(
                    &self.buf[offset..n],
                ) {
                    Ok(m) => m,
                    Err(e) => {
                        return Err(fail(io::Error::new(io::ErrorKind::InvalidData, e)));
                    }
                };
                let len = msg.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += len;
                if msg.header.sequence_number != self.seq {
                    continue; // a late answer to an earlier request
                }
                match msg.payload {
                    NetlinkPayload::Error(e) if e.code.is_some() => return Err(fail(e.to_io())),
                    NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::InnerMessage(m) => {
                        answers.push(m);
                        if !dump && flags & NLM_F_ACK == 0 {
                            return Ok(answers);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// The index of link `name`, None if there is none.
    pub fn link_index(&mut self, name: &str) -> Result<Option<u32>, NetError> {
        let msg = RouteNetlinkMessage::GetLink(link_msg(0, Some(name)));
        match self.request(msg, 0, || format!("looking up link {name}")) {
            Ok(answers) => Ok(answers.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })),
            Err(NetError::Netlink { source, .. }) if source.raw_os_error() == Some(ENODEV) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The index of link `name`, which must exist.
    pub fn index_of(&mut self, name: &str) -> Result<u32, NetError> {
        self.link_index(name)?.ok_or_else(|| NetError::Netlink {
            action: format!("looking up link {name}"),
            source: io::Error::from_raw_os_error(ENODEV),
        })
    }

    /// `ip link add NAME type bridge|dummy`.
    pub fn add_link(&mut self, name: &str, kind: LinkKind) -> Result<(), NetError> {
        let mut m = link_msg(0, Some(name));
        m.attributes
            .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(match kind {
                LinkKind::Bridge => InfoKind::Bridge,
                LinkKind::Dummy => InfoKind::Dummy,
            })]));
        self.request(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            || format!("creating link {name} ({kind:?})"),
        )
        .map(drop)
    }

    /// `ip link add HOST [master MASTER] up type veth peer name PEER netns FD`:
    /// the host end in this namespace, up (on `master` if given), the other end
    /// made in the namespace `netns` (down).
    pub fn add_veth(
        &mut self,
        host: &str,
        peer: &str,
        netns: BorrowedFd<'_>,
        master: Option<u32>,
    ) -> Result<(), NetError> {
        let mut p = link_msg(0, Some(peer));
        p.attributes.push(LinkAttribute::NetNsFd(netns.as_raw_fd()));
        let mut m = link_msg(0, Some(host));
        up(&mut m);
        if let Some(master) = master {
            m.attributes.push(LinkAttribute::Controller(master));
        }
        m.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            || format!("creating veth {host} (peer {peer})"),
        )
        .map(drop)
    }

    /// `ip link set dev INDEX up`.
    pub fn set_up(&mut self, index: u32, name: &str) -> Result<(), NetError> {
        let mut m = link_msg(index, None);
        up(&mut m);
        self.request(RouteNetlinkMessage::SetLink(m), NLM_F_ACK, || {
            format!("setting link {name} up")
        })
        .map(drop)
    }

    /// `ip link set dev INDEX master MASTER up`.
    pub fn set_master(&mut self, index: u32, name: &str, master: u32) -> Result<(), NetError> {
        let mut m = link_msg(index, None);
        up(&mut m);
        m.attributes.push(LinkAttribute::Controller(master));
        self.request(RouteNetlinkMessage::SetLink(m), NLM_F_ACK, || {
            format!("putting link {name} on a bridge")
        })
        .map(drop)
    }

    /// `ip link del NAME`; a link already gone is fine.
    pub fn del_link(&mut self, name: &str) -> Result<(), NetError> {
        let msg = RouteNetlinkMessage::DelLink(link_msg(0, Some(name)));
        match self.request(msg, NLM_F_ACK, || format!("deleting link {name}")) {
            Err(NetError::Netlink { source, .. }) if source.raw_os_error() == Some(ENODEV) => {
                Ok(())
            }
            r => r.map(drop),
        }
    }

    /// `ip addr add|replace ADDR/PREFIX dev INDEX`.
    pub fn add_addr(
        &mut self,
        index: u32,
        name: &str,
        addr: Ipv4Addr,
        prefix: u8,
        replace: bool,
    ) -> Result<(), NetError> {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = prefix;
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(addr.into()));
        m.attributes.push(AddressAttribute::Address(addr.into()));
        let flags = if replace { NLM_F_REPLACE } else { NLM_F_EXCL };
        self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_ACK | NLM_F_CREATE | flags,
            || format!("adding address {addr}/{prefix} to {name}"),
        )
        .map(drop)
    }

    /// `ip addr del ADDR/PREFIX dev INDEX`; an address already gone is fine.
    pub fn del_addr(
        &mut self,
        index: u32,
        name: &str,
        addr: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), NetError> {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = prefix;
        m.header.index = index;
        m.attributes.push(AddressAttribute::Local(addr.into()));
        m.attributes.push(AddressAttribute::Address(addr.into()));
        let msg = RouteNetlinkMessage::DelAddress(m);
        match self.request(msg, NLM_F_ACK, || {
            format!("removing address {addr}/{prefix} from {name}")
        }) {
            Err(NetError::Netlink { source, .. })
                if source.raw_os_error() == Some(nix::errno::Errno::EADDRNOTAVAIL as i32) =>
            {
                Ok(())
            }
            r => r.map(drop),
        }
    }

    /// `ip route add DST/PREFIX [via GW] dev DEV [src SRC]` (scope link without a
    /// gateway, as `ip` does).
    pub fn add_route(&mut self, r: &Route) -> Result<(), NetError> {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        m.header.destination_prefix_length = r.prefix;
        m.header.table = RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::Boot;
        m.header.kind = RouteType::Unicast;
        m.header.scope = if r.gateway.is_some() {
            RouteScope::Universe
        } else {
            RouteScope::Link
        };
        if r.prefix > 0 {
            m.attributes
                .push(RouteAttribute::Destination(RouteAddress::Inet(r.dst)));
        }
        if let Some(gw) = r.gateway {
            m.attributes
                .push(RouteAttribute::Gateway(RouteAddress::Inet(gw)));
        }
        if let Some(src) = r.src {
            m.attributes
                .push(RouteAttribute::PrefSource(RouteAddress::Inet(src)));
        }
        m.attributes.push(RouteAttribute::Oif(r.dev));
        self.request(
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            || {
                let via = r.gateway.map(|g| format!(" via {g}")).unwrap_or_default();
                format!("adding route {}/{}{via} (dev {})", r.dst, r.prefix, r.dev)
            },
        )
        .map(drop)
    }

    /// The unicast IPv4 routes of the main table (`ip -4 route show`).
    pub fn main_routes(&mut self) -> Result<Vec<RouteEntry>, NetError> {
        let mut m = RouteMessage::default();
        m.header.address_family = AddressFamily::Inet;
        let answers = self.request(RouteNetlinkMessage::GetRoute(m), NLM_F_DUMP, || {
            "listing routes".into()
        })?;
        Ok(answers
            .into_iter()
            .filter_map(|a| match a {
                RouteNetlinkMessage::NewRoute(r) => Some(r),
                _ => None,
            })
            .filter(|r| {
                let table = r
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        RouteAttribute::Table(t) => Some(*t),
                        _ => None,
                    })
                    .unwrap_or(u32::from(r.header.table));
                table == u32::from(RT_TABLE_MAIN)
            })
            .map(|r| {
                let mut e = RouteEntry {
                    dst: Ipv4Addr::UNSPECIFIED,
                    prefix: r.header.destination_prefix_length,
                    dev: 0,
                };
                for a in &r.attributes {
                    match a {
                        RouteAttribute::Destination(RouteAddress::Inet(d)) => e.dst = *d,
                        RouteAttribute::Oif(i) => e.dev = *i,
                        _ => {}
                    }
                }
                e
            })
            .collect())
    }

    /// The name of every link, by index.
    pub fn link_names(&mut self) -> Result<Vec<(u32, String)>, NetError> {
        let answers = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
            || "listing links".into(),
        )?;
        Ok(answers
            .into_iter()
            .filter_map(|a| match a {
                RouteNetlinkMessage::NewLink(l) => {
                    let name = l.attributes.iter().find_map(|a| match a {
                        LinkAttribute::IfName(n) => Some(n.clone()),
                        _ => None,
                    })?;
                    Some((l.header.index, name))
                }
                _ => None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` in a thread of a network namespace of its own (skipped unless
    /// root).
    fn in_new_netns(f: impl FnOnce() + Send) {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("SKIP: needs root");
            return;
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    }

    #[test]
    fn links_addresses_routes_and_errors() {
        in_new_netns(|| {
            let mut nl = Rtnl::open().unwrap();
            nl.set_up(1, "lo").unwrap();
            assert_eq!(nl.link_index("lo").unwrap(), Some(1));
            assert_eq!(nl.link_index("nl-test0").unwrap(), None);
            nl.add_link("nl-test0", LinkKind::Bridge).unwrap();
            let err = nl.add_link("nl-test0", LinkKind::Bridge).unwrap_err();
            assert!(err.to_string().contains("nl-test0"), "{err}");
            let i = nl.index_of("nl-test0").unwrap();
            let gw = Ipv4Addr::new(10, 123, 0, 1);
            nl.add_addr(i, "nl-test0", gw, 24, false).unwrap();
            nl.add_addr(i, "nl-test0", gw, 24, true).unwrap();
            nl.set_up(i, "nl-test0").unwrap();
            let host = Ipv4Addr::new(10, 124, 0, 9);
            let route = Route {
                dst: host,
                prefix: 32,
                gateway: None,
                src: Some(gw),
                dev: i,
            };
            nl.add_route(&route).unwrap();
            assert!(nl.add_route(&route).is_err());
            let routes = nl.main_routes().unwrap();
            assert!(routes.contains(&RouteEntry {
                dst: host,
                prefix: 32,
                dev: i
            }));
            assert!(routes
                .iter()
                .any(|r| r.dst == Ipv4Addr::new(10, 123, 0, 0) && r.prefix == 24 && r.dev == i));
            let names = nl.link_names().unwrap();
            assert!(names.contains(&(i, "nl-test0".to_owned())), "{names:?}");
            nl.del_link("nl-test0").unwrap();
            nl.del_link("nl-test0").unwrap(); // already gone: fine
            assert_eq!(nl.link_index("nl-test0").unwrap(), None);
        });
    }
}
