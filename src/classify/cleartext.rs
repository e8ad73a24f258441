//! Role: names cleartext that is not HTTP by its first bytes, only where that is cheap and
//! certain (PostgreSQL startup, MySQL greeting, Redis RESP, SMTP/POP3/IMAP/FTP banners), says
//! whether the rest looks like text or binary, and spots credentials that line-oriented
//! protocols send in the clear (`PASS`, `AUTH`, `LOGIN`), with redacted evidence.

use serde::{Deserialize, Serialize};

/// The `cleartext` object of a flow record whose protocol is `other`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleartext {
    /// `postgresql`, `mysql`, `redis`, `smtp`, `pop3`, `imap`, `ftp`; null when unknown.
    pub app: Option<String>,
    /// `text` when the first bytes are mostly printable, else `binary`.
    pub payload: String,
    /// Credentials seen (`<app>:<command>`), names only.
    pub sensitive: Vec<String>,
    pub evidence: Vec<String>,
}

/// PostgreSQL protocol 3.0 StartupMessage (length, then 196608), or the 8-byte SSLRequest /
/// GSSENCRequest a client sends first (80877103 / 80877104) when the server then says no.
fn postgresql(c2s: &[u8]) -> bool {
    match c2s.get(..8) {
        Some(h) => {
            let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
            let code = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            (code == 196_608 && (9..=10_000).contains(&len))
                || (len == 8 && (code == 80_877_103 || code == 80_877_104))
        }
        None => false,
    }
}

/// MySQL Initial Handshake: 3-byte length, sequence 0, protocol 10, a printable version, NUL.
fn mysql(s2c: &[u8]) -> bool {
    let Some(h) = s2c.get(..5) else {
        return false;
    };
    let len = u32::from_le_bytes([h[0], h[1], h[2], 0]);
    if h[3] != 0 || h[4] != 10 || !(20..=1024).contains(&len) {
        return false;
    }
    let rest = &s2c[5..s2c.len().min(5 + 64)];
    match memchr::memchr(0, rest) {
        Some(n) => n > 0 && rest[..n].iter().all(|b| b.is_ascii_graphic()),
        None => false,
    }
}

/// Redis RESP: a client sends arrays of bulk strings (`*2\r\n$3\r\nGET\r\n...`).
fn redis(c2s: &[u8]) -> bool {
    let Some(rest) = c2s.strip_prefix(b"*") else {
        return false;
    };
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    (1..=4).contains(&digits) && rest[digits..].starts_with(b"\r\n$")
}

fn starts_ci(d: &[u8], p: &[u8]) -> bool {
    d.len() >= p.len() && d[..p.len()].eq_ignore_ascii_case(p)
}

fn line_app(c2s: &[u8], s2c: &[u8]) -> Option<&'static str> {
    let banner = &s2c[..s2c.len().min(256)];
    if banner.starts_with(b"* OK") || banner.starts_with(b"* PREAUTH") {
        return Some("imap");
    }
    if banner.starts_with(b"+OK") {
        return Some("pop3");
    }
    if banner.starts_with(b"220") && matches!(banner.get(3), Some(b' ' | b'-')) {
        if starts_ci(c2s, b"EHLO") || starts_ci(c2s, b"HELO") {
            return Some("smtp");
        }
        if starts_ci(c2s, b"USER ") || starts_ci(c2s, b"AUTH TLS") || starts_ci(c2s, b"FEAT") {
            return Some("ftp");
        }
        if crate::classify::http::find(banner, b"SMTP").is_some() {
            return Some("smtp");
        }
        if crate::classify::http::find(banner, b"FTP").is_some() {
            return Some("ftp");
        }
    }
    None
}

/// Names the application of a non-HTTP cleartext flow from its first bytes.
pub fn app(c2s: &[u8], s2c: &[u8]) -> Option<&'static str> {
    if postgresql(c2s) {
        Some("postgresql")
    } else if mysql(s2c) {
        Some("mysql")
    } else if redis(c2s) {
        Some("redis")
    } else {
        line_app(c2s, s2c)
    }
}

/// Mostly printable ASCII (tabs and line ends included) in the first bytes of both sides.
pub fn is_text(c2s: &[u8], s2c: &[u8]) -> bool {
    let a = &c2s[..c2s.len().min(512)];
    let b = &s2c[..s2c.len().min(512)];
    let total = a.len() + b.len();
    if total == 0 {
        return false;
    }
    let printable = a
        .iter()
        .chain(b)
        .filter(|&&c| c.is_ascii_graphic() || matches!(c, b' ' | b'\t' | b'\r' | b'\n'))
        .count();
    printable * 10 >= total * 9
}

/// Credentials sent in the clear by a line-oriented client (and Redis `AUTH`).
fn credentials(app: &str, c2s: &[u8], reveal: bool, out: &mut Cleartext) {
    let mut note = |cmd: &str, secret: &[u8]| {
        let label = format!("{app}:{}", cmd.to_ascii_lowercase());
        if out.sensitive.contains(&label) || out.sensitive.len() >= 8 {
            return;
        }
        let shown = if reveal {
            String::from_utf8_lossy(secret).into_owned()
        } else {
            format!("<redacted, {} bytes>", secret.len())
        };
        out.evidence.push(format!("{cmd} {shown}"));
        out.sensitive.push(label);
    };
    if app == "redis" {
        // *2\r\n$4\r\nAUTH\r\n$N\r\nsecret\r\n
        let mut at = 0;
        while let Some(i) = crate::classify::http::find(&c2s[at..], b"\r\nAUTH\r\n") {
            let rest = &c2s[at + i + 8..];
            let secret = rest.split(|&b| b == b'\n').nth(1).unwrap_or_default();
            let secret = secret.strip_suffix(b"\r").unwrap_or(secret);
            note("AUTH", secret);
            at += i + 8;
        }
        return;
    }
    for line in c2s.split(|&b| b == b'\n').take(64) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // IMAP commands carry a tag first.
        let cmd_line = if app == "imap" {
            match memchr::memchr(b' ', line) {
                Some(i) => &line[i + 1..],
                None => continue,
            }
        } else {
            line
        };
        for cmd in ["PASS", "AUTH", "LOGIN", "APOP"] {
            if starts_ci(cmd_line, cmd.as_bytes()) && cmd_line.get(cmd.len()) == Some(&b' ') {
                if app == "smtp" && cmd == "AUTH" && cmd_line.len() < 12 {
                    continue;
                }
                note(cmd, &cmd_line[cmd.len() + 1..]);
            }
        }
    }
}

/// The `cleartext` facts of a flow classified `other`.
pub fn facts(c2s: &[u8], s2c: &[u8], reveal: bool) -> Cleartext {
    let app = app(c2s, s2c);
    let mut c = Cleartext {
        app: app.map(str::to_string),
        payload: if is_text(c2s, s2c) { "text" } else { "binary" }.to_string(),
        sensitive: Vec::new(),
        evidence: Vec::new(),
    };
    if let Some(a) = app {
        if a != "postgresql" && a != "mysql" {
            credentials(a, c2s, reveal, &mut c);
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_only_what_is_certain() {
        let pg = [0, 0, 0, 41, 0, 3, 0, 0, b'u', b's', b'e', b'r', 0];
        assert_eq!(app(&pg, b""), Some("postgresql"));
        let mut my = vec![74, 0, 0, 0, 10];
        my.extend_from_slice(b"8.0.36\0rest-of-greeting");
        assert_eq!(app(b"", &my), Some("mysql"));
        assert_eq!(app(b"*1\r\n$4\r\nPING\r\n", b"+PONG\r\n"), Some("redis"));
        assert_eq!(app(b"EHLO x\r\n", b"220 mx ESMTP\r\n"), Some("smtp"));
        assert_eq!(app(b"USER bob\r\n", b"+OK POP3 ready\r\n"), Some("pop3"));
        assert_eq!(
            app(b"a1 CAPABILITY\r\n", b"* OK IMAP4rev1\r\n"),
            Some("imap")
        );
        assert_eq!(app(b"SSH-2.0-x\r\n", b"SSH-2.0-y\r\n"), None);
        assert!(is_text(b"SSH-2.0-x\r\n", b""));
        assert!(!is_text(&[0, 1, 2, 200, 3], b""));
    }

    #[test]
    fn clear_credentials_are_found_and_redacted() {
        let f = facts(b"USER bob\r\nPASS hunter2\r\n", b"+OK ready\r\n", false);
        assert_eq!(f.sensitive, ["pop3:pass"]);
        assert_eq!(f.evidence, ["PASS <redacted, 7 bytes>"]);
        let r = facts(b"*2\r\n$4\r\nAUTH\r\n$6\r\nsecret\r\n", b"+OK\r\n", true);
        assert_eq!(r.sensitive, ["redis:auth"]);
        assert_eq!(r.evidence, ["AUTH secret"]);
        let i = facts(b"a1 LOGIN bob pw\r\n", b"* OK hi\r\n", false);
        assert_eq!(i.sensitive, ["imap:login"]);
    }
}
