//! One direction of a TCP connection: sequence tracking by offset with wrapping arithmetic,
//! out-of-order segments held until the hole fills, overlaps and retransmissions trimmed, holes
//! that never fill recorded as gaps. Only the first `cap` in-order bytes are kept (that is all
//! classification needs); after that, or after a gap, only sequence numbers are tracked.
//! Memory: the collected prefix and the out-of-order bytes held share one budget of `cap` bytes
//! per direction; an out-of-order segment that does not fit is held as sequence numbers only
//! and counted (`ooo_dropped`), and its bytes become a hole for the parsers when delivered.

/// At most this many out-of-order segments wait per direction before the hole is declared a gap.
pub(crate) const MAX_PENDING: usize = 64;
/// A segment further ahead than this is not waited for: the hole becomes a gap at once.
const MAX_AHEAD: u32 = 8 << 20;

use crate::tls::records::RecordWalker;

#[derive(Debug, Default)]
pub(crate) struct Pending {
    seq: u32,
    wire_len: u32,
    /// Captured bytes (a prefix of them, or none), held within the direction's budget.
    data: Vec<u8>,
}

/// Reassembly state and counters of one direction.
#[derive(Debug, Default)]
pub struct Stream {
    pub packets: u64,
    /// TCP payload bytes on the wire (from IP lengths), retransmissions included.
    pub bytes: u64,
    /// Holes in the sequence space that were never filled (capture loss).
    pub gaps: u32,
    /// Segments that carried only bytes already seen.
    pub retransmits: u32,
    /// Segments that arrived ahead of a hole.
    pub out_of_order: u32,
    /// Segments whose payload was cut by the capture's snaplen.
    pub snaplen_cut: u32,
    /// Out-of-order segments whose bytes (all or some) were not held because the direction's
    /// budget (`cap`, shared with `data`) was spent: the parsers see a hole there.
    pub ooo_dropped: u32,
    /// The first in-order payload bytes, up to the cap.
    pub data: Vec<u8>,
    /// `data` stopped early because of a gap or a snaplen cut (not because it was full).
    pub data_broken: bool,
    started: bool,
    next_seq: u32,
    collecting: bool,
    pending: Vec<Pending>,
    /// Highest acknowledgement the peer sent for this direction.
    peer_ack: Option<u32>,
    pub(super) fin_seq: Option<u32>,
    pub(super) fin_acked: bool,
    /// Bytes delivered in order so far (the stream offset of the next byte).
    delivered: u64,
    /// Captured bytes held by `pending`.
    pending_bytes: usize,
    /// The TLS record walker, fed with every in-order byte.
    pub tls: RecordWalker,
    /// The HTTP parser, fed with every in-order byte.
    pub http: crate::http::HttpStream,
}

impl Stream {
    /// Resets for reuse by a new flow, keeping the buffer's capacity.
    pub(super) fn reset(&mut self, reveal_secrets: bool) {
        let mut data = std::mem::take(&mut self.data);
        data.clear();
        let mut pending = std::mem::take(&mut self.pending);
        pending.clear();
        let mut http = std::mem::take(&mut self.http);
        http.reset(reveal_secrets);
        // The walker's record log keeps its capacity too (it was freed and regrown per flow).
        let mut tls = std::mem::take(&mut self.tls);
        tls.reset();
        *self = Stream {
            data,
            pending,
            http,
            tls,
            collecting: true,
            ..Stream::default()
        };
    }

    /// Bytes this direction holds now: the collected prefix and the out-of-order bytes waiting.
    /// Never more than the `cap` passed to `on_data`.
    pub fn held_bytes(&self) -> usize {
        self.data.len() + self.pending_bytes
    }

    /// This side sent a FIN.
    pub fn fin_seen(&self) -> bool {
        self.fin_seq.is_some()
    }

    /// A SYN from this side fixes the initial sequence number.
    pub(super) fn on_syn(&mut self, seq: u32) {
        if !self.started {
            self.started = true;
            self.next_seq = seq.wrapping_add(1);
        }
    }

    /// A segment with payload (captured bytes in `data`, `wire_len` bytes on the wire).
    /// `order` is the flow-wide number of the packet (both directions), for the TLS log.
    pub(super) fn on_data(&mut self, seq: u32, data: &[u8], wire_len: u32, cap: usize, order: u32) {
        if wire_len == 0 {
            return;
        }
        if (data.len() as u32) < wire_len {
            self.snaplen_cut += 1;
        }
        if !self.started {
            // Mid-stream start: the first byte we see is offset zero.
            self.started = true;
            self.next_seq = seq;
        }
        let off = seq.wrapping_sub(self.next_seq) as i32;
        if off <= 0 {
            let skip = off.unsigned_abs();
            if skip >= wire_len {
                self.retransmits += 1;
                return;
            }
            let data = data.get(skip as usize..).unwrap_or(&[]);
            self.accept(data, wire_len - skip, cap, order);
            self.drain(cap, order);
        } else {
            self.out_of_order += 1;
            // Bytes are held only for someone who will read them: the collector, or the TLS
            // record walker (which follows the whole flow). Held and collected bytes share the
            // `cap` budget, so a direction never keeps more than `cap` bytes however its
            // segments are ordered; what does not fit waits as sequence numbers only.
            let want = self.collecting || self.tls.synced();
            let keep = if want {
                let room = cap.saturating_sub(self.data.len() + self.pending_bytes);
                if room < data.len() {
                    self.ooo_dropped += 1;
                }
                data[..data.len().min(room)].to_vec()
            } else {
                Vec::new()
            };
            self.pending_bytes += keep.len();
            if self.pending.len() == self.pending.capacity() {
                // Doubling, but never past the most that can wait at once (the count cap + 1).
                let want = (self.pending.capacity() * 2).clamp(4, MAX_PENDING + 1);
                self.pending
                    .reserve_exact(want.saturating_sub(self.pending.len()));
            }
            self.pending.push(Pending {
                seq,
                wire_len,
                data: keep,
            });
            if self.pending.len() > MAX_PENDING || off as u32 > MAX_AHEAD {
                self.skip_hole(cap, order);
            }
        }
    }

    /// An acknowledgement from the peer for this direction. When the peer acknowledges bytes
    /// beyond a hole, the hole was delivered to the host but not to the capture: a gap.
    pub(super) fn on_peer_ack(&mut self, ack: u32, cap: usize, order: u32) {
        if !self.started {
            return;
        }
        match self.peer_ack {
            Some(prev) if (ack.wrapping_sub(prev) as i32) <= 0 => {}
            _ => self.peer_ack = Some(ack),
        }
        if let Some(fin) = self.fin_seq {
            if ack == fin.wrapping_add(1) {
                self.fin_acked = true;
            }
        }
        if !self.pending.is_empty() && (ack.wrapping_sub(self.next_seq) as i32) > 0 {
            self.skip_hole(cap, order);
        }
    }

    pub(super) fn on_fin(&mut self, seq: u32, wire_len: u32) {
        if !self.started {
            self.started = true;
            self.next_seq = seq;
        }
        self.fin_seq = Some(seq.wrapping_add(wire_len));
    }

    /// End of the flow: holes still waiting are gaps, and so are bytes the peer acknowledged
    /// that the capture never showed.
    pub(super) fn finish(&mut self, cap: usize, order: u32) {
        while !self.pending.is_empty() {
            self.skip_hole(cap, order);
        }
        if let Some(ack) = self.peer_ack {
            let end = match self.fin_seq {
                Some(f) if f == self.next_seq => self.next_seq.wrapping_add(1),
                _ => self.next_seq,
            };
            let ahead = ack.wrapping_sub(end) as i32;
            if ahead > 0 && ahead as u32 <= MAX_AHEAD {
                self.gaps += 1;
                self.stop_collecting(true);
            }
        }
    }

    fn accept(&mut self, data: &[u8], wire_len: u32, cap: usize, order: u32) {
        let at = self.delivered;
        if self.collecting {
            let room = cap.saturating_sub(self.data.len());
            let take = data.len().min(room);
            let need = self.data.len() + take;
            if need > self.data.capacity() {
                // Doubling, but never past `cap`: the buffer's capacity is what the bound counts.
                let want = (self.data.capacity() * 2).max(need).min(cap);
                self.data.reserve_exact(want - self.data.len());
            }
            self.data.extend_from_slice(&data[..take]);
        }
        self.tls.feed(at, data, &self.data, self.collecting, order);
        self.http.feed(data);
        if (data.len() as u32) < wire_len {
            // Bytes the capture did not keep (snaplen, or data not held while out of order).
            let missing = u64::from(wire_len) - data.len() as u64;
            self.tls.skip(at + data.len() as u64, missing, order);
            self.http.skip(missing);
            self.stop_collecting(true);
        } else if self.data.len() >= cap {
            self.stop_collecting(false);
        } else if self.tls.synced() && self.tls.app_data_seen {
            // The cleartext handshake of this direction is over: nothing more to keep.
            self.stop_collecting(false);
        }
        self.delivered += u64::from(wire_len);
        self.next_seq = self.next_seq.wrapping_add(wire_len);
    }

    fn stop_collecting(&mut self, broken: bool) {
        if self.collecting {
            self.collecting = false;
            self.data_broken = broken;
        }
    }

    /// Delivers every pending segment that now starts at or before `next_seq`.
    fn drain(&mut self, cap: usize, order: u32) {
        while let Some(i) = self
            .pending
            .iter()
            .position(|p| (p.seq.wrapping_sub(self.next_seq) as i32) <= 0)
        {
            let p = self.pending.swap_remove(i);
            self.pending_bytes -= p.data.len();
            let skip = self.next_seq.wrapping_sub(p.seq);
            if skip < p.wire_len {
                let data = p.data.get(skip as usize..).unwrap_or(&[]);
                self.accept(data, p.wire_len - skip, cap, order);
            } else {
                self.retransmits += 1;
            }
        }
        self.trim_pending(cap);
    }

    /// The prefix grew while bytes were waiting: give up the bytes of the segments furthest
    /// ahead (they keep their sequence numbers) until the direction is within `cap` again.
    fn trim_pending(&mut self, cap: usize) {
        while self.data.len() + self.pending_bytes > cap {
            let next = self.next_seq;
            let Some(p) = self
                .pending
                .iter_mut()
                .filter(|p| !p.data.is_empty())
                .max_by_key(|p| p.seq.wrapping_sub(next))
            else {
                return;
            };
            self.pending_bytes -= p.data.len();
            p.data = Vec::new();
            self.ooo_dropped += 1;
        }
    }

    /// Gives up on the hole before the nearest pending segment: count a gap, jump, deliver.
    fn skip_hole(&mut self, cap: usize, order: u32) {
        let next = self
            .pending
            .iter()
            .map(|p| p.seq)
            .min_by_key(|s| s.wrapping_sub(self.next_seq) as i32);
        if let Some(seq) = next {
            let hole = seq.wrapping_sub(self.next_seq) as i32;
            if hole > 0 {
                self.gaps += 1;
                self.stop_collecting(true);
                self.tls.skip(self.delivered, hole as u64, order);
                self.http.skip(hole as u64);
                self.next_seq = seq;
                self.delivered += hole as u64;
            }
            self.drain(cap, order);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream() -> Stream {
        let mut s = Stream::default();
        s.reset(false);
        s
    }

    #[test]
    fn out_of_order_overlap_and_retransmit_reassemble_in_order() {
        let mut s = stream();
        s.on_syn(1000);
        s.on_data(1007, b"world!", 6, 64, 1); // ahead of a one-byte hole at 1006
        s.on_data(1001, b"hello", 5, 64, 1);
        assert_eq!(s.data, b"hello");
        s.on_data(1003, b"llo ", 4, 64, 1); // overlaps three bytes, fills the hole
        assert_eq!(s.data, b"hello world!");
        s.on_data(1001, b"hello", 5, 64, 1);
        assert_eq!((s.retransmits, s.out_of_order, s.gaps), (1, 1, 0));
    }

    /// Issue 11: out-of-order bytes were held without a byte limit while collecting (64
    /// segments of up to 64 KiB per direction). Now they share the `cap` budget with the
    /// collected prefix; what does not fit is counted, and arrives as a hole.
    #[test]
    fn out_of_order_bytes_share_the_cap_with_the_collected_prefix() {
        let mut s = stream();
        s.on_syn(0);
        s.on_data(1, b"ab", 2, 16, 1);
        for i in 0..40u32 {
            s.on_data(10 + 8 * i, &[b'x'; 8], 8, 16, 1);
            assert!(s.held_bytes() <= 16, "{} held", s.held_bytes());
        }
        // 14 bytes of room: the first segment whole, 6 bytes of the second, nothing after.
        assert_eq!((s.out_of_order, s.ooo_dropped), (40, 39));
        s.on_data(3, b"cdefghi", 7, 16, 1);
        assert_eq!(s.data, b"abcdefghixxxxxxx");
        assert_eq!(s.gaps, 0);
        assert!(s.held_bytes() <= 16);
    }

    #[test]
    fn sequence_wraps_around_zero() {
        let mut s = stream();
        s.on_syn(u32::MAX - 2); // first data byte at MAX-1
        s.on_data(u32::MAX - 1, b"ab", 2, 64, 1);
        s.on_data(0, b"cd", 2, 64, 1);
        s.on_data(4, b"gh", 2, 64, 1);
        s.on_data(2, b"ef", 2, 64, 1);
        assert_eq!(s.data, b"abcdefgh");
        assert_eq!(s.gaps, 0);
    }

    #[test]
    fn peer_ack_past_a_hole_declares_a_gap_and_stops_collecting() {
        let mut s = stream();
        s.on_syn(0);
        s.on_data(1, b"abc", 3, 64, 1);
        s.on_data(10, b"xyz", 3, 64, 1);
        s.on_peer_ack(13, 64, 1);
        assert_eq!(s.gaps, 1);
        assert_eq!(s.data, b"abc");
        assert!(s.data_broken);
        s.on_data(13, b"more", 4, 64, 1);
        assert_eq!((s.bytes_tracked(), s.gaps), (16, 1));
    }

    #[test]
    fn cap_bounds_the_kept_bytes_and_ack_beyond_end_is_a_gap_at_finish() {
        let mut s = stream();
        s.on_syn(0);
        s.on_data(1, &[7u8; 100], 100, 16, 1);
        assert_eq!(s.data.len(), 16);
        assert!(!s.data_broken);
        s.on_peer_ack(201, 16, 1); // 100 bytes acknowledged that we never saw
        s.finish(16, 1);
        assert_eq!(s.gaps, 1);
    }

    #[test]
    fn snaplen_cut_stops_collection_but_keeps_sequence() {
        let mut s = stream();
        s.on_syn(0);
        s.on_data(1, b"ab", 10, 64, 1);
        s.on_data(11, b"cdef", 4, 64, 1);
        assert_eq!(
            (s.data.as_slice(), s.snaplen_cut, s.gaps),
            (&b"ab"[..], 1, 0)
        );
        assert_eq!(s.bytes_tracked(), 14);
    }

    impl Stream {
        fn bytes_tracked(&self) -> u32 {
            self.next_seq.wrapping_sub(1)
        }
    }
}
