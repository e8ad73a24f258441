//! Role: `kubectl meshsniff` tested up to the API server. There is no cluster on our machines:
//! a `kubectl` stand-in (tests/kube/kubectl) is first on PATH; it records every call, answers
//! `get` with pod JSON this test writes (checked against the Kubernetes API types), and runs
//! `exec` for real: the static helper's command in a network namespace that plays the node,
//! which finds the "container" (a process in a cgroup named like containerd's, created here)
//! and captures real traffic (curl to python3 http.server) in the pod's namespace. The
//! generated manifests are checked against the API types (k8s-openapi) with every field the
//! plugin promises, and the delete of the helper is asserted on every exit path.

mod common;

use k8s_openapi::api::core::v1 as api;
use meshsniff::kube::manifest::{self, CaptureOpts, Helper};
use meshsniff::kube::target::{self, PodTarget};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn plugin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kubectl-meshsniff"))
}

/// A pod as the API server returns it (v1.30-era fields), with an Istio sidecar beside the
/// application container.
fn pod_json(ns: &str, name: &str, node: &str, id: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": "3f5a2c1e-8b7d-4e6f-9a0b-1c2d3e4f5a6b",
            "resourceVersion": "48213",
            "creationTimestamp": "2026-11-29T11:58:02Z",
            "labels": labels,
            "annotations": {"sidecar.istio.io/status": "{\"containers\":[\"istio-proxy\"]}"}
        },
        "spec": {
            "nodeName": node,
            "serviceAccountName": "default",
            "restartPolicy": "Always",
            "initContainers": [{"name": "istio-init", "image": "docker.io/istio/proxyv2:1.22.0"}],
            "containers": [
                {"name": "web", "image": "python:3.11-slim",
                 "ports": [{"containerPort": 8080, "protocol": "TCP"}]},
                {"name": "istio-proxy", "image": "docker.io/istio/proxyv2:1.22.0"}
            ]
        },
        "status": {
            "phase": "Running",
            "hostIP": "192.0.2.10",
            "podIP": "10.244.1.7",
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "istio-proxy", "ready": true, "restartCount": 0,
                 "image": "docker.io/istio/proxyv2:1.22.0", "imageID": "",
                 "containerID": format!("containerd://{}", "e".repeat(64)),
                 "state": {"running": {"startedAt": "2026-11-29T11:58:05Z"}}},
                {"name": "web", "ready": true, "restartCount": 0,
                 "image": "python:3.11-slim", "imageID": "",
                 "containerID": format!("containerd://{id}"),
                 "state": {"running": {"startedAt": "2026-11-29T11:58:04Z"}}}
            ]
        }
    })
}

/// Deserializes into the API type and serializes back: equal only if every field exists in
/// the API with the right type (a misspelled or misplaced field is dropped, so it differs).
fn round_trips<T: serde::de::DeserializeOwned + serde::Serialize>(v: &Value) -> Value {
    let typed: T = serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("not a valid {}: {e}\n{v:#}", std::any::type_name::<T>()));
    let back = serde_json::to_value(&typed).unwrap();
    assert_eq!(
        &back,
        v,
        "fields lost against {}",
        std::any::type_name::<T>()
    );
    back
}

fn some_target() -> PodTarget {
    target::pod_target(
        &pod_json(
            "shop",
            "web-1",
            "node-a",
            &"a".repeat(64),
            json!({"app": "web"}),
        ),
        None,
    )
    .unwrap()
}

#[test]
fn manifests_are_valid_kubernetes_objects_with_every_promised_field() {
    let t = some_target();
    assert_eq!(
        t.container, "web",
        "istio-proxy is not the default container"
    );
    assert!(t.has_istio_proxy);
    round_trips::<api::Pod>(&pod_json(
        "shop",
        "web-1",
        "node-a",
        &"a".repeat(64),
        json!({"app": "web"}),
    ));

    let ns = round_trips::<api::Namespace>(&manifest::namespace());
    assert_eq!(ns["metadata"]["name"], manifest::NAMESPACE);
    for mode in ["enforce", "audit", "warn"] {
        assert_eq!(
            ns["metadata"]["labels"][format!("pod-security.kubernetes.io/{mode}")],
            "privileged"
        );
    }
    assert_eq!(ns["metadata"]["labels"]["istio-injection"], "disabled");

    let h = Helper {
        session: "0badcafe".into(),
        name: "meshsniff-0badcafe-0".into(),
        node: "node-a".into(),
        image: "registry.example/meshsniff:1".into(),
        duration_secs: 60,
        start_secs: 120,
        now: 1_900_000_000,
    };
    let pod = round_trips::<api::Pod>(&manifest::helper_pod(&h, &[&t]));
    let (meta, spec) = (&pod["metadata"], &pod["spec"]);
    assert_eq!(meta["namespace"], manifest::NAMESPACE);
    assert_eq!(meta["labels"]["sidecar.istio.io/inject"], "false");
    assert_eq!(meta["annotations"]["sidecar.istio.io/inject"], "false");
    assert_eq!(meta["labels"][manifest::SESSION], "0badcafe");
    assert_eq!(
        meta["labels"][manifest::EXPIRES],
        (1_900_000_000u64 + 60 + 120 + manifest::GRACE_SECS).to_string()
    );
    assert_eq!(meta["labels"][manifest::MANAGED_BY], "meshsniff");
    assert_eq!(spec["nodeName"], "node-a");
    assert_eq!(
        spec["tolerations"],
        json!([{"operator": "Exists"}]),
        "tolerates every taint"
    );
    assert_eq!(spec["hostPID"], true);
    assert_eq!(
        spec["activeDeadlineSeconds"],
        60 + 120 + manifest::GRACE_SECS
    );
    assert_eq!(spec["restartPolicy"], "Never");
    let c = &spec["containers"][0];
    assert_eq!(c["securityContext"]["privileged"], true);
    assert_eq!(c["image"], "registry.example/meshsniff:1");
    for k in ["requests", "limits"] {
        assert!(c["resources"][k]["cpu"].is_string() && c["resources"][k]["memory"].is_string());
    }
    assert_eq!(c["command"][0], manifest::HELPER_PATH);
    // The label values are valid label values (63 characters, alphanumerics at the ends).
    for (_, v) in meta["labels"].as_object().unwrap() {
        let v = v.as_str().unwrap();
        assert!(
            v.len() <= 63
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "{v}"
        );
    }

    let e = round_trips::<api::EphemeralContainer>(&manifest::ephemeral_container(&h));
    assert_eq!(
        e["securityContext"]["capabilities"]["add"],
        json!(["NET_RAW", "NET_ADMIN"])
    );
    assert!(
        e.get("resources").is_none(),
        "ephemeral containers take no resources"
    );
    assert_eq!(
        e["command"][3],
        (60 + 120 + manifest::GRACE_SECS).to_string(),
        "it ends by itself"
    );

    let argv = manifest::capture_argv(
        Some(&t),
        &CaptureOpts {
            interface: "any".into(),
            filter: Some("tcp port 8080".into()),
            duration_secs: 60,
            count: Some(10),
        },
    );
    assert_eq!(
        argv,
        [
            "/meshsniff",
            "capture",
            "--container",
            &t.container_id,
            "--interface=any",
            "-w",
            "-",
            "--pcapng",
            "--duration",
            "60s",
            "--filter=tcp port 8080",
            "-c",
            "10"
        ]
    );
    assert!(manifest::is_expired(
        &pod,
        1_900_000_000 + 60 + 120 + manifest::GRACE_SECS
    ));
    assert!(!manifest::is_expired(&pod, 1_900_000_000));
}

#[test]
fn pods_that_cannot_be_captured_say_why() {
    let id = "b".repeat(64);
    let mut pending = pod_json("shop", "web-2", "node-a", &id, json!({}));
    pending["status"]["phase"] = json!("Pending");
    let e = target::pod_target(&pending, None).unwrap_err().to_string();
    assert!(e.contains("shop/web-2") && e.contains("Pending"), "{e}");
    let pod = pod_json("shop", "web-2", "node-a", &id, json!({}));
    let e = target::pod_target(&pod, Some("db"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no container `db`") && e.contains("web, istio-proxy"),
        "{e}"
    );
    let t = target::pod_target(&pod, Some("istio-proxy")).unwrap();
    assert_eq!(t.container_id, format!("containerd://{}", "e".repeat(64)));
    let mut starting = pod;
    starting["status"]["containerStatuses"][1]["containerID"] = json!("");
    let e = target::pod_target(&starting, None).unwrap_err().to_string();
    assert!(e.contains("has not started"), "{e}");
}

/// The node simulation: namespaces that play nodes and pods, and the stand-in's state.
struct KubeLab {
    n: u8,
    dir: PathBuf,
    state: PathBuf,
    path_env: String,
    netns: Vec<String>,
    cgroups: Vec<PathBuf>,
    children: Vec<Child>,
    /// (namespace, pod name, pod IP, client netns)
    pods: Vec<(String, String, String, String)>,
}

use common::sh;

impl KubeLab {
    fn new(n: u8) -> KubeLab {
        let mut lab = KubeLab::stand_in_only(&n.to_string());
        lab.n = n;
        std::fs::write(
            lab.state.join("helper"),
            common::bin().to_string_lossy().as_bytes(),
        )
        .unwrap();
        for node in ["node-a", "node-b"] {
            let ns = format!("msn-kube{n}-{node}");
            lab.add_netns(&ns);
        }
        lab.write_netns_map();
        lab
    }

    fn add_netns(&mut self, ns: &str) {
        let _ = Command::new("ip")
            .args(["netns", "del", ns])
            .stderr(Stdio::null())
            .status();
        sh(&["ip", "netns", "add", ns]);
        sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        self.netns.push(ns.to_string());
    }

    fn write_netns_map(&self) {
        let mut m = serde_json::Map::new();
        for node in ["node-a", "node-b"] {
            m.insert(
                format!("node:{node}"),
                json!(format!("msn-kube{}-{node}", self.n)),
            );
        }
        for (k, (ns, name, _, _)) in self.pods.iter().enumerate() {
            m.insert(
                format!("pod:{ns}/{name}"),
                json!(format!("msn-kube{}-p{k}", self.n)),
            );
        }
        std::fs::write(self.state.join("netns.json"), Value::Object(m).to_string()).unwrap();
    }

    /// A pod: its own network namespace with a client on a veth, python3 http.server on :8080
    /// in a cgroup named like containerd's, and its JSON in the stand-in's store.
    fn add_pod(&mut self, ns: &str, name: &str, node: &str, labels: Value) {
        let k = self.pods.len();
        let (pod, cli) = (
            format!("msn-kube{}-p{k}", self.n),
            format!("msn-kube{}-c{k}", self.n),
        );
        self.add_netns(&pod);
        self.add_netns(&cli);
        sh(&[
            "ip", "link", "add", "eth0", "netns", &pod, "type", "veth", "peer", "name", "veth-c",
            "netns", &cli,
        ]);
        let ip = format!("10.85.{}.{}", self.n, 2 + 2 * k);
        let cip = format!("10.85.{}.{}", self.n, 3 + 2 * k);
        sh(&[
            "ip",
            "-n",
            &pod,
            "addr",
            "add",
            &format!("{ip}/31"),
            "dev",
            "eth0",
        ]);
        sh(&[
            "ip",
            "-n",
            &cli,
            "addr",
            "add",
            &format!("{cip}/31"),
            "dev",
            "veth-c",
        ]);
        sh(&["ip", "-n", &pod, "link", "set", "eth0", "up"]);
        sh(&["ip", "-n", &cli, "link", "set", "veth-c", "up"]);
        let server = Command::new("ip")
            .args([
                "netns",
                "exec",
                &pod,
                "python3",
                "-m",
                "http.server",
                "--bind",
                "0.0.0.0",
                "8080",
            ])
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let id = format!(
            "{:0>64}",
            format!("{:x}{:x}{k}", std::process::id(), self.n)
        );
        let root = if Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() {
            PathBuf::from("/sys/fs/cgroup/unified")
        } else {
            PathBuf::from("/sys/fs/cgroup")
        };
        let slice = root.join(format!("meshsniff-kube{}.slice", self.n));
        let scope = slice.join(format!("cri-containerd-{id}.scope"));
        std::fs::create_dir_all(&scope).unwrap();
        if !self.cgroups.contains(&slice) {
            self.cgroups.push(slice);
        }
        self.cgroups.push(scope.clone());
        std::fs::write(scope.join("cgroup.procs"), server.id().to_string()).unwrap();
        self.children.push(server);
        let pod_file = self.state.join(format!("objects/pods/{ns}/{name}.json"));
        std::fs::create_dir_all(pod_file.parent().unwrap()).unwrap();
        let json = pod_json(ns, name, node, &id, labels);
        round_trips::<api::Pod>(&json);
        std::fs::write(pod_file, json.to_string()).unwrap();
        self.pods.push((ns.into(), name.into(), ip.clone(), cli));
        self.write_netns_map();
        // Ready when the server answers.
        for _ in 0..100 {
            if self.curl(k, "/").is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("http.server in {pod} never answered");
    }

    fn curl(&self, k: usize, path: &str) -> Result<(), String> {
        let (_, _, ip, cli) = &self.pods[k];
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                cli,
                "curl",
                "-sf",
                "-o",
                "/dev/null",
                "-m",
                "3",
            ])
            .args(["-H", "Authorization: Bearer sk_live_abcdefghijklmnop"])
            .arg(format!("http://{ip}:8080{path}"))
            .output()
            .unwrap();
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("{:?}", out.status))
        }
    }

    fn scenario(&self, s: &str) {
        std::fs::write(self.state.join("scenario"), s).unwrap();
    }

    fn plugin(&self, args: &[&str]) -> Command {
        let mut c = Command::new(plugin());
        // The caller's KUBECONFIG (.ci/run exports the test cluster's) is not the stand-in's:
        // a test that wants one sets it after this.
        c.args(args)
            .env_remove("KUBECONFIG")
            .env("PATH", &self.path_env)
            .env("MESHSNIFF_STANDIN", &self.state)
            .current_dir(&self.dir);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.plugin(args).output().unwrap()
    }

    /// Every kubectl call the plugin made: argv and stdin.
    fn calls(&self) -> Vec<(Vec<String>, Option<String>)> {
        std::fs::read_to_string(self.state.join("calls.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                let argv = v["argv"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap().to_string())
                    .collect();
                (argv, v["stdin"].as_str().map(str::to_string))
            })
            .collect()
    }

    fn created_pods(&self) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|(a, _)| a.iter().any(|x| x == "create"))
            .filter_map(|(_, s)| serde_json::from_str::<Value>(&s?).ok())
            .filter(|v| v["kind"] == "Pod")
            .collect()
    }

    fn deletes(&self) -> Vec<String> {
        self.calls()
            .into_iter()
            .filter(|(a, _)| a.iter().take(12).any(|x| x == "delete"))
            .map(|(a, _)| a.join(" "))
            .collect()
    }
}

impl Drop for KubeLab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in &self.netns {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        for cg in self.cgroups.iter().rev() {
            let _ = std::fs::remove_dir(cg);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ready(test: &str) -> bool {
    common::root_or_skip(test)
        && ["python3", "curl", "tshark"]
            .iter()
            .all(|p| common::have(test, p))
}

/// The full plugin path against real packets: pod read with `get`, namespace and helper
/// created with `create -f -` (manifests as promised), `wait`, `exec -i` running the static
/// helper for real on the "node", the stream judged live and saved, the helper deleted.
#[test]
fn the_plugin_captures_a_pod_through_the_node_simulation_and_cleans_up() {
    if !ready("the_plugin_captures_a_pod_through_the_node_simulation_and_cleans_up") {
        return;
    }
    let lab = KubeLab::with_web(1);
    let (child, log) = lab.start(&[
        "web-1",
        "-n",
        "shop",
        "--context",
        "prod-eu",
        "--cluster=lab-cluster",
        "--user",
        "u",
        "--as=alice",
        "--as-group=devs",
        "--as-group",
        "ops",
        "--request-timeout=20s",
        "--duration",
        "5s",
        "-o",
        "web.pcapng",
        "--format",
        "jsonl",
        "--fail-on",
        "plaintext-leak",
    ]);
    for _ in 0..3 {
        lab.curl(0, "/").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let err = std::fs::read_to_string(&log).unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the cleartext HTTP is a leak: {err}\n{text}"
    );
    // Live verdicts, JSON Lines from the analyzer.
    let flows: Vec<Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "flow")
        .collect();
    assert!(flows.len() >= 3, "{text}");
    assert!(
        flows
            .iter()
            .any(|f| f["verdict"]["kind"] == "plaintext-leak"),
        "{text}"
    );
    // Without --show-secrets no byte of the token reaches any output: the analyzer's
    // stdout, and the plugin's stderr (its own lines and everything it relays).
    assert!(
        !text.contains("sk_live_abcdefghijklmnop") && !err.contains("sk_live_abcdefghijklmnop"),
        "the token is redacted"
    );
    // The saved capture: pcapng, 0600, read by tshark, the GETs in it.
    let saved = lab.dir.join("web.pcapng");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let gets = common::tshark_fields(&saved, &["http.request.method"], "http.request");
    assert_eq!(gets.len(), 3, "{gets:?}");

    // The calls: every one with the context (one argv element: never read as two); the
    // kubeconfig read, one bounded request to the API server, the pod read as pod/NAME; the
    // namespace and the helper created as promised; exec without -t running the helper on
    // the target's container; the helper deleted without waiting.
    // kubectl's global flags reach every call, first, one element each; the user's
    // --request-timeout every call but the capture stream (which lasts --duration) and the
    // first one (bounded by it in place of the plugin's 5s).
    let globals = [
        "--context=prod-eu",
        "--cluster=lab-cluster",
        "--user=u",
        "--as=alice",
        "--as-group=devs",
        "--as-group=ops",
    ];
    let calls: Vec<(Vec<String>, Option<String>)> = lab
        .calls()
        .into_iter()
        .map(|(a, stdin)| {
            assert_eq!(a[..globals.len()], globals, "{a:?}");
            let mut rest = a[globals.len()..].to_vec();
            let streams = rest[0] == "exec" && !rest.iter().any(|x| x == "--list-interfaces");
            let raw = rest.iter().any(|x| x == "--raw");
            if streams {
                assert!(
                    !rest.iter().any(|x| x.starts_with("--request-timeout")),
                    "{a:?}"
                );
            } else if !raw {
                assert_eq!(rest[0], "--request-timeout=20s", "{a:?}");
                rest.remove(0);
            }
            (rest, stdin)
        })
        .collect();
    // During the capture the target is looked at every few seconds (is it still there?).
    let exec_at = calls.iter().position(|(a, _)| a[0] == "exec").unwrap();
    let (before, after) = calls.split_at(exec_at + 1);
    let polls = after
        .iter()
        .filter(|(a, _)| a[..] == ["get", "pod/web-1", "-n", "shop", "-o", "json"])
        .count();
    assert!(
        (1..=3).contains(&polls),
        "5 s, one look every 3 s: {calls:?}"
    );
    let mut calls = before.to_vec();
    calls.extend(after.iter().filter(|(a, _)| a[0] != "get").cloned());
    let verbs: Vec<&str> = calls.iter().map(|(a, _)| a[0].as_str()).collect();
    assert_eq!(
        verbs,
        [
            "config", "get", "get", "get", "create", "create", "create", "wait", "exec", "delete"
        ],
        "{calls:?}"
    );
    assert_eq!(
        calls[1].0,
        ["get", "--raw", "/api", "--request-timeout=20s"]
    );
    assert_eq!(calls[2].0, ["get", "pod/web-1", "-n", "shop", "-o", "json"]);
    // The permissions asked before anything is created: one SelfSubjectAccessReview each.
    assert_eq!(
        calls[3].0,
        ["get", "namespace", "meshsniff-system", "-o", "json"]
    );
    let asked: Value = serde_json::from_str(calls[4].1.as_deref().unwrap()).unwrap();
    assert_eq!(asked["kind"], "List");
    let attrs: Vec<String> = asked["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            let a = &i["spec"]["resourceAttributes"];
            format!(
                "{} {}{} {}",
                a["verb"].as_str().unwrap(),
                a["resource"].as_str().unwrap(),
                a["subresource"]
                    .as_str()
                    .map(|s| format!("/{s}"))
                    .unwrap_or_default(),
                a["namespace"].as_str().unwrap_or("(cluster)")
            )
        })
        .collect();
    assert_eq!(
        attrs,
        [
            "create namespaces (cluster)",
            "create pods meshsniff-system",
            "delete pods meshsniff-system",
            "create pods/exec meshsniff-system"
        ]
    );
    let helper = &lab.created_pods()[0];
    round_trips::<api::Pod>(helper);
    assert_eq!(helper["spec"]["nodeName"], "node-a");
    let name = helper["metadata"]["name"].as_str().unwrap();
    let exec = &calls[8].0;
    assert!(
        exec.contains(&"-i".to_string()) && !exec.contains(&"-t".to_string()),
        "{exec:?}"
    );
    let id = format!("containerd://{}", &lab.run_id(0));
    assert!(
        exec.windows(2).any(|w| w == ["--container", &id]),
        "{exec:?}"
    );
    assert_eq!(
        lab.deletes(),
        [format!(
            "{} --request-timeout=20s delete pod/{name} -n meshsniff-system --wait=false \
             --ignore-not-found",
            globals.join(" ")
        )]
    );
    assert!(
        err.contains(&format!("deleted helper pod meshsniff-system/{name}")),
        "{err}"
    );
}

impl KubeLab {
    /// A lab with one pod, shop/web-1 on node-a (label app=web).
    fn with_web(n: u8) -> KubeLab {
        let mut lab = KubeLab::new(n);
        lab.add_pod("shop", "web-1", "node-a", json!({"app": "web"}));
        lab
    }

    /// The plugin, started with its stderr in a log file; returns once a helper is capturing.
    fn start(&self, args: &[&str]) -> (Child, PathBuf) {
        let log = self.dir.join("plugin.log");
        let child = self
            .plugin(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        common::wait_for(&log, "capturing on");
        (child, log)
    }

    fn run_id(&self, k: usize) -> String {
        let (ns, name, _, _) = &self.pods[k];
        let p: Value = serde_json::from_str(
            &std::fs::read_to_string(self.state.join(format!("objects/pods/{ns}/{name}.json")))
                .unwrap(),
        )
        .unwrap();
        p["status"]["containerStatuses"][1]["containerID"]
            .as_str()
            .unwrap()["containerd://".len()..]
            .to_string()
    }
}

/// Ctrl-C (SIGINT) or SIGTERM mid-stream: the capture so far is judged and saved (a valid
/// file), the helper is deleted, and the exit code is the analyzer's.
#[test]
fn ctrl_c_mid_stream_deletes_the_helper() {
    if !ready("ctrl_c_mid_stream_deletes_the_helper") {
        return;
    }
    stop_mid_stream(2, "-INT");
}

#[test]
fn sigterm_mid_stream_deletes_the_helper() {
    if !ready("sigterm_mid_stream_deletes_the_helper") {
        return;
    }
    stop_mid_stream(7, "-TERM");
}

fn stop_mid_stream(n: u8, signal: &str) {
    let mut lab = KubeLab::new(n);
    lab.add_pod("shop", "web-1", "node-a", json!({"app": "web"}));
    // A Wireshark stand-in (no display here): keeps its arguments and what it is fed.
    let ws = lab.dir.join("bin/wireshark");
    std::fs::write(
        &ws,
        "#!/bin/sh\necho \"$@\" > \"$MESHSNIFF_STANDIN/wireshark.args\"\nexec cat > \"$MESHSNIFF_STANDIN/wireshark.pcapng\"\n",
    )
    .unwrap();
    sh(&["chmod", "+x", ws.to_str().unwrap()]);
    // SIGTERM's run asks for the secrets: `--show-secrets` reaches the analyzer only then.
    let show = signal == "-TERM";
    let mut args = vec![
        "web-1",
        "-n",
        "shop",
        "--duration",
        "10m",
        "-o",
        "cut.pcapng",
        "--wireshark",
    ];
    if show {
        args.push("--show-secrets");
    }
    let (mut child, log) = lab.start(&args);
    lab.curl(0, "/").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    sh(&["kill", signal, &child.id().to_string()]);
    let start = Instant::now();
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    let status = child.wait().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "Ctrl-C must stop it promptly"
    );
    let err = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "check's default --fail-on: the leak fails: {err}"
    );
    assert_eq!(lab.deletes().len(), 1, "{err}");
    assert!(err.contains("deleted helper pod"), "{err}");
    let token = "sk_live_abcdefghijklmnop";
    assert!(!err.contains(token), "never on stderr: {err}");
    assert_eq!(
        stdout.contains(token),
        show,
        "the token only with --show-secrets: {stdout}"
    );
    let gets = common::tshark_fields(
        &lab.dir.join("cut.pcapng"),
        &["http.request.method"],
        "http.request",
    );
    assert_eq!(gets, ["GET"]);
    // Wireshark got the same stream, live (`-k -i -`), and is left running for the user.
    let args = std::fs::read_to_string(lab.state.join("wireshark.args")).unwrap();
    assert_eq!(args.trim(), "-k -i -");
    let fed = lab.state.join("wireshark.pcapng");
    let start = Instant::now();
    while std::fs::read(&fed).unwrap_or_default()
        != std::fs::read(lab.dir.join("cut.pcapng")).unwrap()
    {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "wireshark was not fed the capture"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The exec stream drops (the connection to the node is lost): what arrived is judged, the
/// user is told, exit code 3, and the helper is deleted.
#[test]
fn a_dropped_stream_is_reported_and_the_helper_deleted() {
    if !ready("a_dropped_stream_is_reported_and_the_helper_deleted") {
        return;
    }
    let lab = KubeLab::with_web(3);
    lab.scenario("drop-stream");
    let (child, log) = lab.start(&["web-1", "-n", "shop", "--duration", "10m"]);
    for _ in 0..3 {
        let _ = lab.curl(0, "/");
    }
    let out = child.wait_with_output().unwrap();
    let err = std::fs::read_to_string(&log).unwrap();
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("ended early") && err.contains("lost connection"),
        "{err}"
    );
    assert_eq!(lab.deletes().len(), 1, "{err}");
}

/// A helper that cannot start says why (the pod's status and events), and is deleted; a
/// Pod Security rejection says what to change.
#[test]
fn a_helper_that_cannot_start_says_why_and_is_deleted() {
    if !ready("a_helper_that_cannot_start_says_why_and_is_deleted") {
        return;
    }
    let lab = KubeLab::with_web(4);
    lab.scenario("image-pull");
    let start = Instant::now();
    let out = lab.run(&[
        "web-1",
        "-n",
        "shop",
        "--image",
        "registry.example/nope:1",
        "--start-timeout",
        "2m",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "a bad image is reported at once, not after --start-timeout"
    );
    assert!(
        err.contains("ImagePullBackOff") && err.contains("registry.example/nope:1"),
        "{err}"
    );
    assert!(err.contains("image pull secret"), "a hint: {err}");
    assert_eq!(lab.deletes().len(), 1, "{err}");
    assert!(!lab.calls().iter().any(|(a, _)| a[0] == "exec"));

    lab.scenario("psa-reject");
    let out = lab.run(&["web-1", "-n", "shop"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("Pod Security rejected") && err.contains("--ephemeral"),
        "{err}"
    );
    assert!(
        err.contains("pod-security.kubernetes.io/enforce=privileged"),
        "{err}"
    );
    assert_eq!(
        lab.deletes().len(),
        2,
        "the rejected name gets its delete too: {err}"
    );
    // Without -n: the context's namespace, as kubectl would use.
    std::fs::write(lab.state.join("current-namespace"), "shop").unwrap();
    let out = lab.run(&["web-1"]);
    assert_eq!(out.status.code(), Some(2));
    let calls = lab.calls();
    let at = calls
        .iter()
        .rposition(|(a, _)| a[0] == "config")
        .expect("config view");
    assert_eq!(calls[at].0[..3], ["config", "view", "--minify"]);
    assert_eq!(calls[at].0, ["config", "view", "--minify", "-o", "json"]);
    assert_eq!(
        calls[at + 1].0,
        ["get", "--raw", "/api", "--request-timeout=5s"]
    );
    assert_eq!(
        calls[at + 2].0,
        ["get", "pod/web-1", "-n", "shop", "-o", "json"]
    );
}

/// `--ephemeral`: an ephemeral container in the target pod (patched in, NET_RAW and
/// NET_ADMIN), the capture run in it with exec (in the pod's own namespace: no --container),
/// nothing created in meshsniff-system and nothing to delete. With `-o -` the pcapng goes to
/// stdout (for tshark or a file) and nothing is judged.
#[test]
fn ephemeral_mode_captures_from_inside_the_pod() {
    if !ready("ephemeral_mode_captures_from_inside_the_pod") {
        return;
    }
    let lab = KubeLab::with_web(5);
    let (child, log) = lab.start(&[
        "web-1",
        "-n",
        "shop",
        "--ephemeral",
        "--duration",
        "4s",
        "-o",
        "-",
    ]);
    lab.curl(0, "/").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "`-o -`: no analyzer, no verdict: {err}"
    );
    std::fs::write(lab.dir.join("e.pcapng"), &out.stdout).unwrap();
    let calls = lab.calls();
    let patch = calls
        .iter()
        .find(|(a, _)| a[0] == "patch")
        .expect("a patch");
    assert!(
        patch
            .0
            .windows(2)
            .any(|w| w == ["--subresource", "ephemeralcontainers"])
    );
    let body: Value =
        serde_json::from_str(&patch.0[patch.0.iter().position(|a| a == "-p").unwrap() + 1])
            .unwrap();
    round_trips::<api::EphemeralContainer>(&body["spec"]["ephemeralContainers"][0]);
    let exec = &calls.iter().find(|(a, _)| a[0] == "exec").unwrap().0;
    assert!(
        exec[..4] == ["exec", "-i", "pod/web-1", "-n"]
            && !exec.contains(&"--container".to_string()),
        "{exec:?}"
    );
    assert!(lab.created_pods().is_empty() && lab.deletes().is_empty());
    assert!(err.contains("ephemeral container stays"), "{err}");
    let gets = common::tshark_fields(
        &lab.dir.join("e.pcapng"),
        &["http.request.method"],
        "http.request",
    );
    assert_eq!(gets, ["GET"]);
}

/// `-l SELECTOR` over pods on two nodes: one helper per node, one pcapng with an interface per
/// pod (and per interface in it), both pods' traffic in it.
#[test]
fn a_selector_captures_pods_on_two_nodes_into_one_pcapng() {
    if !ready("a_selector_captures_pods_on_two_nodes_into_one_pcapng") {
        return;
    }
    let mut lab = KubeLab::with_web(6);
    lab.add_pod("shop", "web-2", "node-b", json!({"app": "web"}));
    lab.add_pod("shop", "db-0", "node-b", json!({"app": "db"}));
    let (child, log) = lab.start(&[
        "-l",
        "app=web",
        "-n",
        "shop",
        "-i",
        "eth0",
        "--duration",
        "5s",
        "-o",
        "web.pcapng",
    ]);
    common::wait_for(&log, "[shop/web-1] meshsniff: capturing on");
    common::wait_for(&log, "[shop/web-2] meshsniff: capturing on");
    lab.curl(0, "/").unwrap();
    lab.curl(1, "/").unwrap();
    lab.curl(2, "/").unwrap();
    let out = child.wait_with_output().unwrap();
    let err = std::fs::read_to_string(&log).unwrap();
    assert_eq!(out.status.code(), Some(1), "the two GETs are leaks: {err}");
    let helpers = lab.created_pods();
    let mut nodes: Vec<&str> = helpers
        .iter()
        .map(|h| h["spec"]["nodeName"].as_str().unwrap())
        .collect();
    nodes.sort_unstable();
    assert_eq!(nodes, ["node-a", "node-b"], "one helper per node");
    assert_eq!(lab.deletes().len(), 2);
    let file = lab.dir.join("web.pcapng");
    let mut names = common::tshark_fields(&file, &["frame.interface_name"], "http.request");
    names.sort();
    assert_eq!(
        names,
        ["shop/web-1:eth0", "shop/web-2:eth0"],
        "db-0 is not selected"
    );
}

/// `gc` deletes the helpers whose expiry has passed (or that finished), and only those.
#[test]
fn gc_deletes_expired_helpers_only() {
    let lab = KubeLab::stand_in_only("gc");
    let store = lab.state.join("objects/pods/meshsniff-system");
    std::fs::create_dir_all(&store).unwrap();
    let t = Helper {
        session: "s1".into(),
        name: "meshsniff-old-0".into(),
        node: "node-a".into(),
        image: "x".into(),
        duration_secs: 60,
        start_secs: 120,
        now: 1_000_000_000,
    };
    let target = some_target();
    let mut old = manifest::helper_pod(&t, &[&target]);
    old["status"] = json!({"phase": "Running"});
    let fresh_t = Helper {
        name: "meshsniff-new-0".into(),
        now: 4_000_000_000,
        ..t
    };
    let mut fresh = manifest::helper_pod(&fresh_t, &[&target]);
    fresh["status"] = json!({"phase": "Running"});
    std::fs::write(store.join("meshsniff-old-0.json"), old.to_string()).unwrap();
    std::fs::write(store.join("meshsniff-new-0.json"), fresh.to_string()).unwrap();
    let out = lab.run(&["gc"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        lab.deletes(),
        ["delete pod/meshsniff-old-0 -n meshsniff-system --wait=false --ignore-not-found"]
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 helper pod(s) deleted"));
    // kubectl's own configuration: --kubeconfig passed on, KUBECONFIG left to kubectl.
    let other = lab.dir.join("other.yaml");
    std::fs::write(&other, "apiVersion: v1\nkind: Config\n").unwrap();
    let other = other.to_str().unwrap();
    let out = lab
        .plugin(&["gc", "--all", "--kubeconfig", other])
        .env("KUBECONFIG", "/home/u/.kube/config")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(lab.deletes().len(), 2);
    let last: Value = serde_json::from_str(
        std::fs::read_to_string(lab.state.join("calls.jsonl"))
            .unwrap()
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last["argv"][0], format!("--kubeconfig={other}"));
    assert_eq!(last["KUBECONFIG"], "/home/u/.kube/config");
}

impl KubeLab {
    /// The stand-in alone (no namespaces): for calls that never exec, and the base of `new`.
    fn stand_in_only(tag: &str) -> KubeLab {
        let dir = std::env::temp_dir().join(format!("meshsniff-kube-{}-{tag}", std::process::id()));
        let state = dir.join("state");
        let bin = dir.join("bin");
        std::fs::create_dir_all(&state).unwrap();
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy(
            common::repo().join("tests/kube/kubectl"),
            bin.join("kubectl"),
        )
        .unwrap();
        KubeLab {
            n: 0,
            path_env: format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
            dir,
            state,
            netns: Vec::new(),
            cgroups: Vec::new(),
            children: Vec::new(),
            pods: Vec::new(),
        }
    }
}

/// `--wireshark` without Wireshark says so before anything is created.
#[test]
fn wireshark_missing_is_said_before_anything_is_created() {
    let lab = KubeLab::stand_in_only("ws");
    // PATH is the stand-in's folder alone: no Wireshark, whatever this machine has installed.
    let bin = lab.dir.join("bin");
    let out = lab
        .plugin(&["web-1", "-n", "shop", "--wireshark"])
        .env("PATH", &bin)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("`wireshark` is not installed") && err.contains("-o FILE"),
        "{err}"
    );
    assert!(lab.calls().is_empty(), "no kubectl call before the check");
}

/// `-o -` onto a terminal is refused before anything happens (pcapng is not for reading).
#[test]
fn pcapng_onto_a_terminal_is_refused() {
    if !common::have("pcapng_onto_a_terminal_is_refused", "script") {
        return;
    }
    let lab = KubeLab::stand_in_only("tty");
    let cmd = format!("{} web-1 -n shop -o -", plugin().display());
    let out = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("PATH", &lab.path_env)
        .env("MESHSNIFF_STANDIN", &lab.state)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("stdout is a terminal"), "{text}");
    assert!(lab.calls().is_empty());
}

/// The krew manifest template installs both binaries and names the plugin binary; the
/// placeholders are the ones release/build.sh fills (and refuses to leave unfilled).
#[test]
fn the_krew_manifest_template_installs_both_binaries() {
    let t = std::fs::read_to_string(common::repo().join(".krew.yaml")).unwrap();
    for want in [
        "apiVersion: krew.googlecontainertools.github.com/v1alpha2",
        "kind: Plugin",
        "  name: meshsniff",
        "version: v{{VERSION}}",
        "sha256: \"{{SHA256}}\"",
        "- from: kubectl-meshsniff",
        "- from: meshsniff",
        "bin: kubectl-meshsniff",
        "os: linux",
    ] {
        assert!(t.contains(want), "`{want}` missing from .krew.yaml");
    }
    let script = std::fs::read_to_string(common::repo().join("release/build.sh")).unwrap();
    assert!(script.contains("s/{{VERSION}}/") && script.contains("s/{{SHA256}}/"));
    let help = Command::new(plugin()).arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(text.contains("Usage: kubectl meshsniff"), "{text}");
}

/// `-o -` into a reader that goes away (`| head -c`): the capture ends at once, quietly, and
/// the helper is deleted; an output path that cannot be written is refused before any helper
/// is created.
#[test]
fn a_closed_stdout_ends_the_capture_and_a_bad_path_creates_nothing() {
    if !ready("a_closed_stdout_ends_the_capture_and_a_bad_path_creates_nothing") {
        return;
    }
    let lab = KubeLab::with_web(8);
    let out = lab.run(&["web-1", "-n", "shop", "-o", "/nonexistent/dir/x.pcapng"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        err.contains("cannot create /nonexistent/dir/x.pcapng"),
        "{err}"
    );
    assert!(
        lab.created_pods().is_empty(),
        "no helper for a capture that cannot be saved"
    );

    let (mut child, log) = lab.start(&["web-1", "-n", "shop", "--duration", "10m", "-o", "-"]);
    lab.curl(0, "/").unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut head = [0u8; 64];
    std::io::Read::read_exact(&mut stdout, &mut head).unwrap();
    assert_eq!(head[..4], [0x0a, 0x0d, 0x0d, 0x0a], "pcapng on stdout");
    drop(stdout);
    lab.curl(0, "/").unwrap(); // something more to write into the closed pipe
    let start = Instant::now();
    let status = child.wait().unwrap();
    let err = std::fs::read_to_string(&log).unwrap();
    assert!(start.elapsed() < Duration::from_secs(10), "{err}");
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(lab.deletes().len(), 1, "{err}");
}

/// Issue 11, "files we write": the plugin's `-o` never writes through a symlink, refuses an
/// existing file unless --overwrite and a directory always, and does so before any helper is
/// created. Before the fix the symlink's target was truncated.
#[test]
fn issue_11_output_file_never_follows_symlinks_or_replaces_without_overwrite() {
    if !common::have("issue_11_output_file", "python3") {
        return;
    }
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let lab = KubeLab::stand_in_only("o");
    let pod_file = lab.state.join("objects/pods/shop/web-1.json");
    std::fs::create_dir_all(pod_file.parent().unwrap()).unwrap();
    let json = pod_json(
        "shop",
        "web-1",
        "node-a",
        &"ab".repeat(32),
        json!({"app": "web"}),
    );
    std::fs::write(&pod_file, json.to_string()).unwrap();
    let victim = lab.dir.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let link = lab.dir.join("link.pcapng");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let old = lab.dir.join("old.pcapng");
    std::fs::write(&old, b"an older capture").unwrap();
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o666)).unwrap();
    let dir = lab.dir.join("adir");
    std::fs::create_dir_all(&dir).unwrap();
    let cases: [(&Path, bool, &str); 5] = [
        (&link, false, "symbolic link"),
        (&link, true, "symbolic link"),
        (&old, false, "--overwrite"),
        (&dir, false, "is a directory"),
        (&dir, true, "is a directory"),
    ];
    for (path, ow, says) in cases {
        let mut args = vec!["web-1", "-n", "shop", "-o", path.to_str().unwrap()];
        if ow {
            args.push("--overwrite");
        }
        let out = lab.run(&args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(
            lab.created_pods().is_empty(),
            "{args:?}: a helper was created"
        );
    }
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert_eq!(std::fs::read(&old).unwrap(), b"an older capture");
    assert_eq!(std::fs::metadata(&old).unwrap().mode() & 0o777, 0o666);
    let _ = std::fs::remove_dir_all(&lab.dir);
}

impl KubeLab {
    /// A target pod in the stand-in's store only (no namespaces): for runs that must end
    /// before any exec. `phase` other than Running makes the plugin stop right after `get`.
    fn put_pod(&self, ns: &str, name: &str, phase: &str) {
        let mut pod = pod_json(ns, name, "node-a", &"c".repeat(64), json!({"app": "web"}));
        pod["status"]["phase"] = json!(phase);
        let file = self.state.join(format!("objects/pods/{ns}/{name}.json"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, pod.to_string()).unwrap();
    }

    /// A HOME with a kubeconfig file (the stand-in does not read it; the plugin names it).
    fn home_with_kubeconfig(&self) -> PathBuf {
        let home = self.dir.join("home");
        std::fs::create_dir_all(home.join(".kube")).unwrap();
        std::fs::write(home.join(".kube/config"), "apiVersion: v1\nkind: Config\n").unwrap();
        home
    }

    fn mutating_calls(&self) -> Vec<Vec<String>> {
        self.calls()
            .into_iter()
            .map(|(a, _)| a)
            .filter(|a| {
                a.iter()
                    .any(|x| x == "create" || x == "patch" || x == "exec")
            })
            .collect()
    }
}

/// Stderr as the user sees it: its non-empty lines.
fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// Issue 11: a bad `-f`, `--profile`, `--format`, `--fail-on`, interface name or image is
/// refused on the laptop (exit 2) before any kubectl call, so nothing is created. The
/// filter is compiled for the link type it will run on: `vlan` exists on Ethernet only.
/// (Before: each was found by the helper or the analyzer after the privileged pod was
/// created and exec'd.)
#[test]
fn bad_flags_are_refused_before_anything_is_created() {
    let lab = KubeLab::stand_in_only("flags");
    lab.put_pod("shop", "web-1", "Running");
    for (flags, says) in [
        (&["-f", "tcp port 99999"][..], "-f: filter `tcp port 99999`"),
        (&["-f", "vlan"], "as the helper compiles it for -i any"),
        (&["-f", "tcp port 80 and"], "-f: filter"),
        (&["--profile", "istoi"], "--profile `istoi`"),
        (&["--format", "yaml"], "--format `yaml`"),
        (
            &["--fail-on", "plaintext-leak,plaintext-leek"],
            "unknown kind `plaintext-leek`",
        ),
        (&["-i", "eth0 x"], "-i `eth0 x`: not an interface name"),
        (
            &["--image", "Registry.example/M:1"],
            "--image `Registry.example/M:1`",
        ),
    ] {
        let mut args = vec!["web-1", "-n", "shop"];
        args.extend(flags);
        let out = lab.run(&args);
        let err = lines(&out);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {err:?}");
        assert_eq!(err.len(), 1, "{flags:?}: one line: {err:?}");
        assert!(err[0].contains(says), "{flags:?}: {err:?}");
        assert!(
            lab.mutating_calls().is_empty(),
            "{flags:?}: nothing created: {:?}",
            lab.calls()
        );
        assert!(lab.calls().is_empty(), "{flags:?}: no kubectl call at all");
    }
}

/// Issue 11: every user string reaches kubectl as a Kubernetes name or as one `--flag=VALUE`
/// element, never as a flag of its own; kubectl's `pod/NAME` forms are accepted. (Before:
/// `kubectl meshsniff -n default -- --as=system:admin` ran `kubectl get pod
/// --as=system:admin …`, and `pod/web-1` was looked up as a pod named `pod/web-1`.)
#[test]
fn names_reach_kubectl_only_as_names() {
    let lab = KubeLab::stand_in_only("names");
    for (args, says) in [
        (
            &["-n", "default", "--", "--as=system:admin"][..],
            "pod name `--as=system:admin` is not a Kubernetes name",
        ),
        (
            &["--namespace=--as=system:admin", "web-1"],
            "namespace `--as=system:admin`",
        ),
        (
            &["web-1", "-n", "shop", "--container=--as=x"],
            "container name `--as=x`",
        ),
        (
            &["--selector=--as=system:admin", "-n", "shop"],
            "label selector `--as=system:admin`",
        ),
        (
            &["--selector=app=web --as=system:admin", "-n", "shop"],
            "label selector",
        ),
        (&["svc/web", "-n", "shop"], "cannot capture a svc"),
        (&["deploy/--as=x", "-n", "shop"], "deployment name `--as=x`"),
        (&["--as-group=x", "web-1"], "--as-group needs --as"),
        (
            &["--request-timeout=--as=x", "web-1"],
            "--request-timeout `--as=x`",
        ),
        (&["-A", "web-1"], "use it with -l SELECTOR"),
        (
            &["-A", "-n", "shop", "-l", "app=web"],
            "-A and -n: choose one",
        ),
        (&["Web-1", "-n", "shop"], "not a Kubernetes name"),
        (&["--image=--privileged", "web-1"], "--image `--privileged`"),
    ] {
        let out = lab.run(args);
        let err = lines(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err:?}");
        assert!(err.iter().any(|l| l.contains(says)), "{args:?}: {err:?}");
        assert!(lab.calls().is_empty(), "{args:?}: {:?}", lab.calls());
    }
    // A context is any text kubeconfig holds: it goes as one element, `--context=…`.
    let out = lab.run(&["web-1", "-n", "shop", "--context=--as=system:admin"]);
    let err = lines(&out);
    assert_eq!(out.status.code(), Some(2), "{err:?}");
    assert!(
        err[0].contains("context `--as=system:admin` is not in kubeconfig"),
        "{err:?}"
    );
    let calls = lab.calls();
    assert!(!calls.is_empty());
    for (a, _) in &calls {
        assert_eq!(a[0], "--context=--as=system:admin", "{a:?}");
        assert!(!a.iter().any(|x| x == "--as=system:admin"), "{a:?}");
    }
    // pod/NAME, pods/NAME, po/NAME: the pod NAME, read as `get pod/NAME`.
    lab.put_pod("shop", "web-1", "Pending");
    for form in ["pod/web-1", "pods/web-1", "po/web-1", "web-1"] {
        let out = lab.run(&[form, "-n", "shop"]);
        let err = lines(&out);
        assert_eq!(out.status.code(), Some(2), "{form}: {err:?}");
        assert!(
            err.iter().any(|l| l.contains("shop/web-1: is Pending")),
            "{form}: {err:?}"
        );
        let calls = lab.calls();
        assert_eq!(
            calls.last().unwrap().0,
            ["get", "pod/web-1", "-n", "shop", "-o", "json"],
            "{form}"
        );
    }
}

/// Issue 11: no cluster, no context, a missing kubeconfig, a server that refuses, cannot be
/// reached, does not answer, is not trusted or rejects the credentials: one line each,
/// naming the kubeconfig and the context and what to do, and nothing created. The stand-in
/// prints what real kubectl prints (the four discovery retries included). (Before: the
/// retries and kubectl's message, several lines, and no word on which kubeconfig.)
#[test]
fn cluster_problems_are_one_line_each() {
    let lab = KubeLab::stand_in_only("cluster");
    lab.put_pod("shop", "web-1", "Running");
    let home = lab.home_with_kubeconfig();
    let config = home.join(".kube/config").display().to_string();
    let empty_home = lab.dir.join("empty-home");
    std::fs::create_dir_all(&empty_home).unwrap();
    let missing = lab.dir.join("missing.yaml").display().to_string();
    let cases: Vec<(&str, Vec<&str>, &Path, Vec<String>)> = vec![
        (
            "refused",
            vec![],
            &home,
            vec![
                "the API server https://127.0.0.1:6443 refused the connection".into(),
                format!("(context lab, kubeconfig {config})"),
                "is the cluster running".into(),
            ],
        ),
        (
            "unreachable",
            vec![],
            &home,
            vec![
                "cannot reach the API server".into(),
                "network is unreachable".into(),
            ],
        ),
        (
            "timeout",
            vec![],
            &home,
            vec!["did not answer within 5s".into()],
        ),
        (
            "untrusted",
            vec![],
            &home,
            vec!["a certificate kubectl does not trust".into(), "x509".into()],
        ),
        (
            "unauthorized",
            vec![],
            &home,
            vec!["rejected the credentials".into(), "log in again".into()],
        ),
        (
            "no-context",
            vec![],
            &home,
            vec![
                format!("kubeconfig {config} has no current context (it has: lab, prod-eu)"),
                "kubectl config use-context".into(),
            ],
        ),
        (
            "no-context",
            vec![],
            &empty_home,
            vec![format!(
                "no kubeconfig: {}/.kube/config does not exist",
                empty_home.display()
            )],
        ),
        (
            "ok",
            vec!["--context", "nope"],
            &home,
            vec![
                "context `nope` is not in kubeconfig".into(),
                "(it has: lab, prod-eu)".into(),
            ],
        ),
        (
            "ok",
            vec!["--kubeconfig", &missing],
            &home,
            vec![format!(
                "kubeconfig {missing} (--kubeconfig) does not exist"
            )],
        ),
    ];
    for (scenario, extra, home, want) in cases {
        lab.scenario(scenario);
        let _ = std::fs::remove_file(lab.state.join("calls.jsonl"));
        let mut args = vec!["web-1", "-n", "shop"];
        args.extend(&extra);
        let out = lab
            .plugin(&args)
            .env("HOME", home)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap();
        let err = lines(&out);
        assert_eq!(out.status.code(), Some(2), "{scenario} {extra:?}: {err:?}");
        assert_eq!(err.len(), 1, "{scenario} {extra:?}: one line: {err:?}");
        assert!(err[0].starts_with("kubectl meshsniff: "), "{err:?}");
        for w in &want {
            assert!(
                err[0].contains(w.as_str()),
                "{scenario} {extra:?}: `{w}` in {err:?}"
            );
        }
        assert!(!err[0].contains("memcache"), "{err:?}");
        assert!(lab.mutating_calls().is_empty(), "{scenario}");
        // The first API call is bounded.
        for (a, _) in lab.calls() {
            if a.iter().any(|x| x == "--raw") {
                assert!(a.iter().any(|x| x == "--request-timeout=5s"), "{a:?}");
            }
        }
    }
    // KUBECONFIG naming only files that do not exist; and gc says the same.
    lab.scenario("no-context");
    let out = lab
        .plugin(&["gc"])
        .env("HOME", &empty_home)
        .env("KUBECONFIG", "/nonexistent/a:/nonexistent/b")
        .output()
        .unwrap();
    let err = lines(&out);
    assert_eq!(out.status.code(), Some(2), "{err:?}");
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].contains("no kubeconfig: no file of KUBECONFIG=/nonexistent/a:/nonexistent/b"),
        "{err:?}"
    );
}

/// The same with the real kubectl (where installed): a kubeconfig pointing at 127.0.0.1:1
/// (nothing listens), a missing file, no current context, an unknown context, no kubeconfig
/// at all, an API server on loopback that answers 401, one that never answers; the texts
/// are real kubectl's. The token in the kubeconfig is never printed.
#[test]
fn real_kubectl_cluster_problems_are_one_line_each() {
    let test = "real_kubectl_cluster_problems_are_one_line_each";
    if !(common::have(test, "kubectl") && common::have(test, "python3")) {
        return;
    }
    let dir = std::env::temp_dir().join(format!("meshsniff-kube-{}-real", std::process::id()));
    let home = dir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    // Two loopback servers: one answers 401 to everything, one accepts and never answers.
    let script = dir.join("servers.py");
    std::fs::write(
        &script,
        "import http.server, socket, sys, threading\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   def do_GET(self):\n\
         \x20       b = b'{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\",\"message\":\"Unauthorized\",\"reason\":\"Unauthorized\",\"code\":401}'\n\
         \x20       self.send_response(401); self.send_header('Content-Type', 'application/json')\n\
         \x20       self.send_header('Content-Length', str(len(b))); self.end_headers(); self.wfile.write(b)\n\
         \x20   def log_message(self, *a): pass\n\
         a = http.server.HTTPServer(('127.0.0.1', 0), H)\n\
         s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(64)\n\
         print(a.server_address[1], s.getsockname()[1], flush=True)\n\
         held = []\n\
         threading.Thread(target=lambda: [held.append(s.accept()) for _ in iter(int, 1)], daemon=True).start()\n\
         a.serve_forever()\n",
    )
    .unwrap();
    let mut servers = Command::new("python3")
        .arg(&script)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(servers.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    let ports: Vec<&str> = first.split_whitespace().collect();
    let config = |name: &str, server: &str, current: &str| {
        let p = dir.join(name);
        std::fs::write(
            &p,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: {server}\n\
                 contexts:\n- name: lab-ctx\n  context:\n    cluster: lab\n    user: lab-user\n\
                 current-context: \"{current}\"\nusers:\n- name: lab-user\n  user:\n    token: s3cr3t-token-value\n"
            ),
        )
        .unwrap();
        p.display().to_string()
    };
    let refused = config("refused.yaml", "https://127.0.0.1:1", "lab-ctx");
    let noctx = config("noctx.yaml", "https://127.0.0.1:1", "");
    let unauth = config(
        "401.yaml",
        &format!("http://127.0.0.1:{}", ports[0]),
        "lab-ctx",
    );
    let silent = config(
        "silent.yaml",
        &format!("http://127.0.0.1:{}", ports[1]),
        "lab-ctx",
    );
    let missing = dir.join("missing.yaml").display().to_string();
    let cases: Vec<(Vec<&str>, Vec<String>)> = vec![
        (
            vec!["--kubeconfig", &refused],
            vec![
                "the API server https://127.0.0.1:1 refused the connection".into(),
                format!("(context lab-ctx, kubeconfig {refused} (--kubeconfig))"),
            ],
        ),
        (
            vec!["--kubeconfig", &missing],
            vec![format!(
                "kubeconfig {missing} (--kubeconfig) does not exist"
            )],
        ),
        (
            vec!["--kubeconfig", &noctx],
            vec![format!(
                "kubeconfig {noctx} (--kubeconfig) has no current context (it has: lab-ctx)"
            )],
        ),
        (
            vec!["--kubeconfig", &refused, "--context", "nope"],
            vec![
                "context `nope` is not in kubeconfig".into(),
                "(it has: lab-ctx)".into(),
            ],
        ),
        (
            vec![],
            vec![format!(
                "no kubeconfig: {}/.kube/config does not exist",
                home.display()
            )],
        ),
        (
            vec!["--kubeconfig", &unauth],
            vec!["rejected the credentials (context lab-ctx".into()],
        ),
        (
            vec!["--kubeconfig", &silent],
            vec!["did not answer within 5s".into()],
        ),
    ];
    for (extra, want) in cases {
        let mut args = vec!["web-1", "-n", "shop"];
        args.extend(&extra);
        let start = Instant::now();
        let out = Command::new(plugin())
            .args(&args)
            .env("HOME", &home)
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .output()
            .unwrap();
        let err = lines(&out);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {err:?}");
        assert_eq!(err.len(), 1, "{extra:?}: one line: {err:?}");
        for w in &want {
            assert!(err[0].contains(w.as_str()), "{extra:?}: `{w}` in {err:?}");
        }
        assert!(!err[0].contains("s3cr3t"), "{err:?}");
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{extra:?}: bounded"
        );
    }
    let _ = servers.kill();
    let _ = servers.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Issue 11: an interface the pod lacks is found in the pod (the helper's interface list,
/// through the same exec, before any capture) and is exit 2 naming the interfaces the pod
/// has; the helper is deleted. The same in an ephemeral container. (Before: the capture
/// failed in the helper and the run ended with exit 3, "the stream ended early".)
#[test]
fn a_missing_interface_is_found_in_the_pod_before_the_capture() {
    if !ready("a_missing_interface_is_found_in_the_pod_before_the_capture") {
        return;
    }
    let lab = KubeLab::with_web(9);
    let out = lab.run(&["web-1", "-n", "shop", "-i", "eth9", "--duration", "5s"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("pod shop/web-1 has no interface `eth9`; it has: lo, eth0"),
        "{err}"
    );
    assert_eq!(lab.deletes().len(), 1, "the helper is deleted: {err}");
    let execs: Vec<Vec<String>> = lab
        .calls()
        .into_iter()
        .map(|(a, _)| a)
        .filter(|a| a[0] == "exec")
        .collect();
    assert_eq!(execs.len(), 1, "{execs:?}");
    assert_eq!(
        execs[0][execs[0].len() - 1],
        "--list-interfaces",
        "only the list ran: {execs:?}"
    );
    let out = lab.run(&["web-1", "-n", "shop", "--ephemeral", "-i", "eth9"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("has no interface `eth9`; it has: lo, eth0"),
        "{err}"
    );
    let last = lab.calls().last().unwrap().0.clone();
    assert!(
        last.ends_with(&[
            "/meshsniff".into(),
            "capture".into(),
            "--list-interfaces".into()
        ]),
        "in the pod's own namespace: {last:?}"
    );
}

/// The plugin's checks of `--profile`, `--format` and `--fail-on` accept exactly what
/// `meshsniff check` accepts, value by value (so a later change to one shows here).
#[test]
fn the_plugin_accepts_what_the_analyzer_accepts() {
    let lab = KubeLab::stand_in_only("same");
    // Past its own checks the plugin meets the cluster (refused): that says "accepted".
    lab.scenario("refused");
    let capture = common::repo().join("captures/http-python-curl.pcap");
    let mut values: Vec<(&str, String)> = Vec::new();
    for k in meshsniff::policy::Kind::ALL {
        values.push(("--fail-on", k.name().into()));
    }
    for r in meshsniff::kube::checks::FINDING_RULES {
        values.push(("--fail-on", r.into()));
    }
    for v in [
        "plaintext_leak",
        "leak",
        "",
        "mtls, tls",
        "mtls,nope",
        "PLAINTEXT-LEAK",
    ] {
        values.push(("--fail-on", v.into()));
    }
    for v in ["table", "jsonl", "json", "yaml", "Table", "text"] {
        values.push(("--format", v.into()));
    }
    for v in ["istio", "strict", "none", "Istio", "mesh", ""] {
        values.push(("--profile", v.into()));
    }
    for (flag, value) in &values {
        let analyzer = Command::new(common::bin())
            .args(["check", flag, value])
            .arg(&capture)
            .output()
            .unwrap();
        let analyzer_ok = analyzer.status.code() != Some(2);
        let out = lab.run(&["web-1", "-n", "shop", flag, value]);
        let plugin_ok = lines(&out)
            .iter()
            .any(|l| l.contains("refused the connection"));
        assert_eq!(
            plugin_ok,
            analyzer_ok,
            "{flag} `{value}`: plugin {:?}, analyzer {}",
            lines(&out),
            String::from_utf8_lossy(&analyzer.stderr)
        );
    }
}

/// Issue 11: `kubectl meshsniff help gc` works, every flag of every subcommand has help, and
/// the help says how to install so that `kubectl plugin list` is clean (real kubectl, where
/// installed: the installed layout lists the plugin without a warning; target/release's,
/// with cargo's dep-info file, warns). (Before: `help gc` was refused as two pod names and
/// gc's flags had no help.)
#[test]
fn help_covers_every_subcommand_and_flag() {
    let help = |args: &[&str]| {
        let out = Command::new(plugin()).args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let main = help(&["--help"]);
    let gc = help(&["help", "gc"]);
    assert_eq!(gc, help(&["gc", "--help"]));
    assert!(gc.contains("Usage: kubectl meshsniff gc"), "{gc}");
    assert!(
        main.contains("gc") && main.contains("Delete meshsniff helper pods"),
        "{main}"
    );
    for text in [&main, &gc] {
        // Every option line has its description: on the same line after the flag and a gap,
        // or on the next line, indented further.
        let ls: Vec<&str> = text.lines().collect();
        for (i, l) in ls.iter().enumerate() {
            let t = l.trim_start();
            if t.starts_with('-') && l.len() - t.len() <= 6 {
                let same_line = t
                    .split_once("  ")
                    .is_some_and(|(_, d)| !d.trim().is_empty());
                let next = ls.get(i + 1).copied().unwrap_or("");
                let next_line = next.len() - next.trim_start().len() > l.len() - t.len()
                    && !next.trim().is_empty();
                assert!(same_line || next_line, "`{t}` has no help:\n{text}");
            }
        }
    }
    assert!(gc.contains("--all") && gc.contains("--context") && gc.contains("--kubeconfig"));
    assert!(
        main.contains("cargo install --path .") && main.contains("kubectl-meshsniff.d"),
        "{main}"
    );
    if !common::have("help_covers_every_subcommand_and_flag", "kubectl") {
        return;
    }
    // As `cargo install` and the archive lay them out: the two binaries alone.
    let dir = std::env::temp_dir().join(format!("meshsniff-kube-{}-list", std::process::id()));
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(plugin(), bin.join("kubectl-meshsniff")).unwrap();
    std::fs::copy(common::bin(), bin.join("meshsniff")).unwrap();
    let kubectl_dir = Command::new("sh")
        .args(["-c", "dirname \"$(readlink -f \"$(command -v kubectl)\")\""])
        .output()
        .unwrap();
    let kubectl_dir = String::from_utf8_lossy(&kubectl_dir.stdout)
        .trim()
        .to_string();
    let list = |bin: &Path| {
        Command::new(format!("{kubectl_dir}/kubectl"))
            .args(["plugin", "list"])
            .env("PATH", format!("{}:{kubectl_dir}", bin.display()))
            .env("HOME", &dir)
            .output()
            .unwrap()
    };
    let out = list(&bin);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("kubectl-meshsniff") && !stderr.contains("warning"),
        "{stdout}{stderr}"
    );
    std::fs::write(
        bin.join("kubectl-meshsniff.d"),
        "target/release/kubectl-meshsniff: src/x.rs\n",
    )
    .unwrap();
    let out = list(&bin);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("kubectl-meshsniff.d identified as a kubectl plugin"),
        "what target/release on PATH does"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `kubectl meshsniff --upload …` as the user sees it, whatever `kubectl` the command's PATH
/// (and KUBECONFIG) names: the stand-in here, a real cluster's kubectl too. Started with
/// `args` (target and flags; `--upload` and `--format jsonl` are added), `traffic` run once
/// it captures; asserts that the copy was checked and the capture judged flows, and returns
/// the output and the stderr.
fn upload_run(mut plugin: Command, args: &[&str], traffic: impl FnOnce()) -> (Output, String) {
    let log = std::env::temp_dir().join(format!(
        "meshsniff-upload-{}-{}.log",
        std::process::id(),
        args.join("_").replace('/', "-")
    ));
    let mut child = plugin
        .args(args)
        .args(["--upload", "--format", "jsonl"])
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // The copy comes first: a test build's binary is tens of MB (a release one 2.6 MB).
    let start = Instant::now();
    while !std::fs::read_to_string(&log).is_ok_and(|t| t.contains("capturing on")) {
        let err = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            start.elapsed() < Duration::from_secs(180) && child.try_wait().unwrap().is_none(),
            "never captured: {err}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    traffic();
    let out = child.wait_with_output().unwrap();
    let err = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    assert!(
        err.contains("kubectl meshsniff: copied the helper (") && err.contains("SHA-256 checked"),
        "{err}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let flows = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["type"] == "flow")
        .count();
    assert!(flows >= 1, "no flow judged: {err}\n{text}");
    (out, err)
}

/// `--upload`: the helper pod runs busybox:1.36 (the default for --upload) idling in `sh` with
/// the normal helper's bound; the static helper is written in through `exec -i … sh -c 'cat >
/// …'` byte for byte (mode 0700), its SHA-256 checked with sha256sum in the pod, then run from
/// there exactly as the normal helper (same capture argv, from /tmp/meshsniff), and the pod
/// deleted. In an image without sha256sum (`--image alpine:3.20`, PATH with sh, cat, chmod,
/// mv only) the copy is read back and hashed by the plugin.
#[test]
fn upload_copies_the_helper_in_checks_it_and_runs_it() {
    if !ready("upload_copies_the_helper_in_checks_it_and_runs_it") {
        return;
    }
    let lab = KubeLab::with_web(40);
    let (out, err) = upload_run(
        lab.plugin(&[]),
        &["web-1", "-n", "shop", "--duration", "4s"],
        || {
            for _ in 0..3 {
                lab.curl(0, "/").unwrap();
            }
        },
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "cleartext HTTP is a leak: {err}"
    );
    assert!(err.contains("checked in the pod (sha256sum)"), "{err}");
    // A test build is dynamically linked: the plugin says what that means.
    assert!(err.contains("is dynamically linked"), "{err}");
    let helper = &lab.created_pods()[0];
    round_trips::<api::Pod>(helper);
    let name = helper["metadata"]["name"].as_str().unwrap();
    let c = &helper["spec"]["containers"][0];
    assert_eq!(c["image"], "busybox:1.36");
    let deadline = helper["spec"]["activeDeadlineSeconds"].as_u64().unwrap();
    // The default --start-timeout (120 s), the capture and the grace, as the normal helper.
    assert_eq!(deadline, 120 + 4 + manifest::GRACE_SECS);
    assert_eq!(
        c["command"],
        json!([
            "sh",
            "-c",
            format!("trap 'exit 0' TERM INT; sleep {deadline} & wait")
        ])
    );
    assert_eq!(c["securityContext"]["privileged"], true);
    // What was copied is the plugin's neighbour, byte for byte, executable by root only.
    let copied = lab.state.join(format!(
        "podfs/meshsniff-system/{name}/helper/tmp/meshsniff"
    ));
    assert_eq!(common::read(&copied), common::read(&common::bin()));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&copied).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // The execs: write (stdin), checksum, then the capture as the normal helper runs it but
    // from /tmp/meshsniff; then the delete.
    let execs: Vec<Vec<String>> = lab
        .calls()
        .into_iter()
        .map(|(a, _)| a)
        .filter(|a| a[0] == "exec")
        .collect();
    assert_eq!(execs.len(), 3, "{execs:?}");
    let prefix = [
        "exec",
        "-i",
        &format!("pod/{name}"),
        "-n",
        "meshsniff-system",
        "-c",
        "helper",
        "--",
    ]
    .map(String::from);
    assert!(execs.iter().all(|e| e.starts_with(&prefix)), "{execs:?}");
    assert!(
        execs[0][8..]
            .join(" ")
            .contains("cat > /tmp/meshsniff.part")
    );
    assert!(execs[1][8..].join(" ").contains("sha256sum /tmp/meshsniff"));
    let target = target::pod_target(
        &serde_json::from_str(
            &std::fs::read_to_string(lab.state.join("objects/pods/shop/web-1.json")).unwrap(),
        )
        .unwrap(),
        None,
    )
    .unwrap();
    let mut want = manifest::capture_argv(
        Some(&target),
        &CaptureOpts {
            interface: "any".into(),
            filter: None,
            duration_secs: 4,
            count: None,
        },
    );
    want[0] = "/tmp/meshsniff".into();
    assert_eq!(execs[2][8..], want[..]);
    assert_eq!(lab.deletes().len(), 1);
    assert!(
        err.contains(&format!("deleted helper pod meshsniff-system/{name}")),
        "{err}"
    );

    // An image without sha256sum: read back with cat, hashed here.
    let lab = KubeLab::with_web(41);
    lab.scenario("minimal-image");
    let (_, err) = upload_run(
        lab.plugin(&[]),
        &[
            "web-1",
            "-n",
            "shop",
            "--duration",
            "3s",
            "--image",
            "alpine:3.20",
        ],
        || lab.curl(0, "/").unwrap(),
    );
    assert!(
        err.contains("read back with cat: no sha256sum there"),
        "{err}"
    );
    assert_eq!(
        lab.created_pods()[0]["spec"]["containers"][0]["image"],
        "alpine:3.20"
    );
}

/// `--upload` refuses a copy whose SHA-256 differs (one byte flipped on the way): clear
/// message, exit 2, the helper never run and its pod deleted. A helper binary that is missing
/// or not an x86-64 executable is refused before any kubectl call; --helper-binary needs
/// --upload.
#[test]
fn upload_refuses_a_copy_that_differs_and_a_bad_helper_binary() {
    if !ready("upload_refuses_a_copy_that_differs_and_a_bad_helper_binary") {
        return;
    }
    let lab = KubeLab::with_web(42);
    lab.scenario("corrupt-upload");
    let out = lab.run(&["web-1", "-n", "shop", "--duration", "3s", "--upload"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    let want = {
        use sha2::Digest;
        sha2::Sha256::digest(common::read(&common::bin()))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let name = lab.created_pods()[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        err.contains(&format!(
            "the helper copied into meshsniff-system/{name} (container helper) has SHA-256 "
        )) && err.contains(&format!(", not {want} ("))
            && err.contains("refusing to run it"),
        "{err}"
    );
    let execs = lab
        .calls()
        .into_iter()
        .filter(|(a, _)| a[0] == "exec")
        .count();
    assert_eq!(execs, 2, "write and checksum only: the helper never ran");
    assert_eq!(lab.deletes().len(), 1);

    let lab = KubeLab::stand_in_only("upload-bad");
    lab.put_pod("shop", "web-1", "Running");
    let script = lab.dir.join("not-elf");
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let missing = lab.dir.join("missing");
    for (bin, says) in [
        (script.to_str().unwrap(), "not an x86-64 Linux executable"),
        (missing.to_str().unwrap(), "No such file"),
    ] {
        let out = lab.run(&["web-1", "-n", "shop", "--upload", "--helper-binary", bin]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("--helper-binary {bin}: ")) && err.contains(says),
            "{err}"
        );
    }
    assert!(lab.calls().is_empty(), "{:?}", lab.calls());
    let out = lab.run(&["web-1", "--helper-binary", script.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--upload"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(lab.calls().is_empty());
}

/// `--upload --ephemeral`: the ephemeral container runs busybox idling in `sh`, the helper is
/// copied into it and run there (in the pod's own namespace: no --container).
#[test]
fn upload_works_in_an_ephemeral_container() {
    if !ready("upload_works_in_an_ephemeral_container") {
        return;
    }
    let lab = KubeLab::with_web(43);
    // --helper-binary: a smaller copy (stripped) than the one beside the plugin.
    let stripped = lab.dir.join("meshsniff-stripped");
    common::sh(&[
        "strip",
        "-o",
        stripped.to_str().unwrap(),
        common::bin().to_str().unwrap(),
    ]);
    let (out, err) = upload_run(
        lab.plugin(&[]),
        &[
            "web-1",
            "-n",
            "shop",
            "--duration",
            "3s",
            "--ephemeral",
            "--helper-binary",
            stripped.to_str().unwrap(),
        ],
        || lab.curl(0, "/").unwrap(),
    );
    assert_eq!(out.status.code(), Some(1), "{err}");
    let pod: Value = serde_json::from_str(
        &std::fs::read_to_string(lab.state.join("objects/pods/shop/web-1.json")).unwrap(),
    )
    .unwrap();
    let eph = &pod["spec"]["ephemeralContainers"][0];
    assert_eq!(eph["image"], "busybox:1.36");
    assert_eq!(eph["command"][0], "sh");
    let execs: Vec<Vec<String>> = lab
        .calls()
        .into_iter()
        .map(|(a, _)| a)
        .filter(|a| a[0] == "exec")
        .collect();
    assert_eq!(execs.len(), 3, "{execs:?}");
    assert_eq!(execs[2][8], "/tmp/meshsniff");
    assert!(!execs[2].iter().any(|a| a == "--container"), "{execs:?}");
    let copied = lab.state.join(format!(
        "podfs/shop/web-1/{}/tmp/meshsniff",
        eph["name"].as_str().unwrap()
    ));
    assert_eq!(common::read(&copied), common::read(&stripped));
    assert!(lab.created_pods().is_empty());
}

impl KubeLab {
    /// A workload object in the stand-in's store (`objects/deployments.apps/NS/NAME.json`).
    fn put_workload(&self, resource: &str, kind: &str, ns: &str, name: &str, selector: Value) {
        let o = json!({"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "namespace": ns}, "spec": {"selector": selector}});
        let file = self
            .state
            .join(format!("objects/{resource}/{ns}/{name}.json"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, o.to_string()).unwrap();
    }

    fn put_labelled_pod(&self, ns: &str, name: &str, labels: Value) {
        let mut pod = pod_json(ns, name, "node-a", &"c".repeat(64), labels);
        pod["status"]["phase"] = json!("Pending");
        let file = self.state.join(format!("objects/pods/{ns}/{name}.json"));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, pod.to_string()).unwrap();
    }
}

/// Issue 12: kubectl's target forms. `deploy/NAME` and `sts/NAME` (and their long forms) are
/// read with their API group, and their pods selected by the workload's own selector
/// (matchLabels and matchExpressions); `-A` with `-l` lists every namespace. The pods here
/// are Pending, so each run ends after the lookup: what is asserted is which pods were found
/// (the "skipped" lines name them) and the exact calls.
#[test]
fn workloads_and_all_namespaces_select_pods_as_kubectl_does() {
    let lab = KubeLab::stand_in_only("workloads");
    lab.put_workload(
        "deployments.apps",
        "Deployment",
        "shop",
        "web",
        json!({"matchLabels": {"app": "web"}}),
    );
    lab.put_workload(
        "statefulsets.apps",
        "StatefulSet",
        "shop",
        "db",
        json!({"matchLabels": {"app": "db"}}),
    );
    lab.put_labelled_pod("shop", "web-1", json!({"app": "web"}));
    lab.put_labelled_pod("shop", "db-0", json!({"app": "db"}));
    lab.put_labelled_pod("other", "web-9", json!({"app": "web"}));
    for (form, resource, sel, pod) in [
        (
            "deploy/web",
            "deployments.apps/web",
            "app=web",
            "shop/web-1",
        ),
        (
            "deployment/web",
            "deployments.apps/web",
            "app=web",
            "shop/web-1",
        ),
        ("sts/db", "statefulsets.apps/db", "app=db", "shop/db-0"),
        (
            "statefulset/db",
            "statefulsets.apps/db",
            "app=db",
            "shop/db-0",
        ),
    ] {
        let before = lab.calls().len();
        let out = lab.run(&[form, "-n", "shop"]);
        let err = lines(&out);
        assert_eq!(out.status.code(), Some(2), "{form}: {err:?}");
        assert!(
            err.iter()
                .any(|l| l.contains(&format!("its pods are -l {sel}"))),
            "{form}: {err:?}"
        );
        assert!(
            err.iter()
                .any(|l| l.contains(&format!("skipped: pod {pod}: is Pending"))),
            "{form}: {err:?}"
        );
        assert!(
            !err.iter().any(|l| l.contains("web-9")),
            "other namespace: {err:?}"
        );
        let calls: Vec<Vec<String>> = lab.calls()[before..].iter().map(|c| c.0.clone()).collect();
        assert_eq!(
            calls[2],
            ["get", resource, "-n", "shop", "-o", "json"],
            "{form}"
        );
        assert_eq!(
            calls[3],
            [
                "get",
                "pods",
                &format!("--selector={sel}"),
                "-n",
                "shop",
                "-o",
                "json"
            ],
            "{form}"
        );
        assert!(lab.mutating_calls().is_empty(), "{form}");
    }
    // A workload that is not there: said as kubectl would, with its kind.
    let out = lab.run(&["deploy/nope", "-n", "shop"]);
    assert!(
        lines(&out)
            .iter()
            .any(|l| l.contains("deployment shop/nope not found")),
        "{:?}",
        lines(&out)
    );
    // -A -l: both namespaces' pods.
    let before = lab.calls().len();
    let out = lab.run(&["-A", "-l", "app=web"]);
    let err = lines(&out);
    assert!(
        err.iter().any(|l| l.contains("pod shop/web-1: is Pending"))
            && err
                .iter()
                .any(|l| l.contains("pod other/web-9: is Pending")),
        "{err:?}"
    );
    assert!(
        err.iter()
            .any(|l| l.contains("no running pod matches -l app=web in any namespace")),
        "{err:?}"
    );
    assert_eq!(
        lab.calls()[before + 2].0,
        [
            "get",
            "pods",
            "--selector=app=web",
            "--all-namespaces",
            "-o",
            "json"
        ]
    );
}

/// Issue 12: release/rbac.yaml is exactly what `kubectl meshsniff rbac` prints (the rules
/// the code uses, in src/kube/rbac.rs), and every rule names a resource the plugin's calls
/// touch.
#[test]
fn the_shipped_rbac_file_is_the_plugins_own() {
    let out = Command::new(plugin()).arg("rbac").output().unwrap();
    assert!(out.status.success());
    let file = std::fs::read_to_string(common::repo().join("release/rbac.yaml")).unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        file,
        "release/rbac.yaml is stale: `kubectl-meshsniff rbac > release/rbac.yaml`"
    );
    for kind in [
        "Namespace",
        "ClusterRole",
        "Role",
        "RoleBinding",
        "ClusterRoleBinding",
    ] {
        assert!(file.contains(&format!("kind: {kind}\n")), "{kind}");
    }
}

/// Issue 12: a permission the user lacks is named before anything is created (the
/// SelfSubjectAccessReviews say so), and one refused by a call itself is named from RBAC's
/// "cannot VERB resource" text, with the user.
#[test]
fn a_missing_permission_is_named() {
    let lab = KubeLab::stand_in_only("rbac");
    let pod = pod_json(
        "shop",
        "web-1",
        "node-a",
        &"c".repeat(64),
        json!({"app": "web"}),
    );
    let file = lab.state.join("objects/pods/shop/web-1.json");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, pod.to_string()).unwrap();
    let deny = lab.state.join("deny");
    for (denied, args, says) in [
        (
            "delete pods meshsniff-system",
            &["web-1", "-n", "shop"][..],
            "missing permission: delete pods in meshsniff-system (see release/rbac.yaml); \
             nothing was created",
        ),
        (
            "create pods/exec meshsniff-system\ncreate pods meshsniff-system",
            &["web-1", "-n", "shop"],
            "missing permission: create pods in meshsniff-system, create pods/exec in \
             meshsniff-system (see release/rbac.yaml)",
        ),
        (
            "patch pods/ephemeralcontainers shop",
            &["web-1", "-n", "shop", "--ephemeral"],
            "missing permission: patch pods/ephemeralcontainers in shop",
        ),
        (
            "get pods shop",
            &["web-1", "-n", "shop", "--as=dev"],
            "missing permission: get pods in shop (user dev; see release/rbac.yaml)",
        ),
        (
            "get deployments shop",
            &["deploy/web", "-n", "shop"],
            "missing permission: get deployments.apps in shop (user lab-user",
        ),
        (
            "list pods -",
            &["-A", "-l", "app=web"],
            "missing permission: list pods (cluster-wide)",
        ),
    ] {
        std::fs::write(&deny, denied).unwrap();
        let out = lab.run(args);
        let err = lines(&out);
        assert_eq!(out.status.code(), Some(2), "{denied}: {err:?}");
        assert_eq!(err.len(), 1, "{denied}: one line: {err:?}");
        assert!(err[0].contains(says), "{denied}: {err:?}");
        assert!(lab.created_pods().is_empty(), "{denied}");
        assert!(
            !lab.calls()
                .iter()
                .any(|(a, _)| a.iter().any(|x| x == "patch")),
            "{denied}"
        );
    }
}
