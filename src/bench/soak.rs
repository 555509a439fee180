//! `bench soak`: a long run at a steady high rate, watching for what grows. The local pool runs as a
//! process of its own (`otp-harness pool`) and the harness as another (`otp-harness run` on the
//! scenario, retargeted at that pool), so each one's memory is its own. Every `--sample` the resident
//! set and open file descriptors of both, the harness's tokio tasks (from its progress line) and the
//! sign-ins so far are taken; at the end a table, and each process's growth after warm-up — in percent
//! over the run and per hour (least squares) — go to the terminal, `soak.md` and `soak.json` in the
//! run's folder.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The scenario to soak (its target is replaced by the pool process; codes come from its outbox).
    #[arg(long, default_value = "scenarios/bench-rate.toml")]
    pub scenario: PathBuf,
    /// How long the load runs.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// How often the processes are sampled.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub sample: Duration,
    /// Growth is measured after this much of the run: caches, pools and histograms filling up, and the
    /// pool holding a full `auth_session_validity` (3 min by default) of sessions.
    #[arg(long, default_value = "4m", value_parser = humantime::parse_duration)]
    pub warm_up: Duration,
    /// Parent folder of the run folder.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
}

/// One sample of both processes.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub secs: f64,
    pub harness_rss_kb: u64,
    pub harness_fds: u64,
    /// The harness's live tokio tasks, as its last progress line said.
    pub harness_tasks: Option<u64>,
    pub pool_rss_kb: u64,
    pub pool_fds: u64,
    /// Flows ended so far, as the harness's last progress line said.
    pub flows: Option<u64>,
}

/// Growth of one series after warm-up.
#[derive(Debug, Clone, Serialize)]
pub struct Growth {
    /// At the first sample after warm-up and at the last.
    pub from_kb: u64,
    pub to_kb: u64,
    /// (to − from) ÷ from.
    pub percent: f64,
    /// Least-squares slope over the samples after warm-up.
    pub kb_per_hour: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SoakResult {
    pub scenario: String,
    pub duration_secs: f64,
    pub warm_up_secs: f64,
    pub flows: Option<u64>,
    pub harness: Option<Growth>,
    pub pool: Option<Growth>,
    pub samples: Vec<Sample>,
    pub harness_exit: Option<i32>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(!args.sample.is_zero(), "--sample must be longer than zero");
    let exe = std::env::current_exe().context("finding the otp-harness binary")?;
    let text =
        std::fs::read_to_string(&args.scenario).with_context(|| format!("reading {}", args.scenario.display()))?;
    let scenario = crate::scenario::Scenario::parse(&text, &args.scenario).map_err(|e| anyhow::anyhow!("{e}"))?;
    if scenario.otp.source != crate::scenario::OtpSourceKind::Outbox {
        bail!("the soak reads codes from the pool's outbox: use a scenario with otp.source = \"outbox\"");
    }
    let (mut pool, info) = start_pool(&exe, &scenario.users, None).await?;
    let pool_pid = pool.id().context("the pool process has no pid")?;

    let retargeted = retarget(&text, &info, args.duration)?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("soak.toml");
    std::fs::write(&file, retargeted)?;
    let out = std::path::absolute(&args.out)?;
    let mut harness = super::spawn_harness_run(tokio::process::Command::new(&exe), &file, &out)?;
    let harness_pid = harness.id().context("the harness process has no pid")?;
    let progress = Arc::new(Mutex::new((None, None)));
    let reader =
        tokio::spawn(read_progress(harness.stderr.take().context("the harness's stderr")?, Arc::clone(&progress)));

    let started = Instant::now();
    let mut samples = Vec::new();
    let status = loop {
        tokio::select! {
            status = harness.wait() => break status?,
            _ = tokio::time::sleep(args.sample) => {
                let (tasks, flows) = *progress.lock();
                let sample = Sample {
                    secs: round1(started.elapsed().as_secs_f64()),
                    harness_rss_kb: rss_kb(harness_pid).unwrap_or(0),
                    harness_fds: fds(harness_pid).unwrap_or(0),
                    harness_tasks: tasks,
                    pool_rss_kb: rss_kb(pool_pid).unwrap_or(0),
                    pool_fds: fds(pool_pid).unwrap_or(0),
                    flows,
                };
                eprintln!(
                    "  {:>7.0}s  harness {:>7.1} MB {:>4} fds {:>5} tasks   pool {:>7.1} MB {:>4} fds   flows {}",
                    sample.secs, sample.harness_rss_kb as f64 / 1024.0, sample.harness_fds,
                    sample.harness_tasks.map_or("-".into(), |t| t.to_string()),
                    sample.pool_rss_kb as f64 / 1024.0, sample.pool_fds,
                    sample.flows.map_or("-".into(), |f| f.to_string()),
                );
                samples.push(sample);
            }
        }
    };
    let _ = reader.await;
    let _ = pool.kill().await;
    let warm_up = args.warm_up.as_secs_f64();
    let result = SoakResult {
        scenario: scenario.name.clone(),
        duration_secs: round1(started.elapsed().as_secs_f64()),
        warm_up_secs: warm_up,
        flows: progress.lock().1,
        harness: growth(&samples, warm_up, |s| s.harness_rss_kb),
        pool: growth(&samples, warm_up, |s| s.pool_rss_kb),
        samples,
        harness_exit: status.code(),
    };
    let markdown = render(&result);
    print!("{markdown}");
    let run_dir = newest_run_dir(&out, &format!("{}-", scenario.name));
    let target = run_dir.unwrap_or(out);
    std::fs::write(target.join("soak.md"), &markdown)?;
    super::emit_json(&result, Some(&target.join("soak.json")))?;
    eprintln!("soak report: {}", target.join("soak.md").display());
    Ok(())
}

/// Starts `otp-harness pool` for the scenario's users (pinned to `cpus` with `taskset -c` when given)
/// and reads its ready line: the process (killed when dropped) and what the line says.
pub(super) async fn start_pool(
    exe: &Path,
    users: &crate::scenario::Users,
    cpus: Option<&str>,
) -> anyhow::Result<(tokio::process::Child, serde_json::Value)> {
    let mut command = super::pinned_command(exe, cpus);
    let mut pool = command
        .args(["pool", "--listen", "127.0.0.1:0", "--user-pattern", &users.pattern])
        .args(["--users", &(users.first + users.count).to_string()])
        .env("OTP_HARNESS_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("starting the pool process")?;
    let mut ready = String::new();
    let stdout = pool.stdout.take().context("the pool's stdout")?;
    tokio::time::timeout(Duration::from_secs(30), BufReader::new(stdout).read_line(&mut ready))
        .await
        .context("the pool did not get ready in 30 s")??;
    let info: serde_json::Value = serde_json::from_str(&ready).context("the pool's ready line")?;
    Ok((pool, info))
}

/// The scenario's text pointed at the pool process: an `aws` target with its endpoint, codes from its
/// outbox, the load for `duration`.
fn retarget(text: &str, info: &serde_json::Value, duration: Duration) -> anyhow::Result<String> {
    retarget_with_progress(text, info, duration, "2s")
}

/// As `retarget`, with a progress line every `progress`.
pub(super) fn retarget_with_progress(
    text: &str,
    info: &serde_json::Value,
    duration: Duration,
    progress: &str,
) -> anyhow::Result<String> {
    let mut doc: toml::Table = toml::from_str(text)?;
    let field = |key: &str| info[key].as_str().map(str::to_string).with_context(|| format!("the pool's {key}"));
    let mut target = toml::Table::new();
    target.insert("kind".into(), "aws".into());
    for (key, from) in [
        ("region", "region"),
        ("user_pool_id", "user_pool_id"),
        ("client_id", "client_id"),
        ("endpoint_url", "endpoint"),
        ("issuer", "issuer"),
    ] {
        target.insert(key.into(), field(from)?.into());
    }
    doc.insert("target".into(), target.into());
    let otp = doc.entry("otp").or_insert_with(|| toml::Table::new().into());
    let outbox = otp.as_table_mut().context("[otp]")?.entry("outbox").or_insert_with(|| toml::Table::new().into());
    outbox.as_table_mut().context("[otp.outbox]")?.insert("url".into(), field("outbox")?.into());
    let load = doc.entry("load").or_insert_with(|| toml::Table::new().into()).as_table_mut().context("[load]")?;
    load.remove("iterations");
    load.insert("duration".into(), humantime::format_duration(duration).to_string().into());
    let report = doc.entry("report").or_insert_with(|| toml::Table::new().into()).as_table_mut().context("[report]")?;
    report.insert("progress".into(), progress.into());
    Ok(toml::to_string(&doc)?)
}

/// Keeps the last "tasks N" and "flows N" of the harness's progress lines.
async fn read_progress(stderr: tokio::process::ChildStderr, progress: Arc<Mutex<(Option<u64>, Option<u64>)>>) {
    let mut lines = BufReader::new(stderr).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let number_after =
            |word: &str| line.split_whitespace().skip_while(|w| *w != word).nth(1).and_then(|n| n.parse::<u64>().ok());
        let (tasks, flows) = (number_after("tasks"), number_after("flows"));
        let mut p = progress.lock();
        if tasks.is_some() {
            p.0 = tasks;
        }
        if flows.is_some() {
            p.1 = flows;
        }
    }
}

/// Growth after warm-up of one series.
fn growth(samples: &[Sample], warm_up: f64, value: impl Fn(&Sample) -> u64) -> Option<Growth> {
    let after: Vec<(f64, f64)> =
        samples.iter().filter(|s| s.secs >= warm_up).map(|s| (s.secs, value(s) as f64)).collect();
    let (first, last) = (after.first()?, after.last()?);
    let n = after.len() as f64;
    let (mean_t, mean_v) = (after.iter().map(|p| p.0).sum::<f64>() / n, after.iter().map(|p| p.1).sum::<f64>() / n);
    let covariance: f64 = after.iter().map(|(t, v)| (t - mean_t) * (v - mean_v)).sum();
    let variance: f64 = after.iter().map(|(t, _)| (t - mean_t).powi(2)).sum();
    let slope = if variance > 0.0 { covariance / variance } else { 0.0 };
    Some(Growth {
        from_kb: first.1 as u64,
        to_kb: last.1 as u64,
        percent: round1(if first.1 > 0.0 { (last.1 - first.1) / first.1 * 100.0 } else { 0.0 }),
        kb_per_hour: (slope * 3600.0).round(),
    })
}

fn render(r: &SoakResult) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "# Soak: {} for {:.0} s ({} flows)\n\n| s | harness RSS MB | harness fds | harness tasks | pool RSS MB | pool fds | flows |\n|---:|---:|---:|---:|---:|---:|---:|\n",
        r.scenario,
        r.duration_secs,
        r.flows.map_or("?".into(), |f| f.to_string())
    );
    let every = (r.samples.len() / 20).max(1);
    for (i, s) in r.samples.iter().enumerate() {
        if i % every == 0 || i + 1 == r.samples.len() {
            let _ = writeln!(
                out,
                "| {:.0} | {:.1} | {} | {} | {:.1} | {} | {} |",
                s.secs,
                s.harness_rss_kb as f64 / 1024.0,
                s.harness_fds,
                s.harness_tasks.map_or("-".into(), |t| t.to_string()),
                s.pool_rss_kb as f64 / 1024.0,
                s.pool_fds,
                s.flows.map_or("-".into(), |f| f.to_string())
            );
        }
    }
    let _ = writeln!(out, "\nGrowth after {:.0} s of warm-up:\n", r.warm_up_secs);
    for (name, g) in [("harness", &r.harness), ("pool", &r.pool)] {
        match g {
            Some(g) => {
                let _ = writeln!(
                    out,
                    "- {name}: {:.1} → {:.1} MB ({:+.1} %), {:+.1} MB per hour",
                    g.from_kb as f64 / 1024.0,
                    g.to_kb as f64 / 1024.0,
                    g.percent,
                    g.kb_per_hour / 1024.0
                );
            }
            None => {
                let _ = writeln!(out, "- {name}: no sample after warm-up");
            }
        }
    }
    out
}

/// VmRSS of a process, in kB.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches("kB").trim().parse().ok()
}

/// Open file descriptors of a process.
fn fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// The newest folder under `parent` whose name starts with `prefix`.
fn newest_run_dir(parent: &Path, prefix: &str) -> Option<PathBuf> {
    std::fs::read_dir(parent)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix) && e.path().is_dir())
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(secs: f64, harness: u64) -> Sample {
        Sample {
            secs,
            harness_rss_kb: harness,
            harness_fds: 0,
            harness_tasks: None,
            pool_rss_kb: 0,
            pool_fds: 0,
            flows: None,
        }
    }

    #[test]
    fn growth_is_measured_after_warm_up_as_a_percentage_and_a_slope() {
        // Warm-up doubles the RSS; after it, 1,000 kB per 10 s: 360,000 kB per hour.
        let samples: Vec<Sample> = [(0.0, 1000), (60.0, 50_000), (120.0, 100_000), (130.0, 101_000), (140.0, 102_000)]
            .into_iter()
            .map(|(t, v)| sample(t, v))
            .collect();
        let g = growth(&samples, 120.0, |s| s.harness_rss_kb).expect("after warm-up");
        assert_eq!((g.from_kb, g.to_kb, g.percent), (100_000, 102_000, 2.0));
        assert!((g.kb_per_hour - 360_000.0).abs() < 1.0, "{}", g.kb_per_hour);
        assert!(growth(&samples, 1000.0, |s| s.harness_rss_kb).is_none());
    }

    #[test]
    fn a_scenario_is_pointed_at_the_pool_process() {
        let info = serde_json::json!({"region": "r", "user_pool_id": "p", "client_id": "c",
            "endpoint": "http://127.0.0.1:1", "issuer": "http://127.0.0.1:1/p", "outbox": "http://127.0.0.1:1/_aws/ses"});
        let text =
            "name = \"x\"\n[target]\nkind = \"local\"\n[otp]\nsource = \"outbox\"\n[load]\nusers = 2\niterations = 3\n";
        let doc: toml::Table =
            toml::from_str(&retarget(text, &info, Duration::from_secs(90)).expect("retargeted")).expect("toml");
        assert_eq!(doc["target"]["kind"].as_str(), Some("aws"));
        assert_eq!(doc["target"]["endpoint_url"].as_str(), Some("http://127.0.0.1:1"));
        assert_eq!(doc["otp"]["outbox"]["url"].as_str(), Some("http://127.0.0.1:1/_aws/ses"));
        assert_eq!(doc["load"]["duration"].as_str(), Some("1m 30s"));
        assert!(doc["load"].get("iterations").is_none());
    }
}
