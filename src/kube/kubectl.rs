//! Role: one way to run the user's `kubectl`: global flags (`--context=X`, `--kubeconfig=Y`,
//! one argv element each, so no value can be read as a flag) first, arguments as argv (never a
//! shell), JSON in and out, errors that keep kubectl's own message. Every call can be recorded
//! by a stand-in `kubectl` on PATH in the tests.

use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KubeError {
    #[error(
        "cannot run `{program}`: {err} (kubectl meshsniff drives your kubectl: install it, or \
         put it on PATH)"
    )]
    Spawn {
        program: String,
        err: std::io::Error,
    },
    #[error("`kubectl {args}` failed: {stderr}")]
    Failed { args: String, stderr: String },
    #[error("`kubectl {args}` printed something that is not JSON: {err}")]
    NotJson {
        args: String,
        err: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

/// The user's kubectl with the global flags of this run.
#[derive(Debug, Clone)]
pub struct Kubectl {
    pub program: PathBuf,
    /// `--context=X`, `--kubeconfig=Y`: passed before every subcommand.
    pub global: Vec<String>,
}

impl Kubectl {
    pub fn new(context: Option<&str>, kubeconfig: Option<&str>) -> Kubectl {
        let mut global = Vec::new();
        if let Some(c) = context {
            global.push(format!("--context={c}"));
        }
        if let Some(k) = kubeconfig {
            global.push(format!("--kubeconfig={k}"));
        }
        Kubectl {
            program: PathBuf::from("kubectl"),
            global,
        }
    }

    /// A command ready to spawn: kubectl, the global flags, then `args`.
    pub fn command<S: AsRef<str>>(&self, args: &[S]) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.global);
        c.args(args.iter().map(AsRef::as_ref));
        c
    }

    fn shown<S: AsRef<str>>(args: &[S]) -> String {
        args.iter().map(AsRef::as_ref).collect::<Vec<_>>().join(" ")
    }

    /// Runs to the end; stdout on success, kubectl's stderr in the error otherwise.
    pub fn run<S: AsRef<str>>(
        &self,
        args: &[S],
        stdin: Option<&[u8]>,
    ) -> Result<Vec<u8>, KubeError> {
        let mut cmd = self.command(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let spawn_err = |err| KubeError::Spawn {
            program: self.program.display().to_string(),
            err,
        };
        let mut child = cmd.spawn().map_err(spawn_err)?;
        if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
            // A kubectl that exits early closes the pipe: its stderr says why.
            let _ = pipe.write_all(input);
        }
        let out = child.wait_with_output().map_err(spawn_err)?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(KubeError::Failed {
                args: Self::shown(args),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            })
        }
    }

    /// `kubectl get ... -o json`; `Ok(None)` when the object does not exist.
    pub fn get_json<S: AsRef<str>>(&self, args: &[S]) -> Result<Option<Value>, KubeError> {
        let mut all: Vec<&str> = vec!["get"];
        all.extend(args.iter().map(AsRef::as_ref));
        all.extend(["-o", "json"]);
        match self.run(&all, None) {
            Ok(out) => serde_json::from_slice(&out)
                .map(Some)
                .map_err(|err| KubeError::NotJson {
                    args: Self::shown(&all),
                    err,
                }),
            Err(KubeError::Failed { stderr, .. }) if stderr.contains("NotFound") => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `kubectl create -f -` with the object as JSON on stdin.
    pub fn create(&self, object: &Value) -> Result<(), KubeError> {
        let body = serde_json::to_vec(object).map_err(|e| KubeError::Invalid(e.to_string()))?;
        self.run(&["create", "-f", "-"], Some(&body)).map(|_| ())
    }

    /// `kubectl delete pod/NAME -n NS --wait=false --ignore-not-found`.
    pub fn delete_pod(&self, namespace: &str, name: &str) -> Result<(), KubeError> {
        let pod = format!("pod/{name}");
        self.run(
            &[
                "delete",
                &pod,
                "-n",
                namespace,
                "--wait=false",
                "--ignore-not-found",
            ],
            None,
        )
        .map(|_| ())
    }

    /// `kubectl config view --minify -o json`: the context in use, its server and namespace
    /// (kubectl redacts credentials in this view; only those three fields are read).
    pub fn minified_config(&self) -> Result<Value, KubeError> {
        let args = ["config", "view", "--minify", "-o", "json"];
        let out = self.run(&args, None)?;
        serde_json::from_slice(&out).map_err(|err| KubeError::NotJson {
            args: Self::shown(&args),
            err,
        })
    }

    /// The kubeconfig's context names (`kubectl config get-contexts -o name`); empty on error.
    pub fn context_names(&self) -> Vec<String> {
        self.run(&["config", "get-contexts", "-o", "name"], None)
            .map(|out| {
                String::from_utf8_lossy(&out)
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One request to the API server, bounded (`get --raw /api --request-timeout`): no
    /// discovery, so no retries; the stderr of a failure is `cluster::classify`'s input.
    pub fn ping(&self) -> Result<(), KubeError> {
        let timeout = format!("--request-timeout={}", super::cluster::FIRST_CALL_TIMEOUT);
        self.run(&["get", "--raw", "/api", &timeout], None)
            .map(|_| ())
    }
}
