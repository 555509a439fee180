//! Benchmarks, as subcommands of the release binary (`cargo run --release -- bench …`), so that what is
//! measured is what users run. Each prints a table and one JSON line; numbers go to
//! reports/BENCHMARKS.md with the machine. Tests never assert timings: benchmarks measure them.

pub mod client;
pub mod dashboard;
pub mod imap;
pub mod memory;
pub mod outbox;
pub mod overhead;
pub mod pool;
pub mod s3;
pub mod soak;

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;

use hdrhistogram::Histogram;
use serde::Serialize;

/// The benchmarks.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Bench {
    /// The local pool: full sign-ins per second, and the bound RS256 signing sets.
    Pool(pool::BenchPoolArgs),
    /// Harness overhead: the same sign-ins through the harness and through a bare SDK loop.
    Overhead(overhead::Args),
    /// Memory per idle virtual user under goose.
    Memory(memory::Args),
    /// Time until a code mailed over LMTP to Dovecot is in the harness's hand, IMAP IDLE vs polling.
    Imap(imap::Args),
    /// A long run at a steady rate, the pool in a process of its own: memory, file descriptors and
    /// tasks of both sampled, growth after warm-up reported.
    Soak(soak::Args),
    /// Time from the local pool's outbox having a code mail to the code in hand: a held-open read vs polling.
    Outbox(outbox::Args),
    /// The harness's own CPU per sign-in, against a pool in another process pinned to other CPUs.
    Client(client::Args),
    /// What `run --dashboard` costs: runs with and without it, a viewer on the page, `/metrics` scraped.
    Dashboard(dashboard::Args),
    /// The ceiling of one S3 prefix as a code source on moto: listing it vs S3 event notifications
    /// read from SQS, at fixed PUT rates.
    S3(s3::Args),
}

/// Runs one benchmark.
pub async fn run(bench: Bench) -> anyhow::Result<()> {
    if cfg!(debug_assertions) {
        eprintln!("warning: this is a debug build; benchmark numbers need `cargo run --release`");
    }
    match bench {
        Bench::Pool(args) => pool::run_pool_bench(args).await,
        Bench::Overhead(args) => overhead::run(args).await,
        Bench::Memory(args) => memory::run(args).await,
        Bench::Imap(args) => imap::run(args).await,
        Bench::Soak(args) => soak::run(args).await,
        Bench::Client(args) => client::run(args).await,
        Bench::Outbox(args) => outbox::run(args).await,
        Bench::Dashboard(args) => dashboard::run(args).await,
        Bench::S3(args) => s3::run(args).await,
    }
}

/// p50 / p99 / max of a microsecond histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |v: u64| (v as f64 / 1000.0 * 1000.0).round() / 1000.0;
        if h.is_empty() {
            return Self { count: 0, p50_ms: 0.0, p99_ms: 0.0, max_ms: 0.0 };
        }
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.5)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
        }
    }
}

/// Records a duration (µs) into a histogram.
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    let _ = h.record((d.as_micros() as u64).max(1));
}

/// Prints the JSON line and writes it to `path` when given.
pub fn emit_json<T: Serialize>(value: &T, path: Option<&std::path::Path>) -> anyhow::Result<()> {
    let line = serde_json::to_string(value)?;
    println!("{line}");
    if let Some(path) = path {
        std::fs::write(path, line)?;
    }
    Ok(())
}

/// A command running `program`, pinned to the CPU list `cpus` with `taskset -c` when one is given.
pub(crate) fn pinned_command(program: impl AsRef<std::ffi::OsStr>, cpus: Option<&str>) -> tokio::process::Command {
    match cpus {
        Some(cpus) => {
            let mut command = tokio::process::Command::new("taskset");
            command.args(["-c", cpus]).arg(program);
            command
        }
        None => tokio::process::Command::new(program),
    }
}

/// Starts `command` (a harness executable, maybe behind `taskset`) as `run FILE --out OUT` against a
/// local pool: dummy credentials, nothing read from the machine's AWS config, stdout dropped, stderr
/// piped for its progress line, killed if dropped.
pub(crate) fn spawn_harness_run(
    command: tokio::process::Command,
    file: &Path,
    out: &Path,
) -> anyhow::Result<tokio::process::Child> {
    spawn_harness_run_with(command, file, out, &[])
}

/// [`spawn_harness_run`] with more options of `run` after `--out OUT`.
pub(crate) fn spawn_harness_run_with(
    mut command: tokio::process::Command,
    file: &Path,
    out: &Path,
    extra: &[&str],
) -> anyhow::Result<tokio::process::Child> {
    command
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(out)
        .args(extra)
        .env("AWS_ACCESS_KEY_ID", "local")
        .env("AWS_SECRET_ACCESS_KEY", "local")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the harness process")
}
