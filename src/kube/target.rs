//! Role: what the plugin needs to know about a target pod, read from `kubectl get pod -o json`:
//! its node, its containers' runtime IDs (`containerd://…`, `cri-o://…`, `docker://…`), and
//! whether it can be captured at all (running, scheduled, not on the host's network).

use super::KubeError;
use serde_json::Value;

/// Istio's injected sidecar container: not the one to name when another exists (all share
/// the pod's network namespace, but the application's ID is the one users recognise).
pub const ISTIO_PROXY: &str = "istio-proxy";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodTarget {
    pub namespace: String,
    pub name: String,
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
