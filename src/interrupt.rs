//! Stopping a run from outside: Ctrl-C (SIGINT), SIGTERM (Kubernetes evicting a pod, CI cancelling a
//! job, `timeout(1)`) and SIGHUP (a closed terminal) all behave alike. The first one stops the run
//! cleanly — no new flows, the flows in flight get `load.stop_grace` to finish, every report is written
//! with a note naming the signal; a second one of any of them quits at once (exit 128 + its number).
//!
//! SIGINT is taken with `ctrlc` (installed before goose, which would install its own and then keeps
//! ours); SIGTERM and SIGHUP with tokio's signal streams. Whichever comes first cancels one token that
//! the rest of the run reads (`requested`, `cancelled`), and pulls goose's killswitch so a running
//! attack stops too.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicI32, Ordering};

use tokio_util::sync::CancellationToken;

/// Cancelled at the first signal.
static STOP: LazyLock<CancellationToken> = LazyLock::new(CancellationToken::new);
/// The first signal's number (0: none yet).
static FIRST: AtomicI32 = AtomicI32::new(0);

const SIGHUP: i32 = 1;
const SIGINT: i32 = 2;
const SIGTERM: i32 = 15;

/// Installs the handlers (once per process; later calls do nothing). Call it inside the tokio runtime.
pub fn install() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let _ = ctrlc::set_handler(|| received(SIGINT));
        #[cfg(unix)]
        for (kind, number) in [
            (tokio::signal::unix::SignalKind::terminate(), SIGTERM),
            (tokio::signal::unix::SignalKind::hangup(), SIGHUP),
        ] {
            match tokio::signal::unix::signal(kind) {
                Ok(mut stream) => {
                    tokio::spawn(async move {
                        while stream.recv().await.is_some() {
                            received(number);
                        }
                    });
                }
                Err(e) => tracing::warn!(error = %e, "cannot listen for {}", name_of(number)),
            }
        }
    });
}

/// A signal came: the first stops the run cleanly, the next quits at once.
fn received(number: i32) {
    if FIRST.compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst).is_err() {
        eprintln!("\n{} again: exiting now", name_of(number));
        std::process::exit(crate::exit::after_second_signal(number));
    }
    let name = name_of(number);
    eprintln!("\ninterrupted by {name}: stopping cleanly (again to quit at once)");
    STOP.cancel();
    goose::trigger_killswitch(&format!("interrupted ({name})"));
}

fn name_of(number: i32) -> &'static str {
    match number {
        SIGINT => "Ctrl-C",
        SIGTERM => "SIGTERM",
        SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// True once a stop signal came.
pub fn requested() -> bool {
    STOP.is_cancelled()
}

/// Resolves at the first stop signal.
pub async fn cancelled() {
    STOP.cancelled().await;
}

/// The first stop signal, as reports name it ("Ctrl-C", "SIGTERM", "SIGHUP").
pub fn signal_name() -> Option<&'static str> {
    match FIRST.load(Ordering::SeqCst) {
        0 => None,
        n => Some(name_of(n)),
    }
}
