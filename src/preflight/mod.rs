//! `otp-harness preflight SCENARIO` (and `run`, before its load, unless `--no-preflight`): checks a
//! deployed pool, its app client, the account's SES and Cognito's quotas against what the scenario
//! will ask of them, before the first sign-in — one verdict per line, pass / warn / fail / skip, also
//! written to `preflight.json` and `preflight.junit.xml`.
//!
//! `plan` estimates the load, `facts` reads the pool and the account (a call the caller may not make
//! is a skipped verdict, not a failure), `rules` turns both into verdicts.

pub mod facts;
pub mod plan;
pub mod rules;

use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::admin::{AdminClients, SesEndpoint};
use crate::cognito::ResolvedTarget;
use crate::scenario::Scenario;
pub use plan::Plan;

/// A verdict's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    /// The run can go on, but will measure or cost something other than expected.
    Warn,
    /// The run would fail or measure nothing useful.
    Fail,
    /// The fact was not readable (e.g. AccessDenied): the line says which call.
    Skip,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// What a verdict is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    Pool,
    Client,
    Ses,
    Quota,
    Cost,
}

/// One line of the preflight.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub id: &'static str,
    pub area: Area,
    pub status: Status,
    pub message: String,
}

impl Verdict {
    fn new(area: Area, id: &'static str, status: Status, message: impl Into<String>) -> Self {
        Self { id, area, status, message: message.into() }
    }
    pub fn pass(area: Area, id: &'static str, message: impl Into<String>) -> Self {
        Self::new(area, id, Status::Pass, message)
    }
    pub fn warn(area: Area, id: &'static str, message: impl Into<String>) -> Self {
        Self::new(area, id, Status::Warn, message)
    }
    pub fn fail(area: Area, id: &'static str, message: impl Into<String>) -> Self {
        Self::new(area, id, Status::Fail, message)
    }
    pub fn skip(area: Area, id: &'static str, message: impl Into<String>) -> Self {
        Self::new(area, id, Status::Skip, message)
    }
}

/// The preflight of one scenario.
#[derive(Debug, Clone, Serialize)]
pub struct Preflight {
    pub scenario: String,
    pub user_pool_id: String,
    pub client_id: String,
    pub plan: Plan,
    pub verdicts: Vec<Verdict>,
}

impl Preflight {
    /// True if any verdict failed.
    pub fn failed(&self) -> bool {
        self.verdicts.iter().any(|v| v.status == Status::Fail)
    }

    pub fn count(&self, status: Status) -> usize {
        self.verdicts.iter().filter(|v| v.status == status).count()
    }

    /// One line per verdict and a summary line, for the console.
    pub fn render(&self) -> String {
        let width = self.verdicts.iter().map(|v| v.id.len()).max().unwrap_or(0);
        let mut out =
            format!("preflight of {} (pool {}, client {}):\n", self.scenario, self.user_pool_id, self.client_id);
        for v in &self.verdicts {
            out.push_str(&format!("  {}  {:width$}  {}\n", v.status.label(), v.id, v.message));
        }
        out.push_str(&format!(
            "  {} pass, {} warn, {} fail, {} skipped\n",
            self.count(Status::Pass),
            self.count(Status::Warn),
            self.count(Status::Fail),
            self.count(Status::Skip)
        ));
        out
    }

    /// Writes `preflight.json` and `preflight.junit.xml` into `dir`.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let json = serde_json::to_string_pretty(self).context("encoding preflight.json")?;
        let path = dir.join("preflight.json");
        std::fs::write(&path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
        let path = dir.join("preflight.junit.xml");
        std::fs::write(&path, self.junit()).with_context(|| format!("writing {}", path.display()))?;
        Ok(())
    }

    /// JUnit XML: one test case per verdict; a warning passes with its message in system-out.
    pub fn junit(&self) -> String {
        use crate::report::escape_markup as esc;
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str(&format!(
            "<testsuites name=\"otp-harness preflight\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">\n",
            self.verdicts.len(),
            self.count(Status::Fail),
            self.count(Status::Skip)
        ));
        out.push_str(&format!(
            "  <testsuite name=\"preflight.{}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">\n",
            esc(&self.scenario),
            self.verdicts.len(),
            self.count(Status::Fail),
            self.count(Status::Skip)
        ));
        for v in &self.verdicts {
            let area =
                serde_json::to_value(v.area).ok().and_then(|a| a.as_str().map(str::to_string)).unwrap_or_default();
            out.push_str(&format!("    <testcase classname=\"preflight.{area}\" name=\"{}\">", esc(v.id)));
            match v.status {
                Status::Pass => {}
                Status::Warn => out.push_str(&format!("<system-out>warning: {}</system-out>", esc(&v.message))),
                Status::Fail => out.push_str(&format!("<failure message=\"{}\"/>", esc(&v.message))),
                Status::Skip => out.push_str(&format!("<skipped message=\"{}\"/>", esc(&v.message))),
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("  </testsuite>\n</testsuites>\n");
        out
    }
}

/// Reads the pool and the account and judges them against the scenario's plan.
pub async fn run(scenario: &Scenario, target: &ResolvedTarget) -> Preflight {
    let ses_endpoint = SesEndpoint(scenario.target.ses_endpoint_url.clone());
    let clients = AdminClients::new(target, &ses_endpoint, 3).await;
    let plan = Plan::of(scenario);
    let pool = facts::pool(&clients).await;
    let client = facts::client(&clients).await;
    let mut verdicts = rules::pool(&pool, &plan);
    verdicts.extend(rules::client(&client, &plan, scenario));
    let through_ses = rules::mail_goes_through_ses(&plan, &pool);
    if through_ses {
        let account = facts::ses_account(&clients).await;
        verdicts.extend(rules::ses_account(&account, &plan));
        let sender = scenario
            .otp
            .from
            .clone()
            .or_else(|| pool.as_ref().ok().and_then(|p| p.email_from.as_deref()).map(bare_address));
        let sender_identity = match &sender {
            Some(address) => Some(facts::sender_identity(&clients, address).await),
            None => None,
        };
        verdicts.push(rules::sender(sender_identity.as_ref(), &pool));
        if account.as_ref().is_ok_and(|a| !a.production_access) {
            let first = scenario.users.address(0);
            let recipients = facts::sender_identity(&clients, &first).await;
            verdicts.extend(rules::sandbox_recipients(&account, Some(&recipients)));
        }
        let addresses = crate::provision::addresses(scenario);
        verdicts.push(rules::suppression(&facts::suppressed(&clients, &addresses).await));
    } else {
        verdicts.push(Verdict::skip(
            Area::Ses,
            "ses",
            "skipped: the pool mails codes with COGNITO_DEFAULT, not through the account's SES",
        ));
    }
    verdicts.extend(rules::quotas(&plan));
    verdicts.push(rules::cost(&plan, scenario, through_ses));
    Preflight {
        scenario: scenario.name.clone(),
        user_pool_id: target.user_pool_id.clone(),
        client_id: target.client_id.clone(),
        plan,
        verdicts,
    }
}

/// `Name <a@b>` → `a@b`.
fn bare_address(from: &str) -> String {
    match (from.rfind('<'), from.rfind('>')) {
        (Some(start), Some(end)) if start < end => from[start + 1..end].trim().to_string(),
        _ => from.trim().to_string(),
    }
}
