//! Role: `kubectl meshsniff` end to end against a real Kubernetes (tests/cluster/up.sh: API
//! server, etcd, controller-manager, scheduler, kubelet, containerd, on this machine), driven by
//! the real kubectl (the cluster's own 1.35 when built, else the one on PATH; never the
//! stand-in). Each test makes its own namespace and pods, runs the plugin as a user would, and
//! asserts what the user sees and what the API holds afterwards. Skipped (a failure under
//! `.ci/run`) when no cluster answers.

mod common;

use meshsniff::kube::manifest;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The cluster's state directory (up.sh): admin.kubeconfig, pki/ca.{crt,key}, logs.
const STATE: &str = common::CLUSTER_STATE;
/// Its pid files (up.sh): kubelet.pid.
const RUN: &str = "/run/meshsniff-cluster";
const WEB_IMAGE: &str = "meshsniff.test/web:1";
const CURL_IMAGE: &str = "meshsniff.test/curl:1";
/// Tests that change what every test shares (the helper namespace, the kubelet) hold it
/// exclusively; every other test holds it shared.
const LOCK: &str = "/tmp/meshsniff-cluster-tests.lock";

fn plugin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kubectl-meshsniff"))
}

/// A file lock held by a `flock` child until dropped.
struct Lock(Option<Child>);

fn lock(exclusive: bool) -> Lock {
    let mut c = Command::new("flock")
        .args([if exclusive { "-x" } else { "-s" }, LOCK, "-c"])
        .arg("echo locked; exec cat > /dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("flock");
    let mut line = String::new();
    BufReader::new(c.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked");
    Lock(Some(c))
}

impl Drop for Lock {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            drop(c.stdin.take());
            let _ = c.wait();
        }
    }
}

struct Cluster {
    kubeconfig: PathBuf,
    kubectl: PathBuf,
    /// PATH for the plugin: the real kubectl's directory first.
    path_env: String,
    node: String,
    node_ip: String,
    version: String,
    _lock: Lock,
}

/// The cluster, or a skip saying how to bring it up. `exclusive`: this test changes what the
/// others share.
fn cluster(test: &str, exclusive: bool) -> Option<Cluster> {
    let skip = |why: String| {
        common::skip(
            test,
            &format!("{why}; `sudo tests/cluster/up.sh` brings the test cluster up"),
        );
        None
    };
    let (kubeconfig, kubectl) = common::cluster_or_skip(test)?;
    let k = |args: &[&str]| {
        Command::new(&kubectl)
            .args(args)
            .env("KUBECONFIG", &kubeconfig)
            .output()
    };
    let nodes: Value = match k(&["get", "nodes", "-o", "json"]) {
        Ok(o) if o.status.success() => serde_json::from_slice(&o.stdout).unwrap(),
        _ => return skip("cannot list the nodes".into()),
    };
    let ready = meshsniff::kube::array_at(&nodes, "/items")
        .iter()
        .find(|n| {
            meshsniff::kube::array_at(n, "/status/conditions")
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .cloned();
    let Some(node) = ready else {
        return skip("no node is Ready".into());
    };
    let images: Vec<&str> = meshsniff::kube::array_at(&node, "/status/images")
        .iter()
        .flat_map(|i| meshsniff::kube::array_at(i, "/names"))
        .filter_map(Value::as_str)
        .collect();
    let helper = std::env::var("MESHSNIFF_CLUSTER_IMAGE")
        .unwrap_or_else(|_| manifest::DEFAULT_IMAGE.to_string());
    for want in [helper.as_str(), WEB_IMAGE, CURL_IMAGE] {
        if !images.iter().any(|i| i.ends_with(want)) {
            return skip(format!(
                "image {want} is not on the node (the helper image: release/build.sh makes \
                 release/out/image/meshsniff-oci.tar, up.sh imports it)"
            ));
        }
    }
    let node_ip = meshsniff::kube::array_at(&node, "/status/addresses")
        .iter()
        .find(|a| a["type"] == "InternalIP")
        .and_then(|a| a["address"].as_str())
        .unwrap_or("127.0.0.1")
        .to_string();
    let dir = kubectl.parent().unwrap().display().to_string();
    let path_env = format!("{dir}:{}", std::env::var("PATH").unwrap_or_default());
    let version = node["status"]["nodeInfo"]["kubeletVersion"]
        .as_str()
        .unwrap_or("?")
        .to_string();
    Some(Cluster {
        kubeconfig,
        kubectl,
        path_env,
        node: node["metadata"]["name"].as_str().unwrap().to_string(),
        node_ip,
        version,
        _lock: lock(exclusive),
    })
}

impl Cluster {
    fn kubectl_cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.kubectl);
        c.args(args).env("KUBECONFIG", &self.kubeconfig);
        c
    }

    fn try_k(&self, args: &[&str], stdin: Option<&str>) -> Output {
        common::output_with_stdin(&mut self.kubectl_cmd(args), stdin.unwrap_or("").as_bytes())
    }

    /// kubectl as the admin; panics with its stderr when it fails.
    fn k(&self, args: &[&str]) -> String {
        let o = self.try_k(args, None);
        assert!(
            o.status.success(),
            "kubectl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn apply(&self, obj: &str) {
        let o = self.try_k(&["apply", "-f", "-"], Some(obj));
        assert!(
            o.status.success(),
            "apply: {}\n{obj}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut a = args.to_vec();
        a.extend(["-o", "json"]);
        serde_json::from_str(&self.k(&a)).unwrap()
    }

    /// The plugin as a user runs it: KUBECONFIG, the real kubectl first on PATH; the helper
    /// image the plugin names by default (imported by up.sh from release/), or
    /// `MESHSNIFF_CLUSTER_IMAGE` (a helper built from this checkout, for a run by hand).
    fn plugin(&self, args: &[&str]) -> Command {
        let mut c = Command::new(plugin());
        c.args(args);
        if let (Ok(image), false) = (
            std::env::var("MESHSNIFF_CLUSTER_IMAGE"),
            matches!(args.first(), Some(&"gc" | &"rbac")),
        ) {
            c.arg(format!("--image={image}"));
        }
        c.env("KUBECONFIG", &self.kubeconfig)
            .env("PATH", &self.path_env);
        c
    }

    /// Every helper pod (any phase, terminating too) that captures a pod of namespace `ns`.
    fn helpers_of(&self, ns: &str) -> Vec<Value> {
        let list = self.json(&[
            "get",
            "pods",
            "-n",
            manifest::NAMESPACE,
            "-l",
            &format!("{}=meshsniff", manifest::MANAGED_BY),
        ]);
        meshsniff::kube::array_at(&list, "/items")
            .iter()
            .filter(|p| {
                p["metadata"]["annotations"]["meshsniff.io/targets"]
                    .as_str()
                    .unwrap_or_default()
                    .split(',')
                    .any(|t| t.starts_with(&format!("{ns}/")))
            })
            .cloned()
            .collect()
    }

    /// Waits until no helper of `ns` is left in the API; how long that took.
    fn helpers_gone(&self, ns: &str, limit: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let left = self.helpers_of(ns);
            if left.is_empty() {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "helper pods of {ns} still in the API after {limit:?}: {:?}",
                left.iter()
                    .map(|p| (&p["metadata"]["name"], &p["status"]["phase"]))
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// A client-certificate user signed by the cluster's CA: its kubeconfig.
    fn user(&self, dir: &Path, name: &str, groups: &[&str]) -> Option<PathBuf> {
        let (ca, key) = (
            PathBuf::from(STATE).join("pki/ca.crt"),
            PathBuf::from(STATE).join("pki/ca.key"),
        );
        if !key.is_file() {
            return None;
        }
        let mut subj = format!("/CN={name}");
        for g in groups {
            subj.push_str(&format!("/O={g}"));
        }
        let (k, csr, crt) = (
            dir.join(format!("{name}.key")),
            dir.join(format!("{name}.csr")),
            dir.join(format!("{name}.crt")),
        );
        let p = |x: &Path| x.display().to_string();
        common::sh(&[
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &subj,
            "-keyout",
            &p(&k),
            "-out",
            &p(&csr),
        ]);
        common::sh(&[
            "openssl",
            "x509",
            "-req",
            "-in",
            &p(&csr),
            "-CA",
            &p(&ca),
            "-CAkey",
            &p(&key),
            "-CAcreateserial",
            "-CAserial",
            &p(&dir.join("ca.srl")),
            "-days",
            "1",
            "-out",
            &p(&crt),
        ]);
        let server = self.k(&[
            "config",
            "view",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.server}",
        ]);
        let config = json!({
            "apiVersion": "v1", "kind": "Config", "current-context": "meshsniff",
            "clusters": [{"name": "meshsniff", "cluster": {"server": server, "certificate-authority": p(&ca)}}],
            "users": [{"name": name, "user": {"client-certificate": p(&crt), "client-key": p(&k)}}],
            "contexts": [{"name": "meshsniff", "context": {"cluster": "meshsniff", "user": name}}],
        });
        let file = dir.join(format!("{name}.kubeconfig"));
        std::fs::write(&file, config.to_string()).unwrap();
        Some(file)
    }
}

/// The user-facing RBAC of release/rbac.yaml (`drop`: one verb left out), renamed for one
/// test (`prefix`) and bound to `group`, without its Namespace (which exists).
fn rbac_copy(prefix: &str, group: &str, drop: Option<(&str, &str)>) -> String {
    let y = meshsniff::kube::rbac::yaml(drop);
    let (_, objects) = y.split_once("\n---\n").unwrap();
    objects
        .replace("name: meshsniff-users", &format!("name: {group}"))
        .replace("name: meshsniff-helper", &format!("name: {prefix}-helper"))
        .replace(
            "name: meshsniff-ephemeral",
            &format!("name: {prefix}-ephemeral"),
        )
        .replace("name: meshsniff\n", &format!("name: {prefix}\n"))
}

/// The web server, named in full (not left to the image's default command).
fn web_command() -> Value {
    json!(["/usr/bin/python3", "-m", "http.server", "8080"])
}

/// A namespace of one test, deleted (with what is in it) when dropped.
struct Ns<'a> {
    c: &'a Cluster,
    name: String,
    dir: PathBuf,
    rbac: Vec<String>,
}

impl<'a> Ns<'a> {
    fn new(c: &'a Cluster, tag: &str, labels: Value) -> Ns<'a> {
        let name = format!("msn-{tag}-{}", std::process::id());
        let _ = c.try_k(&["delete", "namespace", &name, "--wait=true"], None);
        c.apply(
            &json!({"apiVersion": "v1", "kind": "Namespace",
                    "metadata": {"name": name, "labels": labels}})
            .to_string(),
        );
        c.k(&[
            "wait",
            "--for=create",
            "serviceaccount/default",
            "-n",
            &name,
            "--timeout=60s",
        ]);
        let dir = std::env::temp_dir().join(&name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Ns {
            c,
            name,
            dir,
            rbac: Vec::new(),
        }
    }

    /// A pod spec on our node's network rules (no cluster DNS here).
    fn pod(&self, name: &str, labels: Value, image: &str, command: Value, hardened: bool) -> Value {
        let web = image == WEB_IMAGE;
        let mut container = json!({"name": name.split('-').next().unwrap(), "image": image,
            "imagePullPolicy": "Never"});
        if !command.is_null() {
            container["command"] = command;
        }
        if web {
            container["workingDir"] = json!("/srv");
        }
        let mut spec = json!({"dnsPolicy": "None", "dnsConfig": {"nameservers": [self.c.node_ip]},
            "terminationGracePeriodSeconds": 1, "containers": [container]});
        if hardened {
            // What Pod Security `restricted` asks of a pod.
            spec["securityContext"] = json!({"runAsNonRoot": true, "runAsUser": 65534,
                "runAsGroup": 65534, "seccompProfile": {"type": "RuntimeDefault"}});
            spec["containers"][0]["securityContext"] = json!({"allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"]}});
        }
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": self.name, "labels": labels}, "spec": spec})
    }

    /// Web pods (python3 -m http.server 8080) and a curl pod, Ready.
    fn pods(&self, webs: &[(&str, Value)], hardened: bool) {
        let mut names = Vec::new();
        for (name, labels) in webs {
            let p = self.pod(name, labels.clone(), WEB_IMAGE, web_command(), hardened);
            self.c.apply(&p.to_string());
            names.push(format!("pod/{name}"));
        }
        let client = self.pod(
            "curl",
            json!({"role": "client"}),
            CURL_IMAGE,
            json!(["/bin/busybox", "sleep", "3600"]),
            hardened,
        );
        self.c.apply(&client.to_string());
        names.push("pod/curl".into());
        let mut args = vec![
            "wait",
            "--for=condition=Ready",
            "-n",
            &self.name,
            "--timeout=120s",
        ];
        args.extend(names.iter().map(String::as_str));
        self.c.k(&args);
    }

    fn pod_json(&self, name: &str) -> Value {
        self.c
            .json(&["get", &format!("pod/{name}"), "-n", &self.name])
    }

    fn ip(&self, pod: &str) -> String {
        self.pod_json(pod)["status"]["podIP"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// One GET from the curl pod to `pod`'s server: its body.
    fn curl(&self, pod: &str, path: &str) -> String {
        let url = format!("http://{}:8080{path}", self.ip(pod));
        self.c.k(&[
            "exec",
            "-n",
            &self.name,
            "curl",
            "--",
            "/usr/bin/curl",
            "-sS",
            "--max-time",
            "5",
            &url,
        ])
    }

    /// The namespace's own copy of release/rbac.yaml's roles bound to `group` (deleted on drop).
    fn bind_rbac(&mut self, group: &str, drop: Option<(&str, &str)>) {
        let y = rbac_copy(&self.name, group, drop);
        self.c.apply(&y);
        // Every object of the full copy is deleted on drop (a variant names the same ones).
        let full = rbac_copy(&self.name, group, None);
        if !self.rbac.contains(&full) {
            self.rbac.push(full);
        }
    }

    /// Only the cluster-wide part (for when meshsniff-system, where the Role lives, is gone).
    fn bind_rbac_cluster_wide(&mut self, group: &str) {
        let all = rbac_copy(&self.name, group, None);
        let y: Vec<&str> = all
            .split("---\n")
            .filter(|d| !d.contains(&format!("namespace: {}", manifest::NAMESPACE)))
            .collect::<Vec<_>>();
        let y = y.join("---\n");
        self.c.apply(&y);
        self.rbac.push(y);
    }

    /// Waits until the API server's RBAC denies `user` what a new role left out.
    fn until_denied(&self, user: &str, group: &str, verb: &str, r: &meshsniff::kube::rbac::Rule) {
        let (res, sub) = match r.resource.split_once('/') {
            Some((a, b)) => (a.to_string(), Some(b)),
            None => (r.resource.to_string(), None),
        };
        let res = if r.group.is_empty() {
            res
        } else {
            format!("{res}.{}", r.group)
        };
        let mut args = vec![
            "auth".to_string(),
            "can-i".into(),
            verb.into(),
            res,
            format!("--as={user}"),
            format!("--as-group={group}"),
        ];
        if let Some(sub) = sub {
            args.push(format!("--subresource={sub}"));
        }
        match r.scope {
            meshsniff::kube::rbac::Scope::Helper => {
                args.push(format!("-n={}", manifest::NAMESPACE))
            }
            _ if r.resource == "namespaces" => {}
            _ => args.push(format!("-n={}", self.name)),
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let start = Instant::now();
        while String::from_utf8_lossy(&self.c.try_k(&a, None).stdout).trim() != "no" {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "RBAC still allows {args:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Ns<'_> {
    fn drop(&mut self) {
        for y in &self.rbac {
            let _ = self
                .c
                .try_k(&["delete", "--ignore-not-found", "-f", "-"], Some(y));
        }
        let _ = self
            .c
            .try_k(&["delete", "namespace", &self.name, "--wait=false"], None);
    }
}

/// A running plugin: its stderr in a file (the user's terminal), its stdout in another.
struct Run {
    child: Child,
    err: PathBuf,
    out: PathBuf,
}

impl Run {
    fn start(cmd: &mut Command, dir: &Path, tag: &str) -> Run {
        let (err, out) = (
            dir.join(format!("{tag}.stderr")),
            dir.join(format!("{tag}.stdout")),
        );
        let child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        Run { child, err, out }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits until stderr says `what` `times` times (each helper stream says "capturing on").
    fn wait_for(&mut self, what: &str, times: usize, limit: Duration) {
        let start = Instant::now();
        while self.stderr().matches(what).count() < times {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("the plugin ended ({st}) before `{what}`: {}", self.stderr());
            }
            assert!(
                start.elapsed() < limit,
                "no `{what}` after {limit:?}: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Its exit code, waiting at most `limit`.
    fn exit(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            if start.elapsed() > limit {
                let _ = self.child.kill();
                panic!("the plugin did not end in {limit:?}: {}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn signal(&self, sig: &str) {
        common::sh(&["kill", sig, &self.child.id().to_string()]);
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The flow records of `--format jsonl` output.
fn flows(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "flow")
        .collect()
}

/// tshark reads the file with nothing at all on stderr (no warning, no "cut short").
fn tshark_clean(file: &Path) {
    let o = Command::new("tshark").arg("-r").arg(file).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let err: Vec<&str> = err
        .lines()
        .filter(|l| !l.contains("Running as user") && !l.trim().is_empty())
        .collect();
    assert!(
        o.status.success() && err.is_empty(),
        "tshark -r {}: {err:?}",
        file.display()
    );
}

/// Issue 12 (1): the privileged helper on a real node captures real traffic between two real
/// pods: live verdicts, the saved pcapng read by tshark without a word on stderr, Wireshark
/// (a stand-in on PATH that saves what it is fed) given the same bytes; while it runs the API
/// holds the helper as promised (on the target's node, hostPID, labelled), and after the
/// normal end no helper of this capture is left in the API.
#[test]
fn privileged_helper_captures_real_traffic_saves_it_and_feeds_wireshark() {
    let t = "privileged_helper_captures_real_traffic_saves_it_and_feeds_wireshark";
    let Some(c) = cluster(t, false) else { return };
    if !common::have(t, "tshark") {
        return;
    }
    let ns = Ns::new(&c, "priv", json!({}));
    ns.pods(&[("web-1", json!({"app": "web"}))], false);
    let bin = ns.file("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let fed = ns.file("wireshark.pcapng");
    std::fs::write(
        bin.join("wireshark"),
        format!(
            "#!/bin/sh\necho \"$@\" > {0}.args\nexec cat > {0}\n",
            fed.display()
        ),
    )
    .unwrap();
    common::sh(&["chmod", "+x", bin.join("wireshark").to_str().unwrap()]);
    let saved = ns.file("web.pcapng");
    let mut cmd = c.plugin(&[
        "pod/web-1",
        "-n",
        &ns.name,
        "--duration",
        "12s",
        "-o",
        saved.to_str().unwrap(),
        "--format",
        "jsonl",
        "--wireshark",
    ]);
    cmd.env("PATH", format!("{}:{}", bin.display(), c.path_env));
    let started = Instant::now();
    let mut run = Run::start(&mut cmd, &ns.dir, "priv");
    run.wait_for("capturing on", 1, Duration::from_secs(90));
    let ready_after = started.elapsed();
    // The API holds the helper as the plugin promised.
    let helpers = c.helpers_of(&ns.name);
    assert_eq!(helpers.len(), 1, "one helper: {helpers:?}");
    let h = &helpers[0];
    assert_eq!(h["spec"]["nodeName"], c.node);
    assert_eq!(h["spec"]["hostPID"], true);
    assert_eq!(h["status"]["phase"], "Running");
    assert_eq!(h["metadata"]["labels"][manifest::MANAGED_BY], "meshsniff");
    let target = ns.pod_json("web-1");
    assert_eq!(target["spec"]["nodeName"], c.node);
    for _ in 0..3 {
        assert_eq!(ns.curl("web-1", "/").trim(), "hello from meshsniff web");
    }
    let code = run.exit(Duration::from_secs(60));
    let err = run.stderr();
    let records = flows(&run.stdout());
    let ip = ns.ip("web-1");
    let to_web: Vec<&Value> = records
        .iter()
        .filter(|f| f["server"] == format!("{ip}:8080"))
        .collect();
    assert!(
        to_web.len() >= 3,
        "three GETs judged live: {records:?}\n{err}"
    );
    for f in &to_web {
        assert_eq!(f["protocol"], "http", "{f}");
        assert_eq!(f["verdict"]["kind"], "plaintext-leak", "{f}");
    }
    assert_eq!(code, Some(1), "cleartext to a pod is a finding: {err}");
    tshark_clean(&saved);
    let gets = common::tshark_fields(&saved, &["http.request.uri"], "http.request");
    assert!(gets.len() >= 3, "{gets:?}");
    // Wireshark was fed the same stream, started as `wireshark -k -i -`.
    assert_eq!(
        std::fs::read_to_string(format!("{}.args", fed.display()))
            .unwrap()
            .trim(),
        "-k -i -"
    );
    let start = Instant::now();
    while std::fs::read(&fed).unwrap_or_default() != std::fs::read(&saved).unwrap() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "wireshark got other bytes"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        err.contains("deleted helper pod meshsniff-system/"),
        "{err}"
    );
    let gone = c.helpers_gone(&ns.name, Duration::from_secs(30));
    eprintln!(
        "{} ({}): helper capturing {:.1}s after start; helper gone from the API {:.1}s after \
         the plugin ended",
        t,
        c.version,
        ready_after.as_secs_f64(),
        gone.as_secs_f64()
    );
}

/// Issue 12 (image): `--upload` on the real node: the helper pod runs busybox:1.36 (no helper
/// image needed), the static helper (release/build.sh's) is copied in through the real API
/// server, kubelet and containerd's exec stream, its SHA-256 checked there with sha256sum,
/// then it captures real traffic as the normal helper does; the pod is deleted afterwards.
#[test]
fn upload_copies_the_static_helper_into_busybox_and_captures_on_the_real_node() {
    let t = "upload_copies_the_static_helper_into_busybox_and_captures_on_the_real_node";
    let Some(c) = cluster(t, false) else { return };
    let helper = common::repo().join("release/out/archive/meshsniff");
    if !helper.is_file() {
        common::skip(
            t,
            "release/out/archive/meshsniff is missing (release/build.sh makes the static helper)",
        );
        return;
    }
    let ns = Ns::new(&c, "upl", json!({}));
    ns.pods(&[("web-1", json!({"app": "web"}))], false);
    let saved = ns.file("web.pcapng");
    let mut cmd = c.plugin(&[
        "pod/web-1",
        "-n",
        &ns.name,
        "--duration",
        "10s",
        "-o",
        saved.to_str().unwrap(),
        "--format",
        "jsonl",
        "--upload",
        "--helper-binary",
        helper.to_str().unwrap(),
    ]);
    let started = Instant::now();
    let mut run = Run::start(&mut cmd, &ns.dir, "upl");
    run.wait_for("capturing on", 1, Duration::from_secs(120));
    let ready_after = started.elapsed();
    let helpers = c.helpers_of(&ns.name);
    assert_eq!(helpers.len(), 1, "one helper: {helpers:?}");
    assert_eq!(helpers[0]["spec"]["containers"][0]["image"], "busybox:1.36");
    assert_eq!(helpers[0]["spec"]["nodeName"], c.node);
    for _ in 0..2 {
        assert_eq!(ns.curl("web-1", "/").trim(), "hello from meshsniff web");
    }
    let code = run.exit(Duration::from_secs(60));
    let err = run.stderr();
    assert!(
        err.contains("kubectl meshsniff: copied the helper (") && err.contains("SHA-256 checked"),
        "{err}"
    );
    assert!(err.contains("checked in the pod (sha256sum)"), "{err}");
    let records = flows(&run.stdout());
    let ip = ns.ip("web-1");
    let to_web: Vec<&Value> = records
        .iter()
        .filter(|f| f["server"] == format!("{ip}:8080"))
        .collect();
    assert!(to_web.len() >= 2, "two GETs judged: {records:?}\n{err}");
    for f in &to_web {
        assert_eq!(f["verdict"]["kind"], "plaintext-leak", "{f}");
    }
    assert_eq!(code, Some(1), "cleartext to a pod is a finding: {err}");
    tshark_clean(&saved);
    let gone = c.helpers_gone(&ns.name, Duration::from_secs(30));
    eprintln!(
        "{t} ({}): copied, checked and capturing {:.1}s after start; helper gone {:.1}s after \
         the plugin ended",
        c.version,
        ready_after.as_secs_f64(),
        gone.as_secs_f64()
    );
}

/// Issue 12 (1): `-l app=web` with two real pods: one pcapng (tshark reads it clean) with an
/// interface per pod, each pod's own GET on its own interface.
#[test]
fn a_selector_merges_two_real_pods_into_one_pcapng_with_an_interface_each() {
    let t = "a_selector_merges_two_real_pods_into_one_pcapng_with_an_interface_each";
    let Some(c) = cluster(t, false) else { return };
    if !common::have(t, "tshark") {
        return;
    }
    let ns = Ns::new(&c, "sel", json!({}));
    ns.pods(
        &[
            ("web-1", json!({"app": "web"})),
            ("web-2", json!({"app": "web"})),
        ],
        false,
    );
    let saved = ns.file("two.pcapng");
    let mut run = Run::start(
        &mut c.plugin(&[
            "-l",
            "app=web",
            "-n",
            &ns.name,
            "--duration",
            "10s",
            "-o",
            saved.to_str().unwrap(),
        ]),
        &ns.dir,
        "sel",
    );
    run.wait_for("capturing on", 2, Duration::from_secs(90));
    ns.curl("web-1", "/one");
    ns.curl("web-2", "/two");
    let code = run.exit(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{}", run.stderr());
    tshark_clean(&saved);
    let mut seen = common::tshark_fields(
        &saved,
        &["frame.interface_name", "http.request.uri"],
        "http.request",
    );
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[0].starts_with(&format!("{}/web-1:", ns.name)) && seen[0].ends_with("\t/one"),
        "{seen:?}"
    );
    assert!(
        seen[1].starts_with(&format!("{}/web-2:", ns.name)) && seen[1].ends_with("\t/two"),
        "{seen:?}"
    );

    c.helpers_gone(&ns.name, Duration::from_secs(30));
}

/// Issue 12 (2): `--ephemeral` against a real pod in a namespace whose Pod Security level
/// (privileged) admits NET_RAW: the capture from inside the pod, judged and saved; the API then
/// holds the ephemeral container in the pod (it cannot be removed) and no helper pod. Under
/// `restricted` the API server refuses the container and the plugin says why and what it needs.
#[test]
fn ephemeral_mode_captures_inside_a_real_pod_where_policy_allows_net_raw() {
    let t = "ephemeral_mode_captures_inside_a_real_pod_where_policy_allows_net_raw";
    let Some(c) = cluster(t, false) else { return };
    if !common::have(t, "tshark") {
        return;
    }
    let ns = Ns::new(
        &c,
        "eph",
        json!({"pod-security.kubernetes.io/enforce": "privileged"}),
    );
    ns.pods(&[("web-1", json!({"app": "web"}))], false);
    let saved = ns.file("eph.pcapng");
    let mut run = Run::start(
        &mut c.plugin(&[
            "web-1",
            "-n",
            &ns.name,
            "--ephemeral",
            "--duration",
            "8s",
            "--start-timeout",
            "60s",
            "-o",
            saved.to_str().unwrap(),
            "--format",
            "jsonl",
        ]),
        &ns.dir,
        "eph",
    );
    run.wait_for("capturing on", 1, Duration::from_secs(90));
    ns.curl("web-1", "/e1");
    ns.curl("web-1", "/e2");
    let code = run.exit(Duration::from_secs(60));
    let err = run.stderr();
    assert_eq!(code, Some(1), "{err}");
    let ip = ns.ip("web-1");
    assert!(
        flows(&run.stdout())
            .iter()
            .filter(|f| f["server"] == format!("{ip}:8080"))
            .count()
            >= 2,
        "{}",
        run.stdout()
    );
    tshark_clean(&saved);
    assert!(
        err.contains("ephemeral container stays in the pod spec"),
        "{err}"
    );
    let pod = ns.pod_json("web-1");
    let eph = meshsniff::kube::array_at(&pod, "/spec/ephemeralContainers");
    assert_eq!(eph.len(), 1, "{pod}");
    assert!(
        eph[0]["name"].as_str().unwrap().starts_with("meshsniff-"),
        "{pod}"
    );
    assert_eq!(
        eph[0]["securityContext"]["capabilities"]["add"],
        json!(["NET_RAW", "NET_ADMIN"])
    );
    assert!(
        c.helpers_of(&ns.name).is_empty(),
        "no helper pod in ephemeral mode"
    );

    // Under `restricted`, the API server refuses the ephemeral container.
    let strict = Ns::new(
        &c,
        "ephr",
        json!({"pod-security.kubernetes.io/enforce": "restricted"}),
    );
    strict.pods(&[("web-1", json!({"app": "web"}))], true);
    let out = c
        .plugin(&[
            "web-1",
            "-n",
            &strict.name,
            "--ephemeral",
            "--duration",
            "5s",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("cannot add an ephemeral container")
            && err.contains("violates PodSecurity")
            && err.contains("NET_RAW"),
        "{err}"
    );
    let pod = strict.pod_json("web-1");
    assert!(
        meshsniff::kube::array_at(&pod, "/spec/ephemeralContainers").is_empty(),
        "{pod}"
    );
}

/// Issue 12 (3): a target namespace that enforces `restricted` (its pods hardened as that
/// level asks) is captured from the helper in meshsniff-system all the same.
#[test]
fn a_restricted_target_namespace_is_captured_from_meshsniff_system() {
    let t = "a_restricted_target_namespace_is_captured_from_meshsniff_system";
    let Some(c) = cluster(t, false) else { return };
    let ns = Ns::new(
        &c,
        "rst",
        json!({"pod-security.kubernetes.io/enforce": "restricted"}),
    );
    ns.pods(&[("web-1", json!({"app": "web"}))], true);
    let mut run = Run::start(
        &mut c.plugin(&[
            "web-1",
            "-n",
            &ns.name,
            "--duration",
            "6s",
            "--format",
            "jsonl",
        ]),
        &ns.dir,
        "rst",
    );
    run.wait_for("capturing on", 1, Duration::from_secs(90));
    ns.curl("web-1", "/");
    let code = run.exit(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{}", run.stderr());
    let ip = ns.ip("web-1");
    assert!(
        flows(&run.stdout())
            .iter()
            .any(|f| f["server"] == format!("{ip}:8080")),
        "{}",
        run.stdout()
    );
    c.helpers_gone(&ns.name, Duration::from_secs(30));
}

/// Issue 12 (3): a meshsniff-system that enforces `baseline`: the plugin warns before it
/// creates, the API server's admission refuses the privileged helper, and the message gives the
/// fix (the label, or --ephemeral); nothing is left in the API. The label is put back after.
#[test]
fn a_baseline_meshsniff_system_is_reported_with_the_fix() {
    let t = "a_baseline_meshsniff_system_is_reported_with_the_fix";
    let Some(c) = cluster(t, true) else { return };
    let ns = Ns::new(&c, "psab", json!({}));
    ns.pods(&[("web-1", json!({"app": "web"}))], false);
    let _ = c.try_k(
        &["create", "-f", "-"],
        Some(&manifest::namespace().to_string()),
    );
    let label = "pod-security.kubernetes.io/enforce";
    c.k(&[
        "label",
        "namespace",
        manifest::NAMESPACE,
        &format!("{label}=baseline"),
        "--overwrite",
    ]);
    let out = c
        .plugin(&["web-1", "-n", &ns.name, "--duration", "5s"])
        .output()
        .unwrap();
    c.k(&[
        "label",
        "namespace",
        manifest::NAMESPACE,
        &format!("{label}=privileged"),
        "--overwrite",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("warning: namespace meshsniff-system enforces Pod Security `baseline`"),
        "{err}"
    );
    assert!(
        err.contains("Pod Security rejected the helper pod")
            && err.contains("violates PodSecurity \"baseline:latest\"")
            && err.contains("pod-security.kubernetes.io/enforce=privileged --overwrite")
            && err.contains("--ephemeral"),
        "{err}"
    );
    assert!(c.helpers_of(&ns.name).is_empty());
}

/// Issue 12 (3): no meshsniff-system, and a user (a client certificate of the cluster's CA)
/// who may do everything release/rbac.yaml grants but create namespaces: one clear message
/// naming the permission and the fix, nothing created. Then release/rbac.yaml, applied by the
/// admin as documented, creates the namespace and the same user captures.
#[test]
fn a_user_who_may_not_create_the_namespace_is_told_so() {
    let t = "a_user_who_may_not_create_the_namespace_is_told_so";
    let Some(c) = cluster(t, true) else { return };
    let mut ns = Ns::new(&c, "nons", json!({}));
    ns.pods(&[("web-1", json!({"app": "web"}))], false);
    let group = format!("{}-g", ns.name);
    let Some(user) = c.user(&ns.dir, &format!("{}-u", ns.name), &[&group]) else {
        common::skip(
            t,
            "the cluster's CA key is not in /var/lib/meshsniff-cluster/pki",
        );
        return;
    };
    c.k(&[
        "delete",
        "namespace",
        manifest::NAMESPACE,
        "--ignore-not-found",
        "--wait=true",
        "--timeout=90s",
    ]);
    ns.bind_rbac_cluster_wide(&group);
    let out = c
        .plugin(&["web-1", "-n", &ns.name, "--duration", "5s"])
        .env("KUBECONFIG", &user)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    // Put the namespace back as the docs say: the admin applies release/rbac.yaml.
    let file = std::fs::read_to_string(common::repo().join("release/rbac.yaml")).unwrap();
    c.apply(&file);
    ns.bind_rbac(&group, None);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].contains("namespace meshsniff-system does not exist and you may not create it")
            && lines[0].contains("create namespaces (cluster-wide)")
            && lines[0].contains("release/rbac.yaml"),
        "{err}"
    );
    assert!(c.helpers_of(&ns.name).is_empty());
    let out = c
        .plugin(&["web-1", "-n", &ns.name, "--duration", "4s"])
        .env("KUBECONFIG", &user)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "after release/rbac.yaml: {err}"
    );
    assert!(
        !err.contains("created namespace"),
        "the file made it: {err}"
    );
    c.helpers_gone(&ns.name, Duration::from_secs(30));
}

/// Issue 12 (4): a user bound to exactly release/rbac.yaml's roles (its own client
/// certificate) captures a pod, with a helper and with --ephemeral, and collects with gc.
#[test]
fn a_user_bound_to_release_rbac_yaml_captures() {
    let t = "a_user_bound_to_release_rbac_yaml_captures";
    let Some(c) = cluster(t, false) else { return };
    let mut ns = Ns::new(
        &c,
        "rbac",
        json!({"pod-security.kubernetes.io/enforce": "privileged"}),
    );
    ns.pods(&[("web-1", json!({"app": "web"}))], false);
    let group = format!("{}-g", ns.name);
    let Some(user) = c.user(&ns.dir, &format!("{}-u", ns.name), &[&group]) else {
        common::skip(
            t,
            "the cluster's CA key is not in /var/lib/meshsniff-cluster/pki",
        );
        return;
    };
    ns.bind_rbac(&group, None);
    let mut run = Run::start(
        c.plugin(&[
            "web-1",
            "-n",
            &ns.name,
            "--duration",
            "6s",
            "--format",
            "jsonl",
        ])
        .env("KUBECONFIG", &user),
        &ns.dir,
        "rbac",
    );
    run.wait_for("capturing on", 1, Duration::from_secs(90));
    ns.curl("web-1", "/");
    let code = run.exit(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{}", run.stderr());
    assert!(!flows(&run.stdout()).is_empty());
    // --ephemeral as the same user (its ClusterRole is in the file too).
    let out = c
        .plugin(&["web-1", "-n", &ns.name, "--ephemeral", "--duration", "3s"])
        .env("KUBECONFIG", &user)
        .output()
        .unwrap();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "--ephemeral as the user: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = c.plugin(&["gc"]).env("KUBECONFIG", &user).output().unwrap();
    assert!(
        out.status.success(),
        "gc as the user: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    c.helpers_gone(&ns.name, Duration::from_secs(30));
}

/// Issue 12 (4): release/rbac.yaml with one verb removed at a time: the run that needs it
/// fails (exit 2 or 3) and names exactly that permission; nothing it created is left. The
/// permissions a good run can do without (events, to explain a failed start; get on pods/exec,
/// the WebSocket exec kubectl falls back from) cannot fail it.
#[test]
fn each_verb_removed_from_release_rbac_yaml_is_named() {
    let t = "each_verb_removed_from_release_rbac_yaml_is_named";
    let Some(c) = cluster(t, false) else { return };
    let mut ns = Ns::new(
        &c,
        "verb",
        json!({"pod-security.kubernetes.io/enforce": "privileged"}),
    );
    ns.pods(&[("web-1", json!({"app": "web"}))], false);
    // Workloads that select no running pod: found (their selector read) or refused.
    for (kind, extra) in [
        ("Deployment", json!({"replicas": 0})),
        ("StatefulSet", json!({"replicas": 0, "serviceName": "none"})),
        ("ReplicaSet", json!({"replicas": 0})),
        ("DaemonSet", json!({})),
    ] {
        let mut spec = json!({"selector": {"matchLabels": {"app": "none"}},
            "template": {"metadata": {"labels": {"app": "none"}}, "spec": {
                "nodeSelector": {"meshsniff.io/none": "none"},
                "containers": [{"name": "w", "image": WEB_IMAGE, "imagePullPolicy": "Never"}]}}});
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        c.apply(
            &json!({"apiVersion": "apps/v1", "kind": kind,
                "metadata": {"name": "w", "namespace": ns.name}, "spec": spec})
            .to_string(),
        );
    }
    let group = format!("{}-g", ns.name);
    let user_name = format!("{}-u", ns.name);
    let Some(user) = c.user(&ns.dir, &user_name, &[&group]) else {
        common::skip(
            t,
            "the cluster's CA key is not in /var/lib/meshsniff-cluster/pki",
        );
        return;
    };
    let n = ns.name.clone();
    let pod_run: Vec<&str> = vec!["web-1", "-n", &n, "--duration", "3s"];
    let mut seen = Vec::new();
    for r in meshsniff::kube::rbac::RULES {
        for verb in r.verbs {
            let args: Vec<&str> = match (r.resource, *verb) {
                ("pods", "list") => vec!["-l", "app=web", "-n", &n, "--duration", "3s"],
                ("deployments", _) => vec!["deploy/w", "-n", &n],
                ("statefulsets", _) => vec!["sts/w", "-n", &n],
                ("replicasets", _) => vec!["rs/w", "-n", &n],
                ("daemonsets", _) => vec!["ds/w", "-n", &n],
                _ if r.scope == meshsniff::kube::rbac::Scope::Ephemeral => {
                    vec!["web-1", "-n", &n, "--ephemeral", "--duration", "3s"]
                }
                _ => pod_run.clone(),
            };
            if seen.contains(&(r.resource, *verb, args.clone())) {
                continue;
            }
            seen.push((r.resource, *verb, args.clone()));
            ns.bind_rbac(&group, Some((r.resource, verb)));
            ns.until_denied(&user_name, &group, verb, r);
            let began = Instant::now();
            let out = c.plugin(&args).env("KUBECONFIG", &user).output().unwrap();
            let took = began.elapsed();
            let err = String::from_utf8_lossy(&out.stderr);
            let group_of = if r.group.is_empty() {
                r.resource.to_string()
            } else {
                format!("{}.{}", r.resource, r.group)
            };
            let want = format!("missing permission: {verb} {group_of}");
            // events: only to explain a failed start. get on pods/exec: kubectl's WebSocket
            // exec (a GET); refused, kubectl 1.35 falls back to SPDY (a POST: create), so a
            // run still works, one round trip later (client-go's FallbackExecutor).
            // watch on pods: `kubectl wait` re-lists when its watch is refused and sees the
            // helper Ready then (seen on the test cluster), slower.
            let diagnosis_only = r.resource == "events"
                || (r.resource == "pods/exec" && *verb == "get")
                || (r.resource == "pods" && *verb == "watch");
            eprintln!(
                "without {verb} {group_of}: exit {:?} after {:.1}s: {}",
                out.status.code(),
                took.as_secs_f64(),
                err.lines()
                    .find(|l| l.contains("missing permission"))
                    .unwrap_or("(no missing permission)")
            );
            if diagnosis_only {
                assert!(
                    matches!(out.status.code(), Some(0 | 1)),
                    "without {verb} {group_of} a good run still works: {err}"
                );
            } else {
                assert!(
                    matches!(out.status.code(), Some(2 | 3)) && err.contains(&want),
                    "without {verb} {group_of}: `{want}` in: {err}"
                );
            }
        }
    }
    ns.bind_rbac(&group, None);
    c.helpers_gone(&ns.name, Duration::from_secs(60));
}

/// Issue 12 (5): SIGINT and SIGTERM mid-stream: the capture so far saved (tshark reads it
/// clean), the helper deleted through the API, and promptly.
#[test]
fn sigint_and_sigterm_mid_stream_delete_the_helper_through_the_api() {
    let t = "sigint_and_sigterm_mid_stream_delete_the_helper_through_the_api";
    let Some(c) = cluster(t, false) else { return };
    if !common::have(t, "tshark") {
        return;
    }
    let ns = Ns::new(&c, "sig", json!({}));
    ns.pods(&[("web-1", json!({"app": "web"}))], false);
    for sig in ["-INT", "-TERM"] {
        let saved = ns.file(&format!("cut{sig}.pcapng"));
        let mut run = Run::start(
            &mut c.plugin(&[
                "web-1",
                "-n",
                &ns.name,
                "--duration",
                "10m",
                "-o",
                saved.to_str().unwrap(),
            ]),
            &ns.dir,
            sig,
        );
        run.wait_for("capturing on", 1, Duration::from_secs(90));
        ns.curl("web-1", "/");
        std::thread::sleep(Duration::from_millis(500));
        run.signal(sig);
        let stop = Instant::now();
        let code = run.exit(Duration::from_secs(20));
        let took = stop.elapsed();
        let err = run.stderr();
        assert_eq!(code, Some(1), "{sig}: the GET is judged: {err}");
        assert!(err.contains("deleted helper pod"), "{sig}: {err}");
        tshark_clean(&saved);
        assert_eq!(
            common::tshark_fields(&saved, &["http.request.method"], "http.request"),
            ["GET"]
        );
        let gone = c.helpers_gone(&ns.name, Duration::from_secs(30));
        eprintln!(
            "{sig}: plugin ended {:.1}s after the signal; helper gone from the API {:.1}s later",
            took.as_secs_f64(),
            gone.as_secs_f64()
        );
    }
}

/// Issue 12 (5): the target pod deleted mid-capture: the plugin notices (the helper alone
/// would capture nothing until --duration), says so, ends with exit 3 (the capture ended
/// early) and deletes the helper.
#[test]
fn a_target_deleted_mid_capture_ends_it_and_the_helper_is_deleted() {
    let t = "a_target_deleted_mid_capture_ends_it_and_the_helper_is_deleted";
    let Some(c) = cluster(t, false) else { return };
    let ns = Ns::new(&c, "del", json!({}));
    ns.pods(&[("web-1", json!({"app": "web"}))], false);
    let mut run = Run::start(
        &mut c.plugin(&[
            "web-1",
            "-n",
            &ns.name,
            "--duration",
            "5m",
            "--format",
            "jsonl",
        ]),
        &ns.dir,
        "del",
    );
    run.wait_for("capturing on", 1, Duration::from_secs(90));
    ns.curl("web-1", "/");
    c.k(&["delete", "pod", "web-1", "-n", &ns.name, "--wait=false"]);
    let start = Instant::now();
    let code = run.exit(Duration::from_secs(60));
    let err = run.stderr();
    // The GET before is a finding: exit 1 (findings outrank "ended early", 3).
    assert_eq!(code, Some(1), "{err}");
    let noticed = err.contains(&format!(
        "target pod {}/web-1 was deleted; stopping the capture",
        ns.name
    ));
    assert!(noticed || err.contains("ended early"), "{err}");
    eprintln!(
        "target deleted: {}",
        if noticed {
            "the plugin's look at the target stopped it"
        } else {
            "the stream ended by itself"
        }
    );
    assert!(
        !flows(&run.stdout()).is_empty(),
        "what came before is judged"
    );
    assert!(err.contains("deleted helper pod"), "{err}");
    c.helpers_gone(&ns.name, Duration::from_secs(30));
    eprintln!(
        "target deleted: the plugin ended {:.1}s later",
        start.elapsed().as_secs_f64()
    );
}

/// The kubelet's argv and environment (up.sh started it), read from /proc.
type Kubelet = (u32, Vec<String>, Vec<(String, String)>);

fn kubelet() -> Option<Kubelet> {
    let pid: u32 = std::fs::read_to_string(format!("{RUN}/kubelet.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let split = |f: &str| -> Option<Vec<String>> {
        Some(
            std::fs::read(format!("/proc/{pid}/{f}"))
                .ok()?
                .split(|b| *b == 0)
                .filter(|s| !s.is_empty())
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect(),
        )
    };
    let argv = split("cmdline")?;
    let env = split("environ")?
        .into_iter()
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.into(), v.into())))
        .collect();
    Some((pid, argv, env))
}

/// Issue 12 (5): the kubelet restarted mid-stream (stopped, then started again exactly as
/// up.sh started it): the exec stream through it breaks, the plugin says so and ends with
/// exit 3, and the helper is deleted through the API once the node is back.
#[test]
fn a_kubelet_restart_mid_stream_is_reported_and_the_helper_deleted() {
    let t = "a_kubelet_restart_mid_stream_is_reported_and_the_helper_deleted";
    let Some(c) = cluster(t, true) else { return };
    let Some((pid, argv, env)) = kubelet() else {
        common::skip(
            t,
            "no kubelet pid in /run/meshsniff-cluster (up.sh writes it)",
        );
        return;
    };
    let ns = Ns::new(&c, "kubelet", json!({}));
    ns.pods(&[("web-1", json!({"app": "web"}))], false);
    let mut run = Run::start(
        &mut c.plugin(&["web-1", "-n", &ns.name, "--duration", "5m"]),
        &ns.dir,
        "kubelet",
    );
    run.wait_for("capturing on", 1, Duration::from_secs(90));
    ns.curl("web-1", "/");
    common::sh(&["kill", "-TERM", &pid.to_string()]);
    let start = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "kubelet did not stop"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // As up.sh starts it: its own session, output appended to its log, its pid recorded.
    let started = Command::new("sh")
        .args([
            "-c",
            "setsid \"$@\" >> \"$0\" 2>&1 < /dev/null & echo $!",
            &format!("{STATE}/logs/kubelet.log"),
        ])
        .args(&argv)
        .env_clear()
        .envs(env)
        .output()
        .unwrap();
    assert!(started.status.success());
    let new = String::from_utf8_lossy(&started.stdout).trim().to_string();
    std::fs::write(format!("{RUN}/kubelet.pid"), &new).unwrap();
    // The stream ends by itself (kubelet carried it) or goes on (it did not): either way the
    // plugin must end cleanly and the helper must go.
    let ended = {
        let s = Instant::now();
        loop {
            if run.child.try_wait().unwrap().is_some() || s.elapsed() > Duration::from_secs(30) {
                break run.child.try_wait().unwrap().is_some();
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    if !ended {
        run.signal("-INT");
    }
    let code = run.exit(Duration::from_secs(30));
    let err = run.stderr();
    eprintln!(
        "kubelet restart: the stream {} (exit {code:?})",
        if ended {
            "broke"
        } else {
            "survived; stopped with SIGINT"
        }
    );
    // The GET before is a finding: exit 1 either way (findings outrank "ended early", 3).
    assert_eq!(code, Some(1), "{err}");
    if ended {
        assert!(err.contains("ended early"), "{err}");
    }
    assert!(err.contains("deleted helper pod"), "{err}");
    c.k(&[
        "wait",
        "--for=condition=Ready",
        &format!("node/{}", c.node),
        "--timeout=120s",
    ]);
    let gone = c.helpers_gone(&ns.name, Duration::from_secs(90));
    eprintln!(
        "helper gone {:.1}s after the plugin ended",
        gone.as_secs_f64()
    );
}

/// Issue 12 (5): the plugin SIGKILLed mid-stream (no cleanup can run): the helper ends by its
/// own deadline (start timeout + duration + 30 s: measured here), `gc` then deletes it, and no
/// kubectl of the plugin is left running.
#[test]
fn a_sigkilled_plugin_leaves_a_helper_that_its_deadline_ends_and_gc_removes() {
    let t = "a_sigkilled_plugin_leaves_a_helper_that_its_deadline_ends_and_gc_removes";
    let Some(c) = cluster(t, false) else { return };
    let ns = Ns::new(&c, "kill", json!({}));
    ns.pods(&[("web-1", json!({"app": "web"}))], false);
    let mut run = Run::start(
        &mut c.plugin(&[
            "web-1",
            "-n",
            &ns.name,
            "--duration",
            "3s",
            "--start-timeout",
            "5s",
        ]),
        &ns.dir,
        "kill",
    );
    run.wait_for("capturing on", 1, Duration::from_secs(60));
    run.signal("-KILL");
    let killed = Instant::now();
    assert_eq!(run.exit(Duration::from_secs(5)), None, "killed by a signal");
    let helpers = c.helpers_of(&ns.name);
    assert_eq!(helpers.len(), 1, "left behind: {helpers:?}");
    let name = helpers[0]["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(
        helpers[0]["spec"]["activeDeadlineSeconds"],
        5 + 3 + manifest::GRACE_SECS
    );
    // gc leaves a helper that has not expired.
    let out = c.plugin(&["gc"]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !said.contains(&name), "{said}");
    let ended = loop {
        let p = c.json(&["get", &format!("pod/{name}"), "-n", manifest::NAMESPACE]);
        let phase = p["status"]["phase"].as_str().unwrap_or("").to_string();
        if phase == "Succeeded" || phase == "Failed" {
            break (killed.elapsed(), phase, p["status"]["reason"].clone());
        }
        assert!(
            killed.elapsed() < Duration::from_secs(90),
            "the helper runs on past its deadline: {p}"
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    eprintln!(
        "SIGKILL: the helper ended by itself {:.1}s after the plugin died ({} {})",
        ended.0.as_secs_f64(),
        ended.1,
        ended.2
    );
    // No kubectl of the dead plugin is left streaming.
    let ours = |pid: &str| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(&name))
            .unwrap_or(false)
    };
    let left: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|p| p.chars().all(|c| c.is_ascii_digit()) && ours(p))
        .collect();
    assert!(left.is_empty(), "kubectl processes left: {left:?}");
    let out = c.plugin(&["gc"]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains(&format!("deleted meshsniff-system/{name}")),
        "{said}"
    );
    c.helpers_gone(&ns.name, Duration::from_secs(30));
}

/// Issue 12 (6): the container ID the API reports (containerd://…) leads to the container's
/// process on this node's real cgroup layout (containerd, cgroupfs driver), both here (the
/// helper's own lookup, run on the node) and in the helper pod: `-i eth9` is checked in the
/// target's network namespace, which the helper entered by that ID.
#[test]
fn the_container_id_leads_to_the_real_process_on_this_cgroup_layout() {
    let t = "the_container_id_leads_to_the_real_process_on_this_cgroup_layout";
    let Some(c) = cluster(t, false) else { return };
    if !common::root_or_skip(t) {
        return;
    }
    let ns = Ns::new(&c, "cid", json!({}));
    ns.pods(&[("web-1", json!({"app": "web"}))], false);
    let pod = ns.pod_json("web-1");
    let target = meshsniff::kube::target::pod_target(&pod, None).unwrap();
    assert!(
        target.container_id.starts_with("containerd://"),
        "{target:?}"
    );
    let id = meshsniff::capture::target::container_id(&target.container_id).unwrap();
    let pid = meshsniff::capture::target::find_container_pid(Path::new("/proc"), &id).unwrap();
    let cmdline = String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap())
        .replace('\0', " ");
    assert!(cmdline.contains("http.server"), "{pid}: {cmdline}");
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let line = cgroup.lines().find(|l| l.contains(&id)).unwrap();
    eprintln!("container {} is pid {pid}; its cgroup: {line}", &id[..12]);
    assert!(
        meshsniff::capture::target::cgroup_line_matches(line, &id),
        "{line}"
    );
    // The helper's own lookup, in its pod, by the same ID.
    let out = c
        .plugin(&["web-1", "-n", &ns.name, "-i", "eth9", "--duration", "5s"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "pod {}/web-1 has no interface `eth9`; it has: ",
            ns.name
        )) && err.contains("eth0")
            && err.contains("lo"),
        "{err}"
    );
    c.helpers_gone(&ns.name, Duration::from_secs(30));
}

/// Issue 12 (7): kubectl's target forms against the real API: `deploy/NAME` captures every pod
/// of a real Deployment (one interface each), `sts/NAME` its StatefulSet's pod, and
/// `-A -l` pods of two namespaces into one pcapng.
#[test]
fn workloads_and_all_namespaces_against_the_real_api() {
    let t = "workloads_and_all_namespaces_against_the_real_api";
    let Some(c) = cluster(t, false) else { return };
    if !common::have(t, "tshark") {
        return;
    }
    let ns = Ns::new(&c, "wl", json!({}));
    ns.pods(&[], false);
    let app = format!("wl-{}", std::process::id());
    let template = |labels: Value| {
        json!({"metadata": {"labels": labels}, "spec": {"dnsPolicy": "None",
            "dnsConfig": {"nameservers": [c.node_ip]}, "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "web", "image": WEB_IMAGE, "imagePullPolicy": "Never",
                "command": web_command(), "workingDir": "/srv"}]}})
    };
    c.apply(
        &json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": ns.name},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": app, "tier": "web"}},
                     "template": template(json!({"app": app, "tier": "web"}))}})
        .to_string(),
    );
    c.apply(
        &json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": ns.name},
            "spec": {"replicas": 1, "serviceName": "db",
                     "selector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["db"]}]},
                     "template": template(json!({"app": app, "tier": "db"}))}})
        .to_string(),
    );
    c.k(&[
        "rollout",
        "status",
        "deployment/web",
        "-n",
        &ns.name,
        "--timeout=120s",
    ]);
    c.k(&[
        "rollout",
        "status",
        "statefulset/db",
        "-n",
        &ns.name,
        "--timeout=120s",
    ]);
    let web_pods: Vec<String> = meshsniff::kube::array_at(
        &c.json(&["get", "pods", "-n", &ns.name, "-l", "tier=web"]),
        "/items",
    )
    .iter()
    .map(|p| p["metadata"]["name"].as_str().unwrap().to_string())
    .collect();
    assert_eq!(web_pods.len(), 2);
    let saved = ns.file("deploy.pcapng");
    let mut run = Run::start(
        &mut c.plugin(&[
            "deploy/web",
            "-n",
            &ns.name,
            "--duration",
            "8s",
            "-o",
            saved.to_str().unwrap(),
        ]),
        &ns.dir,
        "deploy",
    );
    run.wait_for("capturing on", 2, Duration::from_secs(90));
    for p in &web_pods {
        ns.curl(p, &format!("/{p}"));
    }
    let code = run.exit(Duration::from_secs(60));
    let err = run.stderr();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "deployment {}/web: its pods are -l app={app},tier=web",
            ns.name
        )),
        "{err}"
    );
    tshark_clean(&saved);
    let mut names = common::tshark_fields(&saved, &["frame.interface_name"], "http.request");
    names.sort();
    names.dedup();
    let mut want: Vec<String> = web_pods
        .iter()
        .map(|p| format!("{}/{p}:", ns.name))
        .collect();
    want.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    for (n, w) in names.iter().zip(&want) {
        assert!(n.starts_with(w.as_str()), "{names:?} {want:?}");
    }
    assert!(
        !err.contains("db-0"),
        "the statefulset's pod is not the deployment's: {err}"
    );

    let out = c
        .plugin(&[
            "sts/db",
            "-n",
            &ns.name,
            "--duration",
            "4s",
            "--format",
            "jsonl",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(matches!(out.status.code(), Some(0 | 1)), "{err}");
    assert!(
        err.contains(&format!(
            "statefulset {}/db: its pods are -l tier in (db)",
            ns.name
        )) && err.contains(&format!("[{}/db-0] meshsniff: capturing on", ns.name)),
        "{err}"
    );

    // -A -l: a pod in each of two namespaces.
    let other = Ns::new(&c, "wl2", json!({}));
    let label = format!("msn-all-{}", std::process::id());
    for n in [&ns, &other] {
        c.apply(
            &n.pod(
                "spread-1",
                json!({"spread": label}),
                WEB_IMAGE,
                web_command(),
                false,
            )
            .to_string(),
        );
        c.k(&[
            "wait",
            "--for=condition=Ready",
            "pod/spread-1",
            "-n",
            &n.name,
            "--timeout=120s",
        ]);
    }
    let saved = ns.file("all.pcapng");
    let mut run = Run::start(
        &mut c.plugin(&[
            "-A",
            "-l",
            &format!("spread={label}"),
            "--duration",
            "8s",
            "-o",
            saved.to_str().unwrap(),
        ]),
        &ns.dir,
        "all",
    );
    run.wait_for("capturing on", 2, Duration::from_secs(90));
    ns.curl("spread-1", "/here");
    let there = other.ip("spread-1");
    c.k(&[
        "exec",
        "-n",
        &ns.name,
        "curl",
        "--",
        "/usr/bin/curl",
        "-sS",
        "--max-time",
        "5",
        &format!("http://{there}:8080/there"),
    ]);
    let code = run.exit(Duration::from_secs(60));
    assert_eq!(code, Some(1), "{}", run.stderr());
    tshark_clean(&saved);
    let mut seen = common::tshark_fields(
        &saved,
        &["frame.interface_name", "http.request.uri"],
        "http.request",
    );
    seen.sort();
    seen.dedup();
    let expect = |n: &Ns, uri: &str| {
        seen.iter()
            .any(|s| s.starts_with(&format!("{}/spread-1:", n.name)) && s.ends_with(uri))
    };
    assert!(expect(&ns, "/here") && expect(&other, "/there"), "{seen:?}");
    c.helpers_gone(&ns.name, Duration::from_secs(30));
    c.helpers_gone(&other.name, Duration::from_secs(30));
}

/// Issue 12 (7): kubectl's global flags reach the real API on every call: `--kubeconfig`
/// (KUBECONFIG names another file), `--context` (the file's current context points nowhere),
/// `--cluster`, `--user`, `--as`/`--as-group` (the impersonated user has exactly
/// release/rbac.yaml's roles, through the group) and `--request-timeout` (2 s, yet a request
/// made 4 s into the capture is in it: the stream is not bounded by it).
#[test]
fn kubectls_global_flags_reach_the_real_api() {
    let t = "kubectls_global_flags_reach_the_real_api";
    let Some(c) = cluster(t, false) else { return };
    let mut ns = Ns::new(&c, "glob", json!({}));
    ns.pods(&[("web-1", json!({"app": "web"}))], false);
    let group = format!("{}-g", ns.name);
    ns.bind_rbac(&group, None);
    // The admin's kubeconfig, plus a context that points nowhere, made current.
    let mut cfg: Value =
        serde_json::from_str(&c.k(&["config", "view", "--raw", "--flatten", "-o", "json"]))
            .unwrap();
    let ctx = cfg["current-context"].as_str().unwrap().to_string();
    let real = cfg["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == ctx.as_str())
        .unwrap()["context"]
        .clone();
    let (cluster_name, user_name) = (
        real["cluster"].as_str().unwrap().to_string(),
        real["user"].as_str().unwrap().to_string(),
    );
    cfg["clusters"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "nowhere", "cluster": {"server": "https://127.0.0.1:9"}}));
    cfg["contexts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "elsewhere", "context": {"cluster": "nowhere", "user": user_name}}));
    cfg["current-context"] = json!("elsewhere");
    let file = ns.file("multi.kubeconfig");
    std::fs::write(&file, cfg.to_string()).unwrap();
    let kubeconfig = format!("--kubeconfig={}", file.display());
    let imp = format!("{}-imp", ns.name);
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![kubeconfig.clone()];
        v.extend(extra.iter().map(|s| s.to_string()));
        v.extend(
            [
                "web-1",
                "-n",
                &ns.name,
                "--duration",
                "7s",
                "--format",
                "jsonl",
            ]
            .map(String::from),
        );
        v
    };
    let run_with = |args: &[String]| {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = c.plugin(&a);
        cmd.env("KUBECONFIG", "/nonexistent/kubeconfig");
        cmd
    };
    // Without --context: the current context points nowhere.
    let out = run_with(&base(&[])).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("127.0.0.1:9") && err.contains("context elsewhere"),
        "{err}"
    );
    // --cluster overrides the context's cluster.
    let ctx_flag = format!("--context={ctx}");
    let out = run_with(&base(&[&ctx_flag, "--cluster=nowhere"]))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2) && err.contains("refused the connection"),
        "{err}"
    );
    // --user names a user the kubeconfig does not have: no credentials.
    let out = run_with(&base(&[&ctx_flag, "--user=nobody"]))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    // --as someone without a role: refused, with that user's name.
    let nobody = format!("--as={}-nobody", ns.name);
    let out = run_with(&base(&[&ctx_flag, &nobody])).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "missing permission: get pods in {} (user {}-nobody",
            ns.name, ns.name
        )),
        "{err}"
    );
    // All of them right, and a 2 s request timeout on a 7 s capture.
    let (cl, us, a, g) = (
        format!("--cluster={cluster_name}"),
        format!("--user={user_name}"),
        format!("--as={imp}"),
        format!("--as-group={group}"),
    );
    let mut run = Run::start(
        &mut run_with(&base(&[
            &ctx_flag,
            &cl,
            &us,
            &a,
            &g,
            "--request-timeout=2s",
        ])),
        &ns.dir,
        "glob",
    );
    run.wait_for("capturing on", 1, Duration::from_secs(90));
    std::thread::sleep(Duration::from_secs(4));
    ns.curl("web-1", "/late");
    let code = run.exit(Duration::from_secs(60));
    let err = run.stderr();
    assert_eq!(code, Some(1), "{err}");
    assert!(
        flows(&run.stdout())
            .iter()
            .any(|f| f["http"].to_string().contains("/late")),
        "the request 4 s in is captured: {}",
        run.stdout()
    );
    c.helpers_gone(&ns.name, Duration::from_secs(30));
}
