//! Handshake messages in clear: ClientHello (incl. the SSLv2 compatibility form), ServerHello
//! (HelloRetryRequest by its magic random), Certificate (TLS ≤ 1.2), CertificateRequest,
//! ServerHelloDone, ClientKeyExchange. Messages are reassembled across records and may share a
//! record. Every read is bounds-checked through [`Reader`]; a message that does not parse is
//! skipped, never trusted.

/// A cursor over bytes whose every read can fail (`None`) instead of panicking.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a>(pub &'a [u8]);

impl<'a> Reader<'a> {
    pub fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    pub fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }
    pub fn u24(&mut self) -> Option<usize> {
        let b = self.take(3)?;
        Some((usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]))
    }
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }
    pub fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u8()?);
        self.take(n)
    }
    pub fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
    pub fn vec24(&mut self) -> Option<&'a [u8]> {
        let n = self.u24()?;
        self.take(n)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Handshake message types (RFC 8446 §4, RFC 5246 §7.4).
pub mod msg {
    pub const CLIENT_HELLO: u8 = 1;
    pub const SERVER_HELLO: u8 = 2;
    pub const CERTIFICATE: u8 = 11;
    pub const SERVER_KEY_EXCHANGE: u8 = 12;
    pub const CERTIFICATE_REQUEST: u8 = 13;
    pub const SERVER_HELLO_DONE: u8 = 14;
    pub const CLIENT_KEY_EXCHANGE: u8 = 16;
}

/// Extension numbers we read (IANA "TLS ExtensionType Values").
pub mod ext {
    pub const SERVER_NAME: u16 = 0;
    pub const SUPPORTED_GROUPS: u16 = 10;
    pub const SIGNATURE_ALGORITHMS: u16 = 13;
    pub const ALPN: u16 = 16;
    pub const PRE_SHARED_KEY: u16 = 41;
    pub const SUPPORTED_VERSIONS: u16 = 43;
    pub const PSK_KEY_EXCHANGE_MODES: u16 = 45;
    pub const KEY_SHARE: u16 = 51;
    pub const ENCRYPTED_CLIENT_HELLO: u16 = 0xfe0d;
}

/// RFC 8701 GREASE values: 0x?a?a with both bytes equal.
pub fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// SHA-256("HelloRetryRequest"), the ServerHello random that marks an HRR (RFC 8446 §4.1.3).
const HRR_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// What a ClientHello offers. Lists keep wire order and GREASE values (JA4 needs the order;
/// the report filters GREASE).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHello {
    pub legacy_version: u16,
    pub ciphers: Vec<u16>,
    pub extensions: Vec<u16>,
    pub sni: Option<String>,
    pub alpn: Vec<Vec<u8>>,
    pub supported_versions: Vec<u16>,
    pub groups: Vec<u16>,
    pub key_share_groups: Vec<u16>,
    pub signature_algorithms: Vec<u16>,
    /// psk_key_exchange_modes (RFC 8446 §4.2.9): 0 psk_ke, 1 psk_dhe_ke.
    pub psk_modes: Vec<u8>,
    /// The SSLv2 compatibility form (RFC 6101 appendix E.2); `ciphers` holds its TLS suites.
    pub sslv2: bool,
    /// SSLv2 form: every cipher spec (3 bytes each), SSLv2 kinds included.
    pub sslv2_specs: usize,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerHello {
    pub legacy_version: u16,
    pub cipher: u16,
    pub hrr: bool,
    pub selected_version: Option<u16>,
    pub alpn: Option<Vec<u8>>,
    pub extensions: Vec<u16>,
}

impl ServerHello {
    pub fn version(&self) -> u16 {
        self.selected_version.unwrap_or(self.legacy_version)
    }
    /// TLS 1.3: the server accepted one of the client's PSKs (a resumption ticket or an
    /// external key), so neither side sends a Certificate (RFC 8446 §2.2, §4.2.11).
    pub fn accepted_psk(&self) -> bool {
        self.extensions.contains(&ext::PRE_SHARED_KEY)
    }
    /// With a PSK: psk_dhe_ke when the server also sent a key_share, psk_ke when not.
    pub fn psk_mode(&self) -> Option<&'static str> {
        self.accepted_psk().then(|| {
            if self.extensions.contains(&ext::KEY_SHARE) {
                "psk_dhe_ke"
            } else {
                "psk_ke"
            }
        })
    }
}

pub fn parse_client_hello(body: &[u8]) -> Option<ClientHello> {
    let mut r = Reader(body);
    let mut ch = ClientHello {
        legacy_version: r.u16()?,
        ..ClientHello::default()
    };
    r.take(32)?; // random
    r.vec8()?; // session id
    let mut ciphers = Reader(r.vec16()?);
    ch.ciphers.reserve(ciphers.0.len() / 2);
    while let Some(c) = ciphers.u16() {
        ch.ciphers.push(c);
    }
    r.vec8()?; // compression methods
    if r.is_empty() {
        return Some(ch); // no extensions (SSL 3.0 style)
    }
    let mut exts = Reader(r.vec16()?);
    ch.extensions.reserve(24);
    while !exts.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        ch.extensions.push(kind);
        let mut d = Reader(data);
        match kind {
            ext::SERVER_NAME => {
                let mut list = Reader(d.vec16().unwrap_or(&[]));
                while !list.is_empty() {
                    let (Some(t), Some(name)) = (list.u8(), list.vec16()) else {
                        break;
                    };
                    if t == 0 && ch.sni.is_none() {
                        ch.sni = Some(String::from_utf8_lossy(name).into_owned());
                    }
                }
            }
            ext::ALPN => {
                let mut list = Reader(d.vec16().unwrap_or(&[]));
                ch.alpn.reserve(3);
                while let Some(p) = list.vec8() {
                    ch.alpn.push(p.to_vec());
                }
            }
            ext::SUPPORTED_VERSIONS => {
                let mut list = Reader(d.vec8().unwrap_or(&[]));
                ch.supported_versions.reserve(list.0.len() / 2);
                while let Some(v) = list.u16() {
                    ch.supported_versions.push(v);
                }
            }
            ext::SUPPORTED_GROUPS => {
                let mut list = Reader(d.vec16().unwrap_or(&[]));
                ch.groups.reserve(list.0.len() / 2);
                while let Some(g) = list.u16() {
                    ch.groups.push(g);
                }
            }
            ext::SIGNATURE_ALGORITHMS => {
                let mut list = Reader(d.vec16().unwrap_or(&[]));
                ch.signature_algorithms.reserve(list.0.len() / 2);
                while let Some(s) = list.u16() {
                    ch.signature_algorithms.push(s);
                }
            }
            ext::PSK_KEY_EXCHANGE_MODES => {
                ch.psk_modes = d.vec8().unwrap_or(&[]).to_vec();
            }
            ext::KEY_SHARE => {
                let mut list = Reader(d.vec16().unwrap_or(&[]));
                ch.key_share_groups.reserve(2);
                while let (Some(g), Some(_)) = (list.u16(), list.vec16()) {
                    ch.key_share_groups.push(g);
                }
            }
            _ => {}
        }
    }
    Some(ch)
}

/// The SSLv2 compatibility ClientHello (RFC 6101 appendix E.2, RFC 5246 appendix E.2): an
/// SSLv2 record header (2 bytes with the high bit set, or 3 with a padding length), then
/// [type 1][version(2)][cipher spec len(2)][session id len(2)][challenge len(2)]
/// [specs (3 bytes each)][session id][challenge].
pub fn parse_sslv2_client_hello(record: &[u8]) -> Option<ClientHello> {
    let total = crate::classify::tls::sslv2_client_hello_len(record)?;
    let head = if record[0] & 0x80 != 0 { 2 } else { 3 };
    let mut r = Reader(record.get(head..total.min(record.len()))?);
    if r.u8()? != 1 {
        return None;
    }
    let version = r.u16()?;
    let spec_len = usize::from(r.u16()?);
    r.u16()?;
    r.u16()?;
    let specs = r.take(spec_len.min(r.0.len()))?;
    // Only specs of the form 00 xx yy are TLS cipher suites; SSLv2 kinds are left out.
    let ciphers = specs
        .chunks_exact(3)
        .filter(|s| s[0] == 0)
        .map(|s| u16::from_be_bytes([s[1], s[2]]))
        .collect();
    Some(ClientHello {
        legacy_version: version,
        ciphers,
        sslv2: true,
        sslv2_specs: specs.len() / 3,
        ..ClientHello::default()
    })
}

pub fn parse_server_hello(body: &[u8]) -> Option<ServerHello> {
    let mut r = Reader(body);
    let legacy_version = r.u16()?;
    let random = r.take(32)?;
    r.vec8()?; // session id
    let cipher = r.u16()?;
    r.u8()?; // compression
    let mut sh = ServerHello {
        legacy_version,
        cipher,
        hrr: random == HRR_RANDOM,
        ..ServerHello::default()
    };
    if r.is_empty() {
        return Some(sh);
    }
    let mut exts = Reader(r.vec16()?);
    sh.extensions.reserve(8);
    while !exts.is_empty() {
        let kind = exts.u16()?;
        let data = exts.vec16()?;
        sh.extensions.push(kind);
        let mut d = Reader(data);
        match kind {
            ext::SUPPORTED_VERSIONS => sh.selected_version = d.u16(),
            ext::ALPN => {
                let mut list = Reader(d.vec16().unwrap_or(&[]));
                sh.alpn = list.vec8().map(<[u8]>::to_vec);
            }
            _ => {}
        }
    }
    Some(sh)
}

/// TLS ≤ 1.2 Certificate: a 24-bit list of 24-bit-length DER certificates.
pub fn parse_certificate_list(body: &[u8]) -> Option<Vec<&[u8]>> {
    let mut list = Reader(Reader(body).vec24()?);
    let mut certs = Vec::new();
    while !list.is_empty() {
        certs.push(list.vec24()?);
    }
    Some(certs)
}

/// One direction's cleartext handshake messages, reassembled from record bodies: the bytes
/// once, and each message as a range of them.
#[derive(Debug, Default)]
pub struct Messages<'a> {
    bytes: &'a [u8],
    /// (type, body range) in order.
    index: Vec<(u8, std::ops::Range<usize>)>,
    /// The last message was cut short (capture cap or loss).
    pub truncated: bool,
}

impl<'a> Messages<'a> {
    /// Splits concatenated handshake bytes into messages; at most `max` are kept.
    pub fn from_bytes(bytes: &'a [u8], max: usize) -> Messages<'a> {
        let mut m = Messages {
            bytes,
            ..Messages::default()
        };
        let mut at = 0;
        let b = m.bytes;
        m.index.reserve(8);
        while b.len() - at >= 4 && m.index.len() < max {
            let len = (usize::from(b[at + 1]) << 16)
                | (usize::from(b[at + 2]) << 8)
                | usize::from(b[at + 3]);
            if b.len() - at < 4 + len {
                m.truncated = true;
                break;
            }
            m.index.push((b[at], at + 4..at + 4 + len));
            at += 4 + len;
        }
        let rest = m.bytes.len() - at;
        if rest > 0 && rest < 4 {
            m.truncated = true;
        }
        m
    }

    pub fn iter(&self) -> impl Iterator<Item = (u8, &'a [u8])> + '_ {
        self.index.iter().map(|(t, r)| (*t, &self.bytes[r.clone()]))
    }

    pub fn first(&self, kind: u8) -> Option<&'a [u8]> {
        self.iter().find(|(t, _)| *t == kind).map(|(_, b)| b)
    }

    pub fn has(&self, kind: u8) -> bool {
        self.index.iter().any(|(t, _)| *t == kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grease_values() {
        assert!(is_grease(0x0a0a) && is_grease(0xfafa) && is_grease(0x3a3a));
        assert!(!is_grease(0x0a1a) && !is_grease(0x1301) && !is_grease(0x0000));
    }

    /// An SSLv2 CLIENT-HELLO body (RFC 6101 E.2) offering `version`: an SSLv2 kind, two TLS
    /// suites, no session id, a 16-byte challenge. Generated: no program sends the 3-byte
    /// header form for a hello (it exists for block-cipher padding), so both forms come from
    /// the same body.
    fn sslv2_body(version: [u8; 2]) -> Vec<u8> {
        let mut b = vec![1, version[0], version[1], 0, 9, 0, 0, 0, 16];
        b.extend_from_slice(&[0x07, 0x00, 0xc0, 0x00, 0x00, 0x2f, 0x00, 0x00, 0xff]);
        b.extend_from_slice(&[0x5a; 16]);
        b
    }

    #[test]
    fn sslv2_client_hello_in_both_header_forms() {
        let body = sslv2_body([3, 1]);
        let mut two = vec![0x80 | (body.len() >> 8) as u8, body.len() as u8];
        two.extend_from_slice(&body);
        // 3-byte form: 14-bit length (body + padding), then the padding length.
        let mut three = vec![0, (body.len() + 2) as u8, 2];
        three.extend_from_slice(&body);
        three.extend_from_slice(&[0, 0]);
        for (form, rec) in [("2-byte", &two), ("3-byte", &three)] {
            assert_eq!(
                crate::classify::tls::sslv2_client_hello_len(rec),
                Some(rec.len()),
                "{form}"
            );
            let ch = parse_sslv2_client_hello(rec).expect(form);
            assert_eq!(
                (ch.legacy_version, ch.ciphers, ch.sslv2, ch.sslv2_specs),
                (0x0301, vec![0x002f, 0x00ff], true, 3),
                "{form}"
            );
        }
        // Lengths that do not add up, or a TLS record, are not an SSLv2 hello.
        let mut bad = three.clone();
        bad[8] = 5; // cipher spec length not a multiple of 3
        assert!(crate::classify::tls::sslv2_client_hello_len(&bad).is_none());
        assert!(crate::classify::tls::sslv2_client_hello_len(&[22, 3, 1, 0, 40, 1, 0]).is_none());
        // The record walker steps over the hello and follows the TLS records after it.
        let mut stream = two.clone();
        stream.extend_from_slice(&[22, 3, 3, 0, 4, 16, 0, 0, 0]);
        let mut w = crate::tls::records::RecordWalker::default();
        w.feed(0, &stream, &stream, true, 1);
        assert_eq!(w.sslv2_hello, Some(two.len() as u32));
        assert_eq!(w.start, Some(two.len() as u32));
        assert_eq!(w.events.len(), 1);
    }

    #[test]
    fn truncated_messages_are_flagged_not_misread() {
        let m = Messages::from_bytes(&[1, 0, 0, 10, 3, 3], 8);
        assert!(m.iter().next().is_none() && m.truncated);
        let m = Messages::from_bytes(&[14, 0, 0, 0, 11, 0, 0, 3, 0, 0, 0], 8);
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            vec![(14, &[][..]), (11, &[0, 0, 0][..])]
        );
        assert!(parse_client_hello(&[3, 3, 0]).is_none());
        assert!(parse_certificate_list(&[0, 0, 5, 0, 0, 9, 1]).is_none());
    }
}
