//! `meshsniff` command line: raw flags (clap) → validated settings → sources and sinks.
//! Exit codes (a contract, see README and docs/check.md): the run's outcome decides them, the
//! same outcome as its last line: 0 PASS / NO VERDICT, 1 FAIL / NO DATA, 2 usage or I/O error or
//! an input that is not a capture, 3 input partially unreadable (results still printed). A
//! closed stdout pipe ends the run quietly.

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use meshsniff::analyze::{Analysis, Progress};
use meshsniff::flow::FlowConfig;
use meshsniff::policy::Profile;

mod expect;
use expect::Expectations;
use meshsniff::report::{
    ExpectResult, Gate, JsonDocSink, JsonlSink, Outcome, Sink, Summary, TableSink,
};
use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Usage and I/O errors; the other codes are the outcome's (`report::Outcome::exit_code`).
const EXIT_ERROR: u8 = 2;

#[derive(Parser, Debug)]
#[command(
    name = "meshsniff",
    version,
    about = "Is this pod's traffic really encrypted, and if not, what leaks?"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Read pcap/pcapng captures (files or `-` for stdin) and report every TCP flow.
    ///
    /// The last line judges by check's default rules (plaintext-leak, sidecar-bypass): exit 1
    /// when it says FAIL or NO DATA, 0 on PASS (docs/check.md).
    ///
    /// Example: tcpdump -i eth0 -U -w - | meshsniff analyze -
    Analyze(AnalyzeArgs),
    /// Judge captures for CI: exit 1 when a flow of a `--fail-on` kind exists, an `--expect`
    /// file is not met, or there was no flow to judge (NO DATA); 0 when clean, 3 when input was
    /// damaged and nothing failed (docs/check.md). The last line says the same.
    ///
    /// Example: meshsniff check capture.pcapng --profile istio --fail-on plaintext-leak,sidecar-bypass
    Check(CheckArgs),
    /// Capture inside a pod's network namespace (by PID, namespace or container ID) and
    /// write pcap or pcapng; needs root or CAP_NET_RAW + CAP_SYS_ADMIN, which it drops as soon
    /// as the socket is open.
    ///
    /// Example: meshsniff capture --container containerd://4f1d… -i any -w pod.pcapng --pcapng
    Capture(CaptureArgs),
    /// Capture and judge live: the capture helper runs as a privileged child, the analyzer in
    /// this (unprivileged) process on its output; flows print as they close, a status line
    /// shows progress, and the end is the same summary and exit code as `check`.
    ///
    /// Example: sudo meshsniff sniff --pid 4242 --profile istio -w pod.pcapng
    Sniff(SniffArgs),
    /// The main process of a `kubectl meshsniff` helper container: does nothing until SIGTERM
    /// or `--seconds` have passed (the capture itself is run in the container with `exec`).
    #[command(hide = true)]
    Idle {
        #[arg(long, default_value_t = 3600)]
        seconds: u64,
    },
}

#[derive(clap::Args, Debug)]
struct SniffArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Interface in the target's namespace, or `any`.
    #[arg(short = 'i', long, default_value = "any", value_name = "IFACE")]
    interface: String,
    /// Keep the capture (pcapng, created 0600; never through a symlink, never onto an
    /// existing file unless --overwrite).
    #[arg(short = 'w', long, value_name = "FILE")]
    write: Option<String>,
    /// Let -w replace an existing regular file of this user (not a symlink, directory or
    /// someone else's file); it is made 0600.
    #[arg(long, requires = "write")]
    overwrite: bool,
    /// A capture filter (see `capture -f`).
    #[arg(short = 'f', long, value_name = "FILTER")]
    filter: Option<String>,
    /// Stop after this many packets (then the summary and exit code, as on Ctrl-C).
    #[arg(short = 'c', long, value_name = "N")]
    count: Option<u64>,
    /// Stop after this long: `30`, `30s`, `5m`, `1h`.
    #[arg(long, value_name = "D", value_parser = meshsniff::cli::parse_duration)]
    duration: Option<std::time::Duration>,
    /// Which conventions judge the flows: strict, istio or none (see `analyze --help`).
    #[arg(long, value_enum, default_value_t = ProfileArg::Strict)]
    profile: ProfileArg,
    #[command(flatten)]
    fail_on: FailOn,
    /// Output format (flows are printed as they close).
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Show captured credentials in the evidence instead of `<redacted, N bytes>`.
    #[arg(long)]
    show_secrets: bool,
    /// Colour in the table: auto = only when stdout is a terminal (and NO_COLOR is unset).
    #[arg(long, value_enum, default_value_t = Colour::Auto)]
    color: Colour,
    /// No status line.
    #[arg(short, long)]
    quiet: bool,
    /// The unprivileged user both processes end up as: UID[:GID].
    #[arg(long, default_value = "65534:65534", value_name = "UID[:GID]")]
    user: String,
}

#[derive(clap::Args, Debug)]
struct CaptureArgs {
    #[command(flatten)]
    target: TargetArgs,
    /// Interface in the target's namespace, or `any` (cooked, LINUX_SLL2, with interface
    /// index and direction).
    #[arg(short = 'i', long, default_value = "any", value_name = "IFACE")]
    interface: String,
    /// A capture filter in tcpdump syntax, run in the kernel; the subset meshsniff compiles
    /// exactly as libpcap does (docs/capture.md); anything else is refused.
    #[arg(short = 'f', long, value_name = "FILTER")]
    filter: Option<String>,
    /// Print the filter's BPF program like `tcpdump -ddd` (as given to the kernel: for an
    /// Ethernet interface, or for `-i any`'s cooked socket) and exit.
    #[arg(long)]
    filter_ddd: bool,
    /// Where to write: a file (created 0600; never through a symlink, never onto an existing
    /// file unless --overwrite) or `-` for standard output.
    #[arg(short = 'w', long, default_value = "-", value_name = "FILE|-")]
    write: String,
    /// Let -w replace an existing regular file of this user (not a symlink, directory or
    /// someone else's file); it is made 0600.
    #[arg(long)]
    overwrite: bool,
    /// Stop after this many packets.
    #[arg(short = 'c', long, value_name = "N")]
    count: Option<u64>,
    /// Stop after this long: `30`, `30s`, `5m`, `1h`.
    #[arg(long, value_name = "D", value_parser = meshsniff::cli::parse_duration)]
    duration: Option<std::time::Duration>,
    /// Stop once the file holds this many bytes.
    #[arg(long, value_name = "BYTES")]
    max_bytes: Option<u64>,
    /// Bytes kept per packet.
    #[arg(long, default_value_t = 262_144, value_name = "N")]
    snaplen: u32,
    /// Write pcapng: one named interface block per interface (`eth0` and `lo` told apart).
    #[arg(long)]
    pcapng: bool,
    /// The unprivileged user to switch to once the socket is open: UID[:GID].
    #[arg(long, default_value = "65534:65534", value_name = "UID[:GID]")]
    user: String,
    /// List the target's interfaces (like `tcpdump -D`) and exit.
    #[arg(long)]
    list_interfaces: bool,
}

/// `--fail-on`, shared by `check` and `sniff`.
#[derive(clap::Args, Debug)]
struct FailOn {
    /// Verdict kinds or finding rules that fail the run, comma-separated (docs/check.md).
    /// Default: plaintext-leak,sidecar-bypass, unless `--expect` is given: then only the
    /// expectations decide, and `--fail-on` adds rules to them. `--fail-on ""`: nothing.
    #[arg(long, value_delimiter = ',', value_name = "KINDS")]
    fail_on: Option<Vec<String>>,
}

impl FailOn {
    /// The gate these flags ask for; `expect`: an expectations file was given.
    fn gate(&self, expect: bool) -> Result<Gate> {
        match &self.fail_on {
            Some(names) => Gate::new(names).map_err(|e| anyhow::anyhow!("--fail-on: {e}")),
            None if expect => Ok(Gate::new::<&str>(&[])?),
            None => Ok(Gate::default()),
        }
    }
}

/// Creates a file only its owner can read (captures hold secrets): never through a symlink,
/// never onto an existing file unless `overwrite` (the error says what to do).
fn create_private(path: &str, overwrite: bool) -> Result<File> {
    Ok(meshsniff::cli::create_private(path, overwrite)?)
}

/// Whose network namespace to capture in (at most one; none: this process's own).
#[derive(clap::Args, Debug)]
struct TargetArgs {
    /// The target's process ID (its network namespace is captured).
    #[arg(long, value_name = "PID", group = "target")]
    pid: Option<u32>,
    /// A network namespace: a name from `ip netns list`, or a path like /proc/PID/ns/net.
    #[arg(long, value_name = "NAME|PATH", group = "target")]
    netns: Option<String>,
    /// A container ID (`containerd://…`, `cri-o://…`, `docker://…` or bare hex), found in
    /// /proc/*/cgroup; no container runtime socket is needed.
    #[arg(long, value_name = "ID", group = "target")]
    container: Option<String>,
}

impl TargetArgs {
    fn target(&self) -> Option<meshsniff::capture::Target> {
        use meshsniff::capture::Target;
        match (self.pid, &self.netns, &self.container) {
            (Some(p), _, _) => Some(Target::Pid(p)),
            (_, Some(n), _) => Some(Target::Netns(n.clone())),
            (_, _, Some(c)) => Some(Target::Container(c.clone())),
            _ => None,
        }
    }

    /// The same choice as arguments for the helper.
    fn argv(&self) -> Vec<String> {
        use meshsniff::capture::Target;
        match self.target() {
            Some(Target::Pid(p)) => vec!["--pid".into(), p.to_string()],
            Some(Target::Netns(n)) => vec!["--netns".into(), n],
            Some(Target::Container(c)) => vec!["--container".into(), c],
            None => Vec::new(),
        }
    }
}

#[derive(clap::Args, Debug)]
struct CheckArgs {
    #[command(flatten)]
    analyze: AnalyzeArgs,
    #[command(flatten)]
    fail_on: FailOn,
    /// Expectations to meet (JSON, see docs/check.md); a mismatch says what differed. Given
    /// alone, the expectations alone decide (no default `--fail-on`).
    #[arg(long, value_name = "FILE")]
    expect: Option<String>,
}

#[derive(clap::Args, Debug)]
struct AnalyzeArgs {
    /// Capture files (pcap or pcapng, detected by content); `-` reads standard input.
    #[arg(required = true, value_name = "FILE|-")]
    inputs: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// No progress bar and no error lines on stderr (the summary still carries them).
    #[arg(short, long)]
    quiet: bool,
    /// Colour in the table: auto = only when stdout is a terminal (and NO_COLOR is unset).
    #[arg(long, value_enum, default_value_t = Colour::Auto)]
    color: Colour,
    /// Live flows kept at most; beyond, the least recently active are reported early.
    #[arg(long, default_value_t = 65_536, value_name = "N")]
    max_flows: usize,
    /// A flow with no packet for this many seconds of capture time is reported as idle.
    #[arg(long, default_value_t = 120, value_name = "SECONDS")]
    idle_timeout: u64,
    /// Payload bytes kept per flow direction for classification (the rest is only counted).
    #[arg(long, default_value_t = 16 * 1024, value_name = "BYTES")]
    collect_bytes: usize,
    /// Which conventions judge the flows: strict (cleartext off loopback is a leak), istio
    /// (sidecar conventions), none (facts only, no verdicts).
    #[arg(long, value_enum, default_value_t = ProfileArg::Strict)]
    profile: ProfileArg,
    /// Show captured credentials in the evidence instead of `<redacted, N bytes>`.
    #[arg(long)]
    show_secrets: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum ProfileArg {
    Strict,
    Istio,
    None,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Format {
    /// Human table, one row per flow as it closes, then a summary.
    Table,
    /// JSON Lines: one `flow` object per line, a `summary` object last (docs/schema.md).
    Jsonl,
    /// One JSON document: {"flows":[...],"summary":{...}}.
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum Colour {
    Auto,
    Always,
    Never,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Analyze(args) => analyze(args),
        Command::Check(args) => check(args),
        Command::Capture(args) => capture(args),
        Command::Sniff(args) => sniff(args),
        Command::Idle { seconds } => {
            meshsniff::capture::install_stop_signals();
            let end = std::time::Instant::now() + Duration::from_secs(seconds);
            while !meshsniff::capture::stop_requested() && std::time::Instant::now() < end {
                std::thread::sleep(Duration::from_millis(200));
            }
            Ok(0)
        }
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("meshsniff: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<meshsniff::analyze::AnalyzeError>()
                .is_some_and(|a| match a {
                    meshsniff::analyze::AnalyzeError::Output(io) => {
                        io.kind() == io::ErrorKind::BrokenPipe
                    }
                    _ => false,
                })
    })
}

/// An opened input: a file (with its size, for the progress bar) or standard input.
struct Input {
    name: String,
    reader: Box<dyn Read>,
    size: Option<u64>,
}

fn open_inputs(names: &[String]) -> Result<Vec<Input>> {
    if names.iter().filter(|n| *n == "-").count() > 1 {
        bail!("standard input (`-`) can be named only once");
    }
    names
        .iter()
        .map(|name| {
            if name == "-" {
                if io::stdin().is_terminal() {
                    bail!(
                        "`-` reads a capture from standard input, but it is a terminal: pipe one in, \
                         e.g. `tcpdump -i eth0 -U -w - | meshsniff analyze -`"
                    );
                }
                return Ok(Input { name: "-".into(), reader: Box::new(io::stdin().lock()), size: None });
            }
            let file = File::open(name).with_context(|| format!("cannot open {name}"))?;
            let meta = file.metadata().with_context(|| format!("cannot stat {name}"))?;
            if meta.is_dir() {
                bail!("{name} is a directory; name capture files (e.g. {name}/*.pcap)");
            }
            Ok(Input { name: name.clone(), reader: Box::new(file), size: Some(meta.len()) })
        })
        .collect()
}

/// `analyze`: judged by check's default rules (docs/check.md), so its last line, its JSON
/// `answer` and its exit code say the same as `check` without flags would.
fn analyze(args: AnalyzeArgs) -> Result<u8> {
    let mut judge = Judge::new(Gate::default(), None);
    let summary = analyze_inputs(args, None, &mut judge)?;
    Ok(exit_code(&summary))
}

/// The exit code the concluded summary stands for.
fn exit_code(s: &Summary) -> u8 {
    s.check
        .as_ref()
        .map_or(EXIT_ERROR, |c| c.result.exit_code())
}

/// What judges a run: the `--fail-on` gate, the expectations and what they need of each flow.
struct Judge {
    gate: Gate,
    expect: Option<Expectations>,
    seen: Vec<expect::Seen>,
    expected: Option<ExpectResult>,
}

impl Judge {
    fn new(gate: Gate, expect: Option<Expectations>) -> Judge {
        Judge {
            gate,
            expect,
            seen: Vec::new(),
            expected: None,
        }
    }
}

/// `analyze` on inputs already opened by the caller (`sniff`'s live pipe), or on the files
/// the arguments name; returns the summary as concluded by `judge` (and as printed).
fn analyze_inputs(
    args: AnalyzeArgs,
    opened: Option<Vec<Input>>,
    judge: &mut Judge,
) -> Result<Summary> {
    if args.max_flows == 0 {
        bail!("--max-flows must be at least 1");
    }
    let cfg = FlowConfig {
        idle_timeout_ns: args.idle_timeout.saturating_mul(1_000_000_000),
        max_flows: args.max_flows,
        collect_bytes: args.collect_bytes.clamp(64, 1 << 20),
        reveal_secrets: args.show_secrets,
        ..FlowConfig::default()
    };
    let profile = match args.profile {
        ProfileArg::Strict => Profile::Strict,
        ProfileArg::Istio => Profile::Istio,
        ProfileArg::None => Profile::None,
    };
    // Open everything first: a typo fails before any output is written.
    let inputs = match opened {
        Some(i) => i,
        None => open_inputs(&args.inputs)?,
    };
    let live = inputs.iter().any(|i| i.size.is_none());
    let stdout = io::stdout();
    let out = BufWriter::with_capacity(
        1 << 16,
        ClearsStatus {
            out: stdout.lock(),
            status: io::stderr(),
        },
    );
    let colour = match args.color {
        Colour::Always => true,
        Colour::Never => false,
        Colour::Auto => io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    };
    let mut sink: Box<dyn Sink> = match args.format {
        Format::Table => Box::new(TableSink::new(out, colour, live)),
        Format::Jsonl => Box::new(JsonlSink::new(out, live)),
        Format::Json => Box::new(JsonDocSink::new(out)),
    };
    let show_progress = !args.quiet && io::stderr().is_terminal();
    let mut judged = Judged {
        inner: sink.as_mut(),
        judge,
        concluded: None,
    };
    let mut analysis = Analysis::new(cfg, &mut judged);
    analysis.set_profile(profile);
    for input in inputs {
        let bar = show_progress.then(|| progress_bar(input.size, &input.name));
        let mut on_progress = |p: Progress| {
            if let Some(bar) = &bar {
                bar.set_position(p.input_bytes);
                bar.set_message(format!(
                    "{}, {}",
                    meshsniff::report::count(p.packets, "packet", "packets"),
                    meshsniff::report::count(p.flows, "flow", "flows")
                ));
            }
        };
        analysis.run(input.reader, &input.name, &mut on_progress)?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
    }
    analysis.finish()?;
    let summary = judged
        .concluded
        .take()
        .context("the analysis ended without a summary")?;
    if !args.quiet {
        for e in &summary.errors {
            eprintln!("meshsniff: {}: {}", e.file, e.message);
        }
        if summary
            .check
            .as_ref()
            .is_some_and(|c| c.result == Outcome::NoData)
        {
            let why = summary.answer.trim_start_matches("NO DATA: ");
            eprintln!("meshsniff: warning: nothing to judge: {why}");
        }
    }
    Ok(summary)
}

/// The sink between the analysis and the printer: every record goes past the judge, and the
/// summary is concluded (`check`, `answer`) before it is printed.
struct Judged<'a> {
    inner: &'a mut dyn Sink,
    judge: &'a mut Judge,
    concluded: Option<Summary>,
}

impl Sink for Judged<'_> {
    fn flow(&mut self, r: &meshsniff::report::FlowRecord) -> io::Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        LIVE_FLOWS.fetch_add(1, Relaxed);
        if self.judge.gate.observe(r) {
            LIVE_PROBLEMS.fetch_add(1, Relaxed);
        }
        // Per-flow state only when expectations need it (a live `sniff` runs for hours).
        if self.judge.expect.is_some() {
            self.judge.seen.push(expect::Seen::of(r));
        }
        self.inner.flow(r)
    }
    fn finish(&mut self, s: &Summary) -> io::Result<()> {
        let mut s = s.clone();
        let j = &mut *self.judge;
        j.expected = j.expect.as_ref().map(|e| ExpectResult {
            path: e.path.clone(),
            checked: e.len(),
            misses: e.check(&j.seen, &s),
        });
        j.gate.conclude(&mut s, j.expected.as_ref());
        let printed = self.inner.finish(&s);
        self.concluded = Some(s);
        printed
    }
}

fn check(args: CheckArgs) -> Result<u8> {
    check_inputs(args, None)
}

fn check_inputs(args: CheckArgs, opened: Option<Vec<Input>>) -> Result<u8> {
    let gate = args.fail_on.gate(args.expect.is_some())?;
    let expect = match &args.expect {
        Some(path) => Some(Expectations::load(path)?),
        None => None,
    };
    let quiet = args.analyze.quiet;
    let mut judge = Judge::new(gate, expect);
    let summary = analyze_inputs(args.analyze, opened, &mut judge)?;
    let (failing, n) = judge.gate.failing();
    if n > 0 && !quiet {
        eprintln!(
            "meshsniff check: FAIL: {} with --fail-on {}:",
            meshsniff::report::count(n, "flow", "flows"),
            judge.gate.fail_on().join(",")
        );
        for f in failing {
            eprintln!("  {f}");
        }
        if n > failing.len() as u64 {
            eprintln!(
                "  ... and {} more",
                meshsniff::report::thousands(n - failing.len() as u64)
            );
        }
    }
    if let Some(e) = judge.expected.as_ref().filter(|e| !e.misses.is_empty()) {
        eprintln!(
            "meshsniff check: FAIL: {} not met ({}):",
            meshsniff::report::count(e.misses.len() as u64, "expectation", "expectations"),
            e.path
        );
        for m in &e.misses {
            eprintln!("  {m}");
        }
    }
    Ok(exit_code(&summary))
}

fn capture(args: CaptureArgs) -> Result<u8> {
    use meshsniff::capture::{self, Options};
    let target = args.target.target();
    if args.list_interfaces {
        for (n, i) in capture::list_interfaces(target.as_ref())?
            .iter()
            .enumerate()
        {
            let kind = match i.hatype {
                capture::live::ARPHRD_LOOPBACK => " [Loopback]",
                _ => "",
            };
            let state = if i.up { "Up" } else { "Down" };
            println!("{}.{} (index {}){kind} [{state}]", n + 1, i.name, i.index);
        }
        return Ok(0);
    }
    if args.filter_ddd {
        let link = if args.interface == "any" {
            capture::filter::Link::Cooked
        } else {
            capture::filter::Link::Ethernet
        };
        let expr = args.filter.as_deref().unwrap_or("");
        let prog = capture::filter::compile(expr, link, args.snaplen)?;
        print!("{}", capture::filter::ddd(&prog));
        return Ok(0);
    }
    let user = parse_user(&args.user)?;
    if args.snaplen < 64 {
        bail!("--snaplen must be at least 64");
    }
    // The output is opened before privileges are dropped (like tcpdump -w with -Z).
    let out: Box<dyn Write> = if args.write == "-" {
        if io::stdout().is_terminal() {
            bail!(
                "refusing to write a binary capture to the terminal: use -w FILE, or pipe it \
                 (e.g. | meshsniff analyze -, | wireshark -k -i -)"
            );
        }
        Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock()))
    } else {
        Box::new(BufWriter::with_capacity(
            1 << 16,
            create_private(&args.write, args.overwrite)?,
        ))
    };
    let opts = Options {
        target,
        interface: args.interface.clone(),
        snaplen: args.snaplen,
        count: args.count,
        duration: args.duration,
        max_bytes: args.max_bytes,
        pcapng: args.pcapng,
        user,
        filter: args.filter.clone(),
    };
    capture::install_stop_signals();
    let iface = args.interface.clone();
    let stats = capture::run(&opts, out, &mut |live| {
        let link = match live.framing {
            capture::live::Framing::Raw(l) => format!("link type {l}"),
            capture::live::Framing::Cooked => "LINUX_SLL2".to_string(),
        };
        eprintln!(
            "meshsniff: capturing on {iface} ({link}), as uid {}",
            user.0
        );
    })?;
    eprintln!("{} packets captured", stats.written);
    eprintln!("{} packets received by filter", stats.received);
    eprintln!("{} packets dropped by kernel", stats.dropped);
    Ok(0)
}

/// Flows seen by a live analysis, for the status line.
static LIVE_FLOWS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static LIVE_PROBLEMS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// `sniff`'s status line is on the terminal (stderr) now; rows written to the same terminal
/// must clear it first, or they are printed glued onto it.
static STATUS_SHOWN: std::sync::Mutex<bool> = std::sync::Mutex::new(false);

/// `12s · 12.3 MB captured · 1,234 flows · 2 problems`.
fn status_line(elapsed: Duration, bytes: u64, flows: u64, problems: u64) -> String {
    use meshsniff::report::count;
    format!(
        "{:.0}s · {} captured · {} · {}",
        elapsed.as_secs_f64(),
        meshsniff::report::human_size(bytes),
        count(flows, "flow", "flows"),
        count(problems, "problem", "problems"),
    )
}

/// Standard output that clears a showing status line (on `status`) before each write; the
/// lock keeps the status thread from drawing in the middle of a row.
struct ClearsStatus<W: Write, E: Write> {
    out: W,
    status: E,
}

impl<W: Write, E: Write> Write for ClearsStatus<W, E> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut shown = STATUS_SHOWN.lock().unwrap_or_else(|e| e.into_inner());
        if *shown {
            self.status.write_all(b"\r\x1b[2K")?;
            self.status.flush()?;
            *shown = false;
        }
        let n = self.out.write(buf)?;
        self.out.flush()?;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The child's capture stream, copied to the kept file as it is read.
struct LiveTee {
    child: io::Chain<io::Cursor<Vec<u8>>, std::process::ChildStdout>,
    keep: Option<File>,
    bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Read for LiveTee {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.child.read(buf)?;
        if let Some(f) = &mut self.keep {
            f.write_all(&buf[..n])?;
        }
        self.bytes
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(n)
    }
}

fn sniff(args: SniffArgs) -> Result<u8> {
    use std::sync::atomic::Ordering;
    let user = parse_user(&args.user)?;
    let mut child_args: Vec<String> = vec!["capture".into()];
    child_args.extend(args.target.argv());
    child_args.extend([
        "-i".into(),
        args.interface.clone(),
        "-w".into(),
        "-".into(),
        "--pcapng".into(),
        "--user".into(),
        args.user.clone(),
    ]);
    if let Some(c) = args.count {
        child_args.extend(["-c".into(), c.to_string()]);
    }
    if let Some(f) = &args.filter {
        child_args.extend(["-f".into(), f.clone()]);
    }
    if let Some(d) = args.duration {
        child_args.extend(["--duration".into(), format!("{}ms", d.as_millis().max(1))]);
    }
    // The kept file is opened before any privilege is dropped.
    let keep = args
        .write
        .as_deref()
        .map(|p| create_private(p, args.overwrite))
        .transpose()?;
    // Ctrl-C reaches the child too (same process group): it stops and closes the stream,
    // and this process reports what it read. SIGTERM/SIGHUP are forwarded to it.
    meshsniff::capture::install_stop_signals();
    let exe = std::env::current_exe().context("cannot find this program to run the helper")?;
    let mut child = std::process::Command::new(exe)
        .args(&child_args)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot start the capture helper")?;
    let mut stdout = child.stdout.take().context("no helper output")?;
    // The helper writes its file header once the socket is open; if it ends before that, it
    // failed (its message is on stderr): say so instead of judging an empty capture.
    let mut first = vec![0u8; 1];
    if stdout.read(&mut first).unwrap_or(0) == 0 {
        let helper = child.wait().context("waiting for the capture helper")?;
        bail!("the capture helper stopped before capturing ({helper}); its message is above");
    }
    // A stop asked of this process (SIGTERM, SIGHUP; Ctrl-C reaches the helper directly)
    // goes to the helper even while no packet arrives.
    let helper_pid = child.id();
    std::thread::spawn(move || {
        while !meshsniff::capture::stop_requested() {
            std::thread::sleep(Duration::from_millis(100));
        }
        meshsniff::capture::terminate(helper_pid);
    });
    // The analyzer needs no privileges at all.
    if running_as_root() {
        meshsniff::capture::live::drop_privileges(user.0, user.1)?;
    }
    let bytes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let show_status = !args.quiet && io::stderr().is_terminal();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let status = show_status.then(|| {
        let (bytes, done) = (bytes.clone(), done.clone());
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(500));
                let line = status_line(
                    start.elapsed(),
                    bytes.load(Ordering::Relaxed),
                    LIVE_FLOWS.load(Ordering::Relaxed),
                    LIVE_PROBLEMS.load(Ordering::Relaxed),
                );
                let mut shown = STATUS_SHOWN.lock().unwrap_or_else(|e| e.into_inner());
                eprint!("\r\x1b[2K{line}");
                *shown = true;
            }
            let mut shown = STATUS_SHOWN.lock().unwrap_or_else(|e| e.into_inner());
            if *shown {
                eprint!("\r\x1b[2K");
                *shown = false;
            }
        })
    });
    let input = Input {
        name: format!("live:{}", args.interface),
        reader: Box::new(LiveTee {
            child: io::Cursor::new(first).chain(stdout),
            keep,
            bytes,
        }),
        size: None,
    };
    let check_args = CheckArgs {
        analyze: AnalyzeArgs {
            inputs: vec!["-".into()],
            format: args.format,
            quiet: true,
            color: args.color,
            max_flows: 65_536,
            idle_timeout: 120,
            collect_bytes: 16 * 1024,
            profile: args.profile,
            show_secrets: args.show_secrets,
        },
        fail_on: args.fail_on,
        expect: None,
    };
    let result = check_inputs(check_args, Some(vec![input]));
    done.store(true, Ordering::Relaxed);
    if let Some(t) = status {
        let _ = t.join();
    }
    let helper = child.wait().context("waiting for the capture helper")?;
    let code = result?;
    if !helper.success() && code == 0 {
        bail!("the capture helper failed ({helper}); see its message above");
    }
    Ok(code)
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|v| v.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// `UID[:GID]` (numbers; the helper runs where user names may not resolve).
fn parse_user(s: &str) -> Result<(u32, u32)> {
    let (u, g) = s.split_once(':').unwrap_or((s, s));
    match (u.parse(), g.parse()) {
        (Ok(u), Ok(g)) => Ok((u, g)),
        _ => bail!("--user `{s}`: expected numeric UID[:GID], e.g. 65534:65534"),
    }
}

fn progress_bar(size: Option<u64>, name: &str) -> ProgressBar {
    let bar = match size {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("{prefix} {spinner} {bytes} ({bytes_per_sec}) {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr_with_hz(8));
    bar.set_prefix(name.to_string());
    bar.enable_steady_tick(Duration::from_millis(250));
    let _ = io::stderr().flush();
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_clears_the_status_line_first_and_the_status_has_units() {
        let line = status_line(Duration::from_secs(12), 12_345_678, 1234, 1);
        assert_eq!(line, "12s · 12.3 MB captured · 1,234 flows · 1 problem");
        *STATUS_SHOWN.lock().unwrap() = true;
        let (mut out, mut status) = (Vec::new(), Vec::new());
        {
            let mut w = ClearsStatus {
                out: &mut out,
                status: &mut status,
            };
            w.write_all(b"     0  10.0.0.1:1 ...\n").unwrap();
            w.write_all(b"     1  10.0.0.1:2 ...\n").unwrap();
        }
        assert_eq!(status, b"\r\x1b[2K", "cleared once, before the first row");
        assert_eq!(out, b"     0  10.0.0.1:1 ...\n     1  10.0.0.1:2 ...\n");
        assert!(!*STATUS_SHOWN.lock().unwrap());
    }
}
