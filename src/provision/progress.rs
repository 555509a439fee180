//! A progress line on stderr for long user creations and deletions: redrawn in place a few times a
//! second on a terminal, one line per tenth of the work otherwise (CI logs), silent when quiet.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Progress of one operation over a known number of users.
#[derive(Debug)]
pub struct Progress {
    enabled: bool,
    terminal: bool,
    state: Mutex<State>,
    done: AtomicUsize,
}

#[derive(Debug)]
struct State {
    what: &'static str,
    total: usize,
    started: Instant,
    last_drawn: Option<Instant>,
    last_tenth: usize,
}

impl Progress {
    /// A progress line on stderr (`enabled = false`: nothing is drawn).
    pub fn new(enabled: bool) -> Self {
        Self {
            enabled,
            terminal: std::io::stderr().is_terminal(),
            state: Mutex::new(State { what: "", total: 0, started: Instant::now(), last_drawn: None, last_tenth: 0 }),
            done: AtomicUsize::new(0),
        }
    }

    pub(super) fn start(&self, what: &'static str, total: usize, marker: &str) {
        self.done.store(0, Ordering::Relaxed);
        *self.state.lock() = State { what, total, started: Instant::now(), last_drawn: None, last_tenth: 0 };
        if self.enabled {
            eprintln!("{what}: {total} test users; marker: {marker}");
        }
    }

    pub(super) fn step(&self, throttled: u32) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        if !self.enabled {
            return;
        }
        let mut state = self.state.lock();
        let now = Instant::now();
        let tenth = (done * 10).checked_div(state.total).unwrap_or(10);
        let due = if self.terminal {
            state.last_drawn.is_none_or(|t| now - t >= Duration::from_millis(200)) || done == state.total
        } else {
            tenth > state.last_tenth
        };
        if !due {
            return;
        }
        state.last_drawn = Some(now);
        state.last_tenth = tenth;
        let elapsed = now.duration_since(state.started).as_secs_f64().max(1e-3);
        let rate = done as f64 / elapsed;
        let left = state.total.saturating_sub(done) as f64 / rate.max(1e-3);
        let line = format!(
            "{}: {done}/{} · {rate:.1}/s · {throttled} throttled · about {left:.0}s left",
            state.what, state.total
        );
        let mut err = std::io::stderr().lock();
        // A failed write to stderr only loses a progress line.
        let _ = if self.terminal { write!(err, "\r\x1b[2K{line}") } else { writeln!(err, "{line}") };
    }

    pub(super) fn finish(&self) {
        if self.enabled && self.terminal {
            eprintln!();
        }
    }
}
