//! TCP header view: ports, sequence and acknowledgement numbers, flags, data offset. Options are
//! not needed by the analyzer and are skipped.

use super::{Addr, Decoded, LinkInfo, NonTcp, Segment};

/// TCP flag bits as on the wire (byte 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;

    #[inline]
    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
    #[inline]
    pub fn syn(self) -> bool {
        self.has(Self::SYN)
    }
    #[inline]
    pub fn fin(self) -> bool {
        self.has(Self::FIN)
    }
    #[inline]
    pub fn rst(self) -> bool {
        self.has(Self::RST)
    }
    #[inline]
    pub fn ack(self) -> bool {
        self.has(Self::ACK)
    }
}

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ: usize = 4;
    pub const ACK: usize = 8;
    pub const DATA_OFFSET: usize = 12;
    pub const FLAGS: usize = 13;
    pub const MIN_LEN: usize = 20;
}

/// `captured` starts at the TCP header; `wire_len` is header + payload length from the IP header.
pub(super) fn decode(
    captured: &[u8],
    wire_len: usize,
    src: Addr,
    dst: Addr,
    ts_ns: u64,
    link: LinkInfo,
) -> Decoded<'_> {
    if captured.len() < field::MIN_LEN {
        return Decoded::NonTcp(if wire_len < field::MIN_LEN {
            NonTcp::Malformed
        } else {
            NonTcp::Truncated
        });
    }
    let doff = usize::from(captured[field::DATA_OFFSET] >> 4) * 4;
    if doff < field::MIN_LEN || doff > wire_len {
        return Decoded::NonTcp(NonTcp::Malformed);
    }
    let be16 = |at: usize| u16::from_be_bytes([captured[at], captured[at + 1]]);
    let be32 = |at: usize| {
        u32::from_be_bytes([
            captured[at],
            captured[at + 1],
            captured[at + 2],
            captured[at + 3],
        ])
    };
    let payload = captured.get(doff..).unwrap_or(&[]);
    Decoded::Tcp(Segment {
        ts_ns,
        link,
        src,
        dst,
        sport: be16(field::SRC_PORT),
        dport: be16(field::DST_PORT),
        seq: be32(field::SEQ),
        ack: be32(field::ACK),
        flags: TcpFlags(captured[field::FLAGS]),
        payload,
        wire_len: (wire_len - doff) as u32,
    })
}
