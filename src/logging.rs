//! Logging setup: human-readable lines on stderr, level from `OTP_HARNESS_LOG` (default `info`).
//! Nothing logged anywhere carries a code, token, session or password — so the crates that write what
//! they send at debug or trace level (the IMAP client writes its LOGIN and SASL lines, the HTTP and SDK
//! layers their bodies) are held at `info` whatever `OTP_HARNESS_LOG` asks.

/// Crates held at `info`: at finer levels they log wire data (passwords, tokens, Sessions, codes).
const WIRE_LOGGERS: [&str; 8] =
    ["async_imap", "imap_proto", "aws_smithy_runtime", "aws_smithy_http", "aws_sdk", "hyper", "h2", "reqwest"];

/// Installs the global subscriber once; later calls do nothing.
pub fn init() {
    let _ = tracing_subscriber::fmt().with_env_filter(filter()).with_writer(std::io::stderr).try_init();
}

/// `OTP_HARNESS_LOG` (default `info,goose=warn`), with the wire loggers capped at `info`.
fn filter() -> tracing_subscriber::EnvFilter {
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("OTP_HARNESS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,goose=warn"));
    for target in WIRE_LOGGERS {
        if let Ok(directive) = format!("{target}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    filter
}

#[cfg(test)]
mod tests {
    #[test]
    fn wire_loggers_stay_at_info_even_when_trace_is_asked() {
        // SAFETY: tests in this binary do not read OTP_HARNESS_LOG concurrently.
        unsafe { std::env::set_var("OTP_HARNESS_LOG", "trace,async_imap=trace") };
        let text = super::filter().to_string();
        unsafe { std::env::remove_var("OTP_HARNESS_LOG") };
        assert!(text.contains("async_imap=info"), "{text}");
        assert!(!text.contains("async_imap=trace"), "{text}");
        assert!(text.contains("aws_smithy_runtime=info"), "{text}");
    }
}
