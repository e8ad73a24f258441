//! Role: capture filters in tcpdump syntax, compiled to classic BPF for Ethernet captures, with
//! the semantics of libpcap's compiler for the subset accepted (including its quirks: `tcp`
//! also matches IPv6 with a fragment header first, ports are matched on first fragments only
//! and on IPv6 only without extension headers, `tcp[...]` reads IPv4 TCP only). Every
//! expression outside the subset is refused with a message: nothing inexact is applied.
//! `tests/filters.rs` compares the selection with tcpdump's on a packet corpus.
//!
//! Subset: `ip`, `ip6`, `arp`, `tcp`, `udp`, `icmp`, `icmp6`; `[src|dst] host ADDR` (IPv4 or
//! IPv6); `[src|dst] net A.B.C.D/LEN`; `[tcp|udp] [src|dst] port N`; `[tcp|udp] [src|dst]
//! portrange A-B`; `tcp[tcpflags] & FLAGS != 0` and `== FLAGS` (`tcp-syn|tcp-ack|...`);
//! `and`/`&&`, `or`/`||`, `not`/`!`, parentheses.

use std::net::IpAddr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("filter `{expr}`: {why}")]
pub struct FilterError {
    pub expr: String,
    pub why: String,
}

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

mod op {
    pub const LD_W_ABS: u16 = 0x20;
    pub const LD_H_ABS: u16 = 0x28;
    pub const LD_B_ABS: u16 = 0x30;
    pub const LD_H_IND: u16 = 0x48;
    pub const LD_B_IND: u16 = 0x50;
    pub const LDX_MSH: u16 = 0xb1;
    pub const AND_K: u16 = 0x54;
    pub const JEQ: u16 = 0x15;
    pub const JGT: u16 = 0x25;
    pub const JGE: u16 = 0x35;
    pub const JSET: u16 = 0x45;
    pub const RET_K: u16 = 0x06;
}

/// Where a value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Abs(u16, u32),
    /// X := 4 * (pkt[14] & 0xf), then a load at X + offset.
    Ind(u16, u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ge,
    Gt,
    Set,
}

/// A condition tree; leaves are single loads and comparisons.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Cond {
    Test {
        load: Load,
        mask: Option<u32>,
        cmp: Cmp,
        k: u32,
    },
    And(Box<Cond>, Box<Cond>),
    Or(Box<Cond>, Box<Cond>),
    Not(Box<Cond>),
}

fn test(load: Load, mask: Option<u32>, cmp: Cmp, k: u32) -> Cond {
    Cond::Test { load, mask, cmp, k }
}
fn and(a: Cond, b: Cond) -> Cond {
    Cond::And(Box::new(a), Box::new(b))
}
fn or(a: Cond, b: Cond) -> Cond {
    Cond::Or(Box::new(a), Box::new(b))
}
fn any(mut v: Vec<Cond>) -> Cond {
    let first = v.remove(0);
    v.into_iter().fold(first, or)
}
fn all(mut v: Vec<Cond>) -> Cond {
    let first = v.remove(0);
    v.into_iter().fold(first, and)
}

const ETH: u32 = 14;
fn ethertype(t: u32) -> Cond {
    test(Load::Abs(op::LD_H_ABS, 12), None, Cmp::Eq, t)
}
fn byte_eq(off: u32, v: u32) -> Cond {
    test(Load::Abs(op::LD_B_ABS, off), None, Cmp::Eq, v)
}
fn word_eq(off: u32, v: u32, mask: Option<u32>) -> Cond {
    test(Load::Abs(op::LD_W_ABS, off), mask, Cmp::Eq, v)
}
fn ip() -> Cond {
    ethertype(0x0800)
}
fn ip6() -> Cond {
    ethertype(0x86dd)
}
/// `ip proto P` (any fragment).
fn ip_proto(p: u32) -> Cond {
    and(ip(), byte_eq(ETH + 9, p))
}
/// libpcap's `ip6 proto P`: the next header, or a fragment header followed by it.
fn ip6_proto(p: u32) -> Cond {
    and(
        ip6(),
        or(
            byte_eq(ETH + 6, p),
            and(byte_eq(ETH + 6, 44), byte_eq(ETH + 40, p)),
        ),
    )
}
/// First (or only) fragment: `ip[6:2] & 0x1fff == 0`.
fn first_fragment() -> Cond {
    test(Load::Abs(op::LD_H_ABS, ETH + 6), Some(0x1fff), Cmp::Eq, 0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Any,
    Src,
    Dst,
}

fn host(addr: IpAddr, mask_bits: Option<u8>, dir: Dir) -> Result<Cond, String> {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(mask_bits.unwrap_or(32));
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            let v = u32::from(a);
            if v & !mask != 0 {
                return Err(format!("non-network bits set in {a}/{bits}"));
            }
            let m = (mask != u32::MAX).then_some(mask);
            let pick = |src: u32, dst: u32| match dir {
                Dir::Src => word_eq(src, v, m),
                Dir::Dst => word_eq(dst, v, m),
                Dir::Any => or(word_eq(src, v, m), word_eq(dst, v, m)),
            };
            // IPv4, ARP and RARP, as libpcap's gen_host does for an IPv4 address.
            Ok(any(vec![
                and(ip(), pick(ETH + 12, ETH + 16)),
                and(ethertype(0x0806), pick(ETH + 14, ETH + 24)),
                and(ethertype(0x8035), pick(ETH + 14, ETH + 24)),
            ]))
        }
        IpAddr::V6(a) => {
            if mask_bits.is_some() {
                return Err("IPv6 networks are not supported yet".into());
            }
            let words: Vec<u32> = a
                .octets()
                .chunks(4)
                .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            // libpcap compares the last word first; the result is the same conjunction.
            let at = |base: u32| {
                all((0..4)
                    .map(|i| word_eq(base + 4 * i, words[i as usize], None))
                    .collect())
            };
            let side = match dir {
                Dir::Src => at(ETH + 8),
                Dir::Dst => at(ETH + 24),
                Dir::Any => or(at(ETH + 8), at(ETH + 24)),
            };
            Ok(and(ip6(), side))
        }
    }
}

/// Ports of transport `p` in IPv4 (first fragment, header length from IHL) and IPv6 (next
/// header directly, no extension headers: libpcap's gen_port6).
fn port_of(p: u32, lo: u16, hi: u16, dir: Dir) -> Cond {
    let range = |load: Load| {
        if lo == hi {
            test(load, None, Cmp::Eq, u32::from(lo))
        } else {
            and(
                test(load, None, Cmp::Ge, u32::from(lo)),
                Cond::Not(Box::new(test(load, None, Cmp::Gt, u32::from(hi)))),
            )
        }
    };
    let sides = |src: Load, dst: Load| match dir {
        Dir::Src => range(src),
        Dir::Dst => range(dst),
        Dir::Any => or(range(src), range(dst)),
    };
    let v4 = all(vec![
        ip_proto(p),
        first_fragment(),
        sides(
            Load::Ind(op::LD_H_IND, ETH),
            Load::Ind(op::LD_H_IND, ETH + 2),
        ),
    ]);
    let v6 = all(vec![
        ip6(),
        byte_eq(ETH + 6, p),
        sides(
            Load::Abs(op::LD_H_ABS, ETH + 40),
            Load::Abs(op::LD_H_ABS, ETH + 42),
        ),
    ]);
    or(v4, v6)
}

fn port(proto: Option<u32>, lo: u16, hi: u16, dir: Dir) -> Cond {
    match proto {
        Some(p) => port_of(p, lo, hi, dir),
        // tcp, udp and sctp, in libpcap's order.
        None => any(vec![
            port_of(6, lo, hi, dir),
            port_of(17, lo, hi, dir),
            port_of(132, lo, hi, dir),
        ]),
    }
}

const TCP_FLAGS: [(&str, u32); 8] = [
    ("tcp-fin", 0x01),
    ("tcp-syn", 0x02),
    ("tcp-rst", 0x04),
    ("tcp-push", 0x08),
    ("tcp-ack", 0x10),
    ("tcp-urg", 0x20),
    ("tcp-ece", 0x40),
    ("tcp-cwr", 0x80),
];

struct Parser<'a> {
    toks: Vec<&'a str>,
    at: usize,
}

fn tokenize(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut i = 0;
    let b = s.as_bytes();
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if s[i..].starts_with("&&")
            || s[i..].starts_with("||")
            || s[i..].starts_with("!=")
            || s[i..].starts_with("==")
        {
            out.push(&s[i..i + 2]);
            i += 2;
        } else if b"()!&|=[]".contains(&c) {
            out.push(&s[i..i + 1]);
            i += 1;
        } else {
            let start = i;
            while i < b.len() && !b[i].is_ascii_whitespace() && !b"()!&|=[]".contains(&b[i]) {
                i += 1;
            }
            out.push(&s[start..i]);
        }
    }
    out
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.toks.get(self.at).copied()
    }
    fn next(&mut self) -> Option<&'a str> {
        let t = self.peek();
        self.at += 1;
        t
    }
    fn expect(&mut self, want: &str) -> Result<(), String> {
        match self.next() {
            Some(t) if t == want => Ok(()),
            Some(t) => Err(format!("expected `{want}`, found `{t}`")),
            None => Err(format!("expected `{want}` at the end")),
        }
    }
    fn expr(&mut self) -> Result<Cond, String> {
        let mut c = self.term()?;
        while matches!(self.peek(), Some("or" | "||")) {
            self.at += 1;
            c = or(c, self.term()?);
        }
        Ok(c)
    }
    fn term(&mut self) -> Result<Cond, String> {
        let mut c = self.factor()?;
        while matches!(self.peek(), Some("and" | "&&")) {
            self.at += 1;
            c = and(c, self.factor()?);
        }
        Ok(c)
    }
    fn factor(&mut self) -> Result<Cond, String> {
        match self.peek() {
            Some("not" | "!") => {
                self.at += 1;
                Ok(Cond::Not(Box::new(self.factor()?)))
            }
            Some("(") => {
                self.at += 1;
                let c = self.expr()?;
                self.expect(")")?;
                Ok(c)
            }
            Some(_) => self.primitive(),
            None => Err("an expression is missing".into()),
        }
    }
    fn primitive(&mut self) -> Result<Cond, String> {
        let mut proto = None;
        let mut dir = Dir::Any;
        let first = self.next().unwrap_or_default();
        let mut word = first;
        match word {
            "ip" | "ip6" | "arp" | "icmp" | "icmp6" if !self.qualifier_follows() => {
                return Ok(match word {
                    "ip" => ip(),
                    "ip6" => ip6(),
                    "arp" => ethertype(0x0806),
                    "icmp" => ip_proto(1),
                    _ => ip6_proto(58),
                });
            }
            "tcp" | "udp" => {
                let p = if word == "tcp" { 6 } else { 17 };
                if self.peek() == Some("[") {
                    return self.tcp_flags(word);
                }
                if !self.qualifier_follows() {
                    return Ok(or(ip_proto(p), ip6_proto(p)));
                }
                proto = Some(p);
                word = self.next().unwrap_or_default();
            }
            _ => {}
        }
        if word == "src" || word == "dst" {
            dir = if word == "src" { Dir::Src } else { Dir::Dst };
            if matches!(self.peek(), Some("or" | "and")) {
                return Err("`src or dst` / `src and dst` are not supported yet".into());
            }
            word = self.next().unwrap_or_default();
        }
        match word {
            "host" | "net" if proto.is_some() => Err(format!(
                "`{first} {word}` is not supported (use `{word} …` and `{first}`)"
            )),
            "host" => {
                let a = self.next().ok_or("`host` needs an address")?;
                let addr: IpAddr = a
                    .parse()
                    .map_err(|_| format!("`{a}`: host names are not resolved; give an address"))?;
                host(addr, None, dir)
            }
            "net" => {
                let n = self.next().ok_or("`net` needs A.B.C.D/LEN")?;
                let (a, len) = n
                    .split_once('/')
                    .ok_or(format!("`{n}`: write the network as A.B.C.D/LEN"))?;
                let addr: IpAddr = a.parse().map_err(|_| format!("`{a}` is not an address"))?;
                let len: u8 = len
                    .parse()
                    .ok()
                    .filter(|l| *l <= 32)
                    .ok_or(format!("`/{len}` is not a prefix length"))?;
                host(addr, Some(len), dir)
            }
            "port" => {
                let p = self.next().ok_or("`port` needs a number")?;
                let n: u16 = p.parse().map_err(|_| {
                    format!("`{p}`: service names are not supported; give a number")
                })?;
                Ok(port(proto, n, n, dir))
            }
            "portrange" => {
                let r = self.next().ok_or("`portrange` needs A-B")?;
                let (a, b) = r.split_once('-').ok_or(format!("`{r}`: write A-B"))?;
                let (a, b): (u16, u16) = match (a.parse(), b.parse()) {
                    (Ok(a), Ok(b)) => (a, b),
                    _ => return Err(format!("`{r}`: numbers only")),
                };
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                Ok(port(proto, lo, hi, dir))
            }
            other => Err(format!(
                "`{other}` is not supported by meshsniff's filter compiler yet"
            )),
        }
    }
    fn qualifier_follows(&self) -> bool {
        matches!(
            self.peek(),
            Some("src" | "dst" | "host" | "net" | "port" | "portrange" | "proto")
        )
    }
    /// `FLAG`, `FLAG|FLAG…`, or the same in parentheses.
    fn flags(&mut self) -> Result<u32, String> {
        let paren = self.peek() == Some("(");
        if paren {
            self.at += 1;
        }
        let mut v = 0u32;
        loop {
            let t = self.next().ok_or("flags expected")?;
            v |= flag_value(t)?;
            if self.peek() == Some("|") {
                self.at += 1;
            } else {
                break;
            }
        }
        if paren {
            self.expect(")")?;
        }
        Ok(v)
    }

    /// `tcp[tcpflags] & FLAGS != 0` or `tcp[tcpflags] & FLAGS == FLAGS` (also `tcp[13]`).
    fn tcp_flags(&mut self, proto: &str) -> Result<Cond, String> {
        if proto != "tcp" {
            return Err("only `tcp[tcpflags]` / `tcp[13]` loads are supported".into());
        }
        self.expect("[")?;
        match self.next() {
            Some("tcpflags" | "13") => {}
            Some(t) => return Err(format!("`tcp[{t}]` is not supported (only tcpflags / 13)")),
            None => return Err("unfinished `tcp[`".into()),
        }
        self.expect("]")?;
        self.expect("&")?;
        let mask = self.flags()?;
        let cmp = self.next().ok_or("`!=` or `==`/`=` expected")?;
        let v = self.flags()?;
        // libpcap: IPv4 TCP only (its optimizer proves `ip6 and tcp[…]` rejects everything),
        // a first fragment, byte 13 after the IPv4 header (X = 4 * IHL).
        let load = Load::Ind(op::LD_B_IND, ETH + 13);
        let value = match (cmp, v) {
            ("!=", 0) => test(load, Some(mask), Cmp::Set, 0xff),
            ("==" | "=", v) if v == mask => test(load, Some(mask), Cmp::Eq, v),
            ("==" | "=", 0) => Cond::Not(Box::new(test(load, Some(mask), Cmp::Set, 0xff))),
            _ => return Err("only `!= 0`, `== 0` and `== FLAGS` comparisons are supported".into()),
        };
        Ok(all(vec![ip_proto(6), first_fragment(), value]))
    }
}

fn flag_value(t: &str) -> Result<u32, String> {
    if let Some((_, v)) = TCP_FLAGS.iter().find(|(n, _)| *n == t) {
        return Ok(*v);
    }
    if let Some(h) = t.strip_prefix("0x") {
        return u32::from_str_radix(h, 16).map_err(|_| format!("`{t}` is not a number"));
    }
    t.parse()
        .map_err(|_| format!("`{t}` is not a TCP flag name or a number"))
}

/// Compiles `expr` for an Ethernet capture; `snaplen` is what accepted packets keep.
pub fn compile(expr: &str, snaplen: u32) -> Result<Vec<Insn>, FilterError> {
    let err = |why: String| FilterError {
        expr: expr.to_string(),
        why,
    };
    let toks = tokenize(expr);
    if toks.is_empty() {
        return Ok(vec![Insn {
            code: op::RET_K,
            jt: 0,
            jf: 0,
            k: snaplen,
        }]);
    }
    let mut p = Parser { toks, at: 0 };
    let cond = p.expr().map_err(err)?;
    if let Some(t) = p.peek() {
        return Err(err(format!("unexpected `{t}`")));
    }
    let mut g = Gen::default();
    let (t, f) = (g.label(), g.label());
    g.cond(&cond, t, f);
    g.place(t);
    g.emit(op::RET_K, snaplen);
    g.place(f);
    g.emit(op::RET_K, 0);
    g.finish().map_err(err)
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Next,
    Label(usize),
}

#[derive(Default)]
struct Gen {
    code: Vec<(u16, Target, Target, u32)>,
    labels: Vec<Option<usize>>,
}

impl Gen {
    fn label(&mut self) -> usize {
        self.labels.push(None);
        self.labels.len() - 1
    }
    fn place(&mut self, l: usize) {
        self.labels[l] = Some(self.code.len());
    }
    fn emit(&mut self, code: u16, k: u32) {
        self.code.push((code, Target::Next, Target::Next, k));
    }
    fn cond(&mut self, c: &Cond, t: usize, f: usize) {
        match c {
            Cond::Test { load, mask, cmp, k } => {
                match *load {
                    Load::Abs(code, off) => self.emit(code, off),
                    Load::Ind(code, off) => {
                        self.emit(op::LDX_MSH, ETH);
                        self.emit(code, off);
                    }
                }
                if let Some(m) = mask {
                    self.emit(op::AND_K, *m);
                }
                let code = match cmp {
                    Cmp::Eq => op::JEQ,
                    Cmp::Ge => op::JGE,
                    Cmp::Gt => op::JGT,
                    Cmp::Set => op::JSET,
                };
                self.code
                    .push((code, Target::Label(t), Target::Label(f), *k));
            }
            Cond::And(a, b) => {
                let mid = self.label();
                self.cond(a, mid, f);
                self.place(mid);
                self.cond(b, t, f);
            }
            Cond::Or(a, b) => {
                let mid = self.label();
                self.cond(a, t, mid);
                self.place(mid);
                self.cond(b, t, f);
            }
            Cond::Not(a) => self.cond(a, f, t),
        }
    }
    fn finish(self) -> Result<Vec<Insn>, String> {
        if self.code.len() > 4096 {
            return Err("the compiled filter is too long".into());
        }
        let mut out = Vec::with_capacity(self.code.len());
        for (i, (code, jt, jf, k)) in self.code.iter().enumerate() {
            let rel = |t: &Target| -> Result<u8, String> {
                match t {
                    Target::Next => Ok(0),
                    Target::Label(l) => {
                        let at = self.labels[*l].ok_or("internal: unplaced label")?;
                        let d = at.checked_sub(i + 1).ok_or("internal: backward jump")?;
                        u8::try_from(d).map_err(|_| {
                            "the compiled filter needs a jump longer than BPF allows; simplify it".to_string()
                        })
                    }
                }
            };
            out.push(Insn {
                code: *code,
                jt: rel(jt)?,
                jf: rel(jf)?,
                k: *k,
            });
        }
        Ok(out)
    }
}

/// Runs a program on one packet (as the kernel would): the number of bytes to keep, 0 to drop.
pub fn run(prog: &[Insn], pkt: &[u8]) -> u32 {
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    let load = |off: u32, size: usize| -> Option<u32> {
        let off = off as usize;
        let b = pkt.get(off..off.checked_add(size)?)?;
        Some(b.iter().fold(0u32, |v, &byte| (v << 8) | u32::from(byte)))
    };
    while let Some(i) = prog.get(pc) {
        pc += 1;
        match i.code {
            op::LD_W_ABS | op::LD_H_ABS | op::LD_B_ABS => {
                let size = match i.code {
                    op::LD_W_ABS => 4,
                    op::LD_H_ABS => 2,
                    _ => 1,
                };
                match load(i.k, size) {
                    Some(v) => a = v,
                    None => return 0,
                }
            }
            op::LD_H_IND | op::LD_B_IND => {
                let size = if i.code == op::LD_H_IND { 2 } else { 1 };
                match load(x.wrapping_add(i.k), size) {
                    Some(v) => a = v,
                    None => return 0,
                }
            }
            op::LDX_MSH => match load(i.k, 1) {
                Some(v) => x = 4 * (v & 0xf),
                None => return 0,
            },
            op::AND_K => a &= i.k,
            op::JEQ | op::JGT | op::JGE | op::JSET => {
                let hit = match i.code {
                    op::JEQ => a == i.k,
                    op::JGT => a > i.k,
                    op::JGE => a >= i.k,
                    _ => a & i.k != 0,
                };
                pc += usize::from(if hit { i.jt } else { i.jf });
            }
            op::RET_K => return i.k,
            _ => return 0,
        }
    }
    0
}

/// `tcpdump -ddd` form: the count, then `code jt jf k` per line.
pub fn ddd(prog: &[Insn]) -> String {
    let mut s = format!("{}\n", prog.len());
    for i in prog {
        s.push_str(&format!("{} {} {} {}\n", i.code, i.jt, i.jf, i.k));
    }
    s
}

#[cfg(test)]
mod tests {
    /// The fuzz target's invariants on every prefix of some expressions (truncated input must
    /// be refused or compile, never panic), run on a few packets.
    #[test]
    fn truncated_and_odd_expressions_never_panic() {
        let pkts: [&[u8]; 3] = [&[], &[0; 14], &[0xff; 80]];
        for e in [
            "tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack)",
            "(port 8080 or portrange 1-2) and not src net 10.0.0.0/8",
            "host fd77::2 && ! udp || icmp6",
            "((((",
            "port 99999",
            "net 10.0.0.1/8",
        ] {
            for end in 0..=e.len() {
                let Some(prefix) = e.get(..end) else { continue };
                for p in pkts {
                    let mut input = prefix.as_bytes().to_vec();
                    input.push(b'\n');
                    input.extend_from_slice(p);
                    crate::fuzzing::check_filter(&input);
                }
            }
        }
        assert!(
            super::compile("net 10.0.0.1/8", 1).is_err(),
            "host bits set"
        );
        assert!(super::compile("port 99999", 1).is_err());
    }
}
