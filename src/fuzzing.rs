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
    let in_flows: u64 = flows
        .iter()
        .filter(|f| f.tcp.is_some())
        .map(|f| f.packets.c2s + f.packets.s2c)
        .sum();
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

/// The TLS layer alone: the input is split into a client and a server byte stream (first two
/// bytes: client length), each fed in small chunks through the record walker, then analysed.
/// Invariants: the record log stays bounded, and facts never claim what the wire cannot show
/// (TLS 1.3 fields are hidden, inferred values come with their basis).
pub fn check_tls(data: &[u8]) {
    use crate::tls::{self, ClientCert, DirectionInput, records::RecordWalker};
    let (split, rest) = match data {
        [a, b, rest @ ..] => (
            usize::from(u16::from_le_bytes([*a, *b])).min(rest.len()),
            rest,
        ),
        _ => return,
    };
    let (c, s) = rest.split_at(split);
    let walk = |bytes: &[u8]| {
        let mut w = RecordWalker::default();
        let mut at = 0u64;
        for (i, chunk) in bytes.chunks(7).enumerate() {
            w.feed(
                at,
                chunk,
                &bytes[..(at as usize + chunk.len())],
                true,
                i as u32,
            );
            at += chunk.len() as u64;
        }
        w
    };
    let (cw, sw) = (walk(c), walk(s));
    assert!(cw.events.len() <= tls::records::MAX_EVENTS);
    assert!(sw.tail_alerts.len() <= tls::records::MAX_TAIL_ALERTS);
    let mut caches = tls::TlsCaches::default();
    let facts = tls::analyze(
        DirectionInput {
            kept: c,
            walker: &cw,
        },
        DirectionInput {
            kept: s,
            walker: &sw,
        },
        tls::Close::Fin,
        &mut caches,
    );
    if facts.version.as_deref() == Some("1.3") {
        assert_eq!(facts.client_cert, Some(ClientCert::Hidden));
        assert_ne!(
            facts.alpn_selected.as_deref(),
            Some("h2"),
            "TLS 1.3 ALPN is never visible"
        );
    } else {
        assert!(
            facts.client_cert_inferred.is_none(),
            "inference is for TLS 1.3 only"
        );
    }
    if facts.client_cert_inferred.is_some() {
        assert!(facts.inference_basis.is_some());
    }
}

/// QUIC Initial handling: arbitrary datagrams (the input split at 0xff bytes) from the client.
/// Invariants: no panic, the CRYPTO bytes held (merged and waiting) stay within their cap, and
/// a ClientHello is only reported when a packet actually decrypted.
pub fn check_quic(data: &[u8]) {
    let mut q = crate::tls::quic::QuicInitials::default();
    for d in data.split(|&b| b == 0xff) {
        q.client_datagram(d);
        assert!(q.held_bytes() <= crate::tls::quic::MAX_CRYPTO);
    }
    if q.decrypted == 0 {
        assert!(q.client_hello().is_none());
    }
}

/// The HTTP/1.x and h2c readers alone: the input is split into a client and a server byte
/// stream (first two bytes: client length; the third picks the chunk size), each fed in
/// chunks, with a gap wherever a chunk starts with 0xfe. Invariants: what is kept stays within
/// its bounds, counts cover what is kept, every label has its evidence, and redacted evidence
/// never carries more than the placeholder after a credential's name.
pub fn check_http(data: &[u8]) {
    use crate::http::{self, HttpStream, MAX_MESSAGES};
    let (split, piece, rest) = match data {
        [a, b, p, rest @ ..] => (
            usize::from(u16::from_le_bytes([*a, *b])).min(rest.len()),
            usize::from(*p % 64) + 1,
            rest,
        ),
        _ => return,
    };
    let (c, s) = rest.split_at(split);
    let feed = |bytes: &[u8]| {
        let mut st = HttpStream::default();
        st.reset(false);
        for chunk in bytes.chunks(piece) {
            if chunk[0] == 0xfe {
                st.skip(chunk.len() as u64);
            } else {
                st.feed(chunk);
            }
        }
        st
    };
    let (mut cs, mut ss) = (feed(c), feed(s));
    let Some(f) = http::facts(&mut cs, &mut ss) else {
        return;
    };
    assert!(f.requests.len() <= MAX_MESSAGES && f.responses.len() <= MAX_MESSAGES);
    assert!(f.request_count >= f.requests.len() as u64);
    assert!(f.response_count >= f.responses.len() as u64);
    for r in &f.requests {
        assert_eq!(r.sensitive.len(), r.evidence.len());
    }
    for r in &f.responses {
        assert_eq!(r.sensitive.len(), r.evidence.len());
    }
    for (label, ev) in f.sensitive() {
        if label.starts_with("authorization:")
            || label.starts_with("header:")
            || label.starts_with("query:")
            || label == "userinfo"
        {
            assert!(ev.ends_with(" bytes>") || ev.ends_with(" byte>"), "{ev}");
        }
    }
    // Every path is stored redacted: a credential parameter left in one has only the marker.
    let kept: usize = f.requests.iter().map(|r| r.path.len()).sum();
    assert!(kept <= http::MAX_KEPT, "{kept} bytes of paths kept");
    for r in &f.requests {
        let query = r.path.split_once(['?', '#']).map_or("", |(_, q)| q);
        for pair in query.split(['&', ';', '#']) {
            if let Some((name, value)) = pair.split_once('=') {
                if http::sensitive::is_secret_param(name.as_bytes()) {
                    assert!(value.starts_with("<redacted, "), "{}", r.path);
                }
            }
        }
    }
}

/// Capture filters: the first line is an expression, the rest a packet. Compiling must not
/// panic whatever the text; a compiled program must end (every jump is forward) and its
/// verdict must be 0 or the snaplen on any packet.
pub fn check_filter(data: &[u8]) {
    let (expr, pkt) = match memchr::memchr(b'\n', data) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(expr) = std::str::from_utf8(expr) else {
        return;
    };
    use crate::capture::filter::{Link, Meta, compile, run_with};
    // The first packet byte also picks the metadata the kernel would give.
    let flags = pkt.first().copied().unwrap_or(0);
    let meta = Meta {
        protocol: u16::from(flags) << 8,
        vlan_tci: (flags & 1 != 0).then_some(u16::from(flags)),
    };
    for link in [Link::Ethernet, Link::Cooked] {
        if let Ok(prog) = compile(expr, link, 4242) {
            let r = run_with(&prog, pkt, meta);
            assert!(r == 0 || r == 4242, "verdict {r}");
        }
    }
}

/// Splits `data` into two pcapng "exec streams" (the first 4 bytes, little-endian, say where
/// the first ends), merges them
/// block by block as `kubectl meshsniff -l` does, and checks that whatever the merger wrote
/// before a stream went bad is a capture our reader reads to the end, with one packet per
/// packet block the merger accepted and every interface named after its stream.
pub fn check_merge(data: &[u8]) {
    use crate::kube::merge::{BlockReader, Merger};
    let Some((cut, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let mid = (u32::from_le_bytes(*cut) as usize).min(rest.len());
    let streams = [&rest[..mid], &rest[mid..]];
    let labels = ["ns/a".to_string(), "ns/b".to_string()];
    let Ok(mut m) = Merger::new(Vec::new(), &labels) else {
        return;
    };
    let mut readers: Vec<_> = streams
        .iter()
        .zip(&labels)
        .map(|(s, l)| Some(BlockReader::new(*s, l)))
        .collect();
    while readers.iter().any(Option::is_some) {
        for (i, slot) in readers.iter_mut().enumerate() {
            let Some(r) = slot else { continue };
            match r.next_block() {
                Ok(Some(b)) if m.push(i, &b).is_ok() => {}
                _ => *slot = None,
            }
        }
    }
    let packets = m.packets;
    let out = m.into_inner();
    let mut reader = crate::pcap::PcapReader::new(&out[..]).expect("merged output has a header");
    let mut read = 0u64;
    while reader.advance().expect("merged output reads to the end") {
        read += 1;
    }
    assert_eq!(read, packets, "every accepted packet block is one packet");
    for i in reader.interfaces() {
        let name = i.name.as_deref().unwrap_or("");
        assert!(
            name.starts_with("ns/a") || name.starts_with("ns/b"),
            "{name}"
        );
    }
}
