//! Role: the Istio-style seed story on the real test cluster (tests/cluster/up.sh): a server pod
//! (web + a real Envoy sidecar `istio-proxy` as uid 1337 behind the rules istio-iptables writes
//! as its init container), a client with its own sidecar and one without (tests/cluster/mesh.sh),
//! captured with `kubectl meshsniff`; asserts mtls, plaintext-expected, sidecar-bypass, rejected
//! and plaintext-leak on real traffic. Skipped (a failure under MESHSNIFF_REQUIRE_ALL) without it.

mod common;

use meshsniff::policy::Kind;
use meshsniff::report::FlowRecord;
use meshsniff::tls::ClientCert;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const CONTAINERD: &str = "/run/meshsniff-cluster/containerd.sock";
const NS: &str = "meshsniff-mesh";

fn kubeconfig() -> PathBuf {
    common::cluster_kubeconfig()
}

/// The cluster's kubectl (the one tests/cluster.rs uses too), with its kubeconfig.
fn kubectl_cmd() -> Command {
    let mut c = Command::new(common::cluster_kubectl().unwrap_or_else(|| "kubectl".into()));
    c.env("KUBECONFIG", kubeconfig());
    c
}

fn kubectl(args: &[&str]) -> Output {
    kubectl_cmd().args(args).output().expect("run kubectl")
}

/// kubectl's stdout, the command having succeeded.
fn kubectl_ok(args: &[&str]) -> String {
    let o = kubectl(args);
    assert!(
        o.status.success(),
        "kubectl {args:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The test cluster answers (its API server is ready), else skip; root for ctr.
fn cluster_or_skip(test: &str) -> bool {
    common::root_or_skip(test) && common::cluster_or_skip(test).is_some()
}

/// `tests/cluster/mesh.sh up`, once per test binary (the tests run in parallel and both need
/// the pods; two applies at once race on the namespace's objects).
fn mesh_up() {
    static UP: std::sync::Mutex<Option<Result<(), String>>> = std::sync::Mutex::new(None);
    let mut done = UP.lock().unwrap_or_else(|e| e.into_inner());
    if done.is_none() {
        let up = Command::new(common::repo().join("tests/cluster/mesh.sh"))
            .arg("up")
            .env("KUBECONFIG", kubeconfig())
            .output()
            .unwrap();
        *done = Some(if up.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&up.stderr).into_owned())
        });
    }
    if let Some(Err(e)) = done.as_ref() {
        panic!("tests/cluster/mesh.sh up: {e}");
    }
}

fn sh_ok(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The helper image the plugin runs: its default when the cluster has it (up.sh imports
/// release/'s archive), else one built here from this checkout's `meshsniff` and its libraries.
fn helper_image() -> String {
    let default = meshsniff::kube::manifest::DEFAULT_IMAGE;
    let have = sh_ok(Command::new("ctr").args([
        "--address",
        CONTAINERD,
        "-n",
        "k8s.io",
        "images",
        "ls",
        "-q",
    ]));
    if have.lines().any(|l| l == default) {
        return default.to_string();
    }
    let image = "meshsniff.test/helper:seed";
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("seed-helper");
    let _ = std::fs::remove_dir_all(&dir);
    let root = dir.join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::copy(common::bin(), root.join("meshsniff")).unwrap();
    let ldd = sh_ok(Command::new("ldd").arg(common::bin()));
    for lib in ldd.split_whitespace().filter(|w| w.starts_with('/')) {
        let to = root.join(lib.trim_start_matches('/'));
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(lib, &to).unwrap();
    }
    let tar = dir.join("helper.tar");
    sh_ok(
        Command::new("python3")
            .arg(common::repo().join("release/oci-image.py"))
            .args([
                "--name",
                "meshsniff.test/helper",
                "--tag",
                "seed",
                "--rootfs",
            ])
            .arg(&root)
            .arg("-o")
            .arg(&tar)
            .args(["--entrypoint", "/meshsniff"]),
    );
    sh_ok(
        Command::new("ctr")
            .args(["--address", CONTAINERD, "-n", "k8s.io", "images", "import"])
            .arg(&tar),
    );
    image.to_string()
}

fn pod_ip(pod: &str) -> String {
    kubectl_ok(&[
        "-n",
        NS,
        "get",
        &format!("pod/{pod}"),
        "-o",
        "jsonpath={.status.podIP}",
    ])
    .trim()
    .to_string()
}

fn exec(pod: &str, container: &str, cmd: &[&str]) -> Output {
    let mut a = vec!["-n", NS, "exec", pod, "-c", container, "--"];
    a.extend_from_slice(cmd);
    kubectl(&a)
}

/// Restarts a pod's Envoy (it is the container's PID 1; the kubelet starts it again) and waits
/// until it is ready: a fresh Envoy has no TLS sessions to resume, so the next connection is a
/// full handshake, which the capture then holds. (A sidecar that already talked to the server
/// resumes: no certificate crosses the wire.)
fn restart_sidecar(pod: &str) {
    let restarts = || {
        kubectl_ok(&[
            "-n",
            NS,
            "get",
            &format!("pod/{pod}"),
            "-o",
            r#"jsonpath={.status.containerStatuses[?(@.name=="istio-proxy")].restartCount} {.status.containerStatuses[?(@.name=="istio-proxy")].ready}"#,
        ])
    };
    let before: u64 = restarts()
        .split(' ')
        .next()
        .and_then(|n| n.trim().parse().ok())
        .expect("restartCount");
    let _ = exec(pod, "istio-proxy", &["sh", "-c", "kill 1"]);
    let start = Instant::now();
    loop {
        let now = restarts();
        let mut it = now.split(' ');
        let n: u64 = it.next().and_then(|n| n.trim().parse().ok()).unwrap_or(0);
        if n > before && it.next().map(str::trim) == Some("true") {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{pod}'s istio-proxy did not come back: {now}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits until the plugin's helper says it is capturing (its stderr, relayed by the plugin);
/// returns the helper pod's name. Other tests run helpers in meshsniff-system at the same
/// time, so only this plugin's own words count.
fn wait_capturing(plugin: &mut Child, err: &Path) -> String {
    let start = Instant::now();
    loop {
        if let Some(st) = plugin.try_wait().unwrap() {
            panic!(
                "kubectl meshsniff ended before capturing: {st}: {}",
                std::fs::read_to_string(err).unwrap_or_default()
            );
        }
        let text = std::fs::read_to_string(err).unwrap_or_default();
        if text.contains(&format!("[{NS}/server] meshsniff: capturing on")) {
            let helper = text
                .lines()
                .find_map(|l| l.strip_prefix("kubectl meshsniff: helper pod meshsniff-system/"))
                .and_then(|r| r.split_whitespace().next())
                .expect("the plugin names its helper pod")
                .to_string();
            std::thread::sleep(Duration::from_secs(1));
            return helper;
        }
        assert!(
            start.elapsed() < Duration::from_secs(150),
            "the helper did not start capturing within 150 s: {text}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

struct PortForward(Child);
impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `kubectl port-forward pod/server PORT:8080` on a free local port (other tests forward
/// too: a fixed one collides); returns it once kubectl listens.
fn port_forward(log: &Path) -> (PortForward, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let f = std::fs::File::create(log).unwrap();
    let child = kubectl_cmd()
        .args([
            "-n",
            NS,
            "port-forward",
            "pod/server",
            &format!("{port}:8080"),
        ])
        .stdout(f.try_clone().unwrap())
        .stderr(f)
        .spawn()
        .unwrap();
    common::wait_for(log, &format!("Forwarding from 127.0.0.1:{port}"));
    (PortForward(child), port)
}

fn flows_to<'a>(flows: &'a [FlowRecord], server: &str) -> Vec<&'a FlowRecord> {
    flows.iter().filter(|f| f.server == server).collect()
}

fn kind(f: &FlowRecord) -> Option<Kind> {
    f.verdict.as_ref().map(|v| v.kind)
}

fn describe(flows: &[&FlowRecord]) -> String {
    flows
        .iter()
        .map(|f| {
            format!(
                "\n  {} {} -> {} if={:?} lo={} {:?} {:?}",
                f.id,
                f.client,
                f.server,
                f.interface,
                f.loopback,
                f.protocol,
                f.verdict
                    .as_ref()
                    .map(|v| (v.kind.name(), v.reason.to_string()))
            )
        })
        .collect()
}

/// The whole story in one capture of the server pod, as a user runs it: every scenario's
/// traffic while `kubectl meshsniff pod/server` streams, then the verdicts of each.
#[test]
fn istio_seed_story_on_the_real_cluster() {
    let test = "istio_seed_story_on_the_real_cluster";
    if !cluster_or_skip(test) {
        return;
    }
    mesh_up();

    // What istio-init did, from its own log: the nat rules it handed to iptables-restore.
    let init = kubectl_ok(&["-n", NS, "logs", "pod/server", "-c", "istio-init"]);
    for rule in [
        "-A ISTIO_INBOUND -p tcp --dport 9090 -j RETURN",
        "-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
        "-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN",
        "-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
    ] {
        assert!(
            init.contains(rule),
            "istio-init's log lacks `{rule}`:\n{init}"
        );
    }
    // The sidecar is Envoy, as uid 1337.
    let uid = exec("server", "istio-proxy", &["id", "-u"]);
    assert_eq!(String::from_utf8_lossy(&uid.stdout).trim(), "1337");
    let version = exec(
        "server",
        "istio-proxy",
        &["/usr/local/bin/envoy", "--version"],
    );
    assert!(
        String::from_utf8_lossy(&version.stdout).contains("/1.40.0/"),
        "{}",
        String::from_utf8_lossy(&version.stdout)
    );

    let server = pod_ip("server");
    let client = pod_ip("client");
    let plain = pod_ip("plain");
    let image = helper_image();
    restart_sidecar("client");

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cluster-mesh");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("server.pcapng");
    let err = dir.join("plugin.err");
    let plugin_bin = env!("CARGO_BIN_EXE_kubectl-meshsniff");
    let mut plugin = Command::new(plugin_bin)
        .env("KUBECONFIG", kubeconfig())
        .args([
            "pod/server",
            "-n",
            NS,
            "--duration",
            "45s",
            "--format",
            "jsonl",
        ])
        .arg(format!("--image={image}"))
        .arg("-o")
        .arg(&pcap)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let helper = wait_capturing(&mut plugin, &err);
    let t0 = Instant::now();

    // 1. STRICT mTLS: the client's app calls the server's pod IP in clear; its sidecar
    //    originates mTLS (twice: the second connection resumes the first's session).
    for _ in 0..2 {
        let o = exec(
            "client",
            "curl",
            &["curl", "-sS", "-m", "10", &format!("http://{server}:8080/")],
        );
        assert!(
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).contains("hello from meshsniff web"),
            "client -> server through both sidecars: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // 2. port-forward: containerd dials the app on localhost inside the pod.
    {
        let (_pf, port) = port_forward(&dir.join("port-forward.log"));
        let o = Command::new("curl")
            .args(["-sS", "-m", "10", "-H", "Cookie: session=s3cr3t-session-id"])
            .arg(format!("http://127.0.0.1:{port}/"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "curl through port-forward: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    // 3. A client without a sidecar, plaintext to the STRICT port: Envoy refuses it.
    let o = exec(
        "plain",
        "curl",
        &["curl", "-sS", "-m", "10", &format!("http://{server}:8080/")],
    );
    assert!(
        !o.status.success(),
        "plaintext to the STRICT port was answered: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    // 4. The same client to the excluded port 9090: answered in clear, token and all.
    let o = exec(
        "plain",
        "curl",
        &[
            "curl",
            "-sS",
            "-m",
            "10",
            "-H",
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.c2VlZC1zdG9yeQ.c2ln",
            &format!("http://{server}:9090/"),
        ],
    );
    assert!(
        o.status.success()
            && String::from_utf8_lossy(&o.stdout).contains("hello from meshsniff web"),
        "plain -> server:9090: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    eprintln!("traffic made in {:?}", t0.elapsed());

    let out = plugin.wait_with_output().unwrap();
    let stderr = std::fs::read_to_string(&err).unwrap_or_default();
    // check's exit code: 1, the capture has problems (a leak and a bypass).
    assert_eq!(
        out.status.code(),
        Some(1),
        "kubectl meshsniff: {stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (flows, summary) = common::parse_jsonl(&out.stdout);
    let all: Vec<&FlowRecord> = flows.iter().collect();
    let shown = describe(&all);

    // mTLS between the sidecars: every TLS flow from the client pod to the server port.
    let mesh: Vec<&FlowRecord> = flows_to(&flows, &format!("{server}:8080"))
        .into_iter()
        .filter(|f| f.client.starts_with(&format!("{client}:")))
        .collect();
    assert!(mesh.len() >= 2, "no client->server flows:{shown}");
    // The first, after the client's Envoy restarted: a full TLS 1.3 handshake whose record
    // sizes show a client certificate; the next resumes that session.
    let mut mesh = mesh;
    mesh.sort_by(|a, b| a.first_ts.total_cmp(&b.first_ts));
    let full = mesh[0].tls.as_ref().expect("TLS facts");
    assert!(!full.resumed, "the first mesh connection resumed:{shown}");
    assert_eq!(full.version.as_deref(), Some("1.3"));
    assert_eq!(
        full.client_cert_inferred,
        Some(ClientCert::Presented),
        "{full:?}"
    );
    for f in &mesh[1..] {
        let t = f.tls.as_ref().expect("TLS facts");
        if t.resumed {
            assert_eq!(t.resumed_from_flow, Some(mesh[0].id), "{t:?}");
            assert_eq!(t.resumed_client_cert, Some(ClientCert::Presented), "{t:?}");
        }
    }
    for f in &mesh {
        assert_eq!(
            kind(f),
            Some(Kind::Mtls),
            "client sidecar -> server:{shown}"
        );
        let tls = f.tls.as_ref().expect("TLS facts");
        assert!(
            tls.alpn_offered.iter().any(|a| a.starts_with("istio")),
            "Istio's ALPN: {:?}",
            tls.alpn_offered
        );
        assert_eq!(
            tls.sni.as_deref(),
            Some(format!("outbound_.8080_._.server.{NS}.svc.cluster.local").as_str())
        );
    }
    // Envoy's inbound leg from 127.0.0.6 on lo.
    let inbound: Vec<&FlowRecord> = flows
        .iter()
        .filter(|f| f.client.starts_with("127.0.0.6:") && f.server.ends_with(":8080"))
        .collect();
    assert!(inbound.len() >= 2, "no 127.0.0.6 leg:{shown}");
    for f in &inbound {
        assert!(f.loopback, "127.0.0.6 leg not on lo:{shown}");
        assert_eq!(
            kind(f),
            Some(Kind::PlaintextExpected),
            "127.0.0.6 leg:{shown}"
        );
    }
    // port-forward: 127.0.0.1 -> 127.0.0.1:8080, never through Envoy.
    let bypass = flows_to(&flows, "127.0.0.1:8080");
    assert!(!bypass.is_empty(), "no port-forward flow:{shown}");
    for f in &bypass {
        assert_eq!(kind(f), Some(Kind::SidecarBypass), "port-forward:{shown}");
    }
    let v = bypass[0].verdict.as_ref().unwrap();
    assert!(
        v.findings
            .iter()
            .any(|x| x.rule == "sensitive-data" && x.evidence.starts_with("cookie")),
        "the cookie: {v:?}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("s3cr3t-session-id"),
        "the cookie's value is printed"
    );
    // The client without a sidecar: refused on the STRICT port, leaking on 9090.
    let refused: Vec<&FlowRecord> = flows_to(&flows, &format!("{server}:8080"))
        .into_iter()
        .filter(|f| f.client.starts_with(&format!("{plain}:")))
        .collect();
    assert!(!refused.is_empty(), "no plain -> :8080 flow:{shown}");
    for f in &refused {
        assert_eq!(
            kind(f),
            Some(Kind::Rejected),
            "plain -> STRICT port:{shown}"
        );
    }
    let leak: Vec<&FlowRecord> = flows_to(&flows, &format!("{server}:9090"))
        .into_iter()
        .filter(|f| f.client.starts_with(&format!("{plain}:")))
        .collect();
    assert!(!leak.is_empty(), "no plain -> :9090 flow:{shown}");
    for f in &leak {
        assert_eq!(kind(f), Some(Kind::PlaintextLeak), "excluded port:{shown}");
        assert!(!f.loopback);
    }
    let v = leak[0].verdict.as_ref().unwrap();
    assert!(
        v.findings
            .iter()
            .any(|x| x.rule == "sensitive-data" && x.evidence.contains("Bearer <redacted")),
        "the token: {v:?}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("c2VlZC1zdG9yeQ"),
        "the token is printed"
    );
    // Nothing else is a problem: the FAIL line counts exactly these.
    let problems: Vec<&FlowRecord> = flows
        .iter()
        .filter(|f| kind(f).is_some_and(Kind::is_problem))
        .collect();
    assert_eq!(
        problems.len(),
        bypass.len() + leak.len(),
        "other problems:{}",
        describe(&problems)
    );
    eprintln!("{summary:?}");

    // Envoy's access log is the truth the verdicts are held against: the server's sidecar
    // authenticated each mesh connection as the client's SPIFFE identity, opened each
    // 127.0.0.6 leg, and found no filter chain for the plaintext client.
    let log = kubectl_ok(&[
        "-n",
        NS,
        "exec",
        "server",
        "-c",
        "istio-proxy",
        "--",
        "cat",
        "/var/log/istio-proxy/access.log",
    ]);
    let entries: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let entry = |key: &str, value: &str| -> Vec<&serde_json::Value> {
        entries.iter().filter(|e| e[key] == value).collect()
    };
    let spiffe = format!("spiffe://cluster.local/ns/{NS}/sa/client");
    for f in &mesh {
        let e = entry("downstream_remote", &f.client);
        assert!(
            e.iter()
                .any(|e| e["downstream_peer_uri_san"] == spiffe.as_str()
                    && e["downstream_tls_version"] == "TLSv1.3"),
            "Envoy did not log {} as {spiffe}: {e:?}",
            f.client
        );
    }
    for f in &inbound {
        assert!(
            !entry("upstream_local", &f.client).is_empty(),
            "Envoy did not log its leg {}",
            f.client
        );
    }
    for f in &refused {
        let e = entry("downstream_remote", &f.client);
        assert!(
            e.iter()
                .any(|e| e["response_code_details"] == "filter_chain_not_found"),
            "Envoy did not log refusing {}: {e:?}",
            f.client
        );
    }

    // The saved pcapng reads back whole in tshark (no warning), an interface per pod
    // interface, and tshark too finds Istio's SNI in the client sidecar's ClientHellos.
    let ifaces = common::tshark_fields(&pcap, &["frame.interface_name"], "tcp");
    assert!(!ifaces.is_empty(), "no TCP packet in {}", pcap.display());
    let o = Command::new("tshark")
        .arg("-r")
        .arg(&pcap)
        .args(["-d", "tcp.port==8080,tls", "-Y", "tls.handshake.type == 1"])
        .args(["-T", "fields", "-e", "tls.handshake.extensions_server_name"])
        .output()
        .unwrap();
    let hellos = String::from_utf8_lossy(&o.stdout);
    assert!(
        hellos
            .lines()
            .filter(|s| *s == format!("outbound_.8080_._.server.{NS}.svc.cluster.local"))
            .count()
            >= mesh.len(),
        "{hellos}"
    );
    // The plugin deleted its helper (other tests' helpers may be running meanwhile).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let o = kubectl(&[
            "-n",
            "meshsniff-system",
            "get",
            &format!("pod/{helper}"),
            "--ignore-not-found",
            "-o",
            "jsonpath={.metadata.deletionTimestamp}",
        ]);
        let left = String::from_utf8_lossy(&o.stdout).into_owned();
        // Gone, or being deleted (the plugin deletes with --wait=false).
        if o.status.success() && (o.stdout.is_empty() || !left.trim().is_empty()) {
            break;
        }
        assert!(Instant::now() < deadline, "helper {helper} left: {left}");
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Pod Security, as the real API server enforces it: the server pod as mesh.sh made it is
/// refused by a namespace that enforces `baseline` (istio-init adds NET_ADMIN and NET_RAW,
/// which is why Istio without its CNI plugin needs `privileged`), and the error names them.
#[test]
fn istio_init_is_refused_under_baseline_pod_security() {
    let test = "istio_init_is_refused_under_baseline_pod_security";
    if !cluster_or_skip(test) {
        return;
    }
    mesh_up();
    let ns = "meshsniff-mesh-baseline";
    let _ = kubectl(&[
        "delete",
        "namespace",
        ns,
        "--ignore-not-found",
        "--wait=false",
    ]);
    let namespace = serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": {"pod-security.kubernetes.io/enforce": "baseline"}}
    });
    let o = common::output_with_stdin(
        kubectl_cmd().args(["create", "-f", "-"]),
        namespace.to_string().as_bytes(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // The live pod's spec, moved to that namespace, through admission (server-side dry run).
    let live: serde_json::Value =
        serde_json::from_str(&kubectl_ok(&["-n", NS, "get", "pod/server", "-o", "json"])).unwrap();
    let mut spec = live["spec"].clone();
    spec.as_object_mut().unwrap().remove("nodeName");
    spec["serviceAccountName"] = "default".into();
    spec.as_object_mut().unwrap().remove("serviceAccount");
    let pod = serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "server", "namespace": ns},
        "spec": spec,
    });
    let o = common::output_with_stdin(
        kubectl_cmd().args(["create", "--dry-run=server", "-f", "-"]),
        pod.to_string().as_bytes(),
    );
    let _ = kubectl(&[
        "delete",
        "namespace",
        ns,
        "--ignore-not-found",
        "--wait=false",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "baseline admitted istio-init: {}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert!(
        err.contains("violates PodSecurity \"baseline:latest\"")
            && err.contains("istio-init")
            && err.contains("NET_ADMIN")
            && err.contains("NET_RAW"),
        "{err}"
    );
}
