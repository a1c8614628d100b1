//! Container networking for berth: named networks (a Linux bridge, or routed
//! veths with /32 host routes in OpenVZ venet style), address leases that survive
//! restarts, published ports through one nftables table of berth's own
//! (`inet berth`), a name server per network, and the network namespace files the
//! engine hands to the runtime.
//!
//! State lives under the engine root: `networks/` (see [`state`]) and `netns/<id>`
//! (a bind mount of the container's network namespace: it outlives the
//! container's processes, so a restart keeps its address).
//!
//! Links, addresses and routes are made in-process over rtnetlink ([`rtnl`]: the
//! host side from the calling thread, the container's side from a thread that has
//! joined its namespace), the table with `nft -f -`.
//!
//! **Micro-VMs.** A VM backend joins a network the same way: call
//! [`Networks::attach`] with a namespace of its own (or the VMM's), then inside
//! that namespace make a tap device and a bridge joining it to `eth0` (or move
//! `eth0`'s address to the guest and route, as Kata does with TC mirroring), and
//! give the tap to QEMU as `-netdev tap,ifname=…,script=no` with virtio-net. The
//! lease, ports, rules and name server are then the container's.

pub mod cidr;
pub mod dns;
pub mod error;
pub mod etc;
pub mod ipam;
pub mod networks;
pub mod nft;
pub mod ports;
pub mod rtnl;
pub mod state;
pub mod sys;
pub mod tap;

pub use cidr::Ipv4Cidr;
pub use error::NetError;
pub use etc::HostEntry;
pub use networks::{
    parse_dns, AttachRequest, Attachment, CreateRequest, NetPrune, Networks, DEFAULT_NETWORK,
};
pub use ports::{PortMapping, PortSpec, Proto};
pub use state::{Driver, Lease, Leases, NetworkConfig};
