//! A throwaway Dovecot: the project's self-contained test config (testdata/dovecot-test.conf) in a
//! short temporary directory, one mailbox user, mail delivered over LMTP and read over IMAP — with a
//! password, or (`start_with_oauth2`) with XOAUTH2 / OAUTHBEARER tokens checked by Dovecot's oauth2
//! passdb against a token-introspection endpoint the test runs (`Introspection`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use parking_lot::Mutex;

const CONFIG_TEMPLATE: &str = include_str!("../../testdata/dovecot-test.conf");

/// A running Dovecot; stopped on drop.
pub struct Dovecot {
    child: Child,
    dir: tempfile::TempDir,
    pub imap_port: u16,
    pub lmtp_port: u16,
    /// IMAPS port and the CA certificate (PEM) that signed the server's, when started with TLS.
    pub imaps: Option<(u16, PathBuf)>,
    /// The one mailbox (plus-addresses `user+tag@domain` land in it too).
    pub user: String,
    pub password: String,
}

impl Dovecot {
    /// Starts Dovecot with one mailbox `user` and waits until an IMAP LOGIN succeeds.
    /// Needs root (mail files belong to uid 65534) and Debian's dovecot-imapd and dovecot-lmtpd.
    pub async fn start(user: &str) -> anyhow::Result<Self> {
        Self::start_with(user, false, "", None).await
    }

    /// As `start`, with `extra` appended to the config (e.g. an `imap_capability` without IDLE).
    pub async fn start_with_config(user: &str, extra: &str) -> anyhow::Result<Self> {
        Self::start_with(user, false, extra, None).await
    }

    /// As `start`, plus IMAPS on another port with a certificate for `localhost` signed by a throwaway
    /// CA (made with `openssl`), whose certificate is in `imaps`.
    pub async fn start_with_tls(user: &str) -> anyhow::Result<Self> {
        Self::start_with(user, true, "", None).await
    }

    /// As `start`, and IMAP also takes SASL XOAUTH2 and OAUTHBEARER: Dovecot's oauth2 passdb asks
    /// `introspection` (RFC 7662, POST `token=…`) about each token; an active token of `user` logs in.
    /// LOGIN with the password keeps working (readiness is still a LOGIN).
    pub async fn start_with_oauth2(user: &str, introspection: &Introspection) -> anyhow::Result<Self> {
        Self::start_with(user, false, "", Some(&introspection.url())).await
    }

    async fn start_with(user: &str, tls: bool, extra: &str, introspection_url: Option<&str>) -> anyhow::Result<Self> {
        let binary = super::find_executable("OTP_HARNESS_DOVECOT", "dovecot", &[PathBuf::from("/usr/sbin/dovecot")])
            .context(
                "dovecot not found: install Debian's dovecot-imapd and dovecot-lmtpd (or set OTP_HARNESS_DOVECOT)",
            )?;
        // base_dir holds unix sockets: keep the path short (108-character limit).
        let dir = tempfile::Builder::new().prefix("dc").tempdir_in("/tmp").context("creating Dovecot's directory")?;
        let root = dir.path();
        for sub in ["run", "state", "mail", "home"] {
            std::fs::create_dir_all(root.join(sub))?;
        }
        chown_nobody(&root.join("mail"))?;
        chown_nobody(&root.join("home"))?;
        let imap_port = super::free_port()?;
        let lmtp_port = super::free_port()?;
        let password = format!("pw{}", rand::random::<u32>());
        let mut config = CONFIG_TEMPLATE
            .replace("@DIR@", &root.display().to_string())
            .replace("@IMAP_PORT@", &imap_port.to_string())
            .replace("@LMTP_PORT@", &lmtp_port.to_string());
        let imaps = if tls {
            let port = super::free_port()?;
            let ca = make_certificates(root)?;
            config = config
                .replace(
                    "ssl = no",
                    &format!("ssl = yes\nssl_cert = <{0}/server.pem\nssl_key = <{0}/server.key", root.display()),
                )
                .replace(
                    "inet_listener imaps {\n    port = 0\n  }",
                    &format!("inet_listener imaps {{\n    address = 127.0.0.1\n    port = {port}\n    ssl = yes\n  }}"),
                );
            Some((port, ca))
        } else {
            None
        };
        if let Some(url) = introspection_url {
            config = oauth2_config(&config, root, url)?;
        }
        config.push_str(extra);
        let config_path = root.join("dovecot.conf");
        std::fs::write(&config_path, config)?;
        let local = user.split('@').next().unwrap_or(user);
        std::fs::write(
            root.join("users"),
            format!("{user}:{{PLAIN}}{password}:65534:65534::{}/home/{local}\n", root.display()),
        )?;
        let child = Command::new(&binary)
            .arg("-F")
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut dovecot = Self { child, dir, imap_port, lmtp_port, imaps, user: user.to_string(), password };
        dovecot.wait_ready().await?;
        Ok(dovecot)
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Disconnects every IMAP session of the mailbox, as a server restart or a network cut would.
    pub fn kick(&self) -> anyhow::Result<()> {
        let doveadm = super::find_executable("OTP_HARNESS_DOVEADM", "doveadm", &[PathBuf::from("/usr/bin/doveadm")])
            .context("doveadm not found")?;
        let status = Command::new(doveadm)
            .arg("-c")
            .arg(self.dir.path().join("dovecot.conf"))
            .args(["kick", &self.user])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("running doveadm kick")?;
        if !status.success() {
            bail!("doveadm kick failed: {status}");
        }
        Ok(())
    }

    /// Delivers a raw message to `to` over LMTP (unrelated mail for tests, for instance).
    pub async fn deliver(&self, from: &str, to: &str, message: &[u8]) -> anyhow::Result<()> {
        crate::pool::relay::deliver(
            crate::pool::config::RelayProtocol::Lmtp,
            "127.0.0.1",
            self.lmtp_port,
            from,
            to,
            message,
        )
        .await
    }

    /// An open port is not readiness: wait for a successful LOGIN.
    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(self.dir.path().join("dovecot.log")).unwrap_or_default();
                bail!("dovecot exited at start ({status}); its log:\n{log}");
            }
            if let Ok(mut session) = self.login().await {
                let _ = session.logout().await;
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("dovecot did not accept an IMAP LOGIN within 15 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A logged-in IMAP session on the mailbox (plain text: loopback only).
    pub async fn login(&self) -> anyhow::Result<async_imap::Session<tokio::net::TcpStream>> {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.imap_port)).await?;
        let mut client = async_imap::Client::new(stream);
        client.read_response().await?.context("no IMAP greeting")?;
        client.login(&self.user, &self.password).await.map_err(|(e, _)| anyhow::anyhow!("IMAP LOGIN failed: {e}"))
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        super::terminate(&mut self.child, Duration::from_secs(5));
    }
}

/// `config` with XOAUTH2 and OAUTHBEARER offered and an oauth2 passdb (for those mechanisms only, ahead
/// of the password file, which keeps PLAIN and LOGIN) whose settings file in `dir` points at `url`;
/// failed logins are answered without delay.
fn oauth2_config(config: &str, dir: &Path, url: &str) -> anyhow::Result<String> {
    const MECHANISMS: &str = "auth_mechanisms = plain login\n";
    const PASSWORD_DB: &str = "passdb {\n  driver = passwd-file\n";
    if !config.contains(MECHANISMS) || !config.contains(PASSWORD_DB) {
        bail!("testdata/dovecot-test.conf changed: cannot add the oauth2 passdb to it");
    }
    let settings = dir.join("oauth2.conf.ext");
    std::fs::write(
        &settings,
        format!(
            "introspection_mode = post\nintrospection_url = {url}\nforce_introspection = yes\n\
             username_attribute = username\nactive_attribute = active\nactive_value = true\ntimeout_msecs = 5000\n"
        ),
    )
    .context("writing the oauth2 passdb settings")?;
    let passdbs = format!(
        "passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {}\n}}\n{PASSWORD_DB}  mechanisms = plain login\n",
        settings.display()
    );
    Ok(config
        .replace(
            MECHANISMS,
            // Refusals are what these tests are about: answer them at once, without the penalty
            // that grows with each failure from the same IP (2 s, 4 s, 8 s, then 15 s).
            "auth_mechanisms = plain login xoauth2 oauthbearer\nauth_verbose = yes\nauth_failure_delay = 0\n\
             service anvil {\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n",
        )
        .replace(PASSWORD_DB, &passdbs))
}

/// What the introspection endpoint says about a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    /// `200 {"active": true, "username": …}`.
    Valid,
    /// `200 {"active": false}`, as RFC 7662 answers for an expired token.
    Expired,
    /// `401 {"active": false, "error": "invalid_token"}`.
    Revoked,
    /// `500`: the token service is down (Dovecot answers `NO [UNAVAILABLE]`).
    Broken,
}

#[derive(Default)]
struct Tokens {
    known: HashMap<String, TokenState>,
    /// Every token beginning with one of these is valid.
    valid_prefixes: Vec<String>,
    /// Every token asked about, in order.
    asked: Vec<String>,
}

/// A token-introspection endpoint (RFC 7662) on 127.0.0.1 for Dovecot's oauth2 passdb: knows some
/// tokens (valid, expired, revoked, broken), answers `active: false` for any other, and remembers
/// what it was asked. Stopped on drop.
pub struct Introspection {
    address: SocketAddr,
    username: String,
    tokens: Arc<Mutex<Tokens>>,
    task: tokio::task::JoinHandle<()>,
}

impl Introspection {
    /// Starts the endpoint; valid tokens belong to `username`.
    pub async fn start(username: &str) -> anyhow::Result<Self> {
        let tokens = Arc::new(Mutex::new(Tokens::default()));
        let listener =
            tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the introspection endpoint")?;
        let address = listener.local_addr()?;
        let state = (Arc::clone(&tokens), username.to_string());
        let app = axum::Router::new().route("/introspect", axum::routing::post(introspect)).with_state(state);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { address, username: username.to_string(), tokens, task })
    }

    pub fn url(&self) -> String {
        format!("http://{}/introspect", self.address)
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    /// Tells the endpoint about `token`.
    pub fn add(&self, token: &str, state: TokenState) {
        self.tokens.lock().known.insert(token.to_string(), state);
    }

    /// Every token beginning with `prefix` (that is not known otherwise) is valid.
    pub fn accept_prefix(&self, prefix: &str) {
        self.tokens.lock().valid_prefixes.push(prefix.to_string());
    }

    /// Every token asked about so far, in order.
    pub fn asked(&self) -> Vec<String> {
        self.tokens.lock().asked.clone()
    }
}

impl Drop for Introspection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `POST /introspect` with `token=…` (form-encoded).
async fn introspect(
    axum::extract::State((tokens, username)): axum::extract::State<(Arc<Mutex<Tokens>>, String)>,
    body: String,
) -> (axum::http::StatusCode, axum::Json<serde_json::Value>) {
    use axum::http::StatusCode;
    let token = body.split('&').find_map(|pair| pair.strip_prefix("token=")).map(form_decode).unwrap_or_default();
    let state = {
        let mut tokens = tokens.lock();
        tokens.asked.push(token.clone());
        tokens.known.get(&token).copied().or_else(|| {
            tokens.valid_prefixes.iter().any(|p| token.starts_with(p.as_str())).then_some(TokenState::Valid)
        })
    };
    match state {
        Some(TokenState::Valid) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({
                "active": true, "username": username, "scope": "mail", "token_type": "Bearer"
            })),
        ),
        Some(TokenState::Revoked) => {
            (StatusCode::UNAUTHORIZED, axum::Json(serde_json::json!({"active": false, "error": "invalid_token"})))
        }
        Some(TokenState::Broken) => {
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(serde_json::json!({"error": "server_error"})))
        }
        Some(TokenState::Expired) | None => (StatusCode::OK, axum::Json(serde_json::json!({"active": false}))),
    }
}

/// `application/x-www-form-urlencoded` value decoding (`+` and `%XX`).
fn form_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A CA and a server certificate for `localhost` / 127.0.0.1 signed by it, in `dir`; returns the CA's path.
fn make_certificates(dir: &Path) -> anyhow::Result<PathBuf> {
    let openssl = |args: &[&str]| -> anyhow::Result<()> {
        let output = Command::new("openssl").args(args).current_dir(dir).output().context("running openssl")?;
        if !output.status.success() {
            bail!("openssl {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
        }
        Ok(())
    };
    std::fs::write(
        dir.join("server.ext"),
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=otp-harness test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ])?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "server.ext",
        "-out",
        "server.pem",
    ])?;
    Ok(dir.join("ca.pem"))
}

fn chown_nobody(path: &Path) -> anyhow::Result<()> {
    std::os::unix::fs::chown(path, Some(65534), Some(65534))
        .with_context(|| format!("chown 65534 {} (Dovecot refuses uid 0 for mail; run as root)", path.display()))
}
