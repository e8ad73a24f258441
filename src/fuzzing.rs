//! Invariants checked by the fuzz targets (`fuzz/`) and by the mutation test in `tests/`, so
//! the same assertions run under libFuzzer and in every `cargo test`. Not a stable API.

use crate::analyze::analyze_bytes;
use crate::flow::FlowConfig;

/// Analyses `data` as a capture with small limits (so eviction and caps are exercised too) and
/// panics if an invariant does not hold. Must never panic for any other reason.
pub fn check_capture(data: &[u8]) {
    let cfg = FlowConfig {
        max_flows: 8,
        collect_bytes: 256,
        ..FlowConfig::default()
    };
    let (flows, summary) = analyze_bytes(data, cfg);
    // Every packet is either TCP or counted by kind.
    assert_eq!(
        summary.tcp_packets + summary.non_tcp.total(),
        summary.packets
    );
    // Every TCP packet lands in exactly one flow, or is counted as late for a closed one.
    let in_flows: u64 = flows
        .iter()
        .filter(|f| f.tcp.is_some())
        .map(|f| f.packets.c2s + f.packets.s2c)
        .sum();
    assert_eq!(in_flows + summary.late_packets, summary.tcp_packets);
    assert_eq!(flows.len() as u64, summary.flows);
    let by_proto = summary.protocols;
    assert_eq!(
        by_proto.tls
            + by_proto.http
            + by_proto.h2c
            + by_proto.other
            + by_proto.empty
            + by_proto.quic,
        summary.flows
    );
    // QUIC flows hold only UDP packets (long-header ones are counted as QUIC, the rest as UDP).
    let in_quic: u64 = flows
        .iter()
        .filter(|f| f.tcp.is_none())
        .map(|f| f.packets.c2s + f.packets.s2c)
        .sum();
    assert!(
        in_quic <= summary.non_tcp.quic + summary.non_tcp.udp,
        "{in_quic} packets in QUIC flows"
    );
    for (i, f) in flows.iter().enumerate() {
        assert!(
            f.packets.c2s + f.packets.s2c >= 1,
            "flow {i} without packets"
        );
        assert!(f.first_ts <= f.last_ts, "flow {i} ends before it starts");
        if f.bytes.c2s + f.bytes.s2c == 0 {
            assert_eq!(f.protocol, crate::classify::Protocol::Empty);
        }
    }
    // Flow ids are unique.
    let mut ids: Vec<u64> = flows.iter().map(|f| f.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), flows.len());
    assert!(summary.max_live_flows <= 8);
}

/// The stream reassembler alone: segments described by the fuzzer's bytes, in any order.
/// Invariant: what was collected is a prefix of the reassembled stream no longer than the cap,
/// and counters never exceed what was fed.
pub fn check_reassembly(data: &[u8]) {
    crate::flow::fuzz_stream(data);
}

/// The TLS layer alone: the input is split into a client and a server byte stream (first two
/// bytes: client length), each fed in small chunks through the record walker, then analysed.
/// Invariants: the record log stays bounded, and facts never claim what the wire cannot show
/// (TLS 1.3 fields are hidden, inferred values come with their basis).
pub fn check_tls(data: &[u8]) {
    use crate::tls::{self, ClientCert, DirectionInput, records::RecordWalker};
    let (split, rest) = match data {
        [a, b, rest @ ..] => (
            usize::from(u16::from_le_bytes([*a, *b])).min(rest.len()),
            rest,
        ),
        _ => return,
    };
    let (c, s) = rest.split_at(split);
    let walk = |bytes: &[u8]| {
        let mut w = RecordWalker::default();
        let mut at = 0u64;
        for (i, chunk) in bytes.chunks(7).enumerate() {
            w.feed(
                at,
                chunk,
                &bytes[..(at as usize + chunk.len())],
                true,
                i as u32,
            );
            at += chunk.len() as u64;
        }
        w
    };
    let (cw, sw) = (walk(c), walk(s));
    assert!(cw.events.len() <= tls::records::MAX_EVENTS);
    assert!(sw.tail_alerts.len() <= tls::records::MAX_TAIL_ALERTS);
    let mut caches = tls::TlsCaches::default();
    let facts = tls::analyze(
        DirectionInput {
            kept: c,
            walker: &cw,
        },
        DirectionInput {
            kept: s,
            walker: &sw,
        },
        tls::Close::Fin,
        &mut caches,
    );
    if facts.version.as_deref() == Some("1.3") {
        assert_eq!(facts.client_cert, Some(ClientCert::Hidden));
        assert_ne!(
            facts.alpn_selected.as_deref(),
            Some("h2"),
            "TLS 1.3 ALPN is never visible"
        );
    } else {
        assert!(
            facts.client_cert_inferred.is_none(),
            "inference is for TLS 1.3 only"
        );
    }
    if facts.client_cert_inferred.is_some() {
        assert!(facts.inference_basis.is_some());
    }
}

/// QUIC Initial handling: arbitrary datagrams (the input split at 0xff bytes) from the client.
/// Invariants: no panic, the CRYPTO bytes held (merged and waiting) stay within their cap, and
/// a ClientHello is only reported when a packet actually decrypted.
pub fn check_quic(data: &[u8]) {
    let mut q = crate::tls::quic::QuicInitials::default();
    for d in data.split(|&b| b == 0xff) {
        q.client_datagram(d);
        assert!(q.held_bytes() <= crate::tls::quic::MAX_CRYPTO);
    }
    if q.decrypted == 0 {
        assert!(q.client_hello().is_none());
    }
}

/// The HTTP/1.x and h2c readers alone: the input is split into a client and a server byte
/// stream (first two bytes: client length; the third picks the chunk size), each fed in
/// chunks, with a gap wherever a chunk starts with 0xfe. Invariants: what is kept stays within
/// its bounds, counts cover what is kept, every label has its evidence, and redacted evidence
/// never carries more than the placeholder after a credential's name.
pub fn check_http(data: &[u8]) {
    use crate::http::{self, HttpStream, MAX_MESSAGES};
    let (split, piece, rest) = match data {
        [a, b, p, rest @ ..] => (
            usize::from(u16::from_le_bytes([*a, *b])).min(rest.len()),
            usize::from(*p % 64) + 1,
            rest,
        ),
        _ => return,
    };
    let (c, s) = rest.split_at(split);
    let feed = |bytes: &[u8]| {
        let mut st = HttpStream::default();
        st.reset(false);
        for chunk in bytes.chunks(piece) {
            if chunk[0] == 0xfe {
                st.skip(chunk.len() as u64);
            } else {
                st.feed(chunk);
            }
        }
        st
    };
    let (mut cs, mut ss) = (feed(c), feed(s));
    let Some(f) = http::facts(&mut cs, &mut ss) else {
        return;
    };
    assert!(f.requests.len() <= MAX_MESSAGES && f.responses.len() <= MAX_MESSAGES);
    assert!(f.request_count >= f.requests.len() as u64);
    assert!(f.response_count >= f.responses.len() as u64);
    for r in &f.requests {
        assert_eq!(r.sensitive.len(), r.evidence.len());
    }
    for r in &f.responses {
        assert_eq!(r.sensitive.len(), r.evidence.len());
    }
    for (label, ev) in f.sensitive() {
        if label.starts_with("authorization:")
            || label.starts_with("header:")
            || label.starts_with("query:")
            || label == "userinfo"
        {
            assert!(ev.ends_with(" bytes>") || ev.ends_with(" byte>"), "{ev}");
        }
    }
    // Every path is stored redacted: a credential parameter left in one has only the marker.
    let kept: usize = f.requests.iter().map(|r| r.path.len()).sum();
    assert!(kept <= http::MAX_KEPT, "{kept} bytes of paths kept");
    for r in &f.requests {
        let query = r.path.split_once(['?', '#']).map_or("", |(_, q)| q);
        for pair in query.split(['&', ';', '#']) {
            if let Some((name, value)) = pair.split_once('=') {
                if http::sensitive::is_secret_param(name.as_bytes()) {
                    assert!(value.starts_with("<redacted, "), "{}", r.path);
                }
            }
        }
    }
}

/// Capture filters: the first line is an expression, the rest a packet. Compiling must not
/// panic whatever the text; a compiled program must end (every jump is forward) and its
/// verdict must be 0 or the snaplen on any packet.
pub fn check_filter(data: &[u8]) {
    let (expr, pkt) = match memchr::memchr(b'\n', data) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let Ok(expr) = std::str::from_utf8(expr) else {
        return;
    };
    use crate::capture::filter::{Link, Meta, compile, run_with};
    // The first packet byte also picks the metadata the kernel would give.
    let flags = pkt.first().copied().unwrap_or(0);
    let meta = Meta {
        protocol: u16::from(flags) << 8,
        vlan_tci: (flags & 1 != 0).then_some(u16::from(flags)),
    };
    for link in [Link::Ethernet, Link::Cooked] {
        if let Ok(prog) = compile(expr, link, 4242) {
            let r = run_with(&prog, pkt, meta);
            assert!(r == 0 || r == 4242, "verdict {r}");
        }
    }
}

/// Splits `data` into two pcapng "exec streams" (the first 4 bytes, little-endian, say where
/// the first ends), merges them
/// block by block as `kubectl meshsniff -l` does, and checks that whatever the merger wrote
/// before a stream went bad is a capture our reader reads to the end, with one packet per
/// packet block the merger accepted and every interface named after its stream.
pub fn check_merge(data: &[u8]) {
    use crate::kube::merge::{BlockReader, Merger};
    let Some((cut, rest)) = data.split_first_chunk::<4>() else {
        return;
    };
    let mid = (u32::from_le_bytes(*cut) as usize).min(rest.len());
    let streams = [&rest[..mid], &rest[mid..]];
    let labels = ["ns/a".to_string(), "ns/b".to_string()];
    let Ok(mut m) = Merger::new(Vec::new(), &labels) else {
        return;
    };
    let mut readers: Vec<_> = streams
        .iter()
        .zip(&labels)
        .map(|(s, l)| Some(BlockReader::new(*s, l)))
        .collect();
    while readers.iter().any(Option::is_some) {
        for (i, slot) in readers.iter_mut().enumerate() {
            let Some(r) = slot else { continue };
            match r.next_block() {
                Ok(Some(b)) if m.push(i, &b).is_ok() => {}
                _ => *slot = None,
            }
        }
    }
    let packets = m.packets;
    let out = m.into_inner();
    let mut reader = crate::pcap::PcapReader::new(&out[..]).expect("merged output has a header");
    let mut read = 0u64;
    while reader.advance().expect("merged output reads to the end") {
        read += 1;
    }
    let damage = reader.take_damage();
    assert!(
        damage.is_empty(),
        "the merger wrote a block the reader calls damaged: {damage:?}"
    );
    assert_eq!(read, packets, "every accepted packet block is one packet");
    for i in reader.interfaces() {
        let name = i.name.as_deref().unwrap_or("");
        assert!(
            name.starts_with("ns/a") || name.starts_with("ns/b"),
            "{name}"
        );
    }
}

/// QUIC datagrams from the client, each a u16 big-endian length and its bytes (a last one
/// shorter than its length takes what is left), so a real Initial (whose ciphertext holds any
/// byte) is one datagram; `fuzz/seeds.py` cuts these from captures. Invariants as
/// [`check_quic`], and every long-header packet is either decrypted, refused or skipped: never
/// more decrypted than datagram bytes allow (an Initial is at least 20 bytes after its header).
pub fn check_quic_datagrams(data: &[u8]) {
    let mut q = crate::tls::quic::QuicInitials::default();
    let mut rest = data;
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        q.client_datagram(&tail[..len]);
        rest = &tail[len..];
    }
    if q.decrypted == 0 {
        assert!(q.client_hello().is_none());
    }
    assert!(
        (q.decrypted as usize + q.undecryptable as usize) * 20 <= data.len(),
        "{} decrypted and {} refused from {} bytes",
        q.decrypted,
        q.undecryptable,
        data.len()
    );
}

/// The connection ID the QUIC Initials of [`check_quic_crypto`] are sent to (RFC 9001 A.1's).
const FUZZ_DCID: [u8; 8] = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];

/// AEAD key, IV and header-protection key of one direction's Initials.
type InitialKeys = ([u8; 16], [u8; 12], [u8; 16]);

/// Client Initial keys (RFC 9001 §5.2, RFC 9369 §3.3): AEAD key, IV, header-protection key.
/// Derived here independently of `tls::quic`, so the fuzzer's packets test its decryption.
fn quic_client_keys(v2: bool) -> InitialKeys {
    use sha2::Sha256;
    const SALT_V1: [u8; 20] = [
        0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17, 0x9a, 0xe6, 0xa4, 0xc8, 0x0c,
        0xad, 0xcc, 0xbb, 0x7f, 0x0a,
    ];
    const SALT_V2: [u8; 20] = [
        0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93, 0x81, 0xbe, 0x6e, 0x26, 0x9d,
        0xcb, 0xf9, 0xbd, 0x2e, 0xd9,
    ];
    fn label(hk: &hkdf::Hkdf<Sha256>, name: &str, out: &mut [u8]) {
        let full = format!("tls13 {name}");
        let mut info = (out.len() as u16).to_be_bytes().to_vec();
        info.push(full.len() as u8);
        info.extend_from_slice(full.as_bytes());
        info.push(0);
        hk.expand(&info, out).expect("HKDF output length");
    }
    let (salt, prefix) = if v2 {
        (&SALT_V2, "quicv2")
    } else {
        (&SALT_V1, "quic")
    };
    let (_, initial) = hkdf::Hkdf::<Sha256>::extract(Some(salt), &FUZZ_DCID);
    let mut client = [0u8; 32];
    label(&initial, "client in", &mut client);
    let hk = hkdf::Hkdf::<Sha256>::from_prk(&client).expect("PRK length");
    let (mut key, mut iv, mut hp) = ([0u8; 16], [0u8; 12], [0u8; 16]);
    label(&hk, &format!("{prefix} key"), &mut key);
    label(&hk, &format!("{prefix} iv"), &mut iv);
    label(&hk, &format!("{prefix} hp"), &mut hp);
    (key, iv, hp)
}

/// One client Initial packet carrying `plain` (already padded to at least 4 bytes), packet
/// number `pn` in `pn_len` bytes, encrypted and header-protected as RFC 9001 §5 says.
fn quic_seal_initial(v2: bool, pn: u32, pn_len: usize, plain: &[u8], out: &mut Vec<u8>) {
    use aes::cipher::{BlockCipherEncrypt, KeyInit};
    use aes_gcm::aead::{Aead, Payload};
    static KEYS: std::sync::OnceLock<[InitialKeys; 2]> = std::sync::OnceLock::new();
    let (key, iv, hp) =
        &KEYS.get_or_init(|| [quic_client_keys(false), quic_client_keys(true)])[usize::from(v2)];
    let start = out.len();
    let ptype = if v2 { 1 } else { 0 };
    out.push(0xc0 | (ptype << 4) | (pn_len as u8 - 1));
    out.extend_from_slice(&if v2 { 0x6b33_43cfu32 } else { 1u32 }.to_be_bytes());
    out.push(FUZZ_DCID.len() as u8);
    out.extend_from_slice(&FUZZ_DCID);
    out.push(0); // no source connection ID
    out.push(0); // no token
    let len = pn_len + plain.len() + 16;
    if len < 0x4000 {
        out.extend_from_slice(&(0x4000 | len as u16).to_be_bytes());
    } else {
        out.extend_from_slice(&(0x8000_0000 | len as u32).to_be_bytes());
    }
    let pn_at = out.len() - start;
    out.extend_from_slice(&pn.to_be_bytes()[4 - pn_len..]);
    let mut nonce = *iv;
    for (n, b) in nonce[8..].iter_mut().zip(pn.to_be_bytes()) {
        *n ^= b;
    }
    let aead = aes_gcm::Aes128Gcm::new_from_slice(key).expect("key length");
    let sealed = aead
        .encrypt(
            &aes_gcm::Nonce::try_from(&nonce[..]).expect("nonce length"),
            Payload {
                msg: plain,
                aad: &out[start..],
            },
        )
        .expect("AES-GCM seals any length here");
    out.extend_from_slice(&sealed);
    let p = &mut out[start..];
    let mut mask = aes::Block::try_from(&p[pn_at + 4..pn_at + 20]).expect("sample length");
    aes::Aes128::new_from_slice(hp)
        .expect("key length")
        .encrypt_block(&mut mask);
    p[0] ^= mask[0] & 0x0f;
    for i in 0..pn_len {
        p[pn_at + i] ^= mask[1 + i];
    }
}

/// A reference reading of the CRYPTO stream, written from RFC 9000 §19 without looking at
/// `tls::quic`'s: the bytes at each offset (below 16 KiB, as that keeps), whether two frames
/// disagreed about a byte, whether every frame started at or before the end of what was
/// contiguous when it came, and whether a frame was one whose handling is a policy choice.
struct CryptoModel {
    bytes: Vec<Option<u8>>,
    filled: usize,
    conflict: bool,
    in_order: bool,
    policy: bool,
}

impl CryptoModel {
    const KEPT: usize = 16 * 1024;

    /// Where the first missing byte is (`filled` only moves forward, so this stays cheap).
    fn contiguous(&mut self) -> usize {
        while self.filled < self.bytes.len() && self.bytes[self.filled].is_some() {
            self.filled += 1;
        }
        self.filled
    }

    fn packet(&mut self, f: &[u8]) {
        fn vi(f: &[u8], at: &mut usize) -> Option<u64> {
            let first = *f.get(*at)?;
            let n = 1usize << (first >> 6);
            let b = f.get(*at..*at + n)?;
            *at += n;
            Some(
                b[1..]
                    .iter()
                    .fold(u64::from(first & 0x3f), |v, &x| v << 8 | u64::from(x)),
            )
        }
        let mut at = 0;
        while at < f.len() {
            let Some(kind) = vi(f, &mut at) else { return };
            match kind {
                0x00 | 0x01 => {}
                0x02 | 0x03 => {
                    let (Some(_), Some(_), Some(ranges), Some(_)) = (
                        vi(f, &mut at),
                        vi(f, &mut at),
                        vi(f, &mut at),
                        vi(f, &mut at),
                    ) else {
                        return;
                    };
                    if ranges > 256 {
                        // How many ranges a reader walks before giving up is its choice.
                        self.policy = true;
                        return;
                    }
                    for _ in 0..ranges * 2 + if kind == 0x03 { 3 } else { 0 } {
                        if vi(f, &mut at).is_none() {
                            return;
                        }
                    }
                }
                0x06 => {
                    let (Some(off), Some(len)) = (vi(f, &mut at), vi(f, &mut at)) else {
                        return;
                    };
                    let Some(data) = usize::try_from(len)
                        .ok()
                        .and_then(|l| f.get(at..at.checked_add(l)?))
                    else {
                        return;
                    };
                    at += data.len();
                    if off > self.contiguous() as u64 {
                        self.in_order = false;
                    }
                    for (i, &b) in data.iter().enumerate() {
                        let Some(o) = usize::try_from(off).ok().and_then(|o| o.checked_add(i))
                        else {
                            break;
                        };
                        if o >= Self::KEPT {
                            break;
                        }
                        match &mut self.bytes[o] {
                            Some(x) if *x != b => self.conflict = true,
                            slot => *slot = Some(b),
                        }
                    }
                }
                // Anything else ends the packet (CONNECTION_CLOSE, or a frame not allowed in
                // an Initial: a protocol error); whether later frames count is a choice.
                _ => {
                    self.policy = at < f.len();
                    return;
                }
            }
        }
    }

    /// The ClientHello in the contiguous prefix, parsed as the TCP path parses one.
    fn client_hello(&mut self) -> Option<crate::tls::handshake::ClientHello> {
        let n = self.contiguous();
        let c: Vec<u8> = self.bytes[..n].iter().map(|b| b.unwrap_or(0)).collect();
        if c.len() < 4 || c[0] != crate::tls::handshake::msg::CLIENT_HELLO {
            return None;
        }
        let len = (usize::from(c[1]) << 16) | (usize::from(c[2]) << 8) | usize::from(c[3]);
        crate::tls::handshake::parse_client_hello(c.get(4..4 + len)?)
    }
}

/// After QUIC decryption: the input is the plaintext of client Initial packets, each a control
/// byte, a u16 big-endian length and that many bytes of frames. This encrypts each as a real
/// Initial (keys from RFC 9001's connection ID; control bits 0–1: packet-number length − 1,
/// bit 2: coalesce into the previous datagram, bit 3 of the first packet: QUIC v2), feeds the
/// datagrams to [`crate::tls::quic::QuicInitials`] and checks it against [`CryptoModel`]:
/// - every packet sealed correctly decrypts (none refused, the first always read);
/// - a ClientHello is reported only if the CRYPTO data holds exactly that one (unless two
///   frames disagreed about a byte);
/// - when frames came in order and agree, the ClientHello is reported exactly when the data
///   holds a complete one, and it equals the TCP path's parse of the same bytes;
/// - its JA4 has the QUIC prefix and three parts.
///
/// Returns the ClientHello read, so tests can check that real ones are reached.
pub fn check_quic_crypto(data: &[u8]) -> Option<crate::tls::handshake::ClientHello> {
    const MAX_PACKETS: usize = 64;
    let v2 = data.first().is_some_and(|c| c & 0x08 != 0);
    let mut datagrams: Vec<Vec<u8>> = Vec::new();
    let mut model = CryptoModel {
        bytes: vec![None; CryptoModel::KEPT],
        filled: 0,
        conflict: false,
        in_order: true,
        policy: false,
    };
    let mut rest = data;
    let mut sealed = 0u32;
    while let Some((&[ctl, a, b], tail)) = rest.split_first_chunk::<3>() {
        if sealed as usize == MAX_PACKETS {
            break;
        }
        let len = usize::from(u16::from_be_bytes([a, b])).min(tail.len());
        let (frames, after) = tail.split_at(len);
        rest = after;
        // Header protection samples 16 bytes from 4 after the packet number: pad to allow it.
        let mut plain = frames.to_vec();
        plain.resize(plain.len().max(4), 0);
        let pn_len = usize::from(ctl & 3) + 1;
        let pn = sealed & (u32::MAX >> (32 - 8 * pn_len));
        if ctl & 0x04 == 0 || datagrams.is_empty() {
            datagrams.push(Vec::new());
        }
        quic_seal_initial(
            v2,
            pn,
            pn_len,
            &plain,
            datagrams.last_mut().expect("pushed"),
        );
        model.packet(&plain);
        sealed += 1;
    }
    let mut q = crate::tls::quic::QuicInitials::default();
    for d in &datagrams {
        q.client_datagram(d);
    }
    assert_eq!(q.undecryptable, 0, "a correctly sealed Initial was refused");
    assert!(q.decrypted <= sealed);
    if sealed > 0 {
        assert!(q.decrypted >= 1, "the first Initial did not decrypt");
    }
    let got = q.client_hello();
    if model.policy {
        return got;
    }
    let want = model.client_hello();
    if !model.conflict {
        if let Some(ch) = &got {
            assert_eq!(
                Some(ch),
                want.as_ref(),
                "a ClientHello the CRYPTO data does not hold"
            );
        }
        if model.in_order && q.decrypted == sealed {
            assert_eq!(
                got, want,
                "CRYPTO data in order, but the ClientHello differs"
            );
        }
    }
    if let Some(ch) = &got {
        let ja4 = crate::tls::ja4::ja4(ch, true);
        assert!(ja4.starts_with('q') && ja4.split('_').count() == 3, "{ja4}");
    }
    got
}
