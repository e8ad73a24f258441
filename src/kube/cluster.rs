//! Role: the plugin's first contact with the cluster, and one line when it fails: which
//! kubeconfig is used (`--kubeconfig`, `KUBECONFIG`, `~/.kube/config`), which context and API
//! server it names (`kubectl config view --minify`), and what kubectl's stderr means (no
//! kubeconfig, no current context, an unknown context, connection refused, unreachable, a
//! timeout, an untrusted certificate, rejected credentials), each with what to do. The texts
//! matched are real kubectl's (tests/kube.rs runs the real binary where it is installed).

use serde_json::Value;
use std::path::{Path, PathBuf};

/// How long the first API call may take (`--request-timeout`): kubectl otherwise retries
/// discovery five times with a 32 s timeout each before it gives up on a silent server.
pub const FIRST_CALL_TIMEOUT: &str = "5s";

/// Where kubectl reads its configuration from, as kubectl decides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeconfigSource {
    /// As the user would recognise it: `/x/config (--kubeconfig)`, `KUBECONFIG=/a:/b`…
    pub shown: String,
    /// The files named, and which of them exist.
    pub files: Vec<PathBuf>,
    pub existing: Vec<PathBuf>,
    /// From `--kubeconfig` (kubectl refuses a missing one) rather than a default.
    pub explicit: bool,
}

impl KubeconfigSource {
    /// `flag` is `--kubeconfig`, `env` is `KUBECONFIG`, `home` is `HOME`.
    pub fn resolve(flag: Option<&str>, env: Option<&str>, home: Option<&Path>) -> Self {
        let (shown, files, explicit) = if let Some(f) = flag {
            (format!("{f} (--kubeconfig)"), vec![PathBuf::from(f)], true)
        } else if let Some(e) = env.filter(|e| !e.is_empty()) {
            let files = std::env::split_paths(e)
                .filter(|p| !p.as_os_str().is_empty())
                .collect();
            (format!("KUBECONFIG={e}"), files, false)
        } else {
            let p = home.map_or_else(
                || PathBuf::from("~/.kube/config"),
                |h| h.join(".kube/config"),
            );
            (p.display().to_string(), vec![p], false)
        };
        let existing = files.iter().filter(|p| p.is_file()).cloned().collect();
        KubeconfigSource {
            shown,
            files,
            existing,
            explicit,
        }
    }

    /// A problem found without running kubectl: a `--kubeconfig` that does not exist.
    pub fn local_problem(&self) -> Option<String> {
        if self.explicit && self.existing.is_empty() {
            let f = self.files[0].display();
            return Some(if self.files[0].exists() {
                format!(
                    "kubeconfig {f} (--kubeconfig) is not a file: give the path of your \
                     cluster's kubeconfig"
                )
            } else {
                format!(
                    "kubeconfig {f} (--kubeconfig) does not exist: give the path of your \
                     cluster's kubeconfig, or leave --kubeconfig out to use KUBECONFIG or \
                     ~/.kube/config"
                )
            });
        }
        None
    }
}

/// What `kubectl config view --minify -o json` says about the context in use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContextInfo {
    pub context: String,
    pub server: String,
    pub namespace: Option<String>,
}

impl ContextInfo {
    pub fn from_minified(v: &Value) -> ContextInfo {
        let s = |p: &str| v.pointer(p).and_then(Value::as_str).map(str::to_string);
        ContextInfo {
            context: s("/current-context").unwrap_or_default(),
            server: s("/clusters/0/cluster/server").unwrap_or_default(),
            namespace: s("/contexts/0/context/namespace").filter(|n| !n.is_empty()),
        }
    }
}

/// What went wrong, read from kubectl's stderr.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Problem {
    /// `config view --minify` without a current context (also: no kubeconfig at all).
    NoCurrentContext,
    /// `--context NAME` that the kubeconfig lacks.
    UnknownContext(String),
    /// A kubeconfig kubectl cannot read (its message).
    BadKubeconfig(String),
    /// `--kubeconfig FILE` that does not exist (kubectl's `stat` error).
    MissingFile,
    Refused,
    /// No route, network unreachable, host not found (kubectl's reason).
    Unreachable(String),
    Timeout,
    /// The server's certificate is not trusted (kubectl's reason).
    Untrusted(String),
    Unauthorized,
    /// Anything else: kubectl's last line.
    Other(String),
}

/// kubectl's last meaningful line: the retries' `E1201 … memcache.go` lines are noise.
fn last_line(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !is_klog_line(l))
        .or_else(|| stderr.lines().map(str::trim).rfind(|l| !l.is_empty()))
        .unwrap_or("")
        .to_string()
}

/// klog's header: a level letter, MMDD, a time (`E1201 21:08:04.962867 …`).
fn is_klog_line(l: &str) -> bool {
    let b = l.as_bytes();
    b.len() > 6 && b"IWEF".contains(&b[0]) && b[1..5].iter().all(u8::is_ascii_digit) && b[5] == b' '
}

pub fn classify(stderr: &str) -> Problem {
    let last = last_line(stderr);
    let after = |marker: &str| {
        last.split_once(marker)
            .map_or_else(|| last.clone(), |(_, r)| r.trim().to_string())
    };
    if stderr.contains("current-context must exist") {
        Problem::NoCurrentContext
    } else if let Some(c) = last
        .strip_prefix("error: cannot locate context ")
        .or_else(|| {
            last.strip_prefix(
                "Error in configuration: context was not found for specified context: ",
            )
        })
    {
        Problem::UnknownContext(c.trim().to_string())
    } else if let Some(rest) = last.strip_prefix("error: context \"") {
        Problem::UnknownContext(rest.trim_end_matches("\" does not exist").to_string())
    } else if last.starts_with("error: stat ") && last.ends_with("no such file or directory") {
        Problem::MissingFile
    } else if last.contains("error loading config file")
        || last.starts_with("Error in configuration")
    {
        Problem::BadKubeconfig(last)
    } else if last.contains("was refused") || last.contains("connection refused") {
        Problem::Refused
    } else if last.contains("Client.Timeout")
        || last.contains("i/o timeout")
        || last.contains("deadline exceeded")
        || last.contains("TLS handshake timeout")
    {
        Problem::Timeout
    } else if last.contains("x509:") || last.contains("tls: ") {
        Problem::Untrusted(after("Unable to connect to the server:"))
    } else if last.contains("network is unreachable")
        || last.contains("no route to host")
        || last.contains("no such host")
        || last.starts_with("Unable to connect to the server")
    {
        Problem::Unreachable(after("Unable to connect to the server:"))
    } else if last.contains("You must be logged in")
        || last.contains("(Unauthorized)")
        || last.contains("provide credentials")
    {
        Problem::Unauthorized
    } else {
        Problem::Other(last)
    }
}

/// One line: what is wrong, with which kubeconfig and context, and what to do.
/// `contexts`: the kubeconfig's context names, when known (`kubectl config get-contexts -o name`).
pub fn explain(
    p: &Problem,
    src: &KubeconfigSource,
    info: &ContextInfo,
    asked_context: Option<&str>,
    contexts: &[String],
) -> String {
    let have = if contexts.is_empty() {
        "it defines no context".to_string()
    } else {
        format!("it has: {}", contexts.join(", "))
    };
    let context = asked_context.unwrap_or(&info.context);
    let server = if info.server.is_empty() {
        "the API server".to_string()
    } else {
        format!("the API server {}", info.server)
    };
    let at = format!("(context {context}, kubeconfig {})", src.shown);
    match p {
        Problem::NoCurrentContext | Problem::MissingFile if src.existing.is_empty() => {
            if src.explicit {
                src.local_problem().unwrap_or_default()
            } else {
                format!(
                    "no kubeconfig: {} does not exist, so kubectl knows no cluster; point \
                     KUBECONFIG or --kubeconfig at your cluster's kubeconfig (your cluster's \
                     tooling writes one, e.g. `kind export kubeconfig`, `gcloud container \
                     clusters get-credentials`, `aws eks update-kubeconfig`)",
                    if src.files.len() > 1 {
                        format!("no file of {}", src.shown)
                    } else {
                        src.shown.clone()
                    }
                )
            }
        }
        Problem::NoCurrentContext | Problem::MissingFile => format!(
            "kubeconfig {} has no current context ({have}): choose one with `kubectl config \
             use-context NAME`, or pass --context NAME",
            src.shown
        ),
        Problem::UnknownContext(c) => format!(
            "context `{c}` is not in kubeconfig {} ({have}): pass one of those to --context",
            src.shown
        ),
        Problem::BadKubeconfig(why) => format!("kubeconfig {} cannot be read: {why}", src.shown),
        Problem::Refused => format!(
            "{server} refused the connection {at}: is the cluster running, and is this its \
             address? (`kubectl cluster-info`; a local cluster may need starting)"
        ),
        Problem::Unreachable(why) => format!(
            "cannot reach {server} {at}: {why}; check the network or VPN to the cluster, or \
             pick another context"
        ),
        Problem::Timeout => format!(
            "{server} did not answer within {FIRST_CALL_TIMEOUT} {at}: is the cluster up, and \
             reachable from here (VPN, proxy)?"
        ),
        Problem::Untrusted(why) => format!(
            "{server} presented a certificate kubectl does not trust {at}: {why}; the \
             kubeconfig's certificate-authority-data is likely for another cluster"
        ),
        Problem::Unauthorized => format!(
            "{server} rejected the credentials {at}: they are missing or expired; log in again \
             (your cluster's get-credentials or login command), then retry"
        ),
        Problem::Other(line) => format!("kubectl failed {at}: {line}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real kubectl 1.32 stderr for each case (recorded on this machine).
    #[test]
    fn real_kubectl_errors_are_read() {
        let retry = "E1201 21:08:05.042761   19098 memcache.go:265] \"Unhandled Error\" \
                     err=\"couldn't get current server API group list: Get \
                     \\\"https://127.0.0.1:1/api?timeout=32s\\\": dial tcp 127.0.0.1:1: connect: \
                     connection refused\"\n";
        let refused = format!(
            "{retry}{retry}{retry}{retry}The connection to the server 127.0.0.1:1 was refused - \
             did you specify the right host or port?\n"
        );
        assert_eq!(classify(&refused), Problem::Refused);
        assert_eq!(
            classify("error: current-context must exist in order to minify\n"),
            Problem::NoCurrentContext
        );
        assert_eq!(
            classify("error: cannot locate context nope\n"),
            Problem::UnknownContext("nope".into())
        );
        assert_eq!(
            classify("Error in configuration: context was not found for specified context: nope\n"),
            Problem::UnknownContext("nope".into())
        );
        assert_eq!(
            classify("error: context \"nope\" does not exist\n"),
            Problem::UnknownContext("nope".into())
        );
        assert_eq!(
            classify("error: stat /tmp/nope.yaml: no such file or directory\n"),
            Problem::MissingFile
        );
        assert_eq!(
            classify("error: You must be logged in to the server (Unauthorized)\n"),
            Problem::Unauthorized
        );
        assert_eq!(
            classify(
                "Unable to connect to the server: net/http: request canceled (Client.Timeout \
                 exceeded while awaiting headers)\n"
            ),
            Problem::Timeout
        );
        assert_eq!(
            classify(
                "Unable to connect to the server: dial tcp 10.98.0.1:6443: connect: network is \
                 unreachable\n"
            ),
            Problem::Unreachable("dial tcp 10.98.0.1:6443: connect: network is unreachable".into())
        );
        assert!(matches!(
            classify(
                "Unable to connect to the server: tls: failed to verify certificate: x509: \
                 certificate signed by unknown authority\n"
            ),
            Problem::Untrusted(w) if w.starts_with("tls: failed")
        ));
        assert!(matches!(
            classify(
                "error: error loading config file \"bad.yaml\": yaml: line 1: did not find expected ','\n"
            ),
            Problem::BadKubeconfig(_)
        ));
    }

    #[test]
    fn each_explanation_is_one_line_naming_kubeconfig_and_context() {
        let src = KubeconfigSource {
            shown: "/home/u/.kube/config".into(),
            files: vec!["/home/u/.kube/config".into()],
            existing: vec!["/home/u/.kube/config".into()],
            explicit: false,
        };
        let info = ContextInfo {
            context: "lab".into(),
            server: "https://127.0.0.1:1".into(),
            namespace: None,
        };
        for p in [
            Problem::NoCurrentContext,
            Problem::UnknownContext("x".into()),
            Problem::Refused,
            Problem::Timeout,
            Problem::Unauthorized,
            Problem::Unreachable("no route to host".into()),
        ] {
            let line = explain(&p, &src, &info, None, &["lab".into()]);
            assert!(!line.contains('\n'), "{line}");
            assert!(line.contains("/home/u/.kube/config"), "{line}");
        }
        let none = KubeconfigSource::resolve(None, None, Some(Path::new("/nonexistent-home")));
        let line = explain(
            &Problem::NoCurrentContext,
            &none,
            &ContextInfo::default(),
            None,
            &[],
        );
        assert!(line.starts_with("no kubeconfig: /nonexistent-home/.kube/config does not exist"));
        let flag = KubeconfigSource::resolve(Some("/nonexistent/k.yaml"), Some("/x"), None);
        assert!(
            flag.local_problem()
                .unwrap()
                .contains("/nonexistent/k.yaml (--kubeconfig) does not exist")
        );
    }
}
