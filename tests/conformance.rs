//! Conformance with tshark on real captures from public projects (`../shared/captures-public`,
//! ground truth in `truth/*.tsv`): every TCP stream tshark sees is exactly one flow here, with
//! the same client, server and protocol; QUIC rows are counted as QUIC; damaged files are
//! reported partial; files that are not captures are named as such.

mod common;

use meshsniff::analyze::analyze_bytes;
use meshsniff::classify::Protocol;
use meshsniff::flow::FlowConfig;
use meshsniff::report::InputErrorKind;
use std::collections::HashMap;

/// tshark's `app_protocols` column to our protocol names.
fn expected_protocol(app: &str) -> Protocol {
    if app.is_empty() {
        Protocol::Empty
    } else if app.contains("http2") {
        Protocol::H2c
    } else if app.starts_with("tls") || app.contains(">tls") {
        // "http,http>tls" is an HTTP CONNECT tunnel carrying TLS: encrypted, so tls.
        Protocol::Tls
    } else if app.split([',', '>']).any(|p| p == "http") {
        Protocol::Http
    } else {
        Protocol::Other
    }
}

struct Truth {
    capture: String,
    tcp: Vec<(String, String, String)>,
    quic_rows: usize,
}

fn load_truth(text: &str) -> Truth {
    let mut capture = String::new();
    let mut header: Vec<&str> = Vec::new();
    let mut tcp = Vec::new();
    let mut quic_rows = 0;
    for line in text.lines() {
        if let Some(c) = line.strip_prefix("# capture: ") {
            capture = c.trim().to_string();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if header.is_empty() {
            header = cols;
            continue;
        }
        let col = |name: &str| {
            let i = header
                .iter()
                .position(|h| *h == name)
                .expect("truth column");
            cols.get(i).copied().unwrap_or("").to_string()
        };
        let stream = col("tcp_stream");
        if stream.starts_with("udp:") {
            if col("app_protocols").contains("quic") {
                quic_rows += 1;
            }
            continue;
        }
        tcp.push((col("client"), col("server"), col("app_protocols")));
    }
    Truth {
        capture,
        tcp,
        quic_rows,
    }
}

#[test]
fn every_tshark_tcp_stream_is_one_flow_with_the_same_ends_and_protocol() {
    let Some(shared) = common::shared_or_skip("conformance") else {
        return;
    };
    let public = shared.join("captures-public");
    let mut checked_files = 0;
    let mut checked_streams = 0;
    let mut failures = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(public.join("truth"))
        .unwrap()
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.ends_with(".tsv") || name.ends_with(".decrypted.tsv") {
            continue;
        }
        let truth = load_truth(&std::fs::read_to_string(entry.path()).unwrap());
        assert!(!truth.capture.is_empty(), "{name}: no '# capture:' line");
        let bytes = common::read(&public.join(&truth.capture));
        let (flows, summary) = analyze_bytes(&bytes, FlowConfig::default());
        checked_files += 1;
        let err_file = public.join("truth").join(name.replace(".tsv", ".err"));
        if err_file.exists() {
            if !summary.partial {
                failures.push(format!(
                    "{}: tshark reports damage, we say not partial",
                    truth.capture
                ));
            }
        } else if truth.capture.contains("modified-format") {
            let kind = summary.errors.first().map(|e| e.kind);
            if kind != Some(InputErrorKind::NotACapture) {
                failures.push(format!(
                    "{}: expected a not-a-capture error, got {kind:?}",
                    truth.capture
                ));
            }
        } else if summary.partial {
            failures.push(format!(
                "{}: unexpectedly partial: {:?}",
                truth.capture, summary.errors
            ));
        }
        let mut by_ends: HashMap<(String, String), Vec<&meshsniff::report::FlowRecord>> =
            HashMap::new();
        for f in &flows {
            by_ends
                .entry((f.client.clone(), f.server.clone()))
                .or_default()
                .push(f);
        }
        for (client, server, app) in &truth.tcp {
            checked_streams += 1;
            let want = expected_protocol(app);
            match by_ends
                .get(&(client.clone(), server.clone()))
                .map(|v| v.as_slice())
            {
                Some([one]) if one.protocol == want => {}
                Some([one]) => failures.push(format!(
                    "{}: {client} -> {server}: protocol {:?}, tshark says {app:?} ({want:?})",
                    truth.capture, one.protocol
                )),
                Some(many) => failures.push(format!(
                    "{}: {client} -> {server}: {} flows instead of one",
                    truth.capture,
                    many.len()
                )),
                None => failures.push(format!(
                    "{}: {client} -> {server} missing; we have {:?}",
                    truth.capture,
                    flows
                        .iter()
                        .map(|f| format!("{} -> {}", f.client, f.server))
                        .collect::<Vec<_>>()
                )),
            }
        }
        let tcp_flows = flows.iter().filter(|f| f.tcp.is_some()).count();
        if tcp_flows != truth.tcp.len() {
            failures.push(format!(
                "{}: {tcp_flows} TCP flows, tshark has {} TCP streams",
                truth.capture,
                truth.tcp.len()
            ));
        }
        let quic_flows = flows
            .iter()
            .filter(|f| f.protocol == Protocol::Quic)
            .count();
        if truth.quic_rows != quic_flows || (truth.quic_rows > 0 && summary.non_tcp.quic == 0) {
            failures.push(format!(
                "{}: tshark sees {} QUIC streams, we report {quic_flows} QUIC flows",
                truth.capture, truth.quic_rows
            ));
        }
    }
    assert!(
        checked_files >= 50,
        "only {checked_files} truth files found"
    );
    assert!(
        failures.is_empty(),
        "{} of {checked_streams} streams disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "conformance: {checked_files} captures, {checked_streams} TCP streams agree with tshark"
    );
}
