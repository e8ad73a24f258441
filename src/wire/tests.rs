//! Malformed-input tests for the decoder (hand-written bytes, each breaking one thing).
//! Well-formed decoding is tested on recorded captures in tests/.

use super::*;
use crate::pcap::LinkType;

fn frame(link_type: LinkType, data: &[u8]) -> Frame<'_> {
    Frame {
        ts_ns: 0,
        interface: 0,
        link_type,
        orig_len: data.len() as u32,
        data,
        number: 1,
    }
}

fn kind(link_type: LinkType, data: &[u8]) -> Option<NonTcp> {
    match decode(&frame(link_type, data)) {
        Decoded::Tcp(_) => None,
        Decoded::Udp(d) => Some(if d.quic_long_header {
            NonTcp::Quic
        } else {
            NonTcp::Udp
        }),
        Decoded::NonTcp(k) => Some(k),
    }
}

/// IPv4 header (20 bytes) + TCP header (20 bytes) + payload, lengths consistent.
fn ipv4_tcp(payload: &[u8]) -> Vec<u8> {
    let total = 40 + payload.len();
    let mut v = vec![
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        0,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ];
    v.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    v.extend_from_slice(&[
        0x30, 0x39, 0, 80, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    v.extend_from_slice(payload);
    v
}

#[test]
fn well_formed_baseline_decodes() {
    match decode(&frame(LinkType::RAW, &ipv4_tcp(b"hi"))) {
        Decoded::Tcp(s) => assert_eq!(
            (s.sport, s.dport, s.payload, s.wire_len),
            (12345, 80, &b"hi"[..], 2)
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn ethernet_padding_is_not_payload() {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend(ipv4_tcp(b""));
    f.extend_from_slice(&[0; 6]); // minimum-frame padding
    match decode(&frame(LinkType::ETHERNET, &f)) {
        Decoded::Tcp(s) => assert_eq!((s.payload.len(), s.wire_len), (0, 0)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn each_broken_field_is_counted_not_panicked() {
    let good = ipv4_tcp(b"x");
    let mut bad_ihl = good.clone();
    bad_ihl[0] = 0x44; // IHL 16 bytes: below the minimum
    assert_eq!(kind(LinkType::RAW, &bad_ihl), Some(NonTcp::Malformed));
    let mut bad_doff = good.clone();
    bad_doff[32] = 0x40; // TCP data offset 16 bytes
    assert_eq!(kind(LinkType::RAW, &bad_doff), Some(NonTcp::Malformed));
    let mut frag = good.clone();
    frag[6] = 0x20; // more fragments
    assert_eq!(kind(LinkType::RAW, &frag), Some(NonTcp::Fragment));
    assert_eq!(kind(LinkType::RAW, &good[..30]), Some(NonTcp::Truncated));
    assert_eq!(
        kind(LinkType::RAW, &[0x75]),
        Some(NonTcp::Malformed),
        "IP version 7"
    );
    assert_eq!(kind(LinkType::RAW, &[]), Some(NonTcp::Truncated));
    assert_eq!(
        kind(LinkType(147), &good),
        Some(NonTcp::UnsupportedLinkType)
    );
    assert_eq!(
        kind(LinkType::LINUX_SLL2, &good[..10]),
        Some(NonTcp::Truncated)
    );
    assert_eq!(kind(LinkType::NULL, &[2, 0]), Some(NonTcp::Truncated));
}

#[test]
fn tunnels_nest_only_so_deep() {
    // IPv4 carrying IP-in-IP carrying IP-in-IP ... five levels: the decoder gives up cleanly.
    let mut pkt = ipv4_tcp(b"deep");
    for _ in 0..6 {
        let total = 20 + pkt.len();
        let mut outer = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0,
            0,
            64,
            4,
            0,
            0,
        ];
        outer.extend_from_slice(&[1, 1, 1, 1, 2, 2, 2, 2]);
        outer.extend(pkt);
        pkt = outer;
    }
    assert_eq!(kind(LinkType::RAW, &pkt), Some(NonTcp::OtherIp));
}

#[test]
fn ipv6_extension_chain_that_runs_past_the_packet_is_malformed() {
    let mut v = vec![0x60, 0, 0, 0, 0, 8, 0 /* hop-by-hop */, 64];
    v.extend_from_slice(&[0; 32]);
    v.extend_from_slice(&[6, 4, 0, 0, 0, 0, 0, 0]); // says 40 bytes long, only 8 in the packet
    assert_eq!(kind(LinkType::RAW, &v), Some(NonTcp::Malformed));
}
