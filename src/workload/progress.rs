//! The progress line printed to stderr while a run goes: elapsed time, sign-ins and their rate over
//! the last interval, sign-ins in flight, login p99 so far, errors and throttling.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use crate::background::CancellationToken;
use crate::metrics::{Metrics, Step};

/// Prints every `interval` until `stop` is cancelled (nothing when the interval is zero).
pub fn start(
    metrics: Arc<Metrics>,
    in_flight: Arc<AtomicI64>,
    interval: Duration,
    stop: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    if interval.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let started = Instant::now();
        let mut last_count = 0u64;
        let mut last_at = Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
            let done: u64 = metrics.flows().values().map(|f| f.succeeded + f.errored + f.nonconforming).sum();
            let rate = (done - last_count) as f64 / last_at.elapsed().as_secs_f64().max(1e-3);
            last_count = done;
            last_at = Instant::now();
            let login = metrics.step_summary(Step::Login);
            eprintln!(
                "  {:>6.1}s  flows {done} ({rate:.1}/s)  in flight {}  login p99 {:.0} ms  errors {}  throttled {}  tasks {}{}",
                started.elapsed().as_secs_f64(),
                in_flight.load(Ordering::Relaxed).max(0),
                login.p99_ms,
                metrics.error_count(),
                metrics.throttled(),
                tokio::runtime::Handle::current().metrics().num_alive_tasks(),
                match metrics.dropped() {
                    0 => String::new(),
                    n => format!("  dropped {n}"),
                }
            );
        }
    }))
}
