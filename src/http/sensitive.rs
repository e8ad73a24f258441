//! Role: which HTTP header fields and parameters carry credentials, and how their evidence is
//! written: redacted by default (`Authorization: Basic <redacted, 24 bytes>`), the value itself
//! only when the user asked for secrets. Shared by HTTP/1.x and h2c.

use serde::{Deserialize, Serialize};

/// One sensitive thing a message carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sensitive {
    /// What it is: `authorization:<scheme>`, `proxy-authorization:<scheme>`, `cookie`,
    /// `set-cookie`, `header:<name>`, `query:<parameter>`, `form:<parameter>`.
    pub label: String,
    /// The evidence as the report shows it: redacted unless secrets were asked for.
    pub evidence: String,
}

/// Header names that carry API keys or tokens (compared without allocating).
pub fn is_api_key_header(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 13] = [
        b"x-api-key",
        b"api-key",
        b"apikey",
        b"x-apikey",
        b"x-auth-token",
        b"x-access-token",
        b"x-amz-security-token",
        b"private-token",
        b"x-goog-api-key",
        b"x-vault-token",
        b"x-consul-token",
        b"x-csrf-token",
        b"x-session-token",
    ];
    (6..=20).contains(&name.len()) && NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Parameter names that carry credentials in query strings and form bodies.
pub fn is_secret_param(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 14] = [
        b"password",
        b"passwd",
        b"pwd",
        b"pass",
        b"token",
        b"access_token",
        b"refresh_token",
        b"id_token",
        b"api_key",
        b"apikey",
        b"secret",
        b"client_secret",
        b"auth",
        b"key",
    ];
    (3..=13).contains(&name.len()) && NAMES.iter().any(|n| n.eq_ignore_ascii_case(name))
}

fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

fn redacted(out: &mut String, len: usize) {
    out.push_str("<redacted, ");
    let (buf, start) = crate::report::decimal(len as u64);
    out.extend(buf[start..].iter().map(|&d| char::from(d)));
    out.push_str(if len == 1 { " byte>" } else { " bytes>" });
}

/// Collects the sensitive items of one message.
#[derive(Debug, Default, Clone, Copy)]
pub struct Rules {
    /// Show values instead of `<redacted, N bytes>` (`--show-secrets`).
    pub reveal: bool,
}

impl Rules {
    /// Looks at one header field; pushes what it reveals. `name` as on the wire.
    pub fn header(&self, name: &[u8], value: &[u8], out: &mut Vec<Sensitive>) {
        let n = name.len();
        // Every name below starts with one of these letters: most headers end here.
        if !matches!(
            name.first().map(u8::to_ascii_lowercase),
            Some(b'a' | b'c' | b'p' | b's' | b'x')
        ) {
            return;
        }
        if n == 13 && name.eq_ignore_ascii_case(b"authorization")
            || n == 19 && name.eq_ignore_ascii_case(b"proxy-authorization")
        {
            let value = trim(value);
            let (scheme, cred) = match memchr::memchr(b' ', value) {
                Some(i) => (&value[..i], trim(&value[i + 1..])),
                None => (value, &b""[..]),
            };
            let mut label = String::with_capacity(n + 1 + scheme.len());
            label.extend(name.iter().map(|b| char::from(b.to_ascii_lowercase())));
            label.push(':');
            label.push_str(&lossy(scheme).to_ascii_lowercase());
            let mut ev = String::with_capacity(64);
            ev.push_str(if n == 13 {
                "Authorization: "
            } else {
                "Proxy-Authorization: "
            });
            ev.push_str(&lossy(scheme));
            ev.push(' ');
            self.value(&mut ev, cred);
            push(out, label, ev);
        } else if n == 6 && name.eq_ignore_ascii_case(b"cookie") {
            let mut ev = String::from("Cookie: ");
            self.cookies(&mut ev, value, b';');
            push(out, "cookie".into(), ev);
        } else if n == 10 && name.eq_ignore_ascii_case(b"set-cookie") {
            // Only the cookie itself, not its attributes (Path, Expires...).
            let first = value.split(|&b| b == b';').next().unwrap_or(value);
            let mut ev = String::from("Set-Cookie: ");
            self.cookies(&mut ev, first, b';');
            push(out, "set-cookie".into(), ev);
        } else if is_api_key_header(name) {
            let lower = lossy(name).to_ascii_lowercase();
            let mut ev = String::with_capacity(48);
            ev.push_str(&lossy(name));
            ev.push_str(": ");
            self.value(&mut ev, trim(value));
            push(out, format!("header:{lower}"), ev);
        }
    }

    /// `a=b&c=d` of a query string (`kind` "query") or a form body (`kind` "form").
    pub fn params(&self, kind: &str, params: &[u8], out: &mut Vec<Sensitive>) {
        if memchr::memchr(b'=', params).is_none() {
            return;
        }
        for pair in params.split(|&b| b == b'&') {
            let Some(eq) = memchr::memchr(b'=', pair) else {
                continue;
            };
            let (name, value) = (&pair[..eq], &pair[eq + 1..]);
            if !is_secret_param(name) {
                continue;
            }
            let name = lossy(name).to_ascii_lowercase();
            let mut ev = String::with_capacity(48);
            ev.push_str(kind);
            ev.push(' ');
            ev.push_str(&name);
            ev.push('=');
            self.value(&mut ev, value);
            push(out, format!("{kind}:{name}"), ev);
        }
    }

    fn value(&self, out: &mut String, v: &[u8]) {
        if self.reveal {
            out.push_str(&lossy(v));
        } else {
            redacted(out, v.len());
        }
    }

    /// `name=<redacted, N bytes>; ...`: cookie names are shown, values are not.
    fn cookies(&self, out: &mut String, v: &[u8], sep: u8) {
        for (i, c) in v
            .split(|&b| b == sep)
            .map(trim)
            .filter(|c| !c.is_empty())
            .enumerate()
        {
            if i > 0 {
                out.push_str("; ");
            }
            if i == 16 {
                out.push_str("...");
                break;
            }
            match memchr::memchr(b'=', c) {
                Some(eq) => {
                    out.push_str(&lossy(&c[..eq]));
                    out.push('=');
                    self.value(out, &c[eq + 1..]);
                }
                None => self.value(out, c),
            }
        }
    }
}

fn push(out: &mut Vec<Sensitive>, label: String, evidence: String) {
    if out.len() < 32 {
        out.push(Sensitive { label, evidence });
    }
}

fn trim(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t' | b'\r'] = v {
        v = rest;
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_is_redacted_unless_revealed() {
        let mut out = Vec::new();
        Rules::default().header(b"Authorization", b"Basic dXNlcjpwYXNzd29yZA==", &mut out);
        Rules::default().header(b"cookie", b"session=abc123; theme=dark", &mut out);
        Rules::default().header(b"Set-Cookie", b"id=42; Path=/; HttpOnly", &mut out);
        Rules::default().header(b"X-Api-Key", b"k", &mut out);
        Rules::default().params("query", b"user=bob&password=hunter2&x", &mut out);
        let got: Vec<(&str, &str)> = out
            .iter()
            .map(|s| (s.label.as_str(), s.evidence.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "authorization:basic",
                    "Authorization: Basic <redacted, 20 bytes>"
                ),
                (
                    "cookie",
                    "Cookie: session=<redacted, 6 bytes>; theme=<redacted, 4 bytes>"
                ),
                ("set-cookie", "Set-Cookie: id=<redacted, 2 bytes>"),
                ("header:x-api-key", "X-Api-Key: <redacted, 1 byte>"),
                ("query:password", "query password=<redacted, 7 bytes>"),
            ]
        );
        let mut shown = Vec::new();
        Rules { reveal: true }.header(b"authorization", b"Bearer abc.def", &mut shown);
        assert_eq!(shown[0].label, "authorization:bearer");
        assert_eq!(shown[0].evidence, "Authorization: Bearer abc.def");
        // No value anywhere in the redacted evidence.
        assert!(
            !got.iter()
                .any(|(_, e)| e.contains("hunter2") || e.contains("abc123"))
        );
    }
}
