//! Ctrl-C: the first one stops the run cleanly (no new flows; what ran is reported), the second exits
//! at once. Installed by the binary before anything starts; goose, which would install its own
//! handler, then keeps ours, and our handler pulls goose's killswitch so a running attack stops too.

use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler (once per process; later calls do nothing).
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted again: exiting now");
            std::process::exit(i32::from(crate::exit::INTERRUPTED_AGAIN));
        }
        eprintln!("\ninterrupted: finishing the flows in flight and writing the reports (Ctrl-C again to quit now)");
        goose::trigger_killswitch("interrupted (Ctrl-C)");
    });
}

/// True once Ctrl-C was pressed.
pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}
