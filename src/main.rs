//! The `otp-harness` command line: a thin clap layer over the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Measure the local pool: full custom-auth sign-ins per second, and the bound set by RS256 signing.
    BenchPool(otp_harness::bench::BenchPoolArgs),
}

/// Exit codes shared by every subcommand (k6-style).
mod exit {
    pub const USAGE: u8 = 2;
    pub const CANNOT_RUN: u8 = 3;
}

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
            Command::Run { scenario, out, check } => run_scenario(scenario, out, check).await,
            Command::Pool { listen, config, user_pattern, users } => {
                run_pool(listen, config, user_pattern, users).await
            }
            Command::BenchPool(args) => match otp_harness::bench::run_pool_bench(args).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(exit::CANNOT_RUN)
                }
            },
        }
    })
}

async fn run_scenario(path: PathBuf, out: Option<PathBuf>, check_only: bool) -> ExitCode {
    let scenario = match otp_harness::scenario::Scenario::load(&path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    if check_only {
        println!("{}: ok", path.display());
        return ExitCode::SUCCESS;
    }
    otp_harness::interrupt::install();
    let options = otp_harness::run::RunOptions { report_dir: out };
    match otp_harness::run::run(&scenario, &options).await {
        Ok(output) => {
            print!("{}", otp_harness::report::console::render(&output.result));
            println!("  reports: {}", output.report_dir.display());
            ExitCode::from(output.result.exit_code)
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
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
        _ = tokio::signal::ctrl_c() => {
            tracing::info!("interrupted; pool stopped");
            ExitCode::SUCCESS
        }
    }
}
