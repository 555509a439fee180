//! `otp-harness bench pool`: how many full sign-ins per second the local pool serves on this machine —
//! custom auth (`--flow custom`) or native passwordless USER_AUTH with EMAIL_OTP (`--flow email_otp`) — next to the bound that RS256 signing alone sets (two signatures per sign-in), measured
//! in the same run. Clients speak plain HTTP/JSON and read codes from the in-process outbox, so the
//! client side costs as little as it can; both sides share the machine's cores.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::RSA_PKCS1_SHA256;
use serde::Serialize;
use serde_json::{Value, json};

use crate::pool::{LocalPool, PoolConfig, PoolState};

/// Options of `bench pool`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchPoolArgs {
    /// How long each phase (signing alone, then sign-ins) runs.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Sign-ins in flight at once (one test user each).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Which sign-in: custom auth (Define/Create/Verify) or USER_AUTH with PREFERRED_CHALLENGE = EMAIL_OTP.
    #[arg(long, value_enum, default_value_t = BenchFlow::Custom)]
    pub flow: BenchFlow,
    /// Write the result as JSON to this file as well.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// A pool config (TOML) to benchmark instead of the defaults, e.g. one whose `[triggers]` runs a
    /// team's own handlers (their mail must go to the outbox: the benchmark reads codes there).
    #[arg(long)]
    pub pool_config: Option<std::path::PathBuf>,
}

/// The sign-in flow a benchmark measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum BenchFlow {
    /// CUSTOM_AUTH: InitiateAuth, CUSTOM_CHALLENGE answered with the code.
    Custom,
    /// USER_AUTH with PREFERRED_CHALLENGE = EMAIL_OTP, answered with EMAIL_OTP_CODE.
    EmailOtp,
}

/// What one benchmark run measured.
#[derive(Debug, Clone, Serialize)]
pub struct PoolBenchResult {
    pub flow: BenchFlow,
    pub cores: usize,
    pub duration_secs: f64,
    pub concurrency: usize,
    /// RS256 signatures per second on all cores, signing alone.
    pub signatures_per_sec: f64,
    /// Sign-ins per second that signing alone allows (two signatures each).
    pub signing_bound_signins_per_sec: f64,
    /// Completed sign-ins (InitiateAuth, code from the outbox, RespondToAuthChallenge, tokens).
    pub signins: u64,
    pub signins_per_sec: f64,
    pub failed: u64,
    /// signins_per_sec ÷ signing bound.
    pub share_of_bound: f64,
    /// The team's trigger functions (with `--pool-config` naming some): calls, cold starts and the warm
    /// calls' round trip through the runtime (p50, p99).
    pub triggers: std::collections::BTreeMap<&'static str, crate::pool::triggers::runtime::FunctionStats>,
}

/// Runs both phases and prints the result.
pub async fn run_pool_bench(args: BenchPoolArgs) -> anyhow::Result<()> {
    if args.concurrency == 0 || args.concurrency > 10_000 {
        bail!("--concurrency must be between 1 and 10000");
    }
    if args.duration < Duration::from_secs(1) || args.duration > Duration::from_secs(600) {
        bail!("--duration must be between 1s and 10m");
    }
    let result = bench_pool(&args).await?;
    println!(
        "flow {:?}  cores {}  signing alone: {:.0} signatures/s = bound {:.0} sign-ins/s\n\
         pool: {} sign-ins in {:.1}s = {:.0} sign-ins/s ({} failed) at concurrency {} = {:.0}% of the signing bound",
        result.flow,
        result.cores,
        result.signatures_per_sec,
        result.signing_bound_signins_per_sec,
        result.signins,
        result.duration_secs,
        result.signins_per_sec,
        result.failed,
        result.concurrency,
        result.share_of_bound * 100.0
    );
    for (trigger, f) in &result.triggers {
        println!(
            "  {trigger} ({}, {:?}): {} calls, {} cold starts, warm call p50 {} µs, p99 {} µs",
            f.handler,
            f.runtime,
            f.invocations,
            f.cold_starts,
            f.warm_call_p50_us.map_or("-".into(), |v| v.to_string()),
            f.warm_call_p99_us.map_or("-".into(), |v| v.to_string()),
        );
    }
    let line = serde_json::to_string(&result)?;
    println!("{line}");
    if let Some(path) = &args.json {
        std::fs::write(path, line).with_context(|| format!("writing {}", path.display()))?;
    }
    if result.failed > 0 {
        bail!("{} sign-ins failed during the benchmark", result.failed);
    }
    Ok(())
}

/// Measures the signing bound, then sign-ins through a fresh in-process pool.
pub async fn bench_pool(args: &BenchPoolArgs) -> anyhow::Result<PoolBenchResult> {
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let signatures_per_sec = tokio::task::spawn_blocking({
        let duration = args.duration;
        move || signing_rate(cores, duration)
    })
    .await??;

    let mut config = match &args.pool_config {
        Some(path) => PoolConfig::from_file(path)?,
        None => PoolConfig::default(),
    };
    config.users.emails.clear();
    config.users.pattern = Some("bench+{n}@mail.otp-harness.test".into());
    config.users.count = args.concurrency as u32;
    let pool = LocalPool::start(config, "127.0.0.1:0".parse()?).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()
        .context("building the HTTP client")?;
    let completed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(args.concurrency);
    for n in 1..=args.concurrency {
        let ctx = SignIn {
            client: client.clone(),
            endpoint: pool.endpoint().to_string(),
            client_id: pool.info().client_id.clone(),
            email: format!("bench+{n}@mail.otp-harness.test"),
            flow: args.flow,
            state: Arc::clone(pool.state()),
        };
        let (completed, failed, stop) = (Arc::clone(&completed), Arc::clone(&failed), Arc::clone(&stop));
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match ctx.sign_in().await {
                    Ok(()) => completed.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "benchmark sign-in failed");
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    tokio::time::sleep(args.duration).await;
    stop.store(true, Ordering::Relaxed);
    let counted = completed.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for worker in workers {
        worker.await.context("benchmark worker panicked")?;
    }
    let triggers = pool.state().stats_snapshot().triggers;
    pool.stop().await?;
    let bound = signatures_per_sec / 2.0;
    let signins_per_sec = counted as f64 / elapsed;
    Ok(PoolBenchResult {
        flow: args.flow,
        cores,
        duration_secs: elapsed,
        concurrency: args.concurrency,
        signatures_per_sec,
        signing_bound_signins_per_sec: bound,
        signins: counted,
        signins_per_sec,
        failed: failed.load(Ordering::Relaxed),
        share_of_bound: signins_per_sec / bound,
        triggers,
    })
}

/// RS256 signatures per second over `threads` threads, each signing a token-sized message.
fn signing_rate(threads: usize, duration: Duration) -> anyhow::Result<f64> {
    let key = Arc::new(KeyPair::generate(KeySize::Rsa2048).map_err(|_| anyhow::anyhow!("RSA key generation failed"))?);
    let message = Arc::new(vec![b'x'; 700]);
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (key, message) = (Arc::clone(&key), Arc::clone(&message));
            std::thread::spawn(move || -> anyhow::Result<u64> {
                let rng = SystemRandom::new();
                let mut signature = vec![0u8; key.public_modulus_len()];
                let mut count = 0u64;
                while Instant::now() < deadline {
                    key.sign(&RSA_PKCS1_SHA256, &rng, &message, &mut signature)
                        .map_err(|_| anyhow::anyhow!("signing failed"))?;
                    count += 1;
                }
                Ok(count)
            })
        })
        .collect();
    let mut total = 0;
    for handle in handles {
        total += handle.join().map_err(|_| anyhow::anyhow!("signing thread panicked"))??;
    }
    Ok(total as f64 / started.elapsed().as_secs_f64())
}

/// One benchmark user's sign-in loop.
struct SignIn {
    client: reqwest::Client,
    endpoint: String,
    client_id: String,
    email: String,
    flow: BenchFlow,
    state: Arc<PoolState>,
}

impl SignIn {
    async fn call(&self, operation: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(&self.endpoint)
            .header("content-type", "application/x-amz-json-1.1")
            .header("x-amz-target", format!("AWSCognitoIdentityProviderService.{operation}"))
            .body(body.to_string())
            .send()
            .await?;
        let status = response.status();
        let value: Value = serde_json::from_slice(&response.bytes().await?)?;
        if !status.is_success() {
            bail!("{operation}: {}", value["__type"].as_str().unwrap_or("error"));
        }
        Ok(value)
    }

    async fn sign_in(&self) -> anyhow::Result<()> {
        let result = match self.flow {
            BenchFlow::Custom => self.custom_sign_in().await?,
            BenchFlow::EmailOtp => self.email_otp_sign_in().await?,
        };
        if result["AuthenticationResult"]["IdToken"].as_str().is_none() {
            bail!("no tokens after the right code");
        }
        Ok(())
    }

    /// USER_AUTH with PREFERRED_CHALLENGE = EMAIL_OTP: the code is mailed at InitiateAuth.
    async fn email_otp_sign_in(&self) -> anyhow::Result<Value> {
        let challenge = self
            .call(
                "InitiateAuth",
                json!({ "AuthFlow": "USER_AUTH", "ClientId": self.client_id,
                        "AuthParameters": { "USERNAME": self.email, "PREFERRED_CHALLENGE": "EMAIL_OTP" } }),
            )
            .await?;
        let session = challenge["Session"].as_str().context("no Session")?;
        let code = self.latest_code().context("no code in the outbox")?;
        self.call(
            "RespondToAuthChallenge",
            json!({ "ClientId": self.client_id, "ChallengeName": "EMAIL_OTP", "Session": session,
                    "ChallengeResponses": { "USERNAME": self.email, "EMAIL_OTP_CODE": code } }),
        )
        .await
    }

    async fn custom_sign_in(&self) -> anyhow::Result<Value> {
        let challenge = self
            .call(
                "InitiateAuth",
                json!({ "AuthFlow": "CUSTOM_AUTH", "ClientId": self.client_id, "AuthParameters": { "USERNAME": self.email } }),
            )
            .await?;
        let session = challenge["Session"].as_str().context("no Session")?;
        let username = challenge["ChallengeParameters"]["USERNAME"].as_str().context("no USERNAME")?;
        let code = self.latest_code().context("no code in the outbox")?;
        self.call(
            "RespondToAuthChallenge",
            json!({ "ClientId": self.client_id, "ChallengeName": "CUSTOM_CHALLENGE", "Session": session,
                    "ChallengeResponses": { "USERNAME": username, "ANSWER": code } }),
        )
        .await
    }

    /// The newest code mailed to this user (the outbox is filled before InitiateAuth answers); both flows'
    /// default mails say "… code is NNN".
    fn latest_code(&self) -> Option<String> {
        let outbox = self.state.mail.outbox()?;
        let message = outbox.latest_to(&self.email)?;
        let text = message.body.text_part?;
        let (_, rest) = text.split_once("code is ")?;
        Some(rest.chars().take_while(char::is_ascii_digit).collect())
    }
}
