//! otp-harness: a load and conformance harness for passwordless (email one-time code) sign-in on
//! Amazon Cognito user pools, and the offline local pool it tests against.
//!
//! The binary (`src/main.rs`) is a thin command line over this library, so tests and benchmarks call
//! the same code.

pub mod admin;
pub mod background;
pub mod bench;
pub mod checks;
pub mod cognito;
pub mod compare;
pub mod exit;
pub mod flows;
pub mod interrupt;
pub mod live;
pub mod logging;
pub mod merge;
pub mod metrics;
pub mod otp;
pub mod pool;
pub mod preflight;
pub mod provision;
pub mod report;
pub mod run;
pub mod scenario;
pub mod target;
pub mod testkit;
pub mod thresholds;
pub mod verdict;
pub mod workload;
