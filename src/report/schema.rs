//! The JSON Lines schema: one `flow` object per TCP flow, one `summary` object at the end.
//! These structs are the contract (docs/schema.md); field names are never renamed. Tests read
//! the tool's output back into them, so a change here that breaks users breaks a test too.

use crate::classify::Protocol;
use serde::{Deserialize, Serialize};

/// Per-direction counters, from the client's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Directions {
    pub c2s: u64,
    pub s2c: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TcpStart {
    Syn,
    Midstream,
}

/// Why the record was written. `idle` also covers flows evicted from a full table
/// (`tcp.evicted` says which).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TcpEnd {
    Fin,
    Rst,
    Idle,
    Eof,
}

/// How the client was told from the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientBy {
    Syn,
    Content,
    Port,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpFacts {
    pub start: TcpStart,
    pub end: TcpEnd,
    /// Holes in either direction's sequence space that the capture never filled.
    pub gaps: u32,
    pub retransmits: u32,
    pub out_of_order: u32,
    /// Segments whose payload the capture cut short (snaplen).
    pub snaplen_cut: u32,
    /// Out-of-order segments whose bytes were not held (the direction's `--collect-bytes`
    /// budget was spent): the parsers saw a hole there. Added in issue 11.
    #[serde(default)]
    pub out_of_order_dropped: u32,
    pub evicted: bool,
    pub client_by: ClientBy,
}

/// The transport a flow runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    Tcp,
    Udp,
}

/// One flow: a TCP connection, or a QUIC connection over UDP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowRecord {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: u64,
    /// `ip:port`, IPv6 as `[addr]:port`.
    pub client: String,
    pub server: String,
    /// Interface name from the pcapng IDB, if the capture names it.
    pub interface: Option<String>,
    /// Kernel interface index from a LINUX_SLL2 header (`tcpdump -i any`).
    pub ifindex: Option<u32>,
    /// The link layer says loopback (cooked ARPHRD_LOOPBACK, BSD NULL/LOOP).
    pub link_loopback: bool,
    pub first_ts: f64,
    pub last_ts: f64,
    pub packets: Directions,
    /// Payload bytes on the wire: TCP payload (retransmissions included), or UDP payload.
    pub bytes: Directions,
    pub transport: Transport,
    /// TCP facts; null for QUIC flows.
    pub tcp: Option<TcpFacts>,
    pub protocol: Protocol,
    /// TLS handshake facts; null for flows that are not TLS.
    pub tls: Option<crate::tls::TlsFacts>,
    /// HTTP/1.x and h2c messages, when the flow carried any (also the CONNECT of a tunnel).
    pub http: Option<crate::http::HttpFacts>,
    /// What a cleartext flow that is not HTTP is (protocol `other`); null otherwise.
    pub cleartext: Option<crate::classify::cleartext::Cleartext>,
    /// The flow was judged to be on loopback (interface, link header or addresses).
    pub loopback: bool,
    /// The mesh verdict; null under `--profile none`.
    pub verdict: Option<crate::policy::Verdict>,
    /// The input this flow was read from (shared by all its flows).
    pub file: std::sync::Arc<str>,
}

/// Per-protocol flow counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProtocolCounts {
    pub tls: u64,
    pub http: u64,
    pub h2c: u64,
    pub other: u64,
    pub empty: u64,
    pub quic: u64,
}

impl ProtocolCounts {
    pub fn add(&mut self, p: Protocol) {
        match p {
            Protocol::Tls => self.tls += 1,
            Protocol::Http => self.http += 1,
            Protocol::H2c => self.h2c += 1,
            Protocol::Other => self.other += 1,
            Protocol::Empty => self.empty += 1,
            Protocol::Quic => self.quic += 1,
        }
    }
    pub fn get(&self, p: Protocol) -> u64 {
        match p {
            Protocol::Tls => self.tls,
            Protocol::Http => self.http,
            Protocol::H2c => self.h2c,
            Protocol::Other => self.other,
            Protocol::Empty => self.empty,
            Protocol::Quic => self.quic,
        }
    }
}

/// Packets that are not TCP, by kind (see `wire::NonTcp`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct NonTcpCounts {
    pub udp: u64,
    pub quic: u64,
    pub icmp: u64,
    pub icmpv6: u64,
    pub arp: u64,
    pub ip_fragment: u64,
    pub other_ip: u64,
    pub other_link: u64,
    pub unsupported_link_type: u64,
    pub truncated: u64,
    pub malformed: u64,
}

impl NonTcpCounts {
    pub fn total(&self) -> u64 {
        self.udp
            + self.quic
            + self.icmp
            + self.icmpv6
            + self.arp
            + self.ip_fragment
            + self.other_ip
            + self.other_link
            + self.unsupported_link_type
            + self.truncated
            + self.malformed
    }
    /// (name, count) pairs with a non-zero count, for printing.
    pub fn nonzero(&self) -> Vec<(&'static str, u64)> {
        [
            ("udp", self.udp),
            ("quic", self.quic),
            ("icmp", self.icmp),
            ("icmpv6", self.icmpv6),
            ("arp", self.arp),
            ("ip_fragment", self.ip_fragment),
            ("other_ip", self.other_ip),
            ("other_link", self.other_link),
            ("unsupported_link_type", self.unsupported_link_type),
            ("truncated", self.truncated),
            ("malformed", self.malformed),
        ]
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .collect()
    }
}

/// What kind of input problem an [`InputError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputErrorKind {
    /// Not a pcap/pcapng capture at all (nothing could be read).
    NotACapture,
    /// A capture damaged part-way: everything before the damage was read.
    Damaged,
    /// The operating system refused to read it.
    Io,
}

/// A place where an input could not be read further.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputError {
    pub file: String,
    pub kind: InputErrorKind,
    /// Byte offset in the input, when known.
    pub offset: Option<u64>,
    /// 1-based packet number being read, when known.
    pub packet: Option<u64>,
    pub message: String,
}

/// The last line of the output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Summary {
    #[serde(rename = "type")]
    pub kind: String,
    pub flows: u64,
    /// Packets read from the input(s), all kinds.
    pub packets: u64,
    /// TCP payload bytes over all flows.
    pub bytes: u64,
    pub protocols: ProtocolCounts,
    /// Some input was damaged or cut: results are what could be read (exit code 3).
    pub partial: bool,
    pub tcp_packets: u64,
    pub non_tcp: NonTcpCounts,
    /// Bytes of capture input read.
    pub input_bytes: u64,
    /// Flows emitted early because the flow table was full.
    pub evicted: u64,
    /// Packets that arrived after their flow had closed (retransmitted FIN, RST storms).
    pub late_packets: u64,
    /// QUIC packets of connections not followed because the QUIC table was full (its cap is
    /// `--max-flows`, at most 4,096). Added in issue 11.
    #[serde(default)]
    pub quic_untracked: u64,
    pub max_live_flows: u64,
    /// pcapng blocks skipped because their content was invalid.
    pub skipped_blocks: u64,
    pub first_ts: Option<f64>,
    pub last_ts: Option<f64>,
    pub files: Vec<String>,
    pub errors: Vec<InputError>,
    /// The profile that judged the flows (`strict`, `istio`, `none`).
    #[serde(default)]
    pub profile: String,
    /// Flows per verdict kind.
    #[serde(default)]
    pub verdicts: VerdictCounts,
    /// The worst findings (severity first, then flow order), at most `MAX_WORST`.
    #[serde(default)]
    pub worst: Vec<WorstFinding>,
    /// Findings over all flows (`worst` keeps the first `MAX_WORST` of them by severity).
    #[serde(default)]
    pub findings: u64,
    /// What decided the run and its outcome (`--fail-on`, `--expect`); `analyze` and `sniff`
    /// judge by `check`'s default rules. Null only from library callers that judge nothing.
    #[serde(default)]
    pub check: Option<super::answer::CheckResult>,
    /// The last line: `PASS: 41 flows, all mTLS`, `FAIL: 2 plaintext leaks, 1 sidecar bypass`,
    /// `NO DATA: …`, `NO VERDICT: …`, `PARTIAL: …` or `ERROR: …` (docs/check.md); it agrees
    /// with `check.result` and with the exit code.
    #[serde(default)]
    pub answer: String,
}

/// How many findings the summary keeps.
pub const MAX_WORST: usize = 10;

/// Flows per verdict kind. In JSON the keys are the kinds as spelled everywhere else
/// (`plaintext-leak`); the underscore keys of 0.1 (`plaintext_leak`, `plaintext_expected`,
/// `sidecar_bypass`) are written too, deprecated, for one release (docs/schema.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VerdictCounts {
    pub mtls: u64,
    pub tls: u64,
    pub plaintext_expected: u64,
    pub plaintext_leak: u64,
    pub sidecar_bypass: u64,
    pub rejected: u64,
    pub unknown: u64,
}

impl Serialize for VerdictCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(Some(crate::policy::Kind::ALL.len() + 3))?;
        for k in crate::policy::Kind::ALL {
            m.serialize_entry(k.name(), &self.get(k))?;
        }
        // Deprecated spellings, kept for one release.
        m.serialize_entry("plaintext_expected", &self.plaintext_expected)?;
        m.serialize_entry("plaintext_leak", &self.plaintext_leak)?;
        m.serialize_entry("sidecar_bypass", &self.sidecar_bypass)?;
        m.end()
    }
}

/// Reads either spelling (the hyphenated one wins): old reports still read back.
impl<'de> Deserialize<'de> for VerdictCounts {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let m = std::collections::BTreeMap::<String, u64>::deserialize(d)?;
        let mut c = VerdictCounts::default();
        for k in crate::policy::Kind::ALL {
            let old = k.name().replace('-', "_");
            if let Some(n) = m.get(k.name()).or_else(|| m.get(&old)) {
                *c.get_mut(k) = *n;
            }
        }
        Ok(c)
    }
}

impl VerdictCounts {
    pub fn get_mut(&mut self, k: crate::policy::Kind) -> &mut u64 {
        use crate::policy::Kind;
        match k {
            Kind::Mtls => &mut self.mtls,
            Kind::Tls => &mut self.tls,
            Kind::PlaintextExpected => &mut self.plaintext_expected,
            Kind::PlaintextLeak => &mut self.plaintext_leak,
            Kind::SidecarBypass => &mut self.sidecar_bypass,
            Kind::Rejected => &mut self.rejected,
            Kind::Unknown => &mut self.unknown,
        }
    }
    pub fn get(&self, k: crate::policy::Kind) -> u64 {
        let mut c = *self;
        *c.get_mut(k)
    }
    pub fn total(&self) -> u64 {
        crate::policy::Kind::ALL.iter().map(|k| self.get(*k)).sum()
    }
}

/// A finding as the summary lists it, with the flow it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorstFinding {
    pub flow: u64,
    pub kind: crate::policy::Kind,
    pub rule: String,
    pub severity: crate::policy::Severity,
    pub evidence: String,
}

impl Summary {
    /// Counts a judged flow and keeps its findings if they are among the worst.
    pub fn judge(&mut self, id: u64, v: &crate::policy::Verdict) {
        *self.verdicts.get_mut(v.kind) += 1;
        self.findings += v.findings.len() as u64;
        for f in &v.findings {
            let worse = self.worst.len() < MAX_WORST
                || self.worst.last().is_some_and(|w| w.severity < f.severity);
            if !worse {
                continue;
            }
            let at = self
                .worst
                .iter()
                .position(|w| w.severity < f.severity)
                .unwrap_or(self.worst.len());
            self.worst.insert(
                at,
                WorstFinding {
                    flow: id,
                    kind: v.kind,
                    rule: f.rule.clone(),
                    severity: f.severity,
                    evidence: f.evidence.clone(),
                },
            );
            self.worst.truncate(MAX_WORST);
        }
    }

    /// The one-line answer under `check`'s default rules (what `analyze` judges by); the
    /// binaries replace it with [`super::Gate::conclude`]'s, which knows every rule.
    pub fn answer_line(&self) -> String {
        let mut s = self.clone();
        super::Gate::default().conclude_counts(&mut s);
        s.answer
    }
}

/// Nanoseconds since the epoch as seconds with microsecond precision (exact in an f64).
pub fn ts_seconds(ns: u64) -> f64 {
    (ns / 1000) as f64 / 1e6
}
