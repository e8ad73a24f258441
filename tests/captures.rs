//! Regression tests on the captures recorded by `captures/record.sh` from real programs: the
//! JSON Lines output must equal the committed `captures/expected/NAME.jsonl` (read back into the
//! schema types), and the flows must agree with tshark's reading of the same file.
//! `MESHSNIFF_BLESS=1 cargo test --test captures` rewrites the expected files after a deliberate
//! change; review the diff.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

#[test]
fn every_sample_capture_matches_its_expected_output() {
    let captures = common::sample_captures();
    assert!(captures.len() >= 8, "captures/ lost files: {captures:?}");
    let bless = std::env::var_os("MESHSNIFF_BLESS").is_some();
    let mut mismatches = Vec::new();
    for cap in &captures {
        let name = cap.file_name().unwrap().to_string_lossy().to_string();
        let rel = format!("captures/{name}");
        // Run from the repo so the `file` field is the stable relative path.
        let out = Command::new(common::bin())
            .current_dir(common::repo())
            .args(["analyze", "--format", "jsonl", &rel])
            .output()
            .unwrap();
        // `analyze` judges by check's default rules: exit 1 exactly when the answer is FAIL.
        let (_, summary) = common::parse_jsonl(&out.stdout);
        let want = if summary.answer.starts_with("FAIL:") {
            1
        } else {
            0
        };
        assert!(
            summary.answer.starts_with("FAIL:") || summary.answer.starts_with("PASS:"),
            "{name}: {}",
            summary.answer
        );
        assert_eq!(
            out.status.code(),
            Some(want),
            "{name}: {} after `{}`",
            String::from_utf8_lossy(&out.stderr),
            summary.answer
        );
        let expected_path = common::repo()
            .join("captures/expected")
            .join(format!("{name}.jsonl"));
        if bless {
            std::fs::create_dir_all(expected_path.parent().unwrap()).unwrap();
            std::fs::write(&expected_path, &out.stdout).unwrap();
            continue;
        }
        let got = common::parse_jsonl(&out.stdout);
        let want = common::parse_jsonl(&common::read(&expected_path));
        if got != want {
            mismatches.push(format!(
                "{name}: output differs from {}\n--- got\n{}",
                expected_path.display(),
                String::from_utf8_lossy(&out.stdout)
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// (client, server) of every TCP stream as tshark sees it: the client sent the SYN without ACK,
/// else the first packet.
fn tshark_streams(path: &std::path::Path) -> BTreeSet<(String, String)> {
    let out = Command::new("tshark")
        .args([
            "-r",
            path.to_str().unwrap(),
            "-Y",
            "tcp",
            "-T",
            "fields",
            "-E",
            "separator=|",
        ])
        .args([
            "-e",
            "tcp.stream",
            "-e",
            "tcp.flags.syn",
            "-e",
            "tcp.flags.ack",
        ])
        .args(["-e", "ip.src", "-e", "ipv6.src", "-e", "tcp.srcport"])
        .args(["-e", "ip.dst", "-e", "ipv6.dst", "-e", "tcp.dstport"])
        .output()
        .expect("tshark");
    assert!(out.status.success(), "tshark failed on {}", path.display());
    let mut first: std::collections::BTreeMap<String, (String, String)> = Default::default();
    let mut syn: std::collections::BTreeMap<String, (String, String)> = Default::default();
    let mut synack: std::collections::BTreeMap<String, (String, String)> = Default::default();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let c: Vec<&str> = line.split('|').collect();
        if c.len() < 9 {
            continue;
        }
        let ep = |ip4: &str, ip6: &str, port: &str| {
            if ip6.is_empty() {
                format!("{ip4}:{port}")
            } else {
                format!("[{ip6}]:{port}")
            }
        };
        let src = ep(c[3], c[4], c[5]);
        let dst = ep(c[6], c[7], c[8]);
        first
            .entry(c[0].to_string())
            .or_insert((src.clone(), dst.clone()));
        let is = |v: &str| v == "1" || v == "True";
        if is(c[1]) && !is(c[2]) {
            syn.entry(c[0].to_string()).or_insert((src, dst));
        } else if is(c[1]) {
            // A SYN-ACK without its SYN (the replies of an iptables-REDIRECTed connection
            // on lo form their own tuple): its receiver is the client.
            synack.entry(c[0].to_string()).or_insert((dst, src));
        }
    }
    first
        .into_iter()
        .map(|(k, v)| syn.get(&k).or_else(|| synack.get(&k)).cloned().unwrap_or(v))
        .collect()
}

#[test]
fn sample_capture_flows_agree_with_tshark() {
    if !common::have("sample_capture_flows_agree_with_tshark", "tshark") {
        return;
    }
    for cap in common::sample_captures() {
        let out = common::run(&["analyze", "--format", "jsonl", cap.to_str().unwrap()]);
        let (flows, _) = common::parse_jsonl(&out.stdout);
        // tshark's streams below are TCP's; QUIC flows (quic-aioquic.pcap) are compared by
        // the expected output alone.
        let tcp: Vec<_> = flows
            .iter()
            .filter(|f| f.transport == meshsniff::report::schema::Transport::Tcp)
            .collect();
        let ours: BTreeSet<(String, String)> = tcp
            .iter()
            .map(|f| (f.client.clone(), f.server.clone()))
            .collect();
        assert_eq!(
            ours.len(),
            tcp.len(),
            "{}: a flow split in two",
            cap.display()
        );
        assert_eq!(ours, tshark_streams(&cap), "{}", cap.display());
    }
}

#[test]
fn tso_super_packets_count_their_full_payload() {
    // http-python-curl.pcap was captured with veth offloads on: the 27 KB body travels in
    // segments larger than any MTU, and every byte of them must be counted and reassembled.
    let out = common::run(&[
        "analyze",
        "--format",
        "jsonl",
        &common::repo()
            .join("captures/http-python-curl.pcap")
            .to_string_lossy(),
    ]);
    let (flows, _) = common::parse_jsonl(&out.stdout);
    let f = &flows[0];
    assert!(f.bytes.s2c > 27_000, "{:?}", f.bytes);
    assert!(
        f.bytes.s2c / f.packets.s2c > 1500,
        "no super-packets in this capture any more: {:?} {:?}",
        f.bytes,
        f.packets
    );
    assert_eq!(
        (
            f.tcp.as_ref().unwrap().gaps,
            f.tcp.as_ref().unwrap().retransmits
        ),
        (0, 0)
    );
}

#[test]
fn hand_written_json_is_byte_for_byte_serde_json() {
    // The JSON Lines printer writes records by hand for speed; the serde derives are the schema.
    let mut checked = 0;
    let mut inputs = common::sample_captures();
    // Resumed sessions (psk_mode, resumed_from_flow, resumed_client_cert set) and SSLv2 hellos.
    for name in [
        "tls13-resume-openssl.pcap",
        "tls13-resume-only-openssl.pcap",
        "sslv2hello-java-tls12.pcap",
        "sslv2hello-scapy-ssl2.pcap",
    ] {
        inputs.push(common::repo().join("captures/stacks").join(name));
    }
    if let Some(shared) = common::shared() {
        // The public corpus has the odd strings: non-ASCII ALPN, alert names, long subjects.
        for entry in std::fs::read_dir(shared.join("captures-public/ja4"))
            .unwrap()
            .flatten()
        {
            if entry.path().is_file() {
                inputs.push(entry.path());
            }
        }
        for extra in [
            "zeek/tls/tls-early-alert.pcap",
            "snet/TLS1_ECDHE-RSA-NULL-SHA.pcap",
            "local-loopback/tls12-mtls-nocert.pcap",
        ] {
            inputs.push(shared.join("captures-public").join(extra));
        }
    }
    for cap in inputs {
        let (flows, _) = meshsniff::analyze::analyze_bytes(
            &common::read(&cap),
            meshsniff::flow::FlowConfig::default(),
        );
        for f in &flows {
            let mut ours = Vec::new();
            meshsniff::report::fastjson::flow(&mut ours, f);
            let serde = serde_json::to_vec(f).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&serde),
                "{}",
                cap.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 15, "only {checked} records");
}
