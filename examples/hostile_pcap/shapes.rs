//! Hostile capture shapes for the memory bound (issue 11), written as a stream of valid pcap
//! (Ethernet, IPv4 with checksums, TCP after a three-way handshake, UDP with QUIC Initials that
//! are really encrypted with their Initial keys). Shared by `examples/hostile_pcap` (bench) and
//! `tests/memory.rs`; nothing is held in memory beyond one packet.

use std::io::{self, Write};

/// A shape that made the analyzer keep far more than its documented bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Per flow, 63 segments of 65,000 bytes ahead of a hole that is never filled, the
    /// flows interleaved: each direction held them all (≈ 4 MB a flow).
    OutOfOrder,
    /// h2c: per direction one HEADERS frame of 256 KiB − 1 without END_HEADERS, sent in
    /// 65,000-byte segments: the frame and block buffers held ≈ 0.5 MB a direction.
    H2cHeaders,
    /// QUIC: per flow 64 client Initials, each a CRYPTO frame of 65,000 bytes at an offset
    /// below 16 KiB ahead of a hole: every fragment was kept (≈ 4 MB a flow).
    QuicCrypto,
    /// Connections refused at once (SYN, then RST from the server), 20 µs apart: each left a
    /// tombstone, and until the next sweep (10 s of capture time) nothing dropped them.
    SynRst,
}

impl Shape {
    pub const ALL: [Shape; 4] = [
        Shape::OutOfOrder,
        Shape::H2cHeaders,
        Shape::QuicCrypto,
        Shape::SynRst,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shape::OutOfOrder => "tcp-out-of-order",
            Shape::H2cHeaders => "h2c-headers",
            Shape::QuicCrypto => "quic-crypto",
            Shape::SynRst => "tcp-syn-rst",
        }
    }

    pub fn parse(s: &str) -> Option<Shape> {
        Shape::ALL.into_iter().find(|x| x.name() == s)
    }

    /// Input bytes one flow of this shape takes (roughly).
    pub fn bytes_per_flow(self) -> u64 {
        match self {
            Shape::OutOfOrder => u64::from(OOO_SEGMENTS) * (SEG as u64 + 70),
            Shape::H2cHeaders => 2 * (H2_BLOCK as u64 + 64 * 70),
            Shape::QuicCrypto => u64::from(QUIC_FRAGMENTS) * (QUIC_FRAGMENT as u64 + 110),
            Shape::SynRst => 2 * 70,
        }
    }
}

/// TCP payload per data segment (IPv4 total length stays below 65,535).
const SEG: usize = 65_000;
/// Out-of-order segments per flow: one fewer than the count that ends the wait.
const OOO_SEGMENTS: u32 = 63;
/// The header block h2c allowed before: its 256 KiB limit, less one.
const H2_BLOCK: usize = 256 * 1024 - 1;
/// CRYPTO fragments per QUIC flow (the count the old code kept) and their size.
const QUIC_FRAGMENTS: u32 = 64;
const QUIC_FRAGMENT: usize = 65_000;

/// Writes `flows` flows of `shape` as a pcap to `out`. `distinct` (QUIC only) is how many
/// different Initials each flow seals; the others repeat them (a retransmission, as far as the
/// analyzer can tell), because sealing is slow in debug builds. Returns the bytes written.
pub fn write<W: Write>(shape: Shape, flows: u32, distinct: u32, out: W) -> io::Result<u64> {
    let mut p = Pcap::new(out)?;
    match shape {
        Shape::OutOfOrder => out_of_order(&mut p, flows)?,
        Shape::H2cHeaders => h2c(&mut p, flows)?,
        Shape::QuicCrypto => quic(&mut p, flows, distinct.clamp(1, QUIC_FRAGMENTS))?,
        Shape::SynRst => {
            for f in 0..flows {
                let (c, s) = (client(f), (SERVER, 8080));
                let isn = 0x2000_0000u32.wrapping_mul(f | 1);
                p.tcp(c, s, isn, 0, SYN, &[])?;
                p.tcp(s, c, 0, isn.wrapping_add(1), RST | ACK, &[])?;
            }
        }
    }
    p.out.flush()?;
    Ok(p.written)
}

fn client(f: u32) -> ([u8; 4], u16) {
    (
        [10, 1 + (f >> 16) as u8, (f >> 8) as u8, f as u8],
        40_000 + (f % 20_000) as u16,
    )
}

const SERVER: [u8; 4] = [172, 16, 0, 1];

/// One TCP connection's sequence state.
#[derive(Clone, Copy)]
struct Conn {
    c: ([u8; 4], u16),
    s: ([u8; 4], u16),
    cseq: u32,
    sseq: u32,
}

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const RST: u8 = 0x04;

fn handshake<W: Write>(p: &mut Pcap<W>, f: u32, port: u16) -> io::Result<Conn> {
    let c = client(f);
    let s = (SERVER, port);
    let cisn = 0x1000_0000u32.wrapping_mul(f + 1);
    let sisn = 0x7000_0000u32.wrapping_add(f.wrapping_mul(7919));
    p.tcp(c, s, cisn, 0, SYN, &[])?;
    p.tcp(s, c, sisn, cisn.wrapping_add(1), SYN | ACK, &[])?;
    p.tcp(c, s, cisn.wrapping_add(1), sisn.wrapping_add(1), ACK, &[])?;
    Ok(Conn {
        c,
        s,
        cseq: cisn.wrapping_add(1),
        sseq: sisn.wrapping_add(1),
    })
}

fn out_of_order<W: Write>(p: &mut Pcap<W>, flows: u32) -> io::Result<()> {
    let conns: Vec<Conn> = (0..flows)
        .map(|f| handshake(p, f, 443))
        .collect::<io::Result<_>>()?;
    let body = vec![0x17u8; SEG];
    for k in 0..OOO_SEGMENTS {
        for c in &conns {
            // A 1,000-byte hole at the start of the stream, never filled, never acknowledged.
            let seq = c.cseq.wrapping_add(1000 + k * SEG as u32);
            p.tcp(c.c, c.s, seq, c.sseq, ACK | PSH, &body)?;
        }
    }
    Ok(())
}

fn h2c<W: Write>(p: &mut Pcap<W>, flows: u32) -> io::Result<()> {
    const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let mut conns: Vec<Conn> = (0..flows)
        .map(|f| handshake(p, f, 80))
        .collect::<io::Result<_>>()?;
    let frame = |kind: u8, len: usize| {
        let l = (len as u32).to_be_bytes();
        let stream: u32 = if kind == 4 { 0 } else { 1 };
        let mut h = vec![l[1], l[2], l[3], kind, 0];
        h.extend_from_slice(&stream.to_be_bytes());
        h
    };
    // Client: preface, empty SETTINGS, HEADERS (no END_HEADERS); server: SETTINGS, HEADERS.
    let mut client_head = PREFACE.to_vec();
    client_head.extend(frame(4, 0));
    client_head.extend(frame(1, H2_BLOCK));
    let mut server_head = frame(4, 0);
    server_head.extend(frame(1, H2_BLOCK));
    let filler = vec![b'x'; SEG];
    let (mut sent_c, mut sent_s) = (0usize, 0usize);
    while sent_c < H2_BLOCK || sent_s < H2_BLOCK {
        for (dir, sent, head) in [
            (0, &mut sent_c, &client_head),
            (1, &mut sent_s, &server_head),
        ] {
            if *sent >= H2_BLOCK {
                continue;
            }
            let mut seg = Vec::new();
            if *sent == 0 {
                seg.extend_from_slice(head);
            }
            let take = (SEG - seg.len()).min(H2_BLOCK - *sent);
            seg.extend_from_slice(&filler[..take]);
            *sent += take;
            for c in conns.iter_mut() {
                if dir == 0 {
                    p.tcp(c.c, c.s, c.cseq, c.sseq, ACK | PSH, &seg)?;
                    c.cseq = c.cseq.wrapping_add(seg.len() as u32);
                } else {
                    p.tcp(c.s, c.c, c.sseq, c.cseq, ACK | PSH, &seg)?;
                    c.sseq = c.sseq.wrapping_add(seg.len() as u32);
                }
            }
        }
    }
    Ok(())
}

fn quic<W: Write>(p: &mut Pcap<W>, flows: u32, distinct: u32) -> io::Result<()> {
    let mut frames = Vec::with_capacity(QUIC_FRAGMENT + 16);
    let mut sealed: Vec<Vec<u8>> = Vec::new();
    for f in 0..flows {
        // Each flow's Initials are sealed once (with its own DCID), then sent interleaved.
        let dcid = [
            0x5a,
            0xa5,
            (f >> 24) as u8,
            (f >> 16) as u8,
            (f >> 8) as u8,
            f as u8,
            1,
            2,
        ];
        sealed.clear();
        for k in 0..distinct {
            frames.clear();
            frames.push(0x06); // CRYPTO
            let off = 1 + k; // ahead of a hole at offset 0, as a 2-byte varint
            frames.push(0x40 | (off >> 8) as u8);
            frames.push(off as u8);
            frames.extend_from_slice(&(0x8000_0000u32 | QUIC_FRAGMENT as u32).to_be_bytes());
            frames.resize(frames.len() + QUIC_FRAGMENT, 0x16);
            let mut pkt = Vec::new();
            meshsniff::tls::quic::seal_client_initial(&dcid, &[7; 8], k, &frames, &mut pkt);
            sealed.push(pkt);
        }
        let c = client(f);
        for k in 0..QUIC_FRAGMENTS {
            p.udp(c, (SERVER, 443), &sealed[(k % distinct) as usize])?;
        }
    }
    Ok(())
}

/// A classic pcap (microseconds, Ethernet) written packet by packet.
struct Pcap<W: Write> {
    out: io::BufWriter<W>,
    ts_us: u64,
    buf: Vec<u8>,
    written: u64,
}

/// The ones'-complement sum of `b` as 16-bit big-endian words (RFC 1071), not yet folded.
fn sum16(b: &[u8], mut acc: u64) -> u64 {
    let mut words = b.chunks_exact(8);
    for w in &mut words {
        let v = u64::from_be_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        acc += (v >> 48) + ((v >> 32) & 0xffff) + ((v >> 16) & 0xffff) + (v & 0xffff);
    }
    let rest = words.remainder();
    for pair in rest.chunks(2) {
        acc += u64::from(pair[0]) << 8 | u64::from(*pair.get(1).unwrap_or(&0));
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

impl<W: Write> Pcap<W> {
    fn new(out: W) -> io::Result<Self> {
        let mut out = io::BufWriter::with_capacity(1 << 20, out);
        let mut h = Vec::new();
        h.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&[0; 8]);
        h.extend_from_slice(&262_144u32.to_le_bytes());
        h.extend_from_slice(&1u32.to_le_bytes()); // EN10MB
        out.write_all(&h)?;
        Ok(Pcap {
            out,
            ts_us: 1_800_000_000_000_000,
            buf: Vec::with_capacity(70_000),
            written: h.len() as u64,
        })
    }

    /// Ethernet + IPv4 header for `l4_len` bytes of protocol `proto`, into `self.buf`.
    fn ip(&mut self, src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: usize) {
        self.buf.clear();
        self.buf
            .extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]);
        let total = (20 + l4_len) as u16;
        let mut ip = [0u8; 20];
        ip[0] = 0x45;
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip[6] = 0x40; // don't fragment
        ip[8] = 64;
        ip[9] = proto;
        ip[12..16].copy_from_slice(&src);
        ip[16..20].copy_from_slice(&dst);
        let ck = fold(sum16(&ip, 0));
        ip[10..12].copy_from_slice(&ck.to_be_bytes());
        self.buf.extend_from_slice(&ip);
    }

    fn pseudo(src: [u8; 4], dst: [u8; 4], proto: u8, len: usize) -> u64 {
        sum16(&src, 0) + sum16(&dst, 0) + u64::from(proto) + len as u64
    }

    fn tcp(
        &mut self,
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        seq: u32,
        ack: u32,
        flags: u8,
        payload: &[u8],
    ) -> io::Result<()> {
        let len = 20 + payload.len();
        self.ip(src.0, dst.0, 6, len);
        let mut t = [0u8; 20];
        t[0..2].copy_from_slice(&src.1.to_be_bytes());
        t[2..4].copy_from_slice(&dst.1.to_be_bytes());
        t[4..8].copy_from_slice(&seq.to_be_bytes());
        t[8..12].copy_from_slice(&ack.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags;
        t[14..16].copy_from_slice(&65_535u16.to_be_bytes());
        let acc = sum16(payload, sum16(&t, Self::pseudo(src.0, dst.0, 6, len)));
        t[16..18].copy_from_slice(&fold(acc).to_be_bytes());
        self.buf.extend_from_slice(&t);
        self.record(payload)
    }

    fn udp(&mut self, src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8]) -> io::Result<()> {
        let len = 8 + payload.len();
        self.ip(src.0, dst.0, 17, len);
        let mut u = [0u8; 8];
        u[0..2].copy_from_slice(&src.1.to_be_bytes());
        u[2..4].copy_from_slice(&dst.1.to_be_bytes());
        u[4..6].copy_from_slice(&(len as u16).to_be_bytes());
        let acc = sum16(payload, sum16(&u, Self::pseudo(src.0, dst.0, 17, len)));
        let ck = match fold(acc) {
            0 => 0xffff,
            c => c,
        };
        u[6..8].copy_from_slice(&ck.to_be_bytes());
        self.buf.extend_from_slice(&u);
        self.record(payload)
    }

    /// Writes the record: headers in `self.buf`, then `payload`; 10 µs apart.
    fn record(&mut self, payload: &[u8]) -> io::Result<()> {
        self.ts_us += 10;
        let len = (self.buf.len() + payload.len()) as u32;
        let mut h = [0u8; 16];
        h[0..4].copy_from_slice(&((self.ts_us / 1_000_000) as u32).to_le_bytes());
        h[4..8].copy_from_slice(&((self.ts_us % 1_000_000) as u32).to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        h[12..16].copy_from_slice(&len.to_le_bytes());
        self.out.write_all(&h)?;
        self.out.write_all(&self.buf)?;
        self.out.write_all(payload)?;
        self.written += 16 + u64::from(len);
        Ok(())
    }
}
