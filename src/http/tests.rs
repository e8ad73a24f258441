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
    // Whole and in pieces: the 101 and the first frames may share a segment, or a frame may
    // start in the 101's segment.
    for piece in [usize::MAX, 1, 2, 3, 7, 13, 64, 75, 76, 77] {
        let f = run(&c2s, &s2c, piece);
        assert!(f.h2, "piece {piece}");
        let paths: Vec<_> = f.requests.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(paths, ["/", "/two"], "piece {piece}");
        let st: Vec<_> = f.responses.iter().map(|r| r.status).collect();
        assert_eq!(st, [101, 200], "piece {piece}");
    }
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

/// Issue 11: a head with more than 48 fields, or longer than 16 KiB, was dropped silently
/// (request not reported, its Authorization never found, `incomplete: false`).
#[test]
fn heads_of_any_size_are_reported_with_every_sensitive_header() {
    for (fields, filler) in [(49usize, 8usize), (200, 8), (40, 600), (3000, 30)] {
        let mut head = b"GET /big?password=s3cr3t-VALUE-123 HTTP/1.1\r\nHost: h\r\n".to_vec();
        for i in 0..fields {
            head.extend(format!("X-Filler-{i}: {}\r\n", "f".repeat(filler)).bytes());
        }
        head.extend_from_slice(b"Authorization: Bearer s3cr3t-TOKEN-456\r\nCookie: a=b\r\n\r\n");
        head.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n");
        let resp: &[u8] = b"HTTP/1.1 204 No Content\r\n\r\n";
        for piece in [usize::MAX, 1400, 7] {
            let f = run(&head, resp, piece);
            let paths: Vec<_> = f.requests.iter().map(|r| r.path.as_str()).collect();
            assert_eq!(
                paths,
                ["/big?password=<redacted, 16 bytes>", "/next"],
                "{fields}x{filler} in pieces of {piece}"
            );
            assert_eq!(
                f.requests[0].sensitive,
                ["query:password", "authorization:bearer", "cookie"],
                "{fields}x{filler} in pieces of {piece}"
            );
            assert!(!f.incomplete, "nothing was cut");
            assert!(!format!("{f:?}").contains("s3cr3t"));
        }
    }
}

#[test]
fn a_line_longer_than_the_cap_is_cut_reported_and_flagged() {
    let mut head = b"GET /a HTTP/1.1\r\nX-Long: ".to_vec();
    head.extend(std::iter::repeat_n(b'x', 100_000));
    head.extend_from_slice(b"\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n");
    let f = run(&head, b"", 1000);
    assert_eq!(f.requests.len(), 1);
    assert_eq!(f.requests[0].sensitive, ["authorization:basic"]);
    assert!(f.incomplete && f.truncated == 1);
    // A head that never ends is still reported, as far as it got, when the flow ends.
    let mut endless = b"POST /upload HTTP/1.1\r\nAuthorization: Basic eDp5\r\n".to_vec();
    for i in 0..10_000 {
        endless.extend(format!("X-{i}: y\r\n").bytes());
    }
    let mut c = HttpStream::default();
    c.reset(false);
    feed_all(&mut c, &endless, 1448);
    let buf = c.parser.as_ref().unwrap().buf.capacity();
    assert!(buf <= MAX_LINE, "line buffer grew to {buf}");
    let f = facts(&mut c, &mut HttpStream::default()).unwrap();
    assert_eq!(f.requests[0].path, "/upload");
    assert_eq!(f.requests[0].sensitive, ["authorization:basic"]);
    assert!(f.incomplete);
}

#[test]
fn credentials_in_targets_are_redacted_and_named() {
    let req = b"GET http://alice:s3cr3t-USERINFO@proxy.test:8080/p?q=1&Access_Token=s3cr3t-A;api-key=s3cr3t-B&pass%77ord=s3cr3t-C#sig=s3cr3t-D HTTP/1.1\r\nHost: bob:s3cr3t-HOST@h\r\n\r\n";
    let f = run(req, b"", usize::MAX);
    let r = &f.requests[0];
    assert_eq!(
        r.path,
        "http://<redacted, 21 bytes>@proxy.test:8080/p?q=1&Access_Token=<redacted, 8 bytes>;\
         api-key=<redacted, 8 bytes>&pass%77ord=<redacted, 8 bytes>#sig=<redacted, 8 bytes>"
    );
    assert_eq!(r.host.as_deref(), Some("<redacted, 15 bytes>@h"));
    assert_eq!(
        r.sensitive,
        [
            "userinfo",
            "query:access_token",
            "query:api-key",
            "query:pass%77ord",
            "query:sig"
        ]
    );
    assert!(!format!("{f:?}").contains("s3cr3t"), "{f:?}");
    // Shown when asked for.
    let (mut c, mut s) = (HttpStream::default(), HttpStream::default());
    c.reset(true);
    s.reset(true);
    c.feed(req);
    let f = facts(&mut c, &mut s).unwrap();
    assert!(f.requests[0].path.contains("alice:s3cr3t-USERINFO@"));
    assert!(f.requests[0].path.contains("Access_Token=s3cr3t-A;"));
}

/// Issue 11: h2c header blocks grew without limit (CONTINUATION after CONTINUATION).
#[test]
fn endless_continuation_frames_stay_within_the_block_cap() {
    let mut enc = loona_hpack::Encoder::new();
    let block = enc.encode([
        (&b":method"[..], &b"GET"[..]),
        (b":path", b"/c?token=s3cr3t-H2"),
        (b"authorization", b"Bearer s3cr3t-H2-BEARER"),
    ]);
    let mut c = HttpStream::default();
    c.reset(false);
    c.feed(PREFACE_BYTES);
    c.feed(&frame(1, 0, 1, &block));
    let filler = frame(9, 0, 1, &[0x40; 16_000]);
    let mut max = 0;
    for _ in 0..2000 {
        // 32 MB of CONTINUATION, none of it ending the block.
        c.feed(&filler);
        let p = c.parser.as_ref().unwrap();
        let cap = p.h2.as_ref().unwrap().block_capacity() + p.buf.capacity();
        max = max.max(cap);
    }
    assert!(max <= h2::MAX_BLOCK, "h2 buffers grew to {max} bytes");
    c.feed(&frame(9, 0x4, 1, &[0x40]));
    let f = facts(&mut c, &mut HttpStream::default()).unwrap();
    // Decoded as far as the cap: the request and its credentials, truncated and incomplete.
    assert_eq!(f.requests.len(), 1);
    assert_eq!(f.requests[0].path, "/c?token=<redacted, 9 bytes>");
    assert_eq!(
        f.requests[0].sensitive,
        ["query:token", "authorization:bearer"]
    );
    assert!(f.incomplete && f.truncated == 1);
}

#[test]
fn credentials_beyond_the_listed_messages_are_still_found() {
    // Beyond MAX_MESSAGES (short paths) and beyond MAX_KEPT (long paths, few messages).
    for (n, len) in [(200, 1), (30, 2000)] {
        let mut c2s = Vec::new();
        for i in 0..n {
            c2s.extend(format!("GET /{i}/{} HTTP/1.1\r\nHost: h\r\n\r\n", "p".repeat(len)).bytes());
        }
        c2s.extend_from_slice(b"GET /late HTTP/1.1\r\nAuthorization: Bearer s3cr3t-LATE\r\n\r\n");
        let f = run(&c2s, b"", usize::MAX);
        assert_eq!(f.request_count, n as u64 + 1);
        assert!(f.requests.len() < n, "{} listed", f.requests.len());
        assert_eq!(f.unlisted_sensitive, ["authorization:bearer"]);
        assert_eq!(
            f.sensitive().collect::<Vec<_>>(),
            [(
                "authorization:bearer",
                "Authorization: Bearer <redacted, 11 bytes>"
            )]
        );
        let kept: usize = f.requests.iter().map(|r| r.path.len()).sum();
        assert!(kept <= MAX_KEPT, "{kept} bytes of paths kept");
    }
}

/// What one direction's reader holds on the heap, counted from its buffers' capacities.
fn heap_bytes(s: &HttpStream) -> usize {
    let Some(p) = s.parser.as_deref() else {
        return 0;
    };
    let strings = |v: &[String]| v.iter().map(String::capacity).sum::<usize>() + v.len() * 24;
    let req: usize = p
        .kept
        .requests
        .iter()
        .map(|r| {
            r.path.capacity()
                + r.host.as_ref().map_or(0, String::capacity)
                + strings(&r.sensitive)
                + strings(&r.evidence)
        })
        .sum();
    let resp: usize = p
        .kept
        .responses
        .iter()
        .map(|r| strings(&r.sensitive) + strings(&r.evidence))
        .sum();
    let items = |v: &[Sensitive]| {
        v.iter()
            .map(|i| i.label.len() + i.evidence.capacity() + 48)
            .sum::<usize>()
    };
    p.buf.capacity()
        + p.h2.as_ref().map_or(0, |h| h.block_capacity())
        + p.head.path.capacity()
        + p.head.method.capacity()
        + p.head.host.as_ref().map_or(0, String::capacity)
        + req
        + resp
        + p.kept.requests.capacity() * std::mem::size_of::<HttpRequest>()
        + p.kept.responses.capacity() * std::mem::size_of::<HttpResponse>()
        + items(&p.kept.unlisted)
        + items(&p.scratch)
}

/// The bound holds in practice: a head of a million bytes with ten thousand fields, and a
/// hundred keep-alive requests with credentials in their targets and headers, keep the
/// reader within `HEAP_PER_DIRECTION`.
#[test]
fn a_hostile_direction_keeps_its_buffers_within_the_caps() {
    let mut s = HttpStream::default();
    s.reset(false);
    s.feed(b"GET /?");
    let long = vec![b'a'; 64 * 1024];
    for _ in 0..16 {
        s.feed(&long);
    }
    s.feed(b" HTTP/1.1\r\n");
    let mut max = 0;
    for i in 0..10_000 {
        s.feed(
            format!(
                "X-H{i}: {}\r\nAuthorization: Bearer {i}{}\r\n",
                "v".repeat(100),
                "t".repeat(600)
            )
            .as_bytes(),
        );
        max = max.max(heap_bytes(&s));
    }
    s.feed(b"\r\n");
    for i in 0..100 {
        let q = format!("password={}&token={i}", "p".repeat(2000));
        s.feed(
            format!(
                "GET /{}?{q} HTTP/1.1\r\nHost: {}\r\nCookie: a={}\r\n\r\n",
                "x".repeat(4000),
                "h".repeat(900),
                "c".repeat(700)
            )
            .as_bytes(),
        );
        max = max.max(heap_bytes(&s));
    }
    assert!(
        max > 16 * 1024,
        "the shape did not load the reader ({max} bytes)"
    );
    assert!(max <= HEAP_PER_DIRECTION, "{max} > {HEAP_PER_DIRECTION}");
}

/// Found by the `http` fuzz target (fuzz/regressions/): an `Authorization` value with a bare
/// CR and bytes that are not UTF-8 had its evidence printed from the raw value.
#[test]
fn fuzz_regression_authorization_evidence_is_always_redacted() {
    crate::fuzzing::check_http(include_bytes!(
        "../../fuzz/regressions/http-evidence-of-a-cut-authorization.bin"
    ));
}

/// Found by the `http` fuzz target in CI's smoke run (fuzz/regressions/): a credential
/// parameter after a second `#` in the fragment (`/a?x#…##token=x`) was kept in clear.
#[test]
fn fuzz_regression_a_token_after_a_second_hash_is_redacted() {
    crate::fuzzing::check_http(include_bytes!(
        "../../fuzz/regressions/http-token-after-a-second-hash.bin"
    ));
}

/// The class behind it: every `#` in the fragment separates parameters, so the token is
/// redacted and named whatever comes before it.
#[test]
fn a_token_after_a_second_hash_in_the_fragment_is_redacted() {
    let rules = super::sensitive::Rules::default();
    for target in [
        "/a?x#y#token=s3cr3t",
        "/a#y#token=s3cr3t",
        "/a?q=1##token=s3cr3t",
    ] {
        let mut out = Vec::new();
        let shown = rules.target(target.as_bytes(), &mut out);
        assert!(!shown.contains("s3cr3t"), "{target}: {shown}");
        assert!(
            shown.ends_with("token=<redacted, 6 bytes>"),
            "{target}: {shown}"
        );
        assert!(
            out.iter().any(|s| s.label == "query:token"),
            "{target}: {out:?}"
        );
    }
}

/// The class behind the fuzz finding above: an `Authorization` value whose first word is not
/// a known scheme (a bare API key, or a secret with a space in it) was shown as the "scheme",
/// in the label and the evidence, without `--show-secrets`.
#[test]
fn an_authorization_value_without_a_known_scheme_is_redacted_whole() {
    for (value, label, shown) in [
        (
            "s3cr3t-RAW-KEY",
            "authorization:other",
            "Authorization: <redacted, 14 bytes>",
        ),
        (
            "s3cr3t-A s3cr3t-B",
            "authorization:other",
            "Authorization: <redacted, 17 bytes>",
        ),
        (
            "Bearer s3cr3t-T",
            "authorization:bearer",
            "Authorization: Bearer <redacted, 8 bytes>",
        ),
        (
            "token s3cr3t-G",
            "authorization:token",
            "Authorization: token <redacted, 8 bytes>",
        ),
        (
            "NTLM",
            "authorization:ntlm",
            "Authorization: NTLM <redacted, 0 bytes>",
        ),
    ] {
        let mut out = Vec::new();
        sensitive::Rules { reveal: false }.header(b"Authorization", value.as_bytes(), &mut out);
        assert_eq!(out.len(), 1, "{value}");
        assert_eq!(out[0].label, label, "{value}");
        assert_eq!(out[0].evidence, shown, "{value}");
        assert!(!out[0].label.contains("s3cr3t") && !out[0].evidence.contains("s3cr3t"));
    }
}
