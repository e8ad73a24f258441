//! Role: cleartext HTTP facts of one direction, followed online for the whole flow. HTTP/1.x
//! heads are parsed with `httparse` and bodies skipped by Content-Length or chunked framing,
//! so pipelined and keep-alive messages are all found; `PRI * HTTP/2.0` or a `101` to `h2c`
//! hands the direction to the h2c frame reader (`h2`). Only what the report needs is kept:
//! method, host, path, version, status, and which sensitive things a message carries, with
//! redacted evidence and paths (`sensitive`). A head of any length is read: whole in one
//! segment by httparse in place, otherwise line by line keeping one line (`MAX_LINE`).
//! Bounded per direction: one `MAX_LINE` buffer, h2's header-block cap, and `MAX_MESSAGES`
//! messages within `MAX_KEPT` bytes (docs/schema.md states the figures).

mod h2;
pub mod sensitive;

use sensitive::{Rules, Sensitive};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

pub const MAX_MESSAGES: usize = 64;
/// Text of the listed messages kept per direction (paths, hosts, evidence), besides
/// `MAX_MESSAGES`: 64 requests with 8 KiB targets would otherwise keep 512 KiB.
pub const MAX_KEPT: usize = 16 * 1024;
/// A head line is kept this far (bytes beyond are counted, the message reported truncated).
pub const MAX_LINE: usize = 8 * 1024;
/// Header fields httparse parses in place; a head with more is read line by line.
const MAX_HEADERS: usize = 48;
/// Request bodies of forms are looked into this far for credentials.
const MAX_FORM: usize = 4096;
/// First bytes kept while they cannot yet say whether the direction is HTTP.
const MAX_UNDECIDED: usize = 512;

/// The most one direction's reader holds on the heap, from the caps above (docs/memory.md):
/// the line buffer (also holding a form body or the undecided first bytes), the target being
/// built, the current message's sensitive items, the listed messages (twice `MAX_KEPT`: `Vec`
/// growth by doubling), the unlisted items, h2's header block, and the HPACK table (4,096
/// bytes of entries; four times that covers the per-entry overhead of at most 128 entries).
/// `flow::HTTP_ALLOWANCE`, which the memory bound counts, must be at least this (a unit test
/// checks it).
pub const HEAP_PER_DIRECTION: usize = {
    let line = if MAX_LINE > MAX_FORM {
        MAX_LINE
    } else {
        MAX_FORM
    };
    let items = sensitive::MAX_ITEMS * (sensitive::MAX_LABEL + sensitive::MAX_EVIDENCE + 48);
    line + MAX_LINE + items + 2 * MAX_KEPT + items + h2::MAX_BLOCK + 4 * h2::MAX_TABLE
};

/// One request as the report shows it (docs/schema.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// Static for the registered methods (no allocation per request).
    pub method: Cow<'static, str>,
    /// `Host` (HTTP/1.x) or `:authority` (h2c).
    pub host: Option<String>,
    pub path: String,
    /// `1.0`, `1.1` or `2`.
    pub version: Cow<'static, str>,
    /// What sensitive data the request carries, by name only: `authorization:<scheme>`,
    /// `proxy-authorization:<scheme>`, `cookie`, `header:<name>`, `query:<parameter>`,
    /// `form:<parameter>`.
    pub sensitive: Vec<String>,
    /// The same items as evidence, values redacted unless `--show-secrets`.
    pub evidence: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    pub status: u16,
    /// `set-cookie`, `header:<name>`.
    pub sensitive: Vec<String>,
    pub evidence: Vec<String>,
}

/// The `http` object of a flow record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct HttpFacts {
    pub requests: Vec<HttpRequest>,
    pub responses: Vec<HttpResponse>,
    /// Messages seen, including those beyond the `MAX_MESSAGES` kept.
    pub request_count: u64,
    pub response_count: u64,
    /// The stream could not be followed to its end (a gap inside a head, bad framing), or
    /// something of a message was cut (`truncated` > 0).
    pub incomplete: bool,
    /// Messages of which something was cut: a head line longer than `MAX_LINE` (8 KiB), an
    /// h2c header block longer than its cap, more than 16 sensitive items, a gap in a head.
    #[serde(default)]
    pub truncated: u64,
    /// Sensitive items of messages that were counted but not listed (beyond `MAX_MESSAGES` or
    /// `MAX_KEPT`), each label once, with their (redacted) evidence.
    #[serde(default)]
    pub unlisted_sensitive: Vec<String>,
    #[serde(default)]
    pub unlisted_evidence: Vec<String>,
    /// HTTP/2 frames were read (prior knowledge or `Upgrade: h2c`).
    pub h2: bool,
    /// Requests with `content-type: application/grpc`.
    pub grpc: bool,
}

impl HttpFacts {
    /// Every sensitive item of the flow, requests first, as (label, evidence).
    pub fn sensitive(&self) -> impl Iterator<Item = (&str, &str)> {
        let req = self
            .requests
            .iter()
            .flat_map(|r| r.sensitive.iter().zip(&r.evidence));
        let resp = self
            .responses
            .iter()
            .flat_map(|r| r.sensitive.iter().zip(&r.evidence));
        let unlisted = self.unlisted_sensitive.iter().zip(&self.unlisted_evidence);
        req.chain(resp)
            .chain(unlisted)
            .map(|(l, e)| (l.as_str(), e.as_str()))
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing seen yet: the first bytes decide request, response, h2, or not HTTP.
    #[default]
    Start,
    /// At the start of a message.
    Head,
    /// Inside a head, read line by line (`Parser::head`).
    Lines,
    /// This many bytes of the h2 connection preface matched so far.
    Preface(u8),
    Body(u64),
    /// Request body of a form, kept (up to `MAX_FORM`) to look for credentials.
    FormBody(u64),
    ChunkSize,
    ChunkData(u64),
    /// After the chunk data: its CRLF.
    ChunkEnd,
    Trailers,
    /// HTTP/2 frames (`h2` holds the reader).
    H2,
    /// The rest is not HTTP messages (an upgrade, a CONNECT tunnel, a body to the close).
    Opaque,
    /// Not HTTP, or lost (gap inside a head, framing that makes no sense).
    Lost,
}

/// One direction's HTTP parser, made only for directions whose first byte could start HTTP
/// (an uppercase letter, or the 0 of an h2c SETTINGS frame): TLS and other binary streams
/// never get one, and the flow slot stays small. A slot keeps its parser for reuse.
#[derive(Debug, Default)]
pub struct HttpStream {
    parser: Option<Box<Parser>>,
    active: bool,
    decided: bool,
    reveal: bool,
}

impl HttpStream {
    pub fn reset(&mut self, reveal: bool) {
        self.active = false;
        self.decided = false;
        self.reveal = reveal;
    }

    /// Evidence shows values (`--show-secrets`).
    pub fn reveals(&self) -> bool {
        self.reveal
    }

    /// In-order bytes of this direction.
    #[inline]
    pub fn feed(&mut self, d: &[u8]) {
        if self.active {
            if let Some(p) = self.parser.as_deref_mut() {
                p.feed(d);
            }
        } else if !self.decided && !d.is_empty() {
            self.first(d);
        }
    }

    #[cold]
    fn first(&mut self, d: &[u8]) {
        self.decided = true;
        if d[0].is_ascii_uppercase() || d[0] == 0 {
            let p = self.parser.get_or_insert_with(Box::default);
            p.reset(self.reveal);
            self.active = true;
            p.feed(d);
        }
    }

    /// `n` bytes the capture does not have.
    pub fn skip(&mut self, n: u64) {
        if self.active {
            if let Some(p) = self.parser.as_deref_mut() {
                p.skip(n);
            }
        } else {
            // A gap before the first byte: the start cannot be judged.
            self.decided = true;
        }
    }

    fn parser(&mut self) -> Option<&mut Parser> {
        if self.active {
            self.parser.as_deref_mut()
        } else {
            None
        }
    }

    pub fn count(&self) -> u64 {
        match (&self.parser, self.active) {
            (Some(p), true) => p.kept.count,
            _ => 0,
        }
    }
}

/// What one direction keeps for the report, bounded: at most `MAX_MESSAGES` messages and
/// `MAX_KEPT` bytes of their text. A message beyond either is counted, and its sensitive
/// items still go to `unlisted` (each label once), so no credential hides behind the limits.
#[derive(Debug, Default)]
pub(crate) struct Kept {
    pub(crate) requests: Vec<HttpRequest>,
    pub(crate) responses: Vec<HttpResponse>,
    pub(crate) count: u64,
    pub(crate) grpc: bool,
    /// Messages of which something was cut (a line longer than `MAX_LINE`, a header block
    /// longer than h2's cap, more than `sensitive::MAX_ITEMS` items, a gap inside the head).
    pub(crate) truncated: u64,
    bytes: usize,
    unlisted: Vec<Sensitive>,
    /// The last message was listed (a form body's items belong to it).
    last_listed: bool,
    /// A message did not fit: the rest are counted, not listed.
    full: bool,
}

impl Kept {
    fn clear(&mut self) {
        self.requests.clear();
        self.responses.clear();
        self.count = 0;
        self.grpc = false;
        self.truncated = 0;
        self.bytes = 0;
        self.unlisted.clear();
        self.last_listed = false;
        self.full = false;
    }

    /// Takes `size` bytes of the budget if the message fits; once one does not, none after
    /// it is listed (the list is always the first messages, in order).
    fn room(&mut self, size: usize, listed: usize) -> bool {
        self.full |= listed >= MAX_MESSAGES || self.bytes + size > MAX_KEPT;
        let fits = !self.full;
        if fits {
            self.bytes += size;
        }
        self.last_listed = fits;
        fits
    }

    fn unlist(&mut self, found: &mut Vec<Sensitive>) {
        for s in found.drain(..) {
            if self.unlisted.len() < sensitive::MAX_ITEMS
                && !self.unlisted.iter().any(|u| u.label == s.label)
            {
                self.unlisted.push(s);
            }
        }
    }

    fn cost(found: &[Sensitive]) -> usize {
        // The strings and the `Vec`/`String` headers around them.
        found
            .iter()
            .map(|s| s.label.len() + s.evidence.len() + 48)
            .sum::<usize>()
            + 160
    }

    /// Counts one request and lists it if it fits; `found` is drained.
    pub(crate) fn request(
        &mut self,
        method: &str,
        mut host: Option<String>,
        mut path: String,
        version: &'static str,
        found: &mut Vec<Sensitive>,
        mut cut: bool,
    ) {
        // Redaction markers can make a target longer than the bytes it came from.
        cut |= sensitive::cut_to(&mut path, MAX_LINE);
        if let Some(h) = host.as_mut() {
            cut |= sensitive::cut_to(h, sensitive::MAX_EVIDENCE);
        }
        self.count += 1;
        if cut || found.len() >= sensitive::MAX_ITEMS {
            self.truncated += 1;
        }
        let size = method.len() + host.as_ref().map_or(0, String::len) + path.len();
        if !self.room(size + Self::cost(found), self.requests.len()) {
            self.unlist(found);
            return;
        }
        let (sensitive, evidence) = split(found);
        self.requests.push(HttpRequest {
            method: static_method(method),
            host,
            path,
            version: Cow::Borrowed(version),
            sensitive,
            evidence,
        });
    }

    /// Counts one response and lists it if it fits; `found` is drained.
    pub(crate) fn response(&mut self, status: u16, found: &mut Vec<Sensitive>, cut: bool) {
        self.count += 1;
        if cut || found.len() >= sensitive::MAX_ITEMS {
            self.truncated += 1;
        }
        if !self.room(Self::cost(found), self.responses.len()) {
            self.unlist(found);
            return;
        }
        let (sensitive, evidence) = split(found);
        self.responses.push(HttpResponse {
            status,
            sensitive,
            evidence,
        });
    }
}

/// A head read line by line: one that did not arrive whole in one segment, or that
/// `httparse` would not take (more than `MAX_HEADERS` fields, a space in the target). Only
/// what the report needs is kept, so a head of any length costs at most `MAX_LINE` bytes.
#[derive(Debug, Default)]
struct Head {
    /// Lines seen (the start line is the first).
    lines: u32,
    /// Bytes of the current line so far; beyond `MAX_LINE` they are counted, not kept.
    line_len: usize,
    cut: bool,
    method: String,
    path: String,
    minor: u8,
    status: u16,
    host: Option<String>,
    frame: Framing,
}

#[derive(Debug, Default)]
struct Parser {
    state: State,
    response: bool,
    rules: Rules,
    /// At most `MAX_LINE` bytes: a head line, a chunk line, a form body, or the first bytes
    /// while the direction is undecided.
    buf: Vec<u8>,
    h2: Option<Box<h2::H2Reader>>,
    kept: Kept,
    lost_midway: bool,
    scratch: Vec<Sensitive>,
    head: Head,
}

impl Parser {
    /// Ready for a new flow, in place (the buffers keep their capacity).
    pub fn reset(&mut self, reveal: bool) {
        self.state = State::Start;
        self.response = false;
        self.rules = Rules { reveal };
        self.buf.clear();
        self.h2 = None;
        self.kept.clear();
        self.lost_midway = false;
        self.scratch.clear();
        self.head.lines = 0;
    }

    pub fn is_http(&self) -> bool {
        self.kept.count > 0 || self.h2.is_some()
    }

    /// `n` bytes the capture does not have: fine inside a body, fatal inside a head (the part
    /// of the head already read is still reported, as truncated).
    pub fn skip(&mut self, n: u64) {
        match self.state {
            State::Body(left) | State::FormBody(left) if left >= n => {
                let left = left - n;
                self.state = if left == 0 {
                    State::Head
                } else {
                    State::Body(left)
                };
                self.buf.clear();
            }
            State::ChunkData(left) if left >= n => {
                self.state = if left == n {
                    State::ChunkEnd
                } else {
                    State::ChunkData(left - n)
                };
            }
            State::H2 => {
                if let Some(h) = self.h2.as_deref_mut() {
                    if !h.skip(n) {
                        self.lost_midway = true;
                        self.state = State::Lost;
                    }
                }
            }
            State::Opaque | State::Lost => {}
            State::Start => self.state = State::Lost,
            State::Lines => {
                self.head.cut = true;
                self.flush_head();
                self.lost_midway = true;
                self.state = State::Lost;
            }
            _ => {
                self.lost_midway = true;
                self.state = State::Lost;
            }
        }
    }

    /// The end of the direction: a head still being read is reported as far as it got.
    fn finish(&mut self) {
        if self.state == State::Lines {
            self.head.cut = true;
            self.flush_head();
            self.lost_midway = true;
            self.state = State::Lost;
        }
    }

    /// In-order bytes of this direction.
    #[inline]
    pub fn feed(&mut self, d: &[u8]) {
        if matches!(self.state, State::Lost | State::Opaque) || d.is_empty() {
            return;
        }
        self.feed_slow(d);
    }

    fn feed_slow(&mut self, mut d: &[u8]) {
        while !d.is_empty() {
            match self.state {
                State::Lost | State::Opaque => return,
                State::Start => {
                    // Decide on the first bytes; keep a few hundred while they cannot.
                    if !self.buf.is_empty() {
                        let take = d.len().min(MAX_UNDECIDED.saturating_sub(self.buf.len()));
                        self.buf.extend_from_slice(&d[..take]);
                        let first = std::mem::take(&mut self.buf);
                        match self.start(&first) {
                            Some(true) => {
                                self.feed_slow(&first);
                                d = &d[take..];
                            }
                            Some(false) => return,
                            None => {
                                self.buf = first;
                                return;
                            }
                        }
                        continue;
                    }
                    match self.start(d) {
                        Some(true) => {}
                        Some(false) => return,
                        None => {
                            self.buf.extend_from_slice(&d[..d.len().min(MAX_UNDECIDED)]);
                            return;
                        }
                    }
                }
                State::Head => {
                    if !self.response && d[0] == b'P' {
                        let n = d.len().min(h2::PREFACE.len());
                        if d[..n] == h2::PREFACE[..n] {
                            d = &d[n..];
                            if n < h2::PREFACE.len() {
                                self.state = State::Preface(n as u8);
                            } else {
                                self.enter_h2(true);
                            }
                            continue;
                        }
                    }
                    // Usually the whole head is in one segment: httparse in place.
                    match self.parse_head(d) {
                        Some(n) => d = &d[n..],
                        None => self.begin_lines(),
                    }
                }
                State::Preface(n) => {
                    let n = usize::from(n);
                    let k = (h2::PREFACE.len() - n).min(d.len());
                    if d[..k] != h2::PREFACE[n..n + k] {
                        // A request whose first letters looked like the preface (`POST`):
                        // those letters start its head.
                        self.begin_lines();
                        self.feed_slow(&h2::PREFACE[..n]);
                        continue;
                    }
                    d = &d[k..];
                    if n + k == h2::PREFACE.len() {
                        self.enter_h2(true);
                    } else {
                        self.state = State::Preface((n + k) as u8);
                    }
                }
                State::Lines => match memchr::memchr(b'\n', d) {
                    None => {
                        self.line_bytes(d);
                        return;
                    }
                    Some(i) => {
                        if self.buf.is_empty() && self.head.line_len == 0 && i <= MAX_LINE {
                            let l = &d[..i];
                            self.head_line(l.strip_suffix(b"\r").unwrap_or(l));
                        } else {
                            self.line_bytes(&d[..i]);
                            let line = std::mem::take(&mut self.buf);
                            self.head_line(line.strip_suffix(b"\r").unwrap_or(&line));
                            self.buf = line;
                            self.buf.clear();
                        }
                        self.head.line_len = 0;
                        d = &d[i + 1..];
                    }
                },
                State::Body(left) => {
                    let take = left.min(d.len() as u64);
                    d = &d[take as usize..];
                    self.state = if take == left {
                        State::Head
                    } else {
                        State::Body(left - take)
                    };
                }
                State::FormBody(left) => {
                    let take = left.min(d.len() as u64) as usize;
                    let room = MAX_FORM.saturating_sub(self.buf.len());
                    self.buf.extend_from_slice(&d[..take.min(room)]);
                    d = &d[take..];
                    if take as u64 == left {
                        self.form_done();
                        self.state = State::Head;
                    } else {
                        self.state = State::FormBody(left - take as u64);
                    }
                }
                State::ChunkSize | State::ChunkEnd | State::Trailers => {
                    let Some(nl) = memchr::memchr(b'\n', d) else {
                        if self.buf.len() + d.len() > 1024 {
                            self.state = State::Lost;
                            self.lost_midway = true;
                        } else {
                            self.buf.extend_from_slice(d);
                        }
                        return;
                    };
                    if self.buf.len() + nl > 1024 {
                        self.state = State::Lost;
                        self.lost_midway = true;
                        return;
                    }
                    self.buf.extend_from_slice(&d[..nl]);
                    d = &d[nl + 1..];
                    let line = std::mem::take(&mut self.buf);
                    let l = line.strip_suffix(b"\r").unwrap_or(&line);
                    self.state = match self.state {
                        State::ChunkEnd if l.is_empty() => State::ChunkSize,
                        State::ChunkSize => {
                            let hex = l.split(|&b| b == b';').next().unwrap_or(l);
                            match parse_hex(hex) {
                                Some(0) => State::Trailers,
                                Some(n) => State::ChunkData(n),
                                None => {
                                    self.lost_midway = true;
                                    State::Lost
                                }
                            }
                        }
                        State::Trailers if l.is_empty() => State::Head,
                        State::Trailers => State::Trailers,
                        _ => {
                            self.lost_midway = true;
                            State::Lost
                        }
                    };
                    self.buf = line;
                    self.buf.clear();
                }
                State::ChunkData(left) => {
                    let take = left.min(d.len() as u64);
                    d = &d[take as usize..];
                    self.state = if take == left {
                        State::ChunkEnd
                    } else {
                        State::ChunkData(left - take)
                    };
                }
                State::H2 => {
                    let Some(h) = self.h2.as_deref_mut() else {
                        self.state = State::Lost;
                        return;
                    };
                    let mut sink = h2::Sink {
                        kept: &mut self.kept,
                        scratch: &mut self.scratch,
                        rules: self.rules,
                    };
                    if !h.feed(d, &mut sink) {
                        self.lost_midway = true;
                        self.state = State::Lost;
                    }
                    return;
                }
            }
        }
    }

    /// Decides what the direction carries from its first bytes: `Some(true)` HTTP (the state
    /// is set), `Some(false)` not HTTP (Lost), `None` too few bytes to say.
    fn start(&mut self, d: &[u8]) -> Option<bool> {
        if h2::is_server_start(d) {
            // An h2c server starts with a SETTINGS frame.
            self.response = true;
            self.enter_h2(false);
            return Some(true);
        }
        let need = d.len() < MAX_UNDECIDED / 2;
        if d[0] == 0 && d.len() < 9 {
            return None;
        }
        if !d[0].is_ascii_uppercase() {
            self.state = State::Lost;
            return Some(false);
        }
        const STATUS: &[u8] = b"HTTP/1.";
        if d.starts_with(STATUS) {
            self.response = true;
            self.state = State::Head;
            return Some(true);
        }
        let n = d.len().min(h2::PREFACE.len());
        if d[..n] == h2::PREFACE[..n] || crate::classify::http::is_request_start(d) {
            self.state = State::Head;
            return Some(true);
        }
        if (d.len() < STATUS.len() && STATUS.starts_with(d))
            || (need && memchr::memchr(b'\n', d).is_none())
        {
            return None;
        }
        self.state = State::Lost;
        Some(false)
    }

    fn enter_h2(&mut self, client: bool) {
        self.buf.clear();
        self.h2 = Some(Box::new(h2::H2Reader::new(client)));
        self.state = State::H2;
    }

    /// Parses one head that is whole in `bytes` with httparse; on success records the
    /// message, sets the body state and returns the head's length. `None`: not whole, or not
    /// one httparse takes; the line reader decides then.
    fn parse_head(&mut self, bytes: &[u8]) -> Option<usize> {
        let rules = self.rules;
        self.scratch.clear();
        if self.response {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut r = httparse::Response::new(&mut headers);
            let Ok(httparse::Status::Complete(n)) = r.parse(bytes) else {
                return None;
            };
            let status = r.code.unwrap_or(0);
            for h in r.headers.iter() {
                rules.header(h.name.as_bytes(), h.value, &mut self.scratch);
            }
            let frame = Framing::of(r.headers);
            self.kept.response(status, &mut self.scratch, false);
            self.after_response(status, frame);
            return Some(n);
        }
        // Requests parse into uninitialised header slots (no 1.5 KiB of zeroing per head).
        let mut slots =
            [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
        let mut r = httparse::Request::new(&mut []);
        let Ok(httparse::Status::Complete(n)) = r.parse_with_uninit_headers(bytes, &mut slots)
        else {
            return None;
        };
        let method = r.method.unwrap_or("");
        let target = r.path.unwrap_or("").as_bytes();
        if target.len() > MAX_LINE || method.len() > MAX_LINE {
            return None; // the line reader cuts it, the same way whatever the segmentation
        }
        let path = rules.target(target, &mut self.scratch);
        let mut host = None;
        for h in r.headers.iter() {
            let name = h.name.as_bytes();
            if name.len() == 4 && name.eq_ignore_ascii_case(b"host") {
                if host.is_none() {
                    host = Some(rules.authority(h.value, &mut self.scratch));
                }
            } else {
                rules.header(name, h.value, &mut self.scratch);
            }
        }
        let frame = Framing::of(r.headers);
        let version = if r.version == Some(0) { "1.0" } else { "1.1" };
        self.kept
            .request(method, host, path, version, &mut self.scratch, false);
        self.state = if method == "CONNECT" {
            State::Opaque
        } else {
            body_state(frame, true)
        };
        Some(n)
    }

    fn after_response(&mut self, status: u16, frame: Framing) {
        self.state = match status {
            101 if frame.upgrade_h2c => {
                self.enter_h2(false);
                State::H2
            }
            101 => State::Opaque,
            100..=199 | 204 | 304 => State::Head,
            _ if frame.chunked => State::ChunkSize,
            _ => match frame.length {
                Some(0) => State::Head,
                Some(n) => State::Body(n),
                None => State::Opaque, // read until close
            },
        };
    }

    /// From now on the head is read line by line (from its first byte).
    fn begin_lines(&mut self) {
        self.state = State::Lines;
        self.buf.clear();
        self.scratch.clear();
        let h = &mut self.head;
        h.lines = 0;
        h.line_len = 0;
        h.cut = false;
        h.method.clear();
        h.path.clear();
        h.minor = 1;
        h.status = 0;
        h.host = None;
        h.frame = Framing::default();
    }

    /// Part of a line: kept up to `MAX_LINE`, counted beyond.
    fn line_bytes(&mut self, part: &[u8]) {
        let room = MAX_LINE.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&part[..part.len().min(room)]);
        self.head.line_len = self.head.line_len.saturating_add(part.len());
        if self.head.line_len > MAX_LINE {
            self.head.cut = true;
        }
    }

    /// One line of a head (without its line end; cut to `MAX_LINE` if it was longer).
    fn head_line(&mut self, line: &[u8]) {
        let rules = self.rules;
        if self.head.lines == 0 {
            if line.is_empty() {
                return; // empty lines before a message are allowed (RFC 9112 §2.2)
            }
            self.head.lines = 1;
            if !self.start_line(line) {
                self.lost(true);
            }
            return;
        }
        self.head.lines = self.head.lines.saturating_add(1);
        if line.is_empty() {
            self.flush_head();
            return;
        }
        if matches!(line[0], b' ' | b'\t') {
            return; // obsolete line folding: a continuation, nothing to judge by name
        }
        let Some(colon) = memchr::memchr(b':', line) else {
            self.lost(true);
            return;
        };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            self.lost(true);
            return;
        }
        let value = line[colon + 1..].trim_ascii();
        self.head.frame.observe(name, value);
        if !self.response && name.len() == 4 && name.eq_ignore_ascii_case(b"host") {
            if self.head.host.is_none() {
                self.head.host = Some(rules.authority(value, &mut self.scratch));
            }
        } else {
            rules.header(name, value, &mut self.scratch);
        }
    }

    /// The start line of a head read line by line; `false` if it is not one.
    fn start_line(&mut self, line: &[u8]) -> bool {
        let cut = self.head.line_len > MAX_LINE;
        if self.response {
            if !crate::classify::http::is_response_start(line) {
                return false;
            }
            self.head.status = line[9..12]
                .iter()
                .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
            return true;
        }
        // Read the way tshark does: a target with a space in it ends at the space.
        let Some(sp) = memchr::memchr(b' ', line) else {
            return false;
        };
        let method = &line[..sp];
        if method.is_empty() || !method.iter().all(|&b| is_token(b)) {
            return false;
        }
        let rest = &line[sp + 1..];
        let target_end = match rest.len().checked_sub(9) {
            Some(v) if rest[v] == b' ' && rest[v + 1..].starts_with(b"HTTP/1.") => {
                self.head.minor = u8::from(rest[v + 8] != b'0');
                if !matches!(rest[v + 8], b'0' | b'1') {
                    return false;
                }
                v
            }
            // The line was longer than what is kept: its version is in the part not kept.
            _ if cut => rest.len(),
            _ => return false,
        };
        let target = &rest[..target_end];
        let target = &target[..memchr::memchr(b' ', target).unwrap_or(target.len())];
        self.head.method.push_str(&String::from_utf8_lossy(method));
        self.head.path = self.rules.target(target, &mut self.scratch);
        true
    }

    /// The head read line by line is complete (or ends here, cut): record it.
    fn flush_head(&mut self) {
        if self.head.lines == 0 {
            return;
        }
        self.head.lines = 0;
        let frame = self.head.frame;
        let cut = self.head.cut;
        if self.response {
            let status = self.head.status;
            self.kept.response(status, &mut self.scratch, cut);
            self.after_response(status, frame);
            return;
        }
        let method = std::mem::take(&mut self.head.method);
        let path = std::mem::take(&mut self.head.path);
        let host = self.head.host.take();
        let version = if self.head.minor == 0 { "1.0" } else { "1.1" };
        self.kept
            .request(&method, host, path, version, &mut self.scratch, cut);
        self.state = if method == "CONNECT" {
            State::Opaque
        } else {
            body_state(frame, true)
        };
        self.head.method = method;
        self.head.method.clear();
    }

    fn lost(&mut self, midway: bool) {
        self.lost_midway |= midway && self.kept.count > 0;
        self.state = State::Lost;
    }

    /// A form body has been read (up to `MAX_FORM`): note credential parameters.
    fn form_done(&mut self) {
        let body = std::mem::take(&mut self.buf);
        let mut found = std::mem::take(&mut self.scratch);
        found.clear();
        self.rules.params("form", &body, &mut found);
        match self.kept.requests.last_mut() {
            Some(r) if self.kept.last_listed => {
                for s in found.drain(..) {
                    if !r.sensitive.contains(&s.label) {
                        r.sensitive.push(s.label);
                        r.evidence.push(s.evidence);
                    }
                }
            }
            _ => self.kept.unlist(&mut found),
        }
        self.scratch = found;
        self.buf = body;
        self.buf.clear();
    }
}

/// A `tchar` of RFC 9110 §5.6.2 (header names and methods).
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn static_method(m: &str) -> Cow<'static, str> {
    const COMMON: [&str; 9] = [
        "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
    match COMMON.iter().find(|c| **c == m) {
        Some(c) => Cow::Borrowed(c),
        None => Cow::Owned(m.to_string()),
    }
}

/// Labels and evidence as two lists, one entry per label (a header repeated is one label).
fn split(found: &mut Vec<Sensitive>) -> (Vec<String>, Vec<String>) {
    if found.is_empty() {
        return (Vec::new(), Vec::new());
    }
    let mut labels: Vec<String> = Vec::with_capacity(found.len());
    let mut evidence = Vec::with_capacity(found.len());
    for s in found.drain(..) {
        if !labels.contains(&s.label) {
            labels.push(s.label);
            evidence.push(s.evidence);
        }
    }
    (labels, evidence)
}

fn parse_hex(h: &[u8]) -> Option<u64> {
    let h = std::str::from_utf8(h).ok()?.trim();
    u64::from_str_radix(h, 16).ok()
}

/// What a head says about the body that follows it.
#[derive(Debug, Default, Clone, Copy)]
struct Framing {
    chunked: bool,
    length: Option<u64>,
    form: bool,
    upgrade_h2c: bool,
}

impl Framing {
    fn of(hs: &[httparse::Header]) -> Framing {
        let mut f = Framing::default();
        for h in hs {
            f.observe(h.name.as_bytes(), h.value);
        }
        f
    }

    /// One header field.
    fn observe(&mut self, n: &[u8], value: &[u8]) {
        let f = self;
        match n.len() {
            17 if n.eq_ignore_ascii_case(b"transfer-encoding") => {
                f.chunked |= value
                    .split(|&b| b == b',')
                    .any(|t| trim_ascii(t).eq_ignore_ascii_case(b"chunked"));
            }
            14 if n.eq_ignore_ascii_case(b"content-length") => {
                f.length = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok());
            }
            12 if n.eq_ignore_ascii_case(b"content-type") => {
                f.form = value.len() >= 33
                    && value[..33].eq_ignore_ascii_case(b"application/x-www-form-urlencoded");
            }
            7 if n.eq_ignore_ascii_case(b"upgrade") => {
                f.upgrade_h2c |= value
                    .split(|&b| b == b',')
                    .any(|t| trim_ascii(t).eq_ignore_ascii_case(b"h2c"));
            }
            _ => {}
        }
    }
}

fn trim_ascii(v: &[u8]) -> &[u8] {
    v.trim_ascii()
}

fn body_state(f: Framing, form_ok: bool) -> State {
    if f.chunked {
        return State::ChunkSize;
    }
    match f.length {
        Some(0) | None => State::Head,
        Some(n) if f.form && form_ok => State::FormBody(n),
        Some(n) => State::Body(n),
    }
}

/// The `http` facts of a flow from its two directions' parsers (moved out of them).
pub fn facts(client: &mut HttpStream, server: &mut HttpStream) -> Option<HttpFacts> {
    let (c, s) = (client.parser(), server.parser());
    if c.is_none() && s.is_none() {
        return None;
    }
    let (mut blank_c, mut blank_s) = (Parser::default(), Parser::default());
    parser_facts(c.unwrap_or(&mut blank_c), s.unwrap_or(&mut blank_s))
}

fn parser_facts(client: &mut Parser, server: &mut Parser) -> Option<HttpFacts> {
    client.finish();
    server.finish();
    let (req, resp) = if client.response && !server.response {
        (server, client)
    } else {
        (client, server)
    };
    if !req.is_http() && !resp.is_http() {
        return None;
    }
    let h2 = req.h2.is_some() || resp.h2.is_some();
    let (rq, rs) = (!req.response, resp.response);
    let truncated =
        if rq { req.kept.truncated } else { 0 } + if rs { resp.kept.truncated } else { 0 };
    let mut unlisted = Vec::new();
    if rq {
        unlisted.append(&mut req.kept.unlisted);
    }
    if rs {
        for s in resp.kept.unlisted.drain(..) {
            if !unlisted.iter().any(|u: &Sensitive| u.label == s.label) {
                unlisted.push(s);
            }
        }
    }
    let (unlisted_sensitive, unlisted_evidence) = split(&mut unlisted);
    Some(HttpFacts {
        requests: if rq {
            std::mem::take(&mut req.kept.requests)
        } else {
            Vec::new()
        },
        responses: if rs {
            std::mem::take(&mut resp.kept.responses)
        } else {
            Vec::new()
        },
        request_count: if rq { req.kept.count } else { 0 },
        response_count: if rs { resp.kept.count } else { 0 },
        incomplete: req.lost_midway || resp.lost_midway || truncated > 0,
        truncated,
        unlisted_sensitive,
        unlisted_evidence,
        h2,
        grpc: req.kept.grpc,
    })
}

#[cfg(test)]
mod tests;
