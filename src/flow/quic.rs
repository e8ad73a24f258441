//! QUIC flows over UDP: a flow starts with a QUIC long-header packet (its sender is the client
//! when it is an Initial), later datagrams on the same 4-tuple (short headers included) are
//! counted into it, and the client's Initials are decrypted for the ClientHello. Bounded: at
//! most `MAX_QUIC_FLOWS` at once (fewer with a smaller `--max-flows`), each holding at most
//! `MAX_CRYPTO` (16 KiB) of CRYPTO data, merged or waiting for a hole; packets of flows beyond
//! the cap are counted (`untracked`). Flows are reported at the end of the input.

use super::FlowKey;
use crate::tls::quic::QuicInitials;
use crate::wire::{Addr, Datagram, LinkInfo};
use rustc_hash::FxHashMap;

pub const MAX_QUIC_FLOWS: usize = 4096;

#[derive(Debug, Default)]
pub struct QuicFlow {
    pub id: u64,
    /// Side 0 is the client.
    pub ends: [(Addr, u16); 2],
    pub link: LinkInfo,
    pub first_ts: u64,
    pub last_ts: u64,
    pub packets: [u64; 2],
    pub bytes: [u64; 2],
    /// Short-header (1-RTT) packets seen per side: both > 0 means the handshake completed.
    pub short_headers: [u64; 2],
    pub initials: QuicInitials,
}

fn key(d: &Datagram<'_>) -> FlowKey {
    FlowKey::new(&d.link, (d.src, d.sport), (d.dst, d.dport))
}

#[derive(Debug)]
pub struct QuicTable {
    flows: FxHashMap<FlowKey, QuicFlow>,
    /// Flows followed at once at most.
    max_flows: usize,
    /// QUIC packets not followed because the table was full.
    pub untracked: u64,
}

impl Default for QuicTable {
    fn default() -> Self {
        QuicTable::new(MAX_QUIC_FLOWS)
    }
}

impl QuicTable {
    /// A table that follows at most `max_flows` flows (never more than `MAX_QUIC_FLOWS`).
    pub fn new(max_flows: usize) -> Self {
        QuicTable {
            flows: FxHashMap::default(),
            max_flows: max_flows.clamp(1, MAX_QUIC_FLOWS),
            untracked: 0,
        }
    }

    /// Adds a datagram; `next_id` numbers new flows. Returns whether it belonged to QUIC.
    pub fn push(&mut self, d: &Datagram<'_>, next_id: &mut u64) -> bool {
        let k = key(d);
        if !self.flows.contains_key(&k) {
            if !d.quic_long_header {
                return false;
            }
            if self.flows.len() >= self.max_flows {
                self.untracked += 1;
                return true;
            }
            // The sender of a long-header packet with the Initial type is the client; for any
            // other first packet (capture started late) the lower port is taken as the server.
            let initial = d.payload.first().is_some_and(|b| b & 0x30 == 0) || d.dport < d.sport;
            let (client, server) = if initial {
                ((d.src, d.sport), (d.dst, d.dport))
            } else {
                ((d.dst, d.dport), (d.src, d.sport))
            };
            let id = *next_id;
            *next_id += 1;
            self.flows.insert(
                k,
                QuicFlow {
                    id,
                    ends: [client, server],
                    link: d.link,
                    first_ts: d.ts_ns,
                    last_ts: d.ts_ns,
                    ..QuicFlow::default()
                },
            );
        }
        let Some(f) = self.flows.get_mut(&k) else {
            return true;
        };
        let side = usize::from((d.src, d.sport) != f.ends[0]);
        f.packets[side] += 1;
        f.bytes[side] += d.payload.len() as u64;
        f.last_ts = f.last_ts.max(d.ts_ns);
        if d.payload.first().is_some_and(|b| b & 0x80 == 0) {
            f.short_headers[side] += 1;
        } else if side == 0 {
            f.initials.client_datagram(d.payload);
        }
        true
    }

    /// All flows, in order of their first packet; the table is left empty.
    pub fn drain(&mut self) -> Vec<QuicFlow> {
        let mut v: Vec<QuicFlow> = self.flows.drain().map(|(_, f)| f).collect();
        v.sort_by_key(|f| f.id);
        v
    }
}
