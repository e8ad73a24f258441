//! Protocol by content, never by port: TLS (record and handshake headers, SSLv2 ClientHello),
//! HTTP/1.x (request or status line), h2c (prior-knowledge preface or `Upgrade: h2c` + 101),
//! `other` (payload that is none of these) and `empty` (no payload at all).
//!
//! Also decides who the client is when the capture missed the handshake: the side that sends a
//! ClientHello or an HTTP request, else the side that answers like a server, else by port.

pub mod cleartext;

use crate::flow::Flow;

/// Application protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tls,
    Http,
    H2c,
    Other,
    Empty,
    /// QUIC over UDP (its Initial packets decrypted for the ClientHello).
    Quic,
}

impl Protocol {
    pub const ALL: [Protocol; 6] = [
        Protocol::Tls,
        Protocol::Http,
        Protocol::H2c,
        Protocol::Other,
        Protocol::Empty,
        Protocol::Quic,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Tls => "tls",
            Protocol::Http => "http",
            Protocol::H2c => "h2c",
            Protocol::Other => "other",
            Protocol::Empty => "empty",
            Protocol::Quic => "quic",
        }
    }
}

/// How the client side was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientBasis {
    Syn,
    Content,
    Port,
}

/// Which side of `flow` (0 or 1) is the client, and on what basis.
pub fn orient(flow: &Flow) -> (usize, ClientBasis) {
    if let Some(s) = flow.syn_side {
        return (s, ClientBasis::Syn);
    }
    if let Some(s) = flow.synack_side {
        return (1 - s, ClientBasis::Syn);
    }
    let (a, b) = (&flow.dir[0].data[..], &flow.dir[1].data[..]);
    for (side, mine) in [(0, a), (1, b)] {
        if speaks_first_as_client(mine) {
            return (side, ClientBasis::Content);
        }
    }
    for (side, mine) in [(0, a), (1, b)] {
        if answers_as_server(mine) {
            return (1 - side, ClientBasis::Content);
        }
    }
    // The server is the side on the lower port; on a tie, the first sender is the client.
    let (p0, p1) = (flow.ends[0].1, flow.ends[1].1);
    (if p1 <= p0 { 0 } else { 1 }, ClientBasis::Port)
}

/// Classifies a flow from the first bytes each side sent.
pub fn classify(c2s: &[u8], s2c: &[u8], wire_bytes: u64) -> Protocol {
    if wire_bytes == 0 {
        return Protocol::Empty;
    }
    if tls::client_hello_start(c2s)
        || (c2s.is_empty() && tls::server_start(s2c))
        || (tls::records(c2s) && (s2c.is_empty() || tls::records(s2c)))
        || (c2s.is_empty() && tls::records(s2c))
    {
        return Protocol::Tls;
    }
    if c2s.starts_with(H2_PREFACE) || (c2s.len() >= 4 && H2_PREFACE.starts_with(c2s)) {
        return Protocol::H2c;
    }
    if let Some(req) = http::request_head(c2s) {
        if req.upgrade_h2c && s2c.starts_with(b"HTTP/1.1 101") {
            return Protocol::H2c;
        }
        if req.method == b"CONNECT" {
            // A proxy tunnel: once the proxy says 2xx, what follows is usually TLS.
            if let Some(rest) = c2s.get(req.head_len..) {
                if tls::client_hello_start(rest) {
                    return Protocol::Tls;
                }
            }
        }
        return Protocol::Http;
    }
    if http::is_request_start(c2s) || http::is_response_start(s2c) {
        return Protocol::Http;
    }
    Protocol::Other
}

/// The record walker found a ClientHello after a cleartext prefix (STARTTLS and the like).
pub fn tls_after_prefix(c2s: &[u8], walker: &crate::tls::records::RecordWalker) -> bool {
    match walker.start {
        Some(at) if at > 0 => c2s.get(at as usize..).is_some_and(tls::client_hello_start),
        _ => false,
    }
}

fn speaks_first_as_client(d: &[u8]) -> bool {
    tls::client_hello_start(d) || d.starts_with(H2_PREFACE) || http::is_request_start(d)
}

fn answers_as_server(d: &[u8]) -> bool {
    tls::server_start(d) || http::is_response_start(d)
}

/// HTTP/2 connection preface (RFC 9113 §3.4).
pub const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// TLS record-layer recognisers (the full parser lives with the TLS facts).
pub mod tls {
    const HANDSHAKE: u8 = 22;
    const ALERT: u8 = 21;
    /// RFC 8446 §5.1: 2^14 plus expansion; 2^14 + 2048 is the largest any version allows.
    const MAX_RECORD: usize = 16384 + 2048;

    fn record_header(d: &[u8]) -> Option<(u8, usize)> {
        let h = d.get(..5)?;
        if !(20..=24).contains(&h[0]) || h[1] != 3 || h[2] > 4 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
        (len > 0 && len <= MAX_RECORD).then_some((h[0], len))
    }

    /// A TLS ClientHello begins here (a prefix is enough: snaplen may have cut the rest),
    /// or an SSLv2-format ClientHello.
    pub fn client_hello_start(d: &[u8]) -> bool {
        if let Some((HANDSHAKE, len)) = record_header(d) {
            return match d.get(5) {
                Some(1) => len >= 4,
                Some(_) => false,
                None => true,
            };
        }
        sslv2_client_hello(d)
    }

    /// SSLv2 record header with CLIENT-HELLO (RFC 6101 appendix E.2 compatibility hello).
    pub fn sslv2_client_hello(d: &[u8]) -> bool {
        sslv2_client_hello_len(d).is_some()
    }

    /// The whole length (header included) of an SSLv2 CLIENT-HELLO record starting `d`: the
    /// 2-byte header (high bit set, 15-bit length) or the 3-byte one (high bit clear, 14-bit
    /// length, then a padding length, which a CLIENT-HELLO has no use for but may carry),
    /// MSG-CLIENT-HELLO (1), and version 0.2 (SSL 2.0) or 3.x.
    pub fn sslv2_client_hello_len(d: &[u8]) -> Option<usize> {
        let (len, head) = match *d.first()? {
            h0 if h0 & 0x80 != 0 => ((usize::from(h0 & 0x7f) << 8) | usize::from(*d.get(1)?), 2),
            // A 3-byte header; 0x14..0x17 would be a TLS record's content type, never this
            // (its length would be at least 0x1400 + 9, longer than a CLIENT-HELLO gets).
            h0 if h0 & 0x40 == 0 && h0 < 0x14 => {
                ((usize::from(h0 & 0x3f) << 8) | usize::from(*d.get(1)?), 3)
            }
            _ => return None,
        };
        let &[kind, major, minor] = d.get(head..head + 3)? else {
            return None;
        };
        let version_ok = (major, minor) == (0, 2) || (major == 3 && minor <= 4);
        if kind != 1 || !version_ok {
            return None;
        }
        // Body: type, version, three 2-byte lengths that must add up to the record's: cipher
        // specs (3 bytes each), session id (0 or 16), challenge (16..=32, RFC 6101 E.2).
        let l = d.get(head + 3..head + 9)?;
        let at = |i: usize| usize::from(u16::from_be_bytes([l[i], l[i + 1]]));
        let (specs, sid, challenge) = (at(0), at(2), at(4));
        let consistent = specs > 0
            && specs % 3 == 0
            && (sid == 0 || sid == 16)
            && (16..=32).contains(&challenge)
            && 9 + specs + sid + challenge <= len;
        consistent.then_some(head + len)
    }

    /// A server's first TLS bytes: a ServerHello, or an alert answering the ClientHello.
    pub fn server_start(d: &[u8]) -> bool {
        match record_header(d) {
            Some((HANDSHAKE, _)) => matches!(d.get(5), Some(2) | None),
            Some((ALERT, _)) => true,
            _ => false,
        }
    }

    /// The bytes are a sequence of well-formed TLS record headers (the last may be partial):
    /// how a flow captured mid-stream is still recognised as TLS.
    pub fn records(mut d: &[u8]) -> bool {
        let mut seen = 0;
        while !d.is_empty() {
            if d.len() < 5 {
                return seen > 0;
            }
            match record_header(d) {
                Some((_, len)) => {
                    seen += 1;
                    d = d.get(5 + len..).unwrap_or(&[]);
                }
                None => return false,
            }
        }
        seen > 0
    }
}

/// HTTP/1.x request and status line recognisers; the full parser comes with the HTTP facts.
pub mod http {
    const METHODS: [&[u8]; 25] = [
        b"GET",
        b"HEAD",
        b"POST",
        b"PUT",
        b"DELETE",
        b"CONNECT",
        b"OPTIONS",
        b"TRACE",
        b"PATCH",
        b"PROPFIND",
        b"PROPPATCH",
        b"MKCOL",
        b"COPY",
        b"MOVE",
        b"LOCK",
        b"UNLOCK",
        b"SEARCH",
        b"REPORT",
        b"MKCALENDAR",
        b"ACL",
        b"BIND",
        b"UNBIND",
        b"REBIND",
        b"PURGE",
        b"LINK",
    ];

    /// A request line starts here: a method token, a space, and a request target. When the line
    /// is complete it must end in ` HTTP/1.x`; an unknown method is accepted only then.
    pub fn is_request_start(d: &[u8]) -> bool {
        let Some(sp) = d.iter().take(21).position(|&b| b == b' ') else {
            return false;
        };
        let method = &d[..sp];
        if method.is_empty() || !method.iter().all(|b| b.is_ascii_uppercase() || *b == b'-') {
            return false;
        }
        let line_end = memchr::memchr(b'\n', &d[..d.len().min(16 * 1024)]);
        match line_end {
            Some(end) => {
                let line = d[..end].strip_suffix(b"\r").unwrap_or(&d[..end]);
                line.len() > sp + 9
                    && version_ok(&line[line.len() - 8..])
                    && line[line.len() - 9] == b' '
            }
            None => METHODS.contains(&method) && d.len() > sp + 1 && is_target_start(d[sp + 1]),
        }
    }

    fn is_target_start(b: u8) -> bool {
        b == b'/' || b == b'*' || b.is_ascii_alphanumeric()
    }

    fn version_ok(v: &[u8]) -> bool {
        v.len() == 8 && v.starts_with(b"HTTP/1.") && (v[7] == b'0' || v[7] == b'1')
    }

    /// A status line starts here: `HTTP/1.x NNN`.
    pub fn is_response_start(d: &[u8]) -> bool {
        d.len() >= 12
            && version_ok(&d[..8])
            && d[8] == b' '
            && d[9..12].iter().all(u8::is_ascii_digit)
    }

    /// What classification needs from a request head.
    #[derive(Debug)]
    pub struct RequestHead<'a> {
        pub method: &'a [u8],
        pub upgrade_h2c: bool,
        /// Bytes up to and including the blank line.
        pub head_len: usize,
    }

    /// The first request's head, if it is complete in `d`.
    pub fn request_head(d: &[u8]) -> Option<RequestHead<'_>> {
        if !is_request_start(d) {
            return None;
        }
        let sp = memchr::memchr(b' ', d)?;
        let end = find(d, b"\r\n\r\n")
            .map(|i| i + 4)
            .or_else(|| find(d, b"\n\n").map(|i| i + 2))?;
        let upgrade_h2c = header_lines(&d[..end]).any(|line| {
            strip_name(line, b"upgrade:")
                .is_some_and(|v| find(&v.to_ascii_lowercase(), b"h2c").is_some())
        });
        Some(RequestHead {
            method: &d[..sp],
            upgrade_h2c,
            head_len: end,
        })
    }

    /// The header lines of a message head (after the start line, up to the blank line).
    pub fn header_lines(head: &[u8]) -> impl Iterator<Item = &[u8]> {
        head.split(|&b| b == b'\n')
            .skip(1)
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .take_while(|l| !l.is_empty())
    }

    /// The value of a header line whose name (with the colon, lowercase) is `name`.
    pub fn strip_name<'a>(line: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
        let n = line.get(..name.len())?;
        n.eq_ignore_ascii_case(name).then(|| &line[name.len()..])
    }

    pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
        memchr::memmem::find(hay, needle)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_on_any_port_and_odd_methods() {
        assert!(http::is_request_start(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(http::is_request_start(b"BREW /pot HTTP/1.1\r\n"));
        assert!(
            !http::is_request_start(b"BREW /pot"),
            "unknown method needs a full line"
        );
        assert!(
            http::is_request_start(b"GET /very/long/path"),
            "known method, line still open"
        );
        assert!(!http::is_request_start(b"SSH-2.0-OpenSSH_9.2\r\n"));
        assert!(http::is_response_start(b"HTTP/1.0 404 Not Found\r\n"));
        assert!(!http::is_response_start(b"HTTP/2 200"));
    }

    #[test]
    fn tls_prefixes_are_enough_and_garbage_is_not_tls() {
        assert!(tls::client_hello_start(&[
            0x16, 3, 1, 0, 200, 1, 0, 0, 196, 3, 3
        ]));
        assert!(
            tls::client_hello_start(&[0x16, 3, 1, 0, 200]),
            "cut by snaplen after the header"
        );
        assert!(
            !tls::client_hello_start(&[0x16, 3, 1, 0, 200, 2]),
            "a ServerHello is not"
        );
        assert!(
            !tls::client_hello_start(&[0x16, 3, 9, 0, 200, 1]),
            "no TLS minor version 9"
        );
        assert!(tls::server_start(&[0x15, 3, 3, 0, 2, 2, 40]));
        assert!(tls::records(&[23, 3, 3, 0, 2, 0xaa, 0xbb, 23, 3, 3, 0, 9]));
        assert!(!tls::records(&[
            23, 3, 3, 0, 2, 0xaa, 0xbb, b'G', b'E', b'T', b' ', b'/'
        ]));
    }

    #[test]
    fn h2c_by_preface_or_upgrade() {
        assert_eq!(classify(H2_PREFACE, b"", 24), Protocol::H2c);
        let up = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n\r\n";
        assert_eq!(
            classify(up, b"HTTP/1.1 101 Switching Protocols\r\n", 99),
            Protocol::H2c
        );
        assert_eq!(
            classify(up, b"HTTP/1.1 200 OK\r\n", 99),
            Protocol::Http,
            "upgrade refused"
        );
        assert_eq!(classify(b"", b"", 0), Protocol::Empty);
        assert_eq!(classify(b"\x00\x01binary", b"", 8), Protocol::Other);
    }
}
