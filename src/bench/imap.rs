//! `bench imap`: how long until a code mailed over LMTP to a real Dovecot is in the harness's hand, with
//! the IMAP source watching by IDLE, by adaptive NOOP polling, and as `mode = "auto"` chooses for the
//! server. Each message is timed from the start of its LMTP delivery; the LMTP part is reported apart,
//! so what remains is the source's own delay (and Dovecot's: its IDLE notifications come ~500 ms late
//! by design). Per mode it also counts the IMAP commands the source sent per second while no user
//! waited (an idle run) and while users waited (a busy one), and, with `--concurrency` senders at
//! once, the code-mail rate one connection kept up with. Needs root and Dovecot.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{Percentiles, emit_json, record};
use crate::background::{self, CancellationToken};
use crate::metrics::new_histogram;
use crate::otp::Mailroom;
use crate::otp::imap::ImapWatcher;
use crate::scenario::{AfterRead, ImapMode, ImapOptions};
use crate::testkit::dovecot::Dovecot;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Messages per mode.
    #[arg(long, default_value_t = 100)]
    pub messages: usize,
    /// The polling mode's NOOP interval while users wait.
    #[arg(long, default_value = "10ms", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// The polling mode's NOOP interval while no user waits.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub idle_poll_interval: Duration,
    /// How long each mode watches with no user waiting (its commands per second are counted).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub idle: Duration,
    /// Messages in flight at once (each sender delivers one, waits for its code, then the next).
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// Modes to measure (idle, poll, auto).
    #[arg(long, value_delimiter = ',', default_value = "idle,poll,auto")]
    pub modes: Vec<String>,
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModeResult {
    pub mode: String,
    /// What the source chose and why.
    pub source_mode: String,
    /// LMTP delivery alone.
    pub lmtp: Percentiles,
    /// From the start of the LMTP delivery to the code in hand.
    pub visible: Percentiles,
    /// IMAP commands (NOOP or IDLE) per second with no user waiting, and with users waiting.
    pub idle_commands_per_sec: f64,
    pub busy_commands_per_sec: f64,
    /// Codes in hand per second over the busy phase.
    pub codes_per_sec: f64,
    /// Mean server-side delay (INTERNALDATE to read), ms.
    pub server_delay_mean_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImapResult {
    pub messages: usize,
    pub concurrency: usize,
    pub poll_interval_ms: f64,
    pub modes: Vec<ModeResult>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!((1..=100_000).contains(&args.messages), "--messages must be between 1 and 100000");
    anyhow::ensure!((1..=256).contains(&args.concurrency), "--concurrency must be between 1 and 256");
    anyhow::ensure!(args.idle <= Duration::from_secs(600), "--idle must be at most 10m");
    let dovecot = Arc::new(Dovecot::start("bench@mail.test").await?);
    let password = tempfile::NamedTempFile::new()?;
    std::fs::write(password.path(), &dovecot.password)?;
    let mut modes = Vec::new();
    for name in &args.modes {
        let mode = match name.as_str() {
            "idle" => ImapMode::Idle,
            "poll" => ImapMode::Poll,
            "auto" => ImapMode::Auto,
            other => anyhow::bail!("unknown mode {other:?}: idle, poll or auto"),
        };
        let options = ImapOptions {
            host: "127.0.0.1".into(),
            port: Some(dovecot.imap_port),
            tls: false,
            ca_file: None,
            username: dovecot.user.clone(),
            password_env: None,
            password_file: Some(password.path().to_path_buf()),
            auth: Default::default(),
            token_env: None,
            token_file: None,
            token_command: None,
            token_refresh: None,
            scenario_dir: None,
            mailbox: "INBOX".into(),
            mode,
            poll_interval: args.poll_interval,
            idle_poll_interval: args.idle_poll_interval,
            after_read: AfterRead::Delete,
            connections: 1,
        };
        let mailroom = Arc::new(Mailroom::new());
        let watcher = ImapWatcher::connect(options, crate::otp::Extractor::new(r"\b(\d{6})\b", None)?).await?;
        let source_mode = watcher.mode_note().to_string();
        let stop = CancellationToken::new();
        let task = tokio::spawn(watcher.run(Arc::clone(&mailroom), stop.clone()));
        // Idle: nobody waits.
        let before = mailroom.counts().source_requests;
        tokio::time::sleep(args.idle).await;
        let idle_commands = (mailroom.counts().source_requests - before) as f64 / args.idle.as_secs_f64().max(1e-3);
        // Busy: `concurrency` senders, each delivering and waiting for its code in turn.
        let before = mailroom.counts().source_requests;
        let started = Instant::now();
        let per_sender = args.messages.div_ceil(args.concurrency);
        let mut senders = Vec::new();
        for sender in 0..args.concurrency {
            let (dovecot, mailroom) = (Arc::clone(&dovecot), Arc::clone(&mailroom));
            senders.push(tokio::spawn(async move {
                let (mut lmtp, mut visible) = (new_histogram(), new_histogram());
                for i in 0..per_sender {
                    let n = sender * per_sender + i;
                    let to = format!("bench+{n}@mail.test");
                    let code = format!("{:06}", (n * 7919) % 1_000_000);
                    let message = format!(
                        "From: no-reply@auth.otp-harness.test\r\nTo: {to}\r\nSubject: Your sign-in code\r\n\r\nYour sign-in code is {code}\r\n"
                    );
                    let mark = mailroom.mark();
                    let sent = Instant::now();
                    dovecot.deliver("no-reply@auth.otp-harness.test", &to, message.as_bytes()).await?;
                    record(&mut lmtp, sent.elapsed());
                    mailroom.wait(&to, mark, Duration::from_secs(10), Duration::ZERO).await?;
                    record(&mut visible, sent.elapsed());
                }
                anyhow::Ok((lmtp, visible))
            }));
        }
        let (mut lmtp, mut visible) = (new_histogram(), new_histogram());
        for sender in senders {
            let (l, v) = sender.await??;
            lmtp.add(&l)?;
            visible.add(&v)?;
        }
        let busy = started.elapsed().as_secs_f64().max(1e-3);
        let counts = mailroom.counts();
        let busy_commands = (counts.source_requests - before) as f64 / busy;
        background::finish(&stop, task, Duration::from_secs(5)).await;
        let result = ModeResult {
            mode: name.clone(),
            source_mode,
            lmtp: Percentiles::of(&lmtp),
            visible: Percentiles::of(&visible),
            idle_commands_per_sec: (idle_commands * 10.0).round() / 10.0,
            busy_commands_per_sec: (busy_commands * 10.0).round() / 10.0,
            codes_per_sec: (visible.len() as f64 / busy * 10.0).round() / 10.0,
            server_delay_mean_ms: counts.server_delay_mean_ms,
        };
        println!(
            "{:<5} LMTP p50 {:.1} p99 {:.1} ms | in hand p50 {:.1} p99 {:.1} ms | {:.1} codes/s | commands/s idle {:.1} busy {:.1} | server delay {} | {}",
            result.mode,
            result.lmtp.p50_ms,
            result.lmtp.p99_ms,
            result.visible.p50_ms,
            result.visible.p99_ms,
            result.codes_per_sec,
            result.idle_commands_per_sec,
            result.busy_commands_per_sec,
            result.server_delay_mean_ms.map_or("-".into(), |d| format!("{d:.0} ms")),
            result.source_mode,
        );
        modes.push(result);
    }
    let result = ImapResult {
        messages: args.messages,
        concurrency: args.concurrency,
        poll_interval_ms: args.poll_interval.as_secs_f64() * 1000.0,
        modes,
    };
    emit_json(&result, args.json.as_deref())
}
