//! Role: cleartext HTTP facts of one direction, followed online for the whole flow. HTTP/1.x
//! heads are parsed with `httparse` and bodies skipped by Content-Length or chunked framing,
//! so pipelined and keep-alive messages are all found; `PRI * HTTP/2.0` or a `101` to `h2c`
//! hands the direction to the h2c frame reader (`h2`). Only what the report needs is kept:
//! method, host, path, version, status, and which sensitive things a message carries, with
//! redacted evidence (`sensitive`). Bounded: at most `MAX_MESSAGES` messages and a 16 KiB head
//! per direction.

mod h2;
pub mod sensitive;

use sensitive::{Rules, Sensitive};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

pub const MAX_MESSAGES: usize = 64;
const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 48;
/// Request bodies of forms are looked into this far for credentials.
const MAX_FORM: usize = 4096;

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
    /// The stream could not be followed to its end (a gap inside a head, bad framing).
    pub incomplete: bool,
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
        req.chain(resp).map(|(l, e)| (l.as_str(), e.as_str()))
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing seen yet: the first bytes decide request, response, h2, or not HTTP.
    #[default]
    Start,
    Head,
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
            (Some(p), true) => p.count,
            _ => 0,
        }
    }
}

#[derive(Debug, Default)]
struct Parser {
    state: State,
    response: bool,
    rules: Rules,
    buf: Vec<u8>,
    h2: Option<Box<h2::H2Reader>>,
    requests: Vec<HttpRequest>,
    responses: Vec<HttpResponse>,
    count: u64,
    lost_midway: bool,
    grpc: bool,
    scratch: Vec<Sensitive>,
}

impl Parser {
    /// Ready for a new flow, in place (the buffers keep their capacity).
    pub fn reset(&mut self, reveal: bool) {
        self.state = State::Start;
        self.response = false;
        self.rules = Rules { reveal };
        self.buf.clear();
        self.h2 = None;
        self.requests.clear();
        self.responses.clear();
        self.count = 0;
        self.lost_midway = false;
        self.grpc = false;
    }

    pub fn is_http(&self) -> bool {
        self.count > 0 || self.h2.is_some()
    }

    /// `n` bytes the capture does not have: fine inside a body, fatal inside a head.
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
            _ => {
                self.lost_midway = true;
                self.state = State::Lost;
            }
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
                    // Decide on the first bytes; keep them while they cannot decide yet.
                    if !self.buf.is_empty() {
                        self.buf.extend_from_slice(d);
                        let first = std::mem::take(&mut self.buf);
                        match self.start(&first) {
                            Some(true) => self.feed_slow(&first),
                            Some(false) => {}
                            None => self.buf = first,
                        }
                        return;
                    }
                    match self.start(d) {
                        Some(true) => {}
                        Some(false) => return,
                        None => {
                            self.buf.extend_from_slice(d);
                            return;
                        }
                    }
                }
                State::Head => {
                    if !self.response && self.buf.is_empty() && d[0] == b'P' {
                        let n = d.len().min(h2::PREFACE.len());
                        if d[..n] == h2::PREFACE[..n] {
                            if n < h2::PREFACE.len() {
                                // The preface split across segments: keep it as a head.
                                self.buf.extend_from_slice(d);
                                return;
                            }
                            self.enter_h2(true);
                            d = &d[n..];
                            continue;
                        }
                    }
                    let used = self.head(d);
                    if used == 0 {
                        return;
                    }
                    d = &d[used..];
                }
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
                        requests: &mut self.requests,
                        responses: &mut self.responses,
                        count: &mut self.count,
                        grpc: &mut self.grpc,
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
        const MAX_UNDECIDED: usize = 256;
        if h2::is_server_start(d) {
            // An h2c server starts with a SETTINGS frame.
            self.response = true;
            self.enter_h2(false);
            return Some(true);
        }
        let need = d.len() < MAX_UNDECIDED;
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

    /// Consumes head bytes from `d`; returns how many were used (0: need more).
    fn head(&mut self, d: &[u8]) -> usize {
        if self.buf.is_empty() {
            // Usually the whole head is in one segment: parse in place, copy only when split.
            match self.parse_head(d) {
                Some(n) => n,
                None if self.state == State::Head => {
                    self.buf.extend_from_slice(&d[..d.len().min(MAX_HEAD)]);
                    d.len()
                }
                None => d.len(),
            }
        } else {
            let before = self.buf.len();
            let room = MAX_HEAD.saturating_sub(before);
            self.buf.extend_from_slice(&d[..d.len().min(room)]);
            if !self.response
                && self.buf.len() < h2::PREFACE.len()
                && h2::PREFACE.starts_with(&self.buf)
            {
                return d.len(); // the preface, split: wait for the rest
            }
            let buf = std::mem::take(&mut self.buf);
            let r = if !self.response && buf.starts_with(h2::PREFACE) {
                self.enter_h2(true);
                let rest = buf[h2::PREFACE.len()..].to_vec();
                self.buf = buf;
                self.buf.clear();
                self.feed_slow(&rest);
                return d.len();
            } else {
                self.parse_head(&buf)
            };
            self.buf = buf;
            match r {
                Some(n) => {
                    self.buf.clear();
                    n.saturating_sub(before).max(1).min(d.len())
                }
                None if self.state == State::Head && self.buf.len() >= MAX_HEAD => {
                    self.lost(true);
                    d.len()
                }
                None => d.len(),
            }
        }
    }

    /// Parses one head from `bytes`; on success records the message, sets the body state and
    /// returns the head's length. `None`: incomplete, or the state changed to Lost.
    fn parse_head(&mut self, bytes: &[u8]) -> Option<usize> {
        if self.response {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut r = httparse::Response::new(&mut headers);
            return match r.parse(bytes) {
                Ok(httparse::Status::Complete(n)) => {
                    let status = r.code.unwrap_or(0);
                    let hs = &r.headers[..];
                    self.record_response(status, hs);
                    let frame = Framing::of(hs);
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
                    Some(n)
                }
                Ok(httparse::Status::Partial) => None,
                Err(_) => {
                    self.lost(true);
                    None
                }
            };
        }
        // Requests parse into uninitialised header slots (no 1.5 KiB of zeroing per head).
        let mut slots =
            [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
        let mut r = httparse::Request::new(&mut []);
        let (method, path, version, hs, n) = match r.parse_with_uninit_headers(bytes, &mut slots) {
            Ok(httparse::Status::Complete(n)) => (
                r.method.unwrap_or(""),
                r.path.unwrap_or(""),
                r.version.unwrap_or(1),
                &r.headers[..],
                n,
            ),
            Ok(httparse::Status::Partial) => return None,
            // A request line httparse refuses (a space inside the target, as some tools
            // send): read it the way tshark does, headers still by httparse.
            Err(_) => {
                let Some((method, path, version, head_len, hs_at)) = lenient_request(bytes) else {
                    self.lost(true);
                    return None;
                };
                let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
                let Ok(httparse::Status::Complete((_, hs))) =
                    httparse::parse_headers(&bytes[hs_at..], &mut headers)
                else {
                    self.lost(true);
                    return None;
                };
                let frame = Framing::of(hs);
                self.record_request(method, path, version, hs);
                self.state = body_state(frame, false);
                return Some(head_len);
            }
        };
        let frame = Framing::of(hs);
        self.record_request(method, path, version, hs);
        self.state = if method == "CONNECT" {
            State::Opaque
        } else {
            body_state(frame, true)
        };
        Some(n)
    }

    fn lost(&mut self, midway: bool) {
        self.lost_midway |= midway && self.count > 0;
        self.state = State::Lost;
    }

    fn record_request(&mut self, method: &str, path: &str, version: u8, hs: &[httparse::Header]) {
        self.count += 1;
        if self.requests.len() >= MAX_MESSAGES {
            return;
        }
        let mut host = None;
        let mut found = std::mem::take(&mut self.scratch);
        found.clear();
        for h in hs {
            let name = h.name.as_bytes();
            if name.len() == 4 && name.eq_ignore_ascii_case(b"host") {
                host = Some(String::from_utf8_lossy(h.value).into_owned());
            } else {
                self.rules.header(name, h.value, &mut found);
            }
        }
        if let Some(q) = memchr::memchr(b'?', path.as_bytes()) {
            self.rules
                .params("query", &path.as_bytes()[q + 1..], &mut found);
        }
        let (sensitive, evidence) = split(&mut found);
        self.scratch = found;
        self.requests.push(HttpRequest {
            method: static_method(method),
            host,
            path: path.to_string(),
            version: Cow::Borrowed(if version == 0 { "1.0" } else { "1.1" }),
            sensitive,
            evidence,
        });
    }

    fn record_response(&mut self, status: u16, hs: &[httparse::Header]) {
        self.count += 1;
        if self.responses.len() >= MAX_MESSAGES {
            return;
        }
        let mut found = std::mem::take(&mut self.scratch);
        found.clear();
        for h in hs {
            self.rules.header(h.name.as_bytes(), h.value, &mut found);
        }
        let (sensitive, evidence) = split(&mut found);
        self.scratch = found;
        self.responses.push(HttpResponse {
            status,
            sensitive,
            evidence,
        });
    }

    /// A form body has been read (up to `MAX_FORM`): note credential parameters.
    fn form_done(&mut self) {
        let body = std::mem::take(&mut self.buf);
        let mut found = Vec::new();
        self.rules.params("form", &body, &mut found);
        if let Some(r) = self.requests.last_mut() {
            for s in found {
                if !r.sensitive.contains(&s.label) {
                    r.sensitive.push(s.label);
                    r.evidence.push(s.evidence);
                }
            }
        }
        self.buf = body;
        self.buf.clear();
    }
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

/// (method, path, minor version, head length, offset of the headers) of a request whose line
/// httparse rejects but which ends in ` HTTP/1.x`; `None` when the head is not complete.
fn lenient_request(b: &[u8]) -> Option<(&str, &str, u8, usize, usize)> {
    let nl = memchr::memchr(b'\n', b)?;
    let line = b[..nl].strip_suffix(b"\r").unwrap_or(&b[..nl]);
    let line = std::str::from_utf8(line).ok()?;
    let (method, rest) = line.split_once(' ')?;
    let (target, version) = rest.rsplit_once(' ')?;
    let minor = match version {
        "HTTP/1.0" => 0,
        "HTTP/1.1" => 1,
        _ => return None,
    };
    let path = target.split(' ').next()?;
    let end = memchr::memmem::find(b, b"\r\n\r\n").map(|i| i + 4)?;
    Some((method, path, minor, end, nl + 1))
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
            let n = h.name.as_bytes();
            match n.len() {
                17 if n.eq_ignore_ascii_case(b"transfer-encoding") => {
                    f.chunked |= h
                        .value
                        .split(|&b| b == b',')
                        .any(|t| trim_ascii(t).eq_ignore_ascii_case(b"chunked"));
                }
                14 if n.eq_ignore_ascii_case(b"content-length") => {
                    f.length = std::str::from_utf8(h.value)
                        .ok()
                        .and_then(|v| v.trim().parse::<u64>().ok());
                }
                12 if n.eq_ignore_ascii_case(b"content-type") => {
                    f.form = h.value.len() >= 33
                        && h.value[..33].eq_ignore_ascii_case(b"application/x-www-form-urlencoded");
                }
                7 if n.eq_ignore_ascii_case(b"upgrade") => {
                    f.upgrade_h2c |= h
                        .value
                        .split(|&b| b == b',')
                        .any(|t| trim_ascii(t).eq_ignore_ascii_case(b"h2c"));
                }
                _ => {}
            }
        }
        f
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
    let (req, resp) = if client.response && !server.response {
        (server, client)
    } else {
        (client, server)
    };
    if !req.is_http() && !resp.is_http() {
        return None;
    }
    let h2 = req.h2.is_some() || resp.h2.is_some();
    Some(HttpFacts {
        requests: if req.response {
            Vec::new()
        } else {
            std::mem::take(&mut req.requests)
        },
        responses: if resp.response {
            std::mem::take(&mut resp.responses)
        } else {
            Vec::new()
        },
        request_count: if req.response { 0 } else { req.count },
        response_count: if resp.response { resp.count } else { 0 },
        incomplete: req.lost_midway || resp.lost_midway,
        h2,
        grpc: req.grpc,
    })
}

#[cfg(test)]
mod tests;
