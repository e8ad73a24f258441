//! Flow-table behaviour on constructed segments: handshake order, port reuse, late packets,
//! idle timeout and eviction. (Byte-level decoding is tested on real captures elsewhere.)

use super::*;
use crate::wire::{Addr, LinkInfo, Segment, TcpFlags};

const S: u8 = TcpFlags::SYN;
const A: u8 = TcpFlags::ACK;
const F: u8 = TcpFlags::FIN;
const R: u8 = TcpFlags::RST;

fn seg(
    ts_s: u64,
    from_client: bool,
    cport: u16,
    flags: u8,
    seq: u32,
    ack: u32,
    payload: &'static [u8],
) -> Segment<'static> {
    let (c, s) = (Addr::v4([10, 0, 0, 1]), Addr::v4([10, 0, 0, 2]));
    let (src, dst, sport, dport) = if from_client {
        (c, s, cport, 443)
    } else {
        (s, c, 443, cport)
    };
    Segment {
        ts_ns: ts_s * 1_000_000_000,
        link: LinkInfo::default(),
        src,
        dst,
        sport,
        dport,
        seq,
        ack,
        flags: TcpFlags(flags),
        payload,
        wire_len: payload.len() as u32,
    }
}

/// (id, end, client side, packets, client bytes, start) of each emitted flow.
type Emitted = (u64, End, usize, u64, u64, Start);

fn run(cfg: FlowConfig, segs: &[Segment<'static>]) -> (Vec<Emitted>, TableStats) {
    let mut t = FlowTable::new(cfg);
    let mut out = Vec::new();
    let mut emit = |f: &mut Flow, e: End| {
        let client = crate::classify::orient(f).0;
        out.push((
            f.id,
            e,
            client,
            f.dir[0].packets + f.dir[1].packets,
            f.dir[client].bytes,
            f.start(),
        ));
    };
    for s in segs {
        t.push(s, &mut emit);
    }
    t.finish(&mut emit);
    (out, t.stats())
}

/// A full connection: handshake, one request and one answer, FIN both ways, final ACK.
fn connection(t: u64, cport: u16) -> Vec<Segment<'static>> {
    vec![
        seg(t, true, cport, S, 100, 0, b""),
        seg(t, false, cport, S | A, 500, 101, b""),
        seg(t, true, cport, A, 101, 501, b""),
        seg(t, true, cport, A, 101, 501, b"GET / HTTP/1.1\r\n\r\n"),
        seg(t, false, cport, A, 501, 119, b"HTTP/1.1 200 OK\r\n\r\n"),
        seg(t, true, cport, F | A, 119, 520, b""),
        seg(t, false, cport, F | A, 520, 120, b""),
        seg(t, true, cport, A, 120, 521, b""),
    ]
}

#[test]
fn clean_close_is_emitted_at_the_final_ack_and_late_packets_are_absorbed() {
    let mut segs = connection(1, 40000);
    segs.push(seg(2, false, 40000, F | A, 520, 120, b"")); // retransmitted FIN after close
    let (flows, stats) = run(FlowConfig::default(), &segs);
    assert_eq!(flows.len(), 1);
    assert_eq!((flows[0].1, flows[0].3, flows[0].4), (End::Fin, 8, 18));
    assert_eq!(stats.late_packets, 1);
}

#[test]
fn reordered_handshake_still_names_the_syn_sender_client() {
    let mut segs = connection(1, 40001);
    segs.swap(0, 1); // SYN-ACK captured before the SYN
    let (flows, _) = run(FlowConfig::default(), &segs);
    assert_eq!(flows.len(), 1);
    let (_, end, client, packets, c2s, start) = flows[0];
    assert_eq!((end, packets, c2s, start), (End::Fin, 8, 18, Start::Syn));
    // Side 0 is the first packet's source (the server here); the client is side 1.
    assert_eq!(client, 1);
}

#[test]
fn new_syn_on_a_closed_four_tuple_starts_a_new_flow() {
    let mut segs = connection(1, 40002);
    segs.extend(connection(3, 40002));
    let (flows, stats) = run(FlowConfig::default(), &segs);
    assert_eq!(
        flows.iter().map(|f| (f.0, f.1)).collect::<Vec<_>>(),
        vec![(0, End::Fin), (1, End::Fin)]
    );
    assert_eq!(stats.late_packets, 0);
}

#[test]
fn new_syn_while_the_old_flow_is_still_closing_also_starts_a_new_flow() {
    let mut segs = connection(1, 40003);
    segs.pop(); // the final ACK was not captured: the first flow is still open, closing
    segs.extend(connection(2, 40003));
    let (flows, _) = run(FlowConfig::default(), &segs);
    assert_eq!(flows.len(), 2);
    assert_eq!(flows[0].3, 7);
}

#[test]
fn reset_ends_a_flow_at_once() {
    let segs = vec![
        seg(1, true, 40004, S, 1, 0, b""),
        seg(1, false, 40004, R | A, 0, 2, b""),
        seg(1, false, 40004, R | A, 0, 2, b""),
    ];
    let (flows, stats) = run(FlowConfig::default(), &segs);
    assert_eq!((flows.len(), flows[0].1, flows[0].3), (1, End::Rst, 2));
    assert_eq!(stats.late_packets, 1);
}

#[test]
fn idle_flows_are_emitted_by_capture_time_and_midstream_flows_are_marked() {
    let cfg = FlowConfig {
        idle_timeout_ns: 10_000_000_000,
        ..FlowConfig::default()
    };
    let segs = vec![
        seg(100, true, 40005, A, 7, 9, b"GET / HTTP/1.1\r\n\r\n"), // mid-stream, then silence
        seg(200, true, 40006, S, 1, 0, b""),                       // 100 s later, another flow
    ];
    let (flows, _) = run(cfg, &segs);
    assert_eq!(flows[0].0, 0);
    assert_eq!((flows[0].1, flows[0].5), (End::Idle, Start::Midstream));
    assert_eq!((flows[1].1, flows[1].5), (End::Eof, Start::Syn));
}

#[test]
fn a_full_table_evicts_the_least_recently_active_and_counts_it() {
    let cfg = FlowConfig {
        max_flows: 4,
        ..FlowConfig::default()
    };
    let segs: Vec<_> = (0..10u16)
        .map(|i| seg(1 + u64::from(i), true, 41000 + i, S, 1, 0, b""))
        .collect();
    let (flows, stats) = run(cfg, &segs);
    assert_eq!(flows.len(), 10);
    assert!(stats.evicted >= 6, "{stats:?}");
    assert!(stats.max_live <= 4);
    // The oldest went first.
    assert_eq!((flows[0].0, flows[0].1), (0, End::Evicted));
}

/// Issue 11: the figures in docs/memory.md come from this (run with `--nocapture`); they must
/// stay within the documented per-flow overhead, so a type that grows shows up here.
#[test]
fn memory_bound_for_the_defaults_is_what_the_docs_say() {
    use std::mem::size_of;
    let b = FlowConfig::default().memory_bound();
    println!(
        "Flow {} Stream {} (FlowKey,Slot) {} (FlowKey,QuicFlow) {} per_flow {} index {} \
         per_quic_flow {} quic_index {} caches {} total {}",
        size_of::<Flow>(),
        size_of::<Stream>(),
        size_of::<(FlowKey, Slot)>(),
        size_of::<(FlowKey, quic::QuicFlow)>(),
        b.per_flow,
        b.index,
        b.per_quic_flow,
        b.quic_index,
        b.caches,
        b.total
    );
    // docs/memory.md: per flow 2 × (16 KiB + 96 KiB HTTP) + 11,568 B of fixed overhead (at
    // most 12 KiB), 15.03 GiB in all at the defaults.
    let fixed = b.per_flow - 2 * (16 * 1024 + HTTP_ALLOWANCE);
    assert!(
        fixed <= 12 * 1024,
        "per-flow fixed overhead grew to {fixed} bytes"
    );
    let gib = b.total as f64 / f64::from(1u32 << 30);
    assert!(
        (15.0..15.05).contains(&gib),
        "the default bound is {gib:.3} GiB; update docs/memory.md"
    );
}
