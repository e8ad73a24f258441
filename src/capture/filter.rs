//! Role: capture filters in tcpdump syntax, compiled to classic BPF for Ethernet captures and
//! for `-i any`'s cooked socket, with the semantics of libpcap's compiler for a live Linux
//! socket for the subset accepted (including its quirks: `tcp`
//! also matches IPv6 with a fragment header first, ports are matched on first fragments only
//! and on IPv6 only without extension headers, `tcp[...]` reads IPv4 TCP only). Every
//! expression outside the subset is refused with a message: nothing inexact is applied.
//! `tests/filters.rs` compares the selection with tcpdump's on a packet corpus.
//!
//! Subset: `ip`, `ip6`, `arp`, `tcp`, `udp`, `icmp`, `icmp6`; `[ip|ip6] proto N`; `[src|dst] host ADDR` (IPv4 or
//! IPv6); `[src|dst] net A.B.C.D/LEN`; `[tcp|udp] [src|dst] port N`; `[tcp|udp] [src|dst]
//! portrange A-B`; `tcp[tcpflags] & FLAGS != 0` and `== FLAGS` (`tcp-syn|tcp-ack|...`);
//! `vlan [ID]` (Ethernet only; the first one tests the kernel's VLAN metadata, then the
//! frame's bytes, like libpcap on Linux; each moves the offsets of what is compiled after it);
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
    pub const LD_IMM: u16 = 0x00;
    pub const ST: u16 = 0x02;
    pub const TAX: u16 = 0x07;
    pub const ADD_X: u16 = 0x0c;
    pub const LD_W_ABS: u16 = 0x20;
    pub const LD_H_ABS: u16 = 0x28;
    pub const LD_B_ABS: u16 = 0x30;
    /// `LD_*_ABS + IND` is the indexed form of the same size.
    pub const IND: u16 = 0x20;
    pub const LD_W_IND: u16 = 0x40;
    pub const LD_H_IND: u16 = 0x48;
    pub const LD_B_IND: u16 = 0x50;
    pub const LDX_MEM: u16 = 0x61;
    pub const LSH_K: u16 = 0x64;
    pub const LDX_MSH: u16 = 0xb1;
    pub const AND_K: u16 = 0x54;
    pub const JEQ: u16 = 0x15;
    pub const JGT: u16 = 0x25;
    pub const JGE: u16 = 0x35;
    pub const JSET: u16 = 0x45;
    pub const RET_K: u16 = 0x06;
}

/// Linux's ancillary loads (`SKF_AD_OFF + n`): packet metadata the kernel keeps outside the
/// bytes, read by absolute loads at these offsets.
mod anc {
    pub const OFF: u32 = 0xffff_f000;
    pub const PROTOCOL: u32 = OFF;
    pub const VLAN_TAG: u32 = OFF + 44;
    pub const VLAN_TAG_PRESENT: u32 = OFF + 48;
}

/// The framing a program is compiled for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// A named Ethernet (or loopback) interface: the frame from its Ethernet header.
    Ethernet,
    /// `any`: a cooked socket, whose bytes start at the network header; the protocol is the
    /// kernel's metadata (libpcap compiles for LINUX_SLL2 and rewrites the program the same
    /// way before it gives it to the kernel).
    Cooked,
}

/// Where a value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    /// `ld{w,h,b} [k]` (an ancillary load when k is at or above `anc::OFF`).
    Abs(u16, u32),
    /// X := M[0] (the run-time VLAN offset), then a load at X + k.
    Var(u16, u32),
    /// X := 4 * (pkt[ip] & 0xf) (plus M[0] when `var`), then a load at X + off: a field
    /// after the IPv4 header.
    Ind {
        code: u16,
        ip: u32,
        off: u32,
        var: bool,
    },
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
    /// The first `vlan [ID]` of an Ethernet filter, as libpcap compiles it for a live Linux
    /// socket: a tag in the kernel's metadata (the frame then has no tag in its bytes), or
    /// else a tag in the bytes, which sets M[0] to 4 so that everything compiled after it
    /// reads 4 bytes further.
    Vlan(Option<u32>),
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

/// Offsets as libpcap's compiler state has them when a primitive is compiled: `vlan`
/// primitives move everything compiled after them (in the text's order, whatever the
/// and/or/not around them: libpcap's rule).
#[derive(Debug, Clone, Copy)]
struct Ctx {
    link: Link,
    /// After the first `vlan`: offsets are relative to M[0].
    var: bool,
    /// Bytes added by the `vlan` primitives after the first.
    shift: u32,
}

impl Ctx {
    /// Offset of the network header when there is no run-time VLAN offset.
    fn net0(&self) -> u32 {
        match self.link {
            Link::Ethernet => 14 + self.shift,
            Link::Cooked => 0,
        }
    }
    fn at(&self, code: u16, off: u32) -> Load {
        if self.var {
            Load::Var(code + op::IND, off)
        } else {
            Load::Abs(code, off)
        }
    }
    fn link_type(&self) -> Load {
        match self.link {
            Link::Ethernet => self.at(op::LD_H_ABS, 12 + self.shift),
            Link::Cooked => Load::Abs(op::LD_H_ABS, anc::PROTOCOL),
        }
    }
    /// A load `off` bytes into the network header.
    fn net(&self, code: u16, off: u32) -> Load {
        self.at(code, self.net0() + off)
    }
    /// A load `off` bytes after the IPv4 header.
    fn trans(&self, code: u16, off: u32) -> Load {
        Load::Ind {
            code: code + op::IND,
            ip: self.net0(),
            off: self.net0() + off,
            var: self.var,
        }
    }
    fn ethertype(&self, t: u32) -> Cond {
        test(self.link_type(), None, Cmp::Eq, t)
    }
    fn byte_eq(&self, off: u32, v: u32) -> Cond {
        test(self.net(op::LD_B_ABS, off), None, Cmp::Eq, v)
    }
    fn word_eq(&self, off: u32, v: u32, mask: Option<u32>) -> Cond {
        test(self.net(op::LD_W_ABS, off), mask, Cmp::Eq, v)
    }
    fn ip(&self) -> Cond {
        self.ethertype(0x0800)
    }
    fn ip6(&self) -> Cond {
        self.ethertype(0x86dd)
    }
    /// `ip proto P` (any fragment).
    fn ip_proto(&self, p: u32) -> Cond {
        and(self.ip(), self.byte_eq(9, p))
    }
    /// libpcap's `ip6 proto P`: the next header, or a fragment header followed by it.
    fn ip6_proto(&self, p: u32) -> Cond {
        and(
            self.ip6(),
            or(
                self.byte_eq(6, p),
                and(self.byte_eq(6, 44), self.byte_eq(40, p)),
            ),
        )
    }
    /// First (or only) fragment: `ip[6:2] & 0x1fff == 0`.
    fn first_fragment(&self) -> Cond {
        test(self.net(op::LD_H_ABS, 6), Some(0x1fff), Cmp::Eq, 0)
    }

    /// `vlan [ID]`, updating the offsets for what follows as libpcap does.
    fn vlan(&mut self, vid: Option<u32>) -> Result<Cond, String> {
        if self.link == Link::Cooked {
            return Err(
                "`vlan` cannot be used on `-i any` (libpcap: no VLAN support for \
                        Linux cooked captures); capture a named interface"
                    .into(),
            );
        }
        if !self.var {
            self.var = true;
            return Ok(Cond::Vlan(vid));
        }
        // A later `vlan`: a tag in the bytes at the current offsets, then 4 bytes further.
        let tpid = any(vec![
            self.ethertype(0x8100),
            self.ethertype(0x88a8),
            self.ethertype(0x9100),
        ]);
        let c = match vid {
            Some(v) => and(
                tpid,
                test(self.net(op::LD_H_ABS, 0), Some(0xfff), Cmp::Eq, v),
            ),
            None => tpid,
        };
        self.shift += 4;
        Ok(c)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Any,
    Src,
    Dst,
}

/// A port as the filter gives it, or why it is not one (a number too large is not a name).
fn port_number(p: &str) -> Result<u16, String> {
    if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) {
        return p
            .parse()
            .map_err(|_| format!("{p} is not a port number (0 to 65535)"));
    }
    Err(format!(
        "`{p}` is not a number, and service names are not supported; give a number"
    ))
}

fn host(c: &Ctx, addr: IpAddr, mask_bits: Option<u8>, dir: Dir) -> Result<Cond, String> {
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
                Dir::Src => c.word_eq(src, v, m),
                Dir::Dst => c.word_eq(dst, v, m),
                Dir::Any => or(c.word_eq(src, v, m), c.word_eq(dst, v, m)),
            };
            // IPv4, ARP and RARP, as libpcap's gen_host does for an IPv4 address.
            Ok(any(vec![
                and(c.ip(), pick(12, 16)),
                and(c.ethertype(0x0806), pick(14, 24)),
                and(c.ethertype(0x8035), pick(14, 24)),
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
                    .map(|i| c.word_eq(base + 4 * i, words[i as usize], None))
                    .collect())
            };
            let side = match dir {
                Dir::Src => at(8),
                Dir::Dst => at(24),
                Dir::Any => or(at(8), at(24)),
            };
            Ok(and(c.ip6(), side))
        }
    }
}

/// Ports of transport `p` in IPv4 (first fragment, header length from IHL) and IPv6 (next
/// header directly, no extension headers: libpcap's gen_port6).
fn port_of(c: &Ctx, p: u32, lo: u16, hi: u16, dir: Dir) -> Cond {
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
        c.ip_proto(p),
        c.first_fragment(),
        sides(c.trans(op::LD_H_ABS, 0), c.trans(op::LD_H_ABS, 2)),
    ]);
    let v6 = all(vec![
        c.ip6(),
        c.byte_eq(6, p),
        sides(c.net(op::LD_H_ABS, 40), c.net(op::LD_H_ABS, 42)),
    ]);
    or(v4, v6)
}

fn port(c: &Ctx, proto: Option<u32>, lo: u16, hi: u16, dir: Dir) -> Cond {
    match proto {
        Some(p) => port_of(c, p, lo, hi, dir),
        // tcp, udp and sctp, in libpcap's order.
        None => any(vec![
            port_of(c, 6, lo, hi, dir),
            port_of(c, 17, lo, hi, dir),
            port_of(c, 132, lo, hi, dir),
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
    ctx: Ctx,
    /// Parentheses and `not`s open around the current token: the parser recurses on each,
    /// so it is bounded (`((((…` or `not not …` from the user overflowed the stack).
    depth: usize,
}

/// Nesting that the parser accepts; libpcap's own parser gives up at a similar depth
/// ("memory exhausted"), and no real filter comes near it.
const MAX_DEPTH: usize = 200;

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
        if matches!(self.peek(), Some("not" | "!" | "(")) {
            self.depth += 1;
            if self.depth > MAX_DEPTH {
                return Err(format!(
                    "parentheses and `not` nested deeper than {MAX_DEPTH} levels"
                ));
            }
            let c = self.nested();
            self.depth -= 1;
            return c;
        }
        self.nested()
    }
    fn nested(&mut self) -> Result<Cond, String> {
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
            "ip" | "ip6" if self.peek() == Some("proto") => {
                self.at += 1;
                let n = self.proto_number()?;
                let c = &self.ctx;
                return Ok(if word == "ip" {
                    c.ip_proto(n)
                } else {
                    c.ip6_proto(n)
                });
            }
            "proto" => {
                // libpcap: IPv4's protocol, or IPv6's next header.
                let n = self.proto_number()?;
                return Ok(or(self.ctx.ip_proto(n), self.ctx.ip6_proto(n)));
            }
            "ip" | "ip6" | "arp" | "icmp" | "icmp6" if !self.qualifier_follows() => {
                let c = &self.ctx;
                return Ok(match word {
                    "ip" => c.ip(),
                    "ip6" => c.ip6(),
                    "arp" => c.ethertype(0x0806),
                    "icmp" => c.ip_proto(1),
                    _ => c.ip6_proto(58),
                });
            }
            "vlan" => {
                let vid = match self.peek() {
                    Some(t) if t.bytes().all(|b| b.is_ascii_digit()) => {
                        self.at += 1;
                        let v: u32 = t.parse().ok().filter(|v| *v <= 4095).ok_or(format!(
                            "VLAN ID {t} is greater than the maximum VLAN ID, 4095"
                        ))?;
                        Some(v)
                    }
                    _ => None,
                };
                return self.ctx.vlan(vid);
            }
            "ip" | "ip6" | "arp" | "icmp" | "icmp6" => {
                // Only `tcp`/`udp` may qualify a primitive here; say which pair was refused.
                let next = self.peek().unwrap_or_default();
                let also = if word == "ip6" && next == "net" {
                    " (IPv6 networks are not supported yet either)"
                } else {
                    ""
                };
                return Err(format!(
                    "`{word} {next}`: `{word}` as a qualifier of `{next}` is not supported; \
                     write `{word} and {next} …`{also}"
                ));
            }
            "tcp" | "udp" => {
                let p = if word == "tcp" { 6 } else { 17 };
                if self.peek() == Some("[") {
                    return self.tcp_flags(word);
                }
                if !self.qualifier_follows() {
                    return Ok(or(self.ctx.ip_proto(p), self.ctx.ip6_proto(p)));
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
                host(&self.ctx, addr, None, dir)
            }
            "net" => {
                let n = self.next().ok_or("`net` needs A.B.C.D/LEN")?;
                let (a, len) = n
                    .split_once('/')
                    .ok_or(format!("`{n}`: write the network as A.B.C.D/LEN"))?;
                let addr: IpAddr = a.parse().map_err(|_| format!("`{a}` is not an address"))?;
                if addr.is_ipv6() {
                    return Err(format!("`net {n}`: IPv6 networks are not supported yet"));
                }
                let len: u8 = len
                    .parse()
                    .ok()
                    .filter(|l| *l <= 32)
                    .ok_or(format!("`/{len}` is not a prefix length"))?;
                host(&self.ctx, addr, Some(len), dir)
            }
            "port" => {
                let p = self.next().ok_or("`port` needs a number")?;
                let n = port_number(p).map_err(|why| format!("`port {p}`: {why}"))?;
                Ok(port(&self.ctx, proto, n, n, dir))
            }
            "portrange" => {
                let r = self.next().ok_or("`portrange` needs A-B")?;
                let (a, b) = r.split_once('-').ok_or(format!("`{r}`: write A-B"))?;
                let (a, b) = match (port_number(a), port_number(b)) {
                    (Ok(a), Ok(b)) => (a, b),
                    (Err(why), _) | (_, Err(why)) => {
                        return Err(format!("`portrange {r}`: {why}"));
                    }
                };
                let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                Ok(port(&self.ctx, proto, lo, hi, dir))
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
    /// The number after `proto` (names such as `\\tcp` are not supported).
    fn proto_number(&mut self) -> Result<u32, String> {
        let t = self.next().ok_or("`proto` needs a protocol number")?;
        t.parse::<u32>()
            .ok()
            .filter(|n| *n <= 255)
            .ok_or(format!("`proto {t}`: a protocol number from 0 to 255"))
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
        let c = &self.ctx;
        let load = c.trans(op::LD_B_ABS, 13);
        let value = match (cmp, v) {
            ("!=", 0) => test(load, Some(mask), Cmp::Set, 0xff),
            ("==" | "=", v) if v == mask => test(load, Some(mask), Cmp::Eq, v),
            ("==" | "=", 0) => Cond::Not(Box::new(test(load, Some(mask), Cmp::Set, 0xff))),
            _ => return Err("only `!= 0`, `== 0` and `== FLAGS` comparisons are supported".into()),
        };
        Ok(all(vec![c.ip_proto(6), c.first_fragment(), value]))
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

/// Compiles `expr` for a capture framed as `link`; `snaplen` is what accepted packets keep.
pub fn compile(expr: &str, link: Link, snaplen: u32) -> Result<Vec<Insn>, FilterError> {
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
    let ctx = Ctx {
        link,
        var: false,
        shift: 0,
    };
    let mut p = Parser {
        toks,
        at: 0,
        ctx,
        depth: 0,
    };
    let cond = p.expr().map_err(err)?;
    if let Some(t) = p.peek() {
        return Err(err(format!("unexpected `{t}`")));
    }
    let mut g = Gen::default();
    if p.ctx.var {
        // The run-time VLAN offset starts at 0 (the kernel also refuses a program that
        // reads scratch memory before writing it).
        g.emit(op::LD_IMM, 0);
        g.emit(op::ST, 0);
    }
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
    fn jump(&mut self, code: u16, k: u32, t: usize, f: usize) {
        self.code
            .push((code, Target::Label(t), Target::Label(f), k));
    }
    fn load(&mut self, load: Load) {
        match load {
            Load::Abs(code, off) => self.emit(code, off),
            Load::Var(code, off) => {
                self.emit(op::LDX_MEM, 0);
                self.emit(code, off);
            }
            Load::Ind {
                code,
                ip,
                off,
                var: false,
            } => {
                self.emit(op::LDX_MSH, ip);
                self.emit(code, off);
            }
            Load::Ind {
                code,
                ip,
                off,
                var: true,
            } => {
                // X := M[0] + 4 * (pkt[M[0] + ip] & 0xf), as libpcap does it.
                self.emit(op::LDX_MEM, 0);
                self.emit(op::LD_B_IND, ip);
                self.emit(op::AND_K, 0xf);
                self.emit(op::LSH_K, 2);
                self.emit(op::ADD_X, 0);
                self.emit(op::TAX, 0);
                self.emit(code, off);
            }
        }
    }
    fn cond(&mut self, c: &Cond, t: usize, f: usize) {
        match c {
            Cond::Test { load, mask, cmp, k } => {
                self.load(*load);
                if let Some(m) = mask {
                    self.emit(op::AND_K, *m);
                }
                let code = match cmp {
                    Cmp::Eq => op::JEQ,
                    Cmp::Ge => op::JGE,
                    Cmp::Gt => op::JGT,
                    Cmp::Set => op::JSET,
                };
                self.jump(code, *k, t, f);
            }
            Cond::Vlan(vid) => {
                let (meta, bytes) = (self.label(), self.label());
                self.emit(op::LD_B_ABS, anc::VLAN_TAG_PRESENT);
                self.jump(op::JEQ, 1, meta, bytes);
                self.place(bytes);
                self.emit(op::LD_IMM, 4);
                self.emit(op::ST, 0);
                let (q1, q2, tagged) = (self.label(), self.label(), self.label());
                self.emit(op::LD_H_ABS, 12);
                self.jump(op::JEQ, 0x8100, tagged, q1);
                self.place(q1);
                self.jump(op::JEQ, 0x88a8, tagged, q2);
                self.place(q2);
                self.jump(op::JEQ, 0x9100, tagged, f);
                self.place(tagged);
                match vid {
                    Some(v) => {
                        self.emit(op::LD_H_ABS, 14);
                        self.emit(op::AND_K, 0xfff);
                        self.jump(op::JEQ, *v, t, f);
                    }
                    // Always true: a jump to `t` either way.
                    None => self.jump(op::JEQ, 0, t, t),
                }
                self.place(meta);
                match vid {
                    Some(v) => {
                        self.emit(op::LD_B_ABS, anc::VLAN_TAG);
                        self.emit(op::AND_K, 0xfff);
                        self.jump(op::JEQ, *v, t, f);
                    }
                    None => self.jump(op::JEQ, 0, t, t),
                }
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

/// What the kernel knows about a packet beyond its bytes (ancillary loads).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meta {
    /// The packet's protocol (`skb->protocol`, an ethertype).
    pub protocol: u16,
    /// A VLAN tag the kernel took out of the frame (the TCI).
    pub vlan_tci: Option<u16>,
}

/// Runs a program on one packet read from a file (no metadata beyond `protocol`, taken
/// from an Ethernet header): the number of bytes to keep, 0 to drop.
pub fn run(prog: &[Insn], pkt: &[u8]) -> u32 {
    let protocol = pkt
        .get(12..14)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    run_with(
        prog,
        pkt,
        Meta {
            protocol,
            vlan_tci: None,
        },
    )
}

/// Runs a program on one packet as the kernel would: the number of bytes to keep, 0 to drop.
pub fn run_with(prog: &[Insn], pkt: &[u8], meta: Meta) -> u32 {
    let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
    let mut mem = [0u32; 16];
    let load = |off: u32, size: usize| -> Option<u32> {
        if off >= anc::OFF {
            return match off {
                anc::PROTOCOL => Some(u32::from(meta.protocol)),
                anc::VLAN_TAG_PRESENT => Some(u32::from(meta.vlan_tci.is_some())),
                anc::VLAN_TAG => Some(u32::from(meta.vlan_tci.unwrap_or(0))),
                _ => None,
            };
        }
        let off = off as usize;
        let b = pkt.get(off..off.checked_add(size)?)?;
        Some(b.iter().fold(0u32, |v, &byte| (v << 8) | u32::from(byte)))
    };
    let size = |code: u16| match code & 0x18 {
        0x00 => 4,
        0x08 => 2,
        _ => 1,
    };
    while let Some(i) = prog.get(pc) {
        pc += 1;
        match i.code {
            op::LD_W_ABS | op::LD_H_ABS | op::LD_B_ABS => match load(i.k, size(i.code)) {
                Some(v) => a = v,
                None => return 0,
            },
            op::LD_W_IND | op::LD_H_IND | op::LD_B_IND => {
                match x.checked_add(i.k).filter(|o| *o < anc::OFF) {
                    Some(o) => match load(o, size(i.code)) {
                        Some(v) => a = v,
                        None => return 0,
                    },
                    None => return 0,
                }
            }
            op::LDX_MSH => match load(i.k, 1) {
                Some(v) => x = 4 * (v & 0xf),
                None => return 0,
            },
            op::LD_IMM => a = i.k,
            op::ST => match mem.get_mut(i.k as usize) {
                Some(m) => *m = a,
                None => return 0,
            },
            op::LDX_MEM => match mem.get(i.k as usize) {
                Some(m) => x = *m,
                None => return 0,
            },
            op::TAX => x = a,
            op::ADD_X => a = a.wrapping_add(x),
            op::LSH_K => a = a.checked_shl(i.k).unwrap_or(0),
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
    use super::{Link, compile};
    /// The fuzz target's invariants on every prefix of some expressions (truncated input must
    /// be refused or compile, never panic), run on a few packets.
    /// Found by the `filter` fuzz target (a stack overflow, the process killed): deep nesting
    /// from the user is refused with a message, at any depth.
    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        for n in [201, 20_000] {
            let parens = format!("{}tcp{}", "(".repeat(n), ")".repeat(n));
            let nots = format!("{}tcp", "not ".repeat(n));
            for e in [parens, nots] {
                let err = compile(&e, Link::Ethernet, 262_144)
                    .unwrap_err()
                    .to_string();
                assert!(err.contains("nested deeper than 200"), "{err}");
            }
        }
        assert!(
            compile(
                &format!("{}tcp{}", "(".repeat(200), ")".repeat(200)),
                Link::Ethernet,
                262_144
            )
            .is_ok()
        );
    }

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
        let eth = super::Link::Ethernet;
        assert!(
            super::compile("net 10.0.0.1/8", eth, 1).is_err(),
            "host bits set"
        );
        assert!(super::compile("port 99999", eth, 1).is_err());
        assert!(super::compile("vlan 4096", eth, 1).is_err());
        assert!(super::compile("vlan", super::Link::Cooked, 1).is_err());
    }
}
