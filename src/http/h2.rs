//! Role: the h2c frame reader of one direction. Frames are delimited by their 9-byte headers;
//! header blocks (HEADERS, PUSH_PROMISE and CONTINUATION fragments, padding and priority
//! removed as they stream past) are decoded with HPACK (`loona-hpack`, one decoder per
//! direction, every block in order to keep its dynamic table right). Requests give `:method`,
//! `:authority`, `:path` (redacted like HTTP/1.x targets); responses `:status`; other fields
//! go through the same sensitive-header rules as HTTP/1.x. DATA and every other frame are
//! skipped by length. Bounded: a header block is kept up to `MAX_BLOCK` (what is beyond is
//! counted, the message decoded as far as it goes and reported truncated) and the HPACK table
//! to `MAX_TABLE`, whatever the frames say.

use super::Kept;
use super::sensitive::{Rules, Sensitive};

/// HTTP/2 connection preface (RFC 9113 §3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Header-block bytes kept per direction (the HPACK-compressed fields of one message: a
/// request's are usually well under 1 KiB).
pub const MAX_BLOCK: usize = 8 * 1024;
/// HPACK dynamic table size a peer may use: the protocol's default (RFC 9113 §6.5.2
/// SETTINGS_HEADER_TABLE_SIZE), which curl, Go, nginx and Envoy keep.
pub const MAX_TABLE: usize = 4096;
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

/// Where the parsed messages go (fields of the owning parser).
pub struct Sink<'a> {
    pub kept: &'a mut Kept,
    pub scratch: &'a mut Vec<Sensitive>,
    pub rules: Rules,
}

pub struct H2Reader {
    client: bool,
    head: [u8; 9],
    head_len: usize,
    /// Payload bytes left in the current frame.
    left: u32,
    /// The current frame is part of a header block.
    keeping: bool,
    kind: u8,
    flags: u8,
    /// Of a header-block frame: its pad-length byte is still to come.
    pad_pending: bool,
    /// Priority or promised-stream bytes still to skip before the fragment.
    pre: u32,
    /// Fragment bytes still to come (the padding after them is skipped).
    fragment: u32,
    block: Vec<u8>,
    /// The block was longer than `MAX_BLOCK`.
    block_cut: bool,
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
        hpack.set_max_allowed_table_size(MAX_TABLE);
        H2Reader {
            client,
            head: [0; 9],
            head_len: 0,
            left: 0,
            keeping: false,
            kind: 0,
            flags: 0,
            pad_pending: false,
            pre: 0,
            fragment: 0,
            block: Vec::new(),
            block_cut: false,
            in_block: None,
            hpack,
        }
    }

    /// Bytes kept for the header block now (for the memory bound's tests).
    #[cfg(test)]
    pub fn block_capacity(&self) -> usize {
        self.block.capacity()
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
                let used = if self.keeping {
                    match self.fragment_bytes(d) {
                        Some(n) => n,
                        None => return false,
                    }
                } else {
                    (self.left as usize).min(d.len())
                };
                self.left -= used as u32;
                d = &d[used..];
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
            if self.keeping {
                let first = self.kind != CONTINUATION;
                self.pad_pending = first && self.flags & PADDED != 0;
                self.pre = match self.kind {
                    PUSH_PROMISE => 4,
                    HEADERS if self.flags & PRIORITY != 0 => 5,
                    _ => 0,
                };
                if first {
                    self.block.clear();
                    self.block_cut = false;
                    self.in_block = Some(self.kind == PUSH_PROMISE);
                }
                if !self.pad_pending {
                    let Some(f) = len.checked_sub(self.pre) else {
                        return false;
                    };
                    self.fragment = f;
                }
            }
            if self.left == 0 && self.keeping && !self.frame_done(sink) {
                return false;
            }
        }
        true
    }

    /// Consumes bytes of a header-block frame's payload (at most `self.left`): the pad
    /// length, priority or promised stream, the fragment (kept up to `MAX_BLOCK`), padding.
    fn fragment_bytes(&mut self, d: &[u8]) -> Option<usize> {
        let avail = (self.left as usize).min(d.len());
        let mut used = 0;
        while used < avail {
            let rest = &d[used..avail];
            if self.pad_pending {
                self.pad_pending = false;
                let pad = u32::from(rest[0]);
                // What is left of the frame after this byte: preamble, fragment, padding.
                let after = self.left - used as u32 - 1;
                self.fragment = after.checked_sub(self.pre)?.checked_sub(pad)?;
                used += 1;
            } else if self.pre > 0 {
                let n = (self.pre as usize).min(rest.len());
                self.pre -= n as u32;
                used += n;
            } else if self.fragment > 0 {
                let n = (self.fragment as usize).min(rest.len());
                let room = MAX_BLOCK.saturating_sub(self.block.len());
                self.block.extend_from_slice(&rest[..n.min(room)]);
                self.block_cut |= n > room;
                self.fragment -= n as u32;
                used += n;
            } else {
                used = avail; // padding
            }
        }
        Some(used)
    }

    /// A header-block frame is complete.
    fn frame_done(&mut self, sink: &mut Sink<'_>) -> bool {
        self.keeping = false;
        if self.pad_pending || self.pre > 0 || self.fragment > 0 {
            return false; // a frame too short for its own padding or priority
        }
        if self.flags & END_HEADERS == 0 {
            return true;
        }
        let promise = self.in_block.take().unwrap_or(false);
        self.decode(promise, sink)
    }

    fn decode(&mut self, promise: bool, sink: &mut Sink<'_>) -> bool {
        let mut m = Message::default();
        let rules = sink.rules;
        sink.scratch.clear();
        let found = &mut *sink.scratch;
        let ok = self
            .hpack
            .decode_with_cb(&self.block, |name, value| {
                m.field(&name, &value, rules, found);
            })
            .is_ok();
        // A cut block decodes as far as it goes; the table may then miss what the rest
        // added, so later blocks cannot be trusted: the direction ends here (incomplete).
        let cut = self.block_cut;
        if !ok && !cut {
            return false;
        }
        if !promise {
            self.record(m, sink, cut);
        }
        !cut
    }

    fn record(&mut self, m: Message, sink: &mut Sink<'_>, cut: bool) {
        let rules = sink.rules;
        if self.client {
            let Some(method) = m.method else {
                if cut {
                    sink.kept.truncated += 1;
                }
                return; // trailers
            };
            sink.kept.grpc |= m.grpc;
            let mut found = std::mem::take(sink.scratch);
            // The target's own items first, as for HTTP/1.x.
            let mut all = Vec::with_capacity(found.len() + 1);
            let path = rules.target(m.path.as_deref().unwrap_or_default(), &mut all);
            let host = m
                .authority
                .or(m.host)
                .map(|a| rules.authority(&a, &mut all));
            all.append(&mut found);
            *sink.scratch = found;
            sink.kept.request(&method, host, path, "2", &mut all, cut);
        } else if let Some(status) = m.status {
            sink.kept.response(status, sink.scratch, cut);
        } else if cut {
            sink.kept.truncated += 1;
        }
    }
}

/// What one decoded header block says.
#[derive(Default)]
struct Message {
    method: Option<String>,
    path: Option<Vec<u8>>,
    authority: Option<Vec<u8>>,
    host: Option<Vec<u8>>,
    status: Option<u16>,
    grpc: bool,
}

impl Message {
    fn field(&mut self, name: &[u8], value: &[u8], rules: Rules, found: &mut Vec<Sensitive>) {
        match name {
            b":method" => self.method = Some(String::from_utf8_lossy(value).into_owned()),
            b":path" => self.path = Some(value.to_vec()),
            b":authority" => self.authority = Some(value.to_vec()),
            b":status" => {
                self.status = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok())
            }
            b"host" => self.host = Some(value.to_vec()),
            b"content-type" => self.grpc |= value.starts_with(b"application/grpc"),
            _ if name.first() == Some(&b':') => {}
            _ => rules.header(name, value, found),
        }
    }
}
