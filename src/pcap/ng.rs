//! pcapng block walker: SHB (byte order per section), IDB (link type, `if_name`, `if_tsresol`,
//! `if_tsoffset`), EPB, SPB and the obsolete PB. Other blocks (NRB, ISB, DSB, custom) are
//! skipped by their length. Two kinds of damage, both reported with byte offset, block and
//! packet number: broken framing (lengths) stops the reader, since the next block cannot be
//! found; a bad body inside intact framing (an EPB naming an interface that does not exist, a
//! captured length past its block, an option running past its block) is listed as damage and
//! the block skipped, so every packet that can be read still is.

use super::{Endian, Interface, LinkType, MAX_RECORD, PcapReader, RawFrame, ReadError};
use std::io::Read;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const PB_OBSOLETE: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
/// Damaged blocks listed one by one; beyond, they are only counted (`skipped_blocks`), so a
/// file of nothing but damage cannot grow memory.
pub const MAX_DAMAGE_LISTED: usize = 64;

/// Per-section interface description needed to turn block timestamps into nanoseconds.
#[derive(Debug, Clone, Copy)]
struct NgInterface {
    /// Index in the reader's global interface list.
    global: u32,
    link_type: LinkType,
    snaplen: u32,
    /// Timestamp units: `pow10` true means 10^-exp seconds, else 2^-exp seconds.
    pow10: bool,
    exp: u8,
    offset_s: i64,
    /// Block number of an IDB too short to hold a link type: its packets cannot be decoded.
    unusable: Option<u64>,
}

#[derive(Debug, Default)]
pub(super) struct NgState {
    endian: bool,
    in_section: bool,
    section: Vec<NgInterface>,
    last_ts: u64,
    /// Number of the block being read (1-based; the SHB is block 1).
    pub(super) blocks: u64,
    /// Blocks with intact framing whose content made no sense (counted, reported, skipped).
    pub(super) skipped_blocks: u64,
    /// The first [`MAX_DAMAGE_LISTED`] of them, as errors.
    damage: Vec<ReadError>,
}

/// What a block body held: nothing to return, a packet, or damage (the reason).
type BlockResult = Result<Option<RawFrame>, String>;

impl<R: Read> PcapReader<R> {
    /// Number of pcapng blocks with intact framing but damaged content (each is also in
    /// [`take_damage`](Self::take_damage), up to [`MAX_DAMAGE_LISTED`]).
    pub fn skipped_blocks(&self) -> u64 {
        self.ng.skipped_blocks
    }

    /// Damage the reader stepped over (blocks skipped or read only in part), in file order.
    /// Each is an error as a fatal one would be: the input is partial (exit 3).
    pub fn take_damage(&mut self) -> Vec<ReadError> {
        std::mem::take(&mut self.ng.damage)
    }

    fn record_damage(&mut self, reason: String) {
        self.ng.skipped_blocks += 1;
        if self.ng.damage.len() < MAX_DAMAGE_LISTED {
            let e = self.corrupt(reason);
            self.ng.damage.push(e);
        }
    }

    pub(super) fn next_ng(&mut self) -> Result<Option<RawFrame>, ReadError> {
        loop {
            self.fill(12)?;
            if self.avail() == 0 {
                return Ok(None);
            }
            self.ng.blocks += 1;
            if self.avail() < 12 {
                return Err(self.truncated(12));
            }
            let head = &self.buf[self.start..self.start + 12];
            let raw_type = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            if raw_type == SHB {
                let bom = u32::from_le_bytes([head[8], head[9], head[10], head[11]]);
                self.ng.endian = match bom {
                    BYTE_ORDER_MAGIC => false,
                    x if x.swap_bytes() == BYTE_ORDER_MAGIC => true,
                    _ => {
                        return Err(self.corrupt(format!(
                            "section header byte-order magic {bom:#010x} is neither 1a2b3c4d nor \
                             4d3c2b1a"
                        )));
                    }
                };
            } else if !self.ng.in_section {
                return Err(self.corrupt("pcapng block before any section header".into()));
            }
            let e = Endian(self.ng.endian);
            let head = &self.buf[self.start..self.start + 12];
            let btype = e.u32(head, 0);
            let blen = e.u32(head, 4) as usize;
            let min = if btype == SHB { 28 } else { 12 };
            if blen < min || blen % 4 != 0 || blen > MAX_RECORD {
                return Err(self.corrupt(format!(
                    "pcapng block type {btype:#x} has an invalid length {blen} (must be a multiple \
                     of 4, at least {min}, at most {MAX_RECORD})"
                )));
            }
            self.fill(blen)?;
            if self.avail() < blen {
                return Err(self.truncated(blen));
            }
            let block = &self.buf[self.start..self.start + blen];
            let trailer = e.u32(block, blen - 4) as usize;
            if trailer != blen {
                return Err(self.corrupt(format!(
                    "pcapng block type {btype:#x}: leading length {blen} and trailing length \
                     {trailer} differ"
                )));
            }
            let body_at = self.start + 8;
            let body_len = blen - 12;
            let out = match btype {
                SHB => {
                    self.start_section(e, body_at, body_len)?;
                    Ok(None)
                }
                IDB => self.add_interface(body_at, body_len).map(|()| None),
                EPB => self.enhanced_packet(e, body_at, body_len, false),
                SPB => self.simple_packet(e, body_at, body_len),
                PB_OBSOLETE => self.enhanced_packet(e, body_at, body_len, true),
                _ => Ok(None),
            };
            let out = match out {
                Ok(f) => f,
                Err(reason) => {
                    self.record_damage(reason);
                    None
                }
            };
            self.consume(blen);
            if let Some(f) = out {
                return Ok(Some(f));
            }
        }
    }

    /// A new section: its byte order is known (checked above); a version other than 1.x is a
    /// different format and stops the reader; damaged options are reported, the section read.
    fn start_section(&mut self, e: Endian, at: usize, len: usize) -> Result<(), ReadError> {
        let body = &self.buf[at..at + len];
        let (major, minor) = (e.u16(body, 4), e.u16(body, 6));
        if major != 1 {
            return Err(self.corrupt(format!(
                "section header says pcapng version {major}.{minor}; only 1.x can be read"
            )));
        }
        let opts = walk_options(e, &body[16..], |_, _| Ok(())).map_err(|(pos, why)| {
            format!(
                "section header: {why} (option at byte offset {})",
                self.offset + 24 + pos
            )
        });
        self.ng.in_section = true;
        self.ng.section.clear();
        if let Err(reason) = opts {
            self.record_damage(reason);
        }
        Ok(())
    }

    /// Adds an interface even when its block is damaged, so the interface numbers of the
    /// packets after it still point at the right interface; the damage is reported.
    fn add_interface(&mut self, at: usize, len: usize) -> Result<(), String> {
        let e = Endian(self.ng.endian);
        let body = &self.buf[at..at + len];
        let mut iface = NgInterface {
            global: self.interfaces.len() as u32,
            link_type: LinkType(u32::MAX),
            snaplen: 0,
            pow10: true,
            exp: 6,
            offset_s: 0,
            unusable: None,
        };
        let mut name = None;
        let result = if body.len() < 8 {
            iface.unusable = Some(self.ng.blocks);
            Err(format!(
                "interface description block body is {} bytes, too short for a link type and \
                 snaplen (8); packets naming interface {} are skipped",
                body.len(),
                self.ng.section.len()
            ))
        } else {
            iface.link_type = LinkType(u32::from(e.u16(body, 0)));
            iface.snaplen = e.u32(body, 4);
            let block_offset = self.offset;
            walk_options(e, &body[8..], |code, val| {
                match (code, val.len()) {
                    (2, _) => {
                        let s = val.split(|&b| b == 0).next().unwrap_or(val);
                        name = Some(String::from_utf8_lossy(s).into_owned());
                    }
                    (9, 1) => {
                        iface.pow10 = val[0] & 0x80 == 0;
                        iface.exp = val[0] & 0x7f;
                    }
                    (14, 8) => {
                        let v = [
                            val[0], val[1], val[2], val[3], val[4], val[5], val[6], val[7],
                        ];
                        iface.offset_s = if e.0 {
                            i64::from_be_bytes(v)
                        } else {
                            i64::from_le_bytes(v)
                        };
                    }
                    // Timestamps would be read in the wrong unit: damage, not a guess.
                    (9 | 14, n) => {
                        return Err(format!(
                            "option {} is {n} bytes, must be {}",
                            if code == 9 {
                                "if_tsresol"
                            } else {
                                "if_tsoffset"
                            },
                            if code == 9 { 1 } else { 8 }
                        ));
                    }
                    _ => {}
                }
                Ok(())
            })
            .map_err(|(pos, why)| {
                format!(
                    "interface description block (interface {}): {why} (option at byte offset \
                     {}); the interface is kept with the fields before it",
                    self.ng.section.len(),
                    block_offset + 16 + pos
                )
            })
        };
        self.interfaces.push(Interface {
            link_type: iface.link_type,
            name,
            snaplen: iface.snaplen,
        });
        self.ng.section.push(iface);
        result
    }

    /// The interface a packet block names, or why it cannot be used.
    fn interface(&self, if_id: usize) -> Result<NgInterface, String> {
        match self.ng.section.get(if_id) {
            Some(NgInterface {
                unusable: Some(b), ..
            }) => Err(format!(
                "packet names interface {if_id}, whose description (block {b}) is damaged"
            )),
            Some(i) => Ok(*i),
            None => Err(format!(
                "packet names interface {if_id}, but the section describes {} interface(s) \
                 before it",
                self.ng.section.len()
            )),
        }
    }

    /// An Enhanced Packet Block, or the obsolete Packet Block (`obsolete`: 16-bit interface
    /// id followed by a drops count; the same layout otherwise).
    fn enhanced_packet(&mut self, e: Endian, at: usize, len: usize, obsolete: bool) -> BlockResult {
        let what = if obsolete {
            "packet block"
        } else {
            "enhanced packet block"
        };
        let body = &self.buf[at..at + len];
        if body.len() < 20 {
            return Err(format!(
                "{what} body is {} bytes, shorter than its 20-byte header",
                body.len()
            ));
        }
        let if_id = if obsolete {
            usize::from(e.u16(body, 0))
        } else {
            e.u32(body, 0) as usize
        };
        let ts = (u64::from(e.u32(body, 4)) << 32) | u64::from(e.u32(body, 8));
        let caplen = e.u32(body, 12) as usize;
        let orig = e.u32(body, 16);
        let iface = self.interface(if_id).map_err(|w| format!("{what}: {w}"))?;
        if caplen > body.len() - 20 {
            return Err(format!(
                "{what}: captured length {caplen} is larger than the {} bytes the block holds",
                body.len() - 20
            ));
        }
        let opts_at = 20 + ((caplen + 3) & !3);
        let block_offset = self.offset;
        walk_options(e, &body[opts_at..], |_, _| Ok(())).map_err(|(pos, why)| {
            format!(
                "{what}: {why} (option at byte offset {})",
                block_offset + 8 + opts_at as u64 + pos
            )
        })?;
        let ts_ns = iface.to_ns(ts);
        self.ng.last_ts = ts_ns;
        Ok(Some((
            ts_ns,
            iface.global,
            iface.link_type,
            orig.max(caplen as u32),
            at + 20,
            caplen,
        )))
    }

    fn simple_packet(&mut self, e: Endian, at: usize, len: usize) -> BlockResult {
        let body = &self.buf[at..at + len];
        if self.ng.section.is_empty() {
            return Err(
                "simple packet block before any interface description block (it belongs to the \
                 section's first interface)"
                    .into(),
            );
        }
        let iface = self
            .interface(0)
            .map_err(|w| format!("simple packet block: {w}"))?;
        if body.len() < 4 {
            return Err(format!(
                "simple packet block body is {} bytes, shorter than its length field",
                body.len()
            ));
        }
        let orig = e.u32(body, 0);
        // The captured length is implied: the original length cut to the snaplen.
        let mut caplen = orig as usize;
        if iface.snaplen != 0 {
            caplen = caplen.min(iface.snaplen as usize);
        }
        if caplen > body.len() - 4 {
            return Err(format!(
                "simple packet block: the packet is {caplen} bytes (original length {orig}, \
                 snaplen {}), the block holds {}",
                iface.snaplen,
                body.len() - 4
            ));
        }
        // A simple packet has no timestamp: reuse the last one so flows stay ordered.
        Ok(Some((
            self.ng.last_ts,
            iface.global,
            iface.link_type,
            orig,
            at + 4,
            caplen,
        )))
    }
}

/// Walks an options list (code, length, value padded to 4) to `opt_endofopt` or the end of the
/// block, calling `f` for each. An option that runs past the block is damage: returns its
/// position in `opts` and why.
fn walk_options(
    e: Endian,
    opts: &[u8],
    mut f: impl FnMut(u16, &[u8]) -> Result<(), String>,
) -> Result<(), (u64, String)> {
    let mut pos = 0usize;
    while pos < opts.len() {
        let rest = &opts[pos..];
        if rest.len() < 4 {
            return Err((
                pos as u64,
                format!("{} bytes left, too few for an option header", rest.len()),
            ));
        }
        let code = e.u16(rest, 0);
        let olen = usize::from(e.u16(rest, 2));
        if code == 0 {
            return Ok(());
        }
        let padded = (olen + 3) & !3;
        if 4 + padded > rest.len() {
            return Err((
                pos as u64,
                format!(
                    "option {code} says {olen} bytes, but only {} bytes of the block remain",
                    rest.len() - 4
                ),
            ));
        }
        f(code, &rest[4..4 + olen]).map_err(|why| (pos as u64, why))?;
        pos += 4 + padded;
    }
    Ok(())
}

impl NgInterface {
    fn to_ns(self, ts: u64) -> u64 {
        let ns: u128 = if self.pow10 {
            if self.exp <= 9 {
                u128::from(ts) * 10u128.pow(u32::from(9 - self.exp))
            } else {
                u128::from(ts) / 10u128.pow(u32::from(self.exp.min(38) - 9))
            }
        } else {
            let exp = u32::from(self.exp.min(127));
            (u128::from(ts) * 1_000_000_000) >> exp
        };
        let ns = ns as i128 + i128::from(self.offset_s) * 1_000_000_000;
        ns.clamp(0, i128::from(u64::MAX)) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::super::*;

    fn block(be: bool, btype: u32, body: &[u8]) -> Vec<u8> {
        let len = 12 + ((body.len() + 3) & !3);
        let w = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut v = Vec::new();
        v.extend_from_slice(&w(btype));
        v.extend_from_slice(&w(len as u32));
        v.extend_from_slice(body);
        v.resize(len - 4, 0);
        v.extend_from_slice(&w(len as u32));
        v
    }

    fn shb(be: bool) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&if be {
            0x1A2B3C4Du32.to_be_bytes()
        } else {
            0x1A2B3C4Du32.to_le_bytes()
        });
        // Version 1.0 in the section's byte order.
        body.extend_from_slice(if be { &[0, 1, 0, 0] } else { &[1, 0, 0, 0] });
        body.extend_from_slice(&[0xff; 8]);
        block(be, 0x0A0D0D0A, &body)
    }

    fn idb(be: bool, link: u16, name: &str, tsresol: Option<u8>) -> Vec<u8> {
        let w16 = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut body = Vec::new();
        body.extend_from_slice(&w16(link));
        body.extend_from_slice(&[0, 0]);
        body.extend_from_slice(&if be {
            0u32.to_be_bytes()
        } else {
            0u32.to_le_bytes()
        });
        body.extend_from_slice(&w16(2));
        body.extend_from_slice(&w16(name.len() as u16));
        body.extend_from_slice(name.as_bytes());
        while body.len() % 4 != 0 {
            body.push(0);
        }
        if let Some(r) = tsresol {
            body.extend_from_slice(&w16(9));
            body.extend_from_slice(&w16(1));
            body.extend_from_slice(&[r, 0, 0, 0]);
        }
        body.extend_from_slice(&[0, 0, 0, 0]);
        block(be, 1, &body)
    }

    fn epb(be: bool, if_id: u32, ts: u64, data: &[u8]) -> Vec<u8> {
        let w = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut body = Vec::new();
        body.extend_from_slice(&w(if_id));
        body.extend_from_slice(&w((ts >> 32) as u32));
        body.extend_from_slice(&w(ts as u32));
        body.extend_from_slice(&w(data.len() as u32));
        body.extend_from_slice(&w(data.len() as u32));
        body.extend_from_slice(data);
        block(be, 6, &body)
    }

    #[test]
    fn two_interfaces_different_link_types_both_byte_orders() {
        for be in [false, true] {
            let mut f = shb(be);
            f.extend(idb(be, 276, "any", None));
            f.extend(idb(be, 1, "eth0", Some(9)));
            f.extend(epb(be, 0, 1_700_000_000_000_001, b"sll2"));
            f.extend(epb(be, 1, 1_700_000_000_000_000_002, b"ether"));
            f.extend(block(be, 5, &[0; 8])); // interface statistics: skipped
            let mut r = PcapReader::new(&f[..]).unwrap();
            let a = r.next_frame().unwrap().unwrap();
            assert_eq!(
                (a.link_type, a.interface, a.data),
                (LinkType::LINUX_SLL2, 0, &b"sll2"[..])
            );
            assert_eq!(a.ts_ns, 1_700_000_000_000_001_000);
            let b = r.next_frame().unwrap().unwrap();
            assert_eq!(
                (b.link_type, b.interface, b.ts_ns),
                (LinkType::ETHERNET, 1, 1_700_000_000_000_000_002)
            );
            assert!(r.next_frame().unwrap().is_none());
            assert_eq!(r.interfaces()[1].name.as_deref(), Some("eth0"));
        }
    }

    #[test]
    fn mismatched_trailer_is_corrupt_and_unknown_interface_is_skipped() {
        let mut f = shb(false);
        f.extend(idb(false, 1, "eth0", None));
        f.extend(epb(false, 7, 1, b"nointerface"));
        let mut bad = epb(false, 0, 2, b"x");
        let n = bad.len();
        bad[n - 4] = 99;
        f.extend(bad);
        let mut r = PcapReader::new(&f[..]).unwrap();
        let err = r.next_frame().unwrap_err();
        assert!(matches!(err, ReadError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("trailing length"), "{err}");
        assert_eq!(r.skipped_blocks(), 1);
        let damage = r.take_damage();
        assert_eq!(damage.len(), 1);
        let d = damage[0].to_string();
        assert!(d.contains("block 3") && d.contains("interface 7"), "{d}");
    }

    /// Each body damage inside intact framing: listed with block and offset, the block
    /// skipped, and the packet after it still read.
    #[test]
    fn damaged_bodies_are_listed_and_reading_goes_on() {
        let le = |v: u32| v.to_le_bytes();
        let good = epb(false, 0, 9, b"after");
        let mut cases: Vec<(Vec<u8>, &str)> = Vec::new();
        // EPB whose option runs past the block: packet data "abcd", then option 1 of 200 bytes.
        let mut body = Vec::new();
        for v in [0, 0, 1, 4, 4] {
            body.extend_from_slice(&le(v));
        }
        body.extend_from_slice(b"abcd");
        body.extend_from_slice(&[1, 0, 200, 0, 0, 0, 0, 0]);
        cases.push((block(false, 6, &body), "option 1 says 200 bytes"));
        // EPB whose captured length is past the block.
        let mut big = epb(false, 0, 1, b"abcd");
        big[20..24].copy_from_slice(&le(4000));
        cases.push((big, "captured length 4000"));
        // Obsolete PB naming a missing interface.
        let mut pb = Vec::new();
        pb.extend_from_slice(&[3, 0, 0, 0]);
        for v in [0, 1, 4, 4] {
            pb.extend_from_slice(&le(v));
        }
        pb.extend_from_slice(b"abcd");
        cases.push((block(false, 2, &pb), "interface 3"));
        // SPB whose original length is more than it holds (no snaplen).
        let mut spb = le(100).to_vec();
        spb.extend_from_slice(b"abcd");
        cases.push((block(false, 3, &spb), "the block holds 4"));
        for (bad, want) in cases {
            let mut f = shb(false);
            f.extend(idb(false, 1, "eth0", None));
            let at = f.len();
            f.extend(bad);
            f.extend(good.clone());
            let mut r = PcapReader::new(&f[..]).unwrap();
            let p = r.next_frame().unwrap().unwrap();
            assert_eq!((p.data, p.number), (&b"after"[..], 1), "{want}");
            assert!(r.next_frame().unwrap().is_none());
            let d = r.take_damage();
            assert_eq!(d.len(), 1, "{want}: {d:?}");
            assert_eq!(d[0].offset(), Some(at as u64));
            let m = d[0].to_string();
            assert!(m.contains(want) && m.contains("block 3"), "{m}");
        }
        // SPB before any IDB, and an IDB whose option overruns (its interface is still used).
        let mut f = shb(false);
        let mut spb = le(4).to_vec();
        spb.extend_from_slice(b"abcd");
        f.extend(block(false, 3, &spb));
        let mut i = idb(false, 1, "eth0", None);
        i[18] = 99; // if_name length 4 -> 99
        f.extend(i);
        f.extend(good.clone());
        let mut r = PcapReader::new(&f[..]).unwrap();
        assert_eq!(r.next_frame().unwrap().unwrap().data, b"after");
        let d: Vec<String> = r.take_damage().iter().map(|e| e.to_string()).collect();
        assert!(d[0].contains("before any interface"), "{d:?}");
        assert!(d[1].contains("option 2 says 99 bytes"), "{d:?}");
        assert_eq!(r.skipped_blocks(), 2);
    }

    #[test]
    fn damage_listed_is_capped() {
        let mut f = shb(false);
        for _ in 0..1000 {
            f.extend(epb(false, 5, 1, b"x"));
        }
        let mut r = PcapReader::new(&f[..]).unwrap();
        assert!(r.next_frame().unwrap().is_none());
        assert_eq!(r.skipped_blocks(), 1000);
        assert_eq!(r.take_damage().len(), super::MAX_DAMAGE_LISTED);
    }
}
