//! The local pool: an offline, wire-faithful Cognito endpoint for passwordless sign-in — custom auth and
//! native USER_AUTH with EMAIL_OTP — with mail delivery to an outbox, an LMTP/SMTP server and S3. Run it
//! standalone (`otp-harness pool`) or in-process (`LocalPool::start`), which is how tests and
//! `otp-harness run` use it.
//!
//! Layout: `config` (what it is told), `users` and `auth` (the models: `auth::custom`, `auth::native`),
//! `codes`, `tokens`, `mail` with its sinks (`outbox`, `relay`, `s3sink`), `ses` (the SES account the
//! mail goes out through, with its own wire: `ses::v2` REST JSON, `ses::v1` query/XML), `faults`, and
//! `wire` (HTTP and JSON only).

pub mod auth;
pub mod codes;
pub mod config;
pub mod error;
pub mod faults;
pub mod mail;
pub mod outbox;
pub mod relay;
pub mod s3sink;
pub mod ses;
pub mod tokens;
pub mod triggers;
pub mod users;
pub mod wire;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;

pub use config::PoolConfig;
use error::{CognitoError, ErrorKind};
use mail::{MailDispatcher, MailStatsSnapshot};

/// The port `otp-harness pool` listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 9229;

/// What a client needs to find a running pool; printed as one JSON line when it is ready.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PoolInfo {
    pub endpoint: String,
    pub region: String,
    pub user_pool_id: String,
    pub client_id: String,
    pub issuer: String,
    pub jwks_uri: String,
    pub outbox: Option<String>,
}

/// Counters of requests and errors, by operation and by error type.
#[derive(Debug, Default)]
pub struct PoolStats {
    requests: [AtomicU64; wire::OPERATIONS.len()],
    errors: Mutex<BTreeMap<&'static str, u64>>,
}

impl PoolStats {
    fn count_request(&self, operation_index: usize) {
        if let Some(counter) = self.requests.get(operation_index) {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn count_error(&self, kind: ErrorKind) {
        *self.errors.lock().entry(kind.type_name()).or_insert(0) += 1;
    }
}

/// A snapshot of the pool's counters (`GET /_pool/stats`).
#[derive(Debug, Clone, Serialize)]
pub struct StatsSnapshot {
    pub requests: BTreeMap<&'static str, u64>,
    pub errors: BTreeMap<&'static str, u64>,
    pub mail: MailStatsSnapshot,
    /// The SES API: requests, errors and sends.
    pub ses: ses::SesStatsSnapshot,
    pub users: usize,
    pub sessions: usize,
    /// The team's trigger functions, by trigger name (empty when the built-in ones run).
    pub triggers: BTreeMap<&'static str, triggers::runtime::FunctionStats>,
}

/// Everything a running pool holds.
pub struct PoolState {
    pub config: PoolConfig,
    pub info: PoolInfo,
    /// Epoch seconds at start (CreationDate of the pool and client).
    pub created: f64,
    pub users: Arc<RwLock<users::UserDirectory>>,
    pub auth: auth::AuthEngine,
    pub tokens: Arc<tokens::TokenIssuer>,
    pub mail: Arc<MailDispatcher>,
    pub faults: Arc<faults::Faults>,
    /// The SES account (`ses::v1`, `ses::v2` serve it).
    pub ses: ses::SesAccount,
    /// The team's trigger functions, when configured.
    pub triggers: Option<Arc<triggers::TriggerHost>>,
    pub stats: PoolStats,
}

impl PoolState {
    fn check_pool(&self, user_pool_id: &str) -> Result<(), CognitoError> {
        if user_pool_id != self.config.user_pool_id {
            return Err(CognitoError::pool_not_found(user_pool_id));
        }
        Ok(())
    }

    /// The pool's ARN, as AWS writes it (the resource an access-denied answer names).
    pub fn user_pool_arn(&self) -> String {
        format!("arn:aws:cognito-idp:{}:000000000000:userpool/{}", self.config.region, self.config.user_pool_id)
    }

    /// Current counters.
    pub fn stats_snapshot(&self) -> StatsSnapshot {
        let requests = wire::OPERATIONS
            .iter()
            .zip(self.stats.requests.iter())
            .map(|(op, n)| (*op, n.load(Ordering::Relaxed)))
            .collect();
        StatsSnapshot {
            requests,
            errors: self.stats.errors.lock().clone(),
            mail: self.mail.stats(),
            ses: self.ses.stats(),
            users: self.users.read().len(),
            sessions: self.auth.session_count(),
            triggers: self.triggers.as_ref().map(|t| t.stats()).unwrap_or_default(),
        }
    }
}

/// A pool serving on a loopback port until dropped or stopped.
pub struct RunningPool {
    state: Arc<PoolState>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl RunningPool {
    pub fn info(&self) -> &PoolInfo {
        &self.state.info
    }

    pub fn endpoint(&self) -> &str {
        &self.state.info.endpoint
    }

    pub fn state(&self) -> &Arc<PoolState> {
        &self.state
    }

    /// Stops accepting requests and waits for the server task.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.context("pool server task panicked")??;
        }
        Ok(())
    }

    /// Serves until the server stops (for the standalone command).
    pub async fn wait(mut self) -> anyhow::Result<()> {
        if let Some(server) = self.server.take() {
            server.await.context("pool server task panicked")??;
        }
        Ok(())
    }
}

impl Drop for RunningPool {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts a pool.
pub struct LocalPool;

impl LocalPool {
    /// Validates `config`, binds `listen` (loopback only), connects the mail sinks, seeds users and
    /// serves in a background task.
    pub async fn start(config: PoolConfig, listen: SocketAddr) -> anyhow::Result<RunningPool> {
        config.validate()?;
        if !listen.ip().is_loopback() {
            bail!("the local pool listens on loopback only; {} is not a loopback address", listen.ip());
        }
        let listener =
            tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
        let address = listener.local_addr()?;
        let endpoint = format!("http://{address}");
        let issuer = format!("{endpoint}/{}", config.user_pool_id);
        let info = PoolInfo {
            endpoint: endpoint.clone(),
            region: config.region.clone(),
            user_pool_id: config.user_pool_id.clone(),
            client_id: config.client_id.clone(),
            jwks_uri: format!("{issuer}/.well-known/jwks.json"),
            issuer: issuer.clone(),
            outbox: config.mail.outbox.then(|| format!("{endpoint}/_aws/ses")),
        };
        let tokens = Arc::new(tokens::TokenIssuer::new(issuer, config.token_validity, config.defects.token)?);
        let mail = Arc::new(
            MailDispatcher::new(&config.mail, &config.faults.mail, &config.region)
                .await
                .context("setting up the mail sinks")?,
        );
        let faults = Arc::new(faults::Faults::new(&config.faults));
        let users = Arc::new(RwLock::new(users::UserDirectory::new(config.email_is_username_attribute())));
        let triggers = triggers::TriggerHost::new(&config, &endpoint)?.map(Arc::new);
        let auth = auth::AuthEngine::new(
            &config,
            Arc::clone(&users),
            Arc::clone(&faults),
            Arc::clone(&mail),
            Arc::clone(&tokens),
            triggers.clone(),
        );
        for email in config.users.addresses() {
            users
                .write()
                .create(&email, true, BTreeMap::new())
                .map_err(|e| anyhow::anyhow!("seeding user {email}: {e}"))?;
        }
        let created = users::now_epoch_seconds().floor();
        let ses = ses::SesAccount::new(&config.ses, &config.region, created, Arc::clone(&mail), Arc::clone(&faults));
        let state = Arc::new(PoolState {
            config,
            info,
            created,
            users,
            auth,
            tokens,
            mail,
            faults,
            ses,
            triggers: triggers.clone(),
            stats: PoolStats::default(),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = wire::router(Arc::clone(&state));
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
        });
        let running = RunningPool { state, shutdown: Some(tx), server: Some(server) };
        // The team's triggers load while the pool already serves: a handler that calls the pool's SES
        // API as it loads is answered. Nobody knows the port yet, so no sign-in can come first.
        if let Some(triggers) = &triggers
            && let Err(e) = triggers.start().await
        {
            let _ = running.stop().await;
            return Err(e.context("the team's triggers ([triggers]) cannot run"));
        }
        Ok(running)
    }
}

/// Parses `--listen`: `HOST:PORT`, `:PORT` or `PORT`; the host must be a loopback address.
pub fn parse_listen(text: &str) -> anyhow::Result<SocketAddr> {
    let text = text.trim();
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let address = if let Ok(port) = text.trim_start_matches(':').parse::<u16>() {
        SocketAddr::new(loopback, port)
    } else if let Some(port) = text.strip_prefix("localhost:") {
        SocketAddr::new(loopback, port.parse().with_context(|| format!("bad port in {text:?}"))?)
    } else {
        text.parse::<SocketAddr>().with_context(|| format!("{text:?} is not HOST:PORT, :PORT or PORT"))?
    };
    if !address.ip().is_loopback() {
        bail!("{text:?}: the local pool listens on loopback only (127.0.0.1 or [::1])");
    }
    Ok(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_accepts_loopback_forms_only() {
        assert_eq!(parse_listen("9229").expect("port").to_string(), "127.0.0.1:9229");
        assert_eq!(parse_listen(":0").expect("port").to_string(), "127.0.0.1:0");
        assert_eq!(parse_listen("localhost:80").expect("host").to_string(), "127.0.0.1:80");
        assert_eq!(parse_listen("[::1]:5").expect("v6").to_string(), "[::1]:5");
        assert!(parse_listen("0.0.0.0:9229").is_err());
        assert!(parse_listen("10.0.0.1:9229").is_err());
        assert!(parse_listen("nonsense").is_err());
    }
}
