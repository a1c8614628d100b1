//! The guest's network: `eth0` (virtio-net, its MAC set by the host) gets the
//! request's address, `lo` comes up, the default route goes through the gateway.
//! Plain `ioctl`s on an `AF_INET` socket (SIOCSIFADDR, SIOCSIFNETMASK, SIOCSIFFLAGS,
//! SIOCADDRT), the way `ifconfig` and `route` do it: a few calls, no netlink stack
//! in the static agent. Each `unsafe` block is one ioctl on a struct that lives
//! across it.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use berth_guest_agent::protocol::{GuestNetwork, NET_MODULE_LIST};
use nix::errno::Errno;
use nix::libc;

use crate::boot;
use crate::error::AgentError;

/// The guest's one network interface.
const IFACE: &str = "eth0";

fn sys_err(what: String) -> AgentError {
    AgentError::Sys {
        what,
        source: Errno::last(),
    }
}

/// An `ifreq` naming `name`, the rest zero.
fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: an all-zero ifreq is a valid value (integers, arrays and a union of
    // them).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    req
}

/// `addr` as a `struct sockaddr` (an `AF_INET` `sockaddr_in`, port 0).
fn sockaddr(addr: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr are both 16-byte plain C structs; the kernel
    // reads a sockaddr of family AF_INET as a sockaddr_in.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// `ioctl(sock, request, arg)`, an error naming `what` if it fails.
///
/// # Safety
///
/// `arg` must point to the structure `request` reads or writes.
unsafe fn ioctl<T>(
    sock: &OwnedFd,
    request: libc::c_ulong,
    arg: *mut T,
    what: impl FnOnce() -> String,
) -> Result<(), AgentError> {
    // SAFETY: the caller passes the structure the request takes; the fd is open.
    if unsafe { libc::ioctl(sock.as_raw_fd(), request as _, arg) } < 0 {
        return Err(sys_err(what()));
    }
    Ok(())
}

/// Sets IFF_UP on `name`.
fn link_up(sock: &OwnedFd, name: &str) -> Result<(), AgentError> {
    let mut req = ifreq(name);
    // SAFETY: SIOCGIFFLAGS and SIOCSIFFLAGS take an ifreq, alive across the calls.
    unsafe {
        ioctl(sock, libc::SIOCGIFFLAGS, &mut req, || {
            format!("reading the flags of {name}")
        })?;
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        ioctl(sock, libc::SIOCSIFFLAGS, &mut req, || {
            format!("bringing {name} up")
        })
    }
}

/// Loads virtio-net, waits for `eth0` and configures it and `lo`.
pub fn configure(net: &GuestNetwork) -> Result<(), AgentError> {
    boot::load_module_list(NET_MODULE_LIST)?;
    boot::wait_for(&Path::new("/sys/class/net").join(IFACE), IFACE)?;
    // SAFETY: socket() has no memory arguments; a non-negative result is a new fd
    // that nothing else owns.
    let sock = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(sys_err("opening an AF_INET socket".into()));
        }
        OwnedFd::from_raw_fd(fd)
    };
    link_up(&sock, "lo")?;
    let mask = Ipv4Addr::from(
        u32::MAX
            .checked_shl(32 - u32::from(net.prefix))
            .unwrap_or(0),
    );
    let mut req = ifreq(IFACE);
    req.ifr_ifru.ifru_addr = sockaddr(net.address);
    // SAFETY: SIOCSIFADDR takes an ifreq, alive across the call.
    unsafe {
        ioctl(&sock, libc::SIOCSIFADDR, &mut req, || {
            format!("setting address {} on {IFACE}", net.address)
        })?;
    }
    req.ifr_ifru.ifru_netmask = sockaddr(mask);
    // SAFETY: SIOCSIFNETMASK takes an ifreq, alive across the call.
    unsafe {
        ioctl(&sock, libc::SIOCSIFNETMASK, &mut req, || {
            format!("setting netmask {mask} on {IFACE}")
        })?;
    }
    link_up(&sock, IFACE)?;
    if let Some(gateway) = net.gateway {
        let mut dev = *b"eth0\0";
        // SAFETY: an all-zero rtentry is a valid value (integers, sockaddrs and
        // null pointers).
        let mut rt: libc::rtentry = unsafe { std::mem::zeroed() };
        rt.rt_dst = sockaddr(Ipv4Addr::UNSPECIFIED);
        rt.rt_genmask = sockaddr(Ipv4Addr::UNSPECIFIED);
        rt.rt_gateway = sockaddr(gateway);
        rt.rt_flags = libc::RTF_UP | libc::RTF_GATEWAY;
        rt.rt_dev = dev.as_mut_ptr().cast();
        // SAFETY: SIOCADDRT takes an rtentry; it and the device name it points to
        // live across the call.
        unsafe {
            ioctl(&sock, libc::SIOCADDRT, &mut rt, || {
                format!("adding the default route via {gateway}")
            })?;
        }
    }
    Ok(())
}
