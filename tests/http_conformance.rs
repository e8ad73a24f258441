//! Role: HTTP/1.x and h2c requests and sensitive headers against tshark's truth on the public corpus: every
//! request tshark lists (method, path, Host) is reported in order, and every sensitive header
//! it names (Authorization with its scheme, Cookie, Set-Cookie) is flagged — by name, never by
//! value. h2c rows (`h2:GET / authority=...`) are compared the same way with `:authority`.

mod common;

use meshsniff::analyze::analyze_bytes;
use meshsniff::flow::FlowConfig;
use std::collections::BTreeSet;

#[test]
fn every_request_and_sensitive_header_tshark_sees_is_reported() {
    let Some(shared) = common::shared_or_skip("http_conformance") else {
        return;
    };
    let public = shared.join("captures-public");
    let (mut requests, mut failures) = (0, Vec::new());
    for entry in std::fs::read_dir(public.join("truth")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.ends_with(".tsv") || name.ends_with(".decrypted.tsv") {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let capture = text
            .lines()
            .find_map(|l| l.strip_prefix("# capture: "))
            .unwrap()
            .trim()
            .to_string();
        let mut lines = text.lines().filter(|l| !l.starts_with('#'));
        let header: Vec<&str> = lines.next().unwrap_or("").split('\t').collect();
        let col = |row: &[&str], name: &str| -> String {
            let i = header.iter().position(|h| *h == name).unwrap();
            row.get(i).copied().unwrap_or("").to_string()
        };
        let rows: Vec<Vec<&str>> = lines.map(|l| l.split('\t').collect()).collect();
        if rows.iter().all(|r| col(r, "http_requests").is_empty()) {
            continue;
        }
        let (flows, _) =
            analyze_bytes(&common::read(&public.join(&capture)), FlowConfig::default());
        for row in &rows {
            let want_reqs: Vec<String> = col(row, "http_requests")
                .split(" | ")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if want_reqs.is_empty() {
                continue;
            }
            let Some(flow) = flows
                .iter()
                .find(|f| f.client == col(row, "client") && f.server == col(row, "server"))
            else {
                failures.push(format!("{capture}: flow {} missing", col(row, "client")));
                continue;
            };
            let Some(http) = &flow.http else {
                failures.push(format!("{capture}: {}: no http facts", flow.client));
                continue;
            };
            let ours: Vec<String> = http
                .requests
                .iter()
                .map(|r| {
                    if r.version == "2" {
                        format!(
                            "h2:{} {} authority={}",
                            r.method,
                            r.path,
                            r.host.as_deref().unwrap_or("")
                        )
                    } else {
                        format!(
                            "{} {} host={}",
                            r.method,
                            r.path,
                            r.host.as_deref().unwrap_or("")
                        )
                    }
                })
                .collect();
            if ours != want_reqs {
                failures.push(format!(
                    "{capture}: requests {ours:?}, tshark {want_reqs:?}"
                ));
            }
            requests += want_reqs.len();
            // Sensitive header names, in tshark's spelling.
            let mut mine = BTreeSet::new();
            for s in http
                .requests
                .iter()
                .flat_map(|r| &r.sensitive)
                .chain(http.responses.iter().flat_map(|r| &r.sensitive))
            {
                match s.split_once(':') {
                    Some(("authorization", scheme)) => {
                        let mut c = scheme.chars();
                        let cap: String = c
                            .next()
                            .map(|f| f.to_ascii_uppercase())
                            .into_iter()
                            .chain(c)
                            .collect();
                        mine.insert(format!("Authorization={cap}"));
                    }
                    None if s == "cookie" => {
                        mine.insert("Cookie".to_string());
                    }
                    None if s == "set-cookie" => {
                        mine.insert("Set-Cookie".to_string());
                    }
                    _ => {}
                }
            }
            let want: BTreeSet<String> = col(row, "http_sensitive")
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            if mine != want {
                failures.push(format!("{capture}: sensitive {mine:?}, tshark {want:?}"));
            }
        }
    }
    assert!(requests >= 20, "only {requests} requests checked");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Issue 11: after `Upgrade: h2c` (RFC 7540 §3.2) only the HTTP/1.1 request was reported. The
/// capture (captures/record.sh step 8b) is curl --http2 against Go's x/net h2c server: the
/// upgraded request is answered by 101 and then by HTTP/2 on stream 1, and curl's second
/// request goes out as stream 3 on the same connection.
#[test]
fn after_an_h2c_upgrade_stream_1_and_every_later_stream_are_reported() {
    use meshsniff::classify::Protocol;
    let cap = common::repo().join("captures/h2c-upgrade.pcap");
    let (flows, _) = analyze_bytes(&common::read(&cap), FlowConfig::default());
    assert_eq!(flows.len(), 1, "{flows:?}");
    let f = &flows[0];
    assert_eq!(f.protocol, Protocol::H2c);
    let h = f.http.as_ref().expect("http facts");
    assert!(h.h2 && !h.incomplete, "{h:?}");
    let reqs: Vec<(&str, &str, &str)> = h
        .requests
        .iter()
        .map(|r| (&*r.method, r.path.as_str(), &*r.version))
        .collect();
    assert_eq!(
        reqs,
        [
            ("GET", "/first", "1.1"),
            ("GET", "/second?token=<redacted, 16 bytes>", "2")
        ]
    );
    // 101, then stream 1's response (to /first) and stream 3's (to /second), both HTTP/2.
    let statuses: Vec<u16> = h.responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [101, 200, 200]);
    assert_eq!((h.request_count, h.response_count), (2, 3));
    assert_eq!(h.requests[0].sensitive, ["authorization:bearer"]);
    assert_eq!(
        h.requests[1].sensitive,
        ["query:token", "authorization:bearer"]
    );
    // tshark sees the same HTTP/2 streams (decoding the upgraded connection as HTTP/2).
    if common::have("h2c_upgrade", "tshark") {
        // One line per packet, its frames' stream ids comma-separated.
        let streams = common::tshark_fields(&cap, &["http2.streamid"], "http2.type == 1");
        let ids: Vec<&str> = streams.iter().flat_map(|l| l.split(',')).collect();
        assert!(ids.contains(&"1") && ids.contains(&"3"), "{streams:?}");
    }
}
