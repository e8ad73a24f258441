//! Role: the h2c frame reader of one direction. Frames are delimited by their 9-byte headers;
//! header blocks (HEADERS, PUSH_PROMISE and CONTINUATION, padding and priority removed) are
//! decoded with HPACK (`loona-hpack`, one decoder per direction, so every block is decoded in
//! order to keep its dynamic table right). Requests give `:method`, `:authority`, `:path`;
//! responses `:status`; other fields go through the same sensitive-header rules as HTTP/1.x.
//! DATA and every other frame are skipped by length. Bounded: a header block of 256 KiB at most.

use super::sensitive::{Rules, Sensitive};
use super::{HttpRequest, HttpResponse, MAX_MESSAGES};

/// HTTP/2 connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const MAX_BLOCK: usize = 256 * 1024;
const HEADERS: u8 = 1;
const SETTINGS: u8 = 4;
const PUSH_PROMISE: u8 = 5;
const CONTINUATION: u8 = 9;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;
const PRIORITY: u8 = 0x20;

/// A server's first h2c bytes: a SETTINGS frame on stream 0 (RFC 9113 §3.4, §6.5).
pub fn is_server_start(d: &[u8]) -> bool {
    match d.get(..9) {
        Some(h) => {
            let len = u32::from_be_bytes([0, h[0], h[1], h[2]]);
            h[3] == SETTINGS && h[4] == 0 && h[5..9] == [0, 0, 0, 0] && len % 6 == 0 && len <= 600
        }
        None => false,
    }
}

/// Where the parsed messages go (fields of the owning `HttpStream`).
pub struct Sink<'a> {
    pub requests: &'a mut Vec<HttpRequest>,
    pub responses: &'a mut Vec<HttpResponse>,
    pub count: &'a mut u64,
    pub grpc: &'a mut bool,
    pub rules: Rules,
}

pub struct H2Reader {
    client: bool,
    head: [u8; 9],
    head_len: usize,
    /// Payload bytes left in the current frame.
    left: u32,
    /// The current frame's payload is kept (a header-block frame).
    keeping: bool,
    kind: u8,
    flags: u8,
    frame: Vec<u8>,
    block: Vec<u8>,
    /// Inside a header block (waiting for CONTINUATION); `Some(true)` when it is a
    /// PUSH_PROMISE (decoded for the table, not reported).
    in_block: Option<bool>,
    hpack: loona_hpack::Decoder<'static>,
}

impl std::fmt::Debug for H2Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("H2Reader")
            .field("client", &self.client)
            .field("left", &self.left)
            .finish_non_exhaustive()
    }
}

impl H2Reader {
    pub fn new(client: bool) -> Self {
        let mut hpack = loona_hpack::Decoder::new();
        // A peer may announce a bigger table; beyond this it is not a conversation we follow.
        hpack.set_max_allowed_table_size(64 * 1024);
        H2Reader {
            client,
            head: [0; 9],
            head_len: 0,
            left: 0,
            keeping: false,
            kind: 0,
            flags: 0,
            frame: Vec::new(),
            block: Vec::new(),
            in_block: None,
            hpack,
        }
    }

    /// Bytes the capture does not have: harmless inside a frame that is skipped anyway.
    pub fn skip(&mut self, n: u64) -> bool {
        if self.head_len == 0 && !self.keeping && u64::from(self.left) >= n {
            self.left -= n as u32;
            return true;
        }
        false
    }

    /// In-order bytes; `false` when the stream cannot be followed any more.
    pub fn feed(&mut self, mut d: &[u8], sink: &mut Sink<'_>) -> bool {
        while !d.is_empty() {
            if self.left > 0 {
                let take = (self.left as usize).min(d.len());
                if self.keeping {
                    self.frame.extend_from_slice(&d[..take]);
                }
                self.left -= take as u32;
                d = &d[take..];
                if self.left == 0 && self.keeping && !self.frame_done(sink) {
                    return false;
                }
                continue;
            }
            let take = (9 - self.head_len).min(d.len());
            self.head[self.head_len..self.head_len + take].copy_from_slice(&d[..take]);
            self.head_len += take;
            d = &d[take..];
            if self.head_len < 9 {
                return true;
            }
            self.head_len = 0;
            let h = self.head;
            let len = u32::from_be_bytes([0, h[0], h[1], h[2]]);
            self.kind = h[3];
            self.flags = h[4];
            // A header block must continue with CONTINUATION frames only (RFC 9113 §6.10).
            if self.in_block.is_some() != (self.kind == CONTINUATION) {
                return false;
            }
            self.keeping = matches!(self.kind, HEADERS | PUSH_PROMISE | CONTINUATION);
            self.left = len;
            self.frame.clear();
            if self.keeping && len as usize > MAX_BLOCK {
                return false;
            }
            if self.left == 0 && self.keeping && !self.frame_done(sink) {
                return false;
            }
        }
        true
    }

    /// A header-block frame is complete in `self.frame`.
    fn frame_done(&mut self, sink: &mut Sink<'_>) -> bool {
        self.keeping = false;
        let mut p = &self.frame[..];
        if matches!(self.kind, HEADERS | PUSH_PROMISE) {
            if self.flags & PADDED != 0 {
                let Some((&pad, rest)) = p.split_first() else {
                    return false;
                };
                let Some(keep) = rest.len().checked_sub(usize::from(pad)) else {
                    return false;
                };
                p = &rest[..keep];
            }
            let skip = if self.kind == PUSH_PROMISE {
                4
            } else if self.flags & PRIORITY != 0 {
                5
            } else {
                0
            };
            let Some(rest) = p.get(skip..) else {
                return false;
            };
            p = rest;
            self.block.clear();
            self.in_block = Some(self.kind == PUSH_PROMISE);
        }
        if self.block.len() + p.len() > MAX_BLOCK {
            return false;
        }
        self.block.extend_from_slice(p);
        if self.flags & END_HEADERS == 0 {
            return true;
        }
        let promise = self.in_block.take().unwrap_or(false);
        self.decode(promise, sink)
    }

    fn decode(&mut self, promise: bool, sink: &mut Sink<'_>) -> bool {
        let mut m = Message::default();
        let rules = sink.rules;
        let ok = self
            .hpack
            .decode_with_cb(&self.block, |name, value| {
                m.field(&name, &value, rules);
            })
            .is_ok();
        if !ok {
            return false;
        }
        if promise {
            return true;
        }
        let (sensitive, evidence) = super::split(&mut m.found);
        if self.client {
            let Some(method) = m.method else {
                return true; // trailers
            };
            *sink.count += 1;
            *sink.grpc |= m.grpc;
            if sink.requests.len() < MAX_MESSAGES {
                let path = m.path.unwrap_or_default();
                let mut found = Vec::new();
                if let Some(q) = memchr::memchr(b'?', path.as_bytes()) {
                    rules.params("query", &path.as_bytes()[q + 1..], &mut found);
                }
                let (mut sensitive, mut evidence) = (sensitive, evidence);
                for s in found {
                    sensitive.push(s.label);
                    evidence.push(s.evidence);
                }
                sink.requests.push(HttpRequest {
                    method: method.into(),
                    host: m.authority.or(m.host),
                    path,
                    version: std::borrow::Cow::Borrowed("2"),
                    sensitive,
                    evidence,
                });
            }
        } else if let Some(status) = m.status {
            *sink.count += 1;
            if sink.responses.len() < MAX_MESSAGES {
                sink.responses.push(HttpResponse {
                    status,
                    sensitive,
                    evidence,
                });
            }
        }
        true
    }
}

/// What one decoded header block says.
#[derive(Default)]
struct Message {
    method: Option<String>,
    path: Option<String>,
    authority: Option<String>,
    host: Option<String>,
    status: Option<u16>,
    grpc: bool,
    found: Vec<Sensitive>,
}

impl Message {
    fn field(&mut self, name: &[u8], value: &[u8], rules: Rules) {
        let text = || String::from_utf8_lossy(value).into_owned();
        match name {
            b":method" => self.method = Some(text()),
            b":path" => self.path = Some(text()),
            b":authority" => self.authority = Some(text()),
            b":status" => {
                self.status = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok())
            }
            b"host" => self.host = Some(text()),
            b"content-type" => self.grpc |= value.starts_with(b"application/grpc"),
            _ if name.first() == Some(&b':') => {}
            _ => rules.header(name, value, &mut self.found),
        }
    }
}
