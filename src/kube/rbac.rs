//! Role: the permissions `kubectl meshsniff` uses, as data: every (verb, resource, where) of its
//! kubectl calls, rendered as release/rbac.yaml (`kubectl meshsniff rbac` prints it; a test
//! keeps the file equal), asked of the API server before anything is created (one
//! SelfSubjectAccessReview each, in one `kubectl create`), and read back out of kubectl's
//! "forbidden: User … cannot VERB resource …" so that an error names the missing permission.

use super::manifest::NAMESPACE;
use serde_json::{Value, json};

/// Where the shipped RBAC file is, as messages name it.
pub const RBAC_FILE: &str = "release/rbac.yaml";

/// Which of the file's roles a permission belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// ClusterRole `meshsniff`: reading targets in any namespace.
    Targets,
    /// Role `meshsniff-helper` in `meshsniff-system`: the helper pods.
    Helper,
    /// ClusterRole `meshsniff-ephemeral`: `--ephemeral` (exec into the target pod itself).
    Ephemeral,
}

/// One rule: API group, resource (`pods/exec` for a subresource), verbs, resource names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub scope: Scope,
    pub group: &'static str,
    pub resource: &'static str,
    pub verbs: &'static [&'static str],
    pub names: &'static [&'static str],
    /// Which calls of the plugin need it (the file's comment).
    pub why: &'static str,
}

/// Every permission the plugin's kubectl calls need, and nothing else.
pub const RULES: &[Rule] = &[
    Rule {
        scope: Scope::Targets,
        group: "",
        resource: "pods",
        verbs: &["get", "list"],
        names: &[],
        why: "the target pod (get pod/NAME), -l and workloads' pods (get pods --selector, -A)",
    },
    Rule {
        scope: Scope::Targets,
        group: "apps",
        resource: "deployments",
        verbs: &["get"],
        names: &[],
        why: "deploy/NAME: its selector",
    },
    Rule {
        scope: Scope::Targets,
        group: "apps",
        resource: "statefulsets",
        verbs: &["get"],
        names: &[],
        why: "sts/NAME: its selector",
    },
    Rule {
        scope: Scope::Targets,
        group: "apps",
        resource: "daemonsets",
        verbs: &["get"],
        names: &[],
        why: "ds/NAME: its selector",
    },
    Rule {
        scope: Scope::Targets,
        group: "apps",
        resource: "replicasets",
        verbs: &["get"],
        names: &[],
        why: "rs/NAME: its selector",
    },
    Rule {
        scope: Scope::Targets,
        group: "",
        resource: "namespaces",
        verbs: &["get"],
        names: &[NAMESPACE],
        why: "is the helper namespace there, and does it admit the helper (this file creates it)",
    },
    Rule {
        scope: Scope::Helper,
        group: "",
        resource: "pods",
        verbs: &["create", "delete", "get", "list", "watch"],
        names: &[],
        why: "the helper pod: create, wait (get, list, watch), delete; gc (list, delete)",
    },
    Rule {
        scope: Scope::Helper,
        group: "",
        resource: "pods/exec",
        verbs: &["create", "get"],
        names: &[],
        why: "the capture stream (exec -i: a WebSocket GET; refused, kubectl falls back to SPDY, a POST: create)",
    },
    Rule {
        scope: Scope::Helper,
        group: "",
        resource: "events",
        verbs: &["list"],
        names: &[],
        why: "why a helper did not start (get events --field-selector)",
    },
    Rule {
        scope: Scope::Ephemeral,
        group: "",
        resource: "pods/ephemeralcontainers",
        verbs: &["get", "patch"],
        names: &[],
        why: "--ephemeral: add the capture container (kubectl patch --subresource reads it first)",
    },
    Rule {
        scope: Scope::Ephemeral,
        group: "",
        resource: "pods/exec",
        verbs: &["create", "get"],
        names: &[],
        why: "--ephemeral: the capture stream from the target pod",
    },
];

/// The group release/rbac.yaml binds (edit the subjects, or bind your own).
pub const GROUP: &str = "meshsniff-users";

fn rules_yaml(out: &mut String, scope: Scope, drop: Option<(&str, &str)>) {
    out.push_str("rules:\n");
    for r in RULES.iter().filter(|r| r.scope == scope) {
        let verbs: Vec<&str> = r
            .verbs
            .iter()
            .copied()
            .filter(|v| drop != Some((r.resource, v)))
            .collect();
        if verbs.is_empty() {
            continue;
        }
        out.push_str(&format!("  # {}\n", r.why));
        out.push_str(&format!("  - apiGroups: [\"{}\"]\n", r.group));
        out.push_str(&format!("    resources: [\"{}\"]\n", r.resource));
        if !r.names.is_empty() {
            let names: Vec<String> = r.names.iter().map(|n| format!("\"{n}\"")).collect();
            out.push_str(&format!("    resourceNames: [{}]\n", names.join(", ")));
        }
        let verbs: Vec<String> = verbs.iter().map(|v| format!("\"{v}\"")).collect();
        out.push_str(&format!("    verbs: [{}]\n", verbs.join(", ")));
    }
}

/// release/rbac.yaml; `drop` leaves one verb of one resource out (tests remove each in turn).
pub fn yaml(drop: Option<(&str, &str)>) -> String {
    let mut y = format!(
        "# Role: what `kubectl meshsniff` needs, exactly: generated by `kubectl meshsniff rbac`\n\
         # from src/kube/rbac.rs (tests/kube.rs keeps this file equal to it). Apply it as an\n\
         # admin; it creates namespace {NAMESPACE} (Pod Security privileged: the helper is a\n\
         # privileged pod), so users need no right to create namespaces. Bind your users or\n\
         # groups in place of the group {GROUP}; bind meshsniff-ephemeral only for --ephemeral.\n"
    );
    y.push_str(&format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {NAMESPACE}\n  labels:\n    \
         pod-security.kubernetes.io/enforce: privileged\n    \
         pod-security.kubernetes.io/audit: privileged\n    \
         pod-security.kubernetes.io/warn: privileged\n    istio-injection: disabled\n    \
         app.kubernetes.io/managed-by: meshsniff\n"
    ));
    for (kind, name, scope) in [
        ("ClusterRole", "meshsniff", Scope::Targets),
        ("Role", "meshsniff-helper", Scope::Helper),
        ("ClusterRole", "meshsniff-ephemeral", Scope::Ephemeral),
    ] {
        y.push_str(&format!(
            "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: {kind}\nmetadata:\n  name: {name}\n"
        ));
        if kind == "Role" {
            y.push_str(&format!("  namespace: {NAMESPACE}\n"));
        }
        rules_yaml(&mut y, scope, drop);
        let binding = if kind == "Role" {
            "RoleBinding"
        } else {
            "ClusterRoleBinding"
        };
        y.push_str(&format!(
            "---\napiVersion: rbac.authorization.k8s.io/v1\nkind: {binding}\nmetadata:\n  name: {name}\n"
        ));
        if kind == "Role" {
            y.push_str(&format!("  namespace: {NAMESPACE}\n"));
        }
        y.push_str(&format!(
            "roleRef:\n  apiGroup: rbac.authorization.k8s.io\n  kind: {kind}\n  name: {name}\n\
             subjects:\n  - apiGroup: rbac.authorization.k8s.io\n    kind: Group\n    name: {GROUP}\n"
        ));
    }
    y
}

/// One permission a run needs: verb, resource (`pods/exec`), group, namespace (None:
/// cluster-wide or every namespace, as for `-A`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub verb: String,
    pub resource: String,
    pub group: String,
    pub namespace: Option<String>,
}

impl Need {
    pub fn new(verb: &str, resource: &str, namespace: Option<&str>) -> Need {
        Need {
            verb: verb.into(),
            resource: resource.into(),
            group: String::new(),
            namespace: namespace.map(str::to_string),
        }
    }

    /// `create pods in meshsniff-system`, `create namespaces (cluster-wide)`.
    pub fn shown(&self) -> String {
        let res = if self.group.is_empty() {
            self.resource.clone()
        } else {
            // kubectl's spelling: deployments.apps
            match self.resource.split_once('/') {
                Some((r, sub)) => format!("{r}.{}/{sub}", self.group),
                None => format!("{}.{}", self.resource, self.group),
            }
        };
        match &self.namespace {
            Some(ns) => format!("{} {res} in {ns}", self.verb),
            None => format!("{} {res} (cluster-wide)", self.verb),
        }
    }

    /// A SelfSubjectAccessReview asking for it.
    pub fn review(&self) -> Value {
        let (resource, sub) = match self.resource.split_once('/') {
            Some((r, s)) => (r, s),
            None => (self.resource.as_str(), ""),
        };
        let mut attrs = json!({"verb": self.verb, "group": self.group, "resource": resource});
        if !sub.is_empty() {
            attrs["subresource"] = json!(sub);
        }
        if let Some(ns) = &self.namespace {
            attrs["namespace"] = json!(ns);
        }
        json!({
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {"resourceAttributes": attrs},
        })
    }
}

/// What a run must be allowed before it creates anything: the mutating calls and the stream.
/// (Reads fail by themselves first, with their own message.) `targets`: the namespaces of the
/// target pods (ephemeral mode execs there).
pub fn needed_before_create(ephemeral: bool, targets: &[&str]) -> Vec<Need> {
    if ephemeral {
        let mut ns: Vec<&str> = targets.to_vec();
        ns.sort_unstable();
        ns.dedup();
        ns.iter()
            .flat_map(|n| {
                [
                    Need::new("get", "pods/ephemeralcontainers", Some(n)),
                    Need::new("patch", "pods/ephemeralcontainers", Some(n)),
                    Need::new("create", "pods/exec", Some(n)),
                ]
            })
            .collect()
    } else {
        vec![
            Need::new("create", "pods", Some(NAMESPACE)),
            Need::new("delete", "pods", Some(NAMESPACE)),
            Need::new("create", "pods/exec", Some(NAMESPACE)),
        ]
    }
}

/// The reviews as one `List` for `kubectl create -f - -o json` (which prints each answer as
/// its own JSON document).
pub fn reviews(needs: &[Need]) -> Value {
    json!({"apiVersion": "v1", "kind": "List",
           "items": needs.iter().map(Need::review).collect::<Vec<_>>()})
}

/// The needs the answers deny (`status.allowed` false), in order; answers that cannot be read
/// deny nothing (the calls themselves will say).
pub fn denied(needs: &[Need], answers: &[u8]) -> Vec<Need> {
    let items: Vec<Value> = serde_json::Deserializer::from_slice(answers)
        .into_iter::<Value>()
        .map_while(Result::ok)
        .flat_map(|v| match v.get("items") {
            Some(Value::Array(a)) => a.clone(),
            _ => vec![v],
        })
        .collect();
    if items.len() != needs.len() {
        return Vec::new();
    }
    needs
        .iter()
        .zip(items)
        .filter(|(_, a)| a.pointer("/status/allowed").and_then(Value::as_bool) == Some(false))
        .map(|(n, _)| n.clone())
        .collect()
}

/// The one line for missing permissions.
pub fn missing_message(needs: &[Need]) -> String {
    let shown: Vec<String> = needs.iter().map(Need::shown).collect();
    format!("missing permission: {} (see {RBAC_FILE})", shown.join(", "))
}

/// kubectl's RBAC refusal, read: `… is forbidden: User "dev" cannot create resource "pods"
/// in API group "" in the namespace "meshsniff-system"` (or `at the cluster scope`), and the
/// user it names. `None` for any other error (a Pod Security rejection is also "forbidden").
pub fn parse_forbidden(stderr: &str) -> Option<(Need, String)> {
    let at = stderr.find("cannot ")?;
    let before = &stderr[..at];
    let user = before
        .rfind("User \"")
        .or_else(|| before.rfind("user \""))
        .and_then(|u| {
            let rest = &before[u + 6..];
            rest.find('"').map(|e| rest[..e].to_string())
        })?;
    let rest = &stderr[at + "cannot ".len()..];
    let (verb, rest) = rest.split_once(' ')?;
    let rest = rest.strip_prefix("resource \"")?;
    let (resource, rest) = rest.split_once('"')?;
    let rest = rest.strip_prefix(" in API group \"")?;
    let (group, rest) = rest.split_once('"')?;
    let namespace = if let Some(r) = rest.strip_prefix(" in the namespace \"") {
        Some(r.split_once('"')?.0.to_string())
    } else if rest.starts_with(" at the cluster scope") {
        None
    } else {
        return None;
    };
    Some((
        Need {
            verb: verb.to_string(),
            resource: resource.to_string(),
            group: group.to_string(),
            namespace,
        },
        user,
    ))
}

/// The message for a refusal kubectl printed: the permission, the user, the file.
pub fn forbidden_message(need: &Need, user: &str) -> String {
    let mut m = format!(
        "missing permission: {} (user {user}; see {RBAC_FILE})",
        need.shown()
    );
    if need.resource == "namespaces" && need.verb == "create" {
        m.push_str(&format!(
            "; the plugin creates namespace {NAMESPACE} only when it is missing: an admin can \
             apply {RBAC_FILE}, which creates it"
        ));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectl_refusals_name_the_permission() {
        // As kubectl 1.35 prints them (create -f -, exec, patch, get -A).
        let (n, u) = parse_forbidden(
            "Error from server (Forbidden): error when creating \"STDIN\": pods is forbidden: \
             User \"dev\" cannot create resource \"pods\" in API group \"\" in the namespace \
             \"meshsniff-system\"",
        )
        .unwrap();
        assert_eq!(u, "dev");
        assert_eq!(
            forbidden_message(&n, &u),
            "missing permission: create pods in meshsniff-system (user dev; see release/rbac.yaml)"
        );
        let (n, _) = parse_forbidden(
            "Error from server (Forbidden): pods \"h\" is forbidden: User \"system:serviceaccount:a:b\" \
             cannot create resource \"pods/exec\" in API group \"\" in the namespace \"x\"",
        )
        .unwrap();
        assert_eq!(n.shown(), "create pods/exec in x");
        let (n, _) = parse_forbidden(
            "Error from server (Forbidden): pods is forbidden: User \"dev\" cannot list resource \
             \"pods\" in API group \"\" at the cluster scope",
        )
        .unwrap();
        assert_eq!(n.shown(), "list pods (cluster-wide)");
        let (n, _) = parse_forbidden(
            "Error from server (Forbidden): deployments.apps \"web\" is forbidden: User \"dev\" \
             cannot get resource \"deployments\" in API group \"apps\" in the namespace \"shop\"",
        )
        .unwrap();
        assert_eq!(n.shown(), "get deployments.apps in shop");
        let (n, u) = parse_forbidden(
            "Error from server (Forbidden): error when creating \"STDIN\": namespaces is \
             forbidden: User \"dev\" cannot create resource \"namespaces\" in API group \"\" at \
             the cluster scope",
        )
        .unwrap();
        let m = forbidden_message(&n, &u);
        assert!(
            m.starts_with("missing permission: create namespaces (cluster-wide)")
                && m.contains("apply release/rbac.yaml"),
            "{m}"
        );
        // Pod Security says "forbidden" too: not a permission.
        assert!(
            parse_forbidden(
                "Error from server (Forbidden): pods \"x\" is forbidden: violates PodSecurity \
                 \"baseline:latest\": privileged"
            )
            .is_none()
        );
    }

    #[test]
    fn the_yaml_has_every_rule_and_drops_one_verb() {
        let y = yaml(None);
        for r in RULES {
            assert!(
                y.contains(&format!("resources: [\"{}\"]", r.resource)),
                "{r:?}"
            );
        }
        assert!(y.contains("verbs: [\"create\", \"delete\", \"get\", \"list\", \"watch\"]"));
        let d = yaml(Some(("pods", "delete")));
        assert!(d.contains("verbs: [\"create\", \"get\", \"list\", \"watch\"]"));
        // Only one verb of one rule left out.
        assert_eq!(y.lines().count(), d.lines().count());
        // A rule with its only verb dropped disappears (its comment too).
        let e = yaml(Some(("events", "list")));
        assert!(!e.contains("\"events\""));
    }

    #[test]
    fn reviews_and_their_answers() {
        let needs = needed_before_create(false, &["shop"]);
        assert_eq!(needs.len(), 3);
        let r = reviews(&needs);
        assert_eq!(
            r["items"][2]["spec"]["resourceAttributes"],
            json!({"verb": "create", "group": "", "resource": "pods", "subresource": "exec",
                   "namespace": "meshsniff-system"})
        );
        // One JSON document per review, as kubectl create -o json prints them.
        let answer = b"{\"status\": {\"allowed\": true}}\n{\"status\": {\"allowed\": false}}\n{\"status\": {\"allowed\": true}}";
        let d = denied(&needs, answer);
        assert_eq!(
            missing_message(&d),
            "missing permission: delete pods in meshsniff-system (see release/rbac.yaml)"
        );
        assert!(denied(&needs, b"{}").is_empty());
        let list = json!({"items": [{"status": {"allowed": false}}, {"status": {"allowed": false}},
            {"status": {"allowed": true}}]});
        assert_eq!(denied(&needs, list.to_string().as_bytes()).len(), 2);
        let e = needed_before_create(true, &["b", "a", "b"]);
        assert_eq!(
            e.iter().map(Need::shown).collect::<Vec<_>>(),
            [
                "get pods/ephemeralcontainers in a",
                "patch pods/ephemeralcontainers in a",
                "create pods/exec in a",
                "get pods/ephemeralcontainers in b",
                "patch pods/ephemeralcontainers in b",
                "create pods/exec in b"
            ]
        );
    }
}
