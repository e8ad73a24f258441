//! Role: the privileged capture helper's library side, and the one module where `unsafe` is
//! allowed (namespace entry, packet sockets, signals, privilege drop; each use is wrapped in a
//! safe function and carries its SAFETY note). It never parses traffic: packets go from the
//! socket to the capture file as they are.
//!
//! Order of work in [`run`]: resolve the target's namespace → open the socket there (and list
//! its interfaces) → drop privileges (bounding set emptied first) → install the seccomp
//! sandbox (`sandbox`) → write the header → stream packets, flushing whenever
//! the socket has nothing more ready → on any stop (count, duration, bytes, a signal, a closed
//! pipe) finish the file and report the kernel's packet and drop counts.

#![allow(unsafe_code)]

pub mod filter;
pub mod live;
pub mod sandbox;
pub mod target;
pub mod writer;

use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use live::{Interface, Live, LiveError};
pub use target::{Target, TargetError};

/// What `meshsniff capture` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub target: Option<Target>,
    pub interface: String,
    pub snaplen: u32,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub max_bytes: Option<u64>,
    pub pcapng: bool,
    /// Switch to this uid/gid once the socket is open.
    pub user: (u32, u32),
    /// A tcpdump-syntax filter (the subset `filter` compiles exactly), applied in the kernel.
    pub filter: Option<String>,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Live(#[from] LiveError),
    #[error("writing the capture failed: {0}")]
    Write(io::Error),
    #[error("reading from the packet socket failed: {0}")]
    Read(io::Error),
    #[error(transparent)]
    Filter(#[from] filter::FilterError),
    #[error(
        "capture filters apply to Ethernet and loopback interfaces and to `any`, not to `{0}` \
         (an IP-only device such as a tun): capture it through `-i any -f ...`"
    )]
    FilterLink(String),
}

/// Why the capture ended, and what the kernel counted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub written: u64,
    /// Packets the socket received, as PACKET_STATISTICS counts them (loopback duplicates
    /// included, as for tcpdump's "received by filter").
    pub received: u64,
    pub dropped: u64,
    pub bytes: u64,
    pub stopped_by: &'static str,
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// SIGINT, SIGTERM and SIGHUP end the capture cleanly (the file stays valid).
pub fn install_stop_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic (async-signal-safe); SA_RESTART is off
        // so a blocked recvmsg returns EINTR and the loop sees the flag.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

/// A stop was asked for (by a signal, or by [`request_stop`]).
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Asks process `pid` (the capture helper) to stop cleanly.
pub fn terminate(pid: u32) {
    // SAFETY: kill(2) with a pid this process spawned and a plain signal number.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
}

/// Lists the interfaces of the target's namespace (`--list-interfaces`).
pub fn list_interfaces(target: Option<&Target>) -> Result<Vec<Interface>, CaptureError> {
    let path = target.map(Target::netns_path).transpose()?;
    Ok(live::in_netns(path.as_deref(), live::interfaces)?)
}

/// Captures into `out` until a stop; `started` is told once the socket is open and
/// privileges are dropped.
pub fn run<W: Write>(
    opts: &Options,
    out: W,
    started: &mut dyn FnMut(&Live),
) -> Result<Stats, CaptureError> {
    let path = opts.target.as_ref().map(Target::netns_path).transpose()?;
    let sock = Live::open(path.as_deref(), &opts.interface, opts.snaplen)?;
    if let Some(expr) = &opts.filter {
        let link = match sock.framing {
            live::Framing::Raw(1) => filter::Link::Ethernet,
            live::Framing::Cooked => filter::Link::Cooked,
            live::Framing::Raw(_) => return Err(CaptureError::FilterLink(opts.interface.clone())),
        };
        let prog = filter::compile(expr, link, opts.snaplen)?;
        sock.attach_filter(&prog).map_err(CaptureError::Read)?;
    }
    // The test hook is read while the environment can still be trusted to mean something:
    // before the sandbox, which it then tries.
    let selftest = std::env::var_os(sandbox::SELFTEST_ENV).is_some_and(|v| v == "1");
    live::drop_privileges(opts.user.0, opts.user.1)?;
    sandbox::install()?;
    started(&sock);
    let mut w = writer::CaptureWriter::new(
        out,
        opts.pcapng,
        sock.framing,
        opts.snaplen,
        &sock.interfaces,
        sock.interface.as_ref(),
    )
    .map_err(CaptureError::Write)?;
    let mut stats = Stats::default();
    let write_err = |e: io::Error, stats: &mut Stats| {
        if e.kind() == io::ErrorKind::BrokenPipe {
            stats.stopped_by = "closed pipe";
            Ok(())
        } else {
            Err(CaptureError::Write(e))
        }
    };
    if let Err(e) = w.flush() {
        write_err(e, &mut stats)?;
        return Ok(stats);
    }
    let deadline = opts.duration.map(|d| Instant::now() + d);
    // Large enough for GRO/TSO super-packets on veth and loopback.
    let mut buf = vec![0u8; 256 * 1024];
    let mut pending = false;
    loop {
        if stop_requested() {
            stats.stopped_by = "signal";
            break;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            stats.stopped_by = "duration";
            break;
        }
        // Block only when everything so far is on disk.
        let got = sock.recv(&mut buf, !pending).map_err(CaptureError::Read)?;
        let Some(p) = got else {
            if pending {
                pending = false;
                if let Err(e) = w.flush() {
                    write_err(e, &mut stats)?;
                    break;
                }
                if selftest {
                    // Packets are on disk: a forbidden call must end the process here.
                    return Err(CaptureError::Write(sandbox::forbidden_call()));
                }
            }
            continue;
        };
        if let Err(e) = w.packet(&p) {
            write_err(e, &mut stats)?;
            break;
        }
        pending = true;
        stats.written += 1;
        if opts.count.is_some_and(|c| stats.written >= c) {
            stats.stopped_by = "count";
            break;
        }
        if opts.max_bytes.is_some_and(|m| w.bytes >= m) {
            stats.stopped_by = "max-bytes";
            break;
        }
    }
    if stats.stopped_by != "closed pipe" {
        if let Err(e) = w.flush() {
            write_err(e, &mut stats)?;
        }
    }
    stats.bytes = w.bytes;
    if let Ok((received, dropped)) = sock.stats() {
        stats.received = received;
        stats.dropped = dropped;
    }
    Ok(stats)
}
