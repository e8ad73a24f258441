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
