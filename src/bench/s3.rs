//! `bench s3`: the ceiling of one S3 prefix as a code source, listing it vs reading the bucket's S3
//! event notifications from SQS, against moto (S3 and SQS in one process) on 127.0.0.1. Code mails are
//! PUT into the prefix at fixed rates (an open model: each PUT at its scheduled time, each with a
//! waiter for its code); per mode and rate it reports the codes in hand per second sustained, the time
//! from the PUT done to the code in hand (p50/p99), and the requests the source sent to learn of new
//! mail (listings or ReceiveMessage calls) per second, idle and busy. `--backlog` leaves that many
//! other mails in the prefix (a busy prefix: every listing returns them). moto runs on the bench's
//! CPUs (start it under `taskset` and moto is pinned with it): its own cost is part of every number.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_s3::primitives::ByteStream;
use serde::Serialize;
use tokio::sync::Semaphore;

use super::{Percentiles, emit_json, record};
use crate::background::{self, CancellationToken};
use crate::metrics::new_histogram;
use crate::otp::s3::S3Watcher;
use crate::otp::sqs::SqsWatcher;
use crate::otp::{Extractor, Mailroom};
use crate::scenario::{AfterRead, S3Options};
use crate::testkit::s3server::S3Server;

const BUCKET: &str = "bench-inbound-mail";
const SENDER: &str = "no-reply@auth.otp-harness.test";
/// How long a source runs before its idle requests are counted.
const SETTLE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Modes to measure: `list` (ListObjectsV2 every `--poll-interval` while codes are awaited) and
    /// `sqs` (S3 event notifications long-polled from a queue).
    #[arg(long, value_delimiter = ',', default_value = "list,sqs")]
    pub modes: Vec<String>,
    /// Code mails PUT per second, one step after the other.
    #[arg(long, value_delimiter = ',', default_value = "25,50,100,200")]
    pub rates: Vec<u32>,
    /// How long each rate lasts.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// The listing mode's interval while codes are awaited (`[otp.s3] poll_interval`).
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// The SQS mode's long polls kept open at once (`[otp.s3] queue_receivers`).
    #[arg(long, default_value_t = 1)]
    pub receivers: usize,
    /// How long each mode watches with no code awaited (its requests per second are counted), after
    /// 2 s to settle.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub idle: Duration,
    /// Other mails (no code) left in each prefix before the run: what every listing returns again.
    #[arg(long, default_value_t = 0)]
    pub backlog: usize,
    /// Code mails awaited at once at most; a PUT due while this many wait is dropped and counted.
    #[arg(long, default_value_t = 1024)]
    pub max_in_flight: usize,
    /// How long a waiter waits for its code.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// One mode at one rate.
#[derive(Debug, Clone, Serialize)]
pub struct RateResult {
    /// Code mails PUT per second, as scheduled.
    pub offered_per_sec: u32,
    /// Code mails PUT.
    pub put: u64,
    /// Due while `max_in_flight` waited: not PUT.
    pub dropped: u64,
    /// PUTs that failed.
    pub put_failed: u64,
    /// Codes in hand.
    pub codes: u64,
    /// Waiters whose code did not come within the timeout.
    pub timed_out: u64,
    /// Codes in hand per second, from the first code in hand to the last.
    pub codes_per_sec: f64,
    /// Every mail PUT was in hand, none dropped, at ≥ 95 % of the offered rate.
    pub sustained: bool,
    /// The PUT itself (moto's answer).
    pub put_latency: Percentiles,
    /// From the PUT done to the code in hand.
    pub in_hand: Percentiles,
    /// Requests the source sent to learn of new mail, per second, during this step.
    pub source_requests_per_sec: f64,
    /// CPU of this process (the PUT client and the source) per code in hand, in milliseconds.
    pub bench_cpu_ms_per_code: Option<f64>,
    /// CPU of moto (S3 and SQS) per code in hand, in milliseconds.
    pub moto_cpu_ms_per_code: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModeResult {
    pub mode: String,
    /// What the source reported (`mail.mode`).
    pub source_mode: String,
    pub idle_requests_per_sec: f64,
    pub rates: Vec<RateResult>,
    /// The highest offered rate sustained.
    pub ceiling_per_sec: Option<u32>,
}

#[derive(Debug, Clone, Serialize)]
pub struct S3BenchResult {
    pub duration_per_rate_secs: f64,
    pub poll_interval_ms: f64,
    pub receivers: usize,
    pub backlog: usize,
    pub modes: Vec<ModeResult>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(!args.rates.is_empty(), "--rates needs at least one rate");
    anyhow::ensure!(args.rates.iter().all(|r| (1..=10_000).contains(r)), "each rate must be between 1 and 10000");
    anyhow::ensure!(
        (Duration::from_secs(1)..=Duration::from_secs(600)).contains(&args.duration),
        "--duration must be between 1s and 10m"
    );
    anyhow::ensure!(args.idle <= Duration::from_secs(600), "--idle must be at most 10m");
    anyhow::ensure!(args.poll_interval >= Duration::from_millis(1), "--poll-interval must be at least 1ms");
    anyhow::ensure!((1..=16).contains(&args.receivers), "--receivers must be between 1 and 16");
    anyhow::ensure!(args.backlog <= 100_000, "--backlog must be at most 100000");
    anyhow::ensure!((1..=100_000).contains(&args.max_in_flight), "--max-in-flight must be between 1 and 100000");
    anyhow::ensure!(
        (Duration::from_millis(100)..=Duration::from_secs(120)).contains(&args.timeout),
        "--timeout must be between 100ms and 2m"
    );
    for mode in &args.modes {
        anyhow::ensure!(matches!(mode.as_str(), "list" | "sqs"), "unknown mode {mode:?}: list or sqs");
    }

    let server = S3Server::start().await?;
    let shared = server.sdk_config().await;
    let client = server.s3_client().await;
    if let Err(e) = client.create_bucket().bucket(BUCKET).send().await
        && !e.as_service_error().is_some_and(|s| s.is_bucket_already_owned_by_you())
    {
        return Err(anyhow::Error::new(e)).context("creating the bench bucket");
    }
    // The backlog goes in before any notification is configured: it is old mail to both modes.
    for mode in &args.modes {
        put_backlog(&client, &format!("{mode}/"), args.backlog).await?;
    }
    let queue_url = match args.modes.iter().any(|m| m == "sqs") {
        true => Some(server.notify_queue(BUCKET, "sqs/", "bench-mail-events").await?),
        false => None,
    };

    let mut results = Vec::new();
    let mut next = 0u64;
    for mode in &args.modes {
        let options = S3Options {
            bucket: BUCKET.into(),
            prefix: format!("{mode}/"),
            region: Some("us-east-1".into()),
            endpoint_url: Some(server.endpoint()),
            poll_interval: args.poll_interval,
            idle_poll_interval: Duration::from_secs(1),
            after_read: AfterRead::Delete,
            prefixes: Vec::new(),
            queue_url: if mode == "sqs" { queue_url.clone() } else { None },
            queue_receivers: if mode == "sqs" { args.receivers } else { 1 },
        };
        let extractor = Extractor::new(r"\b(\d{6})\b", None)?;
        let mailroom = Arc::new(Mailroom::new());
        let stop = CancellationToken::new();
        let task = if mode == "sqs" {
            let watcher = SqsWatcher::with_config(options.clone(), &shared, extractor).await?;
            tokio::spawn(watcher.run(Arc::clone(&mailroom), stop.clone()))
        } else {
            let watcher = S3Watcher::with_config(options.clone(), &shared, extractor).await?;
            tokio::spawn(watcher.run(Arc::clone(&mailroom), stop.clone()))
        };
        // Let the source settle (its first request, S3's test event on a new notification) first.
        tokio::time::sleep(SETTLE).await;
        let before = mailroom.counts().source_requests;
        tokio::time::sleep(args.idle).await;
        let idle_requests = (mailroom.counts().source_requests - before) as f64 / args.idle.as_secs_f64().max(1e-3);
        let source_mode = mailroom.counts().mode.unwrap_or_default();

        let mut rates = Vec::new();
        for &rate in &args.rates {
            let step = Step {
                client: client.clone(),
                mailroom: Arc::clone(&mailroom),
                prefix: options.prefix.clone(),
                moto_pid: server.pid(),
            };
            let result = step.run(rate, &args, &mut next).await;
            println!(
                "{mode:<4} {rate:>5}/s offered | {:>7.1} codes/s{} | in hand p50 {:.1} p99 {:.1} max {:.1} ms | PUT p50 {:.1} p99 {:.1} ms | {} timed out, {} dropped | requests/s {:.1} | CPU ms/code bench {} moto {}",
                result.codes_per_sec,
                if result.sustained { " (sustained)" } else { "" },
                result.in_hand.p50_ms,
                result.in_hand.p99_ms,
                result.in_hand.max_ms,
                result.put_latency.p50_ms,
                result.put_latency.p99_ms,
                result.timed_out,
                result.dropped,
                result.source_requests_per_sec,
                result.bench_cpu_ms_per_code.map_or("-".into(), |v| format!("{v:.2}")),
                result.moto_cpu_ms_per_code.map_or("-".into(), |v| format!("{v:.2}")),
            );
            rates.push(result);
        }
        background::finish(&stop, task, Duration::from_secs(5)).await;
        let ceiling = rates.iter().filter(|r| r.sustained).map(|r| r.offered_per_sec).max();
        println!(
            "{mode:<4} idle requests/s {:.2} | ceiling {} | {source_mode}",
            (idle_requests * 100.0).round() / 100.0,
            ceiling.map_or("below the lowest rate".into(), |c| format!("{c}/s"))
        );
        results.push(ModeResult {
            mode: mode.clone(),
            source_mode,
            idle_requests_per_sec: (idle_requests * 100.0).round() / 100.0,
            rates,
            ceiling_per_sec: ceiling,
        });
    }
    emit_json(
        &S3BenchResult {
            duration_per_rate_secs: args.duration.as_secs_f64(),
            poll_interval_ms: args.poll_interval.as_secs_f64() * 1000.0,
            receivers: args.receivers,
            backlog: args.backlog,
            modes: results,
        },
        args.json.as_deref(),
    )
}

/// Other mail (no code) under `prefix`, PUT 16 at a time.
async fn put_backlog(client: &aws_sdk_s3::Client, prefix: &str, count: usize) -> anyhow::Result<()> {
    for chunk in (0..count).collect::<Vec<_>>().chunks(16) {
        let puts = chunk.iter().map(|n| {
            let body = format!(
                "From: news@example.test\r\nTo: someone@example.test\r\nSubject: News {n}\r\n\r\nNothing to see.\r\n"
            );
            client
                .put_object()
                .bucket(BUCKET)
                .key(format!("{prefix}backlog-{n:06}"))
                .body(ByteStream::from(body.into_bytes()))
                .send()
        });
        for put in futures::future::join_all(puts).await {
            put.context("putting the backlog")?;
        }
    }
    Ok(())
}

/// One rate step of one mode.
struct Step {
    client: aws_sdk_s3::Client,
    mailroom: Arc<Mailroom>,
    prefix: String,
    moto_pid: u32,
}

/// What one code mail's waiter saw.
enum Outcome {
    InHand { put: Duration, in_hand: Duration, at: Instant },
    TimedOut { put: Duration },
    PutFailed,
}

impl Step {
    async fn run(self, rate: u32, args: &Args, next: &mut u64) -> RateResult {
        let total = (f64::from(rate) * args.duration.as_secs_f64()).round().max(1.0) as u64;
        let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
        let places = Arc::new(Semaphore::new(args.max_in_flight));
        let dropped = AtomicU64::new(0);
        let before = self.mailroom.counts().source_requests;
        let cpu_before = (super::client::cpu_secs(std::process::id()), super::client::cpu_secs(self.moto_pid));
        let started = Instant::now();
        let mut waiters = Vec::with_capacity(total as usize);
        for i in 0..total {
            tokio::time::sleep_until((started + interval * i as u32).into()).await;
            let Ok(place) = Arc::clone(&places).try_acquire_owned() else {
                dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let n = *next + i;
            let (client, mailroom, prefix, timeout) =
                (self.client.clone(), Arc::clone(&self.mailroom), self.prefix.clone(), args.timeout);
            waiters.push(tokio::spawn(async move {
                let _place = place;
                let to = format!("bench+{n}@mail.otp-harness.test");
                let code = format!("{:06}", (n * 7919) % 1_000_000);
                let body = format!(
                    "From: {SENDER}\r\nTo: {to}\r\nSubject: Your sign-in code\r\n\r\nYour sign-in code is {code}\r\n"
                );
                let mark = mailroom.mark();
                let sent = Instant::now();
                let put = client
                    .put_object()
                    .bucket(BUCKET)
                    .key(format!("{prefix}mail-{n:08}"))
                    .body(ByteStream::from(body.into_bytes()))
                    .send()
                    .await;
                let put_took = sent.elapsed();
                if put.is_err() {
                    return Outcome::PutFailed;
                }
                let done = Instant::now();
                match mailroom.wait(&to, mark, timeout, Duration::ZERO).await {
                    Ok(_) => Outcome::InHand { put: put_took, in_hand: done.elapsed(), at: Instant::now() },
                    Err(_) => Outcome::TimedOut { put: put_took },
                }
            }));
        }
        *next += total;
        let (mut put_latency, mut in_hand) = (new_histogram(), new_histogram());
        let (mut codes, mut timed_out, mut put_failed) = (0u64, 0u64, 0u64);
        let (mut first, mut last): (Option<Instant>, Option<Instant>) = (None, None);
        for waiter in waiters {
            match waiter.await {
                Ok(Outcome::InHand { put, in_hand: d, at }) => {
                    record(&mut put_latency, put);
                    record(&mut in_hand, d);
                    codes += 1;
                    first = Some(first.map_or(at, |f| f.min(at)));
                    last = Some(last.map_or(at, |l| l.max(at)));
                }
                Ok(Outcome::TimedOut { put }) => {
                    record(&mut put_latency, put);
                    timed_out += 1;
                }
                Ok(Outcome::PutFailed) | Err(_) => put_failed += 1,
            }
        }
        let elapsed = started.elapsed().as_secs_f64().max(1e-3);
        let cpu_after = (super::client::cpu_secs(std::process::id()), super::client::cpu_secs(self.moto_pid));
        let per_code = |before: Option<f64>, after: Option<f64>| match (before, after) {
            (Some(b), Some(a)) if codes > 0 => Some(((a - b) * 1000.0 / codes as f64 * 1000.0).round() / 1000.0),
            _ => None,
        };
        // Codes in hand per second in steady state: between the first code in hand and the last (a
        // constant delay does not lower it; a source falling behind does).
        let codes_per_sec = match (first, last) {
            (Some(first), Some(last)) if codes > 1 && last > first => {
                ((codes - 1) as f64 / last.duration_since(first).as_secs_f64() * 10.0).round() / 10.0
            }
            _ => 0.0,
        };
        let dropped = dropped.load(Ordering::Relaxed);
        let put = total - dropped;
        let requests = (self.mailroom.counts().source_requests - before) as f64 / elapsed;
        RateResult {
            offered_per_sec: rate,
            put,
            dropped,
            put_failed,
            codes,
            timed_out,
            codes_per_sec,
            sustained: dropped == 0
                && put_failed == 0
                && timed_out == 0
                && codes == total
                && codes_per_sec >= 0.95 * f64::from(rate),
            put_latency: Percentiles::of(&put_latency),
            in_hand: Percentiles::of(&in_hand),
            source_requests_per_sec: (requests * 10.0).round() / 10.0,
            bench_cpu_ms_per_code: per_code(cpu_before.0, cpu_after.0),
            moto_cpu_ms_per_code: per_code(cpu_before.1, cpu_after.1),
        }
    }
}
