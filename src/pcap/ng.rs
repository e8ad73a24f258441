//! pcapng block walker: SHB (byte order per section), IDB (link type, `if_name`, `if_tsresol`,
//! `if_tsoffset`), EPB, SPB and the obsolete PB. Other blocks (NRB, ISB, DSB, custom) are
//! skipped by their length. Framing errors stop the reader; a bad block body with intact framing
//! (an EPB naming an unknown interface) is skipped and counted, because the next block can still
//! be found.

use super::{Endian, Interface, LinkType, MAX_RECORD, PcapReader, RawFrame, ReadError};
use std::io::Read;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const PB_OBSOLETE: u32 = 2;
const SPB: u32 = 3;
const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

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
}

#[derive(Debug, Default)]
pub(super) struct NgState {
    endian: bool,
    in_section: bool,
    section: Vec<NgInterface>,
    last_ts: u64,
    /// Blocks with intact framing whose content made no sense (counted, skipped).
    pub(super) skipped_blocks: u64,
}

impl<R: Read> PcapReader<R> {
    /// Number of pcapng blocks skipped because their content was invalid.
    pub fn skipped_blocks(&self) -> u64 {
        self.ng.skipped_blocks
    }

    pub(super) fn next_ng(&mut self) -> Result<Option<RawFrame>, ReadError> {
        loop {
            self.fill(12)?;
            if self.avail() == 0 {
                return Ok(None);
            }
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
            if blen < 12 || blen % 4 != 0 || blen > MAX_RECORD {
                return Err(self.corrupt(format!(
                    "pcapng block type {btype:#x} has an invalid length {blen} (must be a multiple \
                     of 4, at least 12, at most {MAX_RECORD})"
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
                    self.start_section(body_len)?;
                    None
                }
                IDB => {
                    self.add_interface(body_at, body_len);
                    None
                }
                EPB => self.enhanced_packet(e, body_at, body_len),
                SPB => self.simple_packet(e, body_at, body_len),
                PB_OBSOLETE => self.obsolete_packet(e, body_at, body_len),
                _ => None,
            };
            self.consume(blen);
            if let Some(f) = out {
                return Ok(Some(f));
            }
        }
    }

    fn start_section(&mut self, body_len: usize) -> Result<(), ReadError> {
        if body_len < 16 {
            return Err(self.corrupt(format!("section header block body is {body_len} bytes")));
        }
        self.ng.in_section = true;
        self.ng.section.clear();
        Ok(())
    }

    fn add_interface(&mut self, at: usize, len: usize) {
        let e = Endian(self.ng.endian);
        let body = &self.buf[at..at + len];
        if body.len() < 8 {
            self.ng.skipped_blocks += 1;
            return;
        }
        let link_type = LinkType(u32::from(e.u16(body, 0)));
        let snaplen = e.u32(body, 4);
        let mut name = None;
        let (mut pow10, mut exp, mut offset_s) = (true, 6u8, 0i64);
        let mut opts = &body[8..];
        while opts.len() >= 4 {
            let code = e.u16(opts, 0);
            let olen = e.u16(opts, 2) as usize;
            let padded = (olen + 3) & !3;
            let Some(val) = opts.get(4..4 + olen) else {
                break;
            };
            match (code, olen) {
                (0, _) => break,
                (2, _) => {
                    let s = val.split(|&b| b == 0).next().unwrap_or(val);
                    name = Some(String::from_utf8_lossy(s).into_owned());
                }
                (9, 1) => {
                    pow10 = val[0] & 0x80 == 0;
                    exp = val[0] & 0x7f;
                }
                (14, 8) => {
                    let v = [
                        val[0], val[1], val[2], val[3], val[4], val[5], val[6], val[7],
                    ];
                    offset_s = if self.ng.endian {
                        i64::from_be_bytes(v)
                    } else {
                        i64::from_le_bytes(v)
                    };
                }
                _ => {}
            }
            opts = opts.get(4 + padded..).unwrap_or(&[]);
        }
        let global = self.interfaces.len() as u32;
        self.interfaces.push(Interface {
            link_type,
            name,
            snaplen,
        });
        self.ng.section.push(NgInterface {
            global,
            link_type,
            snaplen,
            pow10,
            exp,
            offset_s,
        });
    }

    fn enhanced_packet(&mut self, e: Endian, at: usize, len: usize) -> Option<RawFrame> {
        let body = &self.buf[at..at + len];
        if body.len() < 20 {
            self.ng.skipped_blocks += 1;
            return None;
        }
        let if_id = e.u32(body, 0) as usize;
        let ts = (u64::from(e.u32(body, 4)) << 32) | u64::from(e.u32(body, 8));
        let caplen = e.u32(body, 12) as usize;
        let orig = e.u32(body, 16);
        let Some(iface) = self.ng.section.get(if_id).copied() else {
            self.ng.skipped_blocks += 1;
            return None;
        };
        if caplen > body.len() - 20 {
            self.ng.skipped_blocks += 1;
            return None;
        }
        let ts_ns = iface.to_ns(ts);
        self.ng.last_ts = ts_ns;
        Some((
            ts_ns,
            iface.global,
            iface.link_type,
            orig.max(caplen as u32),
            at + 20,
            caplen,
        ))
    }

    fn obsolete_packet(&mut self, e: Endian, at: usize, len: usize) -> Option<RawFrame> {
        let body = &self.buf[at..at + len];
        if body.len() < 20 {
            self.ng.skipped_blocks += 1;
            return None;
        }
        let if_id = usize::from(e.u16(body, 0));
        let ts = (u64::from(e.u32(body, 4)) << 32) | u64::from(e.u32(body, 8));
        let caplen = e.u32(body, 12) as usize;
        let orig = e.u32(body, 16);
        let Some(iface) = self.ng.section.get(if_id).copied() else {
            self.ng.skipped_blocks += 1;
            return None;
        };
        if caplen > body.len() - 20 {
            self.ng.skipped_blocks += 1;
            return None;
        }
        let ts_ns = iface.to_ns(ts);
        self.ng.last_ts = ts_ns;
        Some((
            ts_ns,
            iface.global,
            iface.link_type,
            orig.max(caplen as u32),
            at + 20,
            caplen,
        ))
    }

    fn simple_packet(&mut self, e: Endian, at: usize, len: usize) -> Option<RawFrame> {
        let body = &self.buf[at..at + len];
        let Some(iface) = self.ng.section.first().copied() else {
            self.ng.skipped_blocks += 1;
            return None;
        };
        if body.len() < 4 {
            self.ng.skipped_blocks += 1;
            return None;
        }
        let orig = e.u32(body, 0);
        let mut caplen = (orig as usize).min(body.len() - 4);
        if iface.snaplen != 0 {
            caplen = caplen.min(iface.snaplen as usize);
        }
        // A simple packet has no timestamp: reuse the last one so flows stay ordered.
        Some((
            self.ng.last_ts,
            iface.global,
            iface.link_type,
            orig,
            at + 4,
            caplen,
        ))
    }
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
        body.extend_from_slice(&[0, 1, 0, 0]);
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
    }
}
