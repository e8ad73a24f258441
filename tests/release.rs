//! Role: the release artifacts, tested for real: release/oci-image.py's OCI archives imported
//! with `ctr -n k8s.io images import` into a containerd of each test's own (never the default
//! socket) and run under runc; the helper image (release/build.sh's, and one from the test
//! build) answers in it; `--upload`'s commands in a real busybox container; the workflow's
//! skopeo push keeps the digest on a loopback registry; the workflow parses.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn oci_image() -> PathBuf {
    common::repo().join("release/oci-image.py")
}

/// Runs release/oci-image.py with `args`; returns the digest it printed.
fn build_image(args: &[&str]) -> String {
    let out = Command::new("python3")
        .arg(oci_image())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oci-image.py {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71,
        "{digest}"
    );
    digest
}

/// Names in the outer tar of an archive, and one member's bytes.
fn tar_member(archive: &Path, member: &str) -> Vec<u8> {
    let out = Command::new("tar")
        .arg("-xOf")
        .arg(archive)
        .arg(member)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{member} not in {}",
        archive.display()
    );
    out.stdout
}

/// A directory of this test, removed when dropped.
struct Tmp(PathBuf);

impl Tmp {
    fn new(name: &str) -> Tmp {
        let d = std::env::temp_dir().join(format!("meshsniff-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Tmp(d)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(data))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A containerd of this test alone: its own root, state, sockets, runc root and FIFO dir under
/// one temp dir. Dropped: killed, its mounts undone, its dir removed.
struct Containerd {
    dir: PathBuf,
    child: Option<Child>,
}

impl Containerd {
    fn start(name: &str) -> Containerd {
        // Tests run in parallel in one process: a number of its own for each containerd.
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "meshsniff-containerd-{name}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let d = dir.display();
        // The CRI plugin is off: it would want CNI and a sandbox image; ctr needs neither.
        let config = format!(
            "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
             [grpc]\n  address = \"{d}/c.sock\"\n[ttrpc]\n  address = \"{d}/c.sock.ttrpc\"\n\
             [debug]\n  address = \"{d}/debug.sock\"\n[metrics]\n  address = \"\"\n\
             [plugins.\"io.containerd.grpc.v1.cri\"]\n  disable = true\n"
        );
        std::fs::write(dir.join("config.toml"), config).unwrap();
        let log = std::fs::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start containerd");
        let c = Containerd {
            dir,
            child: Some(child),
        };
        let start = Instant::now();
        loop {
            if c.ctr(&["version"]).status.success() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "containerd did not answer in 20 s: {}",
                std::fs::read_to_string(c.dir.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        c
    }

    fn ctr(&self, args: &[&str]) -> Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.dir.join("c.sock"))
            .args(["-n", "k8s.io"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ctr_ok(&self, args: &[&str]) -> String {
        let out = self.ctr(args);
        assert!(
            out.status.success(),
            "ctr {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `ctr run --rm IMAGE ID [ARGS]` with runc's state and the FIFOs in this test's dir.
    fn run(&self, image: &str, id: &str, args: &[&str]) -> Output {
        let runc_root = self.dir.join("runc");
        let fifo = self.dir.join("fifo");
        let mut v = vec![
            "run",
            "--rm",
            "--runc-root",
            runc_root.to_str().unwrap(),
            "--fifo-dir",
            fifo.to_str().unwrap(),
            image,
            id,
        ];
        v.extend_from_slice(args);
        self.ctr(&v)
    }
}

impl Containerd {
    /// `ctr task exec` in a running container, `stdin` fed and closed (as `kubectl exec -i`).
    fn exec(&self, container: &str, exec_id: &str, args: &[String], stdin: &[u8]) -> Output {
        common::output_with_stdin(
            Command::new("ctr")
                .arg("--address")
                .arg(self.dir.join("c.sock"))
                .args(["-n", "k8s.io", "task", "exec", "--fifo-dir"])
                .arg(self.dir.join("fifo"))
                .args(["--exec-id", exec_id, container])
                .args(args),
            stdin,
        )
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Containers a failed test left running: killed and deleted while containerd is up.
        if self.child.is_some() {
            let tasks = self.ctr(&["task", "ls", "-q"]);
            for id in String::from_utf8_lossy(&tasks.stdout).split_whitespace() {
                let _ = self.ctr(&["task", "kill", "-s", "KILL", id]);
                std::thread::sleep(Duration::from_millis(200));
                let _ = self.ctr(&["task", "delete", "-f", id]);
            }
            let containers = self.ctr(&["container", "ls", "-q"]);
            for id in String::from_utf8_lossy(&containers.stdout).split_whitespace() {
                let _ = self.ctr(&["container", "delete", id]);
            }
        }
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let start = Instant::now();
            while c.try_wait().ok().flatten().is_none() && start.elapsed() < Duration::from_secs(5)
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        // Snapshot mounts of a container that did not end: deepest first.
        let prefix = self.dir.display().to_string();
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| m.starts_with(&prefix))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = Command::new("umount").args(["-l", &m]).status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Root, containerd, ctr, runc and python3, else skip (a failure under `.ci/run`).
fn can_run(test: &str) -> bool {
    common::root_or_skip(test)
        && common::have(test, "containerd")
        && common::have(test, "ctr")
        && common::have(test, "runc")
        && common::have(test, "python3")
}

/// The generic builder: same input, same bytes; the digest printed is the manifest's; ctr
/// imports the archive under NAME:TAG; the container runs as the given user, in the given
/// directory, with the given environment; every file is root's, with its mode kept and the
/// fixed mtime. A static busybox is the image's content.
#[test]
fn oci_archive_is_reproducible_and_runs_in_containerd() {
    let test = "oci_archive_is_reproducible_and_runs_in_containerd";
    if !can_run(test) || !common::have(test, "busybox") {
        return;
    }
    let busybox = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v busybox"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let tmp = Tmp::new("oci-files");
    let rootfs = tmp.path().join("rootfs");
    for d in ["bin", "tmp", "work"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy(busybox.trim(), rootfs.join("bin/busybox")).unwrap();
    let ldd = Command::new("ldd")
        .arg(rootfs.join("bin/busybox"))
        .output()
        .unwrap();
    if String::from_utf8_lossy(&ldd.stdout).contains("=>") {
        common::skip(test, "busybox here is not a static build");
        return;
    }
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    std::fs::write(rootfs.join("work/note"), "left by the test\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(rootfs.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::set_permissions(
        rootfs.join("work/note"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    // Owned by someone else here: the layer must say root.
    std::os::unix::fs::chown(rootfs.join("work/note"), Some(1234), Some(1234)).unwrap();

    let rootfs_s = rootfs.to_str().unwrap();
    let archive = |out: &Path, tag: &str| {
        build_image(&[
            "--name",
            "example.test/meshsniff/busybox",
            "--tag",
            tag,
            "--rootfs",
            rootfs_s,
            "--entrypoint",
            "/bin/sh",
            "--cmd",
            r#"["-c","id -u; pwd; echo $GREETING; stat -c '%a %u:%g %Y %n' /tmp /work/note /bin/busybox"]"#,
            "--user",
            "65534",
            "--env",
            "GREETING=hello from the layer",
            "--workdir",
            "/work",
            "-o",
            out.to_str().unwrap(),
        ])
    };
    let a = tmp.path().join("a.tar");
    let b = tmp.path().join("b.tar");
    let c = tmp.path().join("c.tar");
    let da = archive(&a, "1.0");
    let db = archive(&b, "1.0");
    let dc = archive(&c, "2.0");
    assert_eq!(da, db);
    assert_eq!(
        common::read(&a),
        common::read(&b),
        "two builds of the same input differ"
    );
    // The tag lives in index.json only: the manifest (the registry digest) does not change.
    assert_eq!(da, dc);
    assert_ne!(common::read(&a), common::read(&c));

    let index: serde_json::Value = serde_json::from_slice(&tar_member(&a, "index.json")).unwrap();
    let m = &index["manifests"][0];
    assert_eq!(m["digest"], da);
    assert_eq!(
        m["annotations"]["io.containerd.image.name"],
        "example.test/meshsniff/busybox:1.0"
    );
    assert_eq!(m["annotations"]["org.opencontainers.image.ref.name"], "1.0");
    let hexd = &da["sha256:".len()..];
    let manifest = tar_member(&a, &format!("blobs/sha256/{hexd}"));
    assert_eq!(sha256_hex(&manifest), hexd, "a blob not named by its hash");
    let manifest: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
    let cfg_digest = manifest["config"]["digest"].as_str().unwrap();
    let config: serde_json::Value = serde_json::from_slice(&tar_member(
        &a,
        &format!("blobs/sha256/{}", &cfg_digest["sha256:".len()..]),
    ))
    .unwrap();
    assert_eq!(config["architecture"], "amd64");
    assert_eq!(config["os"], "linux");
    assert_eq!(config["config"]["User"], "65534");

    let cd = Containerd::start("oci");
    let imported = cd.ctr_ok(&["images", "import", a.to_str().unwrap()]);
    assert!(
        imported.contains("example.test/meshsniff/busybox:1.0"),
        "{imported}"
    );
    let listed = cd.ctr_ok(&["images", "ls"]);
    let line = listed
        .lines()
        .find(|l| l.starts_with("example.test/meshsniff/busybox:1.0 "))
        .unwrap_or_else(|| panic!("not listed under its name:\n{listed}"));
    assert!(line.contains(&da), "{line}");
    assert!(line.contains("linux/amd64"), "{line}");

    let id = format!("meshsniff-oci-{}", std::process::id());
    let out = cd.run("example.test/meshsniff/busybox:1.0", &id, &[]);
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "65534",
            "/work",
            "hello from the layer",
            "1777 0:0 946684800 /tmp",
            "640 0:0 946684800 /work/note",
            "755 0:0 946684800 /bin/busybox",
        ],
        "{text}"
    );
}

/// The helper image as release/build.sh makes it (the same oci-image.py arguments: name and
/// tag of the plugin's default --image, /meshsniff as entrypoint, user 0): ctr names it as the
/// plugin's default image, and the binary runs in it. A test build is not static, so its
/// shared libraries are put beside it here; release/build.sh refuses a binary that needs any.
#[test]
fn helper_image_runs_meshsniff_in_containerd() {
    let test = "helper_image_runs_meshsniff_in_containerd";
    if !can_run(test) {
        return;
    }
    let tmp = Tmp::new("helper-files");
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    std::fs::copy(common::bin(), rootfs.join("meshsniff")).unwrap();
    let ldd = Command::new("ldd").arg(common::bin()).output().unwrap();
    for lib in String::from_utf8_lossy(&ldd.stdout).split_whitespace() {
        if lib.starts_with('/') {
            let dest = rootfs.join(lib.trim_start_matches('/'));
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::copy(lib, &dest).unwrap();
        }
    }
    let image = meshsniff::kube::manifest::DEFAULT_IMAGE;
    let (name, tag) = image.rsplit_once(':').unwrap();
    let archive = tmp.path().join("meshsniff-oci.tar");
    let digest = build_image(&[
        "--name",
        name,
        "--tag",
        tag,
        "--rootfs",
        rootfs.to_str().unwrap(),
        "--entrypoint",
        "/meshsniff",
        "--user",
        "0",
        "-o",
        archive.to_str().unwrap(),
    ]);
    run_helper_image(&archive, &digest);
}

/// Imports the helper image archive into a private containerd and runs it: listed as the
/// plugin's default image with `digest`, complete; the entrypoint is the helper (its usage);
/// `--version` is this version; `capture --list-interfaces` lists the container's lo.
fn run_helper_image(archive: &Path, digest: &str) {
    let image = meshsniff::kube::manifest::DEFAULT_IMAGE;
    let cd = Containerd::start("helper");
    cd.ctr_ok(&["images", "import", archive.to_str().unwrap()]);
    let listed = cd.ctr_ok(&["images", "ls"]);
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with(&format!("{image} ")) && l.contains(digest)),
        "{image} ({digest}) not in:\n{listed}"
    );
    let check = cd.ctr_ok(&["images", "check"]);
    assert!(
        check
            .lines()
            .any(|l| l.starts_with(image) && l.contains("complete")),
        "{check}"
    );

    let id = format!("meshsniff-helper-{}", std::process::id());
    // The entrypoint alone: the binary runs and says how to use it.
    let out = cd.run(image, &id, &[]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("Usage: meshsniff"), "{all}");
    let out = cd.run(image, &id, &["/meshsniff", "--version"]);
    let v = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(out.status.success(), "{v}");
    assert_eq!(
        v.trim(),
        format!("meshsniff {}", env!("CARGO_PKG_VERSION")),
        "{v}"
    );
    // ctr gives the container a network namespace of its own: only lo is in it.
    let out = cd.run(image, &id, &["/meshsniff", "capture", "--list-interfaces"]);
    let v = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(
        out.status.success(),
        "{v}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        v.lines()
            .any(|l| l.starts_with("1.lo (index 1) [Loopback]")),
        "{v}"
    );
}

/// The helper image release/build.sh made (release/out/image/meshsniff-oci.tar; .ci/run builds
/// it before the tests): named as the plugin's default --image, its digest the one build.sh
/// printed, one layer holding /meshsniff alone (0:0, 0755, the archive's static binary byte for
/// byte, no ELF interpreter), and it runs in containerd.
#[test]
fn release_helper_image_is_the_static_helper_alone_and_runs() {
    let test = "release_helper_image_is_the_static_helper_alone_and_runs";
    let out = common::repo().join("release/out");
    let archive = out.join("image/meshsniff-oci.tar");
    if !archive.is_file() {
        common::skip(
            test,
            "no release/out/image/meshsniff-oci.tar: run release/build.sh",
        );
        return;
    }
    if !can_run(test) {
        return;
    }
    let image = meshsniff::kube::manifest::DEFAULT_IMAGE;
    let name = std::fs::read_to_string(out.join("image/name")).unwrap();
    assert_eq!(name.trim(), image, "built under another name (IMAGE=?)");
    let digest = std::fs::read_to_string(out.join("image/digest")).unwrap();
    let digest = digest.trim();
    let index: serde_json::Value =
        serde_json::from_slice(&tar_member(&archive, "index.json")).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest);
    let manifest: serde_json::Value = serde_json::from_slice(&tar_member(
        &archive,
        &format!("blobs/sha256/{}", &digest["sha256:".len()..]),
    ))
    .unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1);
    assert_eq!(
        layers[0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let tmp = Tmp::new("release-image");
    let layer = tmp.path().join("layer.tar.gz");
    let blob = layers[0]["digest"].as_str().unwrap();
    std::fs::write(
        &layer,
        tar_member(
            &archive,
            &format!("blobs/sha256/{}", &blob["sha256:".len()..]),
        ),
    )
    .unwrap();
    let listing = Command::new("tar")
        .arg("-tvzf")
        .arg(&layer)
        .output()
        .unwrap();
    let listing = String::from_utf8(listing.stdout).unwrap();
    let entries: Vec<&str> = listing.lines().collect();
    assert_eq!(entries.len(), 1, "{listing}");
    assert!(
        entries[0].starts_with("-rwxr-xr-x 0/0 ") && entries[0].ends_with(" meshsniff"),
        "{listing}"
    );
    let bin = Command::new("tar")
        .arg("-xzOf")
        .arg(&layer)
        .arg("meshsniff")
        .output()
        .unwrap()
        .stdout;
    assert_eq!(bin, common::read(&out.join("archive/meshsniff")));
    assert_eq!(
        meshsniff::kube::upload::elf_interpreter(&bin),
        Some(None),
        "the helper in the image is not static"
    );
    eprintln!(
        "helper image: binary {} bytes, layer {} bytes, archive {} bytes",
        bin.len(),
        layers[0]["size"],
        std::fs::metadata(&archive).unwrap().len()
    );
    run_helper_image(&archive, digest);
}

/// `--upload`'s commands (src/kube/upload.rs) in a real busybox container under containerd and
/// runc, with `ctr task exec` in the place of `kubectl exec -i`: the container idles with
/// upload's own command, the release's static helper is written in through stdin, busybox's
/// sha256sum gives its hash (busybox's sh finds its sha256sum applet even with no link on PATH,
/// so a busybox image always has one), it runs there (no libc in the image), `cat` reads it
/// back whole (the fallback), and SIGTERM ends the idling container at once (without the trap,
/// PID 1's sh ignores it until the sleep ends: 51 s of a `sleep 60` here).
#[test]
fn upload_commands_work_in_a_real_busybox_container() {
    use meshsniff::kube::upload;
    let test = "upload_commands_work_in_a_real_busybox_container";
    let helper = common::repo().join("release/out/archive/meshsniff");
    if !helper.is_file() {
        common::skip(
            test,
            "no release/out/archive/meshsniff: run release/build.sh",
        );
        return;
    }
    if !can_run(test) || !common::have(test, "busybox") {
        return;
    }
    let busybox = String::from_utf8(
        Command::new("sh")
            .args(["-c", "command -v busybox"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    let tmp = Tmp::new("upload-files");
    let cd = Containerd::start("upload");
    for (tag, tools) in [("full", ["sh", "cat", "chmod", "mv", "sleep", "sha256sum"])] {
        let rootfs = tmp.path().join(tag);
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        std::fs::create_dir_all(rootfs.join("tmp")).unwrap();
        std::fs::copy(busybox.trim(), rootfs.join("bin/busybox")).unwrap();
        for t in tools {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(t)).unwrap();
        }
        let archive = tmp.path().join(format!("{tag}.tar"));
        build_image(&[
            "--name",
            "example.test/meshsniff/busybox",
            "--tag",
            tag,
            "--rootfs",
            rootfs.to_str().unwrap(),
            "-o",
            archive.to_str().unwrap(),
        ]);
        cd.ctr_ok(&["images", "import", archive.to_str().unwrap()]);
    }
    let bytes = common::read(&helper);
    let want = upload::sha256_hex(&bytes);
    let runc_root = cd.dir.join("runc");
    let fifo = cd.dir.join("fifo");
    let idle = upload::idle_command(600);
    for tag in ["full"] {
        let id = format!("meshsniff-upload-{tag}-{}", std::process::id());
        let image = format!("example.test/meshsniff/busybox:{tag}");
        let mut args = vec![
            "run",
            "-d",
            "--runc-root",
            runc_root.to_str().unwrap(),
            "--fifo-dir",
            fifo.to_str().unwrap(),
            &image,
            &id,
        ];
        args.extend(idle.iter().map(String::as_str));
        cd.ctr_ok(&args);
        let out = cd.exec(&id, "write", &upload::write_argv(), &bytes);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = cd.exec(&id, "sum", &upload::checksum_argv(), b"");
        let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
        assert_eq!(text.trim(), format!("{want}  {}", upload::HELPER_PATH));
        let out = cd.exec(
            &id,
            "run",
            &[
                upload::HELPER_PATH.into(),
                "capture".into(),
                "--list-interfaces".into(),
            ],
            b"",
        );
        let v = String::from_utf8_lossy(&out.stdout).replace('\r', "");
        assert!(
            v.lines()
                .any(|l| l.starts_with("1.lo (index 1) [Loopback]")),
            "{v}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = cd.exec(&id, "cat", &["cat".into(), upload::HELPER_PATH.into()], b"");
        assert_eq!(upload::sha256_hex(&out.stdout), want, "read back with cat");
        let start = Instant::now();
        cd.ctr_ok(&["task", "kill", "-s", "TERM", &id]);
        while cd
            .ctr_ok(&["task", "ls"])
            .lines()
            .any(|l| l.starts_with(&format!("{id} ")) && l.contains("RUNNING"))
        {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "the idling container ignored SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        cd.ctr_ok(&["task", "delete", &id]);
        cd.ctr_ok(&["container", "delete", &id]);
    }
}

/// The push the release workflow makes, against a registry on loopback (Debian's
/// docker-registry, storage in a temp dir): `skopeo copy --preserve-digests
/// oci-archive:… docker://…` stores the manifest unchanged, so the registry's digest is the one
/// oci-image.py printed, and the image comes back out whole.
#[test]
fn the_archive_pushes_to_a_registry_with_its_digest() {
    let test = "the_archive_pushes_to_a_registry_with_its_digest";
    if !common::have(test, "python3")
        || !common::have(test, "skopeo")
        || !common::have(test, "docker-registry")
    {
        return;
    }
    let tmp = Tmp::new("registry");
    let rootfs = tmp.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::write(rootfs.join("etc/motd"), "pushed without docker\n").unwrap();
    let archive = tmp.path().join("img.tar");
    let digest = build_image(&[
        "--name",
        "example.test/meshsniff/motd",
        "--tag",
        "1.0",
        "--rootfs",
        rootfs.to_str().unwrap(),
        "-o",
        archive.to_str().unwrap(),
    ]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        tmp.path().join("config.yml"),
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: 127.0.0.1:{port}\n",
            tmp.path().join("data").display()
        ),
    )
    .unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _registry = Kill(
        Command::new("docker-registry")
            .arg("serve")
            .arg(tmp.path().join("config.yml"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(tmp.path().join("registry.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the registry did not listen: {}",
            std::fs::read_to_string(tmp.path().join("registry.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let dest = format!("docker://127.0.0.1:{port}/meshsniff/motd:1.0");
    let digestfile = tmp.path().join("pushed.digest");
    let skopeo = |args: &[&str]| {
        let out = Command::new("skopeo").args(args).output().unwrap();
        assert!(
            out.status.success(),
            "skopeo {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        "--digestfile",
        digestfile.to_str().unwrap(),
        &format!("oci-archive:{}", archive.display()),
        &dest,
    ]);
    assert_eq!(std::fs::read_to_string(&digestfile).unwrap().trim(), digest);
    let raw = skopeo(&["inspect", "--tls-verify=false", "--raw", &dest]);
    assert_eq!(format!("sha256:{}", sha256_hex(&raw)), digest);
    // Back out into an OCI layout: the file is there, unchanged.
    let back = tmp.path().join("back");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        &dest,
        &format!("oci:{}:1.0", back.display()),
    ]);
    let index: serde_json::Value =
        serde_json::from_slice(&common::read(&back.join("index.json"))).unwrap();
    assert_eq!(index["manifests"][0]["digest"], digest);
}

/// The release workflow is YAML that GitHub can read, triggered by a v* tag, and uses the
/// build script and the tools docs/kubectl.md names (it cannot run here: no GitHub).
#[test]
fn release_workflow_parses() {
    let test = "release_workflow_parses";
    if !common::have(test, "python3") {
        return;
    }
    let has_yaml = Command::new("python3")
        .args(["-c", "import yaml"])
        .status()
        .unwrap()
        .success();
    if !has_yaml {
        common::skip(test, "python3 has no yaml module (PyYAML)");
        return;
    }
    let wf = common::repo().join(".github/workflows/release.yml");
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
        ])
        .arg(&wf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // YAML 1.1 reads the key `on` as true.
    let on = v.get("on").or_else(|| v.get("true")).expect("an `on:` key");
    assert_eq!(on["push"]["tags"][0], "v*", "{on}");
    let text = std::fs::read_to_string(&wf).unwrap();
    assert!(text.contains("release/build.sh"));
    assert!(text.contains("oci-archive:release/out/image/meshsniff-oci.tar"));
}
