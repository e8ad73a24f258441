//! TLS facts of a flow, exactly where the wire shows them and honestly where it does not.
//!
//! Inputs: each direction's kept cleartext bytes (the handshake before encryption) and its
//! [`RecordWalker`] log (every record's type, length and packet order, for the whole flow).
//! TLS ≤ 1.2 shows CertificateRequest, both certificate chains, the client's Certificate and
//! alerts before ChangeCipherSpec: those are *proven*. TLS 1.3 encrypts everything after the
//! ServerHello: those fields are `hidden`, never "no", and the client certificate is *inferred*
//! from the size of the client's second flight, with the basis stated (see docs/tls.md).

pub mod cert;
pub mod handshake;
pub mod ja4;
pub mod names;
pub mod quic;
pub mod records;

use handshake::{ClientHello, Messages, ServerHello, msg};
use records::{RecordEvent, RecordWalker, content};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

pub use cert::{Cert, CertInfo};

/// Registry names are mostly static strings; `Cow` avoids copying them for every flow.
pub type Name = Cow<'static, str>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Requested {
    Yes,
    No,
    Hidden,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientCert {
    Presented,
    Empty,
    None,
    Hidden,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Client,
    Server,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertLevel {
    Warning,
    Fatal,
    /// An alert record whose body is encrypted: its level and description are unknown.
    Encrypted,
    /// A readable alert with a level that is neither 1 nor 2.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub from: Side,
    pub level: AlertLevel,
    pub code: Option<u8>,
    pub description: Option<String>,
    /// Not seen as an alert record: inferred from an encrypted TLS 1.3 record's size and what
    /// followed it (see `inference_basis`).
    #[serde(default)]
    pub inferred: bool,
    /// For inferred alerts: the description the circumstances point to.
    #[serde(default)]
    pub likely: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Established,
    Rejected,
    Incomplete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Certificates {
    pub server: Vec<Cert>,
    pub client: Vec<Cert>,
}

/// The `tls` object of a flow record (docs/schema.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TlsFacts {
    /// Negotiated (supported_versions, not the record layer); null without a ServerHello.
    pub version: Option<Name>,
    pub versions_offered: Vec<Name>,
    pub sni: Option<String>,
    /// Non-UTF-8 protocol names as "0x" + hex.
    pub alpn_offered: Vec<String>,
    /// "hidden" under TLS 1.3 (EncryptedExtensions).
    pub alpn_selected: Option<String>,
    pub cipher: Option<Name>,
    pub cipher_id: Option<String>,
    pub hrr: bool,
    pub client_cert_requested: Option<Requested>,
    pub client_cert: Option<ClientCert>,
    /// TLS 1.3 only: what the client's second flight says, see `inference_basis`.
    pub client_cert_inferred: Option<ClientCert>,
    /// TLS 1.3 only: a Certificate in the client's flight means one was requested.
    pub client_cert_requested_inferred: Option<Requested>,
    pub inference_basis: Option<String>,
    pub certificates: Certificates,
    pub alerts: Vec<Alert>,
    pub ja4: Option<String>,
    pub outcome: Outcome,
    /// The first ClientHello was in the SSLv2 compatibility format.
    pub sslv2_hello: bool,
    /// Cleartext before TLS began: "http-connect", "starttls", "postgres" or "other".
    pub prefix: Option<String>,
    pub groups_offered: Vec<Name>,
    pub key_share_groups: Vec<Name>,
    /// How many signature algorithms the ClientHello offers (GREASE left out).
    pub signature_algorithms_offered: usize,
    /// The ClientHello's legacy_version field (what TLS 1.3 clients set to 1.2).
    pub client_legacy_version: Option<Name>,
    pub cipher_suites_offered: usize,
    /// A handshake message was cut (capture loss or the per-flow byte cap).
    pub handshake_truncated: bool,
    /// Records seen per direction (the whole flow).
    pub records: crate::report::Directions,
    /// TLS 1.3: the ServerHello accepted a `pre_shared_key`: a resumed session, in which no
    /// certificate crosses the wire (docs/tls.md).
    #[serde(default)]
    pub resumed: bool,
    /// Of a resumed session: `psk_dhe_ke` (the ServerHello has a key_share) or `psk_ke`.
    #[serde(default)]
    pub psk_mode: Option<Name>,
    /// The ClientHello's psk_key_exchange_modes.
    #[serde(default)]
    pub psk_modes_offered: Vec<Name>,
    /// The ClientHello offered a PSK (a ticket to resume).
    #[serde(default)]
    pub psk_offered: bool,
    /// Of a resumed session: the id of the latest earlier full handshake between the same
    /// peers (client address, server address and port, SNI) in this run; null when not captured.
    #[serde(default)]
    pub resumed_from_flow: Option<u64>,
    /// What that full handshake showed of the client certificate, which carries over to the
    /// sessions resumed from it.
    #[serde(default)]
    pub resumed_client_cert: Option<ClientCert>,
    /// SSLv2-format ClientHello: how many cipher specs it offers (3 bytes each, SSLv2 kinds
    /// included; `cipher_suites_offered` counts the TLS suites among them).
    #[serde(default)]
    pub sslv2_cipher_specs_offered: usize,
}

/// One direction as the TLS layer sees it.
#[derive(Debug, Clone, Copy)]
pub struct DirectionInput<'a> {
    pub kept: &'a [u8],
    pub walker: &'a RecordWalker,
}

/// How the TCP connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    Fin,
    Rst,
    Open,
}

/// Collects one direction's cleartext handshake bytes into `out`: the bodies of handshake
/// records from `start` until the first application-data record. Returns how many of those
/// bytes came before the direction's first ChangeCipherSpec (under TLS ≤ 1.2 the rest is
/// encrypted; under TLS 1.3 the CCS is only for middleboxes) and whether a record was cut.
fn collect_handshake(kept: &[u8], start: usize, out: &mut Vec<u8>) -> (usize, bool) {
    out.clear();
    let mut before_ccs = None;
    let mut b = kept.get(start..).unwrap_or(&[]);
    while b.len() >= 5 {
        let len = usize::from(u16::from_be_bytes([b[3], b[4]]));
        if !(20..=24).contains(&b[0]) || b[1] != 3 {
            return (before_ccs.unwrap_or(out.len()), false);
        }
        let Some(body) = b.get(5..5 + len) else {
            return (before_ccs.unwrap_or(out.len()), true);
        };
        match b[0] {
            content::HANDSHAKE => out.extend_from_slice(body),
            content::CHANGE_CIPHER_SPEC => {
                before_ccs.get_or_insert(out.len());
            }
            content::APPLICATION_DATA => break,
            _ => {}
        }
        b = &b[5 + len..];
    }
    (
        before_ccs.unwrap_or(out.len()),
        !b.is_empty() && b.len() < 5,
    )
}

fn alpn_string(p: &[u8]) -> String {
    match std::str::from_utf8(p) {
        Ok(s) if s.chars().all(|c| !c.is_control()) => s.to_string(),
        _ => format!(
            "0x{}",
            p.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

/// Every field a ClientHello decides, with the rest empty: the common base of the facts of a
/// TLS flow and of a QUIC flow. GREASE values are left out of lists and counts.
fn client_hello_facts(
    ch: Option<&ClientHello>,
    quic: bool,
    ja4_cache: &mut ja4::Ja4Cache,
) -> TlsFacts {
    fn named(list: &[u16], name: impl Fn(u16) -> Name) -> Vec<Name> {
        let mut out = Vec::with_capacity(list.len());
        out.extend(
            list.iter()
                .filter(|v| !handshake::is_grease(**v))
                .map(|v| name(*v)),
        );
        out
    }
    let not_grease = |v: &&u16| !handshake::is_grease(**v);
    let versions_offered = match ch {
        Some(c)
            if c.supported_versions
                .iter()
                .any(|v| !handshake::is_grease(*v)) =>
        {
            named(&c.supported_versions, names::version)
        }
        Some(c) => vec![names::version(c.legacy_version)],
        None => Vec::new(),
    };
    TlsFacts {
        version: None,
        versions_offered,
        sni: ch.and_then(|c| c.sni.clone()),
        alpn_offered: ch
            .map(|c| c.alpn.iter().map(|p| alpn_string(p)).collect())
            .unwrap_or_default(),
        alpn_selected: None,
        cipher: None,
        cipher_id: None,
        hrr: false,
        client_cert_requested: None,
        client_cert: None,
        client_cert_inferred: None,
        client_cert_requested_inferred: None,
        inference_basis: None,
        certificates: Certificates::default(),
        alerts: Vec::new(),
        ja4: ch.filter(|c| !c.sslv2).map(|c| ja4_cache.get(c, quic)),
        outcome: Outcome::Incomplete,
        sslv2_hello: ch.is_some_and(|c| c.sslv2),
        prefix: None,
        groups_offered: ch
            .map(|c| named(&c.groups, names::group))
            .unwrap_or_default(),
        key_share_groups: ch
            .map(|c| named(&c.key_share_groups, names::group))
            .unwrap_or_default(),
        signature_algorithms_offered: ch.map_or(0, |c| {
            c.signature_algorithms.iter().filter(not_grease).count()
        }),
        client_legacy_version: ch.map(|c| names::version(c.legacy_version)),
        cipher_suites_offered: ch.map_or(0, |c| c.ciphers.iter().filter(not_grease).count()),
        handshake_truncated: false,
        records: crate::report::Directions::default(),
        resumed: false,
        psk_mode: None,
        psk_modes_offered: ch
            .map(|c| c.psk_modes.iter().map(|m| names::psk_mode(*m)).collect())
            .unwrap_or_default(),
        psk_offered: ch.is_some_and(|c| c.extensions.contains(&handshake::ext::PRE_SHARED_KEY)),
        resumed_from_flow: None,
        resumed_client_cert: None,
        sslv2_cipher_specs_offered: ch.map_or(0, |c| c.sslv2_specs),
    }
}

const MAX_MESSAGES: usize = 32;

/// Full handshakes remembered for the resumptions that may follow (oldest forgotten first).
pub const MAX_FULL_HANDSHAKES: usize = 4096;

/// The peers a session ticket is good between, as far as the wire shows them: the client's
/// address (not its port: every connection has a new one), the server's address and port, SNI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Peers {
    pub client: [u8; 16],
    pub server: [u8; 16],
    pub server_port: u16,
    pub sni: Option<String>,
}

/// TLS 1.3 full handshakes already reported, by peers: what each showed of the client
/// certificate, so a session resumed from it can say so (client authentication carries over
/// to every session resumed from a handshake, RFC 8446 §2.2). Bounded by
/// [`MAX_FULL_HANDSHAKES`] entries of about 100 bytes (plus the SNI).
#[derive(Debug, Default)]
pub struct FullHandshakes {
    map: std::collections::HashMap<Peers, (u64, ClientCert)>,
    order: std::collections::VecDeque<Peers>,
}

impl FullHandshakes {
    /// Notes a full handshake's result (true), or links a resumed session to the full
    /// handshake it came from (true when found). With `last_chance` a resumed session that
    /// finds none is said to come from a handshake not captured.
    pub fn link(
        &mut self,
        facts: &mut TlsFacts,
        peers: &Peers,
        flow_id: u64,
        last_chance: bool,
    ) -> bool {
        if facts.resumed {
            let Some(&(from, cert)) = self.map.get(peers) else {
                if last_chance {
                    append_basis(
                        facts,
                        "no earlier full handshake between these peers is in the capture: client authentication happened in a handshake not captured",
                    );
                }
                return false;
            };
            facts.resumed_from_flow = Some(from);
            facts.resumed_client_cert = Some(cert);
            let what = match cert {
                ClientCert::Presented => "a client certificate was presented",
                ClientCert::Empty => "the client sent an empty Certificate (none)",
                ClientCert::None | ClientCert::Hidden => "no client certificate was requested",
            };
            append_basis(
                facts,
                &format!(
                    "resumed from the full handshake of flow {from} between the same peers, in which {what}; that carries over to this session"
                ),
            );
            return true;
        }
        let cert = match (facts.client_cert, facts.client_cert_inferred) {
            (Some(ClientCert::Hidden), Some(c)) => c,
            (Some(c), _) if c != ClientCert::Hidden => c,
            _ => return false,
        };
        // Full handshakes of TLS 1.3 and 1.2 (whose sessions resume by ticket or session ID).
        if !matches!(facts.version.as_deref(), Some("1.3" | "1.2"))
            || facts.outcome != Outcome::Established
        {
            return false;
        }
        if self.map.insert(peers.clone(), (flow_id, cert)).is_none() {
            self.order.push_back(peers.clone());
            if self.order.len() > MAX_FULL_HANDSHAKES {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
        true
    }
}

/// A resumed session's record held back until its full handshake is reported.
#[derive(Debug)]
pub struct Held {
    pub rec: crate::report::FlowRecord,
    pub place: crate::policy::Place,
    pub peers: Peers,
}

fn append_basis(facts: &mut TlsFacts, more: &str) {
    match &mut facts.inference_basis {
        Some(b) => {
            b.push_str("; ");
            b.push_str(more);
        }
        None => facts.inference_basis = Some(more.to_string()),
    }
}

/// State kept across flows so repeated work is done once (see the caches' docs).
#[derive(Debug, Default)]
pub struct TlsCaches {
    pub ja4: ja4::Ja4Cache,
    pub certs: cert::CertCache,
    /// Earlier full handshakes, for the resumed sessions that follow them.
    pub full_handshakes: FullHandshakes,
    /// Resumed sessions waiting for their full handshake (`report::MAX_HELD` at most).
    pub held: Vec<Held>,
    /// Handshake bytes of the flow being analysed, reused from flow to flow.
    scratch: [Vec<u8>; 2],
}

/// Analyses a flow already classified as TLS.
pub fn analyze(
    client: DirectionInput<'_>,
    server: DirectionInput<'_>,
    close: Close,
    caches: &mut TlsCaches,
) -> TlsFacts {
    let c_start = client.walker.start.map_or(0, |s| s as usize);
    let s_start = server.walker.start.map_or(0, |s| s as usize);
    let TlsCaches {
        ja4: ja4_cache,
        certs: cert_cache,
        scratch,
        ..
    } = caches;
    let [c_hs, s_hs] = scratch;
    let (c_before_ccs, c_cut) = collect_handshake(client.kept, c_start, c_hs);
    let (s_before_ccs, s_cut) = collect_handshake(server.kept, s_start, s_hs);

    // Server first: the ServerHello decides whether handshake records after a CCS are cleartext.
    let s_first = Messages::from_bytes(&s_hs[..s_before_ccs], MAX_MESSAGES);
    let sh_first = s_first
        .first(msg::SERVER_HELLO)
        .and_then(handshake::parse_server_hello);
    let tls13 = sh_first
        .as_ref()
        .is_some_and(|sh| sh.version() == 0x0304 || sh.hrr);
    let s_msgs = if tls13 {
        Messages::from_bytes(s_hs, MAX_MESSAGES)
    } else {
        s_first
    };
    let c_msgs = Messages::from_bytes(
        if tls13 {
            &c_hs[..]
        } else {
            &c_hs[..c_before_ccs]
        },
        MAX_MESSAGES,
    );

    let mut server_hellos = s_msgs
        .iter()
        .filter(|(t, _)| *t == msg::SERVER_HELLO)
        .filter_map(|(_, b)| handshake::parse_server_hello(b));
    let first_sh = server_hellos.next();
    let hrr = first_sh.as_ref().is_some_and(|h| h.hrr);
    let sh = if hrr {
        server_hellos.find(|h| !h.hrr)
    } else {
        first_sh
    };
    let mut ch = c_msgs
        .iter()
        .find(|(t, _)| *t == msg::CLIENT_HELLO)
        .and_then(|(_, b)| handshake::parse_client_hello(b));
    // The SSLv2-format hello is at the stream's start, before the TLS records the walker
    // follows (or, when none followed, where the walker would have started).
    let hello_at = if client.walker.sslv2_hello.is_some() {
        0
    } else {
        c_start
    };
    if ch.is_none() {
        // Labelled through `ClientHello::sslv2` (no JA4 for it: docs/tls.md).
        ch = handshake::parse_sslv2_client_hello(client.kept.get(hello_at..).unwrap_or(&[]));
    }

    let version = sh.as_ref().map(ServerHello::version);
    let is13 = version == Some(0x0304) || (hrr && sh.is_none());
    let alpn_offered = ch.as_ref().is_some_and(|c| !c.alpn.is_empty());
    let alpn_selected = match &sh {
        None => None,
        Some(_) if !alpn_offered => None,
        Some(_) if is13 => Some("hidden".to_string()),
        Some(s) => s.alpn.as_deref().map(alpn_string),
    };
    let cipher_id = sh.as_ref().map(|s| s.cipher);

    // Client certificates (proven under TLS ≤ 1.2).
    let mut certificates = Certificates::default();
    // As far as the capture shows, like tshark's wire view: without a ServerHello nothing was
    // requested; `outcome` and `handshake_truncated` say when the capture stopped short.
    let (client_cert_requested, client_cert) = if ch.is_none() && sh.is_none() {
        // Nothing of the handshake was captured (a mid-stream flow, or cut by the snaplen).
        (None, None)
    } else if is13 {
        (Some(Requested::Hidden), Some(ClientCert::Hidden))
    } else {
        let requested = if s_msgs.has(msg::CERTIFICATE_REQUEST) {
            Requested::Yes
        } else {
            Requested::No
        };
        let presented = match c_msgs
            .first(msg::CERTIFICATE)
            .and_then(handshake::parse_certificate_list)
        {
            Some(list) if list.is_empty() => ClientCert::Empty,
            Some(list) => {
                certificates.client = list.iter().map(|d| cert_cache.describe(d)).collect();
                ClientCert::Presented
            }
            None => ClientCert::None,
        };
        (Some(requested), Some(presented))
    };
    if !is13 {
        if let Some(list) = s_msgs
            .first(msg::CERTIFICATE)
            .and_then(handshake::parse_certificate_list)
        {
            certificates.server = list.iter().map(|d| cert_cache.describe(d)).collect();
        }
    }

    // TLS ≤ 1.2 session resumption (RFC 5246 §7.3, RFC 5077 §3.1): the server goes from its
    // ServerHello (and maybe a NewSessionTicket) straight to ChangeCipherSpec. A full
    // handshake always has a Certificate or, for anonymous and PSK suites, a ServerHelloDone
    // before it. Envoy resumes TLS 1.2 upstream sessions this way (captures/mesh-*).
    let abbreviated = !is13
        && sh.is_some()
        && !s_msgs.truncated
        && !s_cut
        && !s_msgs.has(msg::CERTIFICATE)
        && !s_msgs.has(msg::SERVER_HELLO_DONE)
        && server
            .walker
            .events
            .iter()
            .any(|e| e.content_type == content::CHANGE_CIPHER_SPEC);

    let null_cipher = cipher_id.is_some_and(names::cipher_is_null);
    let mut alerts = Vec::new();
    for (side, w) in [(Side::Client, client.walker), (Side::Server, server.walker)] {
        for e in w
            .events
            .iter()
            .chain(&w.tail_alerts)
            .filter(|e| e.content_type == content::ALERT)
        {
            alerts.push(alert_of(side, e, null_cipher));
        }
    }

    let mut facts = TlsFacts {
        version: version.map(names::version),
        alpn_selected,
        cipher: cipher_id.and_then(names::cipher).map(Cow::Borrowed),
        cipher_id: cipher_id.map(|c| format!("0x{c:04x}")),
        hrr,
        client_cert_requested,
        client_cert,
        certificates,
        alerts,
        prefix: prefix_kind(client.kept, hello_at),
        handshake_truncated: c_msgs.truncated
            || s_msgs.truncated
            || (c_cut && ch.is_none())
            || (s_cut && sh.is_none()),
        records: crate::report::Directions {
            c2s: u64::from(client.walker.records),
            s2c: u64::from(server.walker.records),
        },
        resumed: (is13 && sh.as_ref().is_some_and(ServerHello::accepted_psk)) || abbreviated,
        psk_mode: sh
            .as_ref()
            .filter(|_| is13)
            .and_then(ServerHello::psk_mode)
            .map(Cow::Borrowed),
        ..client_hello_facts(ch.as_ref(), false, ja4_cache)
    };

    if abbreviated {
        facts.inference_basis = Some(
            "an abbreviated TLS 1.2 handshake (session resumption): the server went from ServerHello to ChangeCipherSpec with no Certificate, so no certificate crosses the wire either way; client authentication, if any, happened in the full handshake the session came from".to_string(),
        );
    }
    let fatal_in_clear = facts.alerts.iter().any(|a| a.level == AlertLevel::Fatal);
    let mut inferred_rejection = false;
    if is13 && !hrr_only(hrr, &sh) {
        if let Some(sh) = &sh {
            inferred_rejection = infer_tls13(
                &mut facts,
                client.walker,
                server.walker,
                sh.cipher,
                close,
                sh.psk_mode(),
            );
        }
    }
    facts.outcome = if fatal_in_clear || inferred_rejection {
        Outcome::Rejected
    } else if sh.is_some() && established(is13, client.walker, server.walker) {
        Outcome::Established
    } else {
        Outcome::Incomplete
    };
    facts
}

fn hrr_only(hrr: bool, sh: &Option<ServerHello>) -> bool {
    hrr && sh.is_none()
}

fn alert_of(from: Side, e: &RecordEvent, null_cipher: bool) -> Alert {
    let readable = e.len == 2 || (null_cipher && e.len > 2);
    if !readable {
        return Alert {
            from,
            level: AlertLevel::Encrypted,
            code: None,
            description: None,
            inferred: false,
            likely: None,
        };
    }
    let level = match e.head[0] {
        1 => AlertLevel::Warning,
        2 => AlertLevel::Fatal,
        _ => AlertLevel::Unknown,
    };
    Alert {
        from,
        level,
        code: Some(e.head[1]),
        description: names::alert(e.head[1]).map(str::to_string),
        inferred: false,
        likely: None,
    }
}

fn prefix_kind(kept: &[u8], start: usize) -> Option<String> {
    if start == 0 {
        return None;
    }
    let head = &kept[..start.min(kept.len())];
    let upper = String::from_utf8_lossy(head).to_ascii_uppercase();
    Some(
        if upper.starts_with("CONNECT ") {
            "http-connect"
        } else if upper.contains("STARTTLS") || upper.contains("STLS") || upper.contains("AUTH TLS")
        {
            "starttls"
        } else if head.starts_with(&[0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]) {
            "postgres"
        } else {
            "other"
        }
        .to_string(),
    )
}

/// Application data both ways after the handshake.
fn established(is13: bool, c: &RecordWalker, s: &RecordWalker) -> bool {
    if is13 {
        // Under TLS 1.3 every record after the ServerHello is "application data" on the wire:
        // require the client's second flight and something from the server after it.
        let first_client = c
            .events
            .iter()
            .find(|e| e.content_type == content::APPLICATION_DATA);
        match first_client {
            Some(fc) => s
                .events
                .iter()
                .any(|e| e.content_type == content::APPLICATION_DATA && e.order > fc.order),
            None => false,
        }
    } else {
        c.app_data_seen && s.app_data_seen
    }
}

/// An encrypted alert record: 2 bytes + the inner content type + a 16-byte AEAD tag.
const ALERT_RECORD: usize = 19;
/// A lone server record at most this long, then close, is an alert: 19 bytes, or 35 with the
/// 16 bytes of padding JSSE adds to every TLS 1.3 record; a NewSessionTicket is longer.
const MAX_ALERT_RECORD: u16 = 40;

/// TLS 1.3: infers the client certificate from the client's second flight, and a rejection from
/// a lone short server record followed by close. Returns true for an inferred rejection.
///
/// The basis is what RFC 8446 §4.4.2 makes every stack send: a client that received a
/// CertificateRequest MUST answer with a Certificate (empty when it has none) before its
/// Finished, plus a CertificateVerify when the Certificate is not empty. Stacks differ only in
/// record packing (OpenSSL, GnuTLS, Go, JSSE: a record per message; BoringSSL, NSS, rustls: one
/// record) and padding (JSSE: 16 bytes per record), so the first record of the flight is either
/// a Finished alone (no request), smaller than a Finished (an empty Certificate alone), a
/// Finished + 8 (empty Certificate and Finished packed) or large (a certificate chain). With
/// `psk` (a resumed session, RFC 8446 §4.3.2: no CertificateRequest under a PSK) nothing is
/// inferred about the certificate.
fn infer_tls13(
    facts: &mut TlsFacts,
    c: &RecordWalker,
    s: &RecordWalker,
    cipher: u16,
    close: Close,
    psk: Option<&str>,
) -> bool {
    let finished = names::tls13_hash_len(cipher) + 4 + 17;
    let client_enc: Vec<&RecordEvent> = c
        .events
        .iter()
        .filter(|e| e.content_type == content::APPLICATION_DATA)
        .collect();
    // Client records sent before the server's first encrypted record are 0-RTT early data; the
    // second flight comes after the server's flight.
    let server_first = s
        .events
        .iter()
        .find(|e| e.content_type == content::APPLICATION_DATA)
        .map(|e| e.order);
    let early = server_first.map_or(0, |sf| {
        client_enc.iter().take_while(|e| e.order <= sf).count()
    });
    let flight_records: Vec<&RecordEvent> = client_enc.into_iter().skip(early).collect();
    let Some(first) = flight_records.first() else {
        facts.inference_basis = Some("no encrypted client flight was captured".into());
        return false;
    };
    // The flight: client records before the server speaks again.
    let server_after: Vec<&RecordEvent> = s
        .events
        .iter()
        .filter(|e| e.order > first.order && e.content_type != content::CHANGE_CIPHER_SPEC)
        .collect();
    let next_server = server_after.first().map_or(u32::MAX, |e| e.order);
    let mut flight: Vec<usize> = flight_records
        .iter()
        .filter(|e| e.order < next_server)
        .map(|e| usize::from(e.len))
        .collect();
    // After early data the flight starts with EndOfEarlyData (4 bytes + type + 16-byte tag).
    let eoed = early > 0 && flight.len() > 1 && flight[0] == 21;
    if eoed {
        flight.remove(0);
    }
    let r0 = flight[0];
    let sizes = flight
        .iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let early_note = if early > 0 {
        format!("after {early} record(s) of 0-RTT early data, ")
    } else {
        String::new()
    };
    let (inferred, basis) = if let Some(mode) = psk {
        (
            None,
            format!(
                "{early_note}a resumed session: the ServerHello accepted a pre_shared_key ({mode}), so no certificate crosses the wire and the server may not request one (RFC 8446 §4.3.2); client authentication, if any, happened in the full handshake the session came from (records: {sizes})"
            ),
        )
    } else if r0 == finished {
        (
            Some(ClientCert::None),
            format!(
                "{early_note}the client's second flight starts with a {r0}-byte record, the size of a Finished alone: no Certificate, so none was requested (records: {sizes})"
            ),
        )
    } else if r0 > ALERT_RECORD && r0 < finished {
        (
            Some(ClientCert::Empty),
            format!(
                "{early_note}the client's second flight starts with a {r0}-byte record, smaller than a Finished ({finished}): a Certificate with no entries in a record of its own (25 bytes; 41 with JSSE's record padding) (records: {sizes})"
            ),
        )
    } else if r0 == finished + 8 {
        (
            Some(ClientCert::Empty),
            format!(
                "{early_note}the client's second flight starts with a {r0}-byte record, a Finished + 8: a Certificate with no entries and the Finished in one record (records: {sizes})"
            ),
        )
    } else if r0 == ALERT_RECORD {
        (
            None,
            format!(
                "{early_note}the client's second flight starts with a {r0}-byte record, an alert's size: the client gave up on the handshake (records: {sizes})"
            ),
        )
    } else if r0 >= 200 {
        (
            Some(ClientCert::Presented),
            format!(
                "{early_note}the client's second flight starts with a {r0}-byte record, large enough for a Certificate with a chain (records: {sizes})"
            ),
        )
    } else if r0 > finished {
        (
            Some(ClientCert::None),
            format!(
                "{early_note}the client's second flight starts with a {r0}-byte record: a Finished ({finished}) with a small message that is not a Certificate (such as Chrome's ALPS EncryptedExtensions); lower confidence (records: {sizes})"
            ),
        )
    } else {
        (
            None,
            format!(
                "{early_note}the client's second flight ({sizes} bytes) matches no known pattern"
            ),
        )
    };
    facts.client_cert_inferred = inferred;
    facts.client_cert_requested_inferred = match inferred {
        Some(ClientCert::Presented | ClientCert::Empty) => Some(Requested::Yes),
        Some(ClientCert::None) => Some(Requested::No),
        _ => None,
    };
    let closed = close != Close::Open;
    let lone_short = server_after.len() == 1 && server_after[0].len <= MAX_ALERT_RECORD;
    let rejected = closed && (lone_short || (server_after.is_empty() && close == Close::Rst));
    let mut basis = basis;
    if rejected {
        let what = if lone_short {
            format!(
                "a single {}-byte encrypted server record (an alert's size) and then {}",
                server_after[0].len,
                if close == Close::Rst {
                    "a reset"
                } else {
                    "close"
                }
            )
        } else {
            "a reset from the server".to_string()
        };
        basis.push_str(&format!(
            "; the server answered it with {what}: the handshake was rejected"
        ));
        facts.alerts.push(Alert {
            from: Side::Server,
            level: AlertLevel::Encrypted,
            code: None,
            description: None,
            inferred: true,
            likely: (inferred == Some(ClientCert::Empty))
                .then(|| "certificate_required".to_string()),
        });
    }
    facts.inference_basis = Some(basis);
    rejected
}

/// TLS facts of a QUIC connection: what its decrypted Initial ClientHello offers. The server's
/// side (version, cipher, certificates) is in Handshake packets, out of reach: null or hidden.
pub fn quic_facts(
    initials: &quic::QuicInitials,
    established: bool,
    caches: &mut TlsCaches,
) -> TlsFacts {
    let ch = initials.client_hello();
    let base = client_hello_facts(ch.as_ref(), true, &mut caches.ja4);
    TlsFacts {
        version: established.then_some(Cow::Borrowed("1.3")),
        alpn_selected: (!base.alpn_offered.is_empty()).then(|| "hidden".to_string()),
        client_cert_requested: Some(Requested::Hidden),
        client_cert: Some(ClientCert::Hidden),
        outcome: if established {
            Outcome::Established
        } else {
            Outcome::Incomplete
        },
        // CRYPTO bytes past the per-flow cap were dropped (counted, never kept): say so.
        handshake_truncated: (ch.is_none() && initials.decrypted > 0)
            || initials.crypto_dropped > 0,
        ..base
    }
}
