//! Link layers: strip the link header of a frame and say what is inside. Ethernet's VLAN tags are
//! handled in `ip::decode_ether` because tunnels carry Ethernet too.

use super::{LinkInfo, NonTcp};
use crate::pcap::LinkType;

/// What a link header wraps.
pub(super) enum Inner<'a> {
    /// An IPv4 or IPv6 packet (the version nibble decides).
    Ip(&'a [u8]),
    /// An Ethernet frame (dst, src, EtherType…).
    Ether(&'a [u8]),
    /// A payload named by an EtherType (cooked captures carry the EtherType, not a MAC header).
    EtherType(u16, &'a [u8]),
}

const ARPHRD_LOOPBACK: u16 = 772;
const ARPHRD_NETLINK: u16 = 824;

mod field {
    /// LINUX_SLL: packet type, ARPHRD, address length, address(8), protocol.
    pub const SLL_HARDWARE: usize = 2;
    pub const SLL_PROTOCOL: usize = 14;
    pub const SLL_LEN: usize = 16;
    /// LINUX_SLL2: protocol, reserved, interface index, ARPHRD, packet type, address length,
    /// address(8).
    pub const SLL2_PROTOCOL: usize = 0;
    pub const SLL2_IFINDEX: usize = 4;
    pub const SLL2_HARDWARE: usize = 8;
    pub const SLL2_LEN: usize = 20;
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Strips the link header of `data` for `link_type`, recording interface facts in `link`.
pub(super) fn strip<'a>(
    link_type: LinkType,
    data: &'a [u8],
    link: &mut LinkInfo,
) -> Result<Inner<'a>, NonTcp> {
    match link_type {
        LinkType::ETHERNET => {
            // Linux `lo` is captured as Ethernet with both addresses zero.
            if data.get(..12).is_some_and(|m| m.iter().all(|&b| b == 0)) {
                link.loopback = true;
            }
            Ok(Inner::Ether(data))
        }
        LinkType::RAW
        | LinkType::RAW_OLD_12
        | LinkType::RAW_OLD_14
        | LinkType::IPV4
        | LinkType::IPV6 => Ok(Inner::Ip(data)),
        LinkType::NULL | LinkType::LOOP => {
            link.loopback = true;
            let h = data.get(..4).ok_or(NonTcp::Truncated)?;
            // NULL is in the capturing host's byte order, LOOP in network order; accept both.
            let le = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
            let be = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
            let family = if le < 256 { le } else { be };
            match family {
                // AF_INET everywhere; AF_INET6 is 10 (Linux), 24 (NetBSD/OpenBSD), 28
                // (FreeBSD), 30 (macOS).
                2 | 10 | 24 | 28 | 30 => Ok(Inner::Ip(&data[4..])),
                _ => Err(NonTcp::OtherLink),
            }
        }
        LinkType::LINUX_SLL => {
            if data.len() < field::SLL_LEN {
                return Err(NonTcp::Truncated);
            }
            let hw = be16(data, field::SLL_HARDWARE).ok_or(NonTcp::Truncated)?;
            let proto = be16(data, field::SLL_PROTOCOL).ok_or(NonTcp::Truncated)?;
            sll_payload(hw, proto, &data[field::SLL_LEN..], link)
        }
        LinkType::LINUX_SLL2 => {
            if data.len() < field::SLL2_LEN {
                return Err(NonTcp::Truncated);
            }
            let proto = be16(data, field::SLL2_PROTOCOL).ok_or(NonTcp::Truncated)?;
            let i = field::SLL2_IFINDEX;
            link.ifindex = Some(u32::from_be_bytes([
                data[i],
                data[i + 1],
                data[i + 2],
                data[i + 3],
            ]));
            let hw = be16(data, field::SLL2_HARDWARE).ok_or(NonTcp::Truncated)?;
            sll_payload(hw, proto, &data[field::SLL2_LEN..], link)
        }
        LinkType::NFLOG => nflog_payload(data),
        _ => Err(NonTcp::UnsupportedLinkType),
    }
}

fn sll_payload<'a>(
    hw: u16,
    proto: u16,
    rest: &'a [u8],
    link: &mut LinkInfo,
) -> Result<Inner<'a>, NonTcp> {
    if hw == ARPHRD_LOOPBACK {
        link.loopback = true;
    }
    if hw == ARPHRD_NETLINK {
        return Err(NonTcp::OtherLink);
    }
    Ok(Inner::EtherType(proto, rest))
}

/// NFLOG: a 4-byte header then TLVs in host byte order; type 9 (NFULA_PAYLOAD) is the IP packet.
fn nflog_payload(data: &[u8]) -> Result<Inner<'_>, NonTcp> {
    let mut rest = data.get(4..).ok_or(NonTcp::Truncated)?;
    while rest.len() >= 4 {
        let len = usize::from(u16::from_le_bytes([rest[0], rest[1]]));
        let kind = u16::from_le_bytes([rest[2], rest[3]]) & 0x7fff;
        if len < 4 {
            return Err(NonTcp::Malformed);
        }
        let value = rest.get(4..len).ok_or(NonTcp::Truncated)?;
        if kind == 9 {
            return Ok(Inner::Ip(value));
        }
        rest = rest.get((len + 3) & !3..).unwrap_or(&[]);
    }
    Err(NonTcp::OtherLink)
}
