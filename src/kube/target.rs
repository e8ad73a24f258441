//! Role: what the plugin needs to know about a target pod, read from `kubectl get pod -o json`:
//! its node, its containers' runtime IDs (`containerd://…`, `cri-o://…`, `docker://…`), and
//! whether it can be captured at all (running, scheduled, not on the host's network).

use super::KubeError;
use serde_json::Value;

/// Istio's injected sidecar container: not the one to name when another exists (all share
/// the pod's network namespace, but the application's ID is the one users recognise).
pub const ISTIO_PROXY: &str = "istio-proxy";

/// What the user named: a pod, or a workload whose pods (by its selector) to capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetArg {
    Pod(String),
    Workload { kind: WorkloadKind, name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
}

impl WorkloadKind {
    /// The resource as kubectl is given it, group included (no CRD of the same short name
    /// can be picked instead).
    pub fn resource(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployments.apps",
            WorkloadKind::StatefulSet => "statefulsets.apps",
            WorkloadKind::DaemonSet => "daemonsets.apps",
            WorkloadKind::ReplicaSet => "replicasets.apps",
        }
    }
    pub fn kind(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment",
            WorkloadKind::StatefulSet => "statefulset",
            WorkloadKind::DaemonSet => "daemonset",
            WorkloadKind::ReplicaSet => "replicaset",
        }
    }
    pub fn what(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "deployment name",
            WorkloadKind::StatefulSet => "statefulset name",
            WorkloadKind::DaemonSet => "daemonset name",
            WorkloadKind::ReplicaSet => "replicaset name",
        }
    }
}

/// A workload's `spec.selector` (matchLabels and matchExpressions) as a label selector
/// string for `kubectl get pods --selector=…`; refused when empty (it would select every pod).
pub fn workload_selector(workload: &Value) -> Result<String, KubeError> {
    let name = s(workload, &["metadata", "name"]).unwrap_or("?");
    let kind = s(workload, &["kind"]).unwrap_or("workload");
    let mut terms = Vec::new();
    if let Some(m) = workload
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
    {
        for (k, v) in m {
            terms.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    for e in super::array_at(workload, "/spec/selector/matchExpressions") {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = super::array_at(e, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        terms.push(match e.get("operator").and_then(Value::as_str) {
            Some("In") => format!("{key} in ({})", values.join(",")),
            Some("NotIn") => format!("{key} notin ({})", values.join(",")),
            Some("Exists") => key.to_string(),
            Some("DoesNotExist") => format!("!{key}"),
            other => {
                return Err(KubeError::Invalid(format!(
                    "{kind} {name}: selector operator {other:?} is not one kubectl knows"
                )));
            }
        });
    }
    if terms.is_empty() {
        return Err(KubeError::Invalid(format!(
            "{kind} {name} has an empty selector: it would select every pod; name its pods \
             with -l instead"
        )));
    }
    let sel = terms.join(",");
    super::checks::label_selector(&sel).map_err(KubeError::Invalid)?;
    Ok(sel)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodTarget {
    pub namespace: String,
    pub name: String,
    /// `metadata.uid`: a pod re-created under the same name is another pod.
    pub uid: String,
    pub node: String,
    /// The container whose ID the helper looks for in `/proc/*/cgroup`.
    pub container: String,
    /// As the API reports it: `containerd://<64 hex>`.
    pub container_id: String,
    pub host_network: bool,
    pub has_istio_proxy: bool,
}

fn s<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// Reads one pod; `container` picks a container by name (`-c`), else the first of the spec
/// that is not `istio-proxy`.
pub fn pod_target(pod: &Value, container: Option<&str>) -> Result<PodTarget, KubeError> {
    let name = s(pod, &["metadata", "name"]).unwrap_or("?").to_string();
    let namespace = s(pod, &["metadata", "namespace"])
        .unwrap_or("default")
        .to_string();
    let bad = |why: String| KubeError::Invalid(format!("pod {namespace}/{name}: {why}"));
    let phase = s(pod, &["status", "phase"]).unwrap_or("Unknown");
    if phase != "Running" {
        return Err(bad(format!(
            "is {phase}, not Running: only a running pod's traffic can be captured"
        )));
    }
    let node = s(pod, &["spec", "nodeName"])
        .ok_or_else(|| bad("is not scheduled on a node yet".into()))?
        .to_string();
    let names = |path| {
        super::array_at(pod, path)
            .iter()
            .filter_map(|c| c.get("name")?.as_str())
    };
    let spec_names: Vec<&str> = names("/spec/containers").collect();
    // Native sidecars (Istio 1.19+ on Kubernetes 1.28+) are init containers.
    let has_istio_proxy = spec_names.contains(&ISTIO_PROXY)
        || names("/spec/initContainers").any(|n| n == ISTIO_PROXY);
    let chosen = match container {
        Some(c) if spec_names.contains(&c) => c.to_string(),
        Some(c) => {
            return Err(bad(format!(
                "has no container `{c}`; it has: {}",
                spec_names.join(", ")
            )));
        }
        None => spec_names
            .iter()
            .find(|n| **n != ISTIO_PROXY)
            .or(spec_names.first())
            .ok_or_else(|| bad("has no containers".into()))?
            .to_string(),
    };
    let status = super::array_at(pod, "/status/containerStatuses")
        .iter()
        .find(|st| st.get("name").and_then(Value::as_str) == Some(&chosen))
        .ok_or_else(|| bad(format!("container `{chosen}` has no status yet")))?;
    let container_id = status
        .get("containerID")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            bad(format!(
                "container `{chosen}` has not started (no containerID)"
            ))
        })?
        .to_string();
    crate::capture::target::container_id(&container_id).map_err(|e| bad(e.to_string()))?;
    Ok(PodTarget {
        uid: s(pod, &["metadata", "uid"]).unwrap_or_default().to_string(),
        namespace,
        name,
        node,
        container: chosen,
        container_id,
        host_network: pod
            .pointer("/spec/hostNetwork")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        has_istio_proxy,
    })
}

/// Why a target being captured can no longer be (`None`: it still runs): deleted (not
/// found, or another pod of the same name), or ended (phase Succeeded or Failed).
pub fn gone(t: &PodTarget, now: Option<&Value>) -> Option<String> {
    let Some(pod) = now else {
        return Some("was deleted".into());
    };
    let uid = s(pod, &["metadata", "uid"]).unwrap_or_default();
    if !t.uid.is_empty() && uid != t.uid {
        return Some("was deleted (a new pod has its name)".into());
    }
    let deleting = pod.pointer("/metadata/deletionTimestamp").is_some();
    match s(pod, &["status", "phase"]) {
        // A deleted pod's containers are stopped first: Failed while its object remains.
        Some("Succeeded" | "Failed") if deleting => Some("was deleted".into()),
        Some(p @ ("Succeeded" | "Failed")) => Some(format!("ended ({p})")),
        _ => None,
    }
}

/// Every pod of a `kubectl get pods -l … -o json` list that can be captured, and why the
/// others cannot.
pub fn list_targets(list: &Value, container: Option<&str>) -> (Vec<PodTarget>, Vec<String>) {
    let mut ok = Vec::new();
    let mut skipped = Vec::new();
    for pod in super::array_at(list, "/items") {
        match pod_target(pod, container) {
            Ok(t) => ok.push(t),
            Err(e) => skipped.push(e.to_string()),
        }
    }
    (ok, skipped)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_workloads_selector_as_kubectl_takes_it() {
        let d = json!({"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"selector": {
            "matchLabels": {"app": "web", "tier": "front"},
            "matchExpressions": [
                {"key": "track", "operator": "In", "values": ["stable", "canary"]},
                {"key": "env", "operator": "NotIn", "values": ["dev"]},
                {"key": "owner", "operator": "Exists"},
                {"key": "legacy", "operator": "DoesNotExist"}]}}});
        assert_eq!(
            super::workload_selector(&d).unwrap(),
            "app=web,tier=front,track in (stable,canary),env notin (dev),owner,!legacy"
        );
        let empty =
            json!({"kind": "Deployment", "metadata": {"name": "all"}, "spec": {"selector": {}}});
        let e = super::workload_selector(&empty).unwrap_err().to_string();
        assert!(e.contains("Deployment all has an empty selector"), "{e}");
    }

    #[test]
    fn a_target_is_gone_when_deleted_replaced_or_ended() {
        let pod = |uid: &str, phase: &str| {
            json!({"metadata": {"name": "web-1", "namespace": "shop", "uid": uid},
                   "spec": {"nodeName": "n", "containers": [{"name": "web"}]},
                   "status": {"phase": phase, "containerStatuses": [{"name": "web",
                   "containerID": format!("containerd://{}", "a".repeat(64))}]}})
        };
        let t = super::pod_target(&pod("u1", "Running"), None).unwrap();
        assert_eq!(t.uid, "u1");
        assert_eq!(super::gone(&t, Some(&pod("u1", "Running"))), None);
        assert_eq!(super::gone(&t, None).as_deref(), Some("was deleted"));
        assert!(super::gone(&t, Some(&pod("u2", "Running"))).is_some());
        assert_eq!(
            super::gone(&t, Some(&pod("u1", "Failed"))).as_deref(),
            Some("ended (Failed)")
        );
        // As the test cluster shows a deleted pod during its removal.
        let mut deleting = pod("u1", "Failed");
        deleting["metadata"]["deletionTimestamp"] = json!("2026-12-02T01:30:00Z");
        assert_eq!(
            super::gone(&t, Some(&deleting)).as_deref(),
            Some("was deleted")
        );
        deleting["status"]["phase"] = json!("Running");
        assert_eq!(
            super::gone(&t, Some(&deleting)),
            None,
            "still stopping: still sends"
        );
    }
}
