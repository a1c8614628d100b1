//! A micro-VM on a network: its container's namespace (made by
//! [`crate::Networks::attach`], with `ethN` holding the container's address) gets a
//! tap device for QEMU's virtio-net, bridged to `ethN`. The guest owns the address:
//! it is taken off `ethN`, which becomes a plain port of the bridge `br0`, so what
//! reaches the namespace for the address (a published port's DNAT, another
//! container, the name server's answers) reaches the guest through the tap.
//!
//! The tap is not persistent: it lives as long as its file descriptor, which QEMU
//! inherits, and goes with QEMU. The bridge goes with the namespace. Joining again
//! (a stopped VM started anew) reuses the bridge and makes a new tap.

use std::fs::{File, OpenOptions};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::libc;

use crate::error::NetError;
use crate::rtnl::{LinkKind, Rtnl};

/// The bridge inside the namespace.
pub const BRIDGE: &str = "br0";
/// The tap inside the namespace.
pub const TAP: &str = "tap0";

/// `TUNSETIFF` (`_IOW('T', 202, int)`).
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TAP: libc::c_short = 0x0002;
const IFF_NO_PI: libc::c_short = 0x1000;
/// Frames carry a `virtio_net_hdr`: QEMU passes checksum and segmentation offloads
/// through to the guest instead of computing checksums frame by frame.
const IFF_VNET_HDR: libc::c_short = 0x4000;

/// Opens `/dev/net/tun` and makes tap `name` on it, in the calling thread's
/// network namespace.
fn open_tap(name: &str) -> Result<OwnedFd, NetError> {
    let io = |e: std::io::Error| NetError::Sys {
        action: format!("opening /dev/net/tun for {name}"),
        source: nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)),
    };
    let tun: File = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open("/dev/net/tun")
        .map_err(io)?;
    // SAFETY: an all-zero ifreq is a valid value (a C struct of integers, arrays
    // and a union of them).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= req.ifr_name.len() {
        return Err(NetError::Invalid(format!("tap name {name} is too long")));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    req.ifr_ifru.ifru_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    // SAFETY: TUNSETIFF reads and writes the ifreq, which lives across the call;
    // the fd is open.
    let r = unsafe { libc::ioctl(tun.as_raw_fd(), TUNSETIFF as _, &mut req) };
    if r < 0 {
        return Err(NetError::Sys {
            action: format!("making tap {name} (TUNSETIFF)"),
            source: nix::errno::Errno::last(),
        });
    }
    Ok(tun.into())
}

/// In the namespace at `netns`: moves `addr/prefix` off `eth`, makes [`BRIDGE`] (if
/// not there yet) with `eth` and a new [`TAP`] as ports, all up. Returns the tap's
/// fd for QEMU (`-netdev tap,fd=N`).
pub fn join_tap(netns: &Path, eth: &str, addr: Ipv4Addr, prefix: u8) -> Result<OwnedFd, NetError> {
    crate::sys::in_netns(netns, || {
        let tap = open_tap(TAP)?;
        let mut nl = Rtnl::open()?;
        let br = match nl.link_index(BRIDGE)? {
            Some(i) => i,
            None => {
                nl.add_link(BRIDGE, LinkKind::Bridge)?;
                nl.index_of(BRIDGE)?
            }
        };
        let eth_index = nl.index_of(eth)?;
        // The guest answers for the address now (the routes through it go too).
        nl.del_addr(eth_index, eth, addr, prefix)?;
        nl.set_master(eth_index, eth, br)?;
        let tap_index = nl.index_of(TAP)?;
        nl.set_master(tap_index, TAP, br)?;
        nl.set_up(br, BRIDGE)?;
        Ok(tap)
    })
}

/// The guest's MAC for `addr`: locally administered, unicast, `02:b5:` and the
/// address (so it is stable across restarts and unique on a network).
pub fn guest_mac(addr: Ipv4Addr) -> String {
    let o = addr.octets();
    format!("02:b5:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A namespace file with a veth `eth0` holding 10.125.0.2/24: join_tap moves
    /// the address off it, bridges it with the tap, and again after the tap's fd
    /// closed (a VM started anew); the tap goes with its fd.
    #[test]
    fn tap_bridged_to_the_interface() {
        if !nix::unistd::Uid::effective().is_root() {
            eprintln!("SKIP: needs root");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns");
        let addr = Ipv4Addr::new(10, 125, 0, 2);
        crate::sys::create_netns(&path, || {
            let ns = File::open(&path).unwrap();
            let mut nl = Rtnl::open()?;
            nl.add_veth("eth0", "peer0", std::os::fd::AsFd::as_fd(&ns), None)?;
            let i = nl.index_of("eth0")?;
            nl.add_addr(i, "eth0", addr, 24, false)?;
            nl.set_up(i, "eth0")
        })
        .unwrap();
        let links = || {
            crate::sys::in_netns(&path, || {
                let mut nl = Rtnl::open()?;
                let names: Vec<String> = nl.link_names()?.into_iter().map(|(_, n)| n).collect();
                let subnet = nl.main_routes()?.iter().any(|r| r.prefix == 24);
                Ok((names, subnet))
            })
            .unwrap()
        };
        for _ in 0..2 {
            let tap = join_tap(&path, "eth0", addr, 24).unwrap();
            let (names, subnet) = links();
            assert!(names.iter().any(|n| n == BRIDGE), "{names:?}");
            assert!(names.iter().any(|n| n == TAP), "{names:?}");
            assert!(!subnet, "the address is still on eth0");
            drop(tap);
            let (names, _) = links();
            assert!(!names.iter().any(|n| n == TAP), "{names:?}");
        }
        crate::sys::remove_netns(&path).unwrap();
    }

    #[test]
    fn mac_from_address() {
        assert_eq!(guest_mac(Ipv4Addr::new(10, 89, 7, 2)), "02:b5:0a:59:07:02");
    }
}
