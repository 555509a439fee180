//! What a scenario will ask of the pool, of SES and of Cognito's quotas, estimated from its flows and
//! load before it runs: sign-ins per second (peak) and in all, mails, InitiateAuth and
//! RespondToAuthChallenge calls per second, calls per test user per second, distinct users.
//!
//! The closed model's rate is an upper bound: each virtual user is assumed to finish a flow in no
//! less than `ASSUMED_FLOW_TIME` plus its pause (a sign-in waits for its mail), and to wait that long
//! for each mail of a flow.

use std::time::Duration;

use serde::Serialize;

use crate::cognito::Auth;
use crate::scenario::{FlowKind, LoadModel, Scenario};

/// The shortest a flow is assumed to take when estimating the closed model's rate.
pub const ASSUMED_FLOW_TIME: Duration = Duration::from_millis(500);
/// Mails each probe user is assumed to receive (a probe signs in or locks out once or twice).
const MAILS_PER_PROBE_USER: f64 = 3.0;

/// The estimate.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Plan {
    pub auths: Vec<Auth>,
    pub sign_ins_per_second: f64,
    pub sign_ins_total: f64,
    pub mails_per_second: f64,
    pub mails_total: f64,
    pub initiate_per_second: f64,
    pub respond_per_second: f64,
    /// Cognito calls one test user makes per second at most (Cognito allows 10).
    pub calls_per_user_per_second: f64,
    /// Test users that sign in: monthly active users on the bill.
    pub distinct_users: u32,
    /// The run's load duration, if bounded by time.
    pub duration_seconds: Option<f64>,
}

/// Per flow: mails, InitiateAuth calls, RespondToAuthChallenge calls.
fn flow_calls(scenario: &Scenario, kind: FlowKind, wrong: u32, auth: Auth) -> (f64, f64, f64) {
    let expect = &scenario.expect;
    let fresh = expect.new_code_each_attempt;
    match (auth, kind) {
        (Auth::Custom, FlowKind::Login) => (1.0, 1.0, 1.0),
        (Auth::Custom, FlowKind::Retry) => {
            (if fresh { 1.0 + f64::from(wrong) } else { 1.0 }, 1.0, 1.0 + f64::from(wrong))
        }
        (Auth::Custom, FlowKind::Lockout) => {
            let attempts = f64::from(expect.max_attempts);
            (if fresh { attempts } else { 1.0 }, 1.0, attempts + 1.0)
        }
        // One code per session; wrong codes do not send another.
        (Auth::EmailOtp, FlowKind::Login) => (1.0, 1.0, 1.0),
        (Auth::EmailOtp, FlowKind::Retry) => (1.0, 1.0, 1.0 + f64::from(wrong)),
        (Auth::EmailOtp, FlowKind::Lockout) => (1.0, 1.0, f64::from(expect.email_otp_max_wrong_codes) + 2.0),
    }
}

impl Plan {
    pub fn of(scenario: &Scenario) -> Self {
        let load = &scenario.load;
        let weights: f64 = scenario.flows.iter().map(|f| f64::from(f.weight)).sum::<f64>().max(1.0);
        let flow_time = ASSUMED_FLOW_TIME + load.pause;
        let (mut mails, mut initiates, mut responds, mut busiest_user) = (0.0, 0.0, 0.0, 0.0_f64);
        for flow in scenario.flows.iter().filter(|f| f.weight > 0) {
            let share = f64::from(flow.weight) / weights;
            let (m, i, r) = flow_calls(scenario, flow.kind, flow.wrong, flow.auth());
            mails += share * m;
            initiates += share * i;
            responds += share * r;
            // Each mail is waited for, so a flow with more mails spreads its calls over more time.
            let seconds = load.pause.as_secs_f64() + ASSUMED_FLOW_TIME.as_secs_f64() * m.max(1.0);
            busiest_user = busiest_user.max((i + r) / seconds);
        }
        let (rate, total, duration) = match load.model {
            LoadModel::Closed => {
                let rate = f64::from(load.users) / flow_time.as_secs_f64();
                let by_count = load.iterations.map(|n| f64::from(n) * f64::from(load.users));
                let by_time = load.duration.map(|d| rate * d.as_secs_f64());
                let total = match (by_count, by_time) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(a), None) => a,
                    (None, Some(b)) => b,
                    (None, None) => 5.0 * f64::from(load.users),
                };
                (rate, total, load.duration.map(|d| d.as_secs_f64()))
            }
            LoadModel::Open => {
                let stages = load.open_stages();
                let mut from = load.start_rate.or(stages.first().map(|s| s.rate)).unwrap_or(0.0);
                let (mut peak, mut total, mut seconds) = (from, 0.0, 0.0);
                for stage in &stages {
                    let d = stage.duration.as_secs_f64();
                    total += (from + stage.rate) / 2.0 * d;
                    seconds += d;
                    peak = peak.max(stage.rate);
                    from = stage.rate;
                }
                (peak, total, Some(seconds))
            }
        };
        let probe_users = scenario.probe_users();
        Self {
            auths: scenario.auths(),
            sign_ins_per_second: rate,
            sign_ins_total: total,
            mails_per_second: rate * mails,
            mails_total: total * mails + f64::from(probe_users) * MAILS_PER_PROBE_USER,
            initiate_per_second: rate * initiates,
            respond_per_second: rate * responds,
            calls_per_user_per_second: busiest_user,
            distinct_users: load.virtual_users().min(scenario.users.count).saturating_add(probe_users),
            duration_seconds: duration,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A local scenario with `top` before the first table and `tables` after the required ones.
    fn scenario(top: &str, tables: &str) -> Scenario {
        let text = format!(
            "name = \"plan\"\n{top}\n[target]\nkind = \"local\"\n[users]\ntest_users = true\n\
             pattern = \"vu+{{n}}@mail.test\"\ncount = 30\n[otp]\nsource = \"outbox\"\n{tables}"
        );
        Scenario::parse(&text, std::path::Path::new("plan.toml")).expect("a valid scenario")
    }

    #[test]
    fn an_open_load_plans_its_peak_rate_and_the_area_under_its_stages() {
        let s = scenario(
            "",
            "[load]\nmodel = \"open\"\nstages = [{ rate = 2, duration = \"10s\" }, { rate = 6, duration = \"10s\" }]\nmax_in_flight = 4\n",
        );
        let plan = Plan::of(&s);
        assert_eq!(plan.sign_ins_per_second, 6.0);
        // 2/s for 10 s, then 2 → 6 over 10 s: 20 + 40.
        assert_eq!(plan.sign_ins_total, 60.0);
        assert_eq!(plan.initiate_per_second, 6.0);
        assert_eq!(plan.duration_seconds, Some(20.0));
    }

    #[test]
    fn a_lockout_mails_a_code_per_attempt_in_custom_auth_and_one_in_email_otp() {
        let custom =
            scenario("", "[[flow]]\nkind = \"lockout\"\n[load]\nusers = 1\niterations = 2\npause = \"500ms\"\n");
        let plan = Plan::of(&custom);
        assert_eq!(plan.sign_ins_per_second, 1.0, "one user, 0.5 s assumed + 0.5 s pause");
        assert_eq!(plan.mails_per_second, 3.0, "max_attempts = 3 codes per lockout");
        assert_eq!(plan.respond_per_second, 4.0, "three wrong answers and the real code");
        let native =
            scenario("auth = \"email_otp\"", "[[flow]]\nkind = \"lockout\"\n[load]\nusers = 1\npause = \"500ms\"\n");
        assert_eq!(Plan::of(&native).mails_per_second, 1.0);
    }
}
