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
    assert_eq!(out.status.code(), Some(0));
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
    assert_eq!(out.status.code(), Some(0));
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
        shown.contains("packets") && shown.contains("flows"),
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
