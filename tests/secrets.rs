//! Role: issue 11's "secrets never shown", on real traffic (root). curl talks to python3
//! http.server (HTTP/1.1) and to nginx (h2c by prior knowledge) between two namespaces this
//! test creates (`msn-sec-c`, `msn-sec-s`, removed after), with credentials in query strings,
//! a form body, absolute-form userinfo, Authorization and Cookie headers; tcpdump records it.
//! Every command and format must then show no byte of any credential value, name each one,
//! and show `<redacted, N bytes>` instead; with `--show-secrets` the values are shown.
//! Run it under the namespace lock: `flock /tmp/meshsniff-netns.lock cargo test --test secrets`.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

const CLIENT: &str = "msn-sec-c";
const SERVER: &str = "msn-sec-s";
const CIP: &str = "10.86.0.1";
const SIP: &str = "10.86.0.2";
/// Every credential value sent starts with this, so a single search finds any byte range of
/// any of them that reached an output (the values are longer than it).
const MARK: &str = "s3cr3t";

/// The credentials sent, each distinct (value, what the report must call it).
const SENT: [(&str, &str); 12] = [
    ("s3cr3t-PASSWORD-1", "query:password"),
    ("s3cr3t-ACCESS-2", "query:access_token"),
    ("s3cr3t-APIKEY-3", "query:api_key"),
    ("s3cr3t-TOKEN-4", "query:token"),
    ("s3cr3t-SECRET-5", "query:secret"),
    ("s3cr3t-SIG-6", "query:sig"),
    ("alice:s3cr3t-USERINFO-7", "userinfo"),
    ("s3cr3t-BEARER-8", "authorization:bearer"),
    ("s3cr3t-COOKIE-9", "cookie"),
    ("s3cr3t-FORM-10", "form:password"),
    ("s3cr3t-H2PATH-11", "query:password"),
    ("s3cr3t-H2AUTH-12", "authorization:basic"),
];

/// Two namespaces joined by a veth (the server's end is `eth0`), removed on drop with every
/// process the test started in them.
struct Lab {
    dir: PathBuf,
    children: Vec<Child>,
}

use common::sh;

impl Lab {
    fn new() -> Lab {
        for ns in [CLIENT, SERVER] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        let dir = std::env::temp_dir().join(format!("meshsniff-secrets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Built before anything can fail, so Drop removes whatever was made.
        let lab = Lab {
            dir,
            children: Vec::new(),
        };
        for ns in [CLIENT, SERVER] {
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip",
            "link",
            "add",
            "eth0",
            "netns",
            SERVER,
            "type",
            "veth",
            "peer",
            "name",
            "msn-sec-v",
            "netns",
            CLIENT,
        ]);
        sh(&[
            "ip",
            "-n",
            SERVER,
            "addr",
            "add",
            &format!("{SIP}/24"),
            "dev",
            "eth0",
        ]);
        sh(&[
            "ip",
            "-n",
            CLIENT,
            "addr",
            "add",
            &format!("{CIP}/24"),
            "dev",
            "msn-sec-v",
        ]);
        sh(&["ip", "-n", SERVER, "link", "set", "eth0", "up"]);
        sh(&["ip", "-n", CLIENT, "link", "set", "msn-sec-v", "up"]);
        lab
    }

    fn spawn_in_server(&mut self, args: &[&str], log: &Path) {
        let child = Command::new("ip")
            .args(["netns", "exec", SERVER])
            .args(args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        self.children.push(child);
    }

    fn wait_port(&self, port: u16) {
        for _ in 0..200 {
            let out = Command::new("ip")
                .args(["netns", "exec", SERVER, "ss", "-Hltn"])
                .arg(format!("sport = :{port}"))
                .output()
                .unwrap();
            if !out.stdout.is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nothing listens on {port}");
    }

    fn curl(&self, args: &[&str]) {
        let out = Command::new("ip")
            .args(["netns", "exec", CLIENT, "curl", "-s", "-o", "/dev/null"])
            .args(["--max-time", "10"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "curl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The exchanges, on keep-alive connections where curl allows it.
    fn traffic(&self) {
        let base = format!("http://{SIP}:8080");
        self.curl(&[
            &format!("{base}/login?user=bob&password=s3cr3t-PASSWORD-1"),
            &format!("{base}/cb?state=x&access_token=s3cr3t-ACCESS-2&api_key=s3cr3t-APIKEY-3"),
        ]);
        self.curl(&[&format!(
            "{base}/t?token=s3cr3t-TOKEN-4;secret=s3cr3t-SECRET-5&sig=s3cr3t-SIG-6"
        )]);
        // Absolute-form, as a client talking to a proxy sends it.
        self.curl(&[
            "--request-target",
            &format!("http://alice:s3cr3t-USERINFO-7@{SIP}:8080/abs"),
            &format!("{base}/"),
        ]);
        self.curl(&[
            "-H",
            "Authorization: Bearer s3cr3t-BEARER-8",
            "-H",
            "Cookie: session=s3cr3t-COOKIE-9",
            &format!("{base}/headers"),
        ]);
        self.curl(&[
            "-d",
            "username=bob&password=s3cr3t-FORM-10",
            &format!("{base}/form"),
        ]);
        self.curl(&[
            "--http2-prior-knowledge",
            "-H",
            "Authorization: Basic s3cr3t-H2AUTH-12",
            &format!("http://{SIP}:8081/h2?password=s3cr3t-H2PATH-11"),
        ]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [CLIENT, SERVER] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn nginx_conf(dir: &Path) -> PathBuf {
    let d = dir.display();
    let conf = dir.join("nginx.conf");
    std::fs::write(
        &conf,
        format!(
            // One process (no master): killing it leaves no orphaned worker behind, which
            // would keep the test's inherited descriptors (the namespace lock) open.
            "master_process off; daemon off; error_log {d}/nginx.err; pid {d}/nginx.pid;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off;\n\
             server {{ listen {SIP}:8081 http2; location / {{ return 200 \"h2c ok\\n\"; }} }} }}\n"
        ),
    )
    .unwrap();
    conf
}

/// The binary under test; `MESHSNIFF_SECRETS_BIN` points it at another build (to show that
/// this test fails on the code before issue 11).
fn bin() -> PathBuf {
    std::env::var_os("MESHSNIFF_SECRETS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(common::bin)
}

fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run meshsniff")
}

/// stdout and stderr of one run, as text.
fn both(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The binary with `args`, the capture on its stdin (as the plugin's `check -` gets it).
fn run_stdin(args: &[&str], input: &[u8]) -> Output {
    common::output_with_stdin(Command::new(bin()).args(args), input)
}

fn assert_no_secret(what: &str, text: &str) {
    if let Some(at) = text.find(MARK) {
        let from = text[..at]
            .char_indices()
            .rev()
            .nth(80)
            .map_or(0, |(i, _)| i);
        panic!(
            "{what}: a credential value reached the output: …{}…",
            &text[from..(at + 40).min(text.len())]
        );
    }
    for (value, _) in SENT {
        // Any 8-byte piece of a value's own part (after the common prefix) is a leak too.
        let own = &value[value.find(MARK).unwrap() + MARK.len()..];
        for w in own.as_bytes().windows(8) {
            let w = std::str::from_utf8(w).unwrap();
            assert!(
                !text.contains(w),
                "{what}: `{w}` of {value} reached the output"
            );
        }
    }
}

#[test]
fn no_credential_value_reaches_any_output() {
    const T: &str = "no_credential_value_reaches_any_output";
    if !common::root_or_skip(T)
        || !["curl", "tcpdump", "python3", "nginx", "ip"]
            .iter()
            .all(|p| common::have(T, p))
    {
        return;
    }
    let mut lab = Lab::new();
    let dir = lab.dir.clone();
    let pcap = dir.join("secrets.pcap");
    let tlog = dir.join("tcpdump.log");
    lab.spawn_in_server(
        &[
            "tcpdump",
            "-Z",
            "root",
            "--immediate-mode",
            "-U",
            "-s",
            "0",
            "-i",
            "eth0",
            "-w",
            pcap.to_str().unwrap(),
            "tcp",
        ],
        &tlog,
    );
    common::wait_for(&tlog, "listening on");
    let www = dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello\n").unwrap();
    lab.spawn_in_server(
        &[
            "python3",
            "-m",
            "http.server",
            "--protocol",
            "HTTP/1.1",
            "--bind",
            SIP,
            "--directory",
            www.to_str().unwrap(),
            "8080",
        ],
        &dir.join("http.log"),
    );
    let conf = nginx_conf(&dir);
    lab.spawn_in_server(
        &["nginx", "-c", conf.to_str().unwrap()],
        &dir.join("nginx.log"),
    );
    lab.wait_port(8080);
    lab.wait_port(8081);

    // sniff: the helper and the analyzer live, while the traffic runs.
    let sniff_err = dir.join("sniff.err");
    let mut sniff = Command::new(bin())
        .args([
            "sniff",
            "--netns",
            SERVER,
            "--format",
            "table",
            "--duration",
            "60",
        ])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&sniff_err).unwrap())
        .spawn()
        .unwrap();
    common::wait_for(&sniff_err, "capturing on");
    lab.traffic();
    // A few more packets after the ones that matter (tcpdump may keep its last block).
    for _ in 0..3 {
        lab.curl(&[&format!("http://{SIP}:8080/index.html")]);
    }
    std::thread::sleep(Duration::from_millis(500));
    sh(&["kill", "-INT", &sniff.id().to_string()]);
    let mut sniff_out = String::new();
    sniff
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut sniff_out)
        .unwrap();
    let sniff_code = sniff.wait().unwrap().code();
    let sniff_text = sniff_out + &std::fs::read_to_string(&sniff_err).unwrap();
    // tcpdump is stopped (SIGINT writes its last packets) before its file is read.
    sh(&["kill", "-INT", &lab.children[0].id().to_string()]);
    let _ = lab.children[0].wait();
    let file = pcap.to_str().unwrap();
    let bytes = common::read(&pcap);

    // The capture really holds every value (else the test proves nothing); the h2c ones are
    // Huffman-coded by HPACK, so `--show-secrets` below shows that they are there.
    let raw = String::from_utf8_lossy(&bytes).into_owned();
    for (value, _) in SENT.iter().filter(|(v, _)| !v.contains("-H2")) {
        let plain = value.split(':').next_back().unwrap();
        assert!(raw.contains(plain), "{value} is not in the capture");
    }

    let expect = dir.join("expect.json");
    std::fs::write(&expect, r#"{"none": ["plaintext-leak"], "min_flows": 1}"#).unwrap();
    let mut runs: Vec<(String, Output)> = Vec::new();
    for format in ["table", "jsonl", "json"] {
        for args in [
            vec!["analyze", "--format", format, file],
            vec!["analyze", "--format", format, "--profile", "strict", file],
            vec![
                "check",
                "--format",
                format,
                "--fail-on",
                "plaintext-leak,sensitive-data",
                file,
            ],
            vec![
                "check",
                "--format",
                format,
                "--expect",
                expect.to_str().unwrap(),
                file,
            ],
        ] {
            runs.push((args.join(" "), run(&args)));
        }
        // The plugin's analyzer: `check -` reading the capture from a pipe.
        let args = ["check", "-", "--profile", "istio", "--format", format];
        runs.push((
            format!("{} (stdin)", args.join(" ")),
            run_stdin(&args, &bytes),
        ));
    }
    for (what, out) in &runs {
        assert_no_secret(what, &both(out));
    }
    assert_no_secret("sniff", &sniff_text);
    assert_eq!(sniff_code, Some(1), "sniff finds the leaks: {sniff_text}");

    // Each credential is named, and its place shows the marker.
    let jsonl = &runs
        .iter()
        .find(|(w, _)| w.starts_with("analyze --format jsonl"))
        .unwrap()
        .1;
    let (flows, summary) = common::parse_jsonl(&jsonl.stdout);
    let http: Vec<_> = flows.iter().filter_map(|f| f.http.as_ref()).collect();
    let labels: Vec<&str> = http
        .iter()
        .flat_map(|h| h.sensitive().map(|(l, _)| l))
        .collect();
    for (value, label) in SENT {
        assert!(
            labels.contains(&label),
            "{value}: no `{label}` in {labels:?}"
        );
    }
    let paths: Vec<&str> = http
        .iter()
        .flat_map(|h| h.requests.iter().map(|r| r.path.as_str()))
        .collect();
    for want in [
        "/login?user=bob&password=<redacted, 17 bytes>",
        "/cb?state=x&access_token=<redacted, 15 bytes>&api_key=<redacted, 15 bytes>",
        "/t?token=<redacted, 14 bytes>;secret=<redacted, 15 bytes>&sig=<redacted, 12 bytes>",
        "http://<redacted, 23 bytes>@10.86.0.2:8080/abs",
        "/h2?password=<redacted, 16 bytes>",
    ] {
        assert!(paths.contains(&want), "no path {want} in {paths:?}");
    }
    let worst: Vec<&str> = summary.worst.iter().map(|w| w.evidence.as_str()).collect();
    assert!(worst.iter().any(|e| e.contains("<redacted, ")), "{worst:?}");
    // The table names the parameter in its findings.
    let table = String::from_utf8_lossy(&runs[0].1.stdout).into_owned();
    for want in [
        "query:password",
        "query password=<redacted, 17 bytes>",
        "userinfo",
    ] {
        assert!(table.contains(want), "table lacks `{want}`:\n{table}");
    }
    assert!(sniff_text.contains("<redacted, "), "{sniff_text}");

    // Asked for, the values are shown.
    for format in ["table", "jsonl", "json"] {
        let out = run(&["analyze", "--format", format, "--show-secrets", file]);
        let text = both(&out);
        for v in [
            "s3cr3t-PASSWORD-1",
            "alice:s3cr3t-USERINFO-7",
            "s3cr3t-H2PATH-11",
        ] {
            assert!(
                text.contains(v),
                "--show-secrets --format {format} lacks {v}"
            );
        }
    }
}
