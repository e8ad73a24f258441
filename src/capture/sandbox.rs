//! Role: what the capture helper keeps once its socket is open. While still privileged it
//! empties its capability bounding set (so nothing it could ever execute regains a
//! capability); after the drop it installs a seccomp filter, classic BPF built here, that
//! allows only the system calls streaming makes (found by strace'ing every output kind and
//! stop; docs/capture.md lists them and why) and kills the process on anything else.

#![allow(unsafe_code)]

use super::live::LiveError;
use std::io;

/// Env var for the test hook: `1` makes the helper try a forbidden call (`socket()`) once
/// the sandbox is in place and a packet is on disk. Read before the sandbox is installed.
pub const SELFTEST_ENV: &str = "MESHSNIFF_SECCOMP_SELFTEST";

fn sys(what: &'static str) -> impl FnOnce(io::Error) -> LiveError {
    move |err| LiveError::Sys { what, err }
}

/// Empties the capability bounding set (every capability up to `cap_last_cap`) and the
/// ambient set. Needs CAP_SETPCAP, so it runs before the uid changes.
pub fn clear_bounding_set() -> Result<(), LiveError> {
    // Older kernels lack the file; PR_CAPBSET_DROP says EINVAL past the last capability.
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<libc::c_ulong>().ok())
        .unwrap_or(63);
    for cap in 0..=last {
        // SAFETY: prctl with integer arguments only.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if r < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINVAL) {
                break; // past the kernel's last capability
            }
            return Err(LiveError::Sys {
                what: "prctl(PR_CAPBSET_DROP) (clearing the capability bounding set needs \
                       CAP_SETPCAP: run as root, or keep SETPCAP in the container)",
                err,
            });
        }
    }
    // SAFETY: as above. EINVAL only on kernels without ambient capabilities (< 4.3).
    let r = unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    if r < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINVAL) {
        return Err(sys("prctl(PR_CAP_AMBIENT_CLEAR_ALL)")(
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64: EM_X86_64 | 64-bit | little-endian
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64

/// Offsets in `struct seccomp_data`: nr, arch, then args[6] (u64 each) from 16. The low word
/// of an argument is at its offset on these little-endian targets.
const NR: u32 = 0;
const ARCH: u32 = 4;
const fn arg_lo(i: u32) -> u32 {
    16 + 8 * i
}

const RET_KILL: u32 = libc::SECCOMP_RET_KILL_PROCESS;
const RET_ALLOW: u32 = libc::SECCOMP_RET_ALLOW;

/// The system calls the streaming loop and the exit path make, allowed with any argument.
/// Each is here for a reason seen in strace (docs/capture.md, "Sandbox").
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
const ALLOWED: &[libc::c_long] = &[
    libc::SYS_recvmsg,    // a packet, with its address and control messages
    libc::SYS_recvfrom,   // recv() on the same socket (libc's recv is recvfrom)
    libc::SYS_write,      // the capture (file or pipe) and the stderr lines
    libc::SYS_writev,     // buffered writers may write two slices at once
    libc::SYS_getsockopt, // PACKET_STATISTICS at the end
    libc::SYS_close,      // descriptors dropped on the way out
    libc::SYS_munmap,     // buffers freed
    libc::SYS_mremap,     // a buffer grown
    libc::SYS_brk,        // the heap
    libc::SYS_madvise,    // the allocator returning memory
    libc::SYS_futex,      // std's locks (stdout/stderr) when contended
    libc::SYS_sched_yield,
    libc::SYS_clock_gettime, // Instant::now when the vDSO is not used
    libc::SYS_gettimeofday,
    libc::SYS_clock_nanosleep,
    libc::SYS_nanosleep,
    libc::SYS_restart_syscall, // a sleep restarted after a signal
    libc::SYS_rt_sigreturn,    // return from the SIGINT/SIGTERM/SIGHUP handler
    libc::SYS_rt_sigprocmask,
    libc::SYS_sigaltstack, // std removes its stack-overflow stack when the thread ends
    libc::SYS_exit,
    libc::SYS_exit_group,
];

/// Builds the filter: wrong architecture (or x32 numbers) → kill; an allowed call → allow;
/// `mmap`/`mprotect` only without PROT_EXEC (no new code); `fcntl` only F_GETFD/F_GETFL
/// (std's descriptor checks); anything else → kill.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn program() -> Vec<libc::sock_filter> {
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let ld = |off: u32| stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, off);
    let jeq = |k: u32, jt: u8, jf: u8| jump(libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K, k, jt, jf);
    let ret = |k: u32| stmt(libc::BPF_RET | libc::BPF_K, k);
    let mut p = vec![ld(ARCH), jeq(AUDIT_ARCH, 1, 0), ret(RET_KILL), ld(NR)];
    if cfg!(target_arch = "x86_64") {
        // x32 system calls carry the x86_64 arch with bit 30 set in the number.
        p.push(jump(
            libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K,
            0x4000_0000,
            0,
            1,
        ));
        p.push(ret(RET_KILL));
    }
    for &nr in ALLOWED {
        p.push(jeq(nr as u32, 0, 1));
        p.push(ret(RET_ALLOW));
    }
    for nr in [libc::SYS_mmap, libc::SYS_mprotect] {
        p.push(jeq(nr as u32, 0, 4));
        p.push(ld(arg_lo(2))); // prot
        p.push(jump(
            libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K,
            libc::PROT_EXEC as u32,
            0,
            1,
        ));
        p.push(ret(RET_KILL));
        p.push(ret(RET_ALLOW));
    }
    p.push(jeq(libc::SYS_fcntl as u32, 0, 5));
    p.push(ld(arg_lo(1))); // cmd
    p.push(jeq(libc::F_GETFD as u32, 2, 0));
    p.push(jeq(libc::F_GETFL as u32, 1, 0));
    p.push(ret(RET_KILL));
    p.push(ret(RET_ALLOW));
    p.push(ret(RET_KILL));
    p
}

/// Installs the filter on every thread of the process (TSYNC). `no_new_privs` is already set
/// by the privilege drop (seccomp requires it without CAP_SYS_ADMIN); set again here so this
/// function stands on its own.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub fn install() -> Result<(), LiveError> {
    let prog = program();
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_ptr() as *mut libc::sock_filter,
    };
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
        return Err(sys("prctl(PR_SET_NO_NEW_PRIVS)")(io::Error::last_os_error()));
    }
    // SAFETY: fprog points to `prog`, alive for the call; the kernel copies the program.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            libc::SECCOMP_FILTER_FLAG_TSYNC,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(sys("seccomp(SECCOMP_SET_MODE_FILTER)")(if r < 0 {
            io::Error::last_os_error()
        } else {
            io::Error::other(format!("thread {r} could not be synchronised"))
        }));
    }
    Ok(())
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn install() -> Result<(), LiveError> {
    Err(sys("seccomp")(io::Error::other(
        "the capture sandbox is built for x86_64 and aarch64 only",
    )))
}

/// The test hook: a call the sandbox forbids. Returns only if the sandbox let it through.
pub fn forbidden_call() -> io::Error {
    // SAFETY: socket() with constant arguments; the descriptor, if any, is closed at once.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    if fd >= 0 {
        // SAFETY: fd was just returned by socket().
        unsafe { libc::close(fd) };
    }
    io::Error::other("seccomp self-test: socket() was allowed, the sandbox is not in place")
}

#[cfg(all(test, any(target_arch = "x86_64", target_arch = "aarch64")))]
mod tests {
    /// Every jump lands inside the program, and the last instruction returns.
    #[test]
    fn jumps_stay_inside_the_program_and_it_ends_in_a_return() {
        let p = super::program();
        for (i, insn) in p.iter().enumerate() {
            if u32::from(insn.code) & 0x07 == libc::BPF_JMP {
                assert!(
                    i + 1 + usize::from(insn.jt.max(insn.jf)) < p.len(),
                    "insn {i}"
                );
            }
        }
        let last = p.last().unwrap();
        assert_eq!(
            (u32::from(last.code), last.k),
            (libc::BPF_RET | libc::BPF_K, super::RET_KILL)
        );
    }
}
