//! TLS facts against independent references on public captures (`../shared/captures-public`):
//! - tshark's wire view (`truth/*.tsv`): SNI, ALPN offered and selected, negotiated version,
//!   cipher, CertificateRequest, client certificate, HRR and alerts, wherever tshark sees them;
//!   what tshark reports as `unknown(encrypted)` must be `hidden` here;
//! - tshark with the key logs (`truth/*.decrypted.tsv`): the TLS 1.3 inference must agree;
//! - the reference JA4 tool (`ja4/expected/rust-snapshots`) and suricata-verify's JA4.

mod common;

use meshsniff::analyze::analyze_bytes;
use meshsniff::flow::FlowConfig;
use meshsniff::report::FlowRecord;
use meshsniff::tls::{AlertLevel, ClientCert, Requested, Side, TlsFacts};
use std::collections::HashMap;
use std::path::Path;

type Row = HashMap<String, String>;

/// (capture path, rows keyed by column name) of a truth file.
fn truth(path: &Path) -> (String, Vec<Row>) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut capture = String::new();
    let mut header: Vec<String> = Vec::new();
    let mut rows = Vec::new();
    for line in text.lines() {
        if let Some(c) = line.strip_prefix("# capture: ") {
            capture = c.trim().to_string();
        } else if line.starts_with('#') || line.is_empty() {
        } else if header.is_empty() {
            header = line.split('\t').map(str::to_string).collect();
        } else {
            let cols: Vec<&str> = line.split('\t').collect();
            rows.push(
                header
                    .iter()
                    .cloned()
                    .zip(
                        cols.iter()
                            .map(|s| s.to_string())
                            .chain(std::iter::repeat(String::new())),
                    )
                    .collect(),
            );
        }
    }
    (capture, rows)
}

/// Every truth file of one view (wire, or decrypted with the key logs), parsed.
fn truth_files(public: &Path, decrypted: bool) -> Vec<(String, Vec<Row>)> {
    let mut files: Vec<_> = std::fs::read_dir(public.join("truth"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.ends_with(".tsv") && name.ends_with(".decrypted.tsv") == decrypted
        })
        .collect();
    files.sort();
    files.iter().map(|p| truth(p)).collect()
}

fn flows_of(public: &Path, capture: &str) -> Vec<FlowRecord> {
    analyze_bytes(&common::read(&public.join(capture)), FlowConfig::default()).0
}

fn find<'a>(flows: &'a [FlowRecord], row: &Row) -> Option<&'a FlowRecord> {
    flows
        .iter()
        .find(|f| f.client == row["client"] && f.server == row["server"])
}

fn version_name(hex: &str) -> Option<String> {
    u16::from_str_radix(hex.trim_start_matches("0x"), 16)
        .ok()
        .map(|v| meshsniff::tls::names::version(v).into_owned())
}

fn alpn_form(s: &str) -> String {
    if s.chars()
        .all(|c| !c.is_control() && (c.is_ascii_graphic() || c == ' '))
    {
        s.to_string()
    } else {
        format!(
            "0x{}",
            s.bytes().map(|b| format!("{b:02x}")).collect::<String>()
        )
    }
}

/// Differences between our facts and one wire-truth row.
fn compare_wire(t: &TlsFacts, row: &Row) -> Vec<String> {
    let mut d = Vec::new();
    let mut check = |what: &str, ours: String, theirs: String| {
        if ours != theirs {
            d.push(format!("{what}: ours {ours:?}, tshark {theirs:?}"));
        }
    };
    check("sni", t.sni.clone().unwrap_or_default(), row["sni"].clone());
    if !row["alpn_offered"].is_empty()
        && !row["alpn_offered"]
            .chars()
            .any(|c| c.is_control() || !c.is_ascii())
    {
        check(
            "alpn_offered",
            t.alpn_offered.join(","),
            row["alpn_offered"]
                .split(',')
                .map(alpn_form)
                .collect::<Vec<_>>()
                .join(","),
        );
    }
    match (t.alpn_selected.as_deref(), row["alpn_selected"].as_str()) {
        (Some("hidden"), "") if t.version.as_deref() == Some("1.3") => {}
        (ours, theirs) => check(
            "alpn_selected",
            ours.unwrap_or("").to_string(),
            theirs.to_string(),
        ),
    }
    check(
        "version",
        t.version.clone().unwrap_or_default().into_owned(),
        version_name(&row["negotiated_version"]).unwrap_or_default(),
    );
    check(
        "cipher",
        t.cipher_id.clone().unwrap_or_default(),
        row["cipher_selected"].clone(),
    );
    let req = match t.client_cert_requested {
        Some(Requested::Yes) => "yes",
        Some(Requested::No) => "no",
        Some(Requested::Hidden) => "unknown(encrypted)",
        None => "",
    };
    check("cert_request", req.into(), row["cert_request"].clone());
    let cc = match t.client_cert {
        Some(ClientCert::Presented) => "present",
        Some(ClientCert::Empty) => "empty",
        Some(ClientCert::None) => "none",
        Some(ClientCert::Hidden) => "unknown(encrypted)",
        None => "",
    };
    check("client_cert", cc.into(), row["client_cert"].clone());
    if !row["hrr"].is_empty() {
        check(
            "hrr",
            if t.hrr { "yes" } else { "no" }.into(),
            row["hrr"].clone(),
        );
    }
    let mut ours: Vec<String> = t
        .alerts
        .iter()
        .filter(|a| !a.inferred)
        .map(|a| {
            let side = if a.from == Side::Client { "C" } else { "S" };
            match a.level {
                AlertLevel::Encrypted => format!("{side}:encrypted"),
                AlertLevel::Warning => format!("{side}:warning:{}", a.code.unwrap_or(255)),
                AlertLevel::Fatal => format!("{side}:fatal:{}", a.code.unwrap_or(255)),
                AlertLevel::Unknown => format!("{side}:unknown:{}", a.code.unwrap_or(255)),
            }
        })
        .collect();
    let mut theirs: Vec<String> = row["alerts"]
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    ours.sort();
    theirs.sort();
    theirs.dedup();
    ours.dedup();
    check("alerts", ours.join(","), theirs.join(","));
    d
}

#[test]
fn tls_facts_agree_with_tsharks_wire_view() {
    let Some(shared) = common::shared_or_skip("tls_wire_truth") else {
        return;
    };
    let public = shared.join("captures-public");
    let mut failures = Vec::new();
    let mut checked = 0;
    for (capture, rows) in truth_files(&public, false) {
        let flows = flows_of(&public, &capture);
        for row in rows.iter().filter(|r| !r["tcp_stream"].starts_with("udp:")) {
            if !row["app_protocols"].contains("tls") {
                continue;
            }
            let Some(flow) = find(&flows, row) else {
                failures.push(format!(
                    "{capture}: {} -> {} missing",
                    row["client"], row["server"]
                ));
                continue;
            };
            let Some(t) = &flow.tls else {
                failures.push(format!(
                    "{capture}: {} -> {}: no tls facts",
                    row["client"], row["server"]
                ));
                continue;
            };
            checked += 1;
            for diff in compare_wire(t, row) {
                failures.push(format!("{capture} stream {}: {diff}", row["tcp_stream"]));
            }
        }
    }
    assert!(checked >= 40, "only {checked} TLS streams checked");
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("tls wire truth: {checked} TLS streams agree with tshark");
}

#[test]
fn tls13_inference_agrees_with_the_decrypted_truth() {
    let Some(shared) = common::shared_or_skip("tls13_inference") else {
        return;
    };
    let public = shared.join("captures-public");
    let mut failures = Vec::new();
    let mut checked = 0;
    for (capture, rows) in truth_files(&public, true) {
        let flows = flows_of(&public, &capture);
        for row in rows.iter().filter(|r| !r["tcp_stream"].starts_with("udp:")) {
            // QUIC hides its record sizes inside UDP datagrams: no inference there.
            let Some(t) = find(&flows, row).and_then(|f| f.tls.as_ref()) else {
                continue;
            };
            if t.client_cert != Some(ClientCert::Hidden) {
                continue; // not TLS 1.3: nothing inferred
            }
            let want = match row["client_cert"].as_str() {
                "present" => ClientCert::Presented,
                "empty" => ClientCert::Empty,
                "none" | "" => ClientCert::None,
                other => panic!("{capture}: decrypted client_cert {other:?}"),
            };
            checked += 1;
            if t.resumed {
                // A resumed session: no certificate crosses the wire (the truth must say so) and
                // nothing about client authentication is inferred from it (docs/tls.md).
                if want != ClientCert::None
                    || row["cert_request"] == "yes"
                    || t.client_cert_inferred.is_some()
                    || t.client_cert_requested_inferred.is_some()
                {
                    failures.push(format!(
                        "{capture} stream {}: resumed, inferred {:?}/{:?}, decrypted {want:?}",
                        row["tcp_stream"], t.client_cert_inferred, t.client_cert_requested_inferred
                    ));
                }
                continue;
            }
            if t.client_cert_inferred != Some(want) {
                failures.push(format!(
                    "{capture} stream {}: inferred {:?}, decrypted truth {want:?} ({:?})",
                    row["tcp_stream"], t.client_cert_inferred, t.inference_basis
                ));
            }
            let requested = if row["cert_request"] == "yes" {
                Requested::Yes
            } else {
                Requested::No
            };
            if t.client_cert_requested_inferred != Some(requested) {
                failures.push(format!(
                    "{capture} stream {}: request inferred {:?}, decrypted {requested:?}",
                    row["tcp_stream"], t.client_cert_requested_inferred
                ));
            }
            let refused = row["alerts"].contains("S:fatal:");
            let rejected = t.outcome == meshsniff::tls::Outcome::Rejected;
            if refused != rejected {
                failures.push(format!(
                    "{capture} stream {}: outcome {:?}, decrypted alerts {:?}",
                    row["tcp_stream"], t.outcome, row["alerts"]
                ));
            }
        }
    }
    assert!(checked >= 8, "only {checked} TLS 1.3 streams with keys");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!("tls13 inference: {checked} keyed TLS 1.3 streams agree with the decrypted truth");
}

#[test]
fn ja4_equals_the_reference_implementation() {
    let Some(shared) = common::shared_or_skip("ja4_reference") else {
        return;
    };
    let public = shared.join("captures-public");
    let dir = public.join("ja4/expected/rust-snapshots");
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        let snap = std::fs::read_to_string(entry.path()).unwrap();
        let capture = format!(
            "ja4/{}",
            entry
                .file_name()
                .to_string_lossy()
                .trim_end_matches(".snap")
        );
        let flows = flows_of(&public, &capture);
        // Snapshot blocks: "- stream: N" then "  key: value" lines.
        for block in snap.split("\n- stream: ").skip(1) {
            let get = |k: &str| {
                block
                    .lines()
                    .find_map(|l| l.trim().strip_prefix(&format!("{k}: ")).map(str::to_string))
            };
            if !matches!(get("transport").as_deref(), Some("tcp" | "quic")) {
                continue;
            }
            let Some(want) = get("ja4") else { continue };
            let (src, sport) = (get("src").unwrap(), get("src_port").unwrap());
            let client = if src.contains(':') {
                format!("[{src}]:{sport}")
            } else {
                format!("{src}:{sport}")
            };
            let ours = flows
                .iter()
                .find(|f| f.client == client)
                .and_then(|f| f.tls.as_ref())
                .and_then(|t| t.ja4.clone());
            checked += 1;
            if ours.as_deref() != Some(want.as_str()) {
                failures.push(format!(
                    "{capture} {client}: ours {ours:?}, reference {want}"
                ));
            }
        }
    }
    let sv = common::read(&public.join("suricata-verify/ja4-tls/input.pcap"));
    let (flows, _) = analyze_bytes(&sv, FlowConfig::default());
    let ours = flows[0].tls.as_ref().and_then(|t| t.ja4.clone());
    if ours.as_deref() != Some("t12i1810s1_27d4652c4487_06a4338d0495") {
        failures.push(format!("suricata-verify/ja4-tls: ours {ours:?}"));
    }
    assert!(checked >= 8, "only {checked} JA4 references");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn quic_initials_are_decrypted_to_the_sni_and_alpn_tshark_sees() {
    let Some(shared) = common::shared_or_skip("quic_initials") else {
        return;
    };
    let public = shared.join("captures-public");
    let mut checked = 0;
    for (capture, rows) in truth_files(&public, false) {
        let quic_rows: Vec<&Row> = rows
            .iter()
            .filter(|r| r["tcp_stream"].starts_with("udp:"))
            .collect();
        if quic_rows.is_empty() {
            continue;
        }
        let flows = flows_of(&public, &capture);
        for row in quic_rows {
            let f = find(&flows, row)
                .unwrap_or_else(|| panic!("{capture}: no QUIC flow {}", row["client"]));
            assert_eq!(f.protocol, meshsniff::classify::Protocol::Quic);
            let t = f.tls.as_ref().expect("QUIC carries TLS facts");
            assert_eq!(t.sni.clone().unwrap_or_default(), row["sni"], "{capture}");
            assert_eq!(t.alpn_offered.join(","), row["alpn_offered"], "{capture}");
            checked += 1;
        }
    }
    assert!(checked >= 3, "only {checked} QUIC flows");
}
