//! Role: what `kubectl meshsniff` checks on the laptop before it calls kubectl: every
//! user-supplied string that reaches a kubectl argv or a manifest is a Kubernetes name of its
//! kind (so none can be read as a flag), and every flag the helper or the analyzer would refuse
//! is refused here first (the filter compiled for the link type it runs on, profile, format,
//! `--fail-on` kinds), so a typo never costs a privileged pod. Pure functions; the binary
//! turns an `Err` into exit 2.

use crate::capture::filter::{self, Link};
use crate::policy::Profile;

/// The helper's default snap length (`meshsniff capture --snaplen`): the filter's accept value.
pub const HELPER_SNAPLEN: u32 = 262_144;

/// `meshsniff check --format` values (tests/kube.rs compares them with the analyzer's).
pub const FORMATS: [&str; 3] = ["table", "jsonl", "json"];

/// Finding rules `meshsniff check --fail-on` accepts besides the verdict kinds: the analyzer's
/// own list (tests/kube.rs also compares acceptance with the analyzer's, value by value).
pub use crate::report::FINDING_RULES;

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, the body of an RFC 1123 label (length checked apart).
fn label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && alnum(&b[0])
        && alnum(&b[b.len() - 1])
        && b.iter().all(|c| alnum(c) || *c == b'-')
}

const LABEL_RULE: &str = "lowercase letters, digits and '-', starting and ending with a \
                          letter or digit";

/// A DNS-1123 label (namespaces, container names): at most 63 characters.
pub fn dns1123_label(what: &str, s: &str) -> Result<(), String> {
    if s.len() <= 63 && label_chars(s) {
        Ok(())
    } else {
        Err(format!(
            "{what} `{}` is not a Kubernetes name ({LABEL_RULE}, at most 63)",
            shown(s)
        ))
    }
}

/// A DNS-1123 subdomain (pod and node names): labels joined by '.', at most 253 characters.
pub fn dns1123_subdomain(what: &str, s: &str) -> Result<(), String> {
    if s.len() <= 253 && s.split('.').all(label_chars) {
        Ok(())
    } else {
        Err(format!(
            "{what} `{}` is not a Kubernetes name ({LABEL_RULE}, dots between parts, at most 253)",
            shown(s)
        ))
    }
}

/// A user string as it may be printed: control characters escaped, at most 80 characters.
pub fn shown(s: &str) -> String {
    let mut out: String = s.chars().take(80).flat_map(char::escape_debug).collect();
    if s.chars().count() > 80 {
        out.push('…');
    }
    out
}

/// The pod argument: `NAME`, or kubectl's `pod/NAME`, `pods/NAME`, `po/NAME`; the name alone.
pub fn pod_arg(arg: &str) -> Result<String, String> {
    match target_arg(arg)? {
        crate::kube::target::TargetArg::Pod(name) => Ok(name),
        crate::kube::target::TargetArg::Workload { kind, .. } => {
            Err(format!("`{}`: a {}, not a pod", shown(arg), kind.kind()))
        }
    }
}

/// The target argument as kubectl reads it: `NAME` or `pod/NAME` (`pods/`, `po/`), or a
/// workload whose pods to capture: `deploy/NAME` (`deployment/`, `deployments/`,
/// `deployment.apps/`…), `sts/NAME`, `ds/NAME`, `rs/NAME`.
pub fn target_arg(arg: &str) -> Result<crate::kube::target::TargetArg, String> {
    use crate::kube::target::{TargetArg, WorkloadKind};
    let (kind, name) = match arg.split_once('/') {
        None => (None, arg),
        Some((kind, name)) => {
            let bare = kind.strip_suffix(".apps").unwrap_or(kind);
            let k = match (kind, bare) {
                ("pod" | "pods" | "po", _) => None,
                (_, "deploy" | "deployment" | "deployments") => Some(WorkloadKind::Deployment),
                (_, "sts" | "statefulset" | "statefulsets") => Some(WorkloadKind::StatefulSet),
                (_, "ds" | "daemonset" | "daemonsets") => Some(WorkloadKind::DaemonSet),
                (_, "rs" | "replicaset" | "replicasets") => Some(WorkloadKind::ReplicaSet),
                _ => {
                    return Err(format!(
                        "`{}`: cannot capture a {}: name a pod (NAME, pod/NAME), a workload \
                         (deploy/, sts/, ds/, rs/NAME) or select pods by label (-l app=web)",
                        shown(arg),
                        shown(kind)
                    ));
                }
            };
            (k, name)
        }
    };
    dns1123_subdomain(kind.map_or("pod name", WorkloadKind::what), name).map_err(|e| {
        if name.starts_with('-') {
            format!("{e}; a flag goes before the pod, a label selector after -l")
        } else {
            e
        }
    })?;
    Ok(match kind {
        None => TargetArg::Pod(name.to_string()),
        Some(kind) => TargetArg::Workload {
            kind,
            name: name.to_string(),
        },
    })
}

/// A value of kubectl's text flags (`--cluster`, `--user`, `--as`, `--as-group`, `--as-uid`):
/// any text, but not empty and no control characters (passed as one `--flag=VALUE`).
pub fn kubectl_text_flag(flag: &str, v: &str) -> Result<(), String> {
    if v.is_empty() || v.chars().any(char::is_control) {
        return Err(format!("--{flag} `{}`: give a name", shown(v)));
    }
    Ok(())
}

/// `--request-timeout` as kubectl parses it: `0` (none), a whole number of seconds, or a Go
/// duration (`30s`, `1m30s`, `500ms`).
pub fn request_timeout(v: &str) -> Result<(), String> {
    let bad = || {
        Err(format!(
            "--request-timeout `{}`: a duration such as 30s, 1m or 500ms (0: none)",
            shown(v)
        ))
    };
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(());
    }
    let mut rest = v;
    if rest.is_empty() {
        return bad();
    }
    while !rest.is_empty() {
        let num = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num == 0 || rest[..num].matches('.').count() > 1 || rest[..num] == *"." {
            return bad();
        }
        rest = &rest[num..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .into_iter()
            .find(|u| rest.starts_with(u) && !(*u == "m" && rest.starts_with("ms")));
        let Some(unit) = unit else { return bad() };
        rest = &rest[unit.len()..];
    }
    Ok(())
}

/// A label value: empty, or at most 63 of `[A-Za-z0-9_.-]` starting and ending alphanumeric.
fn label_value(v: &str) -> bool {
    let b = v.as_bytes();
    v.is_empty()
        || (v.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c)))
}

/// A label key: `[PREFIX/]NAME`, PREFIX a DNS subdomain, NAME a non-empty label value.
fn label_key(k: &str) -> bool {
    let (prefix, name) = match k.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    !name.is_empty() && label_value(name) && prefix.is_none_or(|p| dns1123_subdomain("", p).is_ok())
}

/// A label selector as kubectl parses it (`k=v`, `k==v`, `k!=v`, `k in (a,b)`,
/// `k notin (a)`, `k`, `!k`, `k>N`, `k<N`, comma-separated).
pub fn label_selector(sel: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "label selector `{}`: {why} (e.g. app=web, or 'app in (web,api),tier!=db')",
            shown(sel)
        ))
    };
    if sel.trim().is_empty() {
        return bad("empty");
    }
    // Requirements are split at commas outside parentheses.
    let mut reqs = Vec::new();
    let (mut depth, mut start) = (0i32, 0);
    for (i, c) in sel.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                reqs.push(&sel[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        if !(0..=1).contains(&depth) {
            return bad("unbalanced parentheses");
        }
    }
    if depth != 0 {
        return bad("unbalanced parentheses");
    }
    reqs.push(&sel[start..]);
    for r in reqs {
        let r = r.trim();
        if let Some(k) = r.strip_prefix('!') {
            if !label_key(k.trim()) {
                return bad(&format!("`{}` is not a label key", shown(k.trim())));
            }
            continue;
        }
        let end = r
            .find(|c: char| c.is_whitespace() || "=!<>(".contains(c))
            .unwrap_or(r.len());
        let (key, rest) = (&r[..end], r[end..].trim_start());
        if !label_key(key) {
            return bad(&format!("`{}` is not a label key", shown(key)));
        }
        let value_ok = |v: &str| label_value(v.trim());
        let ok = if rest.is_empty() {
            true
        } else if let Some(v) = rest.strip_prefix("==").or_else(|| rest.strip_prefix("!=")) {
            value_ok(v)
        } else if let Some(v) = rest.strip_prefix('=') {
            value_ok(v)
        } else if let Some(v) = rest.strip_prefix('<').or_else(|| rest.strip_prefix('>')) {
            v.trim().parse::<i64>().is_ok()
        } else if let Some(list) = rest
            .strip_prefix("notin")
            .or_else(|| rest.strip_prefix("in"))
        {
            let list = list.trim();
            list.strip_prefix('(')
                .and_then(|l| l.strip_suffix(')'))
                .is_some_and(|l| l.split(',').all(value_ok))
        } else {
            false
        };
        if !ok {
            return bad(&format!("cannot read `{}`", shown(r)));
        }
    }
    Ok(())
}

/// A container image reference (`[HOST[:PORT]/]PATH[:TAG][@ALGO:HEX]`), as the distribution
/// grammar has it: the image goes into the helper pod, so a typo is refused here, not by the
/// kubelet after the pod was created.
pub fn image_reference(image: &str) -> Result<(), String> {
    let bad = |why: &str| {
        Err(format!(
            "--image `{}`: {why} (e.g. registry.example/meshsniff:0.1.0)",
            shown(image)
        ))
    };
    if image.is_empty() || image.len() > 4096 {
        return bad("empty or too long");
    }
    let (name_tag, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    if let Some(d) = digest {
        let ok = d.split_once(':').is_some_and(|(algo, hex)| {
            !algo.is_empty()
                && algo.as_bytes()[0].is_ascii_alphabetic()
                && algo
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_+.".contains(&c))
                && hex.len() >= 32
                && hex.bytes().all(|c| c.is_ascii_hexdigit())
        });
        if !ok {
            return bad("the digest is not ALGORITHM:HEX");
        }
    }
    let (name, tag) = match name_tag.rfind(':') {
        Some(i) if !name_tag[i..].contains('/') => (&name_tag[..i], Some(&name_tag[i + 1..])),
        _ => (name_tag, None),
    };
    if let Some(t) = tag {
        let b = t.as_bytes();
        let word = |c: &u8| c.is_ascii_alphanumeric() || *c == b'_';
        if b.is_empty()
            || b.len() > 128
            || !word(&b[0])
            || !b.iter().all(|c| word(c) || b".-".contains(c))
        {
            return bad("the tag is not a tag");
        }
    }
    let mut parts: Vec<&str> = name.split('/').collect();
    // The first part is a registry host when it looks like one (as docker decides).
    if parts.len() > 1 && (parts[0].contains(['.', ':']) || parts[0] == "localhost") {
        let host = parts.remove(0);
        let (h, port) = match host.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        };
        let host_ok = h.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
        });
        if !host_ok || port.is_some_and(|p| p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()))
        {
            return bad("the registry is not HOST[:PORT]");
        }
    }
    // Path components: [a-z0-9]+ joined by '.', '_', '__' or runs of '-'.
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        let alnum = |x: &u8| x.is_ascii_lowercase() || x.is_ascii_digit();
        !b.is_empty()
            && alnum(&b[0])
            && alnum(&b[b.len() - 1])
            && b.iter().all(|x| alnum(x) || b"._-".contains(x))
            && !c.contains("..")
            && !c.contains("___")
            && !c.contains("._")
            && !c.contains("_.")
            && !c.contains(".-")
            && !c.contains("-.")
            && !c.contains("_-")
            && !c.contains("-_")
    };
    if parts.is_empty() || !parts.iter().all(|c| component_ok(c)) {
        return bad("the repository path is not lowercase letters, digits and separators");
    }
    Ok(())
}

/// A kubeconfig context name: any text kubectl could hold, but no control characters (it
/// is passed as `--context=NAME`, so a leading '-' is harmless).
pub fn context_name(c: &str) -> Result<(), String> {
    if c.is_empty() || c.chars().any(char::is_control) {
        return Err(format!(
            "--context `{}`: not a context name (`kubectl config get-contexts` lists them)",
            shown(c)
        ));
    }
    Ok(())
}

/// An interface name as Linux accepts one (`dev_valid_name`): 1 to 15 bytes, no '/', ':' or
/// whitespace, not `.` or `..`.
pub fn interface_name(i: &str) -> Result<(), String> {
    if i.is_empty()
        || i.len() > 15
        || i == "."
        || i == ".."
        || i.chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "-i `{}`: not an interface name (at most 15 characters, no '/', ':' or spaces; \
             `any` captures them all)",
            shown(i)
        ));
    }
    Ok(())
}

/// The filter as the helper will compile it: for `-i any` the cooked-socket program, for a
/// named interface the Ethernet one (the helper refuses a filter on any other link type).
pub fn capture_filter(expr: &str, interface: &str) -> Result<(), String> {
    let link = if interface == "any" {
        Link::Cooked
    } else {
        Link::Ethernet
    };
    filter::compile(expr, link, HELPER_SNAPLEN)
        .map(|_| ())
        .map_err(|e| format!("-f: {e} (as the helper compiles it for -i {interface})"))
}

/// `--profile` as `meshsniff check` reads it.
pub fn profile(p: &str) -> Result<(), String> {
    Profile::parse(p)
        .map(|_| ())
        .ok_or_else(|| format!("--profile `{}`: use istio, strict or none", shown(p)))
}

/// `--format` as `meshsniff check` reads it.
pub fn format(f: &str) -> Result<(), String> {
    if FORMATS.contains(&f) {
        Ok(())
    } else {
        Err(format!(
            "--format `{}`: use {}",
            shown(f),
            FORMATS.join(", ")
        ))
    }
}

/// `--fail-on` as `meshsniff check` reads it: comma-separated verdict kinds or finding rules,
/// blanks ignored.
pub fn fail_on(kinds: &str) -> Result<(), String> {
    // The analyzer's own parser, so the two can never disagree; the name is shown escaped.
    let names: Vec<&str> = kinds.split(',').collect();
    crate::report::Gate::new(&names).map(|_| ()).map_err(|e| {
        let mut e = e;
        e.name = shown(&e.name);
        format!("--fail-on: {e}")
    })
}

/// The interface names in `meshsniff capture --list-interfaces` output (`1.eth0 (index 2)
/// [Up]`, one a line, as `tcpdump -D` prints them).
pub fn listed_interfaces(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let (num, rest) = l.split_once('.')?;
            num.bytes().all(|c| c.is_ascii_digit()).then_some(())?;
            let name = rest.split(" (index").next()?.trim();
            (!name.is_empty()).then(|| name.to_string())
        })
        .collect()
}

/// A line relayed from a child (kubectl exec's stderr) made safe for a terminal: control
/// characters (escape sequences that could rewrite the screen or the status line) escaped.
pub fn printable(line: &str) -> String {
    line.chars()
        .flat_map(|c| {
            if c.is_control() && c != '\t' {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kubernetes_names_and_never_flags() {
        for ok in ["web-1", "web-7d9f5c-x2x", "a", "a.b-c.d", &"a".repeat(253)] {
            assert!(dns1123_subdomain("pod name", ok).is_ok(), "{ok}");
        }
        for bad in [
            "--as=system:admin",
            "-n",
            "Web",
            "web_1",
            "web-",
            ".web",
            "a..b",
            "",
            "web 1",
            "web\n1",
            &"a".repeat(254),
        ] {
            assert!(dns1123_subdomain("pod name", bad).is_err(), "{bad:?}");
        }
        assert!(dns1123_label("namespace", "shop").is_ok());
        for bad in ["a.b", "--as=x", &"a".repeat(64), "Shop"] {
            assert!(dns1123_label("namespace", bad).is_err(), "{bad}");
        }
        assert_eq!(pod_arg("pod/web-1").unwrap(), "web-1");
        assert_eq!(pod_arg("pods/web-1").unwrap(), "web-1");
        assert_eq!(pod_arg("po/web-1").unwrap(), "web-1");
        assert_eq!(pod_arg("web-1").unwrap(), "web-1");
        use crate::kube::target::{TargetArg, WorkloadKind};
        for (arg, kind) in [
            ("deploy/web", WorkloadKind::Deployment),
            ("deployment/web", WorkloadKind::Deployment),
            ("deployments.apps/web", WorkloadKind::Deployment),
            ("sts/web", WorkloadKind::StatefulSet),
            ("statefulset/web", WorkloadKind::StatefulSet),
            ("ds/web", WorkloadKind::DaemonSet),
            ("rs/web", WorkloadKind::ReplicaSet),
        ] {
            assert_eq!(
                target_arg(arg).unwrap(),
                TargetArg::Workload {
                    kind,
                    name: "web".into()
                },
                "{arg}"
            );
        }
        let e = target_arg("svc/web").unwrap_err();
        assert!(
            e.contains("cannot capture a svc") && e.contains("-l app=web"),
            "{e}"
        );
        let e = target_arg("deploy/--as=x").unwrap_err();
        assert!(e.contains("deployment name `--as=x`"), "{e}");
        let e = pod_arg("--as=system:admin").unwrap_err();
        assert!(
            e.contains("not a Kubernetes name") && e.contains("-l"),
            "{e}"
        );
        assert!(pod_arg("pod/").is_err() && pod_arg("pod/--x").is_err());
        // A control character is escaped in the message, never printed raw.
        assert!(pod_arg("a\x1b[2Jb").unwrap_err().contains("\\u{1b}"));
    }

    #[test]
    fn kubectl_global_flag_values() {
        for ok in ["0", "30", "30s", "1m30s", "500ms", "1.5h", "2m"] {
            assert!(request_timeout(ok).is_ok(), "{ok}");
        }
        for bad in ["", "s", "30x", "1m30", "-1s", "1..2s", "30 s", "--as=x"] {
            assert!(request_timeout(bad).is_err(), "{bad}");
        }
        assert!(kubectl_text_flag("as", "system:serviceaccount:a:b").is_ok());
        assert!(
            kubectl_text_flag("as", "--privileged").is_ok(),
            "one element: harmless"
        );
        assert!(kubectl_text_flag("as", "").is_err() && kubectl_text_flag("user", "a\nb").is_err());
    }

    #[test]
    fn selectors_as_kubectl_reads_them() {
        for ok in [
            "app=web",
            "app==web",
            "app!=web",
            "app in (web, api),tier notin (db)",
            "!canary",
            "app",
            "app.kubernetes.io/name=web",
            "istio=ingressgateway",
            "gen>3",
            "app=",
        ] {
            assert!(label_selector(ok).is_ok(), "{ok}");
        }
        for bad in [
            "--as=system:admin",
            "",
            "app=web --as=admin",
            "app in web",
            "app=(x",
            "a b=c",
            "app=Wéb",
            "gen>x",
        ] {
            assert!(label_selector(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn images_are_references() {
        for ok in [
            "ghcr.io/meshsniff/meshsniff:0.1.0",
            "registry.example/nope:1",
            "localhost:5000/m",
            "busybox",
            "library/busybox:1.36.1-musl",
            "r.example/a/b_c__d---e:v1.2",
            &format!("r.example/m@sha256:{}", "ab".repeat(32)),
        ] {
            assert!(image_reference(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "--privileged",
            "Registry.Example/m:1 x",
            "r.example/M:1",
            "m:",
            "m:-x",
            "m@sha256:zz",
            "r.example:port/m",
        ] {
            assert!(image_reference(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn flags_are_checked_as_the_helper_and_the_analyzer_check_them() {
        assert!(capture_filter("tcp port 8080", "any").is_ok());
        let e = capture_filter("tcp port 99999", "eth0").unwrap_err();
        assert!(e.starts_with("-f: filter `tcp port 99999`"), "{e}");
        // `vlan` exists on Ethernet only: the link type decides, as in the helper.
        assert!(capture_filter("vlan", "eth0").is_ok());
        assert!(capture_filter("vlan", "any").is_err());
        assert!(profile("istio").is_ok() && profile("istoi").is_err());
        assert!(format("jsonl").is_ok() && format("yaml").is_err());
        assert!(fail_on("plaintext-leak, sensitive-data").is_ok());
        assert!(
            fail_on("").is_ok(),
            "blank means nothing fails, as in check"
        );
        assert!(
            fail_on("plaintext-leek")
                .unwrap_err()
                .contains("plaintext-leek")
        );
        for bad in ["eth0 x", "a/b", "eth0:1", "", "averyveryverylongname"] {
            assert!(interface_name(bad).is_err(), "{bad}");
        }
        assert!(interface_name("eth0").is_ok() && interface_name("any").is_ok());
        assert!(context_name("arn:aws:eks:eu-west-1:1:cluster/x").is_ok());
        assert!(context_name("a\nb").is_err());
    }

    #[test]
    fn interface_lists_and_relayed_lines() {
        let text = "1.lo (index 1) [Loopback] [Up]\n2.eth0 (index 2) [Up]\n";
        assert_eq!(listed_interfaces(text), ["lo", "eth0"]);
        assert!(listed_interfaces("meshsniff: error\n").is_empty());
        assert_eq!(printable("a\x1b[2Kb\rc"), "a\\u{1b}[2Kb\\rc");
    }
}
