//! The flow record's JSON, written by hand for speed. The serde derives in `schema.rs` (and
//! `tls/`) stay the schema: `tests` below require this writer's output to be byte-for-byte what
//! `serde_json::to_writer` produces for the same record, on every sample capture and on strings
//! that need escaping, so the two cannot drift apart.
//!
//! Why: serde_json escapes every key of every record; on the benchmark that was 13 instructions
//! per output byte and a quarter of the whole run (callgrind), for ~75 constant keys per flow.

use super::schema::{ClientBy, Directions, FlowRecord, TcpEnd, TcpStart, Transport};
use crate::tls::{Alert, AlertLevel, ClientCert, Outcome, Requested, Side, TlsFacts};

/// True when no byte needs escaping. Eight bytes at a time: a set high bit in `lt` marks a byte
/// below 0x20 (or, harmlessly, a false alarm that sends the string to the exact slow path);
/// `quote`/`slash` mark bytes equal to '"' and '\\'.
fn clean(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let dirty = |c: &[u8]| {
        let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        let lt = v.wrapping_sub(0x20 * ONES) & !v & HIGH;
        lt | has_zero(v ^ (b'"' as u64 * ONES)) | has_zero(v ^ (b'\\' as u64 * ONES)) != 0
    };
    if bytes.len() < 8 {
        return bytes.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\');
    }
    let mut chunks = bytes.chunks_exact(8);
    if chunks.any(dirty) {
        return false;
    }
    // The tail as the last eight bytes (overlapping the checked ones): no byte loop.
    chunks.remainder().is_empty() || !dirty(&bytes[bytes.len() - 8..])
}

/// Appends `value` as a JSON string, escaped exactly as serde_json does.
pub fn push_str(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    let bytes = value.as_bytes();
    if clean(bytes) {
        out.extend_from_slice(bytes);
    } else {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut start = 0;
        for (i, &b) in bytes.iter().enumerate() {
            let esc: &[u8] = match b {
                b'"' => b"\\\"",
                b'\\' => b"\\\\",
                0x08 => b"\\b",
                0x0c => b"\\f",
                b'\n' => b"\\n",
                b'\r' => b"\\r",
                b'\t' => b"\\t",
                0..=0x1f => b"",
                _ => continue,
            };
            out.extend_from_slice(&bytes[start..i]);
            if esc.is_empty() {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
            } else {
                out.extend_from_slice(esc);
            }
            start = i + 1;
        }
        out.extend_from_slice(&bytes[start..]);
    }
    out.push(b'"');
}

#[inline]
fn push_u64(out: &mut Vec<u8>, v: u64) {
    // Most numbers in a record are small counters: no buffer, no copy call.
    if v < 10 {
        out.push(b'0' + v as u8);
        return;
    }
    if v < 100 {
        out.extend_from_slice(&[b'0' + (v / 10) as u8, b'0' + (v % 10) as u8]);
        return;
    }
    let (buf, start) = super::decimal(v);
    out.extend_from_slice(&buf[start..]);
}

fn push_f64(out: &mut Vec<u8>, v: f64) {
    // Two per record: let serde_json format them, so the digits are exactly its own.
    let _ = serde_json::to_writer(&mut *out, &v);
}

/// `k!("name")` is the constant `"name":` (keys never need escaping).
macro_rules! k {
    ($name:literal) => {
        concat!("\"", $name, "\":")
    };
}

/// Writes `{"k":v,...}`; keys are constants from this file (never need escaping).
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }
    /// `k` is a key already quoted with its colon (see `k!`).
    #[inline(always)]
    fn key(&mut self, k: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.extend_from_slice(k.as_bytes());
        self.out
    }
    #[inline(always)]
    fn str(&mut self, k: &str, v: &str) {
        let out = self.key(k);
        push_str(out, v);
    }
    #[inline(always)]
    fn opt_str(&mut self, k: &str, v: Option<&str>) {
        match v {
            Some(s) => self.str(k, s),
            None => self.key(k).extend_from_slice(b"null"),
        }
    }
    #[inline(always)]
    fn num(&mut self, k: &str, v: u64) {
        let out = self.key(k);
        push_u64(out, v);
    }
    #[inline(always)]
    fn opt_num(&mut self, k: &str, v: Option<u64>) {
        match v {
            Some(n) => self.num(k, n),
            None => self.key(k).extend_from_slice(b"null"),
        }
    }
    fn float(&mut self, k: &str, v: f64) {
        let out = self.key(k);
        push_f64(out, v);
    }
    #[inline(always)]
    fn bool(&mut self, k: &str, v: bool) {
        self.key(k)
            .extend_from_slice(if v { b"true" } else { b"false" });
    }
    fn strs<S: AsRef<str>>(&mut self, k: &str, v: &[S]) {
        let out = self.key(k);
        out.push(b'[');
        for (i, s) in v.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            push_str(out, s.as_ref());
        }
        out.push(b']');
    }
    #[inline(always)]
    fn directions(&mut self, k: &str, d: &Directions) {
        let out = self.key(k);
        let mut o = Obj::new(out);
        o.num(k!("c2s"), d.c2s);
        o.num(k!("s2c"), d.s2c);
        o.end();
    }
    fn end(self) {
        self.out.push(b'}');
    }
}

fn requested(v: Requested) -> &'static str {
    match v {
        Requested::Yes => "yes",
        Requested::No => "no",
        Requested::Hidden => "hidden",
    }
}

fn client_cert(v: ClientCert) -> &'static str {
    match v {
        ClientCert::Presented => "presented",
        ClientCert::Empty => "empty",
        ClientCert::None => "none",
        ClientCert::Hidden => "hidden",
    }
}

fn alert(out: &mut Vec<u8>, a: &Alert) {
    let mut o = Obj::new(out);
    o.str(
        k!("from"),
        if a.from == Side::Client {
            "client"
        } else {
            "server"
        },
    );
    o.str(
        k!("level"),
        match a.level {
            AlertLevel::Warning => "warning",
            AlertLevel::Fatal => "fatal",
            AlertLevel::Encrypted => "encrypted",
            AlertLevel::Unknown => "unknown",
        },
    );
    o.opt_num(k!("code"), a.code.map(u64::from));
    o.opt_str(k!("description"), a.description.as_deref());
    o.bool(k!("inferred"), a.inferred);
    o.opt_str(k!("likely"), a.likely.as_deref());
    o.end();
}

fn tls(out: &mut Vec<u8>, t: &TlsFacts) {
    let mut o = Obj::new(out);
    o.opt_str(k!("version"), t.version.as_deref());
    o.strs(k!("versions_offered"), &t.versions_offered);
    o.opt_str(k!("sni"), t.sni.as_deref());
    o.strs(k!("alpn_offered"), &t.alpn_offered);
    o.opt_str(k!("alpn_selected"), t.alpn_selected.as_deref());
    o.opt_str(k!("cipher"), t.cipher.as_deref());
    o.opt_str(k!("cipher_id"), t.cipher_id.as_deref());
    o.bool(k!("hrr"), t.hrr);
    o.opt_str(
        k!("client_cert_requested"),
        t.client_cert_requested.map(requested),
    );
    o.opt_str(k!("client_cert"), t.client_cert.map(client_cert));
    o.opt_str(
        k!("client_cert_inferred"),
        t.client_cert_inferred.map(client_cert),
    );
    o.opt_str(
        k!("client_cert_requested_inferred"),
        t.client_cert_requested_inferred.map(requested),
    );
    o.opt_str(k!("inference_basis"), t.inference_basis.as_deref());
    {
        let out = o.key(k!("certificates"));
        let mut c = Obj::new(out);
        for (k, list) in [
            (k!("server"), &t.certificates.server),
            (k!("client"), &t.certificates.client),
        ] {
            let out = c.key(k);
            out.push(b'[');
            for (i, cert) in list.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(cert.json().as_bytes());
            }
            out.push(b']');
        }
        c.end();
    }
    {
        let out = o.key(k!("alerts"));
        out.push(b'[');
        for (i, a) in t.alerts.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            alert(out, a);
        }
        out.push(b']');
    }
    o.opt_str(k!("ja4"), t.ja4.as_deref());
    o.str(
        k!("outcome"),
        match t.outcome {
            Outcome::Established => "established",
            Outcome::Rejected => "rejected",
            Outcome::Incomplete => "incomplete",
        },
    );
    o.bool(k!("sslv2_hello"), t.sslv2_hello);
    o.opt_str(k!("prefix"), t.prefix.as_deref());
    o.strs(k!("groups_offered"), &t.groups_offered);
    o.strs(k!("key_share_groups"), &t.key_share_groups);
    o.num(
        k!("signature_algorithms_offered"),
        t.signature_algorithms_offered as u64,
    );
    o.opt_str(
        k!("client_legacy_version"),
        t.client_legacy_version.as_deref(),
    );
    o.num(k!("cipher_suites_offered"), t.cipher_suites_offered as u64);
    o.bool(k!("handshake_truncated"), t.handshake_truncated);
    o.directions(k!("records"), &t.records);
    o.bool(k!("resumed"), t.resumed);
    o.opt_str(k!("psk_mode"), t.psk_mode.as_deref());
    o.strs(k!("psk_modes_offered"), &t.psk_modes_offered);
    o.bool(k!("psk_offered"), t.psk_offered);
    o.opt_num(k!("resumed_from_flow"), t.resumed_from_flow);
    o.opt_str(
        k!("resumed_client_cert"),
        t.resumed_client_cert.map(client_cert),
    );
    o.num(
        k!("sslv2_cipher_specs_offered"),
        t.sslv2_cipher_specs_offered as u64,
    );
    o.end();
}

fn http(out: &mut Vec<u8>, h: &crate::http::HttpFacts) {
    let mut o = Obj::new(out);
    {
        let out = o.key(k!("requests"));
        out.push(b'[');
        for (i, r) in h.requests.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let mut q = Obj::new(out);
            q.str(k!("method"), &r.method);
            q.opt_str(k!("host"), r.host.as_deref());
            q.str(k!("path"), &r.path);
            q.str(k!("version"), &r.version);
            q.strs(k!("sensitive"), &r.sensitive);
            q.strs(k!("evidence"), &r.evidence);
            q.end();
        }
        out.push(b']');
    }
    {
        let out = o.key(k!("responses"));
        out.push(b'[');
        for (i, r) in h.responses.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let mut q = Obj::new(out);
            q.num(k!("status"), u64::from(r.status));
            q.strs(k!("sensitive"), &r.sensitive);
            q.strs(k!("evidence"), &r.evidence);
            q.end();
        }
        out.push(b']');
    }
    o.num(k!("request_count"), h.request_count);
    o.num(k!("response_count"), h.response_count);
    o.bool(k!("incomplete"), h.incomplete);
    o.num(k!("truncated"), h.truncated);
    o.strs(k!("unlisted_sensitive"), &h.unlisted_sensitive);
    o.strs(k!("unlisted_evidence"), &h.unlisted_evidence);
    o.bool(k!("h2"), h.h2);
    o.bool(k!("grpc"), h.grpc);
    o.end();
}

fn cleartext(out: &mut Vec<u8>, c: &crate::classify::cleartext::Cleartext) {
    let mut o = Obj::new(out);
    o.opt_str(k!("app"), c.app.as_deref());
    o.str(k!("payload"), &c.payload);
    o.strs(k!("sensitive"), &c.sensitive);
    o.strs(k!("evidence"), &c.evidence);
    o.end();
}

fn verdict(out: &mut Vec<u8>, v: &crate::policy::Verdict) {
    let mut o = Obj::new(out);
    o.str(k!("kind"), v.kind.name());
    o.str(k!("reason"), &v.reason);
    let out = o.key(k!("findings"));
    out.push(b'[');
    for (i, f) in v.findings.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let mut q = Obj::new(out);
        q.str(k!("rule"), &f.rule);
        q.str(k!("severity"), f.severity.name());
        q.str(k!("evidence"), &f.evidence);
        q.end();
    }
    out.push(b']');
    o.end();
}

/// Appends the record's JSON object (no newline).
pub fn flow(out: &mut Vec<u8>, r: &FlowRecord) {
    let mut o = Obj::new(out);
    o.str(k!("type"), &r.kind);
    o.num(k!("id"), r.id);
    o.str(k!("client"), &r.client);
    o.str(k!("server"), &r.server);
    o.opt_str(k!("interface"), r.interface.as_deref());
    o.opt_num(k!("ifindex"), r.ifindex.map(u64::from));
    o.bool(k!("link_loopback"), r.link_loopback);
    o.float(k!("first_ts"), r.first_ts);
    o.float(k!("last_ts"), r.last_ts);
    o.directions(k!("packets"), &r.packets);
    o.directions(k!("bytes"), &r.bytes);
    o.str(
        k!("transport"),
        if r.transport == Transport::Tcp {
            "tcp"
        } else {
            "udp"
        },
    );
    if let Some(tcp) = &r.tcp {
        let out = o.key(k!("tcp"));
        let mut t = Obj::new(out);
        t.str(
            k!("start"),
            if tcp.start == TcpStart::Syn {
                "syn"
            } else {
                "midstream"
            },
        );
        t.str(
            k!("end"),
            match tcp.end {
                TcpEnd::Fin => "fin",
                TcpEnd::Rst => "rst",
                TcpEnd::Idle => "idle",
                TcpEnd::Eof => "eof",
            },
        );
        t.num(k!("gaps"), u64::from(tcp.gaps));
        t.num(k!("retransmits"), u64::from(tcp.retransmits));
        t.num(k!("out_of_order"), u64::from(tcp.out_of_order));
        t.num(k!("snaplen_cut"), u64::from(tcp.snaplen_cut));
        t.num(
            k!("out_of_order_dropped"),
            u64::from(tcp.out_of_order_dropped),
        );
        t.bool(k!("evicted"), tcp.evicted);
        t.str(
            k!("client_by"),
            match tcp.client_by {
                ClientBy::Syn => "syn",
                ClientBy::Content => "content",
                ClientBy::Port => "port",
            },
        );
        t.end();
    } else {
        o.key(k!("tcp")).extend_from_slice(b"null");
    }
    o.str(k!("protocol"), r.protocol.name());
    match &r.tls {
        Some(t) => tls(o.key(k!("tls")), t),
        None => o.key(k!("tls")).extend_from_slice(b"null"),
    }
    match &r.http {
        Some(h) => http(o.key(k!("http")), h),
        None => o.key(k!("http")).extend_from_slice(b"null"),
    }
    match &r.cleartext {
        Some(c) => cleartext(o.key(k!("cleartext")), c),
        None => o.key(k!("cleartext")).extend_from_slice(b"null"),
    }
    o.bool(k!("loopback"), r.loopback);
    match &r.verdict {
        Some(v) => verdict(o.key(k!("verdict")), v),
        None => o.key(k!("verdict")).extend_from_slice(b"null"),
    }
    o.str(k!("file"), &r.file);
    o.end();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_exactly_like_serde_json() {
        let mut cases: Vec<String> = [
            "plain",
            "",
            "quote\"back\\slash",
            "ctl\u{1}\u{1f}\u{7f}",
            "tab\tnl\ncr\rbs\u{8}ff\u{c}",
            "ünïcødé ☃",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // Every byte value that can start a char, at every position of an 8-byte block.
        for b in (0u8..0x80).chain([0xc3]) {
            for pos in 0..9 {
                let mut v = vec![b'a'; 9];
                v[pos] = b;
                if b == 0xc3 {
                    v.insert(pos + 1, 0xa9); // "é"
                }
                cases.push(String::from_utf8(v).unwrap());
            }
        }
        for s in &cases {
            let s = s.as_str();
            let mut ours = Vec::new();
            push_str(&mut ours, s);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(s).unwrap(),
                "{s:?}"
            );
        }
    }
}
