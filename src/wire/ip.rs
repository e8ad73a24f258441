//! Ethernet (+ 802.1Q/802.1ad tags), IPv4, IPv6 (+ extension headers) and the tunnels that carry
//! them (GRE incl. ERSPAN II/III, VXLAN, VXLAN-GPE, Geneve, IP-in-IP), down to TCP or UDP.
//!
//! Lengths: the IP header's length is the truth about what was on the wire (Ethernet padding is
//! cut off); what was captured may be shorter (snaplen). IPv4 total length 0 means a GSO/TSO
//! super-packet whose length did not fit: the captured bytes are used instead.

use super::{Addr, Decoded, LinkInfo, MAX_DEPTH, NonTcp, tcp};

mod proto {
    pub const ICMP: u8 = 1;
    pub const IPIP: u8 = 4;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const GRE: u8 = 47;
    pub const ICMPV6: u8 = 58;
    // IPv6 extension headers that we walk over.
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const AH: u8 = 51;
    pub const DEST_OPTS: u8 = 60;
    pub const MOBILITY: u8 = 135;
    pub const HIP: u8 = 139;
    pub const SHIM6: u8 = 140;
}

mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const ARP: u16 = 0x0806;
    pub const IPV6: u16 = 0x86dd;
    pub const VLAN: u16 = 0x8100;
    pub const QINQ: u16 = 0x88a8;
    pub const QINQ_OLD: u16 = 0x9100;
    pub const TEB: u16 = 0x6558;
    pub const ERSPAN2: u16 = 0x88be;
    pub const ERSPAN3: u16 = 0x22eb;
}

#[inline]
fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// An Ethernet II frame: dst(6) src(6) EtherType(2).
pub(super) fn decode_ether(data: &[u8], ts: u64, link: LinkInfo, depth: u8) -> Decoded<'_> {
    match be16(data, 12) {
        Some(t) => decode_ethertype(t, &data[14..], ts, link, depth),
        None => Decoded::NonTcp(NonTcp::Truncated),
    }
}

/// A payload named by its EtherType; VLAN tags (any number, up to the depth limit) are skipped.
pub(super) fn decode_ethertype(
    mut ethertype: u16,
    mut rest: &[u8],
    ts: u64,
    link: LinkInfo,
    depth: u8,
) -> Decoded<'_> {
    for _ in 0..4 {
        match ethertype {
            ethertype::VLAN | ethertype::QINQ | ethertype::QINQ_OLD => {
                // TCI(2) then the next EtherType(2).
                let Some(next) = be16(rest, 2) else {
                    return Decoded::NonTcp(NonTcp::Truncated);
                };
                ethertype = next;
                rest = &rest[4..];
            }
            ethertype::IPV4 | ethertype::IPV6 => return decode_ip(rest, ts, link, depth),
            ethertype::ARP => return Decoded::NonTcp(NonTcp::Arp),
            ethertype::TEB if depth < MAX_DEPTH => return decode_ether(rest, ts, link, depth + 1),
            _ => return Decoded::NonTcp(NonTcp::OtherLink),
        }
    }
    Decoded::NonTcp(NonTcp::Malformed)
}

/// An IP packet; the version nibble picks IPv4 or IPv6.
pub(super) fn decode_ip(data: &[u8], ts: u64, link: LinkInfo, depth: u8) -> Decoded<'_> {
    match data.first().map(|b| b >> 4) {
        Some(4) => ipv4(data, ts, link, depth),
        Some(6) => ipv6(data, ts, link, depth),
        Some(_) => Decoded::NonTcp(NonTcp::Malformed),
        None => Decoded::NonTcp(NonTcp::Truncated),
    }
}

fn ipv4(data: &[u8], ts: u64, link: LinkInfo, depth: u8) -> Decoded<'_> {
    if data.len() < 20 {
        return Decoded::NonTcp(NonTcp::Truncated);
    }
    let ihl = usize::from(data[0] & 0x0f) * 4;
    if ihl < 20 {
        return Decoded::NonTcp(NonTcp::Malformed);
    }
    let total = usize::from(u16::from_be_bytes([data[2], data[3]]));
    // Total length 0: a TSO/GSO super-packet (the length did not fit in 16 bits).
    let wire_total = if total == 0 { data.len() } else { total };
    if wire_total < ihl {
        return Decoded::NonTcp(NonTcp::Malformed);
    }
    if data.len() < ihl {
        return Decoded::NonTcp(NonTcp::Truncated);
    }
    let frag = u16::from_be_bytes([data[6], data[7]]);
    if frag & 0x3fff != 0 {
        // More-fragments set or a non-zero offset.
        return Decoded::NonTcp(NonTcp::Fragment);
    }
    let src = Addr::v4([data[12], data[13], data[14], data[15]]);
    let dst = Addr::v4([data[16], data[17], data[18], data[19]]);
    let captured = &data[ihl..data.len().min(wire_total)];
    let wire_len = wire_total - ihl;
    transport(data[9], captured, wire_len, src, dst, ts, link, depth)
}

fn ipv6(data: &[u8], ts: u64, link: LinkInfo, depth: u8) -> Decoded<'_> {
    if data.len() < 40 {
        return Decoded::NonTcp(NonTcp::Truncated);
    }
    let plen = usize::from(u16::from_be_bytes([data[4], data[5]]));
    let mut next = data[6];
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src.copy_from_slice(&data[8..24]);
    dst.copy_from_slice(&data[24..40]);
    // Payload length 0 is a jumbogram or a GSO super-packet: use what was captured.
    let wire_payload = if plen == 0 { data.len() - 40 } else { plen };
    let mut at = 40usize;
    let end_wire = 40 + wire_payload;
    for _ in 0..8 {
        let hdr_len = match next {
            proto::HOP_BY_HOP
            | proto::ROUTING
            | proto::DEST_OPTS
            | proto::MOBILITY
            | proto::HIP
            | proto::SHIM6 => match data.get(at + 1) {
                Some(&l) => (usize::from(l) + 1) * 8,
                None => return Decoded::NonTcp(NonTcp::Truncated),
            },
            proto::AH => match data.get(at + 1) {
                Some(&l) => (usize::from(l) + 2) * 4,
                None => return Decoded::NonTcp(NonTcp::Truncated),
            },
            proto::FRAGMENT => {
                let Some(off) = be16(data, at + 2) else {
                    return Decoded::NonTcp(NonTcp::Truncated);
                };
                // Offset or more-fragments set: a real fragment. Otherwise an atomic fragment.
                if off & 0xfff9 != 0 {
                    return Decoded::NonTcp(NonTcp::Fragment);
                }
                8
            }
            _ => {
                if at > end_wire {
                    return Decoded::NonTcp(NonTcp::Malformed);
                }
                let captured = &data[at.min(data.len())..data.len().min(end_wire)];
                return transport(
                    next,
                    captured,
                    end_wire - at,
                    Addr::v6(src),
                    Addr::v6(dst),
                    ts,
                    link,
                    depth,
                );
            }
        };
        let Some(&n) = data.get(at) else {
            return Decoded::NonTcp(NonTcp::Truncated);
        };
        next = n;
        at += hdr_len;
        if at > end_wire {
            return Decoded::NonTcp(NonTcp::Malformed);
        }
    }
    Decoded::NonTcp(NonTcp::Malformed)
}

#[allow(clippy::too_many_arguments)]
fn transport(
    protocol: u8,
    captured: &[u8],
    wire_len: usize,
    src: Addr,
    dst: Addr,
    ts: u64,
    link: LinkInfo,
    depth: u8,
) -> Decoded<'_> {
    match protocol {
        proto::TCP => tcp::decode(captured, wire_len, src, dst, ts, link),
        proto::UDP => udp(captured, src, dst, ts, link, depth),
        proto::ICMP => Decoded::NonTcp(NonTcp::Icmp),
        proto::ICMPV6 => Decoded::NonTcp(NonTcp::Icmpv6),
        proto::IPIP | proto::IPV6 if depth < MAX_DEPTH => decode_ip(captured, ts, link, depth + 1),
        proto::GRE if depth < MAX_DEPTH => gre(captured, ts, link, depth + 1),
        _ => Decoded::NonTcp(NonTcp::OtherIp),
    }
}

/// GRE (RFC 2784/2890): flags, protocol, then optional checksum, key and sequence number.
fn gre(data: &[u8], ts: u64, link: LinkInfo, depth: u8) -> Decoded<'_> {
    let (Some(flags), Some(ptype)) = (be16(data, 0), be16(data, 2)) else {
        return Decoded::NonTcp(NonTcp::Truncated);
    };
    if flags & 0x0007 != 0 {
        // Version 1 is PPTP's enhanced GRE: not decoded.
        return Decoded::NonTcp(NonTcp::OtherIp);
    }
    let mut at = 4;
    for bit in [0x8000u16, 0x2000, 0x1000] {
        if flags & bit != 0 {
            at += 4;
        }
    }
    let Some(inner) = data.get(at..) else {
        return Decoded::NonTcp(NonTcp::Truncated);
    };
    match ptype {
        ethertype::ERSPAN2 => match inner.get(8..) {
            Some(eth) => decode_ether(eth, ts, link, depth),
            None => Decoded::NonTcp(NonTcp::Truncated),
        },
        ethertype::ERSPAN3 => {
            // 12-byte header; the O flag (last bit of byte 11) adds an 8-byte platform subheader.
            let Some(&b) = inner.get(11) else {
                return Decoded::NonTcp(NonTcp::Truncated);
            };
            let skip = if b & 1 != 0 { 20 } else { 12 };
            match inner.get(skip..) {
                Some(eth) => decode_ether(eth, ts, link, depth),
                None => Decoded::NonTcp(NonTcp::Truncated),
            }
        }
        t => decode_ethertype(t, inner, ts, link, depth),
    }
}

const VXLAN: u16 = 4789;
const VXLAN_GPE: u16 = 4790;
const GENEVE: u16 = 6081;

fn udp(data: &[u8], src: Addr, dst: Addr, ts: u64, link: LinkInfo, depth: u8) -> Decoded<'_> {
    let (Some(sport), Some(dport)) = (be16(data, 0), be16(data, 2)) else {
        return Decoded::NonTcp(NonTcp::Truncated);
    };
    let payload = data.get(8..).unwrap_or(&[]);
    let is = |p: u16| sport == p || dport == p;
    if depth < MAX_DEPTH {
        if (is(VXLAN) || is(VXLAN_GPE)) && payload.len() >= 8 && payload[0] & 0x08 != 0 {
            // VXLAN-GPE: the P flag says byte 3 names the next protocol.
            let next = if payload[0] & 0x04 != 0 {
                payload[3]
            } else {
                3
            };
            let inner = &payload[8..];
            return match next {
                1 | 2 => decode_ip(inner, ts, link, depth + 1),
                3 => decode_ether(inner, ts, link, depth + 1),
                _ => Decoded::NonTcp(NonTcp::Udp),
            };
        }
        if is(GENEVE) && payload.len() >= 8 && payload[0] >> 6 == 0 {
            let opt_len = usize::from(payload[0] & 0x3f) * 4;
            let ptype = u16::from_be_bytes([payload[2], payload[3]]);
            if let Some(inner) = payload.get(8 + opt_len..) {
                return decode_ethertype(ptype, inner, ts, link, depth + 1);
            }
        }
    }
    Decoded::Udp(super::Datagram {
        ts_ns: ts,
        link,
        src,
        dst,
        sport,
        dport,
        payload,
        quic_long_header: looks_like_quic(payload),
    })
}

/// A QUIC long-header packet (RFC 9000 §17.2) with a version we know: v1, v2, drafts, or version
/// negotiation. Short-header packets carry no version and cannot be told from other UDP alone.
pub(super) fn looks_like_quic(p: &[u8]) -> bool {
    if p.len() < 7 || p[0] & 0x80 == 0 {
        return false;
    }
    let version = u32::from_be_bytes([p[1], p[2], p[3], p[4]]);
    let known = matches!(version, 0 | 1 | 0x6b33_43cf | 0x709a_50c4)
        || version & 0xffff_ff00 == 0xff00_0000;
    // Fixed bit must be set except in version negotiation; the DCID length is at most 20.
    known && (version == 0 || p[0] & 0x40 != 0) && p[5] <= 20
}
