//! The open model's pacer (goose has none): starts sign-ins at a target rate — constant, or in stages
//! ramping linearly — whatever the pool's latency. Each start is a ticket carrying its *intended*
//! start time; latency is measured from it (as wrk2 and k6 do), so a slow pool cannot slow the
//! arrivals and hide its own slowness. A start with no free virtual user at its time is dropped and
//! counted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::metrics::Metrics;
use crate::scenario::Stage;

/// One sign-in to start; holding it holds one of the in-flight places.
pub struct Ticket {
    pub intended: Instant,
    _place: OwnedSemaphorePermit,
}

/// The rate (sign-ins per second) `t` into the run: each stage ramps linearly from the previous
/// stage's rate (the first from `start_rate`, default its own rate) to its own; 0 after the last.
pub fn rate_at(stages: &[Stage], start_rate: Option<f64>, t: Duration) -> f64 {
    let mut from = start_rate.or_else(|| stages.first().map(|s| s.rate)).unwrap_or(0.0);
    let mut begin = Duration::ZERO;
    for stage in stages {
        let end = begin + stage.duration;
        if t < end {
            let progress = (t - begin).as_secs_f64() / stage.duration.as_secs_f64().max(1e-9);
            return from + (stage.rate - from) * progress;
        }
        from = stage.rate;
        begin = end;
    }
    0.0
}

/// Intended start offsets of every sign-in over the stages (the rate integrated, one start per unit).
pub fn schedule(stages: &[Stage], start_rate: Option<f64>) -> impl Iterator<Item = Duration> + '_ {
    let total: Duration = stages.iter().map(|s| s.duration).sum();
    let step_cap = 0.005;
    let mut t = 0.0f64;
    let mut owed = 0.0f64;
    std::iter::from_fn(move || {
        loop {
            if t >= total.as_secs_f64() {
                return None;
            }
            let rate = rate_at(stages, start_rate, Duration::from_secs_f64(t));
            let needed = 1.0 - owed;
            let dt = if rate > 0.0 { (needed / rate).min(step_cap) } else { step_cap };
            owed += rate * dt;
            t += dt;
            if owed >= 1.0 - 1e-9 {
                owed -= 1.0;
                if t < total.as_secs_f64() {
                    return Some(Duration::from_secs_f64(t));
                }
            }
        }
    })
}

/// Issues tickets until the stages end or `stop()` says so; then closes the channel.
pub async fn run(
    stages: Vec<Stage>,
    start_rate: Option<f64>,
    places: Arc<Semaphore>,
    tickets: mpsc::Sender<Ticket>,
    metrics: Arc<Metrics>,
    stop: impl Fn() -> bool,
) {
    let started = Instant::now();
    let total: Duration = stages.iter().map(|s| s.duration).sum();
    'starts: for offset in schedule(&stages, start_rate) {
        let intended = started + offset;
        // Sleep in short steps so a stop (Ctrl-C, an abort) is noticed even at slow rates.
        while Instant::now() < intended {
            if stop() {
                break 'starts;
            }
            tokio::time::sleep_until(intended.min(Instant::now() + Duration::from_millis(100)).into()).await;
        }
        if stop() || started.elapsed() > total + Duration::from_secs(1) {
            break;
        }
        match Arc::clone(&places).try_acquire_owned() {
            Ok(place) => {
                if tickets.send(Ticket { intended, _place: place }).await.is_err() {
                    break;
                }
            }
            Err(_) => metrics.count_dropped(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(rate: f64, secs: u64) -> Stage {
        Stage { rate, duration: Duration::from_secs(secs) }
    }

    #[test]
    fn a_constant_rate_starts_rate_times_duration_evenly() {
        let starts: Vec<Duration> = schedule(&[stage(20.0, 3)], None).collect();
        assert!((59..=60).contains(&starts.len()), "{}", starts.len());
        let gaps: Vec<f64> = starts.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()).collect();
        assert!(gaps.iter().all(|g| (g - 0.05).abs() < 0.006), "evenly spaced: {gaps:?}");
    }

    #[test]
    fn stages_ramp_linearly() {
        let stages = [stage(10.0, 2), stage(30.0, 2)];
        assert!((rate_at(&stages, Some(0.0), Duration::from_secs(1)) - 5.0).abs() < 1e-9);
        assert!((rate_at(&stages, Some(0.0), Duration::from_secs(3)) - 20.0).abs() < 1e-9);
        assert_eq!(rate_at(&stages, Some(0.0), Duration::from_secs(5)), 0.0);
        // ∫ = 0→10 over 2 s (10) + 10→30 over 2 s (40) = 50 starts.
        let n = schedule(&stages, Some(0.0)).count();
        assert!((49..=50).contains(&n), "{n}");
    }
}
