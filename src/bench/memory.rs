//! `bench memory --users N`: resident memory per idle virtual user. Starts goose as the workload does
//! (configured in code, controllers off, one shared client) with N users that sit in think time, and
//! measures the process's resident set before and at its peak once all are running. Run one size per
//! process (the allocator does not give memory back between sizes).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use goose::config::GooseConfiguration;
use goose::prelude::{GooseAttack, GooseDefault, GooseDefaultType, Transaction};
use serde::Serialize;

use super::emit_json;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Idle virtual users.
    #[arg(long, default_value_t = 1000)]
    pub users: usize,
    /// How long they stay up once all are launched.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub hold: Duration,
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MemoryResult {
    pub users: usize,
    pub rss_before_kb: u64,
    pub rss_peak_kb: u64,
    pub per_user_kb: f64,
}

/// The resident set size of this process, from /proc/self/status.
pub fn rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!((1..=100_000).contains(&args.users), "--users must be between 1 and 100000");
    let before = rss_kb().unwrap_or(0);
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = {
        let peak = Arc::clone(&peak);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                peak.fetch_max(rss_kb().unwrap_or(0), Ordering::Relaxed);
            }
        })
    };
    let idle = Transaction::new(Arc::new(|_user| {
        Box::pin(async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            Ok(())
        })
    }))
    .set_name("think");
    let launch_secs = 2usize;
    let run_time = launch_secs + args.hold.as_secs().max(1) as usize;
    let attack = GooseAttack::initialize_with_config(GooseConfiguration::default())?
        .register_scenario(goose::goose::Scenario::new("idle").register_transaction(idle))
        .set_client_builder_without_cookies(goose::client::GooseClientBuilder::new().without_cookies())?
        .set_default(GooseDefault::Host, "http://127.0.0.1")?
        .set_default(GooseDefault::Users, args.users)?
        .set_default(GooseDefault::IncreaseRate, format!("{}", args.users / launch_secs).as_str())?
        .set_default(GooseDefault::RunTime, run_time)?
        .set_default(GooseDefault::NoTelnet, true)?
        .set_default(GooseDefault::NoPrintMetrics, true)?
        .set_default(GooseDefault::NoErrorSummary, true)?
        .set_default(GooseDefault::Quiet, 1)?;
    attack.execute().await?;
    sampler.abort();
    let peak = peak.load(Ordering::Relaxed);
    let result = MemoryResult {
        users: args.users,
        rss_before_kb: before,
        rss_peak_kb: peak,
        per_user_kb: ((peak.saturating_sub(before)) as f64 / args.users as f64 * 10.0).round() / 10.0,
    };
    println!(
        "{} idle virtual users: RSS {} kB → {} kB peak = {:.1} kB per user",
        result.users, result.rss_before_kb, result.rss_peak_kb, result.per_user_kb
    );
    emit_json(&result, args.json.as_deref())
}
