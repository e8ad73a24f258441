//! Role: `meshsniff check --expect FILE`: a small JSON file of expectations about a capture's
//! verdicts (docs/check.md), and the comparison that says what differed. Unknown keys are an
//! error, so a typo cannot make an expectation silently vacuous.

use anyhow::{Context, Result, bail};
use meshsniff::policy::Kind;
use meshsniff::report::{FlowRecord, Summary};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    min_flows: Option<u64>,
    #[serde(default)]
    max_flows: Option<u64>,
    /// Verdict kinds that must not occur.
    #[serde(default)]
    none: Vec<String>,
    /// Exact number of flows per verdict kind.
    #[serde(default)]
    counts: BTreeMap<String, u64>,
    /// Rules about the flows to one server port.
    #[serde(default)]
    flows: Vec<FlowRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FlowRule {
    /// Server port.
    port: u16,
    /// Only flows on loopback (true) or off it (false).
    #[serde(default)]
    loopback: Option<bool>,
    /// Only flows whose protocol is this (`tls`, `http`...).
    #[serde(default)]
    protocol: Option<String>,
    /// Only flows from this client address (no port: `10.78.0.3`, `::1`).
    #[serde(default)]
    client: Option<String>,
    /// The verdict every selected flow must have.
    verdict: String,
    /// At least this many flows must be selected (default 1).
    #[serde(default = "one")]
    min: u64,
}

fn one() -> u64 {
    1
}

/// What `check` remembers of each flow.
#[derive(Debug)]
pub struct Seen {
    id: u64,
    port: u16,
    client: String,
    loopback: bool,
    protocol: &'static str,
    verdict: Option<Kind>,
    label: String,
}

impl Seen {
    pub fn of(r: &FlowRecord) -> Seen {
        let port = r
            .server
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or(0);
        Seen {
            id: r.id,
            port,
            client: client_address(&r.client).to_string(),
            loopback: r.loopback,
            protocol: r.protocol.name(),
            verdict: r.verdict.as_ref().map(|v| v.kind),
            label: format!("{} -> {}", r.client, r.server),
        }
    }
}

/// The address of `ADDR:PORT` or `[ADDR]:PORT`, brackets dropped.
fn client_address(endpoint: &str) -> &str {
    let addr = endpoint.rsplit_once(':').map_or(endpoint, |(a, _)| a);
    addr.trim_start_matches('[').trim_end_matches(']')
}

#[derive(Debug)]
pub struct Expectations {
    pub path: String,
    file: File,
}

fn kind(s: &str, path: &str) -> Result<Kind> {
    match Kind::parse(s) {
        Some(k) => Ok(k),
        None => bail!(
            "{path}: unknown verdict `{s}`; kinds are {}",
            Kind::ALL.map(Kind::name).join(", ")
        ),
    }
}

impl Expectations {
    pub fn load(path: &str) -> Result<Expectations> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read expectations {path}"))?;
        let file: File = serde_json::from_str(&text)
            .with_context(|| format!("{path}: not a valid expectations file (docs/check.md)"))?;
        for k in file.none.iter().chain(file.counts.keys()) {
            kind(k, path)?;
        }
        for r in &file.flows {
            kind(&r.verdict, path)?;
        }
        Ok(Expectations {
            path: path.to_string(),
            file,
        })
    }

    /// How many expectations the file states (each bound, kind, count and flow rule).
    pub fn len(&self) -> u64 {
        let f = &self.file;
        (f.min_flows.is_some() as usize
            + f.max_flows.is_some() as usize
            + f.none.len()
            + f.counts.len()
            + f.flows.len()) as u64
    }

    /// Every expectation that does not hold, in words.
    pub fn check(&self, seen: &[Seen], summary: &Summary) -> Vec<String> {
        let f = &self.file;
        let mut misses = Vec::new();
        let flows = seen.len() as u64;
        if let Some(min) = f.min_flows {
            if flows < min {
                misses.push(format!("expected at least {min} flows, saw {flows}"));
            }
        }
        if let Some(max) = f.max_flows {
            if flows > max {
                misses.push(format!("expected at most {max} flows, saw {flows}"));
            }
        }
        for name in &f.none {
            let Some(k) = Kind::parse(name) else { continue };
            let bad: Vec<String> = seen
                .iter()
                .filter(|s| s.verdict == Some(k))
                .map(|s| format!("flow {} ({})", s.id, s.label))
                .collect();
            if !bad.is_empty() {
                misses.push(format!(
                    "expected no {name}, saw {}: {}",
                    bad.len(),
                    bad.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        for (name, want) in &f.counts {
            let Some(k) = Kind::parse(name) else { continue };
            let got = summary.verdicts.get(k);
            if got != *want {
                misses.push(format!("expected {want} {name} flows, saw {got}"));
            }
        }
        for rule in &f.flows {
            let Some(want) = Kind::parse(&rule.verdict) else {
                continue;
            };
            let chosen: Vec<&Seen> = seen
                .iter()
                .filter(|s| s.port == rule.port)
                .filter(|s| rule.loopback.is_none_or(|l| s.loopback == l))
                .filter(|s| rule.protocol.as_deref().is_none_or(|p| s.protocol == p))
                .filter(|s| rule.client.as_deref().is_none_or(|c| s.client == c))
                .collect();
            let mut place = match rule.loopback {
                Some(true) => " on loopback",
                Some(false) => " off loopback",
                None => "",
            }
            .to_string();
            if let Some(c) = &rule.client {
                place.push_str(&format!(" from {c}"));
            }
            if (chosen.len() as u64) < rule.min {
                misses.push(format!(
                    "expected at least {} flows to port {}{place}, saw {}",
                    rule.min,
                    rule.port,
                    chosen.len()
                ));
            }
            for s in chosen.iter().filter(|s| s.verdict != Some(want)) {
                misses.push(format!(
                    "port {}{place}: flow {} ({}) is {}, expected {}",
                    rule.port,
                    s.id,
                    s.label,
                    s.verdict.map_or("unjudged", Kind::name),
                    want.name()
                ));
            }
        }
        misses
    }
}
