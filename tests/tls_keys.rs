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
    /// The ServerHello accepted a pre_shared_key (extension 41), or a TLS 1.2 server went from
    /// ServerHello to Finished with no Certificate and no ServerHelloDone (an abbreviated
    /// handshake): a resumed session.
    resumed: bool,
}

/// What tshark decrypts of the one connection between `client_port` and `server_port`.
fn decrypt(
    pcap: &std::path::Path,
    keys: &std::path::Path,
    client_port: &str,
    server_port: &str,
) -> Decrypted {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .arg("-o")
        .arg(format!("tls.keylog_file:{}", keys.display()))
        // Decoded as TLS whatever the port (9418 would be git's otherwise).
        .args(["-d", &format!("tcp.port=={server_port},tls")])
        .args([
            "-Y",
            &format!("tls && tcp.port == {client_port} && tcp.port == {server_port}"),
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
        .args(["-e", "tls.handshake.extension.type"])
        .output()
        .expect("tshark");
    assert!(out.status.success());
    let mut d = Decrypted {
        requested: false,
        client_cert: ClientCert::None,
        server_fatal_alert: false,
        resumed: false,
    };
    let mut server_types = std::collections::BTreeSet::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let c: Vec<&str> = line.split('|').collect();
        let from_server = c[0] == server_port;
        let types: Vec<&str> = c.get(1).unwrap_or(&"").split(',').collect();
        if from_server {
            server_types.extend(types.iter().map(|t| t.to_string()));
        }
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
        // pre_shared_key is only in a ServerHello (never in EncryptedExtensions).
        if from_server
            && types.contains(&"2")
            && c.get(4).is_some_and(|l| l.split(',').any(|v| v == "41"))
        {
            d.resumed = true;
        }
    }
    // Decrypted, a full handshake's server flight always holds a Certificate (11) or, for
    // anonymous and PSK suites, a ServerHelloDone (14); a TLS 1.2 resumption has neither.
    let has = |t: &str| server_types.contains(t);
    if has("2") && has("20") && !has("11") && !has("14") {
        d.resumed = true;
    }
    d
}

/// The key log of a capture: `NAME.keys` beside it; the mesh lab's captures (real Envoy
/// sidecars, captures/mesh/record.sh) share the sidecars' `captures/mesh.keys`.
fn key_log(pcap: &std::path::Path) -> std::path::PathBuf {
    if pcap
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("mesh-"))
    {
        pcap.with_file_name("mesh.keys")
    } else {
        pcap.with_extension("keys")
    }
}

/// The keyed captures: `captures/*.pcap` (OpenSSL, nginx), the mesh lab's (Envoy, curl) and
/// `captures/stacks/*.pcap` (`record-stacks.sh`: GnuTLS, Go, JSSE, rustls, NSS,
/// BoringSSL/Envoy, resumptions).
fn keyed_captures() -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = common::sample_captures()
        .into_iter()
        .chain(
            std::fs::read_dir(common::repo().join("captures/stacks"))
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "pcap")),
        )
        .filter(|p| key_log(p).exists())
        .collect();
    v.sort();
    v
}

#[test]
fn inference_and_proof_agree_with_decryption_on_every_recorded_stack() {
    if !common::have("tls_keys", "tshark") {
        return;
    }
    let mut checked = 0;
    let mut resumed = 0;
    let mut wrong = Vec::new();
    for pcap in keyed_captures() {
        let keys = key_log(&pcap);
        let out = common::run(&["analyze", "--format", "jsonl", pcap.to_str().unwrap()]);
        let (flows, _) = common::parse_jsonl(&out.stdout);
        // TCP TLS only: a QUIC flow's handshake after its Initials is not read without keys
        // (docs/tls.md), so there is no inference to check (quic-aioquic.pcap has a key log
        // for the fuzz seeds and for tshark).
        for f in flows.iter().filter(|f| f.tls.is_some() && f.tcp.is_some()) {
            let t = f.tls.as_ref().unwrap();
            let sport = f.server.rsplit_once(':').unwrap().1;
            let cport = f.client.rsplit_once(':').unwrap().1;
            let truth = decrypt(&pcap, &keys, cport, sport);
            let name = format!(
                "{} {}",
                pcap.file_name().unwrap().to_string_lossy(),
                f.client
            );
            checked += 1;
            if truth.resumed {
                // No certificate crosses the wire: nothing about it may be inferred.
                resumed += 1;
                if !t.resumed
                    || t.client_cert_inferred.is_some()
                    || t.client_cert_requested_inferred.is_some()
                {
                    wrong.push(format!(
                        "{name}: resumed (truth), got resumed={} inferred={:?}/{:?} ({:?})",
                        t.resumed,
                        t.client_cert_inferred,
                        t.client_cert_requested_inferred,
                        t.inference_basis
                    ));
                }
                continue;
            }
            if t.resumed {
                wrong.push(format!(
                    "{name}: said resumed, the decryption shows a full handshake"
                ));
            }
            let (cert, requested) = if t.client_cert == Some(ClientCert::Hidden) {
                (t.client_cert_inferred, t.client_cert_requested_inferred)
            } else {
                (t.client_cert, t.client_cert_requested)
            };
            let want_req = if truth.requested {
                Requested::Yes
            } else {
                Requested::No
            };
            if cert != Some(truth.client_cert) || requested != Some(want_req) {
                wrong.push(format!(
                    "{name}: client certificate {cert:?} (truth {:?}), requested {requested:?} (truth {want_req:?}): {:?}",
                    truth.client_cert, t.inference_basis
                ));
            }
            if truth.server_fatal_alert && t.outcome != Outcome::Rejected {
                wrong.push(format!(
                    "{name}: the server refused the handshake (a fatal alert), outcome {:?}: {:?}",
                    t.outcome, t.inference_basis
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {checked} flows wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(checked >= 35, "only {checked} keyed TLS flows");
    assert!(resumed >= 5, "only {resumed} resumed flows");
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

/// Resumed TLS 1.3 sessions (RFC 8446 §2.2) from four stacks: said to be resumed with their PSK
/// mode, linked to the earlier full handshake between the same peers when the capture has it
/// (also when that connection is still open and reported later), and judged by it.
#[test]
fn resumed_sessions_say_where_their_client_authentication_happened() {
    let flows = |name: &str, profile: &str| {
        let path = common::repo().join("captures/stacks").join(name);
        let out = common::run(&[
            "analyze",
            "--format",
            "jsonl",
            "--profile",
            profile,
            path.to_str().unwrap(),
        ]);
        common::parse_jsonl(&out.stdout).0
    };
    for name in [
        "tls13-resume-openssl.pcap",
        "tls13-resume-go.pcap",
        "tls13-envoy-client-cert.pcap",
        "tls13-envoy-server-cert.pcap",
    ] {
        for profile in ["strict", "istio"] {
            let f = flows(name, profile);
            assert_eq!(f.len(), 2, "{name}");
            let full = f.iter().find(|r| !r.tls.as_ref().unwrap().resumed).unwrap();
            let res = f.iter().find(|r| r.tls.as_ref().unwrap().resumed).unwrap();
            let t = res.tls.as_ref().unwrap();
            assert_eq!(t.psk_mode.as_deref(), Some("psk_dhe_ke"), "{name}");
            assert!(t.psk_offered && t.psk_modes_offered.iter().any(|m| m == "psk_dhe_ke"));
            assert_eq!(t.resumed_from_flow, Some(full.id), "{name}");
            assert_eq!(t.resumed_client_cert, Some(ClientCert::Presented), "{name}");
            assert_eq!(t.client_cert_inferred, None, "{name}: nothing inferred");
            let v = res.verdict.as_ref().unwrap();
            assert_eq!(v.kind.name(), "mtls", "{name} {profile}: {}", v.reason);
            assert!(v.reason.contains("resumed from flow"), "{}", v.reason);
        }
    }
    // The full handshake happened before the capture started.
    let only = flows("tls13-resume-only-openssl.pcap", "strict");
    let t = only[0].tls.as_ref().unwrap();
    assert!(t.resumed && t.resumed_from_flow.is_none() && t.resumed_client_cert.is_none());
    assert!(
        t.inference_basis.as_deref().is_some_and(
            |b| b.contains("handshake not captured") && !b.contains("none was requested")
        ),
        "{:?}",
        t.inference_basis
    );
    let v = only[0].verdict.as_ref().unwrap();
    assert_eq!(v.kind.name(), "tls");
    assert!(
        v.reason.contains("client auth not observable"),
        "{}",
        v.reason
    );
    // psk_ke offered next to psk_dhe_ke: the server's key_share says which was chosen.
    let both = flows("tls13-resume-offers-psk-ke-openssl.pcap", "strict");
    let t = both
        .iter()
        .find_map(|r| r.tls.as_ref().filter(|t| t.resumed))
        .unwrap();
    assert_eq!(t.psk_modes_offered, vec!["psk_dhe_ke", "psk_ke"]);
    assert_eq!(t.psk_mode.as_deref(), Some("psk_dhe_ke"));
}

/// SSLv2-format ClientHellos from real programs: JSSE's `SSLv2Hello` (TLS 1.2 offered, a TLS
/// ServerHello in reply) and scapy's SSL 2.0 CLIENT-HELLO (refused by OpenSSL 3).
#[test]
fn sslv2_format_client_hellos_are_recognised() {
    let get = |name: &str| {
        let path = common::repo().join("captures/stacks").join(name);
        let out = common::run(&["analyze", "--format", "jsonl", path.to_str().unwrap()]);
        let (flows, _) = common::parse_jsonl(&out.stdout);
        assert_eq!(flows.len(), 1, "{name}");
        assert_eq!(
            flows[0].protocol,
            meshsniff::classify::Protocol::Tls,
            "{name}"
        );
        flows[0].tls.clone().expect("a TLS flow")
    };
    let java = get("sslv2hello-java-tls12.pcap");
    assert!(java.sslv2_hello);
    assert_eq!(java.client_legacy_version.as_deref(), Some("1.2"));
    assert_eq!(java.versions_offered, vec!["1.2"]);
    assert_eq!(java.version.as_deref(), Some("1.2"));
    assert!(java.sslv2_cipher_specs_offered >= java.cipher_suites_offered);
    assert!(java.cipher_suites_offered > 0 && java.ja4.is_none());
    // The client's TLS records after the SSLv2 hello are followed: the handshake completes.
    assert_eq!(java.outcome, Outcome::Established);
    assert!(java.records.c2s >= 4, "{:?}", java.records);
    assert_eq!(java.prefix, None);
    let ssl2 = get("sslv2hello-scapy-ssl2.pcap");
    assert!(ssl2.sslv2_hello);
    assert_eq!(ssl2.client_legacy_version.as_deref(), Some("ssl2"));
    assert_eq!(ssl2.versions_offered, vec!["ssl2"]);
    assert_eq!(
        (ssl2.sslv2_cipher_specs_offered, ssl2.cipher_suites_offered),
        (5, 3)
    );
    assert_eq!(ssl2.outcome, Outcome::Rejected);
    assert_eq!(
        ssl2.alerts[0].description.as_deref(),
        Some("protocol_version")
    );
}

/// A resumed session is held back for its full handshake only so long: with a flow ending
/// two minutes later in the same capture, it comes out (unlinked) before that flow.
#[test]
fn a_resumed_session_is_not_held_back_for_long() {
    if !common::have("tls_keys_hold", "editcap") || !common::have("tls_keys_hold", "mergecap") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("msn-tls-hold-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let stacks = common::repo().join("captures/stacks");
    let later = dir.join("later.pcap");
    let merged = dir.join("merged.pcap");
    let ok = Command::new("editcap")
        .args(["-t", "120"])
        .arg(stacks.join("tls13-go-client-cert.pcap"))
        .arg(&later)
        .status()
        .unwrap()
        .success()
        && Command::new("mergecap")
            .args(["-F", "pcap", "-w"])
            .arg(&merged)
            .arg(stacks.join("tls13-resume-only-openssl.pcap"))
            .arg(&later)
            .status()
            .unwrap()
            .success();
    assert!(ok, "editcap/mergecap");
    let out = common::run(&["analyze", "--format", "jsonl", merged.to_str().unwrap()]);
    std::fs::remove_dir_all(&dir).ok();
    let (flows, _) = common::parse_jsonl(&out.stdout);
    let order: Vec<bool> = flows
        .iter()
        .map(|f| f.tls.as_ref().unwrap().resumed)
        .collect();
    assert_eq!(order, vec![true, false], "the resumed session first");
    let t = flows[0].tls.as_ref().unwrap();
    assert!(t.resumed_from_flow.is_none());
    assert!(
        t.inference_basis
            .as_deref()
            .unwrap()
            .contains("handshake not captured")
    );
}
