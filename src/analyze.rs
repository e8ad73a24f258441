//! The offline pipeline driver: capture bytes → frames → segments → flows → records → sink.
//! One pass, streaming; a damaged input still yields every flow that could be read (the error
//! is recorded in the summary and the caller exits 3).

use crate::flow::{FlowConfig, FlowTable};
use crate::pcap::{PcapReader, ReadError};
use crate::report::{self, InputError, InputErrorKind, Sink, Summary, ts_seconds};
use crate::wire::{self, Decoded, NonTcp};
use std::io::{self, Read};

/// How often (in packets) the progress callback runs.
pub const PROGRESS_EVERY: u64 = 1 << 16;

/// A progress snapshot for the caller's progress bar.
#[derive(Debug, Clone, Copy, Default)]
pub struct Progress {
    pub input_bytes: u64,
    pub packets: u64,
    pub flows: u64,
}

/// Failure of the analysis itself (the report could not be written). Input damage is not an
/// error here: it is part of the result.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AnalyzeError {
    #[error("writing the report failed: {0}")]
    Output(#[from] io::Error),
}

/// State carried across the inputs of one run: counters, flow ids, the sink.
pub struct Analysis<'s> {
    cfg: FlowConfig,
    sink: &'s mut dyn Sink,
    summary: Summary,
    non_tcp: [u64; NonTcp::ALL.len()],
    next_id: u64,
    first_ts: Option<u64>,
    last_ts: u64,
    caches: crate::tls::TlsCaches,
    profile: crate::policy::Profile,
}

impl std::fmt::Debug for Analysis<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analysis")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl<'s> Analysis<'s> {
    pub fn new(cfg: FlowConfig, sink: &'s mut dyn Sink) -> Self {
        Analysis {
            cfg,
            sink,
            summary: Summary {
                kind: "summary".into(),
                ..Summary::default()
            },
            non_tcp: [0; NonTcp::ALL.len()],
            next_id: 0,
            first_ts: None,
            last_ts: 0,
            caches: crate::tls::TlsCaches::default(),
            profile: crate::policy::Profile::default(),
        }
    }

    /// The profile that judges flows (`--profile`; strict unless set).
    pub fn set_profile(&mut self, profile: crate::policy::Profile) {
        self.profile = profile;
    }

    /// Reads one capture to its end (or to the first unreadable byte) and reports its flows.
    /// `name` is how the input is named in records and errors.
    pub fn run<R: Read>(
        &mut self,
        src: R,
        name: &str,
        progress: &mut dyn FnMut(Progress),
    ) -> Result<(), AnalyzeError> {
        self.summary.files.push(name.to_string());
        let mut reader = match PcapReader::new(src) {
            Ok(r) => r,
            Err(e) => {
                self.record_error(name, &e);
                return Ok(());
            }
        };
        let mut table = FlowTable::new(self.cfg);
        // `--max-flows` bounds the QUIC table too (at most its own cap, MAX_QUIC_FLOWS).
        let mut quic = crate::flow::quic::QuicTable::new(self.cfg.max_flows);
        table.set_next_id(self.next_id);
        let mut out = Delivery {
            sink: &mut *self.sink,
            summary: &mut self.summary,
            err: None,
        };
        let caches = &mut self.caches;
        let profile = self.profile;
        let file: std::sync::Arc<str> = name.into();
        let mut tcp_packets = 0u64;
        let mut packets = 0u64;
        let mut first_ts = self.first_ts;
        let mut last_ts = self.last_ts;
        let read_err = loop {
            match reader.advance() {
                Ok(true) => {}
                Ok(false) => break None,
                Err(e) => break Some(e),
            }
            let frame = reader.current();
            let interfaces = reader.interfaces();
            packets += 1;
            if first_ts.is_none() {
                first_ts = Some(frame.ts_ns);
            }
            last_ts = last_ts.max(frame.ts_ns);
            let mut emit = |flow: &mut crate::flow::Flow, end| {
                if out.err.is_none() {
                    report::flow_records(flow, end, interfaces, &file, caches, profile, &mut |r| {
                        out.deliver(r)
                    });
                }
            };
            match wire::decode(&frame) {
                Decoded::Tcp(seg) => {
                    tcp_packets += 1;
                    table.push(&seg, &mut emit);
                }
                Decoded::Udp(d) => {
                    let kind = if d.quic_long_header {
                        NonTcp::Quic
                    } else {
                        NonTcp::Udp
                    };
                    self.non_tcp[kind.index()] += 1;
                    let mut id = table.next_id();
                    quic.push(&d, &mut id);
                    table.set_next_id(id);
                }
                Decoded::NonTcp(kind) => self.non_tcp[kind.index()] += 1,
            }
            if let Some(e) = out.err.take() {
                return Err(e.into());
            }
            if packets % PROGRESS_EVERY == 0 {
                progress(Progress {
                    input_bytes: reader.position(),
                    packets: out.summary.packets + packets,
                    flows: table.next_id(),
                });
            }
        };
        let interfaces = reader.interfaces();
        table.finish(&mut |flow, end| {
            if out.err.is_none() {
                report::flow_records(flow, end, interfaces, &file, caches, profile, &mut |r| {
                    out.deliver(r)
                });
            }
        });
        // Resumed sessions whose full handshake never came: said to be from one not captured.
        report::release_held(caches, profile, &|_| true, &mut |r| out.deliver(r));
        // QUIC flows end with their input (UDP has no close to wait for).
        let quic_flows = quic.drain();
        for flow in &quic_flows {
            if out.err.is_some() {
                break;
            }
            out.deliver(&report::quic_record(
                flow, interfaces, &file, caches, profile,
            ));
        }
        if let Some(e) = out.err {
            return Err(e.into());
        }
        let stats = table.stats();
        self.next_id = table.next_id();
        self.summary.packets += packets;
        self.summary.tcp_packets += tcp_packets;
        self.summary.flows += stats.flows + quic_flows.len() as u64;
        self.summary.evicted += stats.evicted;
        self.summary.late_packets += stats.late_packets;
        self.summary.quic_untracked += quic.untracked;
        self.summary.max_live_flows = self.summary.max_live_flows.max(stats.max_live as u64);
        self.summary.skipped_blocks += reader.skipped_blocks();
        self.summary.input_bytes += reader.position();
        self.first_ts = first_ts;
        self.last_ts = last_ts;
        progress(Progress {
            input_bytes: reader.position(),
            packets: self.summary.packets,
            flows: self.next_id,
        });
        // Damage stepped over (pcapng blocks skipped) comes before where reading stopped.
        for e in reader.take_damage() {
            self.record_error(name, &e);
        }
        if let Some(e) = read_err {
            self.record_error(name, &e);
        }
        Ok(())
    }

    fn record_error(&mut self, name: &str, e: &ReadError) {
        self.summary.partial = true;
        let kind = match e {
            ReadError::Io { .. } => InputErrorKind::Io,
            e if e.is_format_error() => InputErrorKind::NotACapture,
            _ => InputErrorKind::Damaged,
        };
        self.summary.errors.push(InputError {
            file: name.to_string(),
            kind,
            offset: e.offset(),
            packet: e.packet(),
            message: e.to_string(),
        });
    }

    /// Writes the summary and returns it.
    pub fn finish(mut self) -> Result<Summary, AnalyzeError> {
        let c = &mut self.summary.non_tcp;
        let n = &self.non_tcp;
        for kind in NonTcp::ALL {
            let v = n[kind.index()];
            match kind {
                NonTcp::Udp => c.udp = v,
                NonTcp::Quic => c.quic = v,
                NonTcp::Icmp => c.icmp = v,
                NonTcp::Icmpv6 => c.icmpv6 = v,
                NonTcp::Arp => c.arp = v,
                NonTcp::Fragment => c.ip_fragment = v,
                NonTcp::OtherIp => c.other_ip = v,
                NonTcp::OtherLink => c.other_link = v,
                NonTcp::UnsupportedLinkType => c.unsupported_link_type = v,
                NonTcp::Truncated => c.truncated = v,
                NonTcp::Malformed => c.malformed = v,
            }
        }
        self.summary.profile = match self.profile {
            crate::policy::Profile::Strict => "strict",
            crate::policy::Profile::Istio => "istio",
            crate::policy::Profile::None => "none",
        }
        .into();
        self.summary.answer = self.summary.answer_line();
        self.summary.first_ts = self.first_ts.map(ts_seconds);
        self.summary.last_ts = self.first_ts.map(|_| ts_seconds(self.last_ts));
        self.sink.finish(&self.summary)?;
        Ok(self.summary)
    }
}

/// Where finished records go: counted into the summary, then written; the first write error
/// stops further output (the caller returns it).
struct Delivery<'a> {
    sink: &'a mut dyn Sink,
    summary: &'a mut Summary,
    err: Option<io::Error>,
}

impl Delivery<'_> {
    fn deliver(&mut self, rec: &report::FlowRecord) {
        self.summary.protocols.add(rec.protocol);
        self.summary.bytes += rec.bytes.c2s + rec.bytes.s2c;
        if let Some(v) = &rec.verdict {
            self.summary.judge(rec.id, v);
        }
        if let Err(e) = self.sink.flow(rec) {
            self.err = Some(e);
        }
    }
}

/// Convenience for tests and the fuzz target: analyses `bytes` as one capture and returns the
/// records and the summary.
pub fn analyze_bytes(bytes: &[u8], cfg: FlowConfig) -> (Vec<report::FlowRecord>, Summary) {
    #[derive(Default)]
    struct Collect(Vec<report::FlowRecord>);
    impl Sink for Collect {
        fn flow(&mut self, r: &report::FlowRecord) -> io::Result<()> {
            self.0.push(r.clone());
            Ok(())
        }
        fn finish(&mut self, _: &Summary) -> io::Result<()> {
            Ok(())
        }
    }
    let mut sink = Collect::default();
    let summary = {
        let mut a = Analysis::new(cfg, &mut sink);
        // Writing to a Vec cannot fail.
        let _ = a.run(bytes, "input", &mut |_| {});
        a.finish().unwrap_or_default()
    };
    (sink.0, summary)
}
