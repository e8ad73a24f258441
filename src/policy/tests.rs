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
