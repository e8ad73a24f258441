//! The human report: a header, one row per flow as it closes, then the summary. Colour only
//! when the caller says the output is a terminal.

use super::{FlowRecord, InputErrorKind, Sink, Summary, TcpEnd, TcpStart, count, thousands};
use crate::classify::Protocol;
use crate::policy::Kind;
use std::io::{self, Write};

/// `--format table` (the default).
#[derive(Debug)]
pub struct TableSink<W: Write> {
    out: W,
    colour: bool,
    header_done: bool,
    flush_each: bool,
}

impl<W: Write> TableSink<W> {
    pub fn new(out: W, colour: bool, flush_each: bool) -> Self {
        TableSink {
            out,
            colour,
            header_done: false,
            flush_each,
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    fn header(&mut self) -> io::Result<()> {
        if !self.header_done {
            self.header_done = true;
            let h = format!(
                "{:>6}  {:<24} {:<24} {:<8} {:<6} {:>13} {:>17}  {:<12} {}",
                "ID",
                "CLIENT",
                "SERVER",
                "IF",
                "PROTO",
                "PKTS C>S/S>C",
                "BYTES C>S/S>C",
                "TCP",
                "VERDICT"
            );
            let h = self.paint("1", &h);
            writeln!(self.out, "{h}")?;
        }
        Ok(())
    }
}

/// 1234567 -> "1.2M"; small numbers stay exact.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["K", "M", "G", "T", "P"];
    if n < 10_000 {
        return n.to_string();
    }
    let mut v = n as f64;
    let mut unit = "";
    for u in UNITS {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    if v < 10.0 {
        format!("{v:.1}{unit}")
    } else {
        format!("{v:.0}{unit}")
    }
}

/// A size with its unit for people: `512 B`, `12.3 kB`, `1.4 GB` (decimal units, like the
/// table's compact cells).
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1000.0 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    if v < 100.0 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.0} {unit}")
    }
}

fn tcp_cell(r: &FlowRecord) -> String {
    let Some(tcp) = &r.tcp else {
        return "udp".into();
    };
    let start = match tcp.start {
        TcpStart::Syn => "syn",
        TcpStart::Midstream => "mid",
    };
    let end = match tcp.end {
        TcpEnd::Fin => "fin",
        TcpEnd::Rst => "rst",
        TcpEnd::Idle if tcp.evicted => "evicted",
        TcpEnd::Idle => "idle",
        TcpEnd::Eof => "eof",
    };
    let mut s = format!("{start}..{end}");
    if tcp.gaps > 0 {
        s.push_str(&format!(" gaps={}", tcp.gaps));
    }
    if tcp.snaplen_cut > 0 {
        s.push_str(" cut");
    }
    if tcp.out_of_order_dropped > 0 {
        s.push_str(" dropped");
    }
    s
}

impl<W: Write> Sink for TableSink<W> {
    fn flow(&mut self, r: &FlowRecord) -> io::Result<()> {
        self.header()?;
        let proto = format!("{:<6}", r.protocol.name());
        let proto = match r.protocol {
            Protocol::Tls => self.paint("32", &proto),
            Protocol::Http | Protocol::H2c => self.paint("33", &proto),
            Protocol::Quic => self.paint("36", &proto),
            Protocol::Other | Protocol::Empty => self.paint("2", &proto),
        };
        let iface = match (&r.interface, r.ifindex) {
            (Some(n), _) => n.clone(),
            (None, Some(i)) => format!("#{i}"),
            (None, None) => "-".into(),
        };
        let verdict = match &r.verdict {
            Some(v) => {
                let name = format!("{:<18}", v.kind.name());
                match v.kind {
                    Kind::Mtls | Kind::Rejected => self.paint("32", &name),
                    Kind::Tls | Kind::PlaintextExpected | Kind::Unknown => name,
                    Kind::PlaintextLeak | Kind::SidecarBypass => self.paint("1;31", &name),
                }
            }
            None => String::new(),
        };
        writeln!(
            self.out,
            "{:>6}  {:<24} {:<24} {:<8} {} {:>13} {:>17}  {:<12} {}",
            r.id,
            r.client,
            r.server,
            iface,
            proto,
            format!("{}/{}", r.packets.c2s, r.packets.s2c),
            format!("{}/{}", human_bytes(r.bytes.c2s), human_bytes(r.bytes.s2c)),
            tcp_cell(r),
            verdict.trim_end(),
        )?;
        if let Some(v) = r.verdict.as_ref().filter(|v| v.kind.is_problem()) {
            for f in &v.findings {
                let line = format!("        {} {}: {}", f.severity.name(), f.rule, f.evidence);
                let line = self.paint("31", &line);
                writeln!(self.out, "{line}")?;
            }
        }
        if self.flush_each {
            self.out.flush()?;
        }
        Ok(())
    }

    fn finish(&mut self, s: &Summary) -> io::Result<()> {
        if s.flows > 0 {
            writeln!(self.out)?;
        }
        let p = &s.protocols;
        let mut by_proto = Vec::new();
        for proto in Protocol::ALL {
            let n = p.get(proto);
            if n > 0 {
                by_proto.push(format!("{} {n}", proto.name()));
            }
        }
        let by_proto = if by_proto.is_empty() {
            String::new()
        } else {
            format!(" ({})", by_proto.join(", "))
        };
        writeln!(
            self.out,
            "{}{by_proto} · {} · {} of payload",
            count(s.flows, "flow", "flows"),
            count(s.packets, "packet", "packets"),
            human_size(s.bytes)
        )?;
        let non_tcp = s.non_tcp.nonzero();
        if !non_tcp.is_empty() {
            let parts: Vec<String> = non_tcp
                .iter()
                .map(|(k, n)| format!("{k} {}", thousands(*n)))
                .collect();
            writeln!(self.out, "not TCP: {}", parts.join(", "))?;
        }
        if s.evicted > 0 {
            writeln!(
                self.out,
                "flow table full: {} reported early (--max-flows)",
                count(s.evicted, "flow", "flows")
            )?;
        }
        for e in &s.errors {
            let msg = format!("{}: {}", e.file, e.message);
            let msg = self.paint("31", &msg);
            let what = match e.kind {
                InputErrorKind::Damaged => "input damaged",
                _ => "input unreadable",
            };
            writeln!(self.out, "{what}: {msg}")?;
        }
        if s.partial {
            writeln!(
                self.out,
                "PARTIAL: some input could not be read; the flows above are all that could be."
            )?;
        }
        if s.verdicts.total() > 0 {
            writeln!(self.out)?;
            let h = self.paint("1", &format!("{:<20} {:>7}", "VERDICT", "FLOWS"));
            writeln!(self.out, "{h}  (profile {})", s.profile)?;
            for k in Kind::ALL {
                let n = s.verdicts.get(k);
                if n > 0 {
                    writeln!(self.out, "{:<20} {:>7}", k.name(), thousands(n))?;
                }
            }
        }
        if !s.worst.is_empty() {
            writeln!(self.out)?;
            writeln!(self.out, "{}", self.paint("1", "WORST FINDINGS"))?;
            for w in &s.worst {
                writeln!(
                    self.out,
                    "  flow {:<6} {:<6} {:<16} {}",
                    w.flow,
                    w.severity.name(),
                    w.rule,
                    w.evidence
                )?;
            }
            let more = s.findings.saturating_sub(s.worst.len() as u64);
            if more > 0 {
                writeln!(
                    self.out,
                    "  ... and {} more (every finding is under its flow above)",
                    thousands(more)
                )?;
            }
        }
        if !s.answer.is_empty() {
            writeln!(self.out)?;
            let code = if s.answer.starts_with("FAIL") || s.answer.starts_with("ERROR") {
                "1;31"
            } else if s.answer.starts_with("PASS") {
                "1;32"
            } else {
                "1;33"
            };
            let answer = self.paint(code, &s.answer);
            writeln!(self.out, "{answer}")?;
        }
        self.out.flush()
    }
}
