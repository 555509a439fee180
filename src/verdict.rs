//! How a run ends: its verdict and exit code, decided by one rule from the run's results alone, so a
//! run and the merge of its folders (`run --worker`, `merge`) always end the same way.
//!
//! The rule, in order: a failed check is a conformance failure; else a breached threshold; else a
//! workload that could not run, or a run where flows started but none completed, could not happen.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::checks::{CheckResult, Status};
use crate::exit;
use crate::metrics::FlowCounts;
use crate::thresholds::ThresholdResult;

/// How the run ended, and its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Pass,
    ConformanceFailure,
    ThresholdBreached,
    /// The run could not happen (nothing answered).
    Error,
}

impl Verdict {
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass => exit::PASS,
            Verdict::Error => exit::CANNOT_RUN,
            Verdict::ConformanceFailure => exit::CONFORMANCE_FAILURE,
            Verdict::ThresholdBreached => exit::THRESHOLD_BREACHED,
        }
    }

    /// A failed check outranks a breached threshold.
    pub fn of(checks: &[CheckResult], thresholds: &[ThresholdResult]) -> Self {
        if checks.iter().any(|c| c.status == Status::Fail) {
            Verdict::ConformanceFailure
        } else if thresholds.iter().any(|t| !t.passed) {
            Verdict::ThresholdBreached
        } else {
            Verdict::Pass
        }
    }

    /// The verdict as a report's headline says it.
    pub fn headline(self) -> &'static str {
        match self {
            Verdict::Pass => "PASS",
            Verdict::ConformanceFailure => "CONFORMANCE FAILURE",
            Verdict::ThresholdBreached => "THRESHOLD BREACHED",
            Verdict::Error => "THE RUN COULD NOT HAPPEN",
        }
    }
}

/// What the verdict is decided from.
pub struct Evidence<'a> {
    pub checks: &'a [CheckResult],
    pub thresholds: &'a [ThresholdResult],
    pub flows: &'a BTreeMap<String, FlowCounts>,
    pub errors: &'a BTreeMap<String, u64>,
    /// The workload could not run (goose refused it), on this run or any merged worker.
    pub workload_failed: bool,
}

/// The verdict, and a note for the reader when no flow completed.
pub fn decide(evidence: &Evidence<'_>) -> (Verdict, Option<String>) {
    let mut verdict = Verdict::of(evidence.checks, evidence.thresholds);
    if evidence.workload_failed && verdict == Verdict::Pass {
        verdict = Verdict::Error;
    }
    let started: u64 = evidence.flows.values().map(|f| f.started).sum();
    let completed: u64 = evidence.flows.values().map(|f| f.succeeded + f.nonconforming).sum();
    if started == 0 || completed > 0 {
        return (verdict, None);
    }
    if verdict == Verdict::Pass {
        verdict = Verdict::Error;
    }
    let top: Vec<String> = evidence.errors.iter().map(|(k, v)| format!("{k} × {v}")).collect();
    (verdict, Some(format!("no flow completed ({})", top.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(status: Status) -> CheckResult {
        CheckResult {
            name: "sign_in".into(),
            description: String::new(),
            status,
            passed: 0,
            failed: 0,
            reason: String::new(),
        }
    }

    fn flows(started: u64, succeeded: u64) -> BTreeMap<String, FlowCounts> {
        BTreeMap::from([(
            "login".to_string(),
            FlowCounts { started, succeeded, errored: started - succeeded, nonconforming: 0 },
        )])
    }

    #[test]
    fn no_completed_flow_is_an_error_unless_a_check_failed_and_is_always_noted() {
        let errors = BTreeMap::from([("OtpTimeout".to_string(), 3)]);
        let none_completed = flows(3, 0);
        let passing = [check(Status::Pass)];
        let evidence = Evidence {
            checks: &passing,
            thresholds: &[],
            flows: &none_completed,
            errors: &errors,
            workload_failed: false,
        };
        assert_eq!(decide(&evidence), (Verdict::Error, Some("no flow completed (OtpTimeout × 3)".into())));
        let failing = [check(Status::Fail)];
        let evidence = Evidence { checks: &failing, ..evidence };
        assert_eq!(decide(&evidence).0, Verdict::ConformanceFailure, "a failed check outranks it");
        assert!(decide(&evidence).1.is_some(), "the note is there whatever the verdict");
        let some_completed = flows(3, 1);
        let evidence = Evidence { checks: &passing, flows: &some_completed, ..evidence };
        assert_eq!(decide(&evidence), (Verdict::Pass, None));
        assert_eq!(decide(&Evidence { workload_failed: true, ..evidence }).0, Verdict::Error);
    }
}
