//! `bench imap`: how long until a code mailed over LMTP to a real Dovecot is in the harness's hand, with
//! the IMAP source watching by IDLE and by NOOP polling. Each message is timed from the start of its
//! LMTP delivery; the LMTP part is reported apart, so what remains is the source's own delay (and
//! Dovecot's: its IDLE notifications come ~500 ms late by design). Needs root and Dovecot.

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
    /// The polling mode's NOOP interval.
    #[arg(long, default_value = "50ms", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModeResult {
    pub mode: String,
    /// LMTP delivery alone.
    pub lmtp: Percentiles,
    /// From the start of the LMTP delivery to the code in hand.
    pub visible: Percentiles,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImapResult {
    pub messages: usize,
    pub poll_interval_ms: f64,
    pub modes: Vec<ModeResult>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!((1..=10_000).contains(&args.messages), "--messages must be between 1 and 10000");
    let dovecot = Dovecot::start("bench@mail.test").await?;
    let password = tempfile::NamedTempFile::new()?;
    std::fs::write(password.path(), &dovecot.password)?;
    let mut modes = Vec::new();
    for mode in [ImapMode::Idle, ImapMode::Poll] {
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
            after_read: AfterRead::Delete,
        };
        let mailroom = Arc::new(Mailroom::new());
        let watcher = ImapWatcher::connect(options, crate::otp::Extractor::new(r"\b(\d{6})\b", None)?).await?;
        let stop = CancellationToken::new();
        let task = tokio::spawn(watcher.run(Arc::clone(&mailroom), stop.clone()));
        let (mut lmtp, mut visible) = (new_histogram(), new_histogram());
        for i in 0..args.messages {
            let to = format!("bench+{i}@mail.test");
            let code = format!("{:06}", (i * 7919) % 1_000_000);
            let message = format!(
                "From: no-reply@auth.otp-harness.test\r\nTo: {to}\r\nSubject: Your sign-in code\r\n\r\nYour sign-in code is {code}\r\n"
            );
            let mark = mailroom.mark();
            let started = Instant::now();
            dovecot.deliver("no-reply@auth.otp-harness.test", &to, message.as_bytes()).await?;
            record(&mut lmtp, started.elapsed());
            mailroom.wait(&to, mark, Duration::from_secs(10), Duration::ZERO).await?;
            record(&mut visible, started.elapsed());
        }
        background::finish(&stop, task, Duration::from_secs(5)).await;
        let name = match mode {
            ImapMode::Idle => "idle".to_string(),
            ImapMode::Poll => format!("poll every {:?}", args.poll_interval),
        };
        println!(
            "{name:<18} LMTP p50 {:.1} ms p99 {:.1} ms | code in hand p50 {:.1} ms p99 {:.1} ms",
            Percentiles::of(&lmtp).p50_ms,
            Percentiles::of(&lmtp).p99_ms,
            Percentiles::of(&visible).p50_ms,
            Percentiles::of(&visible).p99_ms
        );
        modes.push(ModeResult { mode: name, lmtp: Percentiles::of(&lmtp), visible: Percentiles::of(&visible) });
    }
    let result =
        ImapResult { messages: args.messages, poll_interval_ms: args.poll_interval.as_secs_f64() * 1000.0, modes };
    emit_json(&result, args.json.as_deref())
}
