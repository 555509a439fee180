//! The live dashboard of a run (`run --dashboard [ADDR]`): one listener, bound before the run starts,
//! serving while the run lasts
//! - `/` — a page that updates every second over server-sent events (`/events`): sign-ins per second
//!   started / succeeded / errored / throttled, in flight, each step's p50 / p90 / p99 over time, checks,
//!   thresholds against their limits, elapsed and remaining time, then the verdict and the report files;
//!   it looks like report.html (same style sheet, colours and chart geometry);
//! - `/metrics` — the same numbers in the Prometheus text format (`prometheus`);
//! - `/api/state` — the page's data as JSON; `/files/NAME` — the report files once written.
//!
//! Nothing runs when the flag is off. When on, one sampler reads the run's `Metrics` once a second
//! (`sample`); the page's clients and every scrape read what it took, so their number does not add to the
//! cost on the virtual users.

mod page;
mod prometheus;
mod sample;
mod server;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::background::{self, CancellationToken};
use crate::scenario::{Scenario, WorkerSlice};

pub use sample::Feed;

/// The port `--dashboard` listens on when none is given (worker I of `--worker I/N`: this plus I).
pub const DEFAULT_PORT: u16 = 9470;

/// Where `--dashboard [ADDR]` listens. `ADDR` is `PORT`, `:PORT` (loopback), `IP:PORT`,
/// `[IPv6]:PORT` or `localhost:PORT`; without it, 127.0.0.1 and `DEFAULT_PORT` (plus the worker's index
/// with `--worker`). Port 0 takes any free port (printed when the run starts).
pub fn parse_addr(text: &str, worker: Option<WorkerSlice>) -> Result<SocketAddr, String> {
    let text = text.trim();
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let port = |p: &str| -> Result<u16, String> {
        p.parse::<u16>().map_err(|_| {
            format!("--dashboard {text:?}: {p:?} is not a port (0–65535); give PORT, :PORT or IP:PORT, e.g. 127.0.0.1:{DEFAULT_PORT}")
        })
    };
    let addr = if text.is_empty() {
        let offset = worker.map_or(0, |w| w.index);
        let port = u16::try_from(u32::from(DEFAULT_PORT) + offset)
            .map_err(|_| format!("--dashboard: worker {offset} has no default port; give one, e.g. --dashboard :0"))?;
        SocketAddr::new(loopback, port)
    } else if let Some(p) = text.strip_prefix(':') {
        SocketAddr::new(loopback, port(p)?)
    } else if text.chars().all(|c| c.is_ascii_digit()) {
        SocketAddr::new(loopback, port(text)?)
    } else if let Some(p) = text.strip_prefix("localhost:") {
        SocketAddr::new(loopback, port(p)?)
    } else if let Ok(addr) = text.parse::<SocketAddr>() {
        addr
    } else {
        let hint = if text.ends_with(".toml") {
            " (the scenario file goes before --dashboard: `run FILE --dashboard [ADDR]`)"
        } else {
            ""
        };
        return Err(format!(
            "--dashboard {text:?} is not an address{hint}: give PORT, :PORT or IP:PORT — e.g. 127.0.0.1:{DEFAULT_PORT}, or \
             0.0.0.0:{DEFAULT_PORT} to be scraped from other machines"
        ));
    };
    let ip = addr.ip();
    let refused = match ip {
        IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast() || v4.is_documentation(),
        IpAddr::V6(v6) => v6.is_multicast(),
    };
    if refused {
        return Err(format!(
            "--dashboard {addr}: {ip} is not an address a server can listen on; use 127.0.0.1 (this machine only) or \
             0.0.0.0 (every interface)"
        ));
    }
    Ok(addr)
}

/// The dashboard's listening socket, bound before the run (so a port in use stops the run before it
/// starts) and taken by the dashboard when the run begins.
#[derive(Clone)]
pub struct Listener {
    addr: SocketAddr,
    socket: Arc<parking_lot::Mutex<Option<std::net::TcpListener>>>,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").field("addr", &self.addr).finish()
    }
}

impl Listener {
    /// Binds `addr`; the error says what is wrong and what to do.
    pub fn bind(addr: SocketAddr) -> Result<Self, String> {
        let socket = std::net::TcpListener::bind(addr).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::AddrInUse => format!(
                    "port {} is already in use (another run's dashboard?): pick another port, or :0 for any free one",
                    addr.port()
                ),
                std::io::ErrorKind::AddrNotAvailable => {
                    format!("{} is not an address of this machine: use 127.0.0.1, 0.0.0.0 or one of its own", addr.ip())
                }
                std::io::ErrorKind::PermissionDenied => {
                    format!(
                        "listening on port {} is not permitted here (ports below 1024 need privileges)",
                        addr.port()
                    )
                }
                _ => e.to_string(),
            };
            format!("--dashboard {addr}: {why}")
        })?;
        socket.set_nonblocking(true).map_err(|e| format!("--dashboard {addr}: {e}"))?;
        let addr = socket.local_addr().map_err(|e| format!("--dashboard {addr}: {e}"))?;
        Ok(Self { addr, socket: Arc::new(parking_lot::Mutex::new(Some(socket))) })
    }

    /// The bound address (the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn take(&self) -> Option<std::net::TcpListener> {
        self.socket.lock().take()
    }
}

/// `--dashboard` as the run is given it.
#[derive(Debug, Clone)]
pub struct Options {
    pub listener: Listener,
    /// `--worker I/N`: its page and every series of `/metrics` carry the worker.
    pub worker: Option<WorkerSlice>,
    /// Keep serving the final page and the report files this long after the run (`--dashboard-linger`;
    /// a stop signal ends it sooner).
    pub linger: Duration,
}

/// How the run ended, for the page.
#[derive(Debug, Clone)]
pub enum End {
    /// Reports written: the verdict's headline, its exit code, the run folder and its files.
    Finished { headline: String, exit_code: u8, report_dir: PathBuf, files: Vec<String> },
    /// The run could not produce a result: why, and its exit code.
    Failed { message: String, exit_code: u8 },
}

/// A running dashboard.
pub struct Dashboard {
    shared: Arc<sample::Shared>,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    sampler: parking_lot::Mutex<Option<tokio::task::JoinHandle<()>>>,
    linger: Duration,
}

impl Dashboard {
    /// Starts serving on the bound listener, before anything of the run happens; prints its address.
    pub fn start(options: &Options, scenario: &Scenario) -> Result<Self, String> {
        let socket = options
            .listener
            .take()
            .ok_or_else(|| format!("--dashboard {}: the listener was already used", options.listener.addr))?;
        let listener = tokio::net::TcpListener::from_std(socket)
            .map_err(|e| format!("--dashboard {}: {e}", options.listener.addr))?;
        let shared = Arc::new(sample::Shared::new(scenario, options.worker));
        let stop = CancellationToken::new();
        let server = tokio::spawn(server::serve(listener, Arc::clone(&shared), stop.clone()));
        let addr = options.listener.addr;
        eprintln!("dashboard: http://{addr}/  (Prometheus metrics: http://{addr}/metrics)");
        Ok(Self { shared, stop, server, sampler: parking_lot::Mutex::new(None), linger: options.linger })
    }

    /// What the run is doing now (`preflight`, `probes`, `load`, `reports`); `load` starts the
    /// remaining-time clock.
    pub fn phase(&self, phase: &'static str) {
        self.shared.set_phase(phase);
    }

    /// Starts sampling the run's metrics, checks and mail every second.
    pub fn watch(&self, feed: Feed) {
        let task = tokio::spawn(sample::run(Arc::clone(&self.shared), feed));
        if let Some(old) = self.sampler.lock().replace(task) {
            old.abort();
        }
    }

    /// Takes a last sample and shows the verdict and the report files to every open page; then stops,
    /// or, with a linger time, hands back the still-serving dashboard (`Lingering`).
    pub async fn finish(self, end: End) -> Option<Lingering> {
        let sampler = self.sampler.lock().take();
        if let Some(task) = sampler {
            // The sampler takes its last sample as it stops.
            background::finish(&self.shared.sampler_stop, task, Duration::from_secs(2)).await;
        }
        self.shared.finish(end);
        // Every open page gets the final event before the server stops.
        let drained = async {
            while self.shared.clients() > 0 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), drained).await;
        let lingering = Lingering { stop: self.stop, server: self.server, linger: self.linger };
        if lingering.linger.is_zero() || crate::interrupt::requested() {
            lingering.stop().await;
            return None;
        }
        Some(lingering)
    }
}

/// A finished run's dashboard still serving its final page and report files (`--dashboard-linger`).
pub struct Lingering {
    stop: CancellationToken,
    server: tokio::task::JoinHandle<()>,
    linger: Duration,
}

impl std::fmt::Debug for Lingering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lingering").field("linger", &self.linger).finish()
    }
}

impl Lingering {
    /// Serves for the linger time (a stop signal ends it sooner), then stops.
    pub async fn wait(self) {
        eprintln!(
            "dashboard: the final page stays up for {} (Ctrl-C ends it)",
            humantime::format_duration(self.linger)
        );
        tokio::select! {
            _ = tokio::time::sleep(self.linger) => {}
            _ = crate::interrupt::cancelled() => {}
        }
        self.stop().await;
    }

    /// Stops serving now.
    pub async fn stop(self) {
        background::finish(&self.stop, self.server, Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_default_to_loopback_and_a_documented_port() {
        assert_eq!(parse_addr("", None), Ok(SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT))));
        let worker = WorkerSlice::parse("2/4").ok();
        assert_eq!(parse_addr("", worker), Ok(SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT + 2))));
        assert_eq!(parse_addr("8080", None), Ok(SocketAddr::from(([127, 0, 0, 1], 8080))));
        assert_eq!(parse_addr(":0", None), Ok(SocketAddr::from(([127, 0, 0, 1], 0))));
        assert_eq!(parse_addr("localhost:9", None), Ok(SocketAddr::from(([127, 0, 0, 1], 9))));
        assert_eq!(parse_addr("0.0.0.0:9470", None), Ok(SocketAddr::from(([0, 0, 0, 0], 9470))));
        assert!(parse_addr("[::1]:9470", None).is_ok());
        for bad in ["example.com:80", "127.0.0.1", ":99999", "224.0.0.1:9470", "255.255.255.255:1"] {
            assert!(parse_addr(bad, None).is_err(), "{bad} refused");
        }
        assert!(parse_addr("nightly.toml", None).unwrap_err().contains("goes before --dashboard"));
    }

    #[test]
    fn a_port_in_use_is_one_clear_error() {
        let first = Listener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("a free port");
        let error = Listener::bind(first.addr()).expect_err("the same port twice");
        assert!(error.contains("already in use") && error.contains(&first.addr().port().to_string()), "{error}");
        let elsewhere = Listener::bind(SocketAddr::from(([192, 0, 2, 1], 0))).expect_err("not this machine's");
        assert!(elsewhere.contains("not an address of this machine"), "{elsewhere}");
    }
}
