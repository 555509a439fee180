//! `bench client`: what the harness itself costs per sign-in. The local pool runs as a process of its
//! own pinned to one set of CPUs, the harness (`otp-harness run` on the scenario, retargeted at that
//! pool) as another pinned to the others (`taskset`, where it exists), so neither steals the other's
//! cores. From `/proc/PID/stat` (user + system time of every thread) it takes each process's CPU at the
//! first progress line after warm-up and at the last one, and the sign-ins done in between from the
//! same lines: client CPU per sign-in, pool CPU per sign-in, sign-ins per second. `--harness` runs
//! another build of the harness against the same pool (a before/after comparison on one machine).

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::emit_json;
use super::soak::{retarget_with_progress, start_pool};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The scenario to run (its target is replaced by the pool process; codes come from its outbox).
    #[arg(long, default_value = "scenarios/bench-rate.toml")]
    pub scenario: PathBuf,
    /// How long the load runs.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// CPU use is counted from the first progress line after this much of the run.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub warm_up: Duration,
    /// CPUs the pool process is pinned to (a `taskset -c` list); empty: not pinned.
    #[arg(long, default_value = "0")]
    pub pool_cpus: String,
    /// CPUs the harness process is pinned to; empty: not pinned.
    #[arg(long, default_value = "1")]
    pub client_cpus: String,
    /// Another otp-harness binary to run as the client (default: this one); the pool is always this one.
    #[arg(long)]
    pub harness: Option<PathBuf>,
    /// Parent folder of the harness's run folder.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Also write the JSON line here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One progress line of the harness, with the watched processes' CPU seconds when it was read.
#[derive(Debug, Clone)]
pub(super) struct Tick {
    pub at: Instant,
    pub flows: u64,
    /// One per watched process, in the order given to [`watch_progress`].
    pub cpu: Vec<f64>,
}

/// Reads the harness's progress lines until its stderr closes, taking the CPU time of `pids` at each.
pub(super) fn watch_progress(
    stderr: tokio::process::ChildStderr,
    pids: Vec<u32>,
) -> (Arc<Mutex<Vec<Tick>>>, tokio::task::JoinHandle<()>) {
    let ticks: Arc<Mutex<Vec<Tick>>> = Arc::default();
    let reader = {
        let ticks = Arc::clone(&ticks);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(flows) = flows_in(&line)
                    && let Some(cpu) = pids.iter().map(|pid| cpu_secs(*pid)).collect::<Option<Vec<f64>>>()
                {
                    ticks.lock().push(Tick { at: Instant::now(), flows, cpu });
                }
            }
        })
    };
    (ticks, reader)
}

/// The first and the last tick at least `warm_up` after `started`.
pub(super) fn counted_window(ticks: &[Tick], started: Instant, warm_up: Duration) -> Option<(Tick, Tick)> {
    let counted: Vec<&Tick> = ticks.iter().filter(|t| t.at.duration_since(started) >= warm_up).collect();
    Some(((*counted.first()?).clone(), (*counted.last()?).clone()))
}

#[derive(Debug, Clone, Serialize)]
pub struct ClientResult {
    pub scenario: String,
    pub harness: String,
    pub pinned: bool,
    /// Seconds over which CPU was counted (after warm-up).
    pub window_secs: f64,
    pub sign_ins: u64,
    pub sign_ins_per_sec: f64,
    /// CPU seconds of the harness process per sign-in, in milliseconds.
    pub client_cpu_ms_per_sign_in: f64,
    /// CPU seconds of the pool process per sign-in, in milliseconds.
    pub pool_cpu_ms_per_sign_in: f64,
    /// Share of one core the harness used.
    pub client_cores: f64,
    pub pool_cores: f64,
    pub harness_exit: Option<i32>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    anyhow::ensure!(args.warm_up < args.duration, "--warm-up must be shorter than --duration");
    let exe = std::env::current_exe().context("finding the otp-harness binary")?;
    let harness_exe = args.harness.clone().unwrap_or_else(|| exe.clone());
    let text =
        std::fs::read_to_string(&args.scenario).with_context(|| format!("reading {}", args.scenario.display()))?;
    let scenario = crate::scenario::Scenario::parse(&text, &args.scenario).map_err(|e| anyhow::anyhow!("{e}"))?;
    if scenario.otp.source != crate::scenario::OtpSourceKind::Outbox {
        bail!("bench client reads codes from the pool's outbox: use a scenario with otp.source = \"outbox\"");
    }
    let pinned = taskset_available() && !args.pool_cpus.is_empty() && !args.client_cpus.is_empty();
    if !pinned {
        eprintln!("note: taskset is missing or a CPU list is empty; the processes are not pinned");
    }
    let (pool, info) = start_pool(&exe, &scenario.users, pinned.then_some(args.pool_cpus.as_str())).await?;
    let pool_pid = pool.id().context("the pool process has no pid")?;

    let retargeted = retarget_with_progress(&text, &info, args.duration, "1s")?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("client.toml");
    std::fs::write(&file, retargeted)?;
    let out = std::path::absolute(&args.out)?;
    let command = super::pinned_command(&harness_exe, pinned.then_some(args.client_cpus.as_str()));
    let mut harness = super::spawn_harness_run(command, &file, &out)?;
    let harness_pid = harness.id().context("the harness process has no pid")?;
    let stderr = harness.stderr.take().context("the harness's stderr")?;
    let (ticks, reader) = watch_progress(stderr, vec![harness_pid, pool_pid]);
    let started = Instant::now();
    let status = tokio::time::timeout(args.duration + Duration::from_secs(120), harness.wait())
        .await
        .context("the harness did not end within two minutes of its duration")??;
    let _ = reader.await;
    drop(pool);
    let Some((first, last)) = counted_window(&ticks.lock(), started, args.warm_up) else {
        bail!("the harness printed no progress after warm-up (exit {:?})", status.code());
    };
    let (client_cpu, pool_cpu) = (last.cpu[0] - first.cpu[0], last.cpu[1] - first.cpu[1]);
    let sign_ins = last.flows.saturating_sub(first.flows);
    anyhow::ensure!(sign_ins > 0, "no sign-in ended after warm-up (harness exit {:?})", status.code());
    let window = last.at.duration_since(first.at).as_secs_f64();
    let per = |cpu: f64| round3(cpu / sign_ins as f64 * 1000.0);
    let result = ClientResult {
        scenario: scenario.name.clone(),
        harness: harness_exe.display().to_string(),
        pinned,
        window_secs: round3(window),
        sign_ins,
        sign_ins_per_sec: round3(sign_ins as f64 / window),
        client_cpu_ms_per_sign_in: per(client_cpu),
        pool_cpu_ms_per_sign_in: per(pool_cpu),
        client_cores: round3(client_cpu / window),
        pool_cores: round3(pool_cpu / window),
        harness_exit: status.code(),
    };
    println!(
        "client {:.3} ms CPU per sign-in ({:.2} cores) | pool {:.3} ms ({:.2} cores) | {:.0} sign-ins/s over {:.1} s{}",
        result.client_cpu_ms_per_sign_in,
        result.client_cores,
        result.pool_cpu_ms_per_sign_in,
        result.pool_cores,
        result.sign_ins_per_sec,
        result.window_secs,
        if pinned { "" } else { " (not pinned)" }
    );
    emit_json(&result, args.json.as_deref())
}

/// The "flows N" of a progress line.
pub(super) fn flows_in(line: &str) -> Option<u64> {
    line.split_whitespace().skip_while(|w| *w != "flows").nth(1).and_then(|n| n.parse().ok())
}

/// User + system CPU seconds of a process (all its threads), from `/proc/PID/stat`.
pub(super) fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / clock_ticks_per_sec())
}

/// utime + stime (fields 14 and 15) of a `/proc/PID/stat` line; the command name in parentheses may
/// hold spaces, so fields are counted after its closing parenthesis.
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")" the first field is the state (field 3): utime is field 14, i.e. index 11 here.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 on every common Linux).
fn clock_ticks_per_sec() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// Whether `taskset` can be run.
pub(super) fn taskset_available() -> bool {
    std::process::Command::new("taskset")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub(super) fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_ticks_are_read_after_the_command_name_even_with_spaces_in_it() {
        let stat = "4242 (tokio runtime) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_cpu_ticks(stat), Some(325));
        assert_eq!(parse_cpu_ticks("garbage"), None);
    }

    #[test]
    fn counting_starts_at_the_first_progress_line_after_warm_up() {
        let started = Instant::now();
        let tick =
            |secs: u64, flows: u64| Tick { at: started + Duration::from_secs(secs), flows, cpu: vec![secs as f64] };
        let ticks = vec![tick(1, 10), tick(3, 30), tick(4, 40), tick(6, 60)];
        let (first, last) = counted_window(&ticks, started, Duration::from_secs(3)).expect("a window");
        assert_eq!((first.flows, last.flows), (30, 60));
        assert_eq!(last.cpu[0] - first.cpu[0], 3.0);
        assert!(counted_window(&ticks, started, Duration::from_secs(7)).is_none(), "nothing after warm-up");
    }

    #[test]
    fn the_flow_count_is_read_from_a_progress_line() {
        let line =
            "     12.0s  flows 24817 (2061.3/s)  in flight 64  login p99 36 ms  errors 0  throttled 0  tasks 140";
        assert_eq!(flows_in(line), Some(24817));
        assert_eq!(flows_in("the harness said nothing useful"), None);
    }
}
