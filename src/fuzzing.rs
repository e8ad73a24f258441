//! Invariants checked by the fuzz targets (`fuzz/`) and by the mutation test in `tests/`, so
//! the same assertions run under libFuzzer and in every `cargo test`. Not a stable API.

use crate::analyze::analyze_bytes;
use crate::flow::FlowConfig;

/// Analyses `data` as a capture with small limits (so eviction and caps are exercised too) and
/// panics if an invariant does not hold. Must never panic for any other reason.
pub fn check_capture(data: &[u8]) {
    let cfg = FlowConfig {
        max_flows: 8,
        collect_bytes: 256,
        ..FlowConfig::default()
    };
    let (flows, summary) = analyze_bytes(data, cfg);
    // Every packet is either TCP or counted by kind.
    assert_eq!(
        summary.tcp_packets + summary.non_tcp.total(),
        summary.packets
    );
    // Every TCP packet lands in exactly one flow, or is counted as late for a closed one.
    let in_flows: u64 = flows.iter().map(|f| f.packets.c2s + f.packets.s2c).sum();
    assert_eq!(in_flows + summary.late_packets, summary.tcp_packets);
    assert_eq!(flows.len() as u64, summary.flows);
    let by_proto = summary.protocols;
    assert_eq!(
        by_proto.tls + by_proto.http + by_proto.h2c + by_proto.other + by_proto.empty,
        summary.flows
    );
    for (i, f) in flows.iter().enumerate() {
        assert!(
            f.packets.c2s + f.packets.s2c >= 1,
            "flow {i} without packets"
        );
        assert!(f.first_ts <= f.last_ts, "flow {i} ends before it starts");
        if f.bytes.c2s + f.bytes.s2c == 0 {
            assert_eq!(f.protocol, crate::classify::Protocol::Empty);
        }
    }
    // Flow ids are unique.
    let mut ids: Vec<u64> = flows.iter().map(|f| f.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), flows.len());
    assert!(summary.max_live_flows <= 8);
}

/// The stream reassembler alone: segments described by the fuzzer's bytes, in any order.
/// Invariant: what was collected is a prefix of the reassembled stream no longer than the cap,
/// and counters never exceed what was fed.
pub fn check_reassembly(data: &[u8]) {
    crate::flow::fuzz_stream(data);
}
