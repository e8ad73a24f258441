//! Role: turns a flow's facts into a verdict under a mesh profile. `strict`: cleartext that
//! leaves the host (any non-loopback interface) is a leak; `istio`: Istio's sidecar
//! conventions (docs/verdicts.md, DESIGN.md "what the wire shows") decide what plaintext is
//! expected, what bypasses the sidecar and what identifies mTLS; `none`: facts only.
//! Reads the record and the flow's endpoints; never the packets.

use crate::classify::Protocol;
use crate::report::FlowRecord;
use crate::tls::{ClientCert, Outcome, TlsFacts};
use crate::wire::Addr;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Which conventions judge a flow (`--profile`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    #[default]
    Strict,
    Istio,
    None,
}

impl Profile {
    pub fn parse(s: &str) -> Option<Profile> {
        match s {
            "strict" => Some(Profile::Strict),
            "istio" => Some(Profile::Istio),
            "none" => Some(Profile::None),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Mtls,
    Tls,
    PlaintextExpected,
    PlaintextLeak,
    SidecarBypass,
    Rejected,
    Unknown,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::Mtls,
        Kind::Tls,
        Kind::PlaintextExpected,
        Kind::PlaintextLeak,
        Kind::SidecarBypass,
        Kind::Rejected,
        Kind::Unknown,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mtls => "mtls",
            Kind::Tls => "tls",
            Kind::PlaintextExpected => "plaintext-expected",
            Kind::PlaintextLeak => "plaintext-leak",
            Kind::SidecarBypass => "sidecar-bypass",
            Kind::Rejected => "rejected",
            Kind::Unknown => "unknown",
        }
    }
    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == s)
    }
    /// A kind that is a problem to report (the summary's FAIL line).
    pub fn is_problem(self) -> bool {
        matches!(self, Kind::PlaintextLeak | Kind::SidecarBypass)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// The rule that fired: a verdict kind (`plaintext-leak`, `sidecar-bypass`...) or a
    /// detail rule (`sensitive-data`, `weak-tls-version`).
    pub rule: String,
    pub severity: Severity,
    pub evidence: String,
}

/// The `verdict` object of a flow record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub kind: Kind,
    /// Static for the common cases: a verdict is made for every flow.
    pub reason: Cow<'static, str>,
    pub findings: Vec<Finding>,
}

/// Where the flow was seen, beyond what the record's strings say.
#[derive(Debug, Clone, Copy)]
pub struct Place {
    pub client: (Addr, u16),
    pub server: (Addr, u16),
    /// The capture says loopback: interface `lo`, a cooked loopback header, a NULL/LOOP
    /// link, or Ethernet with all-zero addresses (what Linux `lo` gives tcpdump).
    pub loopback: bool,
}

impl Place {
    /// Where a flow between `client` and `server` was seen: loopback when the link header
    /// says so, the capture names the interface `lo`, or both addresses are loopback ones.
    pub fn new(
        client: (Addr, u16),
        server: (Addr, u16),
        link: &crate::wire::LinkInfo,
        interface: Option<&str>,
    ) -> Place {
        Place {
            client,
            server,
            loopback: link.loopback
                || interface == Some("lo")
                || loopback_addresses(client.0, server.0),
        }
    }
}

/// Istio's sidecar and agent ports that carry plaintext by design: 15000 Envoy admin,
/// 15001 outbound capture, 15004 debug, 15006 inbound capture, 15020 merged metrics and
/// health, 15021 readiness, 15053 DNS proxy, 15090 Envoy Prometheus.
const ISTIO_LOCAL_PORTS: [u16; 8] = [15000, 15001, 15004, 15006, 15020, 15021, 15053, 15090];
/// Of those, the ones kubelet and Prometheus reach over the pod's interface.
const ISTIO_PROBE_PORTS: [u16; 3] = [15020, 15021, 15090];
/// Ambient mode's HBONE tunnel port.
const HBONE_PORT: u16 = 15008;
/// The source address Envoy binds for its inbound leg to the application.
const ENVOY_INBOUND_V4: [u8; 4] = [127, 0, 0, 6];

fn is_envoy_inbound_source(a: Addr) -> bool {
    if a.v6 {
        // ::6, the IPv6 counterpart Istio uses.
        a.bytes[..15].iter().all(|&b| b == 0) && a.bytes[15] == 6
    } else {
        a.bytes[12..] == ENVOY_INBOUND_V4
    }
}

/// Decides the verdict of one flow; `None` under `--profile none`.
pub fn evaluate(rec: &FlowRecord, place: Place, profile: Profile) -> Option<Verdict> {
    if profile == Profile::None {
        return None;
    }
    let istio = profile == Profile::Istio;
    Some(match rec.protocol {
        Protocol::Tls | Protocol::Quic => match &rec.tls {
            Some(t) => tls_verdict(t, place, istio),
            None => verdict(Kind::Unknown, "TLS without readable handshake facts"),
        },
        Protocol::Empty => empty_verdict(rec, place, istio),
        Protocol::Http | Protocol::H2c | Protocol::Other => cleartext_verdict(rec, place, istio),
    })
}

fn verdict(kind: Kind, reason: impl Into<Cow<'static, str>>) -> Verdict {
    Verdict {
        kind,
        reason: reason.into(),
        findings: Vec::new(),
    }
}

fn client_cert(t: &TlsFacts) -> bool {
    t.client_cert == Some(ClientCert::Presented)
        || t.client_cert_inferred == Some(ClientCert::Presented)
        || !t.certificates.client.is_empty()
        // Client authentication carries over to a session resumed from that handshake.
        || (t.resumed && t.resumed_client_cert == Some(ClientCert::Presented))
}

/// What shows the client certificate of a flow for which `client_cert` holds.
fn cert_evidence(t: &TlsFacts) -> String {
    if t.client_cert == Some(ClientCert::Presented) || !t.certificates.client.is_empty() {
        "a client certificate was sent".to_string()
    } else if t.client_cert_inferred == Some(ClientCert::Presented) {
        "a client certificate was sent (inferred from the TLS 1.3 record sizes)".to_string()
    } else {
        format!(
            "a session resumed from flow {}, whose full handshake presented a client certificate (client authentication carries over)",
            t.resumed_from_flow.unwrap_or_default()
        )
    }
}

/// "TLS 1.3 resumed (psk_dhe_ke)" or "TLS 1.2 resumed (abbreviated handshake)".
fn resumed_what(t: &TlsFacts) -> String {
    match t.version.as_deref() {
        Some("1.3") => format!(
            "TLS 1.3 resumed ({})",
            t.psk_mode.as_deref().unwrap_or("psk")
        ),
        v => format!(
            "TLS {} resumed (abbreviated handshake)",
            v.unwrap_or("unknown")
        ),
    }
}

/// What shows that the client sent no certificate, if the capture shows it.
fn no_cert_evidence(t: &TlsFacts) -> Option<String> {
    let no = |c: Option<ClientCert>| matches!(c, Some(ClientCert::None | ClientCert::Empty));
    if t.resumed {
        // No certificate crosses the wire of a resumed handshake (TLS 1.2's abbreviated one
        // shows `client_cert: none`): only the full handshake it came from can say.
        return no(t.resumed_client_cert).then(|| {
            format!(
                "a session resumed from flow {}, whose full handshake had no client certificate",
                t.resumed_from_flow.unwrap_or_default()
            )
        });
    }
    if no(t.client_cert) {
        Some("the client sent none".to_string())
    } else if no(t.client_cert_inferred) {
        Some("the client sent none (inferred from the TLS 1.3 record sizes)".to_string())
    } else {
        None
    }
}

/// What the capture shows of the client's authentication, decided once for every profile:
/// a certificate (seen, inferred, or carried over by resumption), none, or nothing either way.
enum ClientAuth {
    Cert(String),
    NoCert(String),
    /// A resumed session whose full handshake was not captured.
    ResumedUnseen,
    /// A full handshake whose client flight the capture does not show.
    Unseen,
}

fn client_auth(t: &TlsFacts) -> ClientAuth {
    if client_cert(t) {
        ClientAuth::Cert(cert_evidence(t))
    } else if let Some(none) = no_cert_evidence(t) {
        ClientAuth::NoCert(none)
    } else if t.resumed {
        ClientAuth::ResumedUnseen
    } else {
        ClientAuth::Unseen
    }
}

fn tls_verdict(t: &TlsFacts, place: Place, istio: bool) -> Verdict {
    if t.outcome == Outcome::Rejected {
        let why = t
            .alerts
            .iter()
            .find(|a| a.description.is_some() || a.likely.is_some())
            .and_then(|a| a.description.clone().or_else(|| a.likely.clone()));
        let mut v = verdict(
            Kind::Rejected,
            match why {
                Some(d) => format!("the TLS handshake was refused ({d})"),
                None => "the TLS handshake was refused".to_string(),
            },
        );
        if let Some(sni) = &t.sni {
            v.findings.push(Finding {
                rule: "rejected".into(),
                severity: Severity::Low,
                evidence: format!("SNI {sni}"),
            });
        }
        return v;
    }
    let istio_alpn = t
        .alpn_offered
        .iter()
        .any(|a| a == "istio" || a.starts_with("istio-"));
    let istio_sni = t
        .sni
        .as_deref()
        .is_some_and(|s| s.starts_with("outbound_."));
    let hbone = place.server.1 == HBONE_PORT
        && t.version.as_deref() == Some("1.3")
        && t.sni.is_none()
        && t.alpn_offered.iter().any(|a| a == "h2");
    let mut v = if istio && (istio_alpn || istio_sni) {
        let mut how = Vec::new();
        if istio_alpn {
            how.push(format!("Istio ALPN {}", t.alpn_offered.join(",")));
        }
        if istio_sni {
            how.push(format!("SNI {}", t.sni.as_deref().unwrap_or("")));
        }
        let mesh = how.join(", ");
        // Istio's ALPN and SNI say a sidecar originated the connection, not that the server
        // authenticated it: mTLS needs the client certificate seen or inferred, as under
        // strict. Real sidecars resume TLS 1.3 sessions all the time (no certificate on the
        // wire), and a server that is not a sidecar never asks for one.
        match client_auth(t) {
            ClientAuth::Cert(ev) => verdict(Kind::Mtls, format!("Istio mTLS: {mesh}; {ev}")),
            ClientAuth::NoCert(none) => verdict(
                Kind::Tls,
                format!("TLS from an Istio sidecar ({mesh}) without a client certificate: {none}"),
            ),
            ClientAuth::ResumedUnseen => verdict(
                Kind::Tls,
                format!(
                    "{} from an Istio sidecar ({mesh}); client auth not observable: it happened in a full handshake not captured",
                    resumed_what(t)
                ),
            ),
            ClientAuth::Unseen => verdict(
                Kind::Tls,
                format!(
                    "TLS from an Istio sidecar ({mesh}); client auth not observable (the capture does not show the client's certificate flight)"
                ),
            ),
        }
    } else if istio && hbone {
        verdict(
            Kind::Mtls,
            "ambient HBONE: TLS 1.3 to :15008 with ALPN h2 and no SNI",
        )
    } else {
        match client_auth(t) {
            ClientAuth::Cert(ev) => verdict(Kind::Mtls, format!("mutual TLS: {ev}")),
            ClientAuth::NoCert(_) if t.resumed => verdict(
                Kind::Tls,
                format!(
                    "{} from flow {}, whose full handshake had no client certificate",
                    resumed_what(t),
                    t.resumed_from_flow.unwrap_or_default()
                ),
            ),
            ClientAuth::ResumedUnseen => verdict(
                Kind::Tls,
                format!(
                    "{}; client auth not observable: it happened in a full handshake not captured",
                    resumed_what(t)
                ),
            ),
            ClientAuth::NoCert(_) | ClientAuth::Unseen => verdict(
                Kind::Tls,
                format!(
                    "TLS {} without a client identity (no client certificate seen)",
                    t.version.as_deref().unwrap_or("unknown")
                ),
            ),
        }
    };
    if let Some(ver) = t.version.as_deref() {
        // names::version spells SSL as "ssl3"/"ssl2" (the old spellings kept for safety).
        if matches!(ver, "1.0" | "1.1" | "ssl3" | "ssl2" | "SSL 3.0" | "SSL 2.0") {
            v.findings.push(Finding {
                rule: "weak-tls-version".into(),
                severity: Severity::Medium,
                evidence: format!("negotiated TLS {ver}"),
            });
        }
    }
    if place.loopback && istio {
        // Loopback TLS is the pod talking to itself; still TLS.
        v.reason.to_mut().push_str(" (on loopback)");
    }
    v
}

fn empty_verdict(rec: &FlowRecord, place: Place, istio: bool) -> Verdict {
    let refused = rec
        .tcp
        .as_ref()
        .is_some_and(|t| t.end == crate::report::TcpEnd::Rst);
    if refused && !place.loopback && istio {
        return verdict(
            Kind::Rejected,
            "the connection was reset before any payload",
        );
    }
    if istio && place.loopback && is_envoy_inbound_source(place.client.0) {
        // Envoy's TCP proxy connects to the application as soon as a filter chain matches,
        // before the client's TLS handshake is done: a client the sidecar then refuses leaves
        // this empty leg on lo (measured with Envoy 1.40, captures/mesh-server-lo.pcap).
        return verdict(
            Kind::PlaintextExpected,
            "Envoy's inbound leg to the application (from 127.0.0.6 on loopback), empty: opened before the client's handshake, which the sidecar refused or the client abandoned",
        );
    }
    verdict(Kind::Unknown, "no payload: nothing to judge")
}

/// One line naming the flow's first request (or its application) for evidence.
fn what(rec: &FlowRecord) -> String {
    if let Some(h) = &rec.http {
        if let Some(r) = h.requests.first() {
            let path = truncate(&r.path, 80);
            let mut w = String::with_capacity(r.method.len() + path.len() + 40);
            w.push_str(&r.method);
            w.push(' ');
            w.push_str(path);
            if let Some(h) = &r.host {
                w.push_str(" (Host ");
                w.push_str(h);
                w.push(')');
            }
            return w;
        }
        if let Some(r) = h.responses.first() {
            return format!("HTTP response {}", r.status);
        }
    }
    if let Some(c) = &rec.cleartext {
        if let Some(app) = &c.app {
            return format!("{app} in cleartext");
        }
        return format!("{} payload in cleartext", c.payload);
    }
    format!("{} in cleartext", rec.protocol.name())
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Sensitive items of a cleartext flow, as (label, evidence), each once (the same credential
/// on every request of a keep-alive connection is one finding).
fn sensitive(rec: &FlowRecord) -> Vec<(&str, &str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    let http = rec.http.iter().flat_map(|h| h.sensitive());
    let other = rec.cleartext.iter().flat_map(|c| {
        c.sensitive
            .iter()
            .zip(&c.evidence)
            .map(|(l, e)| (l.as_str(), e.as_str()))
    });
    for item in http.chain(other) {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    out
}

/// `client -> server: what`, built without the formatting machinery (one per cleartext flow).
fn flow_evidence(rec: &FlowRecord) -> String {
    let what = what(rec);
    let mut e = String::with_capacity(rec.client.len() + rec.server.len() + what.len() + 6);
    e.push_str(&rec.client);
    e.push_str(" -> ");
    e.push_str(&rec.server);
    e.push_str(": ");
    e.push_str(&what);
    e
}

fn cleartext_verdict(rec: &FlowRecord, place: Place, istio: bool) -> Verdict {
    let server_port = place.server.1;
    let silent_server = rec.bytes.s2c == 0 && rec.bytes.c2s > 0;
    let closed = rec.tcp.as_ref().is_some_and(|t| {
        matches!(
            t.end,
            crate::report::TcpEnd::Rst | crate::report::TcpEnd::Fin
        )
    });
    let secrets = sensitive(rec);
    let with_secrets = |mut v: Verdict, severity: Severity| {
        for (label, ev) in &secrets {
            v.findings.push(Finding {
                rule: "sensitive-data".into(),
                severity,
                evidence: [*label, ": ", *ev].concat(),
            });
        }
        v
    };
    if istio && ISTIO_PROBE_PORTS.contains(&server_port) {
        return verdict(
            Kind::PlaintextExpected,
            format!("Istio health/metrics port {server_port}"),
        );
    }
    if place.loopback {
        if !istio {
            return with_secrets(
                verdict(
                    Kind::PlaintextExpected,
                    "cleartext on loopback does not leave the host",
                ),
                Severity::Low,
            );
        }
        if is_envoy_inbound_source(place.client.0) {
            return verdict(
                Kind::PlaintextExpected,
                "Envoy's inbound leg to the application (from 127.0.0.6 on loopback)",
            );
        }
        if rec.packets.c2s == 0 {
            // iptables REDIRECT rewrites the replies of a redirected connection back to the
            // original destination, so on lo they form a tuple of their own with no client
            // packet at all; a real connection always has the client's SYN and ACKs.
            return verdict(
                Kind::PlaintextExpected,
                "replies of a connection redirected to the sidecar (no client packet on this \
                 tuple: iptables REDIRECT rewrites the replies' source on lo)",
            );
        }
        if ISTIO_LOCAL_PORTS.contains(&server_port) {
            return verdict(
                Kind::PlaintextExpected,
                format!("to the sidecar's local port {server_port} on loopback"),
            );
        }
        if ISTIO_LOCAL_PORTS.contains(&place.client.1) {
            return verdict(
                Kind::PlaintextExpected,
                format!(
                    "from the sidecar's local port {} on loopback",
                    place.client.1
                ),
            );
        }
        let mut v = verdict(
            Kind::SidecarBypass,
            format!(
                "loopback connection to application port {server_port} from {}, not from \
                 Envoy (127.0.0.6): the sidecar was bypassed (kubectl port-forward does this)",
                rec.client
            ),
        );
        v.findings.push(Finding {
            rule: "sidecar-bypass".into(),
            severity: Severity::High,
            evidence: flow_evidence(rec),
        });
        return with_secrets(v, Severity::High);
    }
    if silent_server && closed {
        return verdict(
            Kind::Rejected,
            format!(
                "cleartext {} was closed by the server without an answer (enforcement)",
                what(rec)
            ),
        );
    }
    let severity = if secrets.is_empty() {
        Severity::Medium
    } else {
        Severity::High
    };
    let mut v = verdict(
        Kind::PlaintextLeak,
        if istio {
            "cleartext application traffic on a pod interface: not protected by the mesh \
             (PERMISSIVE, an excluded port, or a uid-1337 process)"
        } else {
            "cleartext on a non-loopback interface"
        },
    );
    v.findings.push(Finding {
        rule: "plaintext-leak".into(),
        severity,
        evidence: flow_evidence(rec),
    });
    with_secrets(v, severity)
}

/// Loopback by address: both ends in 127.0.0.0/8 or ::1.
fn loopback_addresses(a: Addr, b: Addr) -> bool {
    let lo = |x: Addr| {
        if x.v6 {
            x.bytes[..15].iter().all(|&v| v == 0) && x.bytes[15] == 1
        } else {
            x.bytes[12] == 127
        }
    };
    lo(a) && lo(b)
}

#[cfg(test)]
mod tests;
