//! Exit codes, k6-style, for every subcommand — the only place they are spelled out. README's
//! "Exit codes" and `run --help` describe the same table.

/// The run passed (or `compare` found no regression).
pub const PASS: u8 = 0;
/// An unusable scenario, run folder or argument: the error names the file, the line and the fix.
pub const USAGE: u8 = 2;
/// The run could not happen: pool, inbox or JWKS unreachable, no flow completed, a benchmark failed.
pub const CANNOT_RUN: u8 = 3;
/// A conformance check failed (outranks a breached threshold).
pub const CONFORMANCE_FAILURE: u8 = 98;
/// A threshold was breached, or `compare` found a regression.
pub const THRESHOLD_BREACHED: u8 = 99;
/// A second stop signal: the process quits at once, without reports, with 128 + the signal's number
/// (130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP), as shells report a death by that signal.
pub fn after_second_signal(number: i32) -> i32 {
    128 + number
}
