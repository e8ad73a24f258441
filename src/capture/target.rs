//! Role: which network namespace to capture in. A target is a process (`--pid`), a namespace
//! (`--netns NAME|PATH`), or a container (`--container ID`), found without any container
//! runtime socket by scanning `/proc/*/cgroup` for the ID in the path formats of containerd,
//! CRI-O and docker under cgroup v1 and v2. The result is a path to a namespace file.

use std::path::{Path, PathBuf};

/// What the user named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Pid(u32),
    Netns(String),
    Container(String),
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    #[error("process {0} does not exist (or /proc is not this host's: run with hostPID)")]
    NoProcess(u32),
    #[error(
        "network namespace `{0}` not found: give a name from `ip netns list` \
         (/var/run/netns/NAME) or a path such as /proc/PID/ns/net"
    )]
    NoNetns(String),
    #[error(
        "`{0}` is not a container ID: expected 12 to 64 hex digits, optionally as runtime://ID"
    )]
    BadContainerId(String),
    #[error(
        "no process of container {0} found in /proc/*/cgroup (is this the container's node, \
         and does this process see the host's /proc: hostPID?)"
    )]
    NoContainer(String),
    #[error("cannot read {path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error(
        "cannot open {path}: {err} (entering another process's network namespace needs root, \
         or CAP_SYS_ADMIN and CAP_SYS_PTRACE)"
    )]
    NoAccess { path: PathBuf, err: std::io::Error },
}

/// The container ID of `containerd://ID`, `cri-o://ID`, `docker://ID`, or a bare ID, as hex.
pub fn container_id(s: &str) -> Result<String, TargetError> {
    let id = s
        .rsplit_once("://")
        .map_or(s, |(_, id)| id)
        .to_ascii_lowercase();
    if (12..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id)
    } else {
        Err(TargetError::BadContainerId(s.to_string()))
    }
}

/// Does one line of `/proc/PID/cgroup` put the process in container `id`? The forms are
/// `…/cri-containerd-<id>.scope`, `…/crio-<id>.scope`, `…/docker-<id>.scope` (systemd cgroup
/// driver, v1 and v2) and `…/kubepods/…/<id>` or `…/docker/<id>` (cgroupfs driver). A short
/// (12+ digit) ID matches the start of the full one, as `docker ps` shows it.
pub fn cgroup_line_matches(line: &str, id: &str) -> bool {
    // hierarchy-ID:controllers:path
    let path = line.splitn(3, ':').nth(2).unwrap_or("");
    path.split('/').any(|seg| {
        let seg = seg.strip_suffix(".scope").unwrap_or(seg);
        let hex = ["cri-containerd-", "crio-", "docker-", "libpod-"]
            .iter()
            .find_map(|p| seg.strip_prefix(p))
            .unwrap_or(seg);
        hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) && hex.starts_with(id)
    })
}

/// The first process (lowest PID) whose cgroup names container `id`.
pub fn find_container_pid(proc_root: &Path, id: &str) -> Result<u32, TargetError> {
    let id = container_id(id)?;
    let dir = std::fs::read_dir(proc_root).map_err(|err| TargetError::Io {
        path: proc_root.to_path_buf(),
        err,
    })?;
    let mut pids: Vec<u32> = dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let Ok(text) = std::fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup"))
        else {
            continue; // exited meanwhile, or not ours to read
        };
        if text.lines().any(|l| cgroup_line_matches(l, &id)) {
            return Ok(pid);
        }
    }
    Err(TargetError::NoContainer(id))
}

impl Target {
    /// The namespace file to `setns` into.
    pub fn netns_path(&self) -> Result<PathBuf, TargetError> {
        match self {
            Target::Pid(pid) => {
                let p = PathBuf::from(format!("/proc/{pid}/ns/net"));
                match p.try_exists() {
                    Ok(true) => Ok(p),
                    Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => {
                        Err(TargetError::NoAccess { path: p, err })
                    }
                    _ => Err(TargetError::NoProcess(*pid)),
                }
            }
            Target::Netns(name) => {
                let p = if name.contains('/') {
                    PathBuf::from(name)
                } else {
                    Path::new("/var/run/netns").join(name)
                };
                if p.exists() {
                    Ok(p)
                } else {
                    Err(TargetError::NoNetns(name.clone()))
                }
            }
            Target::Container(id) => {
                let pid = find_container_pid(Path::new("/proc"), id)?;
                Target::Pid(pid).netns_path()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4f1d1ed4a7e8f6f3c5b2a1908d7e6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b";

    #[test]
    fn every_runtime_cgroup_form_is_recognised() {
        let lines = [
            format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-{ID}.scope"
            ),
            format!("11:pids:/kubepods.slice/kubepods-pod2.slice/crio-{ID}.scope"),
            format!("4:memory:/system.slice/docker-{ID}.scope"),
            format!("3:cpu,cpuacct:/kubepods/besteffort/pod3/{ID}"),
            format!("2:devices:/docker/{ID}"),
            // Seen from a helper pod with its own cgroup namespace (containerd's default on
            // cgroup v2): other containers' paths are relative to the helper's, with `..`.
            format!("0::/../../kubepods-besteffort-pod4.slice/cri-containerd-{ID}.scope"),
        ];
        for l in &lines {
            assert!(cgroup_line_matches(l, ID), "{l}");
            assert!(cgroup_line_matches(l, &ID[..12]), "short id: {l}");
        }
        assert!(!cgroup_line_matches(
            "0::/kubepods.slice/cri-containerd-0000000000000000000000000000000000000000000000000000000000000000.scope",
            ID
        ));
        assert!(!cgroup_line_matches("0::/user.slice/session-1.scope", ID));
        assert_eq!(container_id(&format!("containerd://{ID}")).unwrap(), ID);
        assert_eq!(
            container_id(&format!("cri-o://{}", ID.to_uppercase())).unwrap(),
            ID
        );
        assert!(container_id("nginx").is_err());
    }
}
