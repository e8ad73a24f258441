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
    /// RBAC refused a call: the permission it needs and the user it names.
    #[error("{}", super::rbac::forbidden_message(need, user))]
    Forbidden {
        need: Box<super::rbac::Need>,
        user: String,
        stderr: String,
    },
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
    /// `--context=X`, `--kubeconfig=Y`, `--as=U`…: passed before every subcommand.
    pub global: Vec<String>,
    /// `--request-timeout=T` of the user: on every call but the capture streams (a request
    /// timeout would end a stream that is meant to last --duration).
    pub request_timeout: Option<String>,
}

/// kubectl's global flags a user may give the plugin, passed on to every kubectl call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobalFlags {
    pub context: Option<String>,
    pub kubeconfig: Option<String>,
    pub cluster: Option<String>,
    pub user: Option<String>,
    /// `--as`: impersonate this user.
    pub as_user: Option<String>,
    /// `--as-group` (repeatable).
    pub as_groups: Vec<String>,
    pub as_uid: Option<String>,
    pub request_timeout: Option<String>,
}

impl GlobalFlags {
    /// One `--flag=VALUE` element each (a value can never be read as another flag), in
    /// kubectl's order of documentation; `--request-timeout` apart.
    pub fn argv(&self) -> Vec<String> {
        let mut v = Vec::new();
        let mut one = |flag: &str, val: &Option<String>| {
            if let Some(x) = val {
                v.push(format!("--{flag}={x}"));
            }
        };
        one("context", &self.context);
        one("kubeconfig", &self.kubeconfig);
        one("cluster", &self.cluster);
        one("user", &self.user);
        one("as", &self.as_user);
        one("as-uid", &self.as_uid);
        for g in &self.as_groups {
            v.push(format!("--as-group={g}"));
        }
        v
    }
}

impl Kubectl {
    pub fn new(context: Option<&str>, kubeconfig: Option<&str>) -> Kubectl {
        Kubectl::with(&GlobalFlags {
            context: context.map(str::to_string),
            kubeconfig: kubeconfig.map(str::to_string),
            ..GlobalFlags::default()
        })
    }

    pub fn with(flags: &GlobalFlags) -> Kubectl {
        Kubectl {
            program: PathBuf::from("kubectl"),
            global: flags.argv(),
            request_timeout: flags
                .request_timeout
                .as_ref()
                .map(|t| format!("--request-timeout={t}")),
        }
    }

    /// A command ready to spawn: kubectl, the global flags (`--request-timeout` too, before
    /// the subcommand: after an exec's `--` it would be the helper's), then `args`.
    pub fn command<S: AsRef<str>>(&self, args: &[S]) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.global);
        c.args(&self.request_timeout);
        c.args(args.iter().map(AsRef::as_ref));
        c
    }

    /// As `command`, without the user's `--request-timeout`: for the capture streams.
    pub fn stream_command<S: AsRef<str>>(&self, args: &[S]) -> Command {
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
            return Ok(out.stdout);
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        Err(match super::rbac::parse_forbidden(&stderr) {
            Some((need, user)) => KubeError::Forbidden {
                need: Box::new(need),
                user,
                stderr,
            },
            None => KubeError::Failed {
                args: Self::shown(args),
                stderr,
            },
        })
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
    /// The user's own `--request-timeout` replaces the bound.
    pub fn ping(&self) -> Result<(), KubeError> {
        let mut k = self.clone();
        let timeout = k
            .request_timeout
            .take()
            .unwrap_or_else(|| format!("--request-timeout={}", super::cluster::FIRST_CALL_TIMEOUT));
        k.run(&["get", "--raw", "/api", &timeout], None).map(|_| ())
    }

    /// The permissions of `needs` this user lacks, asked before anything is created (one
    /// SelfSubjectAccessReview each, one kubectl call). Empty when all are allowed, or when
    /// the question itself cannot be asked (then each call says what it lacks).
    pub fn missing(&self, needs: &[super::rbac::Need]) -> Vec<super::rbac::Need> {
        let body = super::rbac::reviews(needs).to_string();
        match self.run(&["create", "-f", "-", "-o", "json"], Some(body.as_bytes())) {
            Ok(out) => super::rbac::denied(needs, &out),
            Err(_) => Vec::new(),
        }
    }
}
