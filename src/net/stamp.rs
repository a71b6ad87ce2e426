//! Kernel timestamps on a socket (SO_TIMESTAMPING), and the waits of the measuring loop.
//!
//! The kernel can stamp a datagram when it arrives (software receive timestamp: in the
//! network stack, before any process wakes up) and when it leaves (software transmit
//! timestamp: when the driver takes it, looped back on the socket's error queue). Both are on
//! the wall clock (`CLOCK_REALTIME`), so they are only ever compared with each other. The
//! difference between a user-space round trip and the kernel's is the host time that RFC 2681
//! §3.7 tells apart from wire time.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::Duration;

use nix::poll::{PollFd, PollFlags};
use nix::sys::socket::{
    self, ControlMessageOwned, MsgFlags, SockaddrStorage, TimestampingFlag, sockopt,
};
use nix::sys::time::TimeSpec;

/// Asks the kernel for software receive timestamps, and transmit ones if `tx`. Returns
/// whether it agreed (a kernel without them is not an error: user-space times remain).
pub fn enable(fd: BorrowedFd<'_>, tx: bool) -> bool {
    let mut flags = TimestampingFlag::SOF_TIMESTAMPING_SOFTWARE
        | TimestampingFlag::SOF_TIMESTAMPING_RX_SOFTWARE;
    if tx {
        flags |= TimestampingFlag::SOF_TIMESTAMPING_TX_SOFTWARE;
    }
    socket::setsockopt(&fd, sockopt::Timestamping, &flags).is_ok()
}

/// Room for the control messages of one datagram.
pub fn cmsg_buffer() -> Vec<u8> {
    nix::cmsg_space!(
        nix::sys::socket::Timestamps,
        libc::sock_extended_err,
        libc::sockaddr_in6
    )
}

/// One datagram received.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    /// Bytes copied into the buffer.
    pub len: usize,
    /// The datagram was larger than the buffer.
    pub truncated: bool,
    /// The kernel's timestamp (ns on the wall clock), if it gave one.
    pub kernel: Option<u64>,
    /// The sender (unconnected sockets).
    pub from: Option<std::net::SocketAddr>,
    /// The monotonic clock read as soon as the system call returned, before anything else.
    pub at: std::time::Instant,
}

fn ns(t: &TimeSpec) -> Option<u64> {
    let ns = u64::try_from(t.tv_sec()).ok()? * 1_000_000_000 + u64::try_from(t.tv_nsec()).ok()?;
    (ns != 0).then_some(ns)
}

fn to_std(a: &SockaddrStorage) -> Option<std::net::SocketAddr> {
    if let Some(v4) = a.as_sockaddr_in() {
        return Some(std::net::SocketAddr::V4((*v4).into()));
    }
    a.as_sockaddr_in6()
        .map(|v6| std::net::SocketAddr::V6((*v6).into()))
}

/// Receives one datagram with its kernel timestamp. `dontwait`: return `WouldBlock` rather
/// than wait. `errqueue`: read the error queue (where transmit timestamps come back).
pub fn recv(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    cmsg: &mut [u8],
    dontwait: bool,
    errqueue: bool,
) -> io::Result<Received> {
    let mut flags = MsgFlags::MSG_TRUNC;
    if dontwait {
        flags |= MsgFlags::MSG_DONTWAIT;
    }
    if errqueue {
        flags |= MsgFlags::MSG_ERRQUEUE;
    }
    let cap = buf.len();
    let mut iov = [io::IoSliceMut::new(buf)];
    let msg = socket::recvmsg::<SockaddrStorage>(fd.as_raw_fd(), &mut iov, Some(cmsg), flags)
        .map_err(io::Error::from)?;
    let at = super::clock::now();
    let mut kernel = None;
    if let Ok(cmsgs) = msg.cmsgs() {
        for c in cmsgs {
            if let ControlMessageOwned::ScmTimestampsns(t) = c {
                kernel = ns(&t.system);
            }
        }
    }
    let size = msg.bytes;
    Ok(Received {
        len: size.min(cap),
        truncated: size > cap || msg.flags.contains(MsgFlags::MSG_TRUNC),
        kernel,
        from: msg.address.as_ref().and_then(to_std),
        at,
    })
}

/// Waits until `fd` is readable (or has an error queued), for at most `limit`. Returns
/// whether it is.
pub fn wait_readable(fd: BorrowedFd<'_>, limit: Duration) -> io::Result<bool> {
    let mut fds = [PollFd::new(fd, PollFlags::POLLIN)];
    let ts = TimeSpec::from_duration(limit);
    match nix::poll::ppoll(&mut fds, Some(ts), None) {
        Ok(n) => Ok(n > 0),
        Err(nix::errno::Errno::EINTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The socket's pending error (an ICMP port unreachable on a connected UDP socket), cleared.
pub fn take_error(fd: BorrowedFd<'_>) -> Option<io::Error> {
    match socket::getsockopt(&fd, sockopt::SocketError) {
        Ok(0) | Err(_) => None,
        Ok(e) => Some(io::Error::from_raw_os_error(e)),
    }
}

/// Whether an error from `send` or `recv` on a connected UDP socket is the kernel passing on
/// an ICMP report about an earlier datagram (port or host unreachable, administratively
/// prohibited, fragmentation needed, a parameter problem), or a local firewall dropping the
/// datagram on its way out (`EPERM`): news about the path, after which the socket works on,
/// not a failure of the socket.
pub fn is_icmp_report(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ECONNREFUSED
                | libc::EPERM
                | libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::ENETDOWN
                | libc::EMSGSIZE
                | libc::EPROTO
                | libc::EACCES
                | libc::ENOPROTOOPT
                | libc::ENOBUFS
        )
    )
}

/// Sets the DSCP (the top six bits of the IPv4 TOS byte or the IPv6 traffic class).
pub fn set_dscp(sock: &impl AsFd, dscp: u8, v6: bool) -> io::Result<()> {
    let s = socket2::SockRef::from(sock);
    let tos = u32::from(dscp) << 2;
    if v6 {
        s.set_tclass_v6(tos)
    } else {
        s.set_tos_v4(tos)
    }
}
