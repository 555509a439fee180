//! `bench outbox`: how long after the local pool's outbox holds a code mail the code is in a waiting
//! virtual user's hand, for the outbox source reading by a held-open `wait` read and by polling at given
//! intervals. The embedded pool runs in-process; each mail is pushed into its outbox directly, so what
//! is timed starts at the outbox's own insertion and is the source's share alone. Per mode it also
//! counts the reads the source sent per second while no user waited and while users waited.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Percentiles, emit_json, record};
use crate::background::{self, CancellationToken};
use crate::metrics::new_histogram;
use crate::otp::outbox::OutboxWatcher;
use crate::otp::{Extractor, Mailroom};
use crate::pool::outbox::{Body, Destination, OutboxMessage};
use crate::pool::{LocalPool, PoolConfig};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Messages per mode.
    #[arg(long, default_value_t = 1000)]
    pub messages: usize,
    /// Messages in flight at once (each sender pushes one, waits for its code, then the next).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Polling intervals to compare with the wait read.
    #[arg(long, value_delimiter = ',', default_value = "50ms,5ms", value_parser = humantime::parse_duration)]
    pub poll: Vec<Duration>,
    /// How long each mode watches with no user waiting (its reads per second are counted).
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub idle: Duration,
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModeResult {
    pub mode: String,
    /// From the outbox's insertion to the code in hand.
    pub in_hand: Percentiles,
    pub idle_reads_per_sec: f64,
    pub busy_reads_per_sec: f64,
    pub codes_per_sec: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutboxResult {
    pub messages: usize,
    pub concurrency: usize,
    pub modes: Vec<ModeResult>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!((1..=1_000_000).contains(&args.messages), "--messages must be between 1 and 1000000");
    anyhow::ensure!((1..=1024).contains(&args.concurrency), "--concurrency must be between 1 and 1024");
    anyhow::ensure!(args.idle <= Duration::from_secs(600), "--idle must be at most 10m");
    let pool = LocalPool::start(PoolConfig::default(), "127.0.0.1:0".parse()?).await?;
    let outbox = pool.state().mail.outbox().cloned().ok_or_else(|| anyhow::anyhow!("the pool's outbox is off"))?;
    let url = pool.info().outbox.clone().ok_or_else(|| anyhow::anyhow!("the pool has no outbox address"))?;
    let mut modes: Vec<Option<Duration>> = vec![None];
    modes.extend(args.poll.iter().copied().map(Some));
    let mut results = Vec::new();
    let mut next_id = 0usize;
    for poll in modes {
        let extractor = Extractor::new(r"\b(\d{6})\b", None)?;
        let watcher = OutboxWatcher::connect(url.clone(), poll.unwrap_or(Duration::from_millis(50)), extractor)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let watcher = if poll.is_some() { watcher.polling() } else { watcher };
        let name = match poll {
            None => format!("{} (held-open read)", watcher.mode().name()),
            Some(every) => format!("poll every {every:?}"),
        };
        let mailroom = Arc::new(Mailroom::new());
        let stop = CancellationToken::new();
        let task = tokio::spawn(watcher.run(Arc::clone(&mailroom), stop.clone()));
        let before = mailroom.counts().source_requests;
        tokio::time::sleep(args.idle).await;
        let idle_reads = (mailroom.counts().source_requests - before) as f64 / args.idle.as_secs_f64().max(1e-3);
        let before = mailroom.counts().source_requests;
        let started = Instant::now();
        let per_sender = args.messages.div_ceil(args.concurrency);
        let mut senders = Vec::new();
        for sender in 0..args.concurrency {
            let (outbox, mailroom) = (Arc::clone(&outbox), Arc::clone(&mailroom));
            let first = next_id + sender * per_sender;
            senders.push(tokio::spawn(async move {
                let mut in_hand = new_histogram();
                for n in first..first + per_sender {
                    let to = format!("bench+{n}@mail.otp-harness.test");
                    let code = format!("{:06}", (n * 7919) % 1_000_000);
                    let text = format!("Your sign-in code is {code}");
                    let raw = format!(
                        "From: no-reply@auth.otp-harness.test\r\nTo: {to}\r\nSubject: Your sign-in code\r\n\r\n{text}\r\n"
                    );
                    let mark = mailroom.mark();
                    let pushed = Instant::now();
                    outbox.push(OutboxMessage {
                        id: format!("bench-{n}"),
                        region: "us-east-1".into(),
                        destination: Destination { to_addresses: vec![to.clone()] },
                        source: "no-reply@auth.otp-harness.test".into(),
                        subject: "Your sign-in code".into(),
                        body: Body { text_part: Some(text), html_part: None },
                        timestamp: String::new(),
                        raw_data: raw,
                    });
                    mailroom.wait(&to, mark, Duration::from_secs(10), Duration::ZERO).await?;
                    record(&mut in_hand, pushed.elapsed());
                }
                anyhow::Ok(in_hand)
            }));
        }
        next_id += per_sender * args.concurrency;
        let mut in_hand = new_histogram();
        for sender in senders {
            in_hand.add(&sender.await??)?;
        }
        let busy = started.elapsed().as_secs_f64().max(1e-3);
        let busy_reads = (mailroom.counts().source_requests - before) as f64 / busy;
        background::finish(&stop, task, Duration::from_secs(5)).await;
        let result = ModeResult {
            mode: name,
            in_hand: Percentiles::of(&in_hand),
            idle_reads_per_sec: (idle_reads * 10.0).round() / 10.0,
            busy_reads_per_sec: (busy_reads * 10.0).round() / 10.0,
            codes_per_sec: (in_hand.len() as f64 / busy).round(),
        };
        println!(
            "{:<26} in hand after insertion p50 {:.3} p99 {:.3} max {:.3} ms | {:.0} codes/s | reads/s idle {:.1} busy {:.1}",
            result.mode,
            result.in_hand.p50_ms,
            result.in_hand.p99_ms,
            result.in_hand.max_ms,
            result.codes_per_sec,
            result.idle_reads_per_sec,
            result.busy_reads_per_sec
        );
        results.push(result);
    }
    pool.stop().await?;
    emit_json(
        &OutboxResult { messages: args.messages, concurrency: args.concurrency, modes: results },
        args.json.as_deref(),
    )
}
