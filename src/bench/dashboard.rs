//! `bench dashboard`: what `run --dashboard` costs the run it watches. The same scenario (default
//! `scenarios/bench-rate.toml`, embedded pool, a CPU-bound closed-model load) runs in pairs of runs,
//! one without the dashboard and one with it, the order alternating from pair to pair; the harness
//! process is pinned to its own CPUs (`taskset`), the viewer to others. While a dashboard run lasts a
//! viewer is connected — headless Chromium on the live page, or a bare server-sent-events reader
//! standing in for a browser on another machine — and `/metrics` is scraped every `--scrape` interval.
//! Per run it takes, after warm-up and from the harness's progress lines and `/proc`, sign-ins per
//! second and the harness's CPU per sign-in; per pair the ratio with ÷ without; and the dashboard's own
//! busy time from its last scrape. The medians of the ratios are the measured cost.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use parking_lot::Mutex;
use serde::Serialize;

use super::client::{counted_window, round3, taskset_available, watch_progress};
use super::emit_json;

/// Who watches the dashboard during the runs that have one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Viewer {
    /// Headless Chromium (Debian's `chromium`) with the live page open.
    Chromium,
    /// A reader of the page's event stream (what a browser on another machine costs the harness).
    Sse,
    /// Nobody on the page; only `/metrics` is scraped.
    None,
}

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The scenario to run (a local target; its load duration and progress interval are replaced).
    #[arg(long, default_value = "scenarios/bench-rate.toml")]
    pub scenario: PathBuf,
    /// Pairs of runs (one without, one with the dashboard; the order alternates).
    #[arg(long, default_value_t = 6)]
    pub pairs: usize,
    /// How long each run's load lasts.
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// Rates and CPU are counted from the first progress line after this much of each run.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub warm_up: Duration,
    /// Who watches the page during the dashboard runs.
    #[arg(long, value_enum, default_value_t = Viewer::Chromium)]
    pub viewer: Viewer,
    /// How often `/metrics` is scraped during the dashboard runs.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub scrape: Duration,
    /// Loopback port the dashboard listens on.
    #[arg(long, default_value_t = 9479)]
    pub port: u16,
    /// CPUs the harness is pinned to (a `taskset -c` list); empty: not pinned.
    #[arg(long, default_value = "1")]
    pub harness_cpus: String,
    /// CPUs the viewer (Chromium, and this process's scraper and event reader) is pinned to; empty: not pinned.
    #[arg(long, default_value = "0")]
    pub viewer_cpus: String,
    /// Parent folder of the runs' folders.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Also write the JSON line here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One run, with or without the dashboard.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub dashboard: bool,
    pub sign_ins_per_sec: f64,
    /// Harness CPU (user + system, all threads) per 1,000 sign-ins, in seconds.
    pub cpu_secs_per_1000_sign_ins: f64,
    /// The dashboard's own busy time as its last scrape reported it, in milliseconds.
    pub dashboard_busy_ms: Option<f64>,
    /// Scrapes of `/metrics` answered during the run.
    pub scrapes: u64,
    /// Bytes of server-sent events the viewer read (SSE viewer only).
    pub event_bytes: u64,
    /// Most pages the dashboard counted connected at a scrape (the viewer's page, when it has one).
    pub pages_seen: u64,
}

/// Median and range of a per-pair ratio (with ÷ without).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct DashboardResult {
    pub scenario: String,
    pub viewer: Viewer,
    pub pinned: bool,
    pub pairs: usize,
    pub runs: Vec<RunResult>,
    /// Sign-ins per second with ÷ without, per pair.
    pub rate_ratio: Spread,
    /// CPU per sign-in with ÷ without, per pair.
    pub cpu_ratio: Spread,
    /// The dashboard's busy time as a share of the harness's CPU, in percent (median over dashboard runs).
    pub busy_share_pct: Option<f64>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.pairs > 0, "--pairs must be at least 1");
    anyhow::ensure!(args.warm_up < args.duration, "--warm-up must be shorter than --duration");
    let exe = std::env::current_exe().context("finding the otp-harness binary")?;
    let text =
        std::fs::read_to_string(&args.scenario).with_context(|| format!("reading {}", args.scenario.display()))?;
    let scenario = crate::scenario::Scenario::parse(&text, &args.scenario).map_err(|e| anyhow::anyhow!("{e}"))?;
    let pinned = taskset_available() && !args.harness_cpus.is_empty();
    if !pinned {
        eprintln!("note: taskset is missing or --harness-cpus is empty; the harness is not pinned");
    }
    if pinned && !args.viewer_cpus.is_empty() {
        // The scraper and the event reader run in this process: off the harness's CPUs too.
        pin_self(&args.viewer_cpus);
    }
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("dashboard-bench.toml");
    std::fs::write(&file, with_duration_and_progress(&text, args.duration)?)?;
    let out = std::path::absolute(&args.out)?;

    let mut runs = Vec::new();
    for pair in 0..args.pairs {
        let order = if pair % 2 == 0 { [false, true] } else { [true, false] };
        for dashboard in order {
            let run = one_run(&args, &exe, &file, &out, dashboard, pinned).await?;
            println!(
                "pair {} {:>13}: {:>7.0} sign-ins/s  {:.3} s CPU per 1,000  dashboard busy {}  scrapes {}  pages {}",
                pair + 1,
                if dashboard { "dashboard on" } else { "dashboard off" },
                run.sign_ins_per_sec,
                run.cpu_secs_per_1000_sign_ins,
                run.dashboard_busy_ms.map_or("-".to_string(), |ms| format!("{ms:.1} ms")),
                run.scrapes,
                run.pages_seen,
            );
            runs.push(run);
        }
    }
    let pairs: Vec<(&RunResult, &RunResult)> =
        runs.chunks(2).map(|c| if c[0].dashboard { (&c[0], &c[1]) } else { (&c[1], &c[0]) }).collect();
    let rate_ratio = spread(pairs.iter().map(|(on, off)| on.sign_ins_per_sec / off.sign_ins_per_sec).collect());
    let cpu_ratio =
        spread(pairs.iter().map(|(on, off)| on.cpu_secs_per_1000_sign_ins / off.cpu_secs_per_1000_sign_ins).collect());
    let shares: Vec<f64> = runs
        .iter()
        .filter_map(|r| {
            let busy_secs = r.dashboard_busy_ms? / 1000.0;
            let cpu_secs = r.cpu_secs_per_1000_sign_ins * r.sign_ins_per_sec / 1000.0 * args.duration.as_secs_f64();
            (cpu_secs > 0.0).then(|| busy_secs / cpu_secs * 100.0)
        })
        .collect();
    let busy_share_pct = (!shares.is_empty()).then(|| round3(spread(shares).median));
    let result = DashboardResult {
        scenario: scenario.name.clone(),
        viewer: args.viewer,
        pinned,
        pairs: args.pairs,
        runs,
        rate_ratio,
        cpu_ratio,
        busy_share_pct,
    };
    println!(
        "dashboard on ÷ off over {} pairs: sign-ins/s {:.3} (range {:.3}–{:.3}), CPU per sign-in {:.3} ({:.3}–{:.3}), dashboard busy ≈ {}% of the harness's CPU",
        result.pairs,
        rate_ratio.median,
        rate_ratio.min,
        rate_ratio.max,
        cpu_ratio.median,
        cpu_ratio.min,
        cpu_ratio.max,
        busy_share_pct.map_or("-".to_string(), |p| format!("{p:.2}")),
    );
    emit_json(&result, args.json.as_deref())
}

/// Moves every thread of this process to `cpus` (`taskset -a -p`); a failure is only noted.
fn pin_self(cpus: &str) {
    let pid = std::process::id().to_string();
    let status = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("note: could not pin the bench's own threads to CPUs {cpus}");
    }
}

/// The scenario with its load lasting `duration` and a progress line every second.
fn with_duration_and_progress(text: &str, duration: Duration) -> anyhow::Result<String> {
    let mut doc: toml::Table = toml::from_str(text)?;
    let load = doc.entry("load").or_insert_with(|| toml::Table::new().into()).as_table_mut().context("[load]")?;
    load.remove("iterations");
    load.insert("duration".into(), humantime::format_duration(duration).to_string().into());
    let report = doc.entry("report").or_insert_with(|| toml::Table::new().into()).as_table_mut().context("[report]")?;
    report.insert("progress".into(), "1s".into());
    Ok(toml::to_string(&doc)?)
}

async fn one_run(
    args: &Args,
    exe: &Path,
    file: &Path,
    out: &Path,
    dashboard: bool,
    pinned: bool,
) -> anyhow::Result<RunResult> {
    let command = super::pinned_command(exe, pinned.then_some(args.harness_cpus.as_str()));
    let addr = format!("127.0.0.1:{}", args.port);
    let extra: &[&str] = if dashboard { &["--dashboard", &addr] } else { &[] };
    let mut harness = super::spawn_harness_run_with(command, file, out, extra)?;
    let pid = harness.id().context("the harness process has no pid")?;
    let stderr = harness.stderr.take().context("the harness's stderr")?;
    let (ticks, reader) = watch_progress(stderr, vec![pid]);
    let stop = Arc::new(AtomicBool::new(false));
    let watchers = dashboard.then(|| Watchers::start(args, Arc::clone(&stop)));
    let started = Instant::now();
    let status = tokio::time::timeout(args.duration + Duration::from_secs(120), harness.wait())
        .await
        .context("the harness did not end within two minutes of its duration")??;
    stop.store(true, Ordering::Relaxed);
    let _ = reader.await;
    let (busy_ms, scrapes, event_bytes, pages_seen) = match watchers {
        Some(w) => w.finish().await,
        None => (None, 0, 0, 0),
    };
    anyhow::ensure!(status.success(), "the harness run failed (exit {:?})", status.code());
    if dashboard {
        anyhow::ensure!(scrapes > 0, "no /metrics scrape was answered: is port {} free?", args.port);
        anyhow::ensure!(
            args.viewer == Viewer::None || pages_seen > 0,
            "the viewer never had the page open (no connected page at any scrape)"
        );
    }
    let Some((first, last)) = counted_window(&ticks.lock(), started, args.warm_up) else {
        bail!("the harness printed no progress after warm-up");
    };
    let sign_ins = last.flows.saturating_sub(first.flows);
    anyhow::ensure!(sign_ins > 0, "no sign-in ended after warm-up");
    let window = last.at.duration_since(first.at).as_secs_f64();
    Ok(RunResult {
        dashboard,
        sign_ins_per_sec: round3(sign_ins as f64 / window),
        cpu_secs_per_1000_sign_ins: round3((last.cpu[0] - first.cpu[0]) / sign_ins as f64 * 1000.0),
        dashboard_busy_ms: busy_ms.map(round3),
        scrapes,
        event_bytes,
        pages_seen,
    })
}

/// The viewer and the scraper of one dashboard run.
struct Watchers {
    scraper: tokio::task::JoinHandle<()>,
    viewer: Option<tokio::task::JoinHandle<()>>,
    browser: Arc<Mutex<Option<tokio::process::Child>>>,
    busy_secs: Arc<Mutex<Option<f64>>>,
    pages_seen: Arc<AtomicU64>,
    scrapes: Arc<AtomicU64>,
    event_bytes: Arc<AtomicU64>,
    _profile: Option<tempfile::TempDir>,
}

impl Watchers {
    fn start(args: &Args, stop: Arc<AtomicBool>) -> Self {
        let base = format!("http://127.0.0.1:{}", args.port);
        let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build().unwrap_or_default();
        let busy_secs: Arc<Mutex<Option<f64>>> = Arc::default();
        let scrapes = Arc::new(AtomicU64::new(0));
        let pages_seen = Arc::new(AtomicU64::new(0));
        let event_bytes = Arc::new(AtomicU64::new(0));
        let scraper = {
            let (http, url, stop) = (http.clone(), format!("{base}/metrics"), Arc::clone(&stop));
            let (busy_secs, scrapes, every) = (Arc::clone(&busy_secs), Arc::clone(&scrapes), args.scrape);
            let pages_seen = Arc::clone(&pages_seen);
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(text) = get_text(&http, &url).await {
                        scrapes.fetch_add(1, Ordering::Relaxed);
                        if let Some(v) = value_in(&text, "otp_harness_dashboard_busy_seconds_total") {
                            *busy_secs.lock() = Some(v);
                        }
                        if let Some(pages) = value_in(&text, "otp_harness_dashboard_pages") {
                            pages_seen.fetch_max(pages as u64, Ordering::Relaxed);
                        }
                    }
                    tokio::time::sleep(every).await;
                }
            })
        };
        let browser: Arc<Mutex<Option<tokio::process::Child>>> = Arc::default();
        let mut profile = None;
        let viewer = match args.viewer {
            Viewer::None => None,
            Viewer::Sse => {
                let (url, stop, bytes) = (format!("{base}/events"), Arc::clone(&stop), Arc::clone(&event_bytes));
                Some(tokio::spawn(async move { read_events(&url, &stop, &bytes).await }))
            }
            Viewer::Chromium => {
                let dir = tempfile::tempdir().ok();
                let profile_path = dir.as_ref().map(|d| d.path().to_path_buf());
                profile = dir;
                let (http, stop, browser) = (http.clone(), Arc::clone(&stop), Arc::clone(&browser));
                let cpus = (taskset_available() && !args.viewer_cpus.is_empty()).then(|| args.viewer_cpus.clone());
                Some(tokio::spawn(async move {
                    // The page is opened once the dashboard answers, as a person would.
                    while !stop.load(Ordering::Relaxed) {
                        if get_text(&http, &format!("{base}/")).await.is_ok() {
                            match start_chromium(&format!("{base}/"), cpus.as_deref(), profile_path.as_deref()) {
                                Ok(child) => *browser.lock() = Some(child),
                                Err(e) => eprintln!("warning: {e:#}"),
                            }
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }))
            }
        };
        Self { scraper, viewer, browser, busy_secs, pages_seen, scrapes, event_bytes, _profile: profile }
    }

    /// Waits for the watchers (the caller has set the stop flag) and closes the browser: the last busy
    /// time, the scrapes answered, the event bytes read, the most pages seen connected.
    async fn finish(self) -> (Option<f64>, u64, u64, u64) {
        let _ = tokio::time::timeout(Duration::from_secs(5), self.scraper).await;
        if let Some(viewer) = self.viewer {
            let _ = tokio::time::timeout(Duration::from_secs(5), viewer).await;
        }
        let browser = self.browser.lock().take();
        if let Some(mut child) = browser {
            let _ = child.kill().await;
        }
        (
            self.busy_secs.lock().map(|s| s * 1000.0),
            self.scrapes.load(Ordering::Relaxed),
            self.event_bytes.load(Ordering::Relaxed),
            self.pages_seen.load(Ordering::Relaxed),
        )
    }
}

async fn get_text(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    Ok(http.get(url).send().await?.error_for_status()?.text().await?)
}

/// Reads the page's event stream until it ends or the run is over, counting its bytes; reconnects
/// while the dashboard is not up yet.
async fn read_events(url: &str, stop: &AtomicBool, bytes: &AtomicU64) {
    let http = reqwest::Client::new();
    while !stop.load(Ordering::Relaxed) {
        match http.get(url).send().await {
            Ok(mut response) if response.status().is_success() => {
                while let Ok(Some(chunk)) = response.chunk().await {
                    bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                }
                return;
            }
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Headless Chromium on `url` (pinned to `cpus`), killed when dropped.
fn start_chromium(url: &str, cpus: Option<&str>, profile: Option<&Path>) -> anyhow::Result<tokio::process::Child> {
    let binary = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("no Chromium found (/usr/bin/chromium): install it or use --viewer sse")?;
    let mut command = super::pinned_command(binary, cpus);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        // Keeps the browser up with the page open until it is killed.
        "--remote-debugging-address=127.0.0.1",
        "--remote-debugging-port=0",
    ]);
    if let Some(profile) = profile {
        command.arg(format!("--user-data-dir={}", profile.display()));
    }
    command.arg(url).stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true);
    command.spawn().context("starting headless Chromium")
}

/// The value of the (single) series `name` in a `/metrics` text.
fn value_in(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Median, smallest and largest of some ratios.
fn spread(mut values: Vec<f64>) -> Spread {
    values.retain(|v| v.is_finite());
    values.sort_by(f64::total_cmp);
    if values.is_empty() {
        return Spread { median: f64::NAN, min: f64::NAN, max: f64::NAN };
    }
    let n = values.len();
    let median = if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 };
    Spread { median: round3(median), min: round3(values[0]), max: round3(values[n - 1]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_busy_counter_is_read_from_a_metrics_text() {
        let text = "# HELP otp_harness_dashboard_busy_seconds_total Time…\n# TYPE otp_harness_dashboard_busy_seconds_total counter\notp_harness_dashboard_busy_seconds_total{worker=\"1\"} 0.0421\n";
        let busy = "otp_harness_dashboard_busy_seconds_total";
        assert_eq!(value_in(text, busy), Some(0.0421));
        assert_eq!(value_in("otp_harness_flows_total 3\n", busy), None);
        assert_eq!(
            value_in("otp_harness_dashboard_pages_x 3\notp_harness_dashboard_pages 1\n", "otp_harness_dashboard_pages"),
            Some(1.0)
        );
    }

    #[test]
    fn the_spread_is_the_median_and_range_of_the_pairs() {
        let s = spread(vec![1.02, 0.97, 0.99, 1.10]);
        assert_eq!((s.median, s.min, s.max), (1.005, 0.97, 1.1));
        assert_eq!(spread(vec![0.98, 1.01, 1.0]).median, 1.0);
    }

    #[test]
    fn the_scenario_gets_the_bench_duration_and_a_progress_line_a_second() {
        let text = "name = \"x\"\n[load]\nusers = 4\niterations = 10\n";
        let out = with_duration_and_progress(text, Duration::from_secs(12)).expect("rewritten");
        let doc: toml::Table = toml::from_str(&out).expect("toml");
        assert_eq!(doc["load"]["duration"].as_str(), Some("12s"));
        assert!(doc["load"].get("iterations").is_none());
        assert_eq!(doc["report"]["progress"].as_str(), Some("1s"));
    }
}
