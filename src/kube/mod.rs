//! Role: the Kubernetes side of `kubectl meshsniff`, without a Kubernetes client library: the
//! user's own `kubectl` is driven through argv (`get -o json`, `create -f -`, `wait`, `exec -i`,
//! `delete --wait=false`), so every auth plugin and kubeconfig works. This module reads pods
//! (`target`), writes the helper's manifests (`manifest`), explains a helper that does not
//! start (`diagnose`) and merges several helpers' pcapng streams into one (`merge`). The
//! orchestration (signals, streams, cleanup) is in the `kubectl-meshsniff` binary.

pub mod diagnose;
pub mod kubectl;
pub mod manifest;
pub mod merge;
pub mod target;

pub use kubectl::{KubeError, Kubectl};
