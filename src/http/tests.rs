//! Role: unit tests of the HTTP/1.x and h2c readers: framing (pipelining, chunked, bodies
//! split anywhere), sensitive items, and that no split of the input changes the result.

use super::*;

fn feed_all(s: &mut HttpStream, d: &[u8], piece: usize) {
    for c in d.chunks(piece.max(1)) {
        s.feed(c);
    }
}

fn run(c2s: &[u8], s2c: &[u8], piece: usize) -> HttpFacts {
    let (mut c, mut s) = (HttpStream::default(), HttpStream::default());
    c.reset(false);
    s.reset(false);
    feed_all(&mut c, c2s, piece);
    feed_all(&mut s, s2c, piece);
    facts(&mut c, &mut s).expect("http")
}

const PIPELINED: &[u8] = b"GET /a HTTP/1.1\r\nHost: h\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n\
POST /login HTTP/1.1\r\nHost: h\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 25\r\n\r\n\
user=bob&password=hunter2\
PUT /c?token=abc HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n\
GET /d HTTP/1.0\r\nCookie: s=1; t=2\r\n\r\n";

const RESPONSES: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSet-Cookie: id=7; Path=/\r\n\r\nhello\
HTTP/1.1 302 Found\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nX-T: 1\r\n\r\n\
HTTP/1.1 204 No Content\r\n\r\n\
HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";

#[test]
fn pipelined_messages_are_all_found_whatever_the_segmentation() {
    let whole = run(PIPELINED, RESPONSES, usize::MAX);
    let methods: Vec<_> = whole.requests.iter().map(|r| &*r.method).collect();
    assert_eq!(methods, ["GET", "POST", "PUT", "GET"]);
    let statuses: Vec<_> = whole.responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 302, 204, 404]);
    assert_eq!(whole.requests[0].sensitive, ["authorization:basic"]);
    assert_eq!(whole.requests[1].sensitive, ["form:password"]);
    assert_eq!(whole.requests[2].sensitive, ["query:token"]);
    assert_eq!(whole.requests[3].sensitive, ["cookie"]);
    assert_eq!(whole.requests[3].version, "1.0");
    assert_eq!(whole.responses[0].sensitive, ["set-cookie"]);
    assert!(!whole.incomplete);
    for e in whole.requests.iter().flat_map(|r| &r.evidence) {
        assert!(!e.contains("hunter2") && !e.contains("dXNlcjpwYXNz"), "{e}");
    }
    for piece in [1, 2, 3, 7, 13, 64] {
        assert_eq!(run(PIPELINED, RESPONSES, piece), whole, "pieces of {piece}");
    }
}

#[test]
fn a_gap_inside_a_body_is_harmless_inside_a_head_it_is_not() {
    let mut s = HttpStream::default();
    s.reset(false);
    s.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    s.skip(90);
    s.feed(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(s.count(), 2);
    s.feed(b"HTTP/1.1 2");
    s.skip(5);
    s.feed(b"HTTP/1.1 200 OK\r\n\r\n");
    assert!(s.parser.as_ref().unwrap().lost_midway);
    assert_eq!(s.count(), 2);
}

#[test]
fn tls_and_binary_are_not_http() {
    let mut s = HttpStream::default();
    s.reset(false);
    s.feed(&[0x16, 3, 1, 0, 5, 1, 0, 0, 1, 0]);
    assert_eq!(s.count(), 0);
    s.reset(false);
    s.feed(b"SSH-2.0-OpenSSH_9.2\r\n");
    assert_eq!(s.count(), 0);
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.extend_from_slice(&[kind, flags]);
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn h2c_prior_knowledge_headers_are_decoded_across_continuations() {
    let mut enc = loona_hpack::Encoder::new();
    let req = enc.encode([
        (&b":method"[..], &b"POST"[..]),
        (b":scheme", b"http"),
        (b":authority", b"svc:8080"),
        (b":path", b"/pkg.Svc/Call"),
        (b"content-type", b"application/grpc"),
        (b"authorization", b"Bearer eyJhbGciOi"),
    ]);
    let req2 = enc.encode([
        (&b":method"[..], &b"GET"[..]),
        (b":scheme", b"http"),
        (b":authority", b"svc:8080"),
        (b":path", b"/x?password=p"),
    ]);
    let mut c2s = PREFACE_BYTES.to_vec();
    c2s.extend(frame(4, 0, 0, &[0, 3, 0, 0, 0, 100]));
    // The first block split over HEADERS (padded, with priority) + CONTINUATION.
    let (a, b) = req.split_at(7);
    let mut p = vec![2u8]; // pad length
    p.extend_from_slice(&[0, 0, 0, 0, 16]);
    p.extend_from_slice(a);
    p.extend_from_slice(&[0, 0]);
    c2s.extend(frame(1, PADDED_FLAG | 0x20, 1, &p));
    c2s.extend(frame(9, 0x4, 1, b));
    c2s.extend(frame(0, 0x1, 1, b"\0\0\0\0\x05hello"));
    c2s.extend(frame(1, 0x5, 3, &req2));
    let mut senc = loona_hpack::Encoder::new();
    let resp = senc.encode([(&b":status"[..], &b"200"[..]), (b"set-cookie", b"a=b")]);
    let mut s2c = frame(4, 0, 0, &[]);
    s2c.extend(frame(1, 0x4, 1, &resp));
    s2c.extend(frame(0, 0x1, 1, b"data"));
    let whole = run(&c2s, &s2c, usize::MAX);
    assert!(whole.h2 && whole.grpc);
    assert_eq!(whole.request_count, 2);
    let r = &whole.requests[0];
    assert_eq!(
        (&*r.method, r.host.as_deref(), r.path.as_str(), &*r.version),
        ("POST", Some("svc:8080"), "/pkg.Svc/Call", "2")
    );
    assert_eq!(r.sensitive, ["authorization:bearer"]);
    assert_eq!(whole.requests[1].sensitive, ["query:password"]);
    assert_eq!(whole.responses[0].status, 200);
    assert_eq!(whole.responses[0].sensitive, ["set-cookie"]);
    for piece in [1, 5, 9, 10, 33] {
        assert_eq!(run(&c2s, &s2c, piece), whole, "pieces of {piece}");
    }
}

const PREFACE_BYTES: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const PADDED_FLAG: u8 = 0x8;

#[test]
fn upgrade_to_h2c_switches_both_directions() {
    let mut enc = loona_hpack::Encoder::new();
    let mut senc = loona_hpack::Encoder::new();
    let mut c2s = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n".to_vec();
    c2s.extend_from_slice(PREFACE_BYTES);
    c2s.extend(frame(4, 0, 0, &[]));
    c2s.extend(frame(
        1,
        0x5,
        3,
        &enc.encode([(&b":method"[..], &b"GET"[..]), (b":path", b"/two")]),
    ));
    let mut s2c =
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n".to_vec();
    s2c.extend(frame(4, 0, 0, &[]));
    s2c.extend(frame(
        1,
        0x5,
        1,
        &senc.encode([(&b":status"[..], &b"200"[..])]),
    ));
    let f = run(&c2s, &s2c, usize::MAX);
    assert!(f.h2);
    let paths: Vec<_> = f.requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, ["/", "/two"]);
    let st: Vec<_> = f.responses.iter().map(|r| r.status).collect();
    assert_eq!(st, [101, 200]);
}

/// The fuzz target's invariants on deterministic mutations of the inputs above (every byte
/// flipped in turn, at several chunk sizes), so they run in every `cargo test`.
#[test]
fn mutated_messages_keep_the_fuzz_invariants() {
    let mut enc = loona_hpack::Encoder::new();
    let mut h2 = PREFACE_BYTES.to_vec();
    h2.extend(frame(
        1,
        0x5,
        1,
        &enc.encode([(&b":method"[..], &b"GET"[..]), (b":path", b"/p")]),
    ));
    for (c, s) in [(PIPELINED, RESPONSES), (&h2[..], &b""[..])] {
        let mut base = (c.len() as u16).to_le_bytes().to_vec();
        base.push(0);
        base.extend_from_slice(c);
        base.extend_from_slice(s);
        for piece in [0u8, 6, 63] {
            base[2] = piece;
            for i in 3..base.len() {
                for flip in [0x01u8, 0x20, 0x80, 0xff] {
                    let mut m = base.clone();
                    m[i] ^= flip;
                    crate::fuzzing::check_http(&m);
                }
            }
        }
    }
}
