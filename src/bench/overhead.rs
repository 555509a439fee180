//! `bench overhead`: what the harness adds to the latency it measures. The same sign-ins go, in
//! alternating rounds against the same in-process pool, through a bare AWS SDK loop and through the
//! harness's login flow (mailroom, metrics, token checks; GetUser off, being an extra call). Compared:
//! p50 and p99 of InitiateAuth and RespondToAuthChallenge as each side measures them. Codes come from
//! the pool's in-memory outbox in both, so mail polling is not part of either.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_cognitoidentityprovider as cip;
use hdrhistogram::Histogram;
use serde::Serialize;

use super::{Percentiles, emit_json, record};
use crate::checks::Verdicts;
use crate::checks::tokens::TokenChecker;
use crate::cognito::{CognitoClient, ResolvedTarget};
use crate::flows::FlowContext;
use crate::metrics::{Metrics, Step, new_histogram};
use crate::otp::{Extractor, Mailroom};
use crate::pool::outbox::OutboxQuery;
use crate::pool::{LocalPool, PoolConfig, RunningPool};
use crate::scenario::{Expect, FlowKind, FlowSpec};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Sign-ins in flight at once, in both modes.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Rounds per mode (they alternate: bare, harness, bare, harness…).
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Sign-ins per virtual user per round.
    #[arg(long, default_value_t = 50)]
    pub per_round: usize,
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Side {
    pub initiate: Percentiles,
    pub respond: Percentiles,
}

#[derive(Debug, Clone, Serialize)]
pub struct OverheadResult {
    pub concurrency: usize,
    pub sign_ins_per_mode: u64,
    pub bare_sdk: Side,
    pub harness: Side,
    /// (harness − bare) ÷ bare, in percent.
    pub initiate_p50_pct: f64,
    pub initiate_p99_pct: f64,
    pub respond_p50_pct: f64,
    pub respond_p99_pct: f64,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.concurrency >= 1 && args.rounds >= 1 && args.per_round >= 1, "all counts must be at least 1");
    let mut config = PoolConfig::default();
    config.users.pattern = Some("bench+{n}@mail.otp-harness.test".into());
    config.users.count = args.concurrency as u32;
    let pool = LocalPool::start(config, "127.0.0.1:0".parse()?).await?;
    let users: Vec<String> = (1..=args.concurrency).map(|n| format!("bench+{n}@mail.otp-harness.test")).collect();
    let sdk = sdk_client(&pool);
    let ctx = Arc::new(harness_context(&pool).await?);
    let feeder = feed_mailroom(&pool, Arc::clone(&ctx.mailroom));

    let (mut bare_initiate, mut bare_respond) = (new_histogram(), new_histogram());
    for _ in 0..args.rounds {
        let (i, r) = bare_round(&sdk, &pool, &users, args.per_round).await?;
        bare_initiate.add(&i).ok();
        bare_respond.add(&r).ok();
        harness_round(&ctx, &users, args.per_round).await;
    }
    feeder.abort();
    pool.stop().await?;
    let harness = Side {
        initiate: Percentiles::of(&ctx.metrics.step_histogram(Step::Initiate)),
        respond: Percentiles::of(&ctx.metrics.step_histogram(Step::Respond)),
    };
    let bare = Side { initiate: Percentiles::of(&bare_initiate), respond: Percentiles::of(&bare_respond) };
    let pct = |h: f64, b: f64| ((h - b) / b * 1000.0).round() / 10.0;
    let result = OverheadResult {
        concurrency: args.concurrency,
        sign_ins_per_mode: bare.initiate.count,
        initiate_p50_pct: pct(harness.initiate.p50_ms, bare.initiate.p50_ms),
        initiate_p99_pct: pct(harness.initiate.p99_ms, bare.initiate.p99_ms),
        respond_p50_pct: pct(harness.respond.p50_ms, bare.respond.p50_ms),
        respond_p99_pct: pct(harness.respond.p99_ms, bare.respond.p99_ms),
        bare_sdk: bare,
        harness,
    };
    println!(
        "{} sign-ins per mode at concurrency {}\n  InitiateAuth  bare p50 {:.3} ms p99 {:.3} ms | harness p50 {:.3} ms p99 {:.3} ms | {:+.1} % / {:+.1} %\n  Respond       bare p50 {:.3} ms p99 {:.3} ms | harness p50 {:.3} ms p99 {:.3} ms | {:+.1} % / {:+.1} %",
        result.sign_ins_per_mode,
        result.concurrency,
        result.bare_sdk.initiate.p50_ms,
        result.bare_sdk.initiate.p99_ms,
        result.harness.initiate.p50_ms,
        result.harness.initiate.p99_ms,
        result.initiate_p50_pct,
        result.initiate_p99_pct,
        result.bare_sdk.respond.p50_ms,
        result.bare_sdk.respond.p99_ms,
        result.harness.respond.p50_ms,
        result.harness.respond.p99_ms,
        result.respond_p50_pct,
        result.respond_p99_pct
    );
    emit_json(&result, args.json.as_deref())
}

fn sdk_client(pool: &RunningPool) -> cip::Client {
    cip::Client::from_conf(
        cip::Config::builder()
            .behavior_version(cip::config::BehaviorVersion::latest())
            .region(cip::config::Region::new(pool.info().region.clone()))
            .endpoint_url(pool.endpoint())
            .credentials_provider(cip::config::Credentials::new("local", "local", None, None, "bench"))
            .retry_config(cip::config::retry::RetryConfig::disabled())
            .build(),
    )
}

async fn harness_context(pool: &RunningPool) -> anyhow::Result<FlowContext> {
    let info = pool.info();
    let target = ResolvedTarget::local_pool(info, Duration::from_secs(10));
    let tokens = TokenChecker::fetch(&info.issuer, &info.client_id).await.map_err(anyhow::Error::msg)?;
    Ok(FlowContext {
        auth: crate::cognito::Auth::Custom,
        cognito: CognitoClient::new(target).await,
        mailroom: Arc::new(Mailroom::new()),
        tokens: Arc::new(tokens),
        verdicts: Arc::new(Verdicts::new()),
        metrics: Arc::new(Metrics::new()),
        expect: Expect::default(),
        otp_timeout: Duration::from_secs(10),
        settle: Duration::from_millis(500),
        get_user: false,
        codes: Arc::default(),
        diagnoses: Arc::default(),
    })
}

/// Moves mail from the pool's in-memory outbox into the mailroom as it appears (every millisecond).
fn feed_mailroom(pool: &RunningPool, mailroom: Arc<Mailroom>) -> tokio::task::JoinHandle<()> {
    let state = Arc::clone(pool.state());
    tokio::spawn(async move {
        let Ok(extractor) = Extractor::new(r"\b(\d{6})\b", None) else { return };
        let mut last: Option<String> = None;
        loop {
            tokio::time::sleep(Duration::from_millis(1)).await;
            let Some(outbox) = state.mail.outbox() else { return };
            for message in outbox.list(&OutboxQuery { after: last.clone(), ..Default::default() }) {
                last = Some(message.id.clone());
                crate::otp::deliver(&mailroom, extractor.extract(message.raw_data.as_bytes()));
            }
        }
    })
}

async fn bare_round(
    sdk: &cip::Client,
    pool: &RunningPool,
    users: &[String],
    n: usize,
) -> anyhow::Result<(Histogram<u64>, Histogram<u64>)> {
    let tasks: Vec<_> = users
        .iter()
        .map(|user| {
            let (sdk, user, state, client_id) =
                (sdk.clone(), user.clone(), Arc::clone(pool.state()), pool.info().client_id.clone());
            tokio::spawn(async move {
                let (mut initiate, mut respond) = (new_histogram(), new_histogram());
                for _ in 0..n {
                    let t = Instant::now();
                    let started = sdk
                        .initiate_auth()
                        .auth_flow(cip::types::AuthFlowType::CustomAuth)
                        .client_id(&client_id)
                        .auth_parameters("USERNAME", &user)
                        .send()
                        .await
                        .context("InitiateAuth")?;
                    record(&mut initiate, t.elapsed());
                    let message = state.mail.outbox().and_then(|o| o.latest_to(&user)).context("no mail")?;
                    let text = message.body.text_part.unwrap_or_default();
                    let code: String = text.split("code is ").nth(1).unwrap_or("").chars().take(6).collect();
                    let username =
                        started.challenge_parameters().and_then(|p| p.get("USERNAME")).cloned().unwrap_or_default();
                    let t = Instant::now();
                    let done = sdk
                        .respond_to_auth_challenge()
                        .client_id(&client_id)
                        .challenge_name(cip::types::ChallengeNameType::CustomChallenge)
                        .set_session(started.session().map(str::to_string))
                        .challenge_responses("USERNAME", username)
                        .challenge_responses("ANSWER", code)
                        .send()
                        .await
                        .context("RespondToAuthChallenge")?;
                    record(&mut respond, t.elapsed());
                    anyhow::ensure!(done.authentication_result().is_some(), "no tokens");
                }
                anyhow::Ok((initiate, respond))
            })
        })
        .collect();
    let (mut initiate, mut respond) = (new_histogram(), new_histogram());
    for task in tasks {
        let (i, r) = task.await??;
        initiate.add(&i).ok();
        respond.add(&r).ok();
    }
    Ok((initiate, respond))
}

async fn harness_round(ctx: &Arc<FlowContext>, users: &[String], n: usize) {
    let spec = FlowSpec { kind: FlowKind::Login, weight: 1, wrong: 1, auth: None };
    let tasks: Vec<_> = users
        .iter()
        .map(|user| {
            let (ctx, user, spec) = (Arc::clone(ctx), user.clone(), spec.clone());
            tokio::spawn(async move {
                for _ in 0..n {
                    ctx.run_flow(&spec, &user).await;
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}
