//! Role: the Kubernetes side of `kubectl meshsniff`, without a Kubernetes client library: the
//! user's own `kubectl` is driven through argv (`get -o json`, `create -f -`, `wait`, `exec -i`,
//! `delete --wait=false`), so every auth plugin and kubeconfig works. This module reads pods
//! (`target`), writes the helper's manifests (`manifest`), checks every flag and name before
//! anything is created (`checks`), names what is wrong with the kubeconfig or the cluster in
//! one line (`cluster`), explains a helper that does not start (`diagnose`), merges several
//! helpers' pcapng streams into one (`merge`), names a missing permission (`rbac`), and, for
//! `--upload`, copies the helper in through exec instead of an image (`upload`). The
//! orchestration (signals, streams, cleanup) is in the `kubectl-meshsniff` binary.

pub mod checks;
pub mod cluster;
pub mod diagnose;
pub mod kubectl;
pub mod manifest;
pub mod merge;
pub mod rbac;
pub mod target;
pub mod upload;

pub use kubectl::{GlobalFlags, KubeError, Kubectl};

/// The array at JSON pointer `path` (`/status/containerStatuses`, `/items`…), empty when absent:
/// API objects leave empty lists out.
pub fn array_at<'a>(v: &'a serde_json::Value, path: &str) -> &'a [serde_json::Value] {
    v.pointer(path)
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}
