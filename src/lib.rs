//! meshsniff: is this pod's traffic really encrypted, and if not, what leaks?
//!
//! The analyzer pipeline, one owned stage per module:
//!
//! ```text
//! pcap::PcapReader<R: Read>   capture bytes → Frame        (pcap + pcapng, any link type)
//! wire::decode(&Frame)        → Segment | NonTcp           (never fails: bad packets are counted)
//! flow::FlowTable::push       → finished Flow              (bidirectional reassembly, bounded)
//! classify::{orient, classify} → client side, Protocol      (by content, never by port)
//! report::flow_record         → FlowRecord (the JSON contract) → report::Sink
//! ```
//!
//! Invariants: nothing reachable from input bytes panics or allocates without a cap; memory is
//! bounded by live flows × per-flow cap, never by input size; a damaged input still yields
//! every flow that could be read. The library never needs privileges.

// `unsafe` is denied crate-wide in Cargo.toml; only the live-capture module may allow it.

pub mod analyze;
pub mod classify;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod pcap;
pub mod report;
pub mod tls;
pub mod wire;
