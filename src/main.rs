//! The `otp-harness` command line: a thin clap layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use otp_harness::exit;
use otp_harness::pool::{self, LocalPool, PoolConfig};

/// Load and conformance harness for passwordless (email one-time code) sign-in on Amazon Cognito.
#[derive(Parser)]
#[command(name = "otp-harness", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario: virtual users sign in, codes are read from the inbox, lockout and tokens are checked.
    ///
    /// Writes summary.json, summary.md and junit.xml into reports/<name>-<UTC time>/ and prints a summary.
    /// Exit codes: 0 pass, 2 unusable scenario or arguments, 3 the run could not happen,
    /// 98 conformance failure, 99 threshold breached.
    Run {
        /// The scenario file (TOML); see scenarios/.
        scenario: PathBuf,
        /// Parent folder of the run's report folder (default: the scenario's report.dir, "reports").
        #[arg(long)]
        out: Option<PathBuf>,
        /// Check the scenario file and exit.
        #[arg(long)]
        check: bool,
        /// Run one machine's slice of the scenario: INDEX/COUNT (0-based), e.g. 0/4. Each worker signs
        /// in as a disjoint range of the test users with its share of the load; `merge` combines them.
        /// A Kubernetes Indexed Job passes `--worker $JOB_COMPLETION_INDEX/N`.
        #[arg(long, value_name = "INDEX/COUNT")]
        worker: Option<String>,
        /// Create the scenario's test users first, as `users create` does (a deployed pool; the
        /// embedded pool starts with them).
        #[arg(long)]
        provision: bool,
        /// Delete the test users this tool created after the run, whatever its outcome, as
        /// `users delete` does.
        #[arg(long)]
        cleanup: bool,
        /// Skip the preflight of pool, client, SES and quotas (by default a failed verdict stops the
        /// run before the load, with exit 3).
        #[arg(long)]
        no_preflight: bool,
        /// Serve a live dashboard and Prometheus `/metrics` while the run lasts, on ADDR: PORT, :PORT,
        /// IP:PORT (0.0.0.0:PORT to be scraped from other machines), :0 for any free port. Without
        /// ADDR: 127.0.0.1:9470 (with --worker I/N: port 9470+I). Put it after the scenario file.
        #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = "")]
        dashboard: Option<String>,
        /// Keep the dashboard's final page and report links up this long after the run (Ctrl-C ends it
        /// sooner), e.g. 10m.
        #[arg(long, value_name = "DURATION", requires = "dashboard", value_parser = humantime::parse_duration)]
        dashboard_linger: Option<std::time::Duration>,
    },
    /// Check a pool, its app client, the account's SES and Cognito's quotas against what the scenario
    /// will ask of them, before any sign-in.
    ///
    /// One line per verdict (PASS, WARN, FAIL, SKIP); also writes preflight.json and
    /// preflight.junit.xml. A call the credentials may not make is a SKIP naming it, not a failure.
    /// Needs cognito-idp:DescribeUserPool, DescribeUserPoolClient and ses:GetAccount, GetEmailIdentity,
    /// ListSuppressedDestinations, GetSuppressedDestination (docs/aws/). Exit codes: 0 no verdict
    /// failed, 2 unusable scenario, 3 a verdict failed.
    Preflight {
        /// The scenario file (TOML).
        scenario: PathBuf,
        /// Folder for preflight.json and preflight.junit.xml (default:
        /// <report.dir>/<name>-preflight-<UTC time>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Create, list or delete a deployed pool's test users (the scenario's [users]).
    #[command(subcommand)]
    Users(UsersCommand),
    /// Merge the run folders of several workers (`run --worker I/N`) into one report.
    ///
    /// Latency histograms are added exactly from each latency.hlog; counts are summed; checks and
    /// thresholds are evaluated again, and the exit code is the merged run's.
    Merge {
        /// The workers' run folders.
        #[arg(required = true)]
        runs: Vec<PathBuf>,
        /// Where the merged report goes (default: reports/<scenario>-merged-<UTC time> beside the first).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Compare a run with a baseline run: per-step percentile and success-rate changes; exit 99 on a
    /// regression beyond the tolerance. Writes compare.md and compare.json into the current run folder.
    Compare {
        /// The baseline run folder (e.g. last night's).
        baseline: PathBuf,
        /// The run folder to judge.
        current: PathBuf,
        /// How much a latency percentile may grow, as a percentage.
        #[arg(long, default_value = "10%")]
        tolerance: String,
        /// Growth below this is never a regression (tiny latencies are noisy).
        #[arg(long, default_value = "1ms", value_parser = humantime::parse_duration)]
        min_delta: std::time::Duration,
        /// How many percentage points a success rate may fall.
        #[arg(long, default_value = "1%")]
        rate_tolerance: String,
        /// Where compare.md and compare.json go (default: the current run folder).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run the local pool: an offline Cognito-compatible endpoint for custom-auth sign-in by email code.
    ///
    /// Prints one JSON line (endpoint, region, user_pool_id, client_id, …) to stdout when ready, then
    /// serves until interrupted. Logs go to stderr.
    Pool {
        /// Where to listen: HOST:PORT, :PORT or PORT, loopback only (:0 picks a free port).
        #[arg(long, default_value_t = format!("127.0.0.1:{}", pool::DEFAULT_PORT))]
        listen: String,
        /// Pool config (TOML); see scenarios/local-pool.toml. Without it, the defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Create test users from a pattern with {n}, e.g. "loadtest+{n}@mail.test" (with --users).
        #[arg(long, requires = "users")]
        user_pattern: Option<String>,
        /// How many users to create from --user-pattern.
        #[arg(long, requires = "user_pattern")]
        users: Option<u32>,
    },
    /// Benchmarks (use a release build): pool throughput, harness overhead, memory per virtual user,
    /// code sources (IMAP, outbox, S3 listing vs SQS), soak, client CPU.
    #[command(subcommand)]
    Bench(otp_harness::bench::Bench),
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Create the scenario's test users that do not exist yet (AdminCreateUser, MessageAction
    /// SUPPRESS, email verified), each with the otp-harness marker: the custom attribute
    /// custom:otp_harness if the pool declares it, else the tag "otp-harness" in the address. Safe to
    /// run again. Paced below Cognito's UserCreation quota; throttled answers are waited out.
    Create {
        scenario: PathBuf,
        #[command(flatten)]
        pace: Pace,
    },
    /// List the scenario's test users that exist in the pool (ListUsers), with their status and marker.
    List { scenario: PathBuf },
    /// Delete the scenario's test users that carry the otp-harness marker; a user without it is never
    /// deleted (reported, exit 3).
    Delete {
        scenario: PathBuf,
        #[command(flatten)]
        pace: Pace,
    },
}

#[derive(clap::Args)]
struct Pace {
    /// Admin calls per second (Cognito's UserCreation quota is 50/s for the whole account and region).
    #[arg(long, default_value_t = 10.0)]
    rate: f64,
    /// Calls in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

/// mimalloc instead of glibc's malloc: per-request allocations (SDK, HTTP, JSON) are most of the
/// harness's allocator traffic at load (see reports/BENCHMARKS.md, `bench client`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    otp_harness::logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::CANNOT_RUN);
        }
    };
    runtime.block_on(async {
        match cli.command {
            Command::Run {
                scenario,
                out,
                check,
                worker,
                provision,
                cleanup,
                no_preflight,
                dashboard,
                dashboard_linger,
            } => {
                let options = otp_harness::run::RunOptions {
                    report_dir: out,
                    skip_preflight: no_preflight,
                    provision,
                    cleanup,
                    dashboard: None,
                };
                let live = dashboard.map(|addr| (addr, dashboard_linger.unwrap_or_default()));
                run_scenario(scenario, options, check, worker, live).await
            }
            Command::Preflight { scenario, out } => preflight(scenario, out).await,
            Command::Users(command) => users(command).await,
            Command::Merge { runs, out } => merge(runs, out),
            Command::Compare { baseline, current, tolerance, min_delta, rate_tolerance, out } => {
                compare(baseline, current, &tolerance, min_delta, &rate_tolerance, out)
            }
            Command::Pool { listen, config, user_pattern, users } => {
                run_pool(listen, config, user_pattern, users).await
            }
            Command::Bench(bench) => match otp_harness::bench::run(bench).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(exit::CANNOT_RUN)
                }
            },
        }
    })
}

async fn run_scenario(
    path: PathBuf,
    mut options: otp_harness::run::RunOptions,
    check_only: bool,
    worker: Option<String>,
    dashboard: Option<(String, std::time::Duration)>,
) -> ExitCode {
    let slice = match worker.as_deref().map(otp_harness::scenario::WorkerSlice::parse).transpose() {
        Ok(slice) => slice,
        Err(e) => {
            eprintln!("error: --worker: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let load = || -> Result<otp_harness::scenario::Scenario, String> {
        let scenario = otp_harness::scenario::Scenario::load(&path).map_err(|e| e.to_string())?;
        match slice {
            Some(slice) => scenario.for_worker(slice).map_err(|e| e.to_string()),
            None => Ok(scenario),
        }
    };
    let scenario = match load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    // The dashboard's address is checked and bound before anything else happens.
    if let Some((addr, linger)) = dashboard {
        let bound = otp_harness::live::parse_addr(&addr, slice).and_then(otp_harness::live::Listener::bind);
        match bound {
            Ok(listener) => options.dashboard = Some(otp_harness::live::Options { listener, worker: slice, linger }),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(exit::USAGE);
            }
        }
    }
    if check_only {
        println!("{}: ok", path.display());
        return ExitCode::SUCCESS;
    }
    otp_harness::interrupt::install();
    match otp_harness::run::run(&scenario, &options).await {
        Ok(output) => {
            print!("{}", otp_harness::report::console::render(&output.result));
            println!("  reports: {}", output.report_dir.display());
            if let Some(dashboard) = output.dashboard {
                dashboard.wait().await;
            }
            ExitCode::from(output.result.exit_code)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn preflight(path: PathBuf, out: Option<PathBuf>) -> ExitCode {
    let scenario = match otp_harness::scenario::Scenario::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let (target, pool) = match otp_harness::target::resolve(&scenario).await {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::CANNOT_RUN);
        }
    };
    let checked = otp_harness::preflight::run(&scenario, &target).await;
    if let Some(pool) = pool {
        let _ = pool.stop().await;
    }
    print!("{}", checked.render());
    let dir = out.unwrap_or_else(|| {
        otp_harness::report::run_dir(
            &scenario.report.dir,
            &format!("{}-preflight", scenario.name),
            std::time::SystemTime::now(),
        )
    });
    if let Err(e) = checked.write(&dir) {
        eprintln!("error: {e:#}");
        return ExitCode::from(exit::CANNOT_RUN);
    }
    println!("  written: {}", dir.join("preflight.json").display());
    ExitCode::from(if checked.failed() { exit::CANNOT_RUN } else { exit::PASS })
}

async fn users(command: UsersCommand) -> ExitCode {
    use otp_harness::provision;
    let path = match &command {
        UsersCommand::Create { scenario, .. }
        | UsersCommand::List { scenario }
        | UsersCommand::Delete { scenario, .. } => scenario.clone(),
    };
    let scenario = match otp_harness::scenario::Scenario::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    if scenario.target.kind == otp_harness::scenario::TargetKind::Local {
        eprintln!(
            "error: {}: target.kind = \"local\" starts its own pool with the test users, so there is nothing to \
             create or delete\n  fix: point the scenario at a deployed pool (kind = \"aws\"), or at `otp-harness pool` \
             with target.endpoint_url",
            path.display()
        );
        return ExitCode::from(exit::USAGE);
    }
    let target = match otp_harness::target::resolve(&scenario).await {
        Ok((target, _)) => target,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::CANNOT_RUN);
        }
    };
    let clients = otp_harness::admin::AdminClients::new(&target, &Default::default(), 1).await;
    let options = |pace: &Pace| provision::CreateOptions {
        rate: pace.rate,
        concurrency: pace.concurrency,
        ..provision::CreateOptions::default()
    };
    if let UsersCommand::Create { pace, .. } | UsersCommand::Delete { pace, .. } = &command
        && (!pace.rate.is_finite() || pace.rate <= 0.0 || pace.concurrency == 0)
    {
        eprintln!("error: --rate must be above 0 and --concurrency at least 1");
        return ExitCode::from(exit::USAGE);
    }
    match command {
        UsersCommand::Create { pace, .. } => {
            let progress = provision::Progress::new(!pace.quiet);
            match provision::create(&clients, &scenario, &options(&pace), &progress).await {
                Ok(outcome) => {
                    println!("{}", provision::summarize_create(&outcome));
                    ExitCode::from(if outcome.failed.is_empty() { exit::PASS } else { exit::CANNOT_RUN })
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(exit::CANNOT_RUN)
                }
            }
        }
        UsersCommand::Delete { pace, .. } => {
            let progress = provision::Progress::new(!pace.quiet);
            match provision::delete(&clients, &scenario, &options(&pace), &progress).await {
                Ok(outcome) => {
                    println!("{}", provision::summarize_delete(&outcome));
                    let clean = outcome.failed.is_empty() && outcome.refused.is_empty();
                    ExitCode::from(if clean { exit::PASS } else { exit::CANNOT_RUN })
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(exit::CANNOT_RUN)
                }
            }
        }
        UsersCommand::List { .. } => match provision::list(&clients, &scenario).await {
            Ok((users, marker)) => {
                for user in &users {
                    println!(
                        "{:40}  {:22}  {:8}  {}",
                        user.address,
                        user.status,
                        if user.enabled { "enabled" } else { "disabled" },
                        if user.marked { "marked" } else { "NOT MARKED" }
                    );
                }
                println!(
                    "{} of {} test users exist; {} carry the marker ({})",
                    users.len(),
                    scenario.users.count,
                    users.iter().filter(|u| u.marked).count(),
                    marker.describe()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(exit::CANNOT_RUN)
            }
        },
    }
}

fn merge(runs: Vec<PathBuf>, out: Option<PathBuf>) -> ExitCode {
    let out = match out.map_or_else(|| otp_harness::merge::default_out(&runs[0]), Ok) {
        Ok(out) => out,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(exit::USAGE);
        }
    };
    match otp_harness::merge::merge(&runs, &out) {
        Ok(result) => {
            print!("{}", otp_harness::report::console::render(&result));
            println!("  reports: {}", out.display());
            ExitCode::from(result.exit_code)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::USAGE)
        }
    }
}

fn compare(
    baseline: PathBuf,
    current: PathBuf,
    tolerance: &str,
    min_delta: std::time::Duration,
    rate_tolerance: &str,
    out: Option<PathBuf>,
) -> ExitCode {
    let percent = |text: &str, flag: &str| -> Result<f64, String> {
        let number = text.trim().strip_suffix('%').ok_or(format!("{flag} takes a percentage like 10%"))?;
        number.trim().parse::<f64>().map(|v| v / 100.0).map_err(|_| format!("{flag} takes a percentage like 10%"))
    };
    let tolerance = match (percent(tolerance, "--tolerance"), percent(rate_tolerance, "--rate-tolerance")) {
        (Ok(latency), Ok(success_rate)) => {
            otp_harness::compare::Tolerance { latency, min_delta_ms: min_delta.as_secs_f64() * 1000.0, success_rate }
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let out = out.unwrap_or_else(|| current.clone());
    match otp_harness::compare::run(&baseline, &current, tolerance, &out) {
        Ok((comparison, markdown)) => {
            print!("{markdown}");
            ExitCode::from(if comparison.regressions == 0 { exit::PASS } else { exit::THRESHOLD_BREACHED })
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit::USAGE)
        }
    }
}

async fn run_pool(listen: String, config: Option<PathBuf>, pattern: Option<String>, users: Option<u32>) -> ExitCode {
    let setup = || -> anyhow::Result<(PoolConfig, std::net::SocketAddr)> {
        let mut config = match &config {
            Some(path) => PoolConfig::from_file(path)?,
            None => PoolConfig::default(),
        };
        if let (Some(pattern), Some(count)) = (pattern, users) {
            config.users.pattern = Some(pattern);
            config.users.count = count;
            config.validate()?;
        }
        Ok((config, pool::parse_listen(&listen)?))
    };
    let (config, address) = match setup() {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let running = match LocalPool::start(config, address).await {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(exit::CANNOT_RUN);
        }
    };
    otp_harness::interrupt::install();
    match serde_json::to_string(running.info()) {
        Ok(line) => println!("{line}"),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::CANNOT_RUN);
        }
    }
    tokio::select! {
        result = running.wait() => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(exit::CANNOT_RUN)
            }
        },
        _ = otp_harness::interrupt::cancelled() => {
            tracing::info!("interrupted; pool stopped");
            ExitCode::SUCCESS
        }
    }
}
