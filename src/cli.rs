//! Role: small pieces both binaries (`meshsniff`, `kubectl-meshsniff`) need at their command
//! line: durations as users write them, and output files only their owner can read (captures
//! hold credentials: every file meshsniff writes is created 0600).

use std::fs::File;
use std::time::Duration;

/// `30s`, `5m`, `1h`, `250ms`, or a bare number of seconds.
pub fn parse_duration(s: &str) -> std::result::Result<Duration, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a number with s, m or h, e.g. 30s"))?;
    let secs = match unit {
        "s" | "" => n,
        "ms" => n / 1000.0,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use s, m or h)")),
    };
    if !(secs.is_finite() && secs > 0.0) {
        return Err(format!("`{s}`: must be more than zero"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("`{s}`: too long"))
}

/// Why an output file was not opened. Each message says what to do instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    #[error(
        "{path} already exists: choose a new name, remove it, or pass --overwrite to replace it"
    )]
    Exists { path: String },
    #[error(
        "{path} is a symbolic link: refusing to write through it (even with --overwrite);          remove the link or choose another name"
    )]
    Symlink { path: String },
    #[error("{path} is a directory: name a file inside it, e.g. {path}/capture.pcapng")]
    Directory { path: String },
    #[error("{path} is not a regular file ({what}): refusing to replace it; choose another name")]
    NotRegular { path: String, what: &'static str },
    #[error(
        "{path} belongs to uid {owner}, not to this user (uid {me}): refusing to replace          someone else's file; remove it or choose another name"
    )]
    NotOurs { path: String, owner: u32, me: u32 },
    #[error(
        "{path} has {links} hard links: replacing it would change the other names too;          remove it or choose another name"
    )]
    HardLinked { path: String, links: u64 },
    #[error("cannot create {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// Creates `path` for writing with mode 0600, never through a symlink and never onto an
/// existing file (`O_NOFOLLOW | O_CREAT | O_EXCL`). With `overwrite`, an existing regular file
/// this user owns (one link, not a symlink) is replaced: opened without following links,
/// checked on the open descriptor (no race with a swap of the name), set to 0600, truncated.
/// The mode is checked with fstat afterwards whatever the umask.
pub fn create_private(path: &str, overwrite: bool) -> Result<File, CreateError> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let io = |source| CreateError::Io {
        path: path.to_string(),
        source,
    };
    let p = path.to_string();
    let fresh = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    let file = match fresh {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let meta = std::fs::symlink_metadata(path).map_err(io)?;
            let ft = meta.file_type();
            if is_dev_null(&meta) {
                // `-w /dev/null` discards, as with tcpdump: the null device itself (not a link
                // to it), opened without creating or truncating anything.
                return std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(path)
                    .map_err(io);
            }
            if ft.is_symlink() {
                return Err(CreateError::Symlink { path: p });
            }
            if ft.is_dir() {
                return Err(CreateError::Directory { path: p });
            }
            if !overwrite {
                return Err(CreateError::Exists { path: p });
            }
            // O_NONBLOCK: a FIFO swapped in after the check must not hang the open; the
            // checks below are on what was actually opened.
            let f = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
                .open(path)
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::ELOOP) => CreateError::Symlink { path: p.clone() },
                    Some(libc::EISDIR) => CreateError::Directory { path: p.clone() },
                    _ => io(e),
                })?;
            let m = f.metadata().map_err(io)?;
            if !m.file_type().is_file() {
                return Err(CreateError::NotRegular {
                    path: p,
                    what: file_kind(&m.file_type()),
                });
            }
            let me = effective_uid().map_err(io)?;
            if m.uid() != me {
                return Err(CreateError::NotOurs {
                    path: p,
                    owner: m.uid(),
                    me,
                });
            }
            if m.nlink() != 1 {
                return Err(CreateError::HardLinked {
                    path: p,
                    links: m.nlink(),
                });
            }
            f.set_permissions(std::fs::Permissions::from_mode(0o600))
                .map_err(io)?;
            f.set_len(0).map_err(io)?;
            f
        }
        Err(e) => {
            return Err(match e.raw_os_error() {
                Some(libc::EISDIR) => CreateError::Directory { path: p },
                _ => io(e),
            });
        }
    };
    // A umask can only take bits away from 0600 (e.g. 0400 leaves 0200): set it exactly.
    let mode = file.metadata().map_err(io)?.mode() & 0o7777;
    if mode != 0o600 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
        let mode = file.metadata().map_err(io)?.mode() & 0o7777;
        if mode != 0o600 {
            return Err(io(std::io::Error::other(format!(
                "its mode is {mode:o} after setting 0600"
            ))));
        }
    }
    Ok(file)
}

use std::os::unix::fs::PermissionsExt;

/// The character device 1:3 (Linux's /dev/null), whatever the name it is reached by.
fn is_dev_null(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    m.file_type().is_char_device() && m.rdev() == libc::makedev(1, 3)
}

fn file_kind(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_block_device() || ft.is_char_device() {
        "a device"
    } else {
        "not a plain file"
    }
}

/// This process's effective uid, from /proc (the library denies `unsafe`, so no geteuid()).
fn effective_uid() -> std::io::Result<u32> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| std::io::Error::other("no effective uid in /proc/self/status"))
}

#[cfg(test)]
mod tests {
    use super::{CreateError, create_private};
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn scratch(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("meshsniff-cli-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Issue 11, "files we write": never through a symlink, never onto an existing file unless
    /// asked, always 0600.
    #[test]
    fn issue_11_private_files_refuse_symlinks_existing_files_and_directories() {
        let d = scratch("create");
        let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
        // A planted symlink: refused with and without --overwrite; its target untouched.
        let target = d.join("victim");
        std::fs::write(&target, b"precious").unwrap();
        let link = d.join("out.pcap");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        for ow in [false, true] {
            let e = create_private(&s(&link), ow).unwrap_err();
            assert!(matches!(e, CreateError::Symlink { .. }), "{e}");
            assert!(e.to_string().contains("symbolic link"), "{e}");
        }
        // A dangling symlink (the classic /tmp attack: the target does not exist yet).
        let dangling = d.join("dangling.pcap");
        std::os::unix::fs::symlink(d.join("created-by-us"), &dangling).unwrap();
        assert!(matches!(
            create_private(&s(&dangling), true),
            Err(CreateError::Symlink { .. })
        ));
        assert!(!d.join("created-by-us").exists());
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        // An existing 0666 file: refused; replaced with --overwrite, then 0600 and empty.
        let old = d.join("old.pcap");
        std::fs::write(&old, b"old capture").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o666)).unwrap();
        let e = create_private(&s(&old), false).unwrap_err();
        assert!(e.to_string().contains("--overwrite"), "{e}");
        assert_eq!(std::fs::read(&old).unwrap(), b"old capture");
        drop(create_private(&s(&old), true).unwrap());
        let m = std::fs::metadata(&old).unwrap();
        assert_eq!((m.mode() & 0o7777, m.len()), (0o600, 0));
        // A hard link to someone's file is not ours to truncate.
        let other = d.join("hardlinked.pcap");
        std::fs::hard_link(&target, &other).unwrap();
        assert!(matches!(
            create_private(&s(&other), true),
            Err(CreateError::HardLinked { links: 2, .. })
        ));
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        // A directory, with and without --overwrite.
        for ow in [false, true] {
            let e = create_private(&s(&d), ow).unwrap_err();
            assert!(matches!(e, CreateError::Directory { .. }), "{e}");
        }
        // The null device discards, as with tcpdump; nothing else that exists is opened.
        drop(create_private("/dev/null", false).unwrap());
        // A new file is 0600.
        let new = d.join("new.pcap");
        drop(create_private(&s(&new), false).unwrap());
        assert_eq!(std::fs::metadata(&new).unwrap().mode() & 0o7777, 0o600);
        let _ = std::fs::remove_dir_all(d);
    }

    #[test]
    fn durations_as_users_write_them_and_nonsense_refused() {
        use std::time::Duration;
        assert_eq!(super::parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(super::parse_duration("1.5m"), Ok(Duration::from_secs(90)));
        assert_eq!(
            super::parse_duration("250ms"),
            Ok(Duration::from_millis(250))
        );
        assert_eq!(super::parse_duration("2h"), Ok(Duration::from_secs(7200)));
        for bad in ["0s", "-1s", "5d", "m", "", "99999999999999999999999999h"] {
            assert!(super::parse_duration(bad).is_err(), "{bad}");
        }
    }
}
