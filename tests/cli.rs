//! The command-line contract: pipes, several inputs, output formats, exit codes, colour and
//! progress only on a terminal, a closed stdout pipe ending the run quietly.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs a shell command under `script`, which gives it a pseudo-terminal; returns what the
/// terminal showed.
fn on_a_terminal(cmd: &str) -> String {
    let out = Command::new("script")
        .args(["-qec", cmd, "/dev/null"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sample(name: &str) -> String {
    common::repo()
        .join("captures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn reads_a_capture_from_a_pipe_like_from_a_file() {
    let path = sample("content-not-port.pcap");
    let from_file =
        common::parse_jsonl(&common::run(&["analyze", "--format", "jsonl", &path]).stdout);
    let mut child = Command::new(common::bin())
        .args(["analyze", "--format", "jsonl", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let bytes = common::read(path.as_ref());
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // Small writes, like tcpdump -U: the reader must cope with short reads.
        for chunk in bytes.chunks(97) {
            stdin.write_all(chunk).unwrap();
        }
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "two leaks: FAIL, like from the file"
    );
    let from_pipe = common::parse_jsonl(&out.stdout);
    assert_eq!(from_pipe.0.len(), from_file.0.len());
    for (a, b) in from_pipe.0.iter().zip(&from_file.0) {
        assert_eq!(
            (&a.client, &a.server, a.protocol, a.bytes),
            (&b.client, &b.server, b.protocol, b.bytes)
        );
        assert_eq!(&*a.file, "-");
    }
}

#[test]
fn several_inputs_share_one_id_space_and_one_summary() {
    let a = sample("tls13-openssl.pcap");
    let b = sample("content-not-port.pcap");
    let out = common::run(&["analyze", "--format", "jsonl", &a, &b]);
    let (flows, summary) = common::parse_jsonl(&out.stdout);
    assert_eq!(flows.len(), 5);
    let ids: Vec<u64> = flows.iter().map(|f| f.id).collect();
    assert_eq!(ids, vec![0, 1, 2, 3, 4]);
    assert_eq!(summary.files, vec![a.clone(), b.clone()]);
    assert_eq!(summary.flows, 5);
    assert_eq!(summary.protocols.tls, 2);
    assert_eq!(&*flows[0].file, a.as_str());
}

#[test]
fn json_document_format_is_one_valid_document() {
    let out = common::run(&[
        "analyze",
        "--format",
        "json",
        &sample("two-interfaces.pcapng"),
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON document");
    assert_eq!(v["flows"].as_array().unwrap().len(), 2);
    assert_eq!(v["summary"]["flows"], 2);
    assert_eq!(v["flows"][0]["interface"], "veth-s");
}

#[test]
fn table_on_a_pipe_has_no_colour_and_no_progress() {
    let out = common::run(&["analyze", &sample("content-not-port.pcap")]);
    assert_eq!(out.status.code(), Some(1), "two leaks: FAIL");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\x1b'), "colour codes on a pipe");
    assert!(
        text.contains("PROTO") && text.contains("4 flows (tls 1, http 1, other 1, empty 1)"),
        "{text}"
    );
    assert!(
        out.stderr.is_empty(),
        "stderr on a pipe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let forced = common::run(&[
        "analyze",
        "--color",
        "always",
        &sample("content-not-port.pcap"),
    ]);
    assert!(String::from_utf8_lossy(&forced.stdout).contains("\x1b[32mtls"));
}

#[test]
fn progress_shows_on_a_terminal_and_not_with_quiet() {
    if !common::have("progress_on_a_terminal", "script") {
        return;
    }
    let path = sample("http-python-curl.pcap");
    let bin = common::bin();
    // `script` gives the command a pseudo-terminal; stdout goes to /dev/null so only the
    // progress (stderr) reaches the transcript.
    let run = |extra: &str| {
        on_a_terminal(&format!(
            "{} analyze {extra} {path} >/dev/null",
            bin.display()
        ))
    };
    let shown = run("");
    assert!(
        shown.contains("packets") && shown.contains("1 flow"),
        "no progress on a tty: {shown:?}"
    );
    let quiet = run("--quiet");
    assert!(
        !quiet.contains("packets"),
        "progress despite --quiet: {quiet:?}"
    );
}

#[test]
fn missing_file_exits_2_naming_it_before_any_output() {
    let out = common::run(&[
        "analyze",
        &sample("tls13-openssl.pcap"),
        "/nonexistent/x.pcap",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "output before the usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot open /nonexistent/x.pcap"), "{err}");
    let usage = common::run(&["analyze", "--format", "xml", "x"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn closed_stdout_pipe_ends_quietly() {
    let path = sample("content-not-port.pcap");
    let mut args = vec!["analyze".to_string(), "--format".into(), "jsonl".into()];
    args.extend(std::iter::repeat_n(path, 400)); // ~1600 records: more than a pipe buffer
    let mut child = Command::new(common::bin())
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 64];
    std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn colour_is_automatic_on_a_terminal_and_off_with_no_color() {
    if !common::have("colour_on_a_terminal", "script") {
        return;
    }
    let path = sample("content-not-port.pcap");
    let bin = common::bin();
    let run = |env: &str| on_a_terminal(&format!("{env} {} analyze --quiet {path}", bin.display()));
    assert!(run("").contains("\x1b[32mtls"), "no colour on a terminal");
    assert!(
        !run("NO_COLOR=1").contains("\x1b[32m"),
        "colour despite NO_COLOR"
    );
}

// ---- issue 11: the last line tells the truth ----------------------------------------------

/// The last non-empty line of `out`.
fn last_line(out: &[u8]) -> String {
    String::from_utf8_lossy(out)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_default()
        .to_string()
}

/// The summary object of `--format jsonl` or `--format json` output, as JSON.
fn summary_json(format: &str, out: &[u8]) -> serde_json::Value {
    if format == "json" {
        let v: serde_json::Value = serde_json::from_slice(out).expect("one JSON document");
        return v["summary"].clone();
    }
    let line = last_line(out);
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["type"], "summary", "{line}");
    v
}

/// Runs `args` (a command and its flags; the format is added) in every format and asserts that
/// the table's last line, the JSON summaries' `answer` and the exit code agree with `want`
/// (`PASS`, `FAIL`, ...) and `code`. Returns the JSON summary.
fn agrees(args: &[&str], want: &str, code: i32) -> serde_json::Value {
    let mut json = serde_json::Value::Null;
    for format in ["table", "jsonl", "json"] {
        let mut a: Vec<&str> = args.to_vec();
        a.extend(["--format", format]);
        let out = common::run(&a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{a:?}: {err}");
        let answer = if format == "table" {
            last_line(&out.stdout)
        } else {
            json = summary_json(format, &out.stdout);
            json["answer"].as_str().unwrap_or_default().to_string()
        };
        assert!(
            answer.starts_with(&format!("{want}:")),
            "{a:?}: the answer is `{answer}`, expected {want} with exit {code}"
        );
        if code != 0 {
            assert!(
                !answer.starts_with("PASS"),
                "{a:?}: exit {code} after `{answer}`"
            );
        }
    }
    json
}

#[test]
fn check_fail_on_tls_ends_with_fail_and_names_the_rule_in_the_summary() {
    let cap = sample("tls13-openssl.pcap");
    let s = agrees(&["check", "-q", "--fail-on", "tls", &cap], "FAIL", 1);
    let check = &s["check"];
    assert_eq!(check["result"], "fail", "{s}");
    assert_eq!(check["fail_on"], serde_json::json!(["tls"]), "{s}");
    assert_eq!(check["failed_rules"]["tls"], 1, "{s}");
    assert_eq!(check["expectations_failed"], serde_json::json!([]), "{s}");
}

#[test]
fn check_fail_on_nothing_passes_and_its_last_line_says_pass() {
    let cap = sample("content-not-port.pcap");
    let s = agrees(&["check", "-q", "--fail-on", "", &cap], "PASS", 0);
    assert_eq!(s["check"]["result"], "pass", "{s}");
    assert_eq!(s["check"]["fail_on"], serde_json::json!([]), "{s}");
    // Nothing is hidden: the leaks are still counted in the line.
    assert!(
        s["answer"].as_str().unwrap().contains("2 plaintext-leak"),
        "{s}"
    );
}

#[test]
fn analyze_exits_1_when_its_answer_is_fail_and_0_when_pass() {
    let s = agrees(&["analyze", &sample("content-not-port.pcap")], "FAIL", 1);
    assert_eq!(s["check"]["result"], "fail", "{s}");
    assert_eq!(
        s["check"]["fail_on"],
        serde_json::json!(["plaintext-leak", "sidecar-bypass"]),
        "analyze judges by check's default rules: {s}"
    );
    assert_eq!(s["check"]["failed_rules"]["plaintext-leak"], 2, "{s}");
    let s = agrees(&["analyze", &sample("tls13-mtls-ok.pcap")], "PASS", 0);
    assert_eq!(s["check"]["result"], "pass", "{s}");
    let s = agrees(&["check", &sample("tls13-mtls-ok.pcap")], "PASS", 0);
    assert_eq!(s["check"]["result"], "pass", "{s}");
}

#[test]
fn an_input_that_is_not_a_capture_exits_2_with_no_pass_line() {
    let dir = std::env::temp_dir().join(format!("meshsniff-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let notes = dir.join("notes.txt");
    std::fs::write(
        &notes,
        "12:00:00.000000 IP 10.0.0.1.443 > 10.0.0.2.5000: Flags [S]\n",
    )
    .unwrap();
    let notes = notes.to_str().unwrap();
    for cmd in ["analyze", "check"] {
        let s = agrees(&[cmd, "-q", notes], "ERROR", 2);
        assert_eq!(s["check"]["result"], "error", "{s}");
    }
    // Beside a good capture too: one unreadable input is an error, not a pass.
    agrees(
        &["check", "-q", &sample("tls13-mtls-ok.pcap"), notes],
        "ERROR",
        2,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_capture_with_no_packets_or_no_flow_is_no_data_not_a_pass() {
    let dir = std::env::temp_dir().join(format!("meshsniff-nodata-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A real capture's file header alone: a valid capture of zero packets.
    let empty = dir.join("empty.pcap");
    std::fs::write(
        &empty,
        &common::read(sample("tls13-openssl.pcap").as_ref())[..24],
    )
    .unwrap();
    let empty = empty.to_str().unwrap();
    for cmd in ["analyze", "check"] {
        let s = agrees(&[cmd, "-q", empty], "NO DATA", 1);
        assert_eq!(s["check"]["result"], "no-data", "{s}");
        assert!(s["answer"].as_str().unwrap().contains("0 packets"), "{s}");
    }
    let out = common::run(&["analyze", empty]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("warning") && err.contains("interface or filter"),
        "{err}"
    );
    // Packets, but neither TCP nor QUIC: the ARP and ICMPv6 of a real capture.
    if common::have("no_flow_capture", "tcpdump") {
        let noflow = dir.join("noflow.pcap");
        let st = Command::new("tcpdump")
            .args(["-r", &sample("mesh-server.pcapng"), "-w"])
            .arg(&noflow)
            .arg("not tcp and not udp")
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
        let s = agrees(&["check", "-q", noflow.to_str().unwrap()], "NO DATA", 1);
        let answer = s["answer"].as_str().unwrap();
        // How many, and of which kind, varies between recordings (router solicitations, MLD
        // reports): count them with tcpdump.
        let count = |filter: &str| {
            let out = Command::new("tcpdump")
                .args(["-nr", noflow.to_str().unwrap(), filter])
                .stderr(Stdio::null())
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).lines().count()
        };
        // IPv6 here is all ICMPv6 (MLD reports behind a hop-by-hop header, which libpcap's
        // `icmp6` does not look past).
        let (all, arp, icmp6) = (count(""), count("arp"), count("ip6"));
        assert!(all > 0 && arp > 0 && icmp6 > 0, "{all} {arp} {icmp6}");
        assert!(
            answer.contains(&format!("{all} packets"))
                && answer.contains(&format!("icmpv6 {icmp6}, arp {arp}")),
            "{answer}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn summary_verdicts_are_spelled_like_the_kinds_and_keep_the_old_keys() {
    let out = common::run(&[
        "analyze",
        "--format",
        "jsonl",
        &sample("content-not-port.pcap"),
    ]);
    let s = summary_json("jsonl", &out.stdout);
    let v = &s["verdicts"];
    assert_eq!(v["plaintext-leak"], 2, "{v}");
    assert_eq!(v["plaintext-expected"], 0, "{v}");
    assert_eq!(v["sidecar-bypass"], 0, "{v}");
    // Deprecated, kept for one release (docs/schema.md).
    assert_eq!(v["plaintext_leak"], 2, "{v}");
}

#[test]
fn check_expect_alone_decides_when_given() {
    // The README's example: expectations that describe leaks pass without `--fail-on ""`.
    let cap = common::repo().join("captures/mesh-server-eth0.pcap");
    let exp = common::repo().join("captures/mesh/mesh-server-eth0.pcap.expect.json");
    let s = agrees(
        &[
            "check",
            "-q",
            "--profile",
            "istio",
            "--expect",
            exp.to_str().unwrap(),
            cap.to_str().unwrap(),
        ],
        "PASS",
        0,
    );
    assert_eq!(s["check"]["fail_on"], serde_json::json!([]), "{s}");
    assert_eq!(s["check"]["expect"], exp.to_str().unwrap(), "{s}");
    // Both given: both decide.
    let s = agrees(
        &[
            "check",
            "-q",
            "--profile",
            "istio",
            "--fail-on",
            "plaintext-leak",
            "--expect",
            exp.to_str().unwrap(),
            cap.to_str().unwrap(),
        ],
        "FAIL",
        1,
    );
    assert_eq!(s["check"]["failed_rules"]["plaintext-leak"], 3, "{s}");
}

#[test]
fn an_unmet_expectation_is_in_the_summary() {
    let dir = std::env::temp_dir().join(format!("meshsniff-exp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("bad.json");
    std::fs::write(&bad, r#"{"min_flows": 50}"#).unwrap();
    let s = agrees(
        &[
            "check",
            "-q",
            "--expect",
            bad.to_str().unwrap(),
            &sample("tls13-mtls-ok.pcap"),
        ],
        "FAIL",
        1,
    );
    assert_eq!(
        s["check"]["expectations_failed"],
        serde_json::json!(["expected at least 50 flows, saw 1"]),
        "{s}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---- issue 11: a newcomer's first minutes --------------------------------------------------

#[test]
fn one_flow_is_singular_and_big_counts_have_separators() {
    let out = common::run(&["analyze", &sample("tls13-openssl.pcap")]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("1 flow (tls 1) · 19 packets"), "{text}");
    assert!(!text.contains("1 flows"), "{text}");
    // 30 copies: 120 flows, 1,410 packets, 60 leaks.
    let path = sample("content-not-port.pcap");
    let mut args = vec!["analyze".to_string()];
    args.extend(std::iter::repeat_n(path, 30));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = common::run(&args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("120 flows (tls 30, http 30, other 30, empty 30) · 1,410 packets"),
        "{text}"
    );
    assert!(
        text.contains("... and 50 more"),
        "worst findings cut without saying so: {text}"
    );
    assert_eq!(last_line(&out.stdout), "FAIL: 60 plaintext leaks");
    let out = common::run(&[&args[..], &["--format", "jsonl"]].concat());
    let s = summary_json("jsonl", &out.stdout);
    assert_eq!(s["packets"], 1410, "JSON numbers stay numbers");
    assert_eq!(s["findings"], 60, "{s}");
    assert_eq!(s["worst"].as_array().unwrap().len(), 10);
}

#[test]
fn sniff_help_explains_every_option() {
    let out = common::run(&["sniff", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "-c, --count",
        "--duration",
        "--show-secrets",
        "--color",
        "--fail-on",
        "--format",
    ] {
        let line = help
            .lines()
            .position(|l| l.contains(opt))
            .unwrap_or_else(|| panic!("{opt} missing: {help}"));
        // clap puts the help on the same line or on the next, indented further.
        let same = help.lines().nth(line).unwrap();
        let next = help.lines().nth(line + 1).unwrap_or_default();
        let described = same
            .split(opt)
            .nth(1)
            .is_some_and(|r| r.trim().len() > 8 && !r.trim().starts_with('<'))
            || (next.starts_with("          ") && !next.trim().starts_with('-'));
        assert!(described, "{opt} has no help text:\n{same}\n{next}");
    }
}

#[test]
fn filter_refusals_name_the_primitive_at_fault() {
    let err = |f: &str| {
        let out = common::run(&["capture", "--filter-ddd", "-f", f]);
        assert_eq!(out.status.code(), Some(2), "{f}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = err("ip6 net ::1/128");
    assert!(!e.contains("`ip6` is not supported"), "{e}");
    assert!(e.contains("ip6 net") && e.contains("IPv6 net"), "{e}");
    let e = err("port 99999");
    assert!(!e.contains("service names"), "{e}");
    assert!(e.contains("99999") && e.contains("65535"), "{e}");
    let e = err("tcp portrange 1-99999");
    assert!(e.contains("99999") && e.contains("65535"), "{e}");
    let e = err("port http");
    assert!(e.contains("service names"), "{e}");
}

/// A network namespace this test creates (loopback only) and removes, also on failure.
struct Netns(&'static str);

impl Netns {
    fn new(name: &'static str) -> Netns {
        let _ = Command::new("ip").args(["netns", "del", name]).status();
        let ok = |args: &[&str]| {
            let st = Command::new("ip").args(args).status().unwrap();
            assert!(st.success(), "ip {args:?}");
        };
        ok(&["netns", "add", name]);
        ok(&["-n", name, "link", "set", "lo", "up"]);
        Netns(name)
    }
    fn exec(&self, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.0]).args(args);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", self.0]).status();
    }
}

/// Issue 11: `sniff`'s status line (stderr) was never cleared, so the rows it printed on the
/// same terminal were glued onto it; and its byte count had no unit. Root: a namespace of its
/// own (run under `flock /tmp/meshsniff-netns.lock`), python3's http.server and curl on its
/// loopback, `sniff` on a pseudo-terminal.
#[test]
fn sniff_on_a_terminal_clears_its_status_line_before_each_row() {
    let test = "sniff_status_line_on_a_terminal";
    if !common::root_or_skip(test)
        || !common::have(test, "script")
        || !common::have(test, "python3")
        || !common::have(test, "curl")
    {
        return;
    }
    let ns = Netns::new("msn-clitty");
    let mut server = ns
        .exec(&[
            "python3",
            "-m",
            "http.server",
            "18080",
            "--bind",
            "127.0.0.1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let curl = || {
        ns.exec(&["curl", "-s", "-o", "/dev/null", "http://127.0.0.1:18080/"])
            .status()
            .unwrap()
            .success()
    };
    let start = std::time::Instant::now();
    while !curl() {
        assert!(start.elapsed().as_secs() < 20, "http.server never answered");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let cmd = format!(
        "{} sniff --netns msn-clitty -i lo --duration 5s --color never",
        common::bin().display()
    );
    let tty = std::thread::spawn(move || on_a_terminal(&cmd));
    // Requests once the status line is up (it is drawn every 500 ms), with time between them
    // for it to be drawn again.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(curl());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(curl());
    let shown = tty.join().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    assert!(shown.contains(" captured · "), "no status line: {shown:?}");
    assert!(
        shown.contains(" kB captured") || shown.contains(" B captured"),
        "the byte count has no unit: {shown:?}"
    );
    let mut rows = 0;
    let header = "    ID  CLIENT";
    let starts = shown
        .match_indices("127.0.0.1:18080")
        .chain(shown.match_indices(header))
        .map(|(at, _)| at);
    for at in starts {
        let start = shown[..at].rfind('\n').map_or(0, |i| i + 1);
        let line = &shown[start..at];
        // The row may follow the clearing sequence, never the status text.
        let after_clear = line.rsplit("\x1b[2K").next().unwrap_or(line);
        assert!(
            !after_clear.contains("captured"),
            "a row glued onto the status line: {line:?}"
        );
        rows += 1;
    }
    assert!(
        rows >= 3,
        "no header and flow rows on the terminal: {shown:?}"
    );
}
