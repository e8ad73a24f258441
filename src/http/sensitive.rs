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

/// Parameter names that carry credentials in query strings, fragments and form bodies,
/// compared as the header names are: case-insensitively, exactly, after percent-decoding and
/// with `-` read as `_` (docs/schema.md lists them). Names ending in `_token`, `_secret` or
/// `_password` count too (`refresh_token`, `db_password`).
pub fn is_secret_param(name: &[u8]) -> bool {
    const NAMES: [&[u8]; 33] = [
        b"password",
        b"passwd",
        b"pwd",
        b"pass",
        b"passphrase",
        b"token",
        b"access_token",
        b"refresh_token",
        b"id_token",
        b"auth_token",
        b"api_key",
        b"apikey",
        b"secret",
        b"client_secret",
        b"auth",
        b"key",
        b"session",
        b"sessionid",
        b"session_id",
        b"sid",
        b"sig",
        b"signature",
        b"jwt",
        b"credential",
        b"credentials",
        b"private_token",
        b"otp",
        b"x_amz_signature",
        b"x_amz_credential",
        b"x_amz_security_token",
        b"x_goog_signature",
        b"x_goog_credential",
        b"code_verifier",
    ];
    const SUFFIXES: [&[u8]; 3] = [b"_token", b"_secret", b"_password"];
    // Normalised on the stack: no allocation per parameter.
    let mut buf = [0u8; 64];
    let mut n = 0;
    let mut i = 0;
    while i < name.len() {
        if n == buf.len() {
            return false;
        }
        let mut b = name[i];
        if b == b'%' {
            if let (Some(h), Some(l)) = (
                name.get(i + 1).and_then(|c| (*c as char).to_digit(16)),
                name.get(i + 2).and_then(|c| (*c as char).to_digit(16)),
            ) {
                b = (h * 16 + l) as u8;
                i += 2;
            }
        }
        buf[n] = match b.to_ascii_lowercase() {
            b'-' => b'_',
            c => c,
        };
        n += 1;
        i += 1;
    }
    let name = &buf[..n];
    NAMES.contains(&name)
        || SUFFIXES
            .iter()
            .any(|s| name.len() > s.len() && name.ends_with(s))
}

/// The userinfo of an absolute-form target (`http://user:pass@host/...`), as a byte range.
fn userinfo_span(t: &[u8]) -> Option<(usize, usize)> {
    let colon = memchr::memchr(b':', t.get(..t.len().min(32))?)?;
    let scheme = &t[..colon];
    if scheme.is_empty()
        || !scheme[0].is_ascii_alphabetic()
        || !scheme
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        || !t[colon..].starts_with(b"://")
    {
        return None;
    }
    let start = colon + 3;
    let rest = &t[start..];
    let end = rest
        .iter()
        .position(|b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let at = memchr::memrchr(b'@', &rest[..end])?;
    Some((start, start + at))
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
            // The scheme is shown only when it is a known one: a value without a scheme
            // (`Authorization: 3f9a…`, an API key as many services take it) or with a word
            // before the first space that is part of the secret would otherwise be printed
            // whole as the "scheme" (found by the http fuzz target).
            let (scheme, cred) = match memchr::memchr(b' ', value) {
                Some(i) if is_known_scheme(&value[..i]) => (&value[..i], trim(&value[i + 1..])),
                _ if is_known_scheme(value) => (value, &b""[..]),
                _ => (&b"other"[..], value),
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
            if scheme != b"other" {
                ev.push_str(&lossy(scheme));
                ev.push(' ');
            }
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
        self.params_into(kind, params, out, None);
    }

    /// The parameters of `params`; with `shown`, also appends them to it as the report shows
    /// them (each credential value replaced by `<redacted, N bytes>`).
    fn params_into(
        &self,
        kind: &str,
        params: &[u8],
        out: &mut Vec<Sensitive>,
        mut shown: Option<&mut String>,
    ) {
        if memchr::memchr(b'=', params).is_none() {
            if let Some(s) = shown {
                s.push_str(&lossy(params));
            }
            return;
        }
        let mut rest = params;
        loop {
            // `#` too: a fragment holding a second `#` (`#a#token=…`, not valid URL syntax,
            // but pages parse fragments as they like) still has a token after it. The query
            // part never holds one (`target` splits it off at the first `#`).
            let end = rest
                .iter()
                .position(|&b| matches!(b, b'&' | b';' | b'#'))
                .unwrap_or(rest.len());
            let pair = &rest[..end];
            let secret = memchr::memchr(b'=', pair).filter(|&eq| is_secret_param(&pair[..eq]));
            match secret {
                Some(eq) => {
                    let (name, value) = (&pair[..eq], &pair[eq + 1..]);
                    if let Some(s) = shown.as_deref_mut() {
                        s.push_str(&lossy(name));
                        s.push('=');
                        self.value(s, value);
                    }
                    let lower = lossy(name).to_ascii_lowercase();
                    let mut ev = String::with_capacity(48);
                    ev.push_str(kind);
                    ev.push(' ');
                    ev.push_str(&lower);
                    ev.push('=');
                    self.value(&mut ev, value);
                    push(out, format!("{kind}:{lower}"), ev);
                }
                None => {
                    if let Some(s) = shown.as_deref_mut() {
                        s.push_str(&lossy(pair));
                    }
                }
            }
            if end == rest.len() {
                break;
            }
            if let Some(s) = shown.as_deref_mut() {
                s.push(char::from(rest[end]));
            }
            rest = &rest[end + 1..];
        }
    }

    /// The request target as the report stores and prints it: the userinfo of an
    /// absolute-form target and the value of every credential parameter (query and fragment)
    /// replaced by `<redacted, N bytes>` unless secrets are shown; what it hides is pushed to
    /// `out` (`userinfo`, `query:<name>`). Every path in the report is made by this function,
    /// so no printer ever holds a raw one.
    pub fn target(&self, t: &[u8], out: &mut Vec<Sensitive>) -> String {
        let mut s = String::with_capacity(t.len() + 8);
        let mut rest = t;
        if let Some((a, b)) = userinfo_span(t) {
            s.push_str(&lossy(&t[..a]));
            self.value(&mut s, &t[a..b]);
            self.userinfo(&t[a..b], out);
            rest = &t[b..];
        }
        match memchr::memchr2(b'?', b'#', rest) {
            None => s.push_str(&lossy(rest)),
            Some(q) => {
                s.push_str(&lossy(&rest[..=q]));
                let tail = &rest[q + 1..];
                // A fragment is not sent by browsers, but a token in one is still a token.
                match memchr::memchr(b'#', tail).filter(|_| rest[q] == b'?') {
                    Some(h) => {
                        self.params_into("query", &tail[..h], out, Some(&mut s));
                        s.push('#');
                        self.params_into("query", &tail[h + 1..], out, Some(&mut s));
                    }
                    None => self.params_into("query", tail, out, Some(&mut s)),
                }
            }
        }
        s
    }

    /// A `Host` or `:authority` value, its userinfo (if any) redacted as in `target`.
    pub fn authority(&self, v: &[u8], out: &mut Vec<Sensitive>) -> String {
        match memchr::memrchr(b'@', v) {
            None => lossy(v).into_owned(),
            Some(at) => {
                let mut s = String::with_capacity(v.len());
                self.value(&mut s, &v[..at]);
                s.push_str(&lossy(&v[at..]));
                self.userinfo(&v[..at], out);
                s
            }
        }
    }

    fn userinfo(&self, ui: &[u8], out: &mut Vec<Sensitive>) {
        let mut ev = String::from("URL userinfo ");
        self.value(&mut ev, ui);
        push(out, "userinfo".into(), ev);
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

/// Distinct sensitive items kept per message; a message that reaches it is reported as
/// truncated (`HttpFacts::truncated`).
pub const MAX_ITEMS: usize = 16;
/// A label is kept this far (an `Authorization` scheme is the peer's choice of length).
pub const MAX_LABEL: usize = 96;
/// Evidence is kept this far (cookie names are shown, and `--show-secrets` shows values).
pub const MAX_EVIDENCE: usize = 512;

/// `s` cut to at most `max` bytes at a character boundary, marked with `…`.
pub fn cut_to(s: &mut String, max: usize) -> bool {
    if s.len() <= max {
        return false;
    }
    let mut at = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    s.truncate(at);
    s.push('…');
    true
}

/// Each label once (its first evidence), so repeating one header cannot push out another.
fn push(out: &mut Vec<Sensitive>, mut label: String, mut evidence: String) {
    cut_to(&mut label, MAX_LABEL);
    if out.len() < MAX_ITEMS && !out.iter().any(|s| s.label == label) {
        cut_to(&mut evidence, MAX_EVIDENCE);
        out.push(Sensitive { label, evidence });
    }
}

/// Authentication schemes shown by name: IANA's HTTP Authentication Scheme Registry and the
/// common unregistered ones (NTLM, AWS SigV4, GitHub's `token`, Azure's `SharedKey`, …).
/// Any other first word may be part of the credential, so the label says `other` instead.
pub const KNOWN_SCHEMES: [&str; 24] = [
    "basic",
    "bearer",
    "concealed",
    "digest",
    "dpop",
    "gnap",
    "hoba",
    "mutual",
    "negotiate",
    "oauth",
    "privatetoken",
    "scram-sha-1",
    "scram-sha-256",
    "vapid",
    "ntlm",
    "kerberos",
    "aws4-hmac-sha256",
    "token",
    "apikey",
    "api-key",
    "key",
    "hawk",
    "sharedkey",
    "mac",
];

fn is_known_scheme(s: &[u8]) -> bool {
    KNOWN_SCHEMES
        .iter()
        .any(|k| s.eq_ignore_ascii_case(k.as_bytes()))
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
