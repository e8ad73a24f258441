//! The fuzz targets' invariants on deterministic mutations of every sample capture (bit flips,
//! byte overwrites, cuts, splices), so `cargo test` exercises them without libFuzzer.

mod common;

use meshsniff::fuzzing::{check_capture, check_reassembly, check_tls};

/// A small deterministic generator (xorshift): no dependency, same cases every run.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn capture_invariants_hold_on_mutated_real_captures() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut cases = 0;
    for path in common::sample_captures() {
        let original = common::read(&path);
        check_capture(&original);
        for _ in 0..300 {
            let mut m = original.clone();
            match rng.below(4) {
                0 => {
                    for _ in 0..1 + rng.below(8) {
                        let i = rng.below(m.len());
                        m[i] ^= 1 << rng.below(8);
                    }
                }
                1 => {
                    let i = rng.below(m.len());
                    let v = [0u8, 0xff, 0x7f, 0x80][rng.below(4)];
                    for b in m.iter_mut().skip(i).take(1 + rng.below(6)) {
                        *b = v;
                    }
                }
                2 => m.truncate(rng.below(m.len())),
                _ => {
                    let a = rng.below(m.len());
                    let b = rng.below(m.len());
                    let chunk: Vec<u8> = m[a.min(b)..a.max(b)].to_vec();
                    let at = rng.below(m.len());
                    m.splice(at..at, chunk);
                }
            }
            check_capture(&m);
            cases += 1;
        }
    }
    assert!(cases >= 2000, "only {cases} cases");
}

#[test]
fn reassembly_invariants_hold_for_random_segment_orders() {
    let mut rng = Rng(42);
    for _ in 0..3000 {
        let n = rng.below(40);
        let mut data = Vec::new();
        for _ in 0..n {
            let off = rng.below(2000) as u16;
            data.extend_from_slice(&off.to_le_bytes());
            data.push(rng.below(256) as u8);
        }
        check_reassembly(&data);
    }
}

#[test]
fn tls_invariants_hold_on_mutated_handshakes_from_real_captures() {
    // Client and server bytes of real TLS flows, then mutated, go through the TLS layer alone.
    let mut rng = Rng(7);
    let mut cases = 0;
    for path in common::sample_captures() {
        let bytes = common::read(&path);
        let (flows, _) =
            meshsniff::analyze::analyze_bytes(&bytes, meshsniff::flow::FlowConfig::default());
        if !flows
            .iter()
            .any(|f| f.protocol == meshsniff::classify::Protocol::Tls)
        {
            continue;
        }
        // The raw packet bytes stand in for stream bytes: TLS records appear in them unchanged.
        for _ in 0..200 {
            let mut m = bytes.clone();
            for _ in 0..rng.below(6) {
                let i = rng.below(m.len());
                m[i] ^= 1 << rng.below(8);
            }
            // Start at a TLS record header (22 3 x) found after a random point.
            let from = rng.below(m.len());
            let start = m[from..]
                .windows(2)
                .position(|w| w == [22, 3])
                .map_or(from, |p| from + p);
            let mut input = vec![0u8, 0];
            let split = rng.below(4096) as u16;
            input[..2].copy_from_slice(&split.to_le_bytes());
            input.extend_from_slice(&m[start..m.len().min(start + 8192)]);
            check_tls(&input);
            cases += 1;
        }
    }
    assert!(cases >= 1000, "only {cases}");
}

#[test]
fn quic_invariants_hold_on_mutated_real_initials() {
    // Real QUIC Initials from the public corpus (when present), bit-flipped.
    let Some(shared) = common::shared() else {
        common::skip(
            "quic_mutations",
            "../shared/captures-public is not beside this checkout",
        );
        return;
    };
    let bytes = common::read(&shared.join("captures-public/ja4/quic-tls-handshake.pcapng"));
    let mut reader = meshsniff::pcap::PcapReader::new(&bytes[..]).unwrap();
    let frame = reader.next_frame().unwrap().expect("one packet");
    let initial = match meshsniff::wire::decode(&frame) {
        meshsniff::wire::Decoded::Udp(d) => d.payload.to_vec(),
        other => panic!("not UDP: {other:?}"),
    };
    let initial = &initial[..];
    let mut q = meshsniff::tls::quic::QuicInitials::default();
    q.client_datagram(initial);
    let ch = q
        .client_hello()
        .expect("the unmutated Initial decrypts to a ClientHello");
    assert_eq!(ch.sni.as_deref(), Some("www.google.com"));
    let mut rng = Rng(99);
    meshsniff::fuzzing::check_quic(initial);
    for _ in 0..2000 {
        let mut m = initial.to_vec();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(m.len());
            m[i] ^= 1 << rng.below(8);
        }
        m.truncate(rng.below(m.len() + 1));
        meshsniff::fuzzing::check_quic(&m);
    }
}
