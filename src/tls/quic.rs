//! QUIC Initial packets: their keys are derived from the client's first Destination Connection
//! ID and a public salt (RFC 9001 §5.2, RFC 9369 §3.3 for v2), so a passive observer can remove
//! header protection, decrypt them, and read the ClientHello in their CRYPTO frames: SNI, ALPN
//! and the JA4 (`q` prefix). Everything after the Initials is out of reach, and not attempted.
//! Every length is checked; a packet that does not decrypt is simply not used.

use aes::cipher::BlockCipherEncrypt;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use sha2::Sha256;

const V1: u32 = 1;
const V2: u32 = 0x6b33_43cf;
const SALT_V1: [u8; 20] = [
    0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad,
    0xcc, 0xbb, 0x7f, 0x0a,
];
const SALT_V2: [u8; 20] = [
    0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb,
    0xf9, 0xbd, 0x2e, 0xd9,
];
/// Bytes of CRYPTO stream kept per flow (a ClientHello with post-quantum key shares is ~2 KB).
/// The merged stream and the fragments waiting for a hole share this budget.
pub const MAX_CRYPTO: usize = 16 * 1024;
/// CRYPTO fragments waiting for a hole, per flow.
pub const MAX_CRYPTO_PENDING: usize = 64;

/// A variable-length integer (RFC 9000 §16).
fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let first = *b.get(*at)?;
    let len = 1usize << (first >> 6);
    let bytes = b.get(*at..*at + len)?;
    let mut v = u64::from(first & 0x3f);
    for &x in &bytes[1..] {
        v = (v << 8) | u64::from(x);
    }
    *at += len;
    Some(v)
}

/// HKDF-Expand-Label with an empty context (RFC 8446 §7.1).
fn expand_label(hk: &hkdf::Hkdf<Sha256>, label: &str, out: &mut [u8]) -> Option<()> {
    let full = format!("tls13 {label}");
    let mut info = Vec::with_capacity(4 + full.len());
    info.extend_from_slice(&(out.len() as u16).to_be_bytes());
    info.push(full.len() as u8);
    info.extend_from_slice(full.as_bytes());
    info.push(0);
    hk.expand(&info, out).ok()
}

struct Keys {
    key: [u8; 16],
    iv: [u8; 12],
    hp: [u8; 16],
}

fn client_keys(version: u32, dcid: &[u8]) -> Option<Keys> {
    let (salt, prefix) = match version {
        V1 => (&SALT_V1, "quic"),
        V2 => (&SALT_V2, "quicv2"),
        _ => return None,
    };
    let (initial, _) = hkdf::Hkdf::<Sha256>::extract(Some(salt), dcid);
    let initial = hkdf::Hkdf::<Sha256>::from_prk(&initial).ok()?;
    let mut client = [0u8; 32];
    expand_label(&initial, "client in", &mut client)?;
    let hk = hkdf::Hkdf::<Sha256>::from_prk(&client).ok()?;
    let mut k = Keys {
        key: [0; 16],
        iv: [0; 12],
        hp: [0; 16],
    };
    expand_label(&hk, &format!("{prefix} key"), &mut k.key)?;
    expand_label(&hk, &format!("{prefix} iv"), &mut k.iv)?;
    expand_label(&hk, &format!("{prefix} hp"), &mut k.hp)?;
    Some(k)
}

/// Builds a client Initial (QUIC v1) as a real client would: `frames` in clear, encrypted with
/// the Initial keys of `dcid`, header protection applied, a 4-byte packet number. For the
/// generator of hostile inputs (`examples/hostile_pcap`) and tests; the analyzer only opens.
#[doc(hidden)]
pub fn seal_client_initial(dcid: &[u8], scid: &[u8], pn: u32, frames: &[u8], out: &mut Vec<u8>) {
    let keys = client_keys(V1, dcid).expect("v1 Initial keys derive for any DCID");
    let start = out.len();
    out.push(0xc3); // long header, fixed bit, Initial, packet number length 4
    out.extend_from_slice(&V1.to_be_bytes());
    out.push(dcid.len() as u8);
    out.extend_from_slice(dcid);
    out.push(scid.len() as u8);
    out.extend_from_slice(scid);
    out.push(0); // no token
    let len = 4 + frames.len() + 16; // packet number, payload, AEAD tag
    out.extend_from_slice(&(0x8000_0000 | len as u32).to_be_bytes()); // 4-byte varint
    let pn_at = out.len() - start;
    out.extend_from_slice(&pn.to_be_bytes());
    let mut nonce = keys.iv;
    for (i, b) in u64::from(pn).to_be_bytes().iter().enumerate() {
        nonce[4 + i] ^= b;
    }
    let aead = aes_gcm::Aes128Gcm::new_from_slice(&keys.key).expect("16-byte key");
    let nonce = aes_gcm::Nonce::try_from(&nonce[..]).expect("12-byte nonce");
    let sealed = aead
        .encrypt(
            &nonce,
            Payload {
                msg: frames,
                aad: &out[start..],
            },
        )
        .expect("AES-GCM seals any length a datagram can hold");
    out.extend_from_slice(&sealed);
    let packet = &mut out[start..];
    let hp = aes::Aes128::new_from_slice(&keys.hp).expect("16-byte key");
    let mut block = aes::Block::try_from(&packet[pn_at + 4..pn_at + 20]).expect("16-byte sample");
    hp.encrypt_block(&mut block);
    packet[0] ^= block[0] & 0x0f;
    for i in 0..4 {
        packet[pn_at + i] ^= block[1 + i];
    }
}

/// One UDP flow that carries QUIC, from the client's side.
#[derive(Debug, Default)]
pub struct QuicInitials {
    /// The client's first Initial DCID: it fixes the Initial keys.
    dcid: Option<Vec<u8>>,
    version: u32,
    /// CRYPTO frame data by offset, merged in order.
    crypto: Vec<u8>,
    /// Fragments ahead of `crypto`'s end, clipped to the first `MAX_CRYPTO` stream bytes.
    pending: Vec<(u64, Vec<u8>)>,
    /// Bytes held by `pending`: `crypto.len() + pending_bytes <= MAX_CRYPTO` always.
    pending_bytes: usize,
    pub decrypted: u32,
    pub undecryptable: u32,
    /// CRYPTO bytes not kept: beyond the first `MAX_CRYPTO` bytes of the stream, or ahead of a
    /// hole when the budget (or the fragment count) was spent.
    pub crypto_dropped: u64,
}

impl QuicInitials {
    /// A datagram from the client. Every long-header packet in it is looked at; Initials are
    /// decrypted and their CRYPTO frames collected.
    pub fn client_datagram(&mut self, mut d: &[u8]) {
        while d.len() > 7 && d[0] & 0x80 != 0 {
            match self.packet(d) {
                Some(used) if used > 0 && used <= d.len() => d = &d[used..],
                _ => break,
            }
        }
    }

    /// Returns how many bytes the packet took (coalesced packets follow it).
    fn packet(&mut self, p: &[u8]) -> Option<usize> {
        let version = u32::from_be_bytes([p[1], p[2], p[3], p[4]]);
        let mut at = 5;
        let dcid_len = usize::from(*p.get(at)?);
        let dcid = p.get(at + 1..at + 1 + dcid_len)?;
        at += 1 + dcid_len;
        let scid_len = usize::from(*p.get(at)?);
        at += 1 + scid_len;
        let ptype = (p[0] >> 4) & 0x3;
        let initial = match version {
            V1 => ptype == 0,
            V2 => ptype == 1,
            _ => false,
        };
        if !initial {
            // Skip other long-header packets (0-RTT, Handshake) by their length field.
            if ptype == 3 && version == V1 {
                return None; // Retry has no length field
            }
            let len = varint(p, &mut at)? as usize;
            return Some(at + len);
        }
        let token_len = varint(p, &mut at)? as usize;
        at += token_len;
        let len = varint(p, &mut at)? as usize;
        let pn_at = at;
        let end = pn_at.checked_add(len)?;
        let packet = p.get(..end)?;
        if self.dcid.is_none() {
            self.dcid = Some(dcid.to_vec());
            self.version = version;
        }
        let keys = client_keys(self.version, self.dcid.as_deref()?)?;
        // Header protection (RFC 9001 §5.4): the sample starts 4 bytes after the packet number.
        let sample = packet.get(pn_at + 4..pn_at + 20)?;
        let hp = aes::Aes128::new_from_slice(&keys.hp).ok()?;
        let mut block = aes::Block::try_from(sample).ok()?;
        hp.encrypt_block(&mut block);
        let first = p[0] ^ (block[0] & 0x0f);
        let pn_len = usize::from(first & 0x3) + 1;
        let mut header = packet.get(..pn_at + pn_len)?.to_vec();
        header[0] = first;
        let mut pn = 0u64;
        for i in 0..pn_len {
            header[pn_at + i] ^= block[1 + i];
            pn = (pn << 8) | u64::from(header[pn_at + i]);
        }
        let mut nonce = keys.iv;
        for (i, b) in pn.to_be_bytes().iter().enumerate() {
            nonce[4 + i] ^= b;
        }
        let aead = aes_gcm::Aes128Gcm::new_from_slice(&keys.key).ok()?;
        let nonce = aes_gcm::Nonce::try_from(&nonce[..]).ok()?;
        let ciphertext = packet.get(pn_at + pn_len..)?;
        match aead.decrypt(
            &nonce,
            Payload {
                msg: ciphertext,
                aad: &header,
            },
        ) {
            Ok(plain) => {
                self.decrypted += 1;
                self.frames(&plain);
            }
            Err(_) => self.undecryptable += 1,
        }
        Some(end)
    }

    fn frames(&mut self, f: &[u8]) {
        let mut at = 0;
        while at < f.len() {
            let Some(kind) = varint(f, &mut at) else {
                return;
            };
            match kind {
                0x00 | 0x01 => {} // PADDING, PING
                0x02 | 0x03 => {
                    // ACK: largest, delay, range count, first range, ranges, [ECN counts]
                    let mut fields = || varint(f, &mut at);
                    let (Some(_), Some(_), Some(count), Some(_)) =
                        (fields(), fields(), fields(), fields())
                    else {
                        return;
                    };
                    for _ in 0..count.min(256) * 2 {
                        if varint(f, &mut at).is_none() {
                            return;
                        }
                    }
                    if kind == 0x03 {
                        for _ in 0..3 {
                            if varint(f, &mut at).is_none() {
                                return;
                            }
                        }
                    }
                }
                0x06 => {
                    let (Some(off), Some(len)) = (varint(f, &mut at), varint(f, &mut at)) else {
                        return;
                    };
                    let Some(data) = f.get(at..at.saturating_add(len as usize)) else {
                        return;
                    };
                    at += data.len();
                    self.crypto_data(off, data);
                }
                0x1c | 0x1d => return, // CONNECTION_CLOSE: nothing further of interest
                _ => return,           // not allowed in Initials
            }
        }
    }

    /// CRYPTO frame data at stream offset `off`. Only the first `MAX_CRYPTO` bytes of the
    /// stream are of use (the ClientHello); of those, a fragment ahead of a hole is held only
    /// while the merged and the waiting bytes together fit in `MAX_CRYPTO`. The rest is counted
    /// in `crypto_dropped`, never kept: a hostile client may send any number of fragments.
    fn crypto_data(&mut self, off: u64, data: &[u8]) {
        let len = data.len() as u64;
        let have = self.crypto.len() as u64;
        let end = off.saturating_add(len).min(MAX_CRYPTO as u64);
        self.crypto_dropped += len - end.saturating_sub(off).min(len);
        if off >= end || end <= have {
            return; // entirely beyond the cap, or already merged (a retransmission)
        }
        let from = off.max(have);
        let part = &data[(from - off) as usize..(end - off) as usize];
        if from > have {
            let room = MAX_CRYPTO - self.crypto.len() - self.pending_bytes;
            if part.len() > room || self.pending.len() >= MAX_CRYPTO_PENDING {
                self.crypto_dropped += part.len() as u64;
                return;
            }
            if self.pending.capacity() == 0 {
                self.pending.reserve_exact(MAX_CRYPTO_PENDING);
            }
            self.pending_bytes += part.len();
            self.pending.push((from, part.to_vec()));
            return;
        }
        self.append(part);
        // Merge whatever is now contiguous; drop what the merged stream already covers.
        loop {
            let have = self.crypto.len() as u64;
            let Some(i) = self
                .pending
                .iter()
                .position(|(o, d)| *o <= have && o + d.len() as u64 > have)
            else {
                let mut freed = 0;
                self.pending.retain(|(o, d)| {
                    let keep = o + d.len() as u64 > have;
                    if !keep {
                        freed += d.len();
                    }
                    keep
                });
                self.pending_bytes -= freed;
                return;
            };
            let (o, d) = self.pending.swap_remove(i);
            self.pending_bytes -= d.len();
            self.append(&d[(have - o) as usize..]);
        }
    }

    /// Appends merged CRYPTO bytes; the buffer grows by doubling but never past `MAX_CRYPTO`.
    fn append(&mut self, d: &[u8]) {
        let take = d.len().min(MAX_CRYPTO - self.crypto.len());
        let need = self.crypto.len() + take;
        if need > self.crypto.capacity() {
            let want = (self.crypto.capacity() * 2).max(need).min(MAX_CRYPTO);
            self.crypto.reserve_exact(want - self.crypto.len());
        }
        self.crypto.extend_from_slice(&d[..take]);
    }

    /// Bytes held now: the merged CRYPTO stream and the fragments waiting. At most `MAX_CRYPTO`.
    pub fn held_bytes(&self) -> usize {
        self.crypto.len() + self.pending_bytes
    }

    /// The ClientHello, once the CRYPTO stream holds all of it.
    pub fn client_hello(&self) -> Option<super::handshake::ClientHello> {
        let c = &self.crypto;
        if c.len() < 4 || c[0] != super::handshake::msg::CLIENT_HELLO {
            return None;
        }
        let len = (usize::from(c[1]) << 16) | (usize::from(c[2]) << 8) | usize::from(c[3]);
        super::handshake::parse_client_hello(c.get(4..4 + len)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9001 appendix A.1: the client Initial keys for DCID 0x8394c8f03e515708.
    #[test]
    fn rfc9001_initial_keys() {
        let k = client_keys(V1, &[0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08]).unwrap();
        assert_eq!(
            k.key,
            [
                0x1f, 0x36, 0x96, 0x13, 0xdd, 0x76, 0xd5, 0x46, 0x77, 0x30, 0xef, 0xcb, 0xe3, 0xb1,
                0xa2, 0x2d
            ]
        );
        assert_eq!(
            k.iv,
            [
                0xfa, 0x04, 0x4b, 0x2f, 0x42, 0xa3, 0xfd, 0x3b, 0x46, 0xfb, 0x25, 0x5c
            ]
        );
        assert_eq!(
            k.hp,
            [
                0x9f, 0x50, 0x44, 0x9e, 0x04, 0xa0, 0xe8, 0x10, 0x28, 0x3a, 0x1e, 0x99, 0x33, 0xad,
                0xed, 0xd2
            ]
        );
    }

    /// Issue 11: CRYPTO fragments ahead of a hole were kept whatever their number and size
    /// below offset 16 KiB (64 per flow of up to a datagram each). Now merged and waiting bytes
    /// share `MAX_CRYPTO`; the rest is counted in `crypto_dropped`.
    #[test]
    fn crypto_fragments_ahead_of_a_hole_stay_within_the_cap() {
        let mut q = QuicInitials::default();
        let big = vec![0x41u8; 60_000];
        for i in 0..200u64 {
            q.crypto_data(1 + i * 7, &big);
            assert!(q.held_bytes() <= MAX_CRYPTO, "{} held", q.held_bytes());
        }
        assert!(q.crypto_dropped > 199 * 60_000 - MAX_CRYPTO as u64);
        q.crypto_data(1_000_000, b"far beyond the cap");
        q.crypto_data(0, &[1, 0, 0]);
        // The hole at 0 is filled: the first waiting fragment merges, up to the cap.
        assert_eq!(q.crypto.len(), MAX_CRYPTO);
        assert!(q.pending.is_empty() && q.pending_bytes == 0);
        assert!(q.held_bytes() <= MAX_CRYPTO);
    }

    #[test]
    fn a_sealed_initial_opens_and_its_crypto_frame_is_read() {
        let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
        // CRYPTO at offset 0: a ClientHello header that says 3 bytes follow, then 3 bytes.
        let frames = [0x06, 0x00, 0x07, 1, 0, 0, 3, 3, 3, 0, 0, 0, 0];
        let mut p = Vec::new();
        seal_client_initial(&dcid, &[1, 2], 7, &frames, &mut p);
        let mut q = QuicInitials::default();
        q.client_datagram(&p);
        assert_eq!((q.decrypted, q.undecryptable), (1, 0));
        assert_eq!(q.crypto, [1, 0, 0, 3, 3, 3, 0]);
    }

    #[test]
    fn garbage_does_not_decrypt_or_panic() {
        let mut q = QuicInitials::default();
        let mut p = vec![
            0xc0, 0, 0, 0, 1, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0x40, 0x20,
        ];
        p.extend_from_slice(&[0x55; 40]);
        q.client_datagram(&p);
        assert_eq!((q.decrypted, q.undecryptable), (0, 1));
        q.client_datagram(&[0xc0, 0, 0, 0, 1, 200]);
        assert!(q.client_hello().is_none());
    }
}
