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
