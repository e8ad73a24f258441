//! Capture file reader: classic pcap (both byte orders, micro/nanosecond) and pcapng (both byte
//! orders, several sections and interfaces with their own link types and timestamp resolutions).
//! Streams from any `Read` (file or pipe) through one reusable buffer: no allocation per packet,
//! memory bounded by the largest record. Every error names the byte offset, the packet number
//! and, in pcapng, the block number.
//!
//! Why our own reader and not `pcap-parser` (DESIGN.md's first choice): see docs/decisions.md.

mod ng;

use std::io::{self, Read};

/// Records larger than this are treated as corrupt, not as a reason to allocate.
/// 16 MiB is far above any real link MTU or GRO super-packet (BIG TCP tops out near 512 KiB).
pub const MAX_RECORD: usize = 16 << 20;
/// Classic pcap caplen ceiling when the header's snaplen is missing or silly (libpcap's value).
const DEFAULT_MAX_SNAPLEN: u32 = 262_144;
const READ_CHUNK: usize = 1 << 20;

/// Link-layer header type numbers (LINKTYPE_*) as registered by tcpdump.org.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkType(pub u32);

impl LinkType {
    pub const NULL: Self = Self(0);
    pub const ETHERNET: Self = Self(1);
    pub const RAW_OLD_12: Self = Self(12);
    pub const RAW_OLD_14: Self = Self(14);
    pub const RAW: Self = Self(101);
    pub const LOOP: Self = Self(108);
    pub const LINUX_SLL: Self = Self(113);
    pub const IPV4: Self = Self(228);
    pub const IPV6: Self = Self(229);
    pub const NFLOG: Self = Self(239);
    pub const LINUX_SLL2: Self = Self(276);
}

/// One interface as the capture file describes it (classic pcap has exactly one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub link_type: LinkType,
    /// `if_name` from the pcapng IDB, if any.
    pub name: Option<String>,
    pub snaplen: u32,
}

/// One captured packet, borrowed from the reader's buffer until the next call.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture timestamp, nanoseconds since the Unix epoch.
    pub ts_ns: u64,
    /// Index into [`PcapReader::interfaces`].
    pub interface: u32,
    pub link_type: LinkType,
    /// Length on the wire; `data.len()` is the captured length (smaller when cut by snaplen).
    pub orig_len: u32,
    pub data: &'a [u8],
    /// 1-based packet number, as Wireshark counts.
    pub number: u64,
}

/// What went wrong reading a capture. Owns its data; offsets are from the start of the input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error("not a capture file: magic {magic:02x?} {hint}")]
    UnknownFormat { magic: [u8; 4], hint: &'static str },
    #[error("input is empty or shorter than a capture file header ({got} bytes)")]
    TooShort { got: usize },
    #[error(
        "truncated at byte offset {offset}{}, packet {packet}: the record needs {needed} bytes, \
         the input ends after {available}",
        block_part(*.block)
    )]
    Truncated {
        offset: u64,
        /// 1-based pcapng block number (None for classic pcap, which has no blocks).
        block: Option<u64>,
        packet: u64,
        needed: usize,
        available: usize,
    },
    /// Damage: in classic pcap it stops the reader; in pcapng it stops the reader when the
    /// framing is broken, else the block is skipped and listed by [`PcapReader::take_damage`].
    #[error(
        "corrupt {} at byte offset {offset}, packet {packet}: {reason}",
        block_name(*.block)
    )]
    Corrupt {
        offset: u64,
        /// 1-based pcapng block number (None for classic pcap).
        block: Option<u64>,
        packet: u64,
        reason: String,
    },
    #[error("read error at byte offset {offset}: {source}")]
    Io {
        offset: u64,
        #[source]
        source: io::Error,
    },
}

fn block_part(block: Option<u64>) -> String {
    block.map(|b| format!(", block {b}")).unwrap_or_default()
}

fn block_name(block: Option<u64>) -> String {
    match block {
        Some(b) => format!("pcapng block {b}"),
        None => "record".into(),
    }
}

impl ReadError {
    /// Byte offset the error refers to, if any.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Self::Truncated { offset, .. }
            | Self::Corrupt { offset, .. }
            | Self::Io { offset, .. } => Some(*offset),
            Self::UnknownFormat { .. } => Some(0),
            Self::TooShort { .. } => Some(0),
        }
    }
    /// Packet number the error refers to, if any.
    pub fn packet(&self) -> Option<u64> {
        match self {
            Self::Truncated { packet, .. } | Self::Corrupt { packet, .. } => Some(*packet),
            _ => None,
        }
    }
    /// True when nothing at all could be read as a capture (as opposed to damage part-way).
    pub fn is_format_error(&self) -> bool {
        matches!(self, Self::UnknownFormat { .. } | Self::TooShort { .. })
    }
}

/// The container format, detected from the magic number (never from the file name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Pcap { big_endian: bool, nanos: bool },
    PcapNg,
}

/// Byte-order aware integer reads on a slice that the caller has already length-checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Endian(pub bool); // true = big endian

impl Endian {
    #[inline]
    pub(crate) fn u16(self, b: &[u8], at: usize) -> u16 {
        let v = [b[at], b[at + 1]];
        if self.0 {
            u16::from_be_bytes(v)
        } else {
            u16::from_le_bytes(v)
        }
    }
    #[inline]
    pub(crate) fn u32(self, b: &[u8], at: usize) -> u32 {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        if self.0 {
            u32::from_be_bytes(v)
        } else {
            u32::from_le_bytes(v)
        }
    }
}

/// Streaming reader over a capture file or pipe.
#[derive(Debug)]
pub struct PcapReader<R> {
    src: R,
    buf: Vec<u8>,
    /// `buf[start..end]` holds unread input; `buf[start]` is at `offset` in the input.
    start: usize,
    end: usize,
    offset: u64,
    eof: bool,
    format: Format,
    interfaces: Vec<Interface>,
    next_packet: u64,
    /// Classic pcap state.
    classic: ClassicState,
    /// pcapng state.
    ng: ng::NgState,
    /// Set after a fatal error: the reader returns `None` from then on.
    failed: bool,
    cur: RawFrame,
}

#[derive(Debug, Default, Clone, Copy)]
struct ClassicState {
    endian: bool,
    nanos: bool,
    max_caplen: u32,
    link_type: u32,
}

impl<R: Read> PcapReader<R> {
    /// Reads the file header and detects the format by its magic number.
    pub fn new(src: R) -> Result<Self, ReadError> {
        let mut r = PcapReader {
            src,
            buf: vec![0; READ_CHUNK],
            start: 0,
            end: 0,
            offset: 0,
            eof: false,
            format: Format::PcapNg,
            interfaces: Vec::new(),
            next_packet: 1,
            classic: ClassicState::default(),
            ng: ng::NgState::default(),
            failed: false,
            cur: (0, 0, LinkType(0), 0, 0, 0),
        };
        r.fill(4)?;
        if r.avail() < 4 {
            return Err(ReadError::TooShort { got: r.avail() });
        }
        let magic: [u8; 4] = [r.buf[0], r.buf[1], r.buf[2], r.buf[3]];
        let classic = match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => Some((false, false)),
            [0xa1, 0xb2, 0xc3, 0xd4] => Some((true, false)),
            [0x4d, 0x3c, 0xb2, 0xa1] => Some((false, true)),
            [0xa1, 0xb2, 0x3c, 0x4d] => Some((true, true)),
            [0x0a, 0x0d, 0x0d, 0x0a] => None,
            _ => {
                return Err(ReadError::UnknownFormat {
                    magic,
                    hint: format_hint(magic),
                });
            }
        };
        match classic {
            Some((big_endian, nanos)) => {
                r.fill(24)?;
                if r.avail() < 24 {
                    return Err(ReadError::TooShort { got: r.avail() });
                }
                let e = Endian(big_endian);
                let snaplen = e.u32(&r.buf, 16);
                // The upper bits carry FCS information (pcap spec, "LinkType and additional
                // information"); the link type is the low 28 bits.
                let link_type = e.u32(&r.buf, 20) & 0x0fff_ffff;
                let max_caplen = if snaplen == 0 || snaplen as usize > MAX_RECORD {
                    DEFAULT_MAX_SNAPLEN
                } else {
                    snaplen.max(DEFAULT_MAX_SNAPLEN)
                };
                r.classic = ClassicState {
                    endian: big_endian,
                    nanos,
                    max_caplen,
                    link_type,
                };
                r.format = Format::Pcap { big_endian, nanos };
                r.interfaces.push(Interface {
                    link_type: LinkType(link_type),
                    name: None,
                    snaplen,
                });
                r.consume(24);
            }
            None => r.format = Format::PcapNg,
        }
        Ok(r)
    }

    pub fn format(&self) -> Format {
        self.format
    }

    /// Interfaces seen so far (pcapng IDBs accumulate as blocks are read).
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// Bytes of input consumed so far.
    pub fn position(&self) -> u64 {
        self.offset
    }

    /// Number of packets returned so far.
    pub fn packets_read(&self) -> u64 {
        self.next_packet - 1
    }

    /// Next packet, `Ok(None)` at a clean end of input. After an error, always `Ok(None)`.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, ReadError> {
        Ok(if self.advance()? {
            Some(self.current())
        } else {
            None
        })
    }

    /// Moves to the next packet; `Ok(false)` at a clean end of input (and after an error).
    /// The packet is then read with [`current`](Self::current), which borrows the reader
    /// immutably, so [`interfaces`](Self::interfaces) stays usable alongside it.
    pub fn advance(&mut self) -> Result<bool, ReadError> {
        if self.failed {
            return Ok(false);
        }
        let res = match self.format {
            Format::Pcap { .. } => self.next_classic(),
            Format::PcapNg => self.next_ng(),
        };
        match res {
            Ok(Some(raw)) => {
                self.cur = raw;
                self.next_packet += 1;
                Ok(true)
            }
            Ok(None) => Ok(false),
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// The packet the last successful [`advance`](Self::advance) moved to.
    pub fn current(&self) -> Frame<'_> {
        let (ts_ns, interface, link_type, orig_len, at, len) = self.cur;
        Frame {
            ts_ns,
            interface,
            link_type,
            orig_len,
            data: self.buf.get(at..at + len).unwrap_or(&[]),
            number: self.next_packet - 1,
        }
    }

    /// Returns (ts, interface, link type, orig_len, data start in buf, data len).
    fn next_classic(&mut self) -> Result<Option<RawFrame>, ReadError> {
        let st = self.classic;
        self.fill(16)?;
        if self.avail() == 0 {
            return Ok(None);
        }
        if self.avail() < 16 {
            return Err(self.truncated(16));
        }
        let e = Endian(st.endian);
        let h = &self.buf[self.start..self.start + 16];
        let sec = u64::from(e.u32(h, 0));
        let frac = u64::from(e.u32(h, 4));
        let caplen = e.u32(h, 8);
        let orig_len = e.u32(h, 12);
        if caplen > st.max_caplen {
            return Err(self.corrupt(format!(
                "captured length {caplen} exceeds the limit {} (damaged file, or data that is not \
                 a pcap record)",
                st.max_caplen
            )));
        }
        if (!st.nanos && frac >= 1_000_000) || (st.nanos && frac >= 1_000_000_000) {
            return Err(self.corrupt(format!(
                "timestamp fraction {frac} is out of range (damaged file, or data that is not a \
                 pcap record)"
            )));
        }
        let total = 16 + caplen as usize;
        self.fill(total)?;
        if self.avail() < total {
            return Err(self.truncated(total));
        }
        let ts_ns = sec * 1_000_000_000 + if st.nanos { frac } else { frac * 1000 };
        let at = self.start + 16;
        self.consume(total);
        Ok(Some((
            ts_ns,
            0,
            LinkType(st.link_type),
            orig_len.max(caplen),
            at,
            caplen as usize,
        )))
    }

    // ---- buffer management -------------------------------------------------------------

    #[inline]
    fn avail(&self) -> usize {
        self.end - self.start
    }

    #[inline]
    fn consume(&mut self, n: usize) {
        self.start += n;
        self.offset += n as u64;
    }

    /// Makes at least `need` bytes available unless the input ends first. Moves unread bytes
    /// to the front only when the tail is too short, so a data slice handed out by the previous
    /// call is never moved while it is alive (the borrow checker enforces this too).
    fn fill(&mut self, need: usize) -> Result<(), ReadError> {
        if self.avail() >= need || self.eof {
            return Ok(());
        }
        if self.start + need > self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
            if need > self.buf.len() {
                self.buf.resize(need.next_power_of_two().max(READ_CHUNK), 0);
            }
        }
        while self.avail() < need {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => {
                    return Err(ReadError::Io {
                        offset: self.offset,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// The pcapng block being read, 1-based (None for classic pcap).
    fn block_no(&self) -> Option<u64> {
        (self.format == Format::PcapNg).then_some(self.ng.blocks)
    }

    fn truncated(&self, needed: usize) -> ReadError {
        ReadError::Truncated {
            offset: self.offset,
            block: self.block_no(),
            packet: self.next_packet,
            needed,
            available: self.avail(),
        }
    }

    fn corrupt(&self, reason: String) -> ReadError {
        ReadError::Corrupt {
            offset: self.offset,
            block: self.block_no(),
            packet: self.next_packet,
            reason,
        }
    }
}

type RawFrame = (u64, u32, LinkType, u32, usize, usize);

fn format_hint(magic: [u8; 4]) -> &'static str {
    match magic {
        [0x34, 0xcd, 0xb2, 0xa1] | [0xa1, 0xb2, 0xcd, 0x34] => {
            "(\"modified\" Kuznetzov pcap, not supported: convert it with `editcap -F pcap IN OUT`)"
        }
        [0x1f, 0x8b, ..] => {
            "(gzip-compressed: decompress it first, e.g. `zcat FILE | meshsniff analyze -`)"
        }
        [0x28, 0xb5, 0x2f, 0xfd] => "(zstd-compressed: decompress it first)",
        [b'\n' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z', ..] => {
            "(looks like text, e.g. tcpdump's printed output: write captures with `tcpdump -w FILE`)"
        }
        _ => "(expected pcap a1b2c3d4 / a1b23c4d or pcapng 0a0d0d0a)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classic(records: &[(&[u8], u32)]) -> Vec<u8> {
        let mut v = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        v.extend_from_slice(&65535u32.to_le_bytes());
        v.extend_from_slice(&1u32.to_le_bytes());
        for (i, (data, orig)) in records.iter().enumerate() {
            v.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
            v.extend_from_slice(&123_456u32.to_le_bytes());
            v.extend_from_slice(&(data.len() as u32).to_le_bytes());
            v.extend_from_slice(&orig.to_le_bytes());
            v.extend_from_slice(data);
        }
        v
    }

    #[test]
    fn classic_records_and_timestamps() {
        let bytes = classic(&[(b"abc", 3), (b"defg", 100)]);
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!(
            (f.data, f.number, f.ts_ns),
            (&b"abc"[..], 1, 1_700_000_000_123_456_000)
        );
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!((f.data, f.orig_len, f.number), (&b"defg"[..], 100, 2));
        assert!(r.next_frame().unwrap().is_none());
    }

    #[test]
    fn truncated_record_names_offset_and_packet() {
        let mut bytes = classic(&[(b"abc", 3), (b"defg", 4)]);
        bytes.truncate(bytes.len() - 2);
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        assert!(r.next_frame().unwrap().is_some());
        match r.next_frame() {
            Err(ReadError::Truncated {
                offset,
                block: None,
                packet,
                needed,
                available,
            }) => {
                assert_eq!((offset, packet, needed, available), (24 + 19, 2, 20, 18));
            }
            other => panic!("expected truncation, got {other:?}"),
        }
        assert!(
            r.next_frame().unwrap().is_none(),
            "reader stays stopped after an error"
        );
    }

    #[test]
    fn absurd_caplen_is_corrupt_not_an_allocation() {
        let mut bytes = classic(&[(b"abc", 3)]);
        bytes.extend_from_slice(&[0xff; 16]);
        let mut r = PcapReader::new(&bytes[..]).unwrap();
        assert!(r.next_frame().unwrap().is_some());
        let err = r.next_frame().unwrap_err();
        assert!(matches!(err, ReadError::Corrupt { packet: 2, .. }), "{err}");
    }

    #[test]
    fn modified_pcap_and_text_are_named() {
        let e = PcapReader::new(&[0x34, 0xcd, 0xb2, 0xa1, 0, 0][..]).unwrap_err();
        assert!(e.to_string().contains("modified"), "{e}");
        let e = PcapReader::new(&b"12:00:01.000 IP 10.0.0.1 > 10.0.0.2"[..]).unwrap_err();
        assert!(e.to_string().contains("text"), "{e}");
        let e = PcapReader::new(&b""[..]).unwrap_err();
        assert!(matches!(e, ReadError::TooShort { got: 0 }));
    }

    #[test]
    fn big_endian_nanosecond_header() {
        let mut v = vec![0xa1, 0xb2, 0x3c, 0x4d, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0];
        v.extend_from_slice(&65535u32.to_be_bytes());
        v.extend_from_slice(&101u32.to_be_bytes());
        v.extend_from_slice(&5u32.to_be_bytes());
        v.extend_from_slice(&7u32.to_be_bytes());
        v.extend_from_slice(&1u32.to_be_bytes());
        v.extend_from_slice(&1u32.to_be_bytes());
        v.push(0x45);
        let mut r = PcapReader::new(&v[..]).unwrap();
        assert_eq!(
            r.format(),
            Format::Pcap {
                big_endian: true,
                nanos: true
            }
        );
        let f = r.next_frame().unwrap().unwrap();
        assert_eq!(
            (f.ts_ns, f.link_type, f.data),
            (5_000_000_007, LinkType::RAW, &[0x45][..])
        );
    }
}
