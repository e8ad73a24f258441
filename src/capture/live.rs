//! Role: the live packet socket. The socket is created by a thread that first joins the
//! target's network namespace (`setns`): a socket belongs to the namespace it was created in,
//! and interface names are resolved there (`if_nameindex`, never /sys). After that the process
//! keeps only the socket, drops its privileges (`drop_privileges`) and reads packets; it never
//! parses them beyond the link-layer address the kernel hands over.
//!
//! A named interface is captured raw (its own link type); `any` is captured cooked and
//! written as LINUX_SLL2 with interface index and direction, like tcpdump. On a loopback
//! device each packet passes twice (out and in): the outgoing copy is skipped, as libpcap does.

#![allow(unsafe_code)]

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// ARPHRD values this module names.
pub const ARPHRD_ETHER: u16 = 1;
pub const ARPHRD_LOOPBACK: u16 = 772;
pub const ARPHRD_NONE: u16 = 0xfffe;

/// One interface of the target namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub index: u32,
    pub name: String,
    /// ARPHRD_* of the device.
    pub hatype: u16,
    pub up: bool,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LiveError {
    #[error(
        "cannot enter the network namespace {path}: {err} (needs CAP_SYS_ADMIN: run as root, \
         or in a privileged pod with hostPID)"
    )]
    Setns { path: String, err: io::Error },
    #[error(
        "cannot open a packet socket: {0} (needs CAP_NET_RAW: run as root, or add NET_RAW to \
         the container's capabilities)"
    )]
    Socket(io::Error),
    #[error("no interface `{name}` in the target's network namespace; it has: {have}")]
    NoInterface { name: String, have: String },
    #[error("{what}: {err}")]
    Sys { what: &'static str, err: io::Error },
}

fn sys(what: &'static str) -> impl FnOnce(io::Error) -> LiveError {
    move |err| LiveError::Sys { what, err }
}

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Runs `f` on a new thread that has joined the namespace at `netns` (or the current one):
/// the calling thread's namespace never changes.
pub fn in_netns<T: Send + 'static>(
    netns: Option<&Path>,
    f: impl FnOnce() -> Result<T, LiveError> + Send + 'static,
) -> Result<T, LiveError> {
    let netns = netns.map(Path::to_path_buf);
    std::thread::spawn(move || {
        if let Some(path) = &netns {
            let file = std::fs::File::open(path).map_err(|err| LiveError::Setns {
                path: path.display().to_string(),
                err,
            })?;
            // SAFETY: setns on a valid fd for this thread only (it is not the main thread,
            // and the thread ends after `f`).
            check(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }).map_err(|err| {
                LiveError::Setns {
                    path: path.display().to_string(),
                    err,
                }
            })?;
        }
        f()
    })
    .join()
    .unwrap_or_else(|_| {
        Err(LiveError::Sys {
            what: "namespace thread",
            err: io::Error::other("panicked"),
        })
    })
}

/// The interfaces of the calling thread's network namespace (`if_nameindex`, then one ioctl
/// per interface for its hardware type and flags).
pub fn interfaces() -> Result<Vec<Interface>, LiveError> {
    // SAFETY: if_nameindex returns a heap array terminated by a zero entry, freed below.
    let list = unsafe { libc::if_nameindex() };
    if list.is_null() {
        return Err(sys("if_nameindex")(io::Error::last_os_error()));
    }
    let mut out = Vec::new();
    let probe = socket(libc::AF_INET, libc::SOCK_DGRAM, 0).map_err(sys("socket for ioctl"))?;
    let mut i = 0;
    loop {
        // SAFETY: within the array until the terminating entry.
        let e = unsafe { &*list.add(i) };
        if e.if_index == 0 || e.if_name.is_null() {
            break;
        }
        // SAFETY: if_name is a NUL-terminated string owned by the list.
        let name = unsafe { CStr::from_ptr(e.if_name) }
            .to_string_lossy()
            .into_owned();
        let (hatype, up) = hw_info(&probe, &name).unwrap_or((0, false));
        out.push(Interface {
            index: e.if_index,
            name,
            hatype,
            up,
        });
        i += 1;
    }
    // SAFETY: the pointer came from if_nameindex.
    unsafe { libc::if_freenameindex(list) };
    out.sort_by_key(|i| i.index);
    Ok(out)
}

fn ifreq(name: &str) -> libc::ifreq {
    // SAFETY: ifreq is plain old data; all zero is a valid value.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in r
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *d = s as libc::c_char;
    }
    r
}

fn hw_info(sock: &OwnedFd, name: &str) -> io::Result<(u16, bool)> {
    let mut r = ifreq(name);
    // SAFETY: SIOCGIFHWADDR fills ifr_hwaddr of a valid ifreq.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &mut r) })?;
    // SAFETY: the kernel set the hwaddr member.
    let hatype = unsafe { r.ifr_ifru.ifru_hwaddr.sa_family };
    let mut f = ifreq(name);
    // SAFETY: SIOCGIFFLAGS fills ifr_flags.
    check(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut f) })?;
    // SAFETY: the kernel set the flags member.
    let flags = unsafe { f.ifr_ifru.ifru_flags };
    Ok((hatype, flags & libc::IFF_UP as libc::c_short != 0))
}

fn socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned from here on.
    let fd = check(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) })?;
    // SAFETY: fd is a fresh, valid descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// An 802.1Q tag: TPID and TCI.
const VLAN_TAG_LEN: usize = 4;

/// How captured packets are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// The device's own link header (a named interface): pcap link type given.
    Raw(u32),
    /// `any`: cooked, the writer adds a LINUX_SLL2 header from the packet's address.
    Cooked,
}

/// An open packet socket, bound in the target's namespace.
#[derive(Debug)]
pub struct Live {
    fd: OwnedFd,
    pub framing: Framing,
    /// The interfaces of the target namespace at open time.
    pub interfaces: Vec<Interface>,
    /// The captured interface, or `None` for `any`.
    pub interface: Option<Interface>,
}

/// The pcap link type for a device captured raw.
pub fn link_type(hatype: u16) -> u32 {
    match hatype {
        ARPHRD_ETHER | ARPHRD_LOOPBACK => 1, // Linux lo gives an Ethernet header of zeros
        ARPHRD_NONE => 101,                  // tun and other IP-only devices
        _ => 113,                            // anything else: cooked (not expected here)
    }
}

/// One received packet, borrowed from the reader's buffer.
#[derive(Debug)]
pub struct Packet<'a> {
    pub ts_ns: u64,
    pub ifindex: u32,
    pub hatype: u16,
    pub pkttype: u8,
    pub protocol: u16,
    pub addr: [u8; 8],
    pub addr_len: u8,
    pub data: &'a [u8],
    pub orig_len: u32,
}

impl Live {
    /// Opens the socket in `netns` (or here) on `iface` (`any` for all), keeping `snaplen`.
    pub fn open(netns: Option<&Path>, iface: &str, snaplen: u32) -> Result<Live, LiveError> {
        let iface = iface.to_string();
        in_netns(netns, move || {
            let interfaces = interfaces()?;
            let (ty, interface) = if iface == "any" {
                (libc::SOCK_DGRAM, None)
            } else {
                match interfaces.iter().find(|i| i.name == iface) {
                    Some(i) => (libc::SOCK_RAW, Some(i.clone())),
                    None => {
                        return Err(LiveError::NoInterface {
                            name: iface,
                            have: interfaces
                                .iter()
                                .map(|i| i.name.as_str())
                                .collect::<Vec<_>>()
                                .join(", "),
                        });
                    }
                }
            };
            let proto = (libc::ETH_P_ALL as u16).to_be() as libc::c_int;
            let fd = socket(libc::AF_PACKET, ty, proto).map_err(LiveError::Socket)?;
            // SAFETY: sockaddr_ll is plain data; zero is valid.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
            sll.sll_ifindex = interface.as_ref().map_or(0, |i| i.index as i32);
            // SAFETY: bind with a correctly sized sockaddr_ll.
            check(unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            })
            .map_err(sys("bind packet socket"))?;
            let one: libc::c_int = 1;
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &one)
                .map_err(sys("SO_TIMESTAMPNS"))?;
            // The kernel takes VLAN tags out of frames (into metadata); auxdata gives them
            // back so that they are put into the frame as libpcap does.
            setsockopt(&fd, libc::SOL_PACKET, libc::PACKET_AUXDATA, &one)
                .map_err(sys("PACKET_AUXDATA"))?;
            // A large receive buffer rides out bursts (tcpdump's ring is 2 MiB by default):
            // FORCE passes rmem_max while we still hold CAP_NET_ADMIN; else what is allowed.
            let buf: libc::c_int = 64 << 20;
            if setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &buf).is_err() {
                let _ = setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &buf);
            }
            // Wake up now and then to notice signals and the duration limit.
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 200_000,
            };
            setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
                .map_err(sys("SO_RCVTIMEO"))?;
            let _ = snaplen;
            let framing = match &interface {
                Some(i) => Framing::Raw(link_type(i.hatype)),
                None => Framing::Cooked,
            };
            Ok(Live {
                fd,
                framing,
                interfaces,
                interface,
            })
        })
    }

    /// Waits for the next packet (at most ~200 ms); `Ok(None)` on timeout or a skipped
    /// loopback duplicate. `buf` must hold the largest packet kept, plus 4 bytes for a VLAN
    /// tag put back into an Ethernet frame.
    pub fn recv<'b>(&self, buf: &'b mut [u8], wait: bool) -> io::Result<Option<Packet<'b>>> {
        // SAFETY: plain data, zero is valid.
        let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        let mut cbuf = [0u64; 16];
        // Ethernet frames are received 4 bytes in, leaving room to put a VLAN tag back.
        let room = if self.framing == Framing::Raw(1) {
            VLAN_TAG_LEN
        } else {
            0
        };
        if buf.len() <= room + 14 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "buffer too small",
            ));
        }
        let mut iov = libc::iovec {
            iov_base: buf[room..].as_mut_ptr().cast(),
            iov_len: buf.len() - room,
        };
        // SAFETY: msghdr is plain data.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_name = (&mut from as *mut libc::sockaddr_ll).cast();
        msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as u32;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = cbuf.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&cbuf);
        let flags = libc::MSG_TRUNC | if wait { 0 } else { libc::MSG_DONTWAIT };
        // SAFETY: every pointer in msg refers to live buffers of the stated sizes.
        let n = unsafe { libc::recvmsg(self.fd.as_raw_fd(), &mut msg, flags) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let mut orig_len = n as u32;
        if from.sll_pkttype == libc::PACKET_OUTGOING && from.sll_hatype == ARPHRD_LOOPBACK {
            return Ok(None); // the same packet comes back in as PACKET_HOST
        }
        let mut ts_ns = None;
        let mut vlan = None;
        // SAFETY: walking the control messages the kernel wrote into cbuf.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                    let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    ts_ns = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
                }
                if (*c).cmsg_level == libc::SOL_PACKET && (*c).cmsg_type == libc::PACKET_AUXDATA {
                    let aux: libc::tpacket_auxdata =
                        std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                    // libpcap's test: a TCI, or a valid tag whose TCI is 0 (priority tag).
                    if aux.tp_vlan_tci != 0 || aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0 {
                        let tpid = if aux.tp_status & libc::TP_STATUS_VLAN_TPID_VALID != 0 {
                            aux.tp_vlan_tpid
                        } else {
                            0x8100
                        };
                        vlan = Some((tpid, aux.tp_vlan_tci));
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        let ts_ns = ts_ns.unwrap_or_else(now_ns);
        let mut kept = (n as usize).min(buf.len() - room);
        let mut start = room;
        if let Some((tpid, tci)) = vlan.filter(|_| room == VLAN_TAG_LEN && kept >= 12) {
            // The tag goes back after the two MAC addresses, as on the wire.
            buf.copy_within(room..room + 12, 0);
            buf[12..14].copy_from_slice(&tpid.to_be_bytes());
            buf[14..16].copy_from_slice(&tci.to_be_bytes());
            start = 0;
            kept += VLAN_TAG_LEN;
            orig_len += VLAN_TAG_LEN as u32;
        }
        let mut addr = [0u8; 8];
        addr.copy_from_slice(&from.sll_addr);
        Ok(Some(Packet {
            ts_ns,
            ifindex: from.sll_ifindex as u32,
            hatype: from.sll_hatype,
            pkttype: from.sll_pkttype,
            protocol: u16::from_be(from.sll_protocol),
            addr,
            addr_len: from.sll_halen.min(8),
            data: &buf[start..start + kept],
            orig_len,
        }))
    }

    /// Runs `prog` in the kernel on every packet (SO_ATTACH_FILTER), then empties the socket
    /// of what arrived before the filter was in place.
    pub fn attach_filter(&self, prog: &[super::filter::Insn]) -> io::Result<()> {
        let insns: Vec<libc::sock_filter> = prog
            .iter()
            .map(|i| libc::sock_filter {
                code: i.code,
                jt: i.jt,
                jf: i.jf,
                k: i.k,
            })
            .collect();
        let fprog = libc::sock_fprog {
            len: insns.len() as u16,
            filter: insns.as_ptr() as *mut libc::sock_filter,
        };
        setsockopt(&self.fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)?;
        // Packets queued between bind and attach were not filtered: drop them.
        let mut scratch = [0u8; 64];
        loop {
            // SAFETY: recv into a live local buffer, non-blocking.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    scratch.as_mut_ptr().cast(),
                    scratch.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                )
            };
            if n < 0 {
                break;
            }
        }
        Ok(())
    }

    /// Packets the kernel counted and dropped since the last call (PACKET_STATISTICS; the
    /// counters reset when read).
    pub fn stats(&self) -> io::Result<(u64, u64)> {
        // SAFETY: plain data.
        let mut st: libc::tpacket_stats = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: getsockopt into a correctly sized tpacket_stats.
        check(unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        })?;
        Ok((u64::from(st.tp_packets), u64::from(st.tp_drops)))
    }
}

fn setsockopt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: v points to a live T of the stated size.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as u32,
        )
    })
    .map(|_| ())
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// After the socket is open: an empty capability bounding set and ambient set (while still
/// privileged: that needs CAP_SETPCAP), no supplementary groups, the given gid and uid (real,
/// effective and saved, so there is no way back), every capability gone (a uid change away
/// from root clears the effective and permitted sets; capset clears the inheritable one too),
/// and no_new_privs so nothing executed later can regain any.
pub fn drop_privileges(uid: u32, gid: u32) -> Result<(), LiveError> {
    super::sandbox::clear_bounding_set()?;
    // SAFETY: plain syscalls with valid arguments.
    unsafe {
        check(libc::setgroups(0, std::ptr::null())).map_err(sys("setgroups"))?;
        check(libc::setresgid(gid, gid, gid)).map_err(sys("setresgid"))?;
        check(libc::setresuid(uid, uid, uid)).map_err(sys("setresuid"))?;
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
            .map_err(sys("prctl(PR_SET_NO_NEW_PRIVS)"))?;
    }
    {
        // Also when staying root was asked for: no capability is needed from here on.
        let hdr = CapHeader {
            version: 0x2008_0522,
            pid: 0,
        };
        let data = [CapData::default(); 2];
        // SAFETY: capset with the v3 header and two zeroed data words.
        check(unsafe { libc::syscall(libc::SYS_capset, &hdr, data.as_ptr()) as libc::c_int })
            .map_err(sys("capset"))?;
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}
