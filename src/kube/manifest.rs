//! Role: the objects `kubectl meshsniff` creates, as JSON for `kubectl create -f -`: the
//! `meshsniff-system` namespace (Pod Security `privileged`, no Istio injection), the helper pod
//! (pinned to the target's node, tolerating every taint, hostPID, privileged, never given an
//! Istio sidecar, bounded in resources and lifetime, labelled with its session and expiry),
//! the ephemeral container of `--ephemeral`, and the helper's capture command line.
//! `tests/kube.rs` checks each against the Kubernetes API types.

use super::target::PodTarget;
use serde_json::{Value, json};

pub const NAMESPACE: &str = "meshsniff-system";
/// Where the static helper binary is in the helper image.
pub const HELPER_PATH: &str = "/meshsniff";
pub const DEFAULT_IMAGE: &str = concat!("ghcr.io/meshsniff/meshsniff:", env!("CARGO_PKG_VERSION"));
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const SESSION: &str = "meshsniff.io/session";
/// Unix seconds after which `kubectl meshsniff gc` deletes the helper.
pub const EXPIRES: &str = "meshsniff.io/expires";
pub const ISTIO_INJECT: &str = "sidecar.istio.io/inject";
/// Time a helper gets beyond its start (`--start-timeout`) and the capture's duration to be
/// stopped. (Was 300 s on top of the duration, start included: a helper whose plugin was
/// SIGKILLed idled five minutes after its capture; measured on the test cluster.)
pub const GRACE_SECS: u64 = 30;

/// One helper pod of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Helper {
    pub session: String,
    pub name: String,
    pub node: String,
    pub image: String,
    /// The capture's own bound, in seconds.
    pub duration_secs: u64,
    /// How long it may take to start (`--start-timeout`), in seconds.
    pub start_secs: u64,
    /// Creation time, Unix seconds.
    pub now: u64,
}

impl Helper {
    /// The pod's own deadline (`activeDeadlineSeconds`, and the idle process's): its start,
    /// the capture, and a grace.
    pub fn deadline_secs(&self) -> u64 {
        self.start_secs + self.duration_secs + GRACE_SECS
    }
    pub fn expires(&self) -> u64 {
        self.now + self.deadline_secs()
    }
}

/// The helper namespace, labelled so that Pod Security admits a privileged pod in it and
/// Istio never injects a sidecar there.
pub fn namespace() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": NAMESPACE,
            "labels": {
                "pod-security.kubernetes.io/enforce": "privileged",
                "pod-security.kubernetes.io/audit": "privileged",
                "pod-security.kubernetes.io/warn": "privileged",
                "istio-injection": "disabled",
                MANAGED_BY: "meshsniff",
            }
        }
    })
}

/// Does an existing namespace admit the helper? (`None`: yes; else what is wrong.)
pub fn namespace_problem(ns: &Value) -> Option<String> {
    let enforce = ns
        .pointer("/metadata/labels/pod-security.kubernetes.io~1enforce")
        .and_then(Value::as_str);
    match enforce {
        None | Some("privileged") => None,
        Some(level) => Some(format!(
            "namespace {NAMESPACE} enforces Pod Security `{level}`, which rejects the privileged \
             helper: `kubectl label namespace {NAMESPACE} \
             pod-security.kubernetes.io/enforce=privileged --overwrite`, or use --ephemeral"
        )),
    }
}

fn labels(session: &str, expires: u64) -> Value {
    json!({
        "app.kubernetes.io/name": "meshsniff-helper",
        MANAGED_BY: "meshsniff",
        SESSION: session,
        EXPIRES: expires.to_string(),
        ISTIO_INJECT: "false",
    })
}

/// The helper pod: it idles (bounded) until the capture is run in it with `exec`.
pub fn helper_pod(h: &Helper, targets: &[&PodTarget]) -> Value {
    let deadline = h.deadline_secs();
    let names: Vec<String> = targets
        .iter()
        .map(|t| format!("{}/{}", t.namespace, t.name))
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": h.name,
            "namespace": NAMESPACE,
            "labels": labels(&h.session, h.expires()),
            "annotations": {
                ISTIO_INJECT: "false",
                "meshsniff.io/targets": names.join(","),
            }
        },
        "spec": {
            "nodeName": h.node,
            "hostPID": true,
            "restartPolicy": "Never",
            "activeDeadlineSeconds": deadline,
            "terminationGracePeriodSeconds": 2,
            "automountServiceAccountToken": false,
            "enableServiceLinks": false,
            "tolerations": [{"operator": "Exists"}],
            "containers": [{
                "name": "helper",
                "image": h.image,
                "imagePullPolicy": "IfNotPresent",
                "command": [HELPER_PATH, "idle", "--seconds", deadline.to_string()],
                "securityContext": {
                    "privileged": true,
                    "runAsUser": 0,
                    "runAsNonRoot": false,
                },
                "resources": {
                    "requests": {"cpu": "50m", "memory": "64Mi"},
                    "limits": {"cpu": "1", "memory": "512Mi"},
                },
            }],
        }
    })
}

/// The ephemeral container of `--ephemeral`: in the target pod (so in its network namespace),
/// with the capabilities a packet socket needs, idling for the capture's bound: an ephemeral
/// container cannot be removed, so it must end on its own.
pub fn ephemeral_container(h: &Helper) -> Value {
    json!({
        "name": h.name,
        "image": h.image,
        "imagePullPolicy": "IfNotPresent",
        "command": [HELPER_PATH, "idle", "--seconds", h.deadline_secs().to_string()],
        "securityContext": {
            "runAsUser": 0,
            "runAsNonRoot": false,
            "capabilities": {"add": ["NET_RAW", "NET_ADMIN"]},
        },
    })
}

/// What the capture records: interface, filter, bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureOpts {
    pub interface: String,
    pub filter: Option<String>,
    pub duration_secs: u64,
    pub count: Option<u64>,
}

/// The helper's command line (argv for `kubectl exec -i POD -- …`): pcapng on stdout, bounded
/// by duration (and count) on the helper's side, since an exec stream can drop without EOF.
/// `target` is `None` in an ephemeral container, which is already in the pod's namespace.
pub fn capture_argv(target: Option<&PodTarget>, o: &CaptureOpts) -> Vec<String> {
    let mut v: Vec<String> = vec![HELPER_PATH.into(), "capture".into()];
    if let Some(t) = target {
        v.extend(["--container".into(), t.container_id.clone()]);
    }
    // `--flag=VALUE`: one argv element, never read as another flag whatever the value.
    v.extend([
        format!("--interface={}", o.interface),
        "-w".into(),
        "-".into(),
        "--pcapng".into(),
        "--duration".into(),
        format!("{}s", o.duration_secs),
    ]);
    if let Some(f) = &o.filter {
        v.push(format!("--filter={f}"));
    }
    if let Some(c) = o.count {
        v.extend(["-c".into(), c.to_string()]);
    }
    v
}

/// The helper's interface list (`capture --list-interfaces`) in the target's network
/// namespace: the check of `-i IFACE` before the capture.
pub fn list_interfaces_argv(target: Option<&PodTarget>) -> Vec<String> {
    let mut v: Vec<String> = vec![HELPER_PATH.into(), "capture".into()];
    if let Some(t) = target {
        v.extend(["--container".into(), t.container_id.clone()]);
    }
    v.push("--list-interfaces".into());
    v
}

/// A helper `gc` deletes: past its expiry label, or finished.
pub fn is_expired(pod: &Value, now: u64) -> bool {
    let expires = pod
        .pointer("/metadata/labels/meshsniff.io~1expires")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<u64>().ok());
    let phase = pod.pointer("/status/phase").and_then(Value::as_str);
    expires.is_none_or(|e| e <= now) || matches!(phase, Some("Succeeded" | "Failed"))
}
