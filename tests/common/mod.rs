//! Shared helpers for the integration tests: where `../shared/` is, how to skip honestly (and
//! when a skip must fail instead), and reading the tool's output back into the schema types.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// `.ci/run` sets this: a test that would skip (not root, `../shared/` missing, a program not
/// installed) fails instead, so CI can never go green by skipping.
pub const REQUIRE_ENV: &str = "MESHSNIFF_REQUIRE_ALL";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `../shared/` beside the checkout (or `MESHSNIFF_SHARED`), if present.
pub fn shared() -> Option<PathBuf> {
    let p = std::env::var_os("MESHSNIFF_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("../shared"));
    p.join("captures-public").is_dir().then_some(p)
}

/// Skips (prints why) or, under `.ci/run`, fails. The skip is also noted in [`skip_dir`], so
/// that the last test target (`tests/zz_skipped.rs`) can say at the end of `cargo test` how
/// many were skipped and why: the line printed here is in captured stderr, hidden.
pub fn skip(test: &str, why: &str) {
    if std::env::var_os(REQUIRE_ENV).is_some() {
        panic!("{test}: cannot run ({why}) and {REQUIRE_ENV} is set, so this is a failure");
    }
    eprintln!("SKIPPED {test}: {why}");
    note_skip(test, why);
}

/// Where skips are noted: one file per skip, `<cargo's pid>-<test binary's pid>-<test>`,
/// holding the reason. Every test binary of one `cargo test` has cargo as its parent, which
/// tells this run's notes from those of an earlier run that stopped before the last target.
pub fn skip_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("meshsniff-skipped")
}

fn note_skip(test: &str, why: &str) {
    let dir = skip_dir();
    let name: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let file = dir.join(format!(
        "{}-{}-{name}",
        std::os::unix::process::parent_id(),
        std::process::id()
    ));
    // Best effort: a skip that cannot be noted is still printed above.
    let _ = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(file, why));
}

pub fn shared_or_skip(test: &str) -> Option<PathBuf> {
    let s = shared();
    if s.is_none() {
        skip(
            test,
            "../shared/captures-public is not beside this checkout",
        );
    }
    s
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_meshsniff"))
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

use meshsniff::report::{FlowRecord, Summary};
use std::process::{Command, Output};

/// Runs the binary with `args`; returns its output.
pub fn run(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run meshsniff")
}

/// Parses JSON Lines output into typed records and the summary (the schema contract: an
/// unknown, renamed or missing field fails here).
pub fn parse_jsonl(stdout: &[u8]) -> (Vec<FlowRecord>, Summary) {
    let text = std::str::from_utf8(stdout).expect("utf-8 output");
    let mut flows = Vec::new();
    let mut summary = None;
    for line in text.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        match v["type"].as_str() {
            Some("flow") => flows.push(serde_json::from_value(v).expect("flow record")),
            Some("summary") => {
                assert!(summary.is_none(), "two summaries");
                summary = Some(serde_json::from_value(v).expect("summary record"));
            }
            other => panic!("unknown record type {other:?}"),
        }
    }
    (flows, summary.expect("a summary line"))
}

/// The sample captures committed in `captures/`.
pub fn sample_captures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join("captures"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("pcap" | "pcapng")
            )
        })
        .collect();
    v.sort();
    v
}

/// `program` is on PATH, else skip (or fail under `.ci/run`).
pub fn have(test: &str, program: &str) -> bool {
    let ok = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        skip(test, &format!("{program} is not installed"));
    }
    ok
}

/// True when running as root; otherwise skip (or fail under `.ci/run`).
pub fn root_or_skip(test: &str) -> bool {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default();
    let root = String::from_utf8_lossy(&uid).trim() == "0";
    if !root {
        skip(test, "needs root (network namespaces, packet capture)");
    }
    root
}

/// tshark's fields for the packets `filter` selects, one line per packet; asserts that tshark
/// read the file without a complaint (its note about running as root is about tshark).
pub fn tshark_fields(file: &Path, fields: &[&str], filter: &str) -> Vec<String> {
    let mut c = Command::new("tshark");
    c.arg("-r").arg(file).args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        c.args(["-e", f]);
    }
    let out = c.output().unwrap();
    let err: String = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.contains("Running as user") && !l.trim().is_empty())
        .collect();
    assert!(
        out.status.success() && err.is_empty(),
        "tshark on {}: {err}",
        file.display()
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits (at most 20 s) until the file `log` (a process's stderr) contains `what`.
pub fn wait_for(log: &Path, what: &str) {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(20) {
        if std::fs::read_to_string(log).is_ok_and(|t| t.contains(what)) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!(
        "{} never said `{what}`: {}",
        log.display(),
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// Runs a setup command (ip, iptables, …) and fails the test if it fails.
pub fn sh(args: &[&str]) {
    let st = Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(st.success(), "{args:?} failed");
}

/// The test cluster's state directory (tests/cluster/up.sh): admin.kubeconfig, pki/, logs.
pub const CLUSTER_STATE: &str = "/var/lib/meshsniff-cluster";
/// Where tests/cluster/build.sh keeps its binaries (`<versions>/bin/kubectl` among them).
pub const CLUSTER_CACHE: &str = "/var/cache/meshsniff/cluster";

/// The test cluster's kubeconfig: `KUBECONFIG` when it names a file (.ci/run exports up.sh's),
/// else up.sh's admin kubeconfig.
pub fn cluster_kubeconfig() -> PathBuf {
    std::env::var_os("KUBECONFIG")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .unwrap_or_else(|| Path::new(CLUSTER_STATE).join("admin.kubeconfig"))
}

/// The real kubectl: the cluster's own build (its version), else the one on PATH.
pub fn cluster_kubectl() -> Option<PathBuf> {
    let cached = std::fs::read_dir(CLUSTER_CACHE)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin/kubectl"))
        .find(|p| p.is_file());
    cached.or_else(|| {
        let out = std::process::Command::new("sh")
            .args(["-c", "command -v kubectl"])
            .output()
            .ok()?;
        let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !p.is_empty()).then(|| PathBuf::from(p))
    })
}

/// The test cluster's kubeconfig and kubectl when its API server is ready, else a skip saying
/// what is missing and that `tests/cluster/up.sh` brings it up (a failure under .ci/run).
pub fn cluster_or_skip(test: &str) -> Option<(PathBuf, PathBuf)> {
    let skip = |why: String| {
        skip(
            test,
            &format!("{why}; `sudo tests/cluster/up.sh` brings the test cluster up"),
        );
        None
    };
    let kubeconfig = cluster_kubeconfig();
    if !kubeconfig.is_file() {
        return skip(format!(
            "no kubeconfig ({} is missing)",
            kubeconfig.display()
        ));
    }
    let Some(kubectl) = cluster_kubectl() else {
        return skip("no kubectl".into());
    };
    match std::process::Command::new(&kubectl)
        .args(["get", "--raw", "/readyz", "--request-timeout=5s"])
        .env("KUBECONFIG", &kubeconfig)
        .output()
    {
        Ok(o) if o.status.success() && o.stdout.starts_with(b"ok") => Some((kubeconfig, kubectl)),
        Ok(o) => skip(format!(
            "the API server of {} is not ready: {}",
            kubeconfig.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Err(e) => skip(format!("cannot run {}: {e}", kubectl.display())),
    }
}

/// `cmd` run with `input` on its stdin (then closed), stdout and stderr captured.
pub fn output_with_stdin(cmd: &mut std::process::Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let mut pipe = child.stdin.take().unwrap();
    // A program that exits without reading all of it is judged by its output, not here.
    let _ = pipe.write_all(input);
    drop(pipe);
    child.wait_with_output().unwrap()
}
