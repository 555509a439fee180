//! Logging setup: human-readable lines on stderr, level from `OTP_HARNESS_LOG` (default `info`).
//! Nothing logged anywhere carries a code, token, session or password.

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OTP_HARNESS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,goose=warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
