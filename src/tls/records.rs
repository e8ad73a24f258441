//! TLS record walker: follows one direction's reassembled bytes record by record, online, for
//! the whole flow (not only the bytes kept for parsing), and logs each record's packet order,
//! content type, length and first two body bytes. That log is what the wire shows of TLS 1.3
//! after the ServerHello, and the basis of the inference (record sizes and their order across
//! directions). Bounded: the first `MAX_EVENTS` records, plus the last few alert records.
//!
//! The walker can start after a cleartext prefix (HTTP CONNECT, STARTTLS, PostgreSQL
//! SSLRequest): until it is in sync it looks for a TLS handshake record header at the start of
//! the stream, after a line feed, or after the 8-byte SSLRequest, within the first 4 KiB.

/// Records logged per direction (a handshake needs about ten).
pub const MAX_EVENTS: usize = 48;
/// Alert records kept after the log is full (close_notify at the end of a long flow).
pub const MAX_TAIL_ALERTS: usize = 8;
/// How far into a stream a cleartext prefix may reach.
const SYNC_WINDOW: usize = 4096;
/// RFC 8446 §5.2: a TLSCiphertext is at most 2^14 + 256 bytes; TLS 1.2 allows 2^14 + 2048.
const MAX_RECORD_LEN: usize = 16384 + 2048;

pub mod content {
    pub const CHANGE_CIPHER_SPEC: u8 = 20;
    pub const ALERT: u8 = 21;
    pub const HANDSHAKE: u8 = 22;
    pub const APPLICATION_DATA: u8 = 23;
    pub const HEARTBEAT: u8 = 24;
}

/// One record as seen on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecordEvent {
    /// Flow-wide packet number (both directions) of the packet that completed the record.
    pub order: u32,
    pub content_type: u8,
    pub version: u16,
    pub len: u16,
    /// The first two body bytes (an alert's level and description when in clear).
    pub head: [u8; 2],
    /// Stream offset of the record header.
    pub offset: u32,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Unsynced,
    Synced,
    /// Not TLS here, or the stream had a gap: nothing more is logged.
    Lost,
}

#[derive(Debug, Default)]
pub struct RecordWalker {
    state: State,
    /// Stream offset of the first record, once in sync.
    pub start: Option<u32>,
    /// Next stream offset to walk.
    pos: u64,
    hdr: [u8; 5],
    hdr_have: u8,
    body_left: u32,
    cur: RecordEvent,
    pub events: Vec<RecordEvent>,
    pub tail_alerts: Vec<RecordEvent>,
    /// Records seen in all (logged or not).
    pub records: u32,
    /// An application_data record was seen: the cleartext handshake of this direction is over.
    pub app_data_seen: bool,
    /// The stream lost sync (gap, snaplen cut, or a header that is not TLS) after syncing.
    pub lost_after_sync: bool,
    /// Times the walker found its way back to a record boundary after losing sync.
    pub resyncs: u32,
    /// The stream began with an SSLv2-format ClientHello of this many bytes (header
    /// included); the TLS records begin after it.
    pub sslv2_hello: Option<u32>,
    scanned: usize,
}

impl RecordWalker {
    pub fn reset(&mut self) {
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        let mut tail = std::mem::take(&mut self.tail_alerts);
        tail.clear();
        *self = RecordWalker {
            events,
            tail_alerts: tail,
            ..RecordWalker::default()
        };
    }

    pub fn synced(&self) -> bool {
        self.state == State::Synced
    }

    /// The stream can no longer be followed (a gap, or bytes the capture did not keep).
    pub fn lose(&mut self) {
        if self.state == State::Synced {
            self.lost_after_sync = true;
        }
        self.state = State::Lost;
    }

    /// `n` bytes of the stream that the capture does not have (a gap, or a snaplen cut). The
    /// walker stays in sync when they fall inside one record's body (records are long, packet
    /// headers short), and loses it otherwise.
    pub fn skip(&mut self, at: u64, n: u64, order: u32) {
        if self.state == State::Unsynced {
            self.state = State::Lost;
        }
        if self.state != State::Synced || n == 0 || at + n <= self.pos {
            return;
        }
        let n = n - self.pos.saturating_sub(at);
        let body_off = usize::from(self.cur.len) - self.body_left as usize;
        // Inside a body (header complete, first two bytes seen) that covers all `n` bytes.
        if self.hdr_have == 5 && u64::from(self.body_left) >= n && body_off >= 2 {
            self.body_left -= n as u32;
            self.pos = at + n;
            if self.body_left == 0 {
                self.finish_record(order);
            }
        } else {
            self.lose();
        }
    }

    /// In-order bytes `chunk` at stream offset `at`; `kept` is the collected prefix of the
    /// stream (kept[i] is stream offset i), already including `chunk` as far as it was kept.
    /// `collecting` says whether `kept` may still grow. `order` is the packet's flow-wide number.
    pub fn feed(&mut self, at: u64, chunk: &[u8], kept: &[u8], collecting: bool, order: u32) {
        if self.state == State::Lost && self.lost_after_sync && self.resync_at(at, chunk) {
            self.walk(at, chunk, order);
            return;
        }
        match self.state {
            State::Lost => {}
            State::Synced => self.walk(at, chunk, order),
            State::Unsynced => {
                if never_tls(kept) {
                    self.state = State::Lost;
                } else if let Some(x) = self.find_start(kept) {
                    self.state = State::Synced;
                    self.start = Some(x as u32);
                    self.pos = x as u64;
                    self.walk(0, kept, order);
                    self.walk(at, chunk, order);
                } else if !collecting || kept.len() >= SYNC_WINDOW || (at as usize) > kept.len() {
                    self.state = State::Lost;
                }
            }
        }
    }

    /// After losing sync, a segment that starts with a record header of this session's record
    /// version (TLS stacks start records where their writes start) puts the walker back in sync,
    /// as tshark does.
    fn resync_at(&mut self, at: u64, chunk: &[u8]) -> bool {
        let Some(h) = chunk.get(..5) else {
            return false;
        };
        let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
        let version = self.cur.version.to_be_bytes();
        let ok = (content::CHANGE_CIPHER_SPEC..=content::APPLICATION_DATA).contains(&h[0])
            && h[1..3] == version
            && len > 0
            && len <= MAX_RECORD_LEN;
        if ok {
            self.state = State::Synced;
            self.pos = at;
            self.hdr_have = 0;
            self.body_left = 0;
            self.resyncs += 1;
        }
        ok
    }

    /// A plausible handshake record header at the start, after a line feed, or after an
    /// 8-byte PostgreSQL SSLRequest / 1-byte 'S' answer.
    fn find_start(&mut self, kept: &[u8]) -> Option<usize> {
        let limit = kept.len().min(SYNC_WINDOW);
        if self.scanned == 0 && self.sslv2_hello.is_none() {
            if let Some(n) = crate::classify::tls::sslv2_client_hello_len(kept) {
                // RFC 5246 E.2: an old client's SSLv2-format hello, answered by a TLS
                // ServerHello; its next records (ClientKeyExchange…) are TLS records.
                self.sslv2_hello = Some(n as u32);
                self.records += 1;
            }
        }
        if let Some(n) = self.sslv2_hello {
            let n = n as usize;
            let h = kept.get(n..n + 5)?;
            let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
            let ok = (content::CHANGE_CIPHER_SPEC..=content::APPLICATION_DATA).contains(&h[0])
                && h[1] == 3
                && h[2] <= 4
                && len > 0
                && len <= MAX_RECORD_LEN;
            // Anything else after it is SSL 2.0 itself (CLIENT-MASTER-KEY): not followed.
            self.scanned = limit;
            return ok.then_some(n);
        }
        // At the start any record type will do (a server may answer with an alert); after a
        // cleartext prefix only a handshake record, so that text is not taken for TLS.
        let plausible = |i: usize| -> Option<bool> {
            let h = kept.get(i..i + 5)?;
            let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
            let kind_ok = if i == 0 {
                (content::CHANGE_CIPHER_SPEC..=content::APPLICATION_DATA).contains(&h[0])
            } else {
                h[0] == content::HANDSHAKE
            };
            Some(kind_ok && h[1] == 3 && h[2] <= 4 && len > 0 && len <= MAX_RECORD_LEN)
        };
        let mut i = self.scanned;
        while i < limit {
            let candidate = i == 0
                || (i == 1 && kept[0] == b'S')
                || (i == 8 && kept.starts_with(&[0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]))
                || kept[i - 1] == b'\n';
            if candidate {
                match plausible(i) {
                    Some(true) => return Some(i),
                    Some(false) => {}
                    // Not enough bytes yet to judge this position: look again next time.
                    None => {
                        self.scanned = i;
                        return None;
                    }
                }
            }
            i += 1;
        }
        self.scanned = i;
        None
    }

    fn walk(&mut self, at: u64, bytes: &[u8], order: u32) {
        let end = at + bytes.len() as u64;
        if end <= self.pos || self.state != State::Synced {
            return;
        }
        let mut i = (self.pos.saturating_sub(at)) as usize;
        // Fast path: the rest of this segment lies inside the current record's body.
        let rest = bytes.len() - i;
        let body_off = usize::from(self.cur.len) - self.body_left as usize;
        if self.hdr_have == 5 && body_off >= 2 && (self.body_left as usize) > rest {
            self.body_left -= rest as u32;
            self.pos = end;
            return;
        }
        while i < bytes.len() && self.state == State::Synced {
            // Fast path: a whole header in this segment.
            if self.body_left == 0
                && (self.hdr_have == 0 || self.hdr_have == 5)
                && bytes.len() - i >= 5
            {
                self.hdr.copy_from_slice(&bytes[i..i + 5]);
                self.hdr_have = 5;
                i += 5;
                self.start_record(at + i as u64 - 5);
                if self.state == State::Synced && self.body_left == 0 {
                    self.finish_record(order);
                }
                continue;
            }
            if self.body_left == 0 && self.hdr_have == 5 {
                // The previous record ended exactly here: a new header starts.
                self.hdr_have = 0;
            }
            if self.body_left == 0 && self.hdr_have < 5 {
                self.hdr[self.hdr_have as usize] = bytes[i];
                self.hdr_have += 1;
                i += 1;
                if self.hdr_have == 5 {
                    self.start_record(at + i as u64 - 5);
                    if self.state == State::Synced && self.body_left == 0 {
                        self.finish_record(order);
                    }
                }
                continue;
            }
            let take = (self.body_left as usize).min(bytes.len() - i);
            let body_off = usize::from(self.cur.len) - self.body_left as usize;
            if body_off < 2 {
                let n = (2 - body_off).min(take);
                self.cur.head[body_off..body_off + n].copy_from_slice(&bytes[i..i + n]);
            }
            i += take;
            self.body_left -= take as u32;
            if self.body_left == 0 {
                self.finish_record(order);
            }
        }
        self.pos = end;
    }

    fn start_record(&mut self, offset: u64) {
        let h = self.hdr;
        let len = usize::from(u16::from_be_bytes([h[3], h[4]]));
        let type_ok = (content::CHANGE_CIPHER_SPEC..=content::HEARTBEAT).contains(&h[0]);
        // Zero-length records are legal only for application data (TLS 1.0 CBC splitting).
        let len_ok = len <= MAX_RECORD_LEN && (len > 0 || h[0] == content::APPLICATION_DATA);
        if !type_ok || h[1] != 3 || h[2] > 4 || !len_ok {
            self.lose();
            return;
        }
        self.cur = RecordEvent {
            order: 0,
            content_type: h[0],
            version: u16::from_be_bytes([h[1], h[2]]),
            len: len as u16,
            head: [0, 0],
            offset: offset.min(u64::from(u32::MAX)) as u32,
        };
        self.body_left = len as u32;
    }

    fn finish_record(&mut self, order: u32) {
        self.cur.order = order;
        self.hdr_have = 0;
        self.records += 1;
        if self.cur.content_type == content::APPLICATION_DATA {
            self.app_data_seen = true;
        }
        if self.events.len() < MAX_EVENTS {
            if self.events.capacity() == 0 {
                self.events.reserve_exact(16);
            }
            self.events.push(self.cur);
        } else if self.cur.content_type == content::ALERT {
            if self.tail_alerts.len() == MAX_TAIL_ALERTS {
                self.tail_alerts.remove(0);
            }
            self.tail_alerts.push(self.cur);
        }
    }
}

/// HTTP switches to TLS only through CONNECT: a stream that starts with another request, or
/// with a status line that is not 2xx, needs no scan for a TLS start.
fn never_tls(kept: &[u8]) -> bool {
    if kept.len() < 9 || kept.starts_with(b"CONNECT ") {
        return false;
    }
    if let Some(status) = kept.strip_prefix(b"HTTP/1.") {
        if status.get(2) != Some(&b'2') {
            return true;
        }
        // A proxy's "200 Connection established" has no body; a response with one is not it.
        let head = &kept[..kept.len().min(SYNC_WINDOW)];
        return crate::classify::http::header_lines(head).any(|line| {
            [
                &b"content-length:"[..],
                b"transfer-encoding:",
                b"content-type:",
            ]
            .iter()
            .any(|name| crate::classify::http::strip_name(line, name).is_some())
        });
    }
    crate::classify::http::is_request_start(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(t: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![t, 3, 3, (body.len() >> 8) as u8, body.len() as u8];
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn records_split_at_every_byte_are_logged_once_each() {
        let mut stream = rec(22, &[1, 0, 0, 2, 3, 3]);
        stream.extend(rec(21, &[2, 40]));
        stream.extend(rec(23, &[0xaa; 300]));
        for split in 1..stream.len() {
            let mut w = RecordWalker::default();
            let (a, b) = stream.split_at(split);
            w.feed(0, a, a, true, 1);
            w.feed(split as u64, b, &stream, true, 2);
            let kinds: Vec<(u8, u16, [u8; 2])> = w
                .events
                .iter()
                .map(|e| (e.content_type, e.len, e.head))
                .collect();
            assert_eq!(
                kinds,
                vec![(22, 6, [1, 0]), (21, 2, [2, 40]), (23, 300, [0xaa, 0xaa])],
                "split at {split}"
            );
            assert!(w.app_data_seen);
        }
    }

    #[test]
    fn syncs_after_an_http_connect_prefix_and_not_on_plain_text() {
        let mut stream = b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n".to_vec();
        let at = stream.len();
        stream.extend(rec(22, &[1, 0, 0, 1, 0]));
        let mut w = RecordWalker::default();
        w.feed(0, &stream, &stream, true, 1);
        assert_eq!(w.start, Some(at as u32));
        assert_eq!(w.events.len(), 1);

        let text = vec![b'x'; SYNC_WINDOW + 10];
        let mut w = RecordWalker::default();
        w.feed(0, &text, &text, false, 1);
        assert!(!w.synced() && w.events.is_empty());
    }

    #[test]
    fn bytes_missing_inside_a_record_body_keep_sync_and_missing_headers_lose_it() {
        // A snaplen-cut capture: 30 bytes of a 221-byte record, the rest missing.
        let mut kept = vec![22u8, 3, 1, 0, 221, 1];
        kept.resize(30, 0);
        let mut w = RecordWalker::default();
        w.feed(0, &kept, &kept, true, 1);
        w.skip(30, 196, 1);
        assert_eq!((w.records, w.synced()), (1, true));
        let next = rec(21, &[1, 0]);
        w.feed(226, &next, &kept, false, 2);
        assert_eq!(
            w.events.last().map(|e| (e.content_type, e.head)),
            Some((21, [1, 0]))
        );
        // Missing bytes that would contain the next header: lost.
        w.skip(233, 10, 3);
        assert!(!w.synced() && w.lost_after_sync);
    }

    #[test]
    fn a_header_that_is_not_tls_loses_sync() {
        let mut stream = rec(22, &[1, 2, 3]);
        stream.extend_from_slice(b"GET / HTTP/1.1\r\n");
        let mut w = RecordWalker::default();
        w.feed(0, &stream, &stream, true, 1);
        assert_eq!(w.events.len(), 1);
        assert!(w.lost_after_sync);
    }
}
