//! JA4 TLS-client fingerprint (FoxIO, BSD-3-Clause; the other JA4+ fingerprints are under the
//! FoxIO licence and deliberately not implemented). `a_b_c`:
//! a = transport (t/q), version, SNI (d/i), cipher count, extension count, ALPN first+last char;
//! b = first 12 hex of SHA-256 over the sorted cipher list; c = the same over the sorted
//! extensions (without SNI and ALPN) "_" signature algorithms in wire order. GREASE is ignored.

use super::handshake::{ClientHello, ext, is_grease};
use sha2::{Digest, Sha256};

fn version_code(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

fn hash12(s: &str) -> String {
    if s.is_empty() {
        return "000000000000".into();
    }
    let d = Sha256::digest(s.as_bytes());
    let mut out = String::with_capacity(12);
    for b in d.iter().take(6) {
        push_hex(&mut out, u16::from(*b), 2);
    }
    out
}

fn push_hex(out: &mut String, v: u16, digits: u32) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for i in (0..digits).rev() {
        out.push(char::from(HEX[usize::from((v >> (4 * i)) & 0xf)]));
    }
}

fn hex_list(v: &[u16]) -> String {
    let mut out = String::with_capacity(v.len() * 5);
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_hex(&mut out, *x, 4);
    }
    out
}

fn alpn_code(alpn: Option<&Vec<u8>>) -> String {
    let Some(a) = alpn.filter(|a| !a.is_empty()) else {
        return "00".into();
    };
    let (first, last) = (a[0], a[a.len() - 1]);
    if first.is_ascii_alphanumeric() && last.is_ascii_alphanumeric() {
        format!("{}{}", char::from(first), char::from(last))
    } else {
        // What the reference implementations (Rust and Python) print for such values.
        "99".into()
    }
}

/// JA4 of a ClientHello carried over TCP (`quic` = false) or QUIC.
pub fn ja4(ch: &ClientHello, quic: bool) -> String {
    let version = ch
        .supported_versions
        .iter()
        .copied()
        .filter(|v| !is_grease(*v))
        .max()
        .unwrap_or(ch.legacy_version);
    let ciphers: Vec<u16> = ch
        .ciphers
        .iter()
        .copied()
        .filter(|c| !is_grease(*c))
        .collect();
    let exts: Vec<u16> = ch
        .extensions
        .iter()
        .copied()
        .filter(|e| !is_grease(*e))
        .collect();
    let a = format!(
        "{}{}{}{:02}{:02}{}",
        if quic { 'q' } else { 't' },
        version_code(version),
        if ch.extensions.contains(&ext::SERVER_NAME) {
            'd'
        } else {
            'i'
        },
        ciphers.len().min(99),
        exts.len().min(99),
        alpn_code(ch.alpn.first()),
    );
    let mut sorted_ciphers = ciphers;
    sorted_ciphers.sort_unstable();
    let mut sorted_exts: Vec<u16> = exts
        .into_iter()
        .filter(|e| *e != ext::SERVER_NAME && *e != ext::ALPN)
        .collect();
    sorted_exts.sort_unstable();
    let sigs: Vec<u16> = ch
        .signature_algorithms
        .iter()
        .copied()
        .filter(|s| !is_grease(*s))
        .collect();
    let c_input = if sigs.is_empty() {
        hex_list(&sorted_exts)
    } else {
        format!("{}_{}", hex_list(&sorted_exts), hex_list(&sigs))
    };
    format!(
        "{a}_{}_{}",
        hash12(&hex_list(&sorted_ciphers)),
        hash12(&c_input)
    )
}

/// JA4 values already computed, keyed by exactly the ClientHello fields JA4 reads. Clients of
/// one stack send the same hello shape on every connection, so this turns a SHA-256 pair per
/// flow into a lookup (measured: JA4 was a third of all instructions on the benchmark).
#[derive(Debug, Default)]
pub struct Ja4Cache {
    map: rustc_hash::FxHashMap<Vec<u8>, String>,
    key: Vec<u8>,
}

pub(crate) const CACHE_ENTRIES: usize = 4096;

impl Ja4Cache {
    pub fn get(&mut self, ch: &ClientHello, quic: bool) -> String {
        let k = &mut self.key;
        k.clear();
        k.push(u8::from(quic));
        k.push(u8::from(ch.extensions.contains(&ext::SERVER_NAME)));
        k.extend_from_slice(&ch.legacy_version.to_be_bytes());
        for list in [
            &ch.supported_versions,
            &ch.ciphers,
            &ch.extensions,
            &ch.signature_algorithms,
        ] {
            k.extend_from_slice(&(list.len() as u16).to_be_bytes());
            for v in list.iter() {
                k.extend_from_slice(&v.to_be_bytes());
            }
        }
        if let Some(a) = ch.alpn.first() {
            k.extend_from_slice(a);
        }
        if let Some(v) = self.map.get(k.as_slice()) {
            return v.clone();
        }
        let v = ja4(ch, quic);
        if self.map.len() >= CACHE_ENTRIES {
            self.map.clear();
        }
        self.map.insert(self.key.clone(), v.clone());
        v
    }
}
