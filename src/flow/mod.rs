//! Flow table: TCP segments to bidirectional flows. A flow is emitted (handed to the caller's
//! `emit` callback) when it ends: both FINs acknowledged, a RST, idle for `idle_timeout` of
//! capture time, evicted because the table is full, or at the end of input.
//!
//! Memory is bounded: at most `max_flows` live flows, each holding at most `collect_bytes` per
//! direction (kept prefix and out-of-order bytes together), tombstones capped; the whole bound
//! is `FlowConfig::memory_bound` (docs/memory.md). Flow slots (and their buffers) are reused, so the steady state allocates nothing
//! per packet. A closed flow leaves a small tombstone so that its late retransmissions and
//! ACKs are not mistaken for a new mid-stream flow; a new SYN on the same 4-tuple does start one.

pub mod quic;
mod stream;

pub use stream::Stream;

use crate::wire::{Addr, LinkInfo, Segment};
use rustc_hash::FxHashMap;

/// Limits and timeouts of the flow table.
#[derive(Debug, Clone, Copy)]
pub struct FlowConfig {
    /// A flow with no packet for this long (capture time) is emitted with end `idle`.
    pub idle_timeout_ns: u64,
    /// Live flows at most; beyond, the least recently active are evicted (and counted).
    pub max_flows: usize,
    /// In-order payload bytes kept per direction for classification.
    pub collect_bytes: usize,
    /// How long a closed flow's tombstone absorbs late packets.
    pub tombstone_ns: u64,
    /// Keep credential values in the HTTP evidence instead of redacting them
    /// (`--show-secrets`).
    pub reveal_secrets: bool,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            idle_timeout_ns: 120_000_000_000,
            max_flows: 65_536,
            collect_bytes: 16 * 1024,
            tombstone_ns: 60_000_000_000,
            reveal_secrets: false,
        }
    }
}

/// What the HTTP reader of one direction may hold on the heap (HTTP/1.x head buffer, the
/// messages kept, h2c header-block and HPACK state). An allowance the bound counts, not a cap
/// enforced here: `src/http` keeps to it (`http::HEAP_PER_DIRECTION`, which a unit test holds
/// to this figure; docs/memory.md).
pub const HTTP_ALLOWANCE: usize = 96 * 1024;
/// Bookkeeping per heap allocation (glibc: an 8-byte header, 16-byte granularity), rounded up.
const MALLOC_OVERHEAD: usize = 32;
/// Buffers that exist once, not per flow: the reader's buffer for the largest packet, a
/// decrypted QUIC Initial, the record being formatted.
const TRANSIENT: usize = 256 * 1024;

/// The analysis state's worst case for a configuration, by the formula in docs/memory.md,
/// from the sizes of the real types (`size_of`), not estimates. The binary's own baseline (code,
/// libc, stdio; measured, see the docs) comes on top.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBound {
    /// Bytes one TCP flow may hold: its slot and both directions' buffers.
    pub per_flow: usize,
    /// The TCP index (live flows and tombstones), at its largest, during its last resize.
    pub index: usize,
    /// Bytes one QUIC flow may hold, its table entry included.
    pub per_quic_flow: usize,
    /// QUIC flows at most (`min(max_flows, MAX_QUIC_FLOWS)`).
    pub quic_flows: usize,
    /// The QUIC table's bucket array beyond the entries, at its largest.
    pub quic_index: usize,
    /// The TLS caches kept across flows (JA4 by ClientHello shape, certificate summaries by
    /// DER): bounded in entries by `src/tls`; each key is at most `collect_bytes` (it comes
    /// from the kept bytes), a certificate's summary and its JSON at most 7 × that.
    pub caches: usize,
    /// Everything: `max_flows × per_flow + index + quic_flows × per_quic_flow + quic_index +
    /// caches + transient buffers`.
    pub total: usize,
}

/// Bytes of a hashbrown table holding up to `entries` of `entry` bytes: buckets are a power of
/// two at most 7/8 full, one control byte each (plus a group); while it grows the old table
/// (half the size) is alive too.
fn hash_table_bytes(entries: usize, entry: usize) -> usize {
    let buckets = (entries.max(1) * 8).div_ceil(7).next_power_of_two().max(4);
    let table = buckets * (entry + 1) + 16;
    table + table / 2
}

impl FlowConfig {
    pub fn memory_bound(&self) -> MemoryBound {
        use crate::tls::quic::{MAX_CRYPTO, MAX_CRYPTO_PENDING};
        use crate::tls::records::{MAX_EVENTS, MAX_TAIL_ALERTS, RecordEvent};
        use std::mem::size_of;
        let cap = self.collect_bytes;
        let pending = stream::MAX_PENDING + 1;
        // One direction: collected and out-of-order bytes share `cap`; each waiting segment is
        // its own allocation; the segment list, the TLS record log and the HTTP reader.
        let direction = cap
            + pending * (MALLOC_OVERHEAD + size_of::<stream::Pending>())
            + MAX_EVENTS.next_power_of_two() * size_of::<RecordEvent>()
            + MAX_TAIL_ALERTS * size_of::<RecordEvent>()
            + 4 * MALLOC_OVERHEAD
            + HTTP_ALLOWANCE;
        // The slot, its free-list and eviction-scratch entries (u32, (u64, u32)), and the two
        // lists `finish` sorts the live flows with at the end of the input (u32, (u64, u32)).
        let per_flow = size_of::<Flow>() + 2 * (4 + 16) + 2 * direction;
        let keys = tombstone_cap(self) + self.max_flows + 1;
        let index = hash_table_bytes(keys, size_of::<(FlowKey, Slot)>());
        let quic_flows = self.max_flows.clamp(1, quic::MAX_QUIC_FLOWS);
        let quic_entry = size_of::<(FlowKey, quic::QuicFlow)>();
        // The entry, and the flow again in the list `drain` hands over at the end of the input.
        let per_quic_flow = quic_entry
            + size_of::<quic::QuicFlow>()
            + 255 + MALLOC_OVERHEAD // the DCID (a u8 length)
            + MAX_CRYPTO + MALLOC_OVERHEAD
            + MAX_CRYPTO_PENDING * (MALLOC_OVERHEAD + size_of::<(u64, Vec<u8>)>());
        let quic_index = hash_table_bytes(quic_flows, quic_entry) - quic_flows * quic_entry;
        // Entries (key, value) plus about one bucket each; JA4 strings are 36 bytes.
        let caches = crate::tls::ja4::CACHE_ENTRIES * (cap + 2 * MALLOC_OVERHEAD + 64 + 48)
            + crate::tls::cert::CACHE_ENTRIES * (8 * cap + 6 * MALLOC_OVERHEAD + 256);
        MemoryBound {
            per_flow,
            index,
            per_quic_flow,
            quic_flows,
            quic_index,
            caches,
            total: self.max_flows * per_flow
                + index
                + quic_flows * per_quic_flow
                + quic_index
                + caches
                + TRANSIENT,
        }
    }
}

/// How a flow started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Its first packet was a SYN or SYN-ACK.
    Syn,
    /// The capture began after the handshake.
    Midstream,
}

/// Why a flow was emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    Fin,
    Rst,
    Idle,
    /// The table was full; this was among the least recently active.
    Evicted,
    Eof,
}

/// One bidirectional TCP flow. Side 0 is the source of the flow's first packet; which side is
/// the client is decided when the flow is reported (see `classify::orient`).
#[derive(Debug, Default)]
pub struct Flow {
    pub id: u64,
    pub ends: [(Addr, u16); 2],
    pub link: LinkInfo,
    pub first_ts: u64,
    pub last_ts: u64,
    pub dir: [Stream; 2],
    /// Side that sent a SYN without ACK (the client), if seen.
    pub syn_side: Option<usize>,
    /// Side that sent a SYN-ACK (the server), if seen.
    pub synack_side: Option<usize>,
    pub started_with_syn: bool,
    pub rst: bool,
    live: bool,
}

impl Flow {
    fn reset(&mut self, id: u64, seg: &Segment<'_>, reveal_secrets: bool) {
        self.id = id;
        self.ends = [(seg.src, seg.sport), (seg.dst, seg.dport)];
        self.link = seg.link;
        self.first_ts = seg.ts_ns;
        self.last_ts = seg.ts_ns;
        self.dir[0].reset(reveal_secrets);
        self.dir[1].reset(reveal_secrets);
        self.syn_side = None;
        self.synack_side = None;
        self.started_with_syn = seg.flags.syn();
        self.rst = false;
        self.live = true;
    }

    /// A FIN was seen from either side: a new SYN means a new connection.
    fn closing(&self) -> bool {
        self.dir[0].fin_seq.is_some() || self.dir[1].fin_seq.is_some()
    }

    pub fn start(&self) -> Start {
        if self.started_with_syn {
            Start::Syn
        } else {
            Start::Midstream
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FlowKey {
    capture_if: u32,
    ifindex: u32,
    lo: (Addr, u16),
    hi: (Addr, u16),
}

/// Six 64-bit words instead of the derived field-by-field hashing (which also hashes the
/// address arrays' lengths): the lookup is on every packet's path.
impl std::hash::Hash for FlowKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let word = |b: &[u8; 16], i: usize| {
            u64::from_le_bytes([
                b[i],
                b[i + 1],
                b[i + 2],
                b[i + 3],
                b[i + 4],
                b[i + 5],
                b[i + 6],
                b[i + 7],
            ])
        };
        h.write_u64(word(&self.lo.0.bytes, 0));
        h.write_u64(word(&self.lo.0.bytes, 8));
        h.write_u64(word(&self.hi.0.bytes, 0));
        h.write_u64(word(&self.hi.0.bytes, 8));
        h.write_u64(
            u64::from(self.lo.1)
                | (u64::from(self.hi.1) << 16)
                | (u64::from(self.lo.0.v6) << 32)
                | (u64::from(self.hi.0.v6) << 33),
        );
        h.write_u64(u64::from(self.capture_if) | (u64::from(self.ifindex) << 32));
    }
}

impl FlowKey {
    /// The key of the conversation between endpoints `a` and `b` seen on `link`, the same
    /// whichever way a packet travels.
    #[inline]
    pub(crate) fn new(link: &LinkInfo, a: (Addr, u16), b: (Addr, u16)) -> Self {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        FlowKey {
            capture_if: link.capture_if,
            ifindex: link.ifindex.unwrap_or(u32::MAX),
            lo,
            hi,
        }
    }

    #[inline]
    fn of(seg: &Segment<'_>) -> Self {
        FlowKey::new(&seg.link, (seg.src, seg.sport), (seg.dst, seg.dport))
    }
}

#[derive(Debug, Clone, Copy)]
enum Slot {
    Live(u32),
    Closed { at: u64 },
}

/// Counters the table keeps for the summary.
#[derive(Debug, Default, Clone, Copy)]
pub struct TableStats {
    pub flows: u64,
    pub evicted: u64,
    /// Packets that arrived for an already closed flow (retransmitted FINs, RST storms).
    pub late_packets: u64,
    pub max_live: usize,
}

/// Live flows keyed by 4-tuple and interface.
#[derive(Debug)]
pub struct FlowTable {
    cfg: FlowConfig,
    index: FxHashMap<FlowKey, Slot>,
    slab: Vec<Flow>,
    free: Vec<u32>,
    live: usize,
    next_id: u64,
    now: u64,
    next_sweep: u64,
    stats: TableStats,
    scratch: Vec<(u64, u32)>,
}

impl FlowTable {
    pub fn new(cfg: FlowConfig) -> Self {
        FlowTable {
            cfg,
            index: FxHashMap::default(),
            slab: Vec::new(),
            free: Vec::new(),
            live: 0,
            next_id: 0,
            now: 0,
            next_sweep: 0,
            stats: TableStats::default(),
            scratch: Vec::new(),
        }
    }

    pub fn stats(&self) -> TableStats {
        self.stats
    }

    pub fn live_flows(&self) -> usize {
        self.live
    }

    /// Continues flow numbering from another table (several input files, one id space).
    pub fn set_next_id(&mut self, id: u64) {
        self.next_id = id;
    }

    pub fn next_id(&self) -> u64 {
        self.next_id
    }

    /// Adds one segment; `emit` receives every flow that ends as a consequence.
    pub fn push(&mut self, seg: &Segment<'_>, emit: &mut impl FnMut(&mut Flow, End)) {
        if seg.ts_ns > self.now {
            self.now = seg.ts_ns;
        }
        if self.now >= self.next_sweep {
            self.sweep(emit);
        }
        let key = FlowKey::of(seg);
        let cap = self.cfg.collect_bytes;
        let new_syn = seg.flags.syn() && !seg.flags.ack();
        let slot = match self.index.get(&key) {
            // A fresh SYN on a 4-tuple whose connection was already closing: port reuse.
            Some(Slot::Live(i)) if new_syn && self.slab[*i as usize].closing() => {
                let old = *i;
                self.close(old, End::Fin, emit);
                let i = self.alloc(seg);
                self.index.insert(key, Slot::Live(i));
                i
            }
            Some(Slot::Live(i)) => *i,
            Some(Slot::Closed { .. }) if !new_syn => {
                self.stats.late_packets += 1;
                self.index.insert(key, Slot::Closed { at: self.now });
                return;
            }
            _ => {
                if self.live >= self.cfg.max_flows {
                    self.evict(emit);
                }
                let i = self.alloc(seg);
                self.index.insert(key, Slot::Live(i));
                i
            }
        };
        let flow = &mut self.slab[slot as usize];
        flow.last_ts = flow.last_ts.max(seg.ts_ns);
        let side = usize::from((seg.src, seg.sport) != flow.ends[0]);
        let flags = seg.flags;
        let order = (flow.dir[0].packets + flow.dir[1].packets) as u32;
        {
            let d = &mut flow.dir[side];
            d.packets += 1;
            d.bytes += u64::from(seg.wire_len);
            if flags.syn() {
                d.on_syn(seg.seq);
                if flags.ack() {
                    flow.synack_side.get_or_insert(side);
                } else {
                    flow.syn_side.get_or_insert(side);
                }
            }
            let d = &mut flow.dir[side];
            let data_seq = if flags.syn() {
                seg.seq.wrapping_add(1)
            } else {
                seg.seq
            };
            d.on_data(data_seq, seg.payload, seg.wire_len, cap, order);
            if flags.fin() {
                d.on_fin(data_seq, seg.wire_len);
            }
        }
        if flags.ack() {
            flow.dir[1 - side].on_peer_ack(seg.ack, cap, order);
        }
        if flags.rst() {
            flow.rst = true;
            self.close(slot, End::Rst, emit);
        } else if flow.dir[0].fin_acked && flow.dir[1].fin_acked {
            self.close(slot, End::Fin, emit);
        }
    }

    /// Emits every live flow (end of input) and forgets all state.
    pub fn finish(&mut self, emit: &mut impl FnMut(&mut Flow, End)) {
        let live: Vec<u32> = self.live_slots().collect();
        let mut order: Vec<(u64, u32)> = live
            .iter()
            .map(|&i| (self.slab[i as usize].id, i))
            .collect();
        order.sort_unstable();
        for (_, i) in order {
            let f = &self.slab[i as usize];
            let end = if f.dir[0].fin_seq.is_some() && f.dir[1].fin_seq.is_some() {
                End::Fin
            } else if f.rst {
                End::Rst
            } else {
                End::Eof
            };
            self.close(i, end, emit);
        }
        self.index.clear();
    }

    fn live_slots(&self) -> impl Iterator<Item = u32> + '_ {
        self.slab
            .iter()
            .enumerate()
            .filter(|(_, f)| f.live)
            .map(|(i, _)| i as u32)
    }

    fn alloc(&mut self, seg: &Segment<'_>) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.stats.flows += 1;
        self.live += 1;
        self.stats.max_live = self.stats.max_live.max(self.live);
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                if self.slab.len() == self.slab.capacity() {
                    // Doubling, but never past `max_flows` slots: the bound counts capacity.
                    let want = (self.slab.capacity() * 2)
                        .max(16)
                        .min(self.cfg.max_flows.max(1));
                    self.slab
                        .reserve_exact(want.saturating_sub(self.slab.len()).max(1));
                }
                self.slab.push(Flow::default());
                (self.slab.len() - 1) as u32
            }
        };
        self.slab[i as usize].reset(id, seg, self.cfg.reveal_secrets);
        i
    }

    fn close(&mut self, slot: u32, end: End, emit: &mut impl FnMut(&mut Flow, End)) {
        let cap = self.cfg.collect_bytes;
        let flow = &mut self.slab[slot as usize];
        if !flow.live {
            return;
        }
        let order = (flow.dir[0].packets + flow.dir[1].packets) as u32;
        flow.dir[0].finish(cap, order);
        flow.dir[1].finish(cap, order);
        flow.live = false;
        emit(flow, end);
        let key = FlowKey::new(&flow.link, flow.ends[0], flow.ends[1]);
        let at = flow.last_ts;
        self.index.insert(key, Slot::Closed { at });
        self.free.push(slot);
        self.live -= 1;
        // Tombstones are capped here, not only by the sweep: flows that close at once (SYN, RST)
        // can add millions within one sweep interval. Dropping them all is amortized O(1): the
        // next drop is at least 3 × the cap of closes later.
        if self.index.len() > tombstone_cap(&self.cfg) {
            self.index.retain(|_, s| matches!(s, Slot::Live(_)));
        }
    }

    /// Emits idle flows and drops old tombstones. Runs at most every few seconds of capture time.
    fn sweep(&mut self, emit: &mut impl FnMut(&mut Flow, End)) {
        let interval = (self.cfg.idle_timeout_ns / 4).clamp(1_000_000_000, 10_000_000_000);
        self.next_sweep = self.now.saturating_add(interval);
        let idle_before = self.now.saturating_sub(self.cfg.idle_timeout_ns);
        let mut idle: Vec<(u64, u32)> = std::mem::take(&mut self.scratch);
        idle.clear();
        for i in self.live_slots() {
            let f = &self.slab[i as usize];
            if f.last_ts < idle_before {
                idle.push((f.id, i));
            }
        }
        idle.sort_unstable();
        for &(_, i) in &idle {
            self.close(i, End::Idle, emit);
        }
        self.scratch = idle;
        let tomb_before = self.now.saturating_sub(self.cfg.tombstone_ns);
        // Tombstones are dropped when old, or all at once if they outgrow the live table by far.
        let too_many = self.index.len() > tombstone_cap(&self.cfg);
        self.index.retain(|_, s| match s {
            Slot::Live(_) => true,
            Slot::Closed { at } => !too_many && *at >= tomb_before,
        });
    }

    /// The table is full: emit the least recently active eighth of it.
    fn evict(&mut self, emit: &mut impl FnMut(&mut Flow, End)) {
        let mut v = std::mem::take(&mut self.scratch);
        v.clear();
        v.extend(
            self.live_slots()
                .map(|i| (self.slab[i as usize].last_ts, i)),
        );
        let n = (v.len() / 8).max(1).min(v.len());
        if n < v.len() {
            v.select_nth_unstable(n);
        }
        v.truncate(n);
        v.sort_unstable();
        for &(_, i) in &v {
            self.stats.evicted += 1;
            self.close(i, End::Evicted, emit);
        }
        self.scratch = v;
    }
}

/// Keys (live flows and tombstones) the index holds at most before old tombstones are dropped.
fn tombstone_cap(cfg: &FlowConfig) -> usize {
    4 * cfg.max_flows.max(1024)
}

/// Fuzz entry for one direction's reassembly (see `fuzzing::check_reassembly`). The input is a
/// list of segments `[seq_offset: u16][len: u8]`, carved from a 64 KiB pattern whose byte at
/// stream offset `o` is `o as u8`, so the reassembled prefix can be checked exactly.
#[doc(hidden)]
pub fn fuzz_stream(data: &[u8]) {
    const CAP: usize = 512;
    let pattern: Vec<u8> = (0..70_000u32).map(|o| o as u8).collect();
    let mut s = Stream::default();
    s.reset(false);
    let isn = 0xffff_ff00u32; // wraps within the first segments
    s.on_syn(isn);
    let mut fed = 0u32;
    for chunk in data.chunks_exact(3) {
        let off = u32::from(u16::from_le_bytes([chunk[0], chunk[1]]));
        let len = u32::from(chunk[2]);
        let seq = isn.wrapping_add(1).wrapping_add(off);
        let bytes = &pattern[off as usize..(off + len) as usize];
        s.on_data(seq, bytes, len, CAP, fed);
        // Collected and waiting bytes share one cap, whatever the order (issue 11).
        assert!(s.held_bytes() <= CAP, "{} bytes held", s.held_bytes());
        fed += 1;
    }
    s.finish(CAP, fed);
    assert!(s.data.len() <= CAP);
    for (o, b) in s.data.iter().enumerate() {
        assert_eq!(*b, o as u8, "reassembled byte {o} is wrong");
    }
    // A held-back segment that turns out redundant counts as out-of-order and as retransmit.
    assert!(s.retransmits <= fed && s.out_of_order <= fed);
}

#[cfg(test)]
mod tests;
