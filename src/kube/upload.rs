//! Role: `kubectl meshsniff --upload`, for clusters that cannot pull the helper image
//! (air-gapped, mirrored registries): the helper pod (or ephemeral container) runs any image
//! with `sh` and `cat` (busybox, alpine, debian) idling for the normal helper's bound; the local
//! static helper is written into it with `kubectl exec -i … sh -c 'cat > …'`, its SHA-256 is
//! checked in the pod (`sha256sum`, else read back with `cat` and hashed here), then it runs.

use super::manifest::{self, Helper};
use super::{KubeError, Kubectl};
use serde_json::{Value, json};
use sha2::Digest;
use std::path::{Path, PathBuf};

/// The image `--upload` runs when `--image` is not given: small, has `sh`, `cat`, `sha256sum`.
pub const DEFAULT_IMAGE: &str = "busybox:1.36";
/// Where the helper is written in the container (every image of this kind has /tmp).
pub const HELPER_PATH: &str = "/tmp/meshsniff";
/// What the verification prints when the image has no `sha256sum`.
pub const NO_SHA256SUM: &str = "meshsniff:no-sha256sum";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    #[error(
        "--upload: no helper binary beside the plugin ({0} does not exist); give \
         --helper-binary PATH (the static `meshsniff` of the release archive, or \
         release/build.sh's release/out/archive/meshsniff)"
    )]
    NotBeside(String),
    #[error("--helper-binary {path}: {err}")]
    Read { path: String, err: std::io::Error },
    #[error(
        "--helper-binary {0}: not an x86-64 Linux executable (the helper runs on the node; use \
         the release archive's static meshsniff)"
    )]
    NotExecutable(String),
    #[error("could not copy the helper into {label}: {stderr}")]
    Copy { label: String, stderr: String },
    #[error(
        "the helper copied into {label} has SHA-256 {got}, not {want} ({path}): refusing to run \
         it (the copy was cut short or altered on the way)"
    )]
    Mismatch {
        label: String,
        path: String,
        got: String,
        want: String,
    },
    #[error(transparent)]
    Kube(#[from] KubeError),
}

/// The local helper binary, read once and hashed before anything is created.
#[derive(Debug, Clone)]
pub struct LocalHelper {
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub sha256: String,
    /// The ELF interpreter of a dynamically linked binary (`None`: static, runs anywhere).
    pub interpreter: Option<String>,
}

/// How the copy in the pod was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// `sha256sum` in the pod.
    InPod,
    /// No `sha256sum` there: read back with `cat` and hashed by the plugin.
    ReadBack,
}

pub fn sha256_hex(data: &[u8]) -> String {
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `meshsniff` beside the plugin's executable (the krew archive's and `cargo install`'s
/// layout).
pub fn default_helper_binary(plugin_exe: &Path) -> Result<PathBuf, UploadError> {
    let p = plugin_exe
        .parent()
        .map(|d| d.join("meshsniff"))
        .unwrap_or_else(|| PathBuf::from("meshsniff"));
    if p.is_file() {
        Ok(p)
    } else {
        Err(UploadError::NotBeside(p.display().to_string()))
    }
}

impl LocalHelper {
    pub fn load(path: &Path) -> Result<LocalHelper, UploadError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|err| UploadError::Read {
            path: shown.clone(),
            err,
        })?;
        let interpreter = elf_interpreter(&bytes).ok_or(UploadError::NotExecutable(shown))?;
        Ok(LocalHelper {
            path: path.to_path_buf(),
            sha256: sha256_hex(&bytes),
            bytes,
            interpreter,
        })
    }
}

/// For a 64-bit little-endian x86-64 ELF executable: `Some(None)` when static, `Some(Some(
/// interpreter))` when dynamically linked; `None` for anything else.
pub fn elf_interpreter(b: &[u8]) -> Option<Option<String>> {
    let u16_at = |o: usize| Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?));
    let u32_at = |o: usize| Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?));
    // Magic, ELFCLASS64, ELFDATA2LSB; ET_EXEC or ET_DYN (static-pie); EM_X86_64.
    if b.get(..6)? != b"\x7fELF\x02\x01" || !matches!(u16_at(16)?, 2 | 3) || u16_at(18)? != 62 {
        return None;
    }
    let phoff = usize::try_from(u64_at(32)?).ok()?;
    let phentsize = usize::from(u16_at(54)?);
    for k in 0..usize::from(u16_at(56)?) {
        let ph = phoff.checked_add(k.checked_mul(phentsize)?)?;
        if u32_at(ph)? == 3 {
            // PT_INTERP: a NUL-terminated path.
            let off = usize::try_from(u64_at(ph + 8)?).ok()?;
            let len = usize::try_from(u64_at(ph + 32)?).ok()?;
            let raw = b.get(off..off.checked_add(len)?)?;
            let s = String::from_utf8_lossy(raw)
                .trim_end_matches('\0')
                .to_string();
            return Some(Some(s));
        }
    }
    Some(None)
}

/// The image `--upload` runs: the user's `--image`, except the default helper image, which
/// has no shell (so `--upload` without `--image` runs [`DEFAULT_IMAGE`]).
pub fn image(given: &str) -> String {
    if given == manifest::DEFAULT_IMAGE {
        DEFAULT_IMAGE.to_string()
    } else {
        given.to_string()
    }
}

/// The main process of an upload helper: `sh` waiting for the helper's own bound (the pod's
/// activeDeadlineSeconds stays too), ending at once on SIGTERM (PID 1 ignores a signal it has
/// no handler for, hence the trap).
pub fn idle_command(seconds: u64) -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!("trap 'exit 0' TERM INT; sleep {seconds} & wait"),
    ]
}

/// manifest::helper_pod's pod, its container idling in `sh` instead of the helper image's
/// `/meshsniff idle`; everything else (node, privileges, bounds, labels) unchanged.
pub fn helper_pod(mut pod: Value, h: &Helper) -> Value {
    if let Some(c) = pod.pointer_mut("/spec/containers/0") {
        c["command"] = json!(idle_command(h.deadline_secs()));
    }
    pod
}

/// manifest::ephemeral_container's container, idling in `sh`.
pub fn ephemeral_container(mut c: Value, h: &Helper) -> Value {
    c["command"] = json!(idle_command(h.deadline_secs()));
    c
}

/// The commands run through `exec` (after `exec -i POD -n NS -c C --`): write (to a temporary
/// name, then renamed: a cut copy is never at the helper's path), and checksum.
pub fn write_argv() -> Vec<String> {
    let part = format!("{HELPER_PATH}.part");
    vec![
        "sh".into(),
        "-c".into(),
        format!("cat > {part} && chmod 700 {part} && mv -f {part} {HELPER_PATH}"),
    ]
}

pub fn checksum_argv() -> Vec<String> {
    vec![
        "sh".into(),
        "-c".into(),
        format!(
            "if command -v sha256sum >/dev/null 2>&1; then sha256sum {HELPER_PATH}; \
             else echo {NO_SHA256SUM}; fi"
        ),
    ]
}

/// Copies the helper in through `exec` (the argv prefix up to `--`), checks its SHA-256, and
/// says how. `label` names the pod in messages.
pub fn install(
    kubectl: &Kubectl,
    exec: &[String],
    label: &str,
    helper: &LocalHelper,
) -> Result<Checked, UploadError> {
    let with = |tail: Vec<String>| {
        let mut v = exec.to_vec();
        v.extend(tail);
        v
    };
    kubectl
        .run(&with(write_argv()), Some(&helper.bytes))
        .map_err(|e| match e {
            KubeError::Failed { stderr, .. } => UploadError::Copy {
                label: label.to_string(),
                stderr: super::checks::printable(&stderr),
            },
            other => other.into(),
        })?;
    let out = kubectl.run(&with(checksum_argv()), None)?;
    let text = String::from_utf8_lossy(&out);
    let (got, how) = if text.trim() == NO_SHA256SUM {
        let back = kubectl.run(&with(vec!["cat".into(), HELPER_PATH.into()]), None)?;
        (sha256_hex(&back), Checked::ReadBack)
    } else {
        // `HEX  PATH`.
        let hex = text.split_whitespace().next().unwrap_or("").to_string();
        (hex, Checked::InPod)
    };
    if got != helper.sha256 {
        return Err(UploadError::Mismatch {
            label: label.to_string(),
            path: helper.path.display().to_string(),
            got: super::checks::printable(&got),
            want: helper.sha256.clone(),
        });
    }
    Ok(how)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elf_headers_are_read_or_refused() {
        let exe = std::env::current_exe().unwrap();
        let bytes = std::fs::read(&exe).unwrap();
        // This test binary is x86-64 Linux, static or not.
        assert!(elf_interpreter(&bytes).is_some());
        assert_eq!(elf_interpreter(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(elf_interpreter(&bytes[..40]), None);
        let mut arm = bytes.clone();
        arm[18] = 183; // EM_AARCH64
        assert_eq!(elf_interpreter(&arm), None);
    }

    #[test]
    fn the_default_helper_image_is_never_the_upload_image() {
        assert_eq!(image(manifest::DEFAULT_IMAGE), DEFAULT_IMAGE);
        assert_eq!(image("alpine:3.20"), "alpine:3.20");
        assert_eq!(
            idle_command(7),
            ["sh", "-c", "trap 'exit 0' TERM INT; sleep 7 & wait"]
        );
    }
}
