//! Certificate summaries for the report: subject, issuer, subject alternative names (DNS names,
//! URIs such as SPIFFE IDs, IP addresses, e-mail), and expiry. Parsing is `x509-parser`'s; a
//! certificate it cannot read is reported with `parse_error` instead of being dropped.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CertInfo {
    pub subject: Option<String>,
    pub issuer: Option<String>,
    pub san: Vec<String>,
    /// RFC 3339, UTC.
    pub not_after: Option<String>,
    pub not_before: Option<String>,
    pub der_len: usize,
    pub parse_error: Option<String>,
}

pub fn describe(der: &[u8]) -> CertInfo {
    use x509_parser::prelude::*;
    let mut info = CertInfo {
        der_len: der.len(),
        ..CertInfo::default()
    };
    let cert = match X509Certificate::from_der(der) {
        Ok((_, c)) => c,
        Err(e) => {
            info.parse_error = Some(e.to_string());
            return info;
        }
    };
    info.subject = Some(cert.subject().to_string());
    info.issuer = Some(cert.issuer().to_string());
    info.not_after = Some(rfc3339(cert.validity().not_after.timestamp()));
    info.not_before = Some(rfc3339(cert.validity().not_before.timestamp()));
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            info.san.push(match name {
                GeneralName::DNSName(d) => (*d).to_string(),
                GeneralName::URI(u) => (*u).to_string(),
                GeneralName::RFC822Name(m) => format!("email:{m}"),
                GeneralName::IPAddress(b) => match b.len() {
                    4 => std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3]).to_string(),
                    16 => {
                        let mut a = [0u8; 16];
                        a.copy_from_slice(b);
                        std::net::Ipv6Addr::from(a).to_string()
                    }
                    _ => format!("ip:{b:02x?}"),
                },
                other => format!("{other:?}"),
            });
        }
    }
    info
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub fn rfc3339(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(super::rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}

/// A certificate summary shared between flows, with its JSON rendered once. Serializing it
/// writes that JSON as is (serde_json `RawValue`); deserializing reads a [`CertInfo`].
#[derive(Debug, Clone)]
pub struct Cert(std::sync::Arc<(CertInfo, Box<serde_json::value::RawValue>)>);

impl Cert {
    pub fn new(info: CertInfo) -> Cert {
        let json = serde_json::value::to_raw_value(&info).unwrap_or_else(|_| {
            // Serializing plain strings and numbers cannot fail; keep a valid value regardless.
            serde_json::value::RawValue::from_string("{}".into()).unwrap_or_default()
        });
        Cert(std::sync::Arc::new((info, json)))
    }
}

impl Cert {
    /// The summary's JSON, rendered once.
    pub fn json(&self) -> &str {
        self.0.1.get()
    }
}

impl std::ops::Deref for Cert {
    type Target = CertInfo;
    fn deref(&self) -> &CertInfo {
        &self.0.0
    }
}

impl PartialEq for Cert {
    fn eq(&self, other: &Cert) -> bool {
        self.0.0 == other.0.0
    }
}
impl Eq for Cert {}

impl Serialize for Cert {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.1.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Cert {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cert, D::Error> {
        CertInfo::deserialize(d).map(Cert::new)
    }
}

/// Certificate summaries already made, keyed by the full DER (exact, no hash collisions). A
/// mesh presents the same few certificates on every connection; parsing, copying and escaping
/// them again for every connection was a large share of all instructions on the benchmark.
#[derive(Debug, Default)]
pub struct CertCache {
    map: rustc_hash::FxHashMap<Vec<u8>, Cert>,
}

pub(crate) const CACHE_ENTRIES: usize = 1024;

impl CertCache {
    pub fn describe(&mut self, der: &[u8]) -> Cert {
        if let Some(c) = self.map.get(der) {
            return c.clone();
        }
        let cert = Cert::new(describe(der));
        if self.map.len() >= CACHE_ENTRIES {
            self.map.clear();
        }
        self.map.insert(der.to_vec(), cert.clone());
        cert
    }
}
