//! Role: why a helper did not start, in words a user can act on, from what the API server
//! says: the create error (Pod Security), the pod's status (image pull, a kubelet that refused
//! the pod, a container that exited) and the warning events of the pod (scheduling, sandbox).

use super::array_at;
use serde_json::Value;

/// A hint for a failed `kubectl create` of the helper.
pub fn create_failure(stderr: &str) -> String {
    if stderr.contains("violates PodSecurity") {
        format!(
            "Pod Security rejected the helper pod: {stderr}\n  the helper must run privileged \
             in namespace {ns}: `kubectl label namespace {ns} \
             pod-security.kubernetes.io/enforce=privileged --overwrite`, or capture with \
             --ephemeral",
            ns = super::manifest::NAMESPACE
        )
    } else if stderr.contains("forbidden") || stderr.contains("Forbidden") {
        format!(
            "not allowed to create the helper pod: {stderr}\n  meshsniff needs create/delete on \
             pods and pods/exec in {}, and get on the target pod",
            super::manifest::NAMESPACE
        )
    } else {
        format!("cannot create the helper pod: {stderr}")
    }
}

fn str_at<'a>(v: &'a Value, p: &str) -> Option<&'a str> {
    v.pointer(p).and_then(Value::as_str)
}

/// Will the pod never start by itself? (Failed, or a container stuck on its image or its
/// configuration: waiting longer does not help.)
pub fn is_fatal(pod: Option<&Value>) -> bool {
    let Some(pod) = pod else { return false };
    if str_at(pod, "/status/phase") == Some("Failed") {
        return true;
    }
    array_at(pod, "/status/containerStatuses").iter().any(|st| {
        str_at(st, "/state/waiting/reason")
            .is_some_and(|r| IMAGE_FAILURES.contains(&r) || CONFIG_FAILURES.contains(&r))
    })
}

/// Waiting reasons of a container whose image cannot be had.
const IMAGE_FAILURES: [&str; 3] = ["ErrImagePull", "ImagePullBackOff", "InvalidImageName"];
/// Waiting reasons of a container that cannot be created as specified.
const CONFIG_FAILURES: [&str; 2] = ["CreateContainerConfigError", "CreateContainerError"];

/// Reasons the pod is not running, most specific first; empty when nothing is known yet.
pub fn start_failure(pod: Option<&Value>, events: Option<&Value>) -> Vec<String> {
    let mut why = Vec::new();
    if let Some(pod) = pod {
        if str_at(pod, "/status/phase") == Some("Failed") {
            why.push(format!(
                "the node refused or ended the pod: {} {}",
                str_at(pod, "/status/reason").unwrap_or("Failed"),
                str_at(pod, "/status/message").unwrap_or("")
            ));
        }
        for st in array_at(pod, "/status/containerStatuses") {
            if let Some(w) = st.pointer("/state/waiting") {
                let reason = str_at(w, "/reason").unwrap_or("Waiting");
                let msg = str_at(w, "/message").unwrap_or("");
                let hint = if IMAGE_FAILURES.contains(&reason) {
                    " (can the node pull --image? a private registry needs an image pull \
                     secret in the helper namespace, or a mirror: --image)"
                } else {
                    ""
                };
                if reason != "ContainerCreating" || !msg.is_empty() {
                    why.push(format!("{reason}: {msg}{hint}"));
                }
            }
            if let Some(t) = st.pointer("/state/terminated") {
                why.push(format!(
                    "the helper container exited: {} (exit code {}) {}",
                    str_at(t, "/reason").unwrap_or("Terminated"),
                    t.get("exitCode").and_then(Value::as_i64).unwrap_or(-1),
                    str_at(t, "/message").unwrap_or("")
                ));
            }
        }
        for c in array_at(pod, "/status/conditions") {
            if str_at(c, "/type") == Some("PodScheduled") && str_at(c, "/status") == Some("False") {
                why.push(format!(
                    "unschedulable: {}",
                    str_at(c, "/message").unwrap_or("no reason given")
                ));
            }
        }
    }
    if let Some(events) = events {
        for e in array_at(events, "/items") {
            if str_at(e, "/type") == Some("Warning") {
                let line = format!(
                    "event {}: {}",
                    str_at(e, "/reason").unwrap_or("?"),
                    str_at(e, "/message").unwrap_or("")
                );
                if !why.contains(&line) {
                    why.push(line);
                }
            }
        }
    }
    for w in &mut why {
        *w = w.trim().to_string();
    }
    why
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    /// Status and events as the API server reports them for the usual failures.
    #[test]
    fn each_failure_is_named_with_what_to_do() {
        let pull = json!({"status": {"phase": "Pending", "containerStatuses": [{"name": "helper",
            "state": {"waiting": {"reason": "ErrImagePull",
            "message": "rpc error: code = NotFound desc = failed to pull image \"r.example/m:1\""}}}]}});
        let why = super::start_failure(Some(&pull), None);
        assert!(
            why[0].starts_with("ErrImagePull: rpc error") && why[0].contains("--image"),
            "{why:?}"
        );

        // nodeName bypasses the scheduler; the kubelet refuses a pod that does not fit.
        let refused = json!({"status": {"phase": "Failed", "reason": "OutOfcpu",
            "message": "Pod Node didn't have enough resource: cpu, requested: 50, used: 3990, capacity: 4000"}});
        let why = super::start_failure(Some(&refused), None);
        assert!(
            why[0].contains("OutOfcpu") && why[0].contains("enough resource"),
            "{why:?}"
        );

        let unschedulable = json!({"status": {"phase": "Pending", "conditions": [{"type": "PodScheduled",
            "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes are available: 3 node(s) had untolerated taint"}]}});
        let events = json!({"items": [
            {"type": "Normal", "reason": "Scheduled", "message": "ok"},
            {"type": "Warning", "reason": "FailedCreatePodSandBox", "message": "failed to setup network"}]});
        let why = super::start_failure(Some(&unschedulable), Some(&events));
        assert_eq!(why.len(), 2, "{why:?}");
        assert!(why[0].starts_with("unschedulable: 0/3 nodes"), "{why:?}");
        assert_eq!(
            why[1],
            "event FailedCreatePodSandBox: failed to setup network"
        );

        let creating = json!({"status": {"containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]}});
        assert!(
            super::start_failure(Some(&creating), None).is_empty(),
            "not a failure yet"
        );

        let psa = super::create_failure(
            "Error from server (Forbidden): pods \"x\" is forbidden: violates PodSecurity \"restricted:latest\": privileged",
        );
        assert!(
            psa.contains("enforce=privileged") && psa.contains("--ephemeral"),
            "{psa}"
        );
        let rbac = super::create_failure(
            "Error from server (Forbidden): pods is forbidden: User \"dev\" cannot create resource \"pods\"",
        );
        assert!(rbac.contains("pods/exec"), "{rbac}");
    }
}
