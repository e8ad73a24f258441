//! Role: what decides a run and the one line that says how it ended. A [`Gate`] holds the
//! `--fail-on` rules (check's defaults for `analyze` and `sniff`), counts the flows each rule
//! catches, and concludes: the outcome, the summary's `check` object and its `answer`, from
//! which the binaries take their exit code, so the last line, the JSON and the exit code cannot
//! disagree (docs/check.md has the table). Also the human number formats of that line.

use super::{FlowRecord, InputErrorKind, Summary};
use crate::policy::Kind;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What fails a run when neither `--fail-on` nor `--expect` is given (and what `analyze`
/// and `sniff` judge by).
pub const DEFAULT_FAIL_ON: [&str; 2] = ["plaintext-leak", "sidecar-bypass"];

/// Finding rules (besides the verdict kinds) that `--fail-on` accepts.
pub const FINDING_RULES: [&str; 3] = ["sensitive-data", "weak-tls-version", "rejected"];

/// How many failing flows a gate describes in words (all are counted).
const LISTED: usize = 20;

/// How a run ended. Each outcome has one exit code ([`Outcome::exit_code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Outcome {
    /// Nothing failed; exit 0.
    Pass,
    /// A `--fail-on` rule caught a flow, or an expectation did not hold; exit 1.
    Fail,
    /// A valid capture with no flow to judge (no packets, or none TCP or QUIC): usually the
    /// wrong interface or filter; exit 1, as nothing was shown to be clean.
    NoData,
    /// `--profile none`: facts only, nothing judged; exit 0.
    NoVerdict,
    /// An input was damaged part-way; exit 3 whatever was found in what could be read (the
    /// line says it, `failed_rules` counts it, so a gate that fails on 1 fails on 3 too).
    Partial,
    /// An input is not a capture or could not be read; exit 2.
    Error,
}

impl Outcome {
    pub fn exit_code(self) -> u8 {
        match self {
            Outcome::Pass | Outcome::NoVerdict => 0,
            Outcome::Fail | Outcome::NoData => 1,
            Outcome::Error => 2,
            Outcome::Partial => 3,
        }
    }
    /// The word the answer line starts with.
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::NoData => "NO DATA",
            Outcome::NoVerdict => "NO VERDICT",
            Outcome::Partial => "PARTIAL",
            Outcome::Error => "ERROR",
        }
    }
}

/// The summary's `check` object: what decided the run and what failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// Verdict kinds and finding rules that fail the run (empty: only `--expect` decides).
    pub fail_on: Vec<String>,
    /// Flows caught per `--fail-on` name (names that caught none are left out).
    pub failed_rules: BTreeMap<String, u64>,
    /// The expectations file (`--expect`), if one was given.
    pub expect: Option<String>,
    /// Expectations in that file that were checked.
    pub expectations: u64,
    /// Expectations that did not hold, in words.
    pub expectations_failed: Vec<String>,
    pub result: Outcome,
}

/// What an expectations file said about the run.
#[derive(Debug, Clone)]
pub struct ExpectResult {
    pub path: String,
    pub checked: u64,
    pub misses: Vec<String>,
}

/// A `--fail-on` name that is neither a verdict kind nor a finding rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown kind `{name}`; verdict kinds are {}, finding rules {}",
    Kind::ALL.map(Kind::name).join(", "),
    FINDING_RULES.join(", ")
)]
#[non_exhaustive]
pub struct UnknownRule {
    pub name: String,
}

/// The `--fail-on` rules of a run and the flows they caught.
#[derive(Debug, Clone)]
pub struct Gate {
    fail_on: Vec<String>,
    failed: BTreeMap<String, u64>,
    failing: Vec<String>,
    failing_flows: u64,
}

impl Default for Gate {
    /// Check's default rules.
    fn default() -> Self {
        Gate {
            fail_on: DEFAULT_FAIL_ON.map(String::from).to_vec(),
            failed: BTreeMap::new(),
            failing: Vec::new(),
            failing_flows: 0,
        }
    }
}

impl Gate {
    /// A gate failing on `names` (blank names are ignored, so `--fail-on ""` fails on nothing).
    pub fn new<S: AsRef<str>>(names: &[S]) -> Result<Gate, UnknownRule> {
        let mut fail_on: Vec<String> = Vec::new();
        for n in names {
            let n = n.as_ref().trim();
            if n.is_empty() || fail_on.iter().any(|f| f == n) {
                continue;
            }
            if Kind::parse(n).is_none() && !FINDING_RULES.contains(&n) {
                return Err(UnknownRule { name: n.into() });
            }
            fail_on.push(n.into());
        }
        Ok(Gate {
            fail_on,
            ..Gate::default()
        })
    }

    pub fn fail_on(&self) -> &[String] {
        &self.fail_on
    }

    fn is_default(&self) -> bool {
        self.fail_on == DEFAULT_FAIL_ON
    }

    /// Counts the rules `r` breaks; true when it breaks one.
    pub fn observe(&mut self, r: &FlowRecord) -> bool {
        let Some(v) = &r.verdict else { return false };
        let mut hit: Option<String> = None;
        for name in &self.fail_on {
            let finding = v.findings.iter().find(|f| &f.rule == name);
            if v.kind.name() != name && finding.is_none() {
                continue;
            }
            *self.failed.entry(name.clone()).or_default() += 1;
            if hit.is_none() {
                hit = Some(match finding {
                    Some(f) if v.kind.name() != name => format!("{} ({})", f.rule, f.evidence),
                    _ => name.clone(),
                });
            }
        }
        let Some(what) = hit else { return false };
        self.failing_flows += 1;
        if self.failing.len() < LISTED {
            self.failing.push(format!(
                "flow {} {} -> {}: {what}",
                r.id, r.client, r.server
            ));
        }
        true
    }

    /// The failing flows described (at most 20) and how many failed in all.
    pub fn failing(&self) -> (&[String], u64) {
        (&self.failing, self.failing_flows)
    }

    /// Decides the run: fills `s.check` and `s.answer` from what the gate caught and what the
    /// expectations said. Returns the outcome.
    pub fn conclude(&self, s: &mut Summary, expect: Option<&ExpectResult>) -> Outcome {
        self.conclude_with(s, &self.failed, expect)
    }

    /// The same from the verdict counts alone (enough for verdict-kind rules such as the
    /// defaults; what library callers that do not observe records get).
    pub fn conclude_counts(&self, s: &mut Summary) -> Outcome {
        let failed = self
            .fail_on
            .iter()
            .filter_map(|n| Some((n.clone(), s.verdicts.get(Kind::parse(n)?))))
            .filter(|(_, c)| *c > 0)
            .collect();
        self.conclude_with(s, &failed, None)
    }

    fn conclude_with(
        &self,
        s: &mut Summary,
        failed: &BTreeMap<String, u64>,
        expect: Option<&ExpectResult>,
    ) -> Outcome {
        let mut fails: Vec<String> = self
            .fail_on
            .iter()
            .filter_map(|n| failed.get(n).filter(|c| **c > 0).map(|c| phrase(n, *c)))
            .collect();
        if !self.is_default() && !fails.is_empty() {
            let last = fails.pop().unwrap_or_default();
            fails.push(format!("{last} (--fail-on {})", self.fail_on.join(",")));
        }
        if let Some(e) = expect.filter(|e| !e.misses.is_empty()) {
            let n = e.misses.len() as u64;
            fails.push(format!(
                "{} not met ({})",
                count(n, "expectation", "expectations"),
                e.path
            ));
        }
        let unreadable: Vec<&super::InputError> = s
            .errors
            .iter()
            .filter(|e| e.kind != InputErrorKind::Damaged)
            .collect();
        let (outcome, line) = if !unreadable.is_empty() {
            let what: Vec<String> = unreadable
                .iter()
                .map(|e| match e.kind {
                    InputErrorKind::NotACapture => format!("{} is not a capture", e.file),
                    _ => format!("{} could not be read", e.file),
                })
                .collect();
            let rest = if s.flows == 0 {
                "nothing was judged".to_string()
            } else {
                format!("from the other inputs: {}", flows_read(s))
            };
            (Outcome::Error, format!("{}; {rest}", what.join(", ")))
        } else if s.partial {
            // Damage decides the exit code (3, as DEVELOPERS.md and the README promise for a
            // damaged capture); what failed in the part that was read is said on the same line.
            let at = s.errors.first().map_or_else(String::new, |e| {
                let mut w = format!("{} is damaged", e.file);
                if let Some(o) = e.offset {
                    w.push_str(&format!(" at byte {}", thousands(o)));
                }
                w
            });
            let line = if fails.is_empty() {
                format!("{at}; {} read before the damage", flows_read(s))
            } else {
                format!("{at}; in what could be read: FAIL: {}", fails.join(", "))
            };
            (Outcome::Partial, line)
        } else if !fails.is_empty() {
            (Outcome::Fail, fails.join(", "))
        } else if expect.is_none() && s.flows == 0 {
            let line = if s.packets == 0 {
                format!(
                    "0 packets in {}: wrong interface or filter?",
                    s.files.join(", ")
                )
            } else {
                let kinds: Vec<String> = s
                    .non_tcp
                    .nonzero()
                    .iter()
                    .map(|(k, n)| format!("{k} {}", thousands(*n)))
                    .collect();
                format!(
                    "{} but no TCP or QUIC flow ({}): wrong interface or filter?",
                    count(s.packets, "packet", "packets"),
                    kinds.join(", ")
                )
            };
            (Outcome::NoData, line)
        } else if s.profile == "none" && expect.is_none() {
            (
                Outcome::NoVerdict,
                format!(
                    "{}, facts only (--profile none)",
                    count(s.flows, "flow", "flows")
                ),
            )
        } else {
            let mut line = flows_read(s);
            if let Some(e) = expect {
                line.push_str(&format!(
                    "; {} met ({})",
                    count(e.checked, "expectation", "expectations"),
                    e.path
                ));
            }
            if self.fail_on.is_empty() && expect.is_none() {
                line = format!("nothing fails the run (--fail-on \"\"): {line}");
            } else if !self.fail_on.is_empty() && !self.is_default() {
                line.push_str(&format!(
                    "; nothing caught by --fail-on {}",
                    self.fail_on.join(",")
                ));
            }
            (Outcome::Pass, line)
        };
        s.answer = format!("{}: {line}", outcome.word());
        s.check = Some(CheckResult {
            fail_on: self.fail_on.clone(),
            failed_rules: failed
                .iter()
                .filter(|(_, c)| **c > 0)
                .map(|(k, c)| (k.clone(), *c))
                .collect(),
            expect: expect.map(|e| e.path.clone()),
            expectations: expect.map_or(0, |e| e.checked),
            expectations_failed: expect.map(|e| e.misses.clone()).unwrap_or_default(),
            result: outcome,
        });
        outcome
    }
}

/// `1 flow, all mTLS`, `4 flows (1 mtls, 3 tls)`, `3 flows (tls 2, http 1)` (unjudged).
fn flows_read(s: &Summary) -> String {
    let flows = count(s.flows, "flow", "flows");
    let v = &s.verdicts;
    let judged = v.total();
    if judged > 0 && v.mtls == judged && judged == s.flows {
        return format!("{flows}, all mTLS");
    }
    let mut parts = Vec::new();
    if judged > 0 {
        for k in Kind::ALL {
            let n = v.get(k);
            if n > 0 {
                parts.push(format!("{} {}", thousands(n), k.name()));
            }
        }
    } else {
        for p in crate::classify::Protocol::ALL {
            let n = s.protocols.get(p);
            if n > 0 {
                parts.push(format!("{} {n}", p.name()));
            }
        }
    }
    if parts.is_empty() {
        flows
    } else {
        format!("{flows} ({})", parts.join(", "))
    }
}

/// How the answer names the flows a rule caught.
fn phrase(name: &str, n: u64) -> String {
    match name {
        "plaintext-leak" => count(n, "plaintext leak", "plaintext leaks"),
        "sidecar-bypass" => count(n, "sidecar bypass", "sidecar bypasses"),
        _ if Kind::parse(name).is_some() => {
            format!(
                "{} {name} {}",
                thousands(n),
                if n == 1 { "flow" } else { "flows" }
            )
        }
        _ => format!("{} with {name}", count(n, "flow", "flows")),
    }
}

/// `1 flow`, `2 flows`, `1,410 packets`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// `1410` -> `1,410` (human output only; JSON numbers stay numbers).
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_by_three() {
        for (n, s) in [
            (0, "0"),
            (999, "999"),
            (1000, "1,000"),
            (1_918_742, "1,918,742"),
        ] {
            assert_eq!(thousands(n), s);
        }
        assert_eq!(count(1, "flow", "flows"), "1 flow");
        assert_eq!(count(12_000, "flow", "flows"), "12,000 flows");
    }

    #[test]
    fn every_outcome_has_its_word_and_exit_code() {
        let mut s = Summary {
            profile: "strict".into(),
            files: vec!["a.pcap".into()],
            ..Summary::default()
        };
        assert_eq!(Gate::default().conclude(&mut s, None), Outcome::NoData);
        assert!(
            s.answer.starts_with("NO DATA: 0 packets in a.pcap"),
            "{}",
            s.answer
        );
        s.flows = 2;
        s.verdicts.plaintext_leak = 1;
        s.verdicts.mtls = 1;
        assert_eq!(Gate::default().conclude_counts(&mut s), Outcome::Fail);
        assert_eq!(s.answer, "FAIL: 1 plaintext leak");
        let none = Gate::new(&[""]).unwrap();
        assert_eq!(none.conclude(&mut s, None), Outcome::Pass);
        assert_eq!(
            s.answer,
            "PASS: nothing fails the run (--fail-on \"\"): 2 flows (1 mtls, 1 plaintext-leak)"
        );
        let o = Gate::new(&["sensitive-data"])
            .unwrap()
            .conclude(&mut s, None);
        assert_eq!((o, o.exit_code()), (Outcome::Pass, 0));
        assert!(Gate::new(&["nonsense"]).is_err());
        for (o, code) in [
            (Outcome::Fail, 1),
            (Outcome::NoData, 1),
            (Outcome::Error, 2),
            (Outcome::Partial, 3),
            (Outcome::NoVerdict, 0),
        ] {
            assert_eq!(o.exit_code(), code, "{o:?}");
        }
    }
}
