//! The TLS 1.3 inference on the captures recorded in `captures/` against the truth that
//! decryption gives: tshark reads each capture with its key log (`NAME.keys`), and what the
//! decrypted handshake shows (a CertificateRequest, the client's Certificate and how many
//! certificates it carried, a fatal alert) must be what meshsniff inferred or proved from the
//! wire alone.

mod common;

use meshsniff::tls::{ClientCert, Outcome, Requested};
use std::process::Command;

struct Decrypted {
    requested: bool,
    client_cert: ClientCert,
    server_fatal_alert: bool,
}

fn decrypt(pcap: &std::path::Path, keys: &std::path::Path, server_port: &str) -> Decrypted {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .arg("-o")
        .arg(format!("tls.keylog_file:{}", keys.display()))
        .args([
            "-Y",
            "tls",
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
        ])
        .args([
            "-e",
            "tcp.srcport",
            "-e",
            "tls.handshake.type",
            "-e",
            "tls.handshake.certificate_length",
        ])
        .args(["-e", "tls.alert_message.level"])
        .output()
        .expect("tshark");
    assert!(out.status.success());
    let mut d = Decrypted {
        requested: false,
        client_cert: ClientCert::None,
        server_fatal_alert: false,
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let c: Vec<&str> = line.split('|').collect();
        let from_server = c[0] == server_port;
        let types: Vec<&str> = c.get(1).unwrap_or(&"").split(',').collect();
        if from_server && types.contains(&"13") {
            d.requested = true;
        }
        if !from_server && types.contains(&"11") {
            let has_certs = c.get(2).is_some_and(|l| !l.is_empty());
            d.client_cert = if has_certs {
                ClientCert::Presented
            } else {
                ClientCert::Empty
            };
        }
        if from_server && c.get(3).is_some_and(|l| l.split(',').any(|v| v == "2")) {
            d.server_fatal_alert = true;
        }
    }
    d
}

#[test]
fn inference_and_proof_agree_with_decryption_on_the_recorded_mtls_cases() {
    if !common::have("tls_keys", "tshark") {
        return;
    }
    let mut checked = 0;
    for pcap in common::sample_captures() {
        let keys = pcap.with_extension("keys");
        if !keys.exists() {
            continue;
        }
        let out = common::run(&["analyze", "--format", "jsonl", pcap.to_str().unwrap()]);
        let (flows, _) = common::parse_jsonl(&out.stdout);
        for f in flows.iter().filter(|f| f.tls.is_some()) {
            let t = f.tls.as_ref().unwrap();
            let port = f.server.rsplit_once(':').unwrap().1;
            let truth = decrypt(&pcap, &keys, port);
            let name = pcap.file_name().unwrap().to_string_lossy();
            let (cert, requested) = if t.client_cert == Some(ClientCert::Hidden) {
                (t.client_cert_inferred, t.client_cert_requested_inferred)
            } else {
                (t.client_cert, t.client_cert_requested)
            };
            assert_eq!(
                cert,
                Some(truth.client_cert),
                "{name}: client certificate ({:?})",
                t.inference_basis
            );
            let want_req = if truth.requested {
                Requested::Yes
            } else {
                Requested::No
            };
            assert_eq!(requested, Some(want_req), "{name}: certificate request");
            if truth.server_fatal_alert {
                assert_eq!(
                    t.outcome,
                    Outcome::Rejected,
                    "{name}: the server refused the handshake"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 6, "only {checked} keyed TLS flows");
}

#[test]
fn recorded_scenarios_say_what_happened() {
    let get = |name: &str| {
        let path = common::repo().join("captures").join(name);
        let out = common::run(&["analyze", "--format", "jsonl", path.to_str().unwrap()]);
        let (flows, _) = common::parse_jsonl(&out.stdout);
        flows[0].tls.clone().expect("a TLS flow")
    };
    let ok = get("tls13-mtls-ok.pcap");
    assert_eq!(
        (ok.client_cert_inferred, ok.outcome),
        (Some(ClientCert::Presented), Outcome::Established)
    );
    let refused = get("tls13-mtls-nocert-openssl.pcap");
    assert_eq!(
        (refused.client_cert_inferred, refused.outcome),
        (Some(ClientCert::Empty), Outcome::Rejected)
    );
    assert!(
        refused
            .alerts
            .iter()
            .any(|a| a.inferred && a.likely.as_deref() == Some("certificate_required"))
    );
    // nginx answers 400 inside TLS: the handshake completes, the certificate was still empty.
    let nginx = get("tls13-mtls-nocert-nginx.pcap");
    assert_eq!(
        (nginx.client_cert_inferred, nginx.outcome),
        (Some(ClientCert::Empty), Outcome::Established)
    );
    let tls12 = get("tls12-mtls-nocert-openssl.pcap");
    assert_eq!(
        (tls12.client_cert, tls12.outcome),
        (Some(ClientCert::Empty), Outcome::Rejected)
    );
    assert_eq!(
        tls12.alerts[0].description.as_deref(),
        Some("handshake_failure")
    );
    let istio = get("tls13-istio-like.pcap");
    assert_eq!(istio.alpn_offered, vec!["istio-peer-exchange", "istio"]);
    assert_eq!(
        istio.sni.as_deref(),
        Some("outbound_.8080_._.reviews.default.svc.cluster.local")
    );
    // TLS after a cleartext SMTP exchange: found, and said to follow a STARTTLS prefix.
    let starttls = get("starttls-smtp.pcap");
    assert_eq!(
        (starttls.prefix.as_deref(), starttls.version.as_deref()),
        (Some("starttls"), Some("1.3"))
    );
    assert_eq!(starttls.outcome, Outcome::Established);
    let mtls12 = get("tls12-mtls-openssl.pcap");
    assert_eq!(
        mtls12.certificates.client[0].san,
        vec!["spiffe://cluster.local/ns/default/sa/client"]
    );
}
