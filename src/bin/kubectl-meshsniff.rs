//! `kubectl meshsniff`: capture and judge any pod from a laptop, and always clean up.
//! Privileged mode: a helper pod on the target's node (namespace `meshsniff-system`) runs the
//! static `meshsniff capture --container ID`, streamed back with `kubectl exec -i`; ephemeral
//! mode: an ephemeral container in the target pod runs the capture. The stream goes to the
//! analyzer (`meshsniff check -`, a child process in its own process group so that Ctrl-C
//! reaches only this process), to a file, to stdout or to Wireshark. Every exit path deletes
//! the helper pods (a guard), and every capture is bounded on the helper's side.
//! Exit codes are `check`'s: 0 clean, 1 findings, 2 error, 3 the stream ended early.

use anyhow::{Context, Result, bail};
use clap::Parser;
use meshsniff::kube::cluster::{self, ContextInfo, KubeconfigSource};
use meshsniff::kube::manifest::{self, CaptureOpts, Helper};
use meshsniff::kube::merge::{BlockReader, Merger};
use meshsniff::kube::target::TargetArg;
use meshsniff::kube::target::{self, PodTarget};
use meshsniff::kube::upload::{self, LocalHelper};
use meshsniff::kube::{GlobalFlags, KubeError, Kubectl, checks, diagnose, rbac};
use serde_json::{Value, json};
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const EXIT_ERROR: u8 = 2;
const EXIT_PARTIAL: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "kubectl meshsniff",
    bin_name = "kubectl meshsniff",
    version,
    about = "Capture a pod's traffic and judge it: is it really encrypted, and if not, what leaks?",
    args_conflicts_with_subcommands = true,
    after_help = concat!(
        "Examples:\n  kubectl meshsniff web-7d9f -n shop\n  kubectl meshsniff pod/web-7d9f -n shop \
         --format jsonl\n  kubectl meshsniff -l app=web -n shop -o web.pcapng --duration 2m\n  \
         kubectl meshsniff deploy/web -n shop   every pod of the deployment (sts/, ds/, rs/ too)\n  \
         kubectl meshsniff -A -l app=web --as=dev   every namespace, as user dev\n  \
         kubectl meshsniff web-7d9f -n shop -f 'tcp port 8080' --wireshark\n  kubectl meshsniff \
         web-7d9f -n shop -o - | tshark -r -\n  kubectl meshsniff gc            delete helpers \
         left behind (expired)\n  kubectl meshsniff rbac > rbac.yaml   the permissions it \
         needs (release/rbac.yaml)\n\nEvery flag and name is checked before anything is created \
         (exit 2); a named interface is checked in the pod before the capture starts.\n\n",
        "Install: `cargo install --path .` (both binaries, kubectl-meshsniff and meshsniff, into \
         ~/.cargo/bin) or the release archive (krew). Do not put target/release on PATH: cargo \
         writes its dep-info file kubectl-meshsniff.d there, and `kubectl plugin list` warns \
         about it (cargo has no option to leave it out).\n\nNo cluster? See docs/kubectl.md: \
         everything up to the API server is tested here."
    )
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    args: Args,
}

#[derive(clap::Subcommand, Debug)]
enum Sub {
    /// Delete meshsniff helper pods that outlived their expiry (or all with --all).
    Gc(GcArgs),
    /// Print the RBAC objects the plugin needs, exactly (release/rbac.yaml): apply as admin.
    Rbac,
}

/// kubectl's global flags, passed on to every kubectl call (each as one `--flag=VALUE`).
#[derive(clap::Args, Debug, Clone)]
struct KubeArgs {
    /// The kubeconfig context to use (passed to kubectl).
    #[arg(long)]
    context: Option<String>,
    /// The kubeconfig file (passed to kubectl; KUBECONFIG works too).
    #[arg(long)]
    kubeconfig: Option<String>,
    /// The kubeconfig cluster to use (passed to kubectl).
    #[arg(long)]
    cluster: Option<String>,
    /// The kubeconfig user to use (passed to kubectl).
    #[arg(long)]
    user: Option<String>,
    /// Impersonate this user (passed to kubectl).
    #[arg(long = "as", value_name = "USER")]
    as_user: Option<String>,
    /// Impersonate this group, repeatable (passed to kubectl).
    #[arg(long = "as-group", value_name = "GROUP")]
    as_group: Vec<String>,
    /// Impersonate this UID (passed to kubectl).
    #[arg(long = "as-uid", value_name = "UID")]
    as_uid: Option<String>,
    /// Bound on each API request (passed to every kubectl call but the capture stream, which
    /// lasts --duration).
    #[arg(long = "request-timeout", value_name = "DURATION")]
    request_timeout: Option<String>,
}

impl KubeArgs {
    /// Checked before kubectl sees them.
    fn check(&self) -> Result<()> {
        check_global(self.context.as_deref(), self.kubeconfig.as_deref())?;
        let msg = anyhow::Error::msg;
        for (flag, v) in [
            ("cluster", &self.cluster),
            ("user", &self.user),
            ("as", &self.as_user),
            ("as-uid", &self.as_uid),
        ] {
            if let Some(v) = v {
                checks::kubectl_text_flag(flag, v).map_err(msg)?;
            }
        }
        for g in &self.as_group {
            checks::kubectl_text_flag("as-group", g).map_err(msg)?;
        }
        if !self.as_group.is_empty() && self.as_user.is_none() {
            bail!("--as-group needs --as (kubectl impersonates groups only with a user)");
        }
        if let Some(t) = &self.request_timeout {
            checks::request_timeout(t).map_err(msg)?;
        }
        Ok(())
    }

    fn kubectl(&self) -> Kubectl {
        Kubectl::with(&GlobalFlags {
            context: self.context.clone(),
            kubeconfig: self.kubeconfig.clone(),
            cluster: self.cluster.clone(),
            user: self.user.clone(),
            as_user: self.as_user.clone(),
            as_groups: self.as_group.clone(),
            as_uid: self.as_uid.clone(),
            request_timeout: self.request_timeout.clone(),
        })
    }
}

#[derive(clap::Args, Debug)]
struct Args {
    /// The pod to capture: NAME or pod/NAME (also pods/NAME, po/NAME; a pod named like a
    /// subcommand, e.g. gc, as pod/gc); or a workload's pods: deploy/NAME, sts/NAME, ds/NAME,
    /// rs/NAME (by its selector). Or `-l SELECTOR` for several.
    pod: Option<String>,
    /// The pod's namespace (default: the context's namespace).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// With -l: select pods in every namespace.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    /// The container whose network namespace to enter (default: the first that is not
    /// istio-proxy; all of a pod's containers share one network namespace).
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// Capture every pod matching this label selector into one pcapng (one helper per node,
    /// one interface per pod).
    #[arg(short = 'l', long)]
    selector: Option<String>,
    /// Interface in the pod: `any` (eth0 and lo, where a sidecar's plaintext shows), `eth0`...
    #[arg(short = 'i', long, default_value = "any")]
    interface: String,
    /// Capture filter, tcpdump syntax (the subset meshsniff compiles exactly as libpcap).
    #[arg(short = 'f', long)]
    filter: Option<String>,
    /// Save the capture (pcapng, created 0600) and still judge it; `-` writes pcapng to stdout
    /// instead of judging.
    #[arg(short = 'o', long, value_name = "FILE|-")]
    output: Option<String>,
    /// Let -o replace an existing regular file of yours (never a symlink, a directory or
    /// someone else's file); it is made 0600.
    #[arg(long)]
    overwrite: bool,
    /// How long to capture: the helper stops by itself then, even if this laptop goes away.
    #[arg(long, default_value = "15m", value_parser = meshsniff::cli::parse_duration)]
    duration: Duration,
    /// Stop after this many packets (per pod).
    #[arg(long)]
    count: Option<u64>,
    /// Also show the capture live in Wireshark (`wireshark -k -i -`).
    #[arg(long)]
    wireshark: bool,
    /// Capture from an ephemeral container (NET_RAW, NET_ADMIN) in the target pod instead of
    /// a privileged helper pod: for clusters that allow no privileged pod. An ephemeral
    /// container cannot be removed; it ends by itself after --duration.
    #[arg(long)]
    ephemeral: bool,
    /// Image holding the static helper at /meshsniff (docs/kubectl.md builds it).
    #[arg(long, default_value = manifest::DEFAULT_IMAGE)]
    image: String,
    /// For clusters that cannot pull the helper image (air-gapped, mirrored registries): run
    /// --image (any image with `sh` and `cat`; default busybox:1.36) and copy the static
    /// helper in through `kubectl exec`, its SHA-256 checked in the pod before it runs.
    #[arg(long)]
    upload: bool,
    /// The static helper --upload copies in (default: `meshsniff` beside this plugin, as the
    /// krew archive installs it).
    #[arg(long, value_name = "PATH", requires = "upload")]
    helper_binary: Option<std::path::PathBuf>,
    /// How long the helper may take to start.
    #[arg(long, default_value = "120s", value_parser = meshsniff::cli::parse_duration)]
    start_timeout: Duration,
    #[command(flatten)]
    kube: KubeArgs,
    /// Verdict profile: istio (sidecar conventions), strict, none.
    #[arg(long, default_value = "istio")]
    profile: String,
    /// Finding kinds that make the exit code 1 (see `meshsniff check --help`).
    #[arg(long)]
    fail_on: Option<String>,
    /// table, jsonl or json.
    #[arg(long, default_value = "table")]
    format: String,
    /// Show captured credentials instead of redacting them.
    #[arg(long)]
    show_secrets: bool,
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "A helper is expired when its label meshsniff.io/expires (Unix seconds) has \
                  passed or it has finished; every helper also deletes itself at its deadline."
)]
struct GcArgs {
    /// Delete every meshsniff helper pod, expired or not (also those of a capture running now).
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    kube: KubeArgs,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A short random session ID (helper names and labels).
fn session_id() -> String {
    let mut b = [0u8; 4];
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_err()
    {
        b = (std::process::id() ^ now() as u32).to_le_bytes();
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Deletes what this session created, on every way out (normal end, error, signal).
struct Cleanup {
    kubectl: Kubectl,
    pods: Vec<String>,
}

impl Cleanup {
    fn run(&mut self) {
        for name in self.pods.drain(..) {
            match self.kubectl.delete_pod(manifest::NAMESPACE, &name) {
                Ok(()) => eprintln!(
                    "kubectl meshsniff: deleted helper pod {}/{name}",
                    manifest::NAMESPACE
                ),
                Err(e) => eprintln!(
                    "kubectl meshsniff: could not delete helper pod {}/{name}: {e:#}\n  it deletes \
                     itself after its deadline; `kubectl meshsniff gc` removes it too",
                    manifest::NAMESPACE
                ),
            }
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.run();
    }
}

fn main() -> ExitCode {
    meshsniff::capture::install_stop_signals();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Sub::Gc(args)) => gc(args),
        Some(Sub::Rbac) => {
            print!("{}", rbac::yaml(None));
            Ok(0)
        }
        None => run(cli.args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("kubectl meshsniff: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn gc(args: GcArgs) -> Result<u8> {
    args.kube.check()?;
    let kubectl = args.kube.kubectl();
    connect(
        &kubectl,
        args.kube.context.as_deref(),
        args.kube.kubeconfig.as_deref(),
    )?;
    let selector = format!("--selector={}=meshsniff", manifest::MANAGED_BY);
    let list = kubectl
        .get_json(&["pods", "-n", manifest::NAMESPACE, &selector])?
        .unwrap_or_else(|| json!({"items": []}));
    let t = now();
    let mut deleted = 0;
    for pod in meshsniff::kube::array_at(&list, "/items") {
        let Some(name) = pod.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        // A name from the API goes into a kubectl argv: it must be a name, never a flag.
        if let Err(e) = checks::dns1123_subdomain("helper pod name", name) {
            eprintln!("kubectl meshsniff: skipped: {e}");
            continue;
        }
        if args.all || manifest::is_expired(pod, t) {
            kubectl.delete_pod(manifest::NAMESPACE, name)?;
            println!("deleted {}/{name}", manifest::NAMESPACE);
            deleted += 1;
        }
    }
    println!("{deleted} helper pod(s) deleted");
    Ok(0)
}

/// Where the capture goes: any of file, stdout, Wireshark, the analyzer. A sink that fails
/// (Wireshark closed) is dropped; the capture goes on for the others.
struct Fanout {
    sinks: Vec<(&'static str, Box<dyn Write + Send>)>,
    bytes: u64,
}

impl Write for Fanout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sinks.retain_mut(|(name, w)| match w.write_all(buf) {
            Ok(()) => true,
            Err(e) => {
                if *name != "stdout" {
                    eprintln!("kubectl meshsniff: {name} stopped reading ({e}); capture goes on");
                }
                false
            }
        });
        if self.sinks.is_empty() {
            return Err(io::Error::new(io::ErrorKind::BrokenPipe, "no reader left"));
        }
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        for (_, w) in &mut self.sinks {
            let _ = w.flush();
        }
        Ok(())
    }
}

/// The `meshsniff` binary (the analyzer): beside this one (as installed by krew), else on PATH.
fn analyzer_program() -> std::path::PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join("meshsniff")))
        .filter(|p| p.exists())
        .unwrap_or_else(|| "meshsniff".into())
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// One exec stream: the kubectl child and the last lines it printed on stderr.
struct Stream {
    label: String,
    child: Child,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// `--context` and `--kubeconfig`, checked before kubectl sees them.
fn check_global(context: Option<&str>, kubeconfig: Option<&str>) -> Result<()> {
    if let Some(c) = context {
        checks::context_name(c).map_err(anyhow::Error::msg)?;
    }
    if kubeconfig == Some("") {
        bail!("--kubeconfig: give the path of a kubeconfig file");
    }
    Ok(())
}

/// Every flag and name that can be checked on this machine, before the first kubectl call:
/// each one the helper, the analyzer or the API server would refuse later is refused here,
/// with nothing created (exit 2). Returns the target (`pod/NAME`, `deploy/NAME`… accepted).
fn check_flags(args: &Args) -> Result<Option<TargetArg>> {
    let msg = anyhow::Error::msg;
    let pod = args
        .pod
        .as_deref()
        .map(checks::target_arg)
        .transpose()
        .map_err(msg)?;
    if let Some(n) = &args.namespace {
        checks::dns1123_label("namespace", n).map_err(msg)?;
    }
    if let Some(c) = &args.container {
        checks::dns1123_label("container name", c).map_err(msg)?;
    }
    if let Some(sel) = &args.selector {
        checks::label_selector(sel).map_err(msg)?;
    }
    args.kube.check()?;
    if args.all_namespaces {
        if args.selector.is_none() {
            bail!(
                "-A selects pods in every namespace by label: use it with -l SELECTOR (a name \
                 is looked up in one namespace, -n)"
            );
        }
        if args.namespace.is_some() {
            bail!("-A and -n: choose one (every namespace, or one)");
        }
    }
    checks::interface_name(&args.interface).map_err(msg)?;
    if let Some(f) = &args.filter {
        checks::capture_filter(f, &args.interface).map_err(msg)?;
    }
    checks::image_reference(&args.image).map_err(msg)?;
    checks::profile(&args.profile).map_err(msg)?;
    checks::format(&args.format).map_err(msg)?;
    if let Some(k) = &args.fail_on {
        checks::fail_on(k).map_err(msg)?;
    }
    Ok(pod)
}

/// The first contact: which kubeconfig and context (`config view --minify`, local), then one
/// bounded request to the API server. Any failure is one line naming the kubeconfig, the
/// context and what to do, instead of kubectl's retries.
fn connect(
    kubectl: &Kubectl,
    context: Option<&str>,
    kubeconfig: Option<&str>,
) -> Result<ContextInfo> {
    let env = std::env::var("KUBECONFIG").ok();
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let src = KubeconfigSource::resolve(kubeconfig, env.as_deref(), home.as_deref());
    if let Some(p) = src.local_problem() {
        bail!("{p}");
    }
    let explain = |stderr: &str, info: &ContextInfo| {
        let p = cluster::classify(stderr);
        let contexts = match p {
            cluster::Problem::NoCurrentContext | cluster::Problem::UnknownContext(_)
                if !src.existing.is_empty() =>
            {
                Kubectl::new(None, kubeconfig).context_names()
            }
            _ => Vec::new(),
        };
        anyhow::anyhow!(cluster::explain(&p, &src, info, context, &contexts))
    };
    let info = match kubectl.minified_config() {
        Ok(v) => ContextInfo::from_minified(&v),
        Err(KubeError::Failed { stderr, .. }) => match in_cluster(&src, context) {
            // In a pod, kubectl uses the service account's credentials without a kubeconfig.
            Some(info) if cluster::classify(&stderr) == cluster::Problem::NoCurrentContext => info,
            _ => return Err(explain(&stderr, &ContextInfo::default())),
        },
        Err(e) => return Err(e.into()),
    };
    match kubectl.ping() {
        Ok(()) => Ok(info),
        Err(KubeError::Failed { stderr, .. }) => Err(explain(&stderr, &info)),
        Err(e) => Err(e.into()),
    }
}

/// kubectl's in-cluster configuration (no kubeconfig file, inside a pod): its namespace.
fn in_cluster(src: &KubeconfigSource, context: Option<&str>) -> Option<ContextInfo> {
    let host = std::env::var("KUBERNETES_SERVICE_HOST").ok()?;
    if !src.existing.is_empty() || context.is_some() {
        return None;
    }
    let ns = std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .ok()
        .map(|n| n.trim().to_string());
    Some(ContextInfo {
        context: "in-cluster".into(),
        server: format!("https://{host}"),
        namespace: ns,
    })
}

fn run(mut args: Args) -> Result<u8> {
    if args.pod.is_some() == args.selector.is_some() {
        bail!("name one pod, or select pods with -l SELECTOR (not both)");
    }
    if args.output.as_deref() == Some("-") && io::stdout().is_terminal() {
        bail!(
            "-o -: stdout is a terminal; pipe the capture (`| tshark -r -`, `> pod.pcapng`) or \
             save it with -o FILE"
        );
    }
    if args.wireshark && !on_path("wireshark") {
        bail!(
            "--wireshark: `wireshark` is not installed or not on PATH; install it, or save the \
             capture with -o FILE and open that file"
        );
    }
    let pod = check_flags(&args)?;
    let upload = upload_helper(&mut args)?;
    let kubectl = args.kube.kubectl();
    let info = connect(
        &kubectl,
        args.kube.context.as_deref(),
        args.kube.kubeconfig.as_deref(),
    )?;
    let ns = match (&args.namespace, &info.namespace) {
        (Some(n), _) => n.clone(),
        (None, Some(n)) => {
            checks::dns1123_label("the context's namespace", n).map_err(anyhow::Error::msg)?;
            n.clone()
        }
        (None, None) => "default".to_string(),
    };
    let select = |sel: &str, what: &str| -> Result<Vec<PodTarget>> {
        let selector = format!("--selector={sel}");
        let mut get = vec!["pods", selector.as_str()];
        if args.all_namespaces {
            get.push("--all-namespaces");
        } else {
            get.extend(["-n", &ns]);
        }
        let list = kubectl
            .get_json(&get)?
            .unwrap_or_else(|| json!({"items": []}));
        let (ok, skipped) = target::list_targets(&list, args.container.as_deref());
        for s in &skipped {
            eprintln!("kubectl meshsniff: skipped: {s}");
        }
        if ok.is_empty() {
            let place = if args.all_namespaces {
                "any namespace".to_string()
            } else {
                format!("namespace {ns}")
            };
            bail!("no running pod matches {what} in {place}");
        }
        Ok(ok)
    };
    let targets: Vec<PodTarget> = match (&pod, &args.selector) {
        (Some(TargetArg::Pod(pod)), _) => {
            // `pod/NAME`: a name kubectl cannot read as anything but a pod's.
            let json = kubectl
                .get_json(&[&format!("pod/{pod}"), "-n", &ns])?
                .with_context(|| format!("pod {ns}/{pod} not found (is -n right?)"))?;
            vec![target::pod_target(&json, args.container.as_deref())?]
        }
        (Some(TargetArg::Workload { kind, name }), _) => {
            let json = kubectl
                .get_json(&[&format!("{}/{name}", kind.resource()), "-n", &ns])?
                .with_context(|| format!("{} {ns}/{name} not found (is -n right?)", kind.kind()))?;
            let sel = target::workload_selector(&json)?;
            eprintln!(
                "kubectl meshsniff: {} {ns}/{name}: its pods are -l {sel}",
                kind.kind()
            );
            select(&sel, &format!("{} {name}'s selector ({sel})", kind.kind()))?
        }
        (None, Some(sel)) => select(sel, &format!("-l {sel}"))?,
        (None, None) => unreachable!("checked above"),
    };
    for t in &targets {
        if t.host_network {
            eprintln!(
                "kubectl meshsniff: {}/{} uses the node's network: the capture sees the whole \
                 node's traffic",
                t.namespace, t.name
            );
        }
    }
    // The output file first: a path that cannot be written must not cost a privileged pod.
    let saved = match args.output.as_deref() {
        None | Some("-") => None,
        Some(path) => Some(meshsniff::cli::create_private(path, args.overwrite)?),
    };
    let session = session_id();
    let opts = CaptureOpts {
        interface: args.interface.clone(),
        filter: args.filter.clone(),
        duration_secs: args.duration.as_secs().max(1),
        count: args.count,
    };
    // Asked before anything is created: a helper that could be created but not deleted, or
    // not streamed from, must not be made at all.
    // The helper namespace is looked at first: when it is missing, creating it is one more
    // permission to have (and the roles bound in it cannot exist yet).
    let helper_ns = if args.ephemeral {
        None
    } else {
        Some(kubectl.get_json(&["namespace", manifest::NAMESPACE])?)
    };
    let namespaces: Vec<&str> = targets.iter().map(|t| t.namespace.as_str()).collect();
    let mut needs = rbac::needed_before_create(args.ephemeral, &namespaces);
    if matches!(helper_ns, Some(None)) {
        needs.insert(0, rbac::Need::new("create", "namespaces", None));
    }
    let missing = kubectl.missing(&needs);
    if missing.iter().any(|n| n.resource == "namespaces") {
        bail!(
            "namespace {ns} does not exist and you may not create it ({}): an admin applies \
             {file}, which creates it (Pod Security privileged) with the roles the plugin needs; \
             nothing was created",
            rbac::missing_message(&missing),
            ns = manifest::NAMESPACE,
            file = rbac::RBAC_FILE
        );
    }
    if !missing.is_empty() {
        bail!("{}; nothing was created", rbac::missing_message(&missing));
    }
    let mut cleanup = Cleanup {
        kubectl: kubectl.clone(),
        pods: Vec::new(),
    };
    let began = Instant::now();
    let mut places: Vec<Place> = if args.ephemeral {
        start_ephemeral(&kubectl, &targets, &args, &session, &opts)?
    } else {
        let existing = helper_ns.flatten();
        start_helpers(
            &kubectl,
            &targets,
            &args,
            &session,
            &opts,
            existing,
            &mut cleanup,
        )?
    };
    if let Some(helper) = &upload {
        install_helpers(&kubectl, &mut places, helper)?;
    }
    // A named interface exists or not only in the pod: asked there (cheap, nothing captured)
    // before any capture starts; a missing one is exit 2 and the guard deletes the helpers.
    if args.interface != "any" {
        for p in &places {
            check_interface(&kubectl, p, &args.interface)?;
        }
    }
    // (label, kubectl exec argv) per target.
    let execs: Vec<(String, Vec<String>)> = places
        .iter()
        .map(|p| {
            (
                p.label.clone(),
                p.argv(manifest::capture_argv(p.target.as_ref(), &opts)),
            )
        })
        .collect();
    if meshsniff::capture::stop_requested() {
        eprintln!("kubectl meshsniff: interrupted before the capture started");
        return Ok(EXIT_ERROR);
    }
    let code = stream(&kubectl, &execs, &targets, &args, saved)?;
    cleanup.run();
    if args.ephemeral {
        let left = (args.start_timeout + args.duration + Duration::from_secs(manifest::GRACE_SECS))
            .saturating_sub(began.elapsed());
        eprintln!(
            "kubectl meshsniff: the ephemeral container stays in the pod spec (Kubernetes cannot \
             remove one); its capture has ended, and its idle process ends by itself within {}s",
            left.as_secs()
        );
    }
    Ok(code)
}

/// `--upload`: the local helper read and hashed (before anything is created), and the image
/// to run instead of the helper image. `None` without --upload.
fn upload_helper(args: &mut Args) -> Result<Option<LocalHelper>> {
    if !args.upload {
        return Ok(None);
    }
    let path = match &args.helper_binary {
        Some(p) => p.clone(),
        None => upload::default_helper_binary(&std::env::current_exe()?)?,
    };
    let helper = LocalHelper::load(&path)?;
    if let Some(interp) = &helper.interpreter {
        eprintln!(
            "kubectl meshsniff: warning: {} is dynamically linked ({interp}): it runs only in an \
             image with the same libraries; the release archive's meshsniff is static",
            path.display()
        );
    }
    args.image = upload::image(&args.image);
    Ok(Some(helper))
}

/// `--upload`: the helper copied into each helper container (once per container, however
/// many targets it serves) and checked; the places then run it from there.
fn install_helpers(kubectl: &Kubectl, places: &mut [Place], helper: &LocalHelper) -> Result<()> {
    let mut done: Vec<Vec<String>> = Vec::new();
    for p in places.iter_mut() {
        if !done.contains(&p.exec) {
            // The pod (and container), not the target, is where the copy goes: name it so.
            // `exec -i pod/NAME -n NS -c CONTAINER --`, as Place::new writes it.
            let at = match p.exec.as_slice() {
                [_, _, pod, _, ns, _, c, ..] => {
                    format!("{ns}/{} (container {c})", pod.trim_start_matches("pod/"))
                }
                _ => p.label.clone(),
            };
            let how = upload::install(kubectl, &p.exec, &at, helper)?;
            eprintln!(
                "kubectl meshsniff: copied the helper ({} bytes, sha256 {}) into {at}; SHA-256 \
                 checked {}",
                helper.bytes.len(),
                &helper.sha256[..16],
                match how {
                    upload::Checked::InPod => "in the pod (sha256sum)",
                    upload::Checked::ReadBack => "here (read back with cat: no sha256sum there)",
                }
            );
            done.push(p.exec.clone());
        }
        p.helper = upload::HELPER_PATH.to_string();
    }
    Ok(())
}

/// Where a target's helper command runs: `kubectl exec -i pod/NAME -n NS -c C --`, and the
/// target to name to the helper (`None` in an ephemeral container: already in the pod).
struct Place {
    label: String,
    exec: Vec<String>,
    target: Option<PodTarget>,
    /// The helper's path in the container: the image's, or where --upload put it.
    helper: String,
}

impl Place {
    fn new(
        label: String,
        pod: &str,
        namespace: &str,
        container: &str,
        target: Option<PodTarget>,
    ) -> Self {
        let pod = format!("pod/{pod}");
        let exec = ["exec", "-i", &pod, "-n", namespace, "-c", container, "--"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        Place {
            label,
            exec,
            target,
            helper: manifest::HELPER_PATH.to_string(),
        }
    }

    /// `helper` is the helper's argv as manifest.rs writes it (at manifest::HELPER_PATH).
    fn argv(&self, mut helper: Vec<String>) -> Vec<String> {
        if let Some(program) = helper.first_mut() {
            program.clone_from(&self.helper);
        }
        let mut v = self.exec.clone();
        v.extend(helper);
        v
    }
}

/// Is `interface` one of the target pod's? Asked with `meshsniff capture --list-interfaces`
/// through the same exec as the capture (so in the pod's network namespace).
fn check_interface(kubectl: &Kubectl, p: &Place, interface: &str) -> Result<()> {
    let argv = p.argv(manifest::list_interfaces_argv(p.target.as_ref()));
    let out = match kubectl.run(&argv, None) {
        Ok(out) => out,
        Err(KubeError::Failed { stderr, .. }) => bail!(
            "the helper could not list the interfaces of {}: {}",
            p.label,
            checks::printable(&stderr)
        ),
        Err(e) => return Err(e.into()),
    };
    let names = checks::listed_interfaces(&String::from_utf8_lossy(&out));
    if !names.iter().any(|n| n == interface) {
        bail!(
            "pod {} has no interface `{interface}`; it has: {} (or -i any for all of them)",
            p.label,
            checks::printable(&names.join(", "))
        );
    }
    Ok(())
}

fn start_helpers(
    kubectl: &Kubectl,
    targets: &[PodTarget],
    args: &Args,
    session: &str,
    opts: &CaptureOpts,
    existing_ns: Option<Value>,
    cleanup: &mut Cleanup,
) -> Result<Vec<Place>> {
    match existing_ns {
        None => match kubectl.create(&manifest::namespace()) {
            Ok(()) => eprintln!(
                "kubectl meshsniff: created namespace {}",
                manifest::NAMESPACE
            ),
            Err(meshsniff::kube::KubeError::Failed { stderr, .. })
                if stderr.contains("AlreadyExists") => {}
            Err(e) => return Err(e).context("cannot create the helper namespace"),
        },
        Some(existing) => {
            if let Some(p) = manifest::namespace_problem(&existing) {
                eprintln!("kubectl meshsniff: warning: {p}");
            }
        }
    }
    let mut nodes: Vec<&str> = targets.iter().map(|t| t.node.as_str()).collect();
    nodes.sort_unstable();
    nodes.dedup();
    let mut helper_of = std::collections::HashMap::new();
    for (k, node) in nodes.iter().enumerate() {
        // From the API, into the manifest: still a name, or no pod is made for it.
        checks::dns1123_subdomain("node name", node).map_err(anyhow::Error::msg)?;
        let h = Helper {
            session: session.to_string(),
            name: format!("meshsniff-{session}-{k}"),
            node: node.to_string(),
            image: args.image.clone(),
            duration_secs: opts.duration_secs,
            start_secs: args.start_timeout.as_secs(),
            now: now(),
        };
        let on_node: Vec<&PodTarget> = targets.iter().filter(|t| t.node == *node).collect();
        // Armed before the create: whatever happens next, this name gets a delete.
        cleanup.pods.push(h.name.clone());
        let mut pod = manifest::helper_pod(&h, &on_node);
        if args.upload {
            pod = upload::helper_pod(pod, &h);
        }
        match kubectl.create(&pod) {
            Ok(()) => {}
            Err(meshsniff::kube::KubeError::Failed { stderr, .. }) => {
                bail!("{}", diagnose::create_failure(&stderr))
            }
            Err(e) => return Err(e.into()),
        }
        eprintln!(
            "kubectl meshsniff: helper pod {}/{} on node {node}",
            manifest::NAMESPACE,
            h.name
        );
        helper_of.insert(node.to_string(), h.name);
    }
    for name in helper_of.values() {
        wait_ready(kubectl, name, args.start_timeout)?;
    }
    Ok(targets
        .iter()
        .map(|t| {
            Place::new(
                format!("{}/{}", t.namespace, t.name),
                &helper_of[&t.node],
                manifest::NAMESPACE,
                "helper",
                Some(t.clone()),
            )
        })
        .collect())
}

/// `kubectl wait` in short steps, so that a helper that cannot start (a bad image, a pod the
/// kubelet refused) is reported at once, not after the whole start timeout; the reasons come
/// from the pod's status and its warning events.
fn wait_ready(kubectl: &Kubectl, name: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let pod = format!("pod/{name}");
    let mut said = false;
    loop {
        let left = timeout
            .saturating_sub(start.elapsed())
            .as_secs()
            .clamp(1, 5);
        let step = format!("--timeout={left}s");
        let waited = kubectl.run(
            &[
                "wait",
                "--for=condition=Ready",
                &pod,
                "-n",
                manifest::NAMESPACE,
                &step,
            ],
            None,
        );
        if meshsniff::capture::stop_requested() {
            bail!("interrupted while the helper pod was starting");
        }
        let e = match waited {
            Ok(_) => return Ok(()),
            // Waiting longer does not give a permission.
            Err(e @ KubeError::Forbidden { .. }) => return Err(e.into()),
            Err(e) => e,
        };
        let status = kubectl
            .get_json(&[&pod, "-n", manifest::NAMESPACE])
            .ok()
            .flatten();
        let fatal = diagnose::is_fatal(status.as_ref());
        if !fatal && start.elapsed() < timeout {
            if !said {
                eprintln!("kubectl meshsniff: waiting for helper pod {name} to start");
                said = true;
            }
            continue;
        }
        let selector = format!("involvedObject.name={name}");
        let events = kubectl
            .get_json(&[
                "events",
                "-n",
                manifest::NAMESPACE,
                "--field-selector",
                &selector,
            ])
            .ok()
            .flatten();
        let why = diagnose::start_failure(status.as_ref(), events.as_ref());
        if why.is_empty() {
            bail!(
                "helper pod {name} did not become ready in {}s: {e:#}",
                timeout.as_secs()
            );
        }
        bail!("helper pod {name} did not start:\n  {}", why.join("\n  "));
    }
}

fn start_ephemeral(
    kubectl: &Kubectl,
    targets: &[PodTarget],
    args: &Args,
    session: &str,
    opts: &CaptureOpts,
) -> Result<Vec<Place>> {
    let mut places = Vec::new();
    for t in targets {
        let h = Helper {
            session: session.to_string(),
            name: format!("meshsniff-{session}"),
            node: t.node.clone(),
            image: args.image.clone(),
            duration_secs: opts.duration_secs,
            start_secs: args.start_timeout.as_secs(),
            now: now(),
        };
        let mut container = manifest::ephemeral_container(&h);
        if args.upload {
            container = upload::ephemeral_container(container, &h);
        }
        let patch = json!({"spec": {"ephemeralContainers": [container]}});
        kubectl
            .run(
                &[
                    "patch",
                    &format!("pod/{}", t.name),
                    "-n",
                    &t.namespace,
                    "--subresource",
                    "ephemeralcontainers",
                    "--type",
                    "strategic",
                    "-p",
                    &patch.to_string(),
                ],
                None,
            )
            .map_err(|e| match e {
                meshsniff::kube::KubeError::Failed { stderr, .. } => anyhow::anyhow!(
                    "cannot add an ephemeral container to {}/{}: {stderr}\n  (needs Kubernetes \
                     1.25+, patch on pods/ephemeralcontainers, and a policy that allows NET_RAW)",
                    t.namespace,
                    t.name
                ),
                other => other.into(),
            })?;
        // Ready when its status says running.
        let start = Instant::now();
        loop {
            let pod = kubectl.get_json(&[&format!("pod/{}", t.name), "-n", &t.namespace])?;
            let st = pod.as_ref().and_then(|p| {
                meshsniff::kube::array_at(p, "/status/ephemeralContainerStatuses")
                    .iter()
                    .find(|s| s.get("name").and_then(Value::as_str) == Some(&h.name))
                    .cloned()
            });
            if st
                .as_ref()
                .is_some_and(|s| s.pointer("/state/running").is_some())
            {
                break;
            }
            if meshsniff::capture::stop_requested() {
                bail!("interrupted while the ephemeral container was starting");
            }
            if start.elapsed() > args.start_timeout {
                let status = st.map(|s| json!({"status": {"containerStatuses": [s]}}));
                let why = diagnose::start_failure(status.as_ref(), None);
                bail!(
                    "the ephemeral container in {}/{} did not start: {}",
                    t.namespace,
                    t.name,
                    if why.is_empty() {
                        "no reason given".into()
                    } else {
                        why.join("; ")
                    }
                );
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        places.push(Place::new(
            format!("{}/{}", t.namespace, t.name),
            &t.name,
            &t.namespace,
            &h.name,
            None,
        ));
    }
    Ok(places)
}

/// Runs the exec streams into the sinks until they end or a stop is asked; the analyzer's
/// exit code (or 3 when a stream ended early, or 0 with `-o -`).
fn stream(
    kubectl: &Kubectl,
    execs: &[(String, Vec<String>)],
    targets: &[PodTarget],
    args: &Args,
    saved: Option<std::fs::File>,
) -> Result<u8> {
    let mut sinks: Vec<(&'static str, Box<dyn Write + Send>)> = Vec::new();
    let mut analyzer = None;
    let mut wireshark = None;
    match args.output.as_deref() {
        Some("-") => sinks.push(("stdout", Box::new(io::stdout()))),
        other => {
            if other.is_some() {
                let f = saved.context("the output file was not opened")?;
                sinks.push(("the output file", Box::new(io::BufWriter::new(f))));
            }
            let mut cmd = Command::new(analyzer_program());
            cmd.args([
                "check",
                "-",
                "--profile",
                &args.profile,
                "--format",
                &args.format,
            ]);
            if let Some(f) = &args.fail_on {
                cmd.args(["--fail-on", f]);
            }
            if args.show_secrets {
                cmd.arg("--show-secrets");
            }
            let mut child =
                cmd.stdin(Stdio::piped()).process_group(0).spawn().context(
                    "cannot start the analyzer (`meshsniff`, installed with this plugin)",
                )?;
            sinks.push((
                "the analyzer",
                Box::new(child.stdin.take().context("analyzer stdin")?),
            ));
            analyzer = Some(child);
        }
    }
    if args.wireshark {
        let mut child = Command::new("wireshark")
            .args(["-k", "-i", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .context("cannot start wireshark")?;
        sinks.push((
            "wireshark",
            Box::new(child.stdin.take().context("wireshark stdin")?),
        ));
        wireshark = Some(child);
    }
    let fanout = Arc::new(Mutex::new(Fanout { sinks, bytes: 0 }));
    let mut streams = Vec::new();
    for (label, argv) in execs {
        let mut child = kubectl
            .stream_command(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .context("cannot run kubectl exec")?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().context("exec stderr")?;
        let (keep, label2) = (stderr.clone(), label.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                // The helper's own report (packets captured, dropped) is worth showing.
                eprintln!("[{label2}] {}", checks::printable(&line));
                let mut k = keep.lock().unwrap_or_else(|p| p.into_inner());
                k.push(line);
                if k.len() > 20 {
                    k.remove(0);
                }
            }
        });
        streams.push(Stream {
            label: label.clone(),
            child,
            stderr,
        });
    }
    let pumps = start_pumps(&mut streams, fanout.clone())?;
    let gone = watch_targets(kubectl, targets);
    // Wait for the streams to end or for a stop; a status line on a terminal meanwhile.
    let mut stopped = false;
    let status = io::stderr().is_terminal();
    let started = Instant::now();
    let mut shown = Instant::now();
    loop {
        if pumps.iter().all(std::thread::JoinHandle::is_finished) {
            break;
        }
        if status && shown.elapsed() >= Duration::from_secs(1) {
            shown = Instant::now();
            let bytes = fanout.lock().unwrap_or_else(|p| p.into_inner()).bytes;
            eprint!(
                "\r\x1b[2K{}s of {}s · {} captured from {} pod(s) · Ctrl-C stops",
                started.elapsed().as_secs(),
                args.duration.as_secs(),
                meshsniff::report::human_bytes(bytes),
                streams.len()
            );
        }
        if meshsniff::capture::stop_requested() && !stopped {
            stopped = true;
            eprintln!("kubectl meshsniff: stopping");
            for s in &mut streams {
                let _ = s.child.kill();
            }
        }
        // A target that is gone never sends again: the helper would capture nothing until
        // --duration (its network namespace lives on while the helper holds it).
        let why = gone.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if !why.is_empty() && !stopped {
            stopped = true;
            for w in &why {
                eprintln!("kubectl meshsniff: {w}; stopping the capture");
            }
            for s in &mut streams {
                let _ = s.child.kill();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    if status {
        eprint!("\r\x1b[2K");
    }
    let mut pump_errors = Vec::new();
    for p in pumps {
        if let Ok(Err(e)) = p.join() {
            pump_errors.push(e);
        }
    }
    // A kubectl whose output ended exits by itself (its status tells a dropped stream); one
    // whose reader went away (stdout closed) goes on capturing: end it.
    let grace = Instant::now();
    for s in &mut streams {
        while matches!(s.child.try_wait(), Ok(None)) && grace.elapsed() < Duration::from_secs(2) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if matches!(s.child.try_wait(), Ok(None)) {
            stopped = true;
            let _ = s.child.kill();
        }
    }
    // A stream whose connection was cut can end with kubectl's exit 0 (seen when the node's
    // kubelet restarted mid-stream on the test cluster): an end well before --duration with
    // no --count is a cut too.
    // (Not when every reader went away, `-o - | head`: that end is the user's.)
    let ran = started.elapsed();
    let readers_gone = fanout
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .sinks
        .is_empty();
    let cut_short = !stopped
        && !readers_gone
        && args.count.is_none()
        && ran + Duration::from_secs(2) < args.duration;
    let mut dropped = Vec::new();
    for s in &mut streams {
        let st = s.child.wait().context("waiting for kubectl exec")?;
        if st.success() && cut_short {
            dropped.push(format!(
                "{} (kubectl exited 0 after {}s of {}s: the connection to the node was cut)",
                s.label,
                ran.as_secs(),
                args.duration.as_secs()
            ));
        } else if !st.success() && !stopped {
            let said = s
                .stderr
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .join("\n  ");
            // kubectl's RBAC refusal of the exec, named as a permission.
            let said = match rbac::parse_forbidden(&said) {
                Some((need, user)) => rbac::forbidden_message(&need, &user),
                None => said,
            };
            dropped.push(format!("{} ({st}): {said}", s.label));
        }
    }
    let bytes = {
        let mut f = fanout.lock().unwrap_or_else(|p| p.into_inner());
        let _ = f.flush();
        let b = f.bytes;
        f.sinks.clear(); // closes the analyzer's and Wireshark's stdin
        b
    };
    drop(wireshark);
    for e in &pump_errors {
        eprintln!("kubectl meshsniff: {e}");
    }
    // Every stream failed before its first byte: the helper refused to start (its own early
    // error, e.g. an interface gone or a link type a filter cannot run on), a usage error.
    let refused = bytes == 0 && !stopped && dropped.len() == streams.len();
    for d in &dropped {
        if refused {
            eprintln!("kubectl meshsniff: the helper refused to capture for {d}");
        } else {
            eprintln!(
                "kubectl meshsniff: the exec stream of {d}\n  ended early: what arrived was \
                 judged (and saved); the helper stops by itself after --duration"
            );
        }
    }
    let mut code = match analyzer {
        Some(mut a) => {
            let st = a.wait().context("waiting for the analyzer")?;
            st.code().map_or(EXIT_ERROR, |c| c as u8)
        }
        None => 0,
    };
    let target_gone = !gone.lock().unwrap_or_else(|p| p.into_inner()).is_empty();
    if refused {
        code = EXIT_ERROR;
    } else if (!dropped.is_empty() || !pump_errors.is_empty() || target_gone) && code != 1 {
        code = EXIT_PARTIAL;
    }
    if bytes == 0 && !stopped {
        eprintln!("kubectl meshsniff: nothing was captured");
    }
    Ok(code)
}

/// Every few seconds, is each target pod still there? What is said of those that are not
/// (deleted, replaced by a pod of the same name, ended); a read that fails says nothing.
fn watch_targets(kubectl: &Kubectl, targets: &[PodTarget]) -> Arc<Mutex<Vec<String>>> {
    let out = Arc::new(Mutex::new(Vec::new()));
    let (k, ts, said) = (kubectl.clone(), targets.to_vec(), out.clone());
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(TARGET_POLL);
            for t in &ts {
                let now = match k.get_json(&[&format!("pod/{}", t.name), "-n", &t.namespace]) {
                    Ok(p) => p,
                    Err(_) => continue,
                };
                if let Some(why) = target::gone(t, now.as_ref()) {
                    said.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("target pod {}/{} {why}", t.namespace, t.name));
                    return;
                }
            }
        }
    });
    out
}

/// How often the targets are looked at during a capture.
const TARGET_POLL: Duration = Duration::from_secs(3);

type Pump = std::thread::JoinHandle<Result<(), String>>;

/// One stream: its bytes as they come. Several: merged into one pcapng with an interface per
/// pod and its interface.
fn start_pumps(streams: &mut [Stream], out: Arc<Mutex<Fanout>>) -> Result<Vec<Pump>> {
    if let [one] = streams {
        let mut from = one.child.stdout.take().context("exec stdout")?;
        return Ok(vec![std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e.to_string()),
                };
                let mut o = out.lock().unwrap_or_else(|p| p.into_inner());
                if o.write_all(&buf[..n]).and_then(|()| o.flush()).is_err() {
                    return Ok(()); // no reader left (stdout closed): stop quietly
                }
            }
        })]);
    }
    let labels: Vec<String> = streams.iter().map(|s| s.label.clone()).collect();
    struct Shared(Arc<Mutex<Fanout>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).write(b)
        }
        fn flush(&mut self) -> io::Result<()> {
            self.0.lock().unwrap_or_else(|p| p.into_inner()).flush()
        }
    }
    let merger = Merger::new(Shared(out), &labels).map_err(|e| anyhow::anyhow!("{e}"))?;
    let merger = Arc::new(Mutex::new(merger));
    let mut pumps = Vec::new();
    for (i, s) in streams.iter_mut().enumerate() {
        let from = s.child.stdout.take().context("exec stdout")?;
        let (m, label) = (merger.clone(), s.label.clone());
        pumps.push(std::thread::spawn(move || {
            let mut r = BlockReader::new(from, &label);
            loop {
                match r.next_block() {
                    Ok(Some(b)) => {
                        let mut m = m.lock().unwrap_or_else(|p| p.into_inner());
                        m.push(i, &b).map_err(|e| e.to_string())?;
                        m.flush().map_err(|e| e.to_string())?;
                    }
                    Ok(None) => return Ok(()),
                    Err(e) => return Err(e.to_string()),
                }
            }
        }));
    }
    Ok(pumps)
}
