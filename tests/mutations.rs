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

/// A QUIC variable-length integer (RFC 9000 §16), 1, 2 or 4 bytes.
fn quic_varint(v: usize, out: &mut Vec<u8>) {
    match v {
        0..0x40 => out.push(v as u8),
        0x40..0x4000 => out.extend_from_slice(&(0x4000 | v as u16).to_be_bytes()),
        _ => out.extend_from_slice(&(0x8000_0000 | v as u32).to_be_bytes()),
    }
}

/// Every TLS ClientHello message (handshake header and body) that sits whole in one record of a
/// sample capture's packets: the CRYPTO data a QUIC client would send.
fn real_client_hellos() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    for path in common::sample_captures() {
        let b = common::read(&path);
        for p in 0..b.len().saturating_sub(9) {
            if b[p..p + 3] != [22, 3, 1] || b[p + 5] != 1 {
                continue;
            }
            let rec = usize::from(u16::from_be_bytes([b[p + 3], b[p + 4]]));
            let msg = (usize::from(b[p + 6]) << 16)
                | (usize::from(b[p + 7]) << 8)
                | usize::from(b[p + 8]);
            if msg + 4 <= rec && p + 5 + 4 + msg <= b.len() {
                let m = b[p + 5..p + 9 + msg].to_vec();
                if !out.contains(&m) {
                    out.push(m);
                }
            }
        }
    }
    out
}

#[test]
fn quic_crypto_invariants_hold_on_mutated_client_hellos_from_real_captures() {
    // Real ClientHellos as the CRYPTO data of QUIC Initials (the plaintext check_quic_crypto
    // seals and decrypts): split, reordered, duplicated, coalesced, mixed with PING/ACK frames,
    // bit-flipped and cut.
    let hellos = real_client_hellos();
    assert!(
        hellos.len() >= 5,
        "only {} ClientHellos in captures/",
        hellos.len()
    );
    let mut rng = Rng(0x51);
    let mut cases = 0;
    let mut reached = 0;
    for msg in &hellos {
        let expected = meshsniff::tls::handshake::parse_client_hello(&msg[4..]);
        for round in 0..250 {
            // Cut the message into CRYPTO frames, one packet each, some after a PING or ACK.
            let mut packets: Vec<(u8, Vec<u8>)> = Vec::new();
            let mut at = 0;
            while at < msg.len() {
                let n = (1 + rng.below(msg.len())).min(msg.len() - at);
                let mut f = Vec::new();
                match rng.below(4) {
                    0 => f.push(0x01),
                    1 => f.extend_from_slice(&[0x02, 0, 0, 0, 0]),
                    _ => {}
                }
                f.push(0x06);
                quic_varint(at, &mut f);
                quic_varint(n, &mut f);
                f.extend_from_slice(&msg[at..at + n]);
                f.resize(f.len() + rng.below(40), 0); // PADDING
                packets.push((rng.below(8) as u8, f));
                at += n;
            }
            let in_order = round % 2 == 0;
            if !in_order {
                match rng.below(4) {
                    0 => packets.reverse(),
                    1 => {
                        let i = rng.below(packets.len());
                        let p = packets[i].clone();
                        packets.push(p);
                    }
                    2 => {
                        let i = rng.below(packets.len());
                        let p = &mut packets[i].1;
                        for _ in 0..1 + rng.below(4) {
                            let i = rng.below(p.len());
                            p[i] ^= 1 << rng.below(8);
                        }
                    }
                    _ => {
                        let i = rng.below(packets.len());
                        let j = rng.below(packets.len());
                        packets.swap(i, j);
                    }
                }
            }
            let mut input = Vec::new();
            for (ctl, f) in &packets {
                input.push(*ctl & !0x08);
                input.extend_from_slice(&(f.len() as u16).to_be_bytes());
                input.extend_from_slice(f);
            }
            if !in_order && rng.below(4) == 0 {
                input.truncate(rng.below(input.len()));
            }
            let got = meshsniff::fuzzing::check_quic_crypto(&input);
            if in_order {
                assert_eq!(
                    got, expected,
                    "in-order CRYPTO frames of a real ClientHello"
                );
            }
            reached += usize::from(got.is_some());
            cases += 1;
        }
    }
    assert!(cases >= 1000, "only {cases}");
    assert!(
        reached * 2 >= cases,
        "the ClientHello was read in only {reached} of {cases}"
    );
}

#[test]
fn quic_datagram_invariants_hold_on_mutated_recorded_initials() {
    // The client's datagrams of captures/quic-aioquic.pcap (aioquic, recorded by
    // captures/quic/record.sh) in the quic fuzz target's format, then mutated.
    let bytes = common::read(&common::repo().join("captures/quic-aioquic.pcap"));
    let mut reader = meshsniff::pcap::PcapReader::new(&bytes[..]).unwrap();
    let mut client = Vec::new();
    let mut client_port = None;
    while let Some(frame) = reader.next_frame().unwrap() {
        if let meshsniff::wire::Decoded::Udp(d) = meshsniff::wire::decode(&frame) {
            let port = *client_port.get_or_insert(d.sport);
            if d.sport == port {
                client.extend_from_slice(&(d.payload.len() as u16).to_be_bytes());
                client.extend_from_slice(d.payload);
            }
        }
    }
    let first = &client[2..2 + usize::from(u16::from_be_bytes([client[0], client[1]]))];
    let mut q = meshsniff::tls::quic::QuicInitials::default();
    q.client_datagram(first);
    let ch = q.client_hello().expect("the recorded Initial decrypts");
    assert_eq!(ch.sni.as_deref(), Some("quic.test"));
    meshsniff::fuzzing::check_quic_datagrams(&client);
    let mut rng = Rng(0x0dd);
    for _ in 0..2000 {
        let mut m = client.clone();
        for _ in 0..1 + rng.below(4) {
            let i = rng.below(m.len());
            m[i] ^= 1 << rng.below(8);
        }
        m.truncate(rng.below(m.len() + 1));
        meshsniff::fuzzing::check_quic_datagrams(&m);
    }
}
