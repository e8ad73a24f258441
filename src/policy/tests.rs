//! Role: verdict rules on recorded captures from `captures/` (real programs), one profile at a
//! time; the mesh lab's scenarios are checked end to end in tests/verdicts.rs.

use super::*;
use crate::analyze::Analysis;
use crate::flow::FlowConfig;
use crate::report::{FlowRecord, Sink, Summary};

#[derive(Default)]
struct Collect(Vec<FlowRecord>);
impl Sink for Collect {
    fn flow(&mut self, r: &FlowRecord) -> std::io::Result<()> {
        self.0.push(r.clone());
        Ok(())
    }
    fn finish(&mut self, _: &Summary) -> std::io::Result<()> {
        Ok(())
    }
}

fn records(capture: &str, profile: Profile) -> Vec<FlowRecord> {
    let path = format!("{}/captures/{capture}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap();
    let mut sink = Collect::default();
    let mut a = Analysis::new(FlowConfig::default(), &mut sink);
    a.set_profile(profile);
    a.run(&bytes[..], capture, &mut |_| {}).unwrap();
    a.finish().unwrap();
    sink.0
}

fn verdicts(capture: &str, profile: Profile) -> Vec<(String, Option<Kind>)> {
    let path = format!("{}/captures/{capture}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap();
    let mut sink = Collect::default();
    let mut a = Analysis::new(FlowConfig::default(), &mut sink);
    a.set_profile(profile);
    a.run(&bytes[..], capture, &mut |_| {}).unwrap();
    a.finish().unwrap();
    sink.0
        .into_iter()
        .map(|r| (r.server, r.verdict.map(|v| v.kind)))
        .collect()
}

#[test]
fn istio_like_tls_is_mtls_under_istio_and_plain_tls_is_tls() {
    let v = verdicts("tls13-istio-like.pcap", Profile::Istio);
    assert_eq!(v[0].1, Some(Kind::Mtls));
    // Under strict, mTLS still needs the client certificate (inferred here).
    let v = verdicts("tls13-istio-like.pcap", Profile::Strict);
    assert_eq!(v[0].1, Some(Kind::Mtls));
    let v = verdicts("tls13-openssl.pcap", Profile::Istio);
    assert_eq!(v[0].1, Some(Kind::Tls));
}

#[test]
fn cleartext_between_namespaces_is_a_leak_and_none_judges_nothing() {
    let v = verdicts("http-python-curl.pcap", Profile::Strict);
    assert!(
        v.iter().all(|(_, k)| *k == Some(Kind::PlaintextLeak)),
        "{v:?}"
    );
    let v = verdicts("http-python-curl.pcap", Profile::None);
    assert!(v.iter().all(|(_, k)| k.is_none()));
}

#[test]
fn refused_tls_client_is_rejected() {
    let v = verdicts("tls13-mtls-nocert-openssl.pcap", Profile::Istio);
    assert_eq!(v[0].1, Some(Kind::Rejected), "{v:?}");
}

/// Ambient mode's HBONE (TLS 1.3 to :15008, ALPN h2, no SNI) is mTLS under istio; the same
/// handshake to another port, or with an SNI, is plain TLS. The record is a real one
/// (tls13-openssl.pcap) with the fields the rule reads changed.
#[test]
fn hbone_is_mtls_only_on_its_port_without_sni() {
    let path = format!("{}/captures/tls13-openssl.pcap", env!("CARGO_MANIFEST_DIR"));
    let (mut flows, _) =
        crate::analyze::analyze_bytes(&std::fs::read(path).unwrap(), FlowConfig::default());
    let mut rec = flows.remove(0);
    let t = rec.tls.as_mut().unwrap();
    assert_eq!(t.version.as_deref(), Some("1.3"));
    t.sni = None;
    t.client_cert_inferred = None;
    t.alpn_offered = vec!["h2".into()];
    let place = |port| Place {
        client: (Addr::v4([10, 0, 0, 1]), 40000),
        server: (Addr::v4([10, 0, 0, 2]), port),
        loopback: false,
    };
    let kind = |rec: &FlowRecord, port, p| evaluate(rec, place(port), p).map(|v| v.kind);
    assert_eq!(kind(&rec, 15008, Profile::Istio), Some(Kind::Mtls));
    assert_eq!(kind(&rec, 8443, Profile::Istio), Some(Kind::Tls));
    assert_eq!(kind(&rec, 15008, Profile::Strict), Some(Kind::Tls));
    rec.tls.as_mut().unwrap().sni = Some("api.test".into());
    assert_eq!(kind(&rec, 15008, Profile::Istio), Some(Kind::Tls));
}

fn place_of(rec: &FlowRecord) -> Place {
    let ep = |s: &str| {
        let (a, p) = s.rsplit_once(':').unwrap();
        let ip: std::net::Ipv4Addr = a.parse().unwrap();
        (Addr::v4(ip.octets()), p.parse().unwrap())
    };
    Place {
        client: ep(&rec.client),
        server: ep(&rec.server),
        loopback: rec.loopback,
    }
}

/// Real Envoy (captures/mesh/record.sh): Istio's ALPN and SNI are not evidence of client
/// authentication. The full handshake (certificate inferred from the record sizes) and the
/// session resumed from it are mtls; the same resumed session in a capture begun after the
/// full handshake is tls "not observable" (it was mtls on ALPN alone before); a flow with
/// Istio's ALPN whose client sent no certificate is tls.
#[test]
fn istio_alpn_without_certificate_evidence_is_not_mtls() {
    let full = records("mesh-server-eth0.pcap", Profile::Istio);
    let to_8080: Vec<_> = full
        .iter()
        .filter(|r| r.server.ends_with(":8080") && r.client.starts_with("10.78.0.1:"))
        .collect();
    assert_eq!(to_8080.len(), 2);
    let (first, resumed) = (to_8080[0], to_8080[1]);
    let t = first.tls.as_ref().unwrap();
    assert!(!t.resumed);
    assert_eq!(t.client_cert_inferred, Some(ClientCert::Presented));
    let v = first.verdict.as_ref().unwrap();
    assert_eq!(v.kind, Kind::Mtls);
    assert!(
        v.reason.contains("inferred from the TLS 1.3 record sizes"),
        "{}",
        v.reason
    );
    let t = resumed.tls.as_ref().unwrap();
    assert!(t.resumed);
    assert_eq!(t.resumed_from_flow, Some(first.id));
    let v = resumed.verdict.as_ref().unwrap();
    assert_eq!(v.kind, Kind::Mtls);
    assert!(
        v.reason
            .contains(&format!("resumed from flow {}", first.id)),
        "{}",
        v.reason
    );

    let late = records("mesh-server-eth0-late.pcap", Profile::Istio);
    let alone = late
        .iter()
        .find(|r| r.server.ends_with(":8080") && r.client.starts_with("10.78.0.1:"))
        .unwrap();
    let t = alone.tls.as_ref().unwrap();
    assert!(t.resumed && t.resumed_from_flow.is_none());
    assert!(t.alpn_offered.iter().any(|a| a == "istio"));
    let v = alone.verdict.as_ref().unwrap();
    assert_eq!(v.kind, Kind::Tls, "{}", v.reason);
    assert!(
        v.reason.contains("client auth not observable"),
        "{}",
        v.reason
    );

    let mut nocert = first.clone();
    nocert.tls.as_mut().unwrap().client_cert_inferred = Some(ClientCert::Empty);
    let v = evaluate(&nocert, place_of(&nocert), Profile::Istio).unwrap();
    assert_eq!(v.kind, Kind::Tls);
    assert!(
        v.reason.contains("without a client certificate"),
        "{}",
        v.reason
    );
}

/// Real Envoy: its TCP proxy connects to the application when the filter chain matches, before
/// the client's handshake; a refused client leaves an empty 127.0.0.6 leg on lo. Under istio
/// that is Envoy's inbound leg (plaintext-expected, it was `unknown`); under strict, nothing
/// to judge.
#[test]
fn envoys_empty_inbound_leg_of_a_refused_client_is_expected() {
    for (profile, want) in [
        (Profile::Istio, Kind::PlaintextExpected),
        (Profile::Strict, Kind::Unknown),
    ] {
        let lo = records("mesh-server-lo.pcap", profile);
        let empty: Vec<_> = lo
            .iter()
            .filter(|r| r.protocol == crate::classify::Protocol::Empty)
            .collect();
        assert_eq!(empty.len(), 2, "{profile:?}");
        for r in empty {
            assert!(r.client.starts_with("127.0.0.6:"));
            assert_eq!(r.verdict.as_ref().unwrap().kind, want, "{profile:?}");
        }
    }
}

/// Real Envoy resumes TLS 1.2 upstream sessions with an abbreviated handshake (ServerHello,
/// ChangeCipherSpec, Finished: no certificate either way). It was read as a full handshake
/// whose client sent no certificate ("the client sent none", `tls`); it is `resumed`, linked to
/// the full handshake that presented one, and `mtls`. Without that handshake in the capture it
/// is `tls`, not observable — never "sent none".
#[test]
fn envoys_tls12_resumption_is_linked_not_called_certificate_less() {
    let flows = records("mesh-server-eth0.pcap", Profile::Istio);
    let to_8081: Vec<_> = flows
        .iter()
        .filter(|r| r.server.ends_with(":8081"))
        .collect();
    assert_eq!(to_8081.len(), 2);
    let (full, again) = (to_8081[0], to_8081[1]);
    let t = full.tls.as_ref().unwrap();
    assert_eq!(t.version.as_deref(), Some("1.2"));
    assert!(!t.resumed);
    assert_eq!(t.client_cert, Some(ClientCert::Presented));
    let t = again.tls.as_ref().unwrap();
    assert_eq!(t.version.as_deref(), Some("1.2"));
    assert!(t.resumed, "{:?}", t.inference_basis);
    assert!(t.certificates.server.is_empty() && t.certificates.client.is_empty());
    assert_eq!(t.resumed_from_flow, Some(full.id));
    assert_eq!(t.resumed_client_cert, Some(ClientCert::Presented));
    let v = again.verdict.as_ref().unwrap();
    assert_eq!(v.kind, Kind::Mtls, "{}", v.reason);
    assert!(v.reason.contains(&format!("resumed from flow {}", full.id)));

    let mut alone = again.clone();
    let t = alone.tls.as_mut().unwrap();
    t.resumed_from_flow = None;
    t.resumed_client_cert = None;
    let v = evaluate(&alone, place_of(&alone), Profile::Istio).unwrap();
    assert_eq!(v.kind, Kind::Tls);
    assert!(
        v.reason.contains("TLS 1.2 resumed (abbreviated handshake)")
            && v.reason.contains("client auth not observable"),
        "{}",
        v.reason
    );
    let v = evaluate(&alone, place_of(&alone), Profile::Strict).unwrap();
    assert_eq!(v.kind, Kind::Tls);
    assert!(v.reason.contains("not observable"), "{}", v.reason);
}
