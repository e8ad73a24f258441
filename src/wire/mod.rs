//! Packet decoding: a captured frame (any supported link type) to a borrowed TCP [`Segment`], or
//! to the kind of non-TCP packet it is. Zero-copy and allocation-free; every read is
//! bounds-checked, so hostile bytes become a [`NonTcp`] count, never a panic.
//!
//! Layers: `link` (Ethernet + VLAN/QinQ, Linux SLL/SLL2, raw IP, BSD NULL/LOOP, NFLOG) →
//! `ip` (IPv4, IPv6 with extension headers, GRE/ERSPAN/VXLAN/Geneve/IP-in-IP decapsulation) →
//! `tcp`. Checksums are not verified: captures taken on the sending host carry offloaded,
//! not-yet-computed checksums.

mod ip;
mod link;
mod tcp;

use crate::pcap::Frame;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use tcp::TcpFlags;

/// An IP address stored in 16 bytes (IPv4 as mapped), cheap to hash and compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Addr {
    pub bytes: [u8; 16],
    pub v6: bool,
}

impl Addr {
    pub fn v4(b: [u8; 4]) -> Self {
        let mut bytes = [0u8; 16];
        bytes[10] = 0xff;
        bytes[11] = 0xff;
        bytes[12..].copy_from_slice(&b);
        Addr { bytes, v6: false }
    }
    pub fn v6(bytes: [u8; 16]) -> Self {
        Addr { bytes, v6: true }
    }
    pub fn to_ip(self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(self.bytes))
        } else {
            IpAddr::V4(Ipv4Addr::new(
                self.bytes[12],
                self.bytes[13],
                self.bytes[14],
                self.bytes[15],
            ))
        }
    }
    pub fn is_loopback(self) -> bool {
        self.to_ip().is_loopback()
    }
}

/// Where a packet was seen, as far as the capture says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LinkInfo {
    /// The capture file's interface (pcapng IDB index; 0 for classic pcap).
    pub capture_if: u32,
    /// The kernel interface index carried by LINUX_SLL2 (`tcpdump -i any`).
    pub ifindex: Option<u32>,
    /// The link says loopback (SLL/SLL2 ARPHRD_LOOPBACK, BSD NULL/LOOP, Ethernet with both
    /// MAC addresses zero as Linux `lo` writes it).
    pub loopback: bool,
}

/// A decoded TCP segment, borrowing its payload from the frame.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    pub ts_ns: u64,
    pub link: LinkInfo,
    pub src: Addr,
    pub dst: Addr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    /// Payload bytes actually captured (may be shorter than `wire_len` when cut by snaplen).
    pub payload: &'a [u8],
    /// Payload length on the wire, from the IP header.
    pub wire_len: u32,
}

/// What a frame that is not a decodable TCP segment was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NonTcp {
    Udp,
    /// UDP with a QUIC long header of a known version.
    Quic,
    Icmp,
    Icmpv6,
    Arp,
    /// IPv4 or IPv6 fragment (not reassembled).
    Fragment,
    /// IP with another transport (SCTP, ESP, OSPF…).
    OtherIp,
    /// A link-layer frame that is not IP or ARP (LLDP, STP, IPX…).
    OtherLink,
    /// A link type this build does not decode.
    UnsupportedLinkType,
    /// Headers cut short by the capture's snaplen before the TCP header ended.
    Truncated,
    /// Headers that contradict themselves (bad IHL, bad data offset, bad lengths).
    Malformed,
}

impl NonTcp {
    pub const ALL: [NonTcp; 11] = [
        NonTcp::Udp,
        NonTcp::Quic,
        NonTcp::Icmp,
        NonTcp::Icmpv6,
        NonTcp::Arp,
        NonTcp::Fragment,
        NonTcp::OtherIp,
        NonTcp::OtherLink,
        NonTcp::UnsupportedLinkType,
        NonTcp::Truncated,
        NonTcp::Malformed,
    ];
    pub fn name(self) -> &'static str {
        match self {
            NonTcp::Udp => "udp",
            NonTcp::Quic => "quic",
            NonTcp::Icmp => "icmp",
            NonTcp::Icmpv6 => "icmpv6",
            NonTcp::Arp => "arp",
            NonTcp::Fragment => "ip_fragment",
            NonTcp::OtherIp => "other_ip",
            NonTcp::OtherLink => "other_link",
            NonTcp::UnsupportedLinkType => "unsupported_link_type",
            NonTcp::Truncated => "truncated",
            NonTcp::Malformed => "malformed",
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Result of decoding one frame.
#[derive(Debug, Clone, Copy)]
pub enum Decoded<'a> {
    Tcp(Segment<'a>),
    /// UDP (counted as `udp`, or `quic` for a QUIC long header) handed on for QUIC flows.
    Udp(Datagram<'a>),
    NonTcp(NonTcp),
}

/// A UDP datagram, borrowing its payload from the frame.
#[derive(Debug, Clone, Copy)]
pub struct Datagram<'a> {
    pub ts_ns: u64,
    pub link: LinkInfo,
    pub src: Addr,
    pub dst: Addr,
    pub sport: u16,
    pub dport: u16,
    pub payload: &'a [u8],
    /// A QUIC long-header packet of a known version.
    pub quic_long_header: bool,
}

/// Tunnels nest at most this deep (GRE in VXLAN in …); deeper is `Malformed`.
const MAX_DEPTH: u8 = 4;

/// Decodes a frame down to TCP.
pub fn decode<'a>(frame: &Frame<'a>) -> Decoded<'a> {
    let mut link = LinkInfo {
        capture_if: frame.interface,
        ..LinkInfo::default()
    };
    match link::strip(frame.link_type, frame.data, &mut link) {
        Ok(link::Inner::Ip(bytes)) => ip::decode_ip(bytes, frame.ts_ns, link, 0),
        Ok(link::Inner::Ether(bytes)) => ip::decode_ether(bytes, frame.ts_ns, link, 0),
        Ok(link::Inner::EtherType(t, bytes)) => {
            ip::decode_ethertype(t, bytes, frame.ts_ns, link, 0)
        }
        Err(k) => Decoded::NonTcp(k),
    }
}

#[cfg(test)]
mod tests;
