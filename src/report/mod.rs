//! Reporting: turns a finished [`Flow`] into its [`FlowRecord`] (the JSON contract) and prints
//! records and the [`Summary`] through a [`Sink`]: a human table, JSON Lines, or one JSON
//! document. Printers print; they never analyse.

mod answer;
pub mod fastjson;
mod json;
pub mod schema;
mod table;

pub use answer::{
    CheckResult, DEFAULT_FAIL_ON, ExpectResult, FINDING_RULES, Gate, Outcome, UnknownRule, count,
    thousands,
};
pub use json::{JsonDocSink, JsonlSink};
pub use schema::*;
pub use table::{TableSink, human_bytes, human_size};

use crate::classify::{self, ClientBasis};
use crate::flow::{End, Flow, Start};
use crate::pcap::Interface;
use crate::policy::{Place, Profile};
use crate::tls;
use crate::wire::Addr;
use std::io;

/// Where records go.
pub trait Sink {
    fn flow(&mut self, record: &FlowRecord) -> io::Result<()>;
    fn finish(&mut self, summary: &Summary) -> io::Result<()>;
}

/// `ip:port`, IPv6 in brackets. IPv4 is formatted by hand: `Display` for `IpAddr` goes
/// through the padding machinery of `fmt` and cost a tenth of the whole run (callgrind).
pub fn endpoint(addr: Addr, port: u16) -> String {
    let mut s = String::with_capacity(24);
    if addr.v6 {
        use std::fmt::Write;
        let _ = write!(s, "[{}]:{port}", addr.to_ip());
        return s;
    }
    for (i, b) in addr.bytes[12..].iter().enumerate() {
        if i > 0 {
            s.push('.');
        }
        push_decimal(&mut s, u32::from(*b));
    }
    s.push(':');
    push_decimal(&mut s, u32::from(port));
    s
}

fn push_decimal(s: &mut String, v: u32) {
    let (buf, start) = decimal(u64::from(v));
    for &d in &buf[start..] {
        s.push(char::from(d));
    }
}

/// `v` in decimal as `buf[start..]`, without allocating (shared by the endpoint and JSON
/// writers).
pub(crate) fn decimal(mut v: u64) -> ([u8; 20], usize) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    (buf, i)
}

/// Builds the record of a finished flow: orientation, classification, counters; with where it
/// was seen and, for TLS, its peers (for resumption).
fn flow_record(
    flow: &mut Flow,
    end: End,
    interfaces: &[Interface],
    file: &std::sync::Arc<str>,
    caches: &mut tls::TlsCaches,
    profile: Profile,
) -> (FlowRecord, Place, Option<tls::Peers>) {
    let (client, basis) = classify::orient(flow);
    let server = 1 - client;
    let http = {
        let [d0, d1] = &mut flow.dir;
        let (c, s) = if client == 0 { (d0, d1) } else { (d1, d0) };
        crate::http::facts(&mut c.http, &mut s.http)
    };
    let (c, s) = (&flow.dir[client], &flow.dir[server]);
    let mut protocol = classify::classify(&c.data, &s.data, c.bytes + s.bytes);
    if protocol != classify::Protocol::Tls && classify::tls_after_prefix(&c.data, &c.tls) {
        // STARTTLS, a PostgreSQL SSLRequest or another cleartext prefix, then a ClientHello.
        protocol = classify::Protocol::Tls;
    }
    if protocol == classify::Protocol::Http && http.as_ref().is_some_and(|h| h.h2) {
        // `Upgrade: h2c` answered by 101 after the first bytes classification looked at.
        protocol = classify::Protocol::H2c;
    }
    let cleartext = (protocol == classify::Protocol::Other)
        .then(|| classify::cleartext::facts(&c.data, &s.data, c.http.reveals()));
    let mut peers = None;
    let tls = (protocol == classify::Protocol::Tls).then(|| {
        let close = if flow.rst {
            tls::Close::Rst
        } else if c.fin_seen() || s.fin_seen() {
            tls::Close::Fin
        } else {
            tls::Close::Open
        };
        let mut facts = tls::analyze(
            tls::DirectionInput {
                kept: &c.data,
                walker: &c.tls,
            },
            tls::DirectionInput {
                kept: &s.data,
                walker: &s.tls,
            },
            close,
            caches,
        );
        let p = tls::Peers {
            client: flow.ends[client].0.bytes,
            server: flow.ends[server].0.bytes,
            server_port: flow.ends[server].1,
            sni: facts.sni.clone(),
        };
        caches.full_handshakes.link(&mut facts, &p, flow.id, false);
        peers = Some(p);
        facts
    });
    let interface = interface_name(interfaces, &flow.link);
    let place = Place::new(
        flow.ends[client],
        flow.ends[server],
        &flow.link,
        interface.as_deref(),
    );
    let rec = FlowRecord {
        kind: "flow".into(),
        id: flow.id,
        client: endpoint(flow.ends[client].0, flow.ends[client].1),
        server: endpoint(flow.ends[server].0, flow.ends[server].1),
        interface,
        ifindex: flow.link.ifindex,
        link_loopback: flow.link.loopback,
        first_ts: ts_seconds(flow.first_ts),
        last_ts: ts_seconds(flow.last_ts),
        packets: Directions {
            c2s: c.packets,
            s2c: s.packets,
        },
        bytes: Directions {
            c2s: c.bytes,
            s2c: s.bytes,
        },
        transport: Transport::Tcp,
        tcp: Some(TcpFacts {
            start: match flow.start() {
                Start::Syn => TcpStart::Syn,
                Start::Midstream => TcpStart::Midstream,
            },
            end: match end {
                End::Fin => TcpEnd::Fin,
                End::Rst => TcpEnd::Rst,
                End::Idle | End::Evicted => TcpEnd::Idle,
                End::Eof => TcpEnd::Eof,
            },
            gaps: c.gaps + s.gaps,
            retransmits: c.retransmits + s.retransmits,
            out_of_order: c.out_of_order + s.out_of_order,
            snaplen_cut: c.snaplen_cut + s.snaplen_cut,
            out_of_order_dropped: c.ooo_dropped + s.ooo_dropped,
            evicted: end == End::Evicted,
            client_by: match basis {
                ClientBasis::Syn => ClientBy::Syn,
                ClientBasis::Content => ClientBy::Content,
                ClientBasis::Port => ClientBy::Port,
            },
        }),
        protocol,
        tls,
        http,
        cleartext,
        loopback: place.loopback,
        verdict: None,
        file: file.clone(),
    };
    (judged(rec, place, profile), place, peers)
}

/// Resumed TLS sessions held back until the full handshake they came from is reported (a
/// connection pool keeps that connection open while it resumes new ones), at most this many…
pub const MAX_HELD: usize = 256;
/// …and for at most this long in capture time (a flow ending this much later lets them go
/// unlinked), so `sniff` does not sit on them when their full handshake was never captured.
pub const HOLD_SECONDS: f64 = 60.0;

/// A finished flow's record, and any held-back resumed sessions it lets go, in `deliver`.
pub fn flow_records(
    flow: &mut Flow,
    end: End,
    interfaces: &[Interface],
    file: &std::sync::Arc<str>,
    caches: &mut tls::TlsCaches,
    profile: Profile,
    deliver: &mut impl FnMut(&FlowRecord),
) {
    let (rec, place, peers) = flow_record(flow, end, interfaces, file, caches, profile);
    let now = rec.last_ts;
    if caches
        .held
        .first()
        .is_some_and(|h| h.rec.last_ts + HOLD_SECONDS < now)
    {
        release_held(
            caches,
            profile,
            &|h| h.rec.last_ts + HOLD_SECONDS < now,
            deliver,
        );
    }
    let Some(peers) = peers else {
        return deliver(&rec);
    };
    let t = rec.tls.as_ref();
    if t.is_some_and(|t| t.resumed && t.resumed_from_flow.is_none()) {
        if caches.held.len() >= MAX_HELD {
            // Full: the oldest goes out unlinked.
            let oldest = caches.held[0].rec.id;
            release_held(caches, profile, &|h| h.rec.id == oldest, deliver);
        }
        caches.held.push(tls::Held { rec, place, peers });
        return;
    }
    let full = t.is_some_and(|t| !t.resumed);
    deliver(&rec);
    if full && caches.held.iter().any(|h| h.peers == peers) {
        release_held(caches, profile, &|h| h.peers == peers, deliver);
    }
}

/// Lets go the held-back sessions `which` selects (all of them at the end of input), linked
/// to the full handshake now known, or said to come from one not captured.
pub fn release_held(
    caches: &mut tls::TlsCaches,
    profile: Profile,
    which: &dyn Fn(&tls::Held) -> bool,
    deliver: &mut impl FnMut(&FlowRecord),
) {
    let mut i = 0;
    while i < caches.held.len() {
        if !which(&caches.held[i]) {
            i += 1;
            continue;
        }
        let tls::Held {
            mut rec,
            place,
            peers,
        } = caches.held.remove(i);
        if let Some(t) = rec.tls.as_mut() {
            caches.full_handshakes.link(t, &peers, rec.id, true);
        }
        deliver(&judged(rec, place, profile));
    }
}

/// The capture's name for the flow's interface (pcapng IDB), if it has one.
fn interface_name(interfaces: &[Interface], link: &crate::wire::LinkInfo) -> Option<String> {
    interfaces
        .get(link.capture_if as usize)
        .and_then(|i| i.name.clone())
}

/// The record with its verdict under `profile` (the one judging step of TCP and QUIC flows).
fn judged(mut rec: FlowRecord, place: Place, profile: Profile) -> FlowRecord {
    rec.verdict = crate::policy::evaluate(&rec, place, profile);
    rec
}

/// Builds the record of a QUIC flow (reported at the end of its input).
pub fn quic_record(
    flow: &crate::flow::quic::QuicFlow,
    interfaces: &[Interface],
    file: &std::sync::Arc<str>,
    caches: &mut tls::TlsCaches,
    profile: Profile,
) -> FlowRecord {
    let established = flow.short_headers[0] > 0 && flow.short_headers[1] > 0;
    let interface = interface_name(interfaces, &flow.link);
    let place = Place::new(flow.ends[0], flow.ends[1], &flow.link, interface.as_deref());
    let rec = FlowRecord {
        kind: "flow".into(),
        id: flow.id,
        client: endpoint(flow.ends[0].0, flow.ends[0].1),
        server: endpoint(flow.ends[1].0, flow.ends[1].1),
        interface,
        ifindex: flow.link.ifindex,
        link_loopback: flow.link.loopback,
        first_ts: ts_seconds(flow.first_ts),
        last_ts: ts_seconds(flow.last_ts),
        packets: Directions {
            c2s: flow.packets[0],
            s2c: flow.packets[1],
        },
        bytes: Directions {
            c2s: flow.bytes[0],
            s2c: flow.bytes[1],
        },
        transport: Transport::Udp,
        tcp: None,
        protocol: classify::Protocol::Quic,
        tls: Some(tls::quic_facts(&flow.initials, established, caches)),
        http: None,
        cleartext: None,
        loopback: place.loopback,
        verdict: None,
        file: file.clone(),
    };
    judged(rec, place, profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_match_the_standard_formatting() {
        for (ip, port) in [
            ([0u8, 0, 0, 0], 0u16),
            ([10, 0, 0, 1], 51234),
            ([255, 255, 255, 255], 65535),
        ] {
            let want = format!("{}:{port}", std::net::Ipv4Addr::from(ip));
            assert_eq!(endpoint(Addr::v4(ip), port), want);
        }
        let v6: std::net::Ipv6Addr = "2001:db8::1".parse().unwrap();
        assert_eq!(endpoint(Addr::v6(v6.octets()), 443), "[2001:db8::1]:443");
    }
}
