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

/// Creates (or truncates) `path` with mode 0600.
pub fn create_private(path: &str) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(test)]
mod tests {
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
