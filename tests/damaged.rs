//! Bad input loses nothing: every prefix of a real capture (truncation at every byte) is read
//! without panic and yields the flows it contains; damage is reported with file, byte offset and
//! packet number and exit code 3; a file that is not a capture is named as such (exit 2).

mod common;

use meshsniff::analyze::analyze_bytes;
use meshsniff::flow::FlowConfig;
use meshsniff::pcap::PcapReader;
use meshsniff::report::InputErrorKind;

/// Byte offsets at which a record ends (where a cut leaves a valid, shorter file). For pcapng,
/// every block end (walked here independently of the reader, little-endian files only).
fn record_boundaries(bytes: &[u8]) -> Vec<usize> {
    if bytes.starts_with(&[0x0a, 0x0d, 0x0d, 0x0a]) {
        let mut v = Vec::new();
        let mut at = 0;
        while at + 8 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
            at += len;
            v.push(at);
        }
        return v;
    }
    let mut r = PcapReader::new(bytes).unwrap();
    let mut v = vec![r.position() as usize];
    while r.advance().unwrap() {
        v.push(r.position() as usize);
    }
    v
}

fn sample(name: &str) -> Vec<u8> {
    common::read(&common::repo().join("captures").join(name))
}

#[test]
fn every_prefix_of_a_capture_is_read_without_panic_and_flagged_partial_mid_record() {
    for name in [
        "tls12-mtls-openssl.pcap",
        "two-interfaces.pcapng",
        "any-ipv6-sll2.pcap",
    ] {
        let bytes = sample(name);
        let boundaries = record_boundaries(&bytes);
        let (full, _) = analyze_bytes(&bytes, FlowConfig::default());
        let header_end = boundaries[0];
        for cut in 0..bytes.len() {
            let (flows, summary) = analyze_bytes(&bytes[..cut], FlowConfig::default());
            assert!(
                flows.len() <= full.len(),
                "{name}[..{cut}]: more flows than the whole file"
            );
            let at_boundary = boundaries.contains(&cut);
            if cut >= header_end && !at_boundary && !name.ends_with(".pcapng") && cut > 0 {
                assert!(
                    summary.partial,
                    "{name}[..{cut}] cuts a record but is not partial"
                );
                let e = &summary.errors[0];
                assert_eq!(e.kind, InputErrorKind::Damaged);
                assert!(e.offset.is_some() && e.packet.is_some(), "{e:?}");
            }
            if at_boundary && cut >= header_end {
                assert!(
                    !summary.partial,
                    "{name}[..{cut}] ends on a record boundary: {:?}",
                    summary.errors
                );
            }
            if name.ends_with(".pcapng") && cut > 0 && !at_boundary {
                // Cut inside the SHB or a block: damaged, or too short to be a capture at all.
                assert!(
                    summary.partial,
                    "{name}[..{cut}] cut inside a block but not partial"
                );
            }
        }
    }
}

#[test]
fn garbage_after_a_valid_file_keeps_every_flow_and_names_offset_and_packet() {
    let bytes = sample("content-not-port.pcap");
    let (clean, clean_summary) = analyze_bytes(&bytes, FlowConfig::default());
    let mut damaged = bytes.clone();
    damaged.extend_from_slice(b"this is not a pcap record, it is trailing garbage............");
    let (flows, summary) = analyze_bytes(&damaged, FlowConfig::default());
    let ends = |v: &[meshsniff::report::FlowRecord]| {
        v.iter()
            .map(|f| (f.client.clone(), f.server.clone(), f.protocol))
            .collect::<Vec<_>>()
    };
    assert_eq!(ends(&flows), ends(&clean));
    assert!(summary.partial);
    let e = &summary.errors[0];
    assert_eq!(e.offset, Some(bytes.len() as u64), "{e:?}");
    assert_eq!(e.packet, Some(clean_summary.packets + 1), "{e:?}");
}

#[test]
fn corrupt_record_header_mid_file_stops_there_and_reports_what_came_before() {
    let bytes = sample("http-python-curl.pcap");
    let boundaries = record_boundaries(&bytes);
    let mut damaged = bytes.clone();
    let at = boundaries[10]; // header of packet 11
    damaged[at + 8..at + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes()); // caplen
    let (flows, summary) = analyze_bytes(&damaged, FlowConfig::default());
    assert_eq!(
        flows.len(),
        1,
        "the flow begun before the damage is still reported"
    );
    assert_eq!(flows[0].packets.c2s + flows[0].packets.s2c, 10);
    let e = &summary.errors[0];
    assert_eq!((e.offset, e.packet), (Some(at as u64), Some(11)), "{e:?}");
    assert!(e.message.contains("captured length"), "{}", e.message);
}

#[test]
fn cli_damaged_file_exits_3_with_file_offset_and_packet_on_stderr() {
    let bytes = sample("tls13-openssl.pcap");
    let dir = tempdir();
    let path = dir.join("cut.pcap");
    std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
    let out = common::run(&["analyze", "--format", "jsonl", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    let (flows, summary) = common::parse_jsonl(&out.stdout);
    assert_eq!(flows.len(), 1);
    assert!(summary.partial);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cut.pcap") && err.contains("byte offset") && err.contains("packet"),
        "{err}"
    );
}

#[test]
fn not_a_capture_exits_2_and_says_what_it_looks_like() {
    let dir = tempdir();
    let path = dir.join("notes.txt");
    std::fs::write(
        &path,
        "12:00:00.000000 IP 10.0.0.1.443 > 10.0.0.2.5000: Flags [S]\n",
    )
    .unwrap();
    let out = common::run(&["analyze", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("notes.txt") && err.contains("not a capture file"),
        "{err}"
    );
    if let Some(shared) = common::shared() {
        let m = shared.join("captures-public/pcap-parser/modified-format.pcap");
        let out = common::run(&["analyze", m.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("modified"));
    }
}

#[test]
fn snaplen_cut_packets_are_flagged_and_nothing_is_invented() {
    let Some(shared) = common::shared_or_skip("snaplen_cut") else {
        return;
    };
    let bytes =
        common::read(&shared.join("captures-public/local-loopback/tls12-mtls-ok.snap96.pcap"));
    let (flows, summary) = analyze_bytes(&bytes, FlowConfig::default());
    assert!(!summary.partial, "a snaplen cut is not damage");
    assert_eq!(flows.len(), 1);
    assert!(flows[0].tcp.as_ref().unwrap().snaplen_cut > 0);
    // The bytes on the wire are counted from the IP header, not from what was captured.
    let (full, _) = analyze_bytes(
        &common::read(&shared.join("captures-public/local-loopback/tls12-mtls-ok.pcap")),
        FlowConfig::default(),
    );
    assert_eq!(flows[0].bytes, full[0].bytes);
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "meshsniff-test-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// pcapng block walk for the tests (little-endian files): (offset, length, type) per block.
fn blocks(bytes: &[u8]) -> Vec<(usize, usize, u32)> {
    let mut v = Vec::new();
    let mut at = 0;
    while at + 8 <= bytes.len() {
        let t = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let len = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        v.push((at, len, t));
        at += len;
    }
    v
}

/// (client, server) of every flow: what "every flow that could be read" is compared by.
fn ends(v: &[meshsniff::report::FlowRecord]) -> Vec<(String, String)> {
    let mut e: Vec<_> = v
        .iter()
        .map(|f| (f.client.clone(), f.server.clone()))
        .collect();
    e.sort();
    e
}

/// Issue 11, "damaged pcapng is damage": a real capture with one field changed, block by
/// block. Each is reported (exit 3, file, byte offset, block number) and every flow of the
/// undamaged file is still reported. On the code before the fix each exited 0 in silence (the
/// first case dropped the packet that carries the Authorization header).
#[test]
fn issue_11_damaged_pcapng_blocks_exit_3_with_offset_and_block_and_keep_every_flow() {
    struct Case {
        file: &'static str,
        /// 1-based number of the block to change.
        block: usize,
        /// Offset inside the block of the u32 (or u16, `short`) field and its new value.
        field: usize,
        value: u32,
        short: bool,
        /// Framing damage stops the reader: flows are then only those begun before.
        fatal: bool,
        says: &'static str,
    }
    let cases = [
        // EPB interface id 0 -> 7 (the section has 2): the block holding `Authorization`
        // (captures/mesh/record.sh's Envoy lab; checked below, a re-recording moves it).
        Case {
            file: "mesh-server.pcapng",
            block: 175,
            field: 8,
            value: 7,
            short: false,
            fatal: false,
            says: "interface 7",
        },
        // EPB captured length past its block.
        Case {
            file: "two-interfaces.pcapng",
            block: 20,
            field: 20,
            value: 5000,
            short: false,
            fatal: false,
            says: "captured length 5000",
        },
        // IDB option (if_name, the first) whose length runs past the block.
        Case {
            file: "two-interfaces.pcapng",
            block: 3,
            field: 18,
            value: 200,
            short: true,
            fatal: false,
            says: "option 2 says 200 bytes",
        },
        // SHB option length past the block.
        Case {
            file: "mesh-server.pcapng",
            block: 1,
            field: 26,
            value: 400,
            short: true,
            fatal: false,
            says: "section header",
        },
        // EPB block total length differs from its trailer: framing, reading stops there.
        Case {
            file: "mesh-server.pcapng",
            block: 60,
            field: 4,
            value: 72,
            short: false,
            fatal: true,
            says: "trailing length",
        },
    ];
    let dir = tempdir();
    for c in cases {
        let bytes = sample(c.file);
        let (clean, _) = analyze_bytes(&bytes, FlowConfig::default());
        let (at, len, _) = blocks(&bytes)[c.block - 1];
        if c.says == "interface 7" {
            assert!(
                bytes[at..at + len]
                    .windows(14)
                    .any(|w| w == b"Authorization:"),
                "block {} of {} no longer holds the Authorization header",
                c.block,
                c.file
            );
        }
        let mut damaged = bytes.clone();
        let f = at + c.field;
        if c.short {
            damaged[f..f + 2].copy_from_slice(&(c.value as u16).to_le_bytes());
        } else {
            damaged[f..f + 4].copy_from_slice(&c.value.to_le_bytes());
        }
        let path = dir.join(format!("block{}-{}", c.block, c.file));
        std::fs::write(&path, &damaged).unwrap();
        let out = common::run(&["analyze", "--format", "jsonl", path.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        let what = format!("{} block {}: {err}", c.file, c.block);
        assert_eq!(out.status.code(), Some(3), "{what}");
        let (flows, summary) = common::parse_jsonl(&out.stdout);
        assert!(summary.partial, "{what}");
        let name = path.file_name().unwrap().to_str().unwrap();
        let line = err
            .lines()
            .find(|l| l.contains(c.says))
            .unwrap_or_else(|| panic!("{what}: no line says {:?}", c.says));
        assert!(
            line.contains(name)
                && line.contains(&format!("byte offset {at}"))
                && line.contains(&format!("block {}", c.block)),
            "{what}"
        );
        let e = summary
            .errors
            .iter()
            .find(|e| e.message.contains(c.says))
            .unwrap();
        assert_eq!(
            (e.kind, e.offset),
            (InputErrorKind::Damaged, Some(at as u64)),
            "{what}"
        );
        if c.fatal {
            assert!(!flows.is_empty() && flows.len() <= clean.len(), "{what}");
        } else {
            assert_eq!(ends(&flows), ends(&clean), "{what}");
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}
