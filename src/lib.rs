//! meshsniff: is this pod's traffic really encrypted, and if not, what leaks?
//!
//! The analyzer pipeline, one owned stage per module:
//!
//! ```text
//! pcap::PcapReader<R: Read>   capture bytes → Frame        (pcap + pcapng, any link type)
//! wire::decode(&Frame)        → Segment | NonTcp           (never fails: bad packets are counted)
//! flow::FlowTable::push       → finished Flow              (bidirectional reassembly, bounded)
//! classify::{orient, classify} → client side, Protocol      (by content, never by port)
//! http::HttpStream::feed      → HTTP/1.x and h2c messages  (online, every in-order byte)
//! report::flow_record         → FlowRecord (the JSON contract)
//! policy::evaluate            → Verdict under a profile    (strict, istio, none) → report::Sink
//! ```
//!
//! Invariants: nothing reachable from input bytes panics or allocates without a cap; memory is
//! bounded by live flows × per-flow cap, never by input size; a damaged input still yields
//! every flow that could be read. The library never needs privileges.

// `unsafe` is denied crate-wide in Cargo.toml; only `capture` (namespace entry, packet
// sockets, signals, privilege drop) allows it.

pub mod analyze;
pub mod capture;
pub mod classify;
pub mod cli;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod kube;
pub mod pcap;
pub mod policy;
pub mod report;
pub mod tls;
pub mod wire;
