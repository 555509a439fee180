//! How the IMAP source logs in: `LOGIN` with a password, or SASL XOAUTH2 / OAUTHBEARER (RFC 7628) with
//! an OAuth 2.0 access token from an environment variable, a file or a command (Microsoft 365 and Gmail
//! turn password logins off). A token never appears in an error or a log line: a refusal names the
//! server's reply class and its own words, never what was sent.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use async_imap::{Authenticator, Client, Session};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::scenario::{ImapAuth, ImapOptions};

/// Longest a `token_command` may run before it is killed and the login fails.
pub const TOKEN_COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// What an IMAP client runs on (a plain or TLS stream).
pub trait ImapIo: AsyncRead + AsyncWrite + Unpin + fmt::Debug + Send {}

impl<T: AsyncRead + AsyncWrite + Unpin + fmt::Debug + Send> ImapIo for T {}

/// A password or an access token: never shown by `Debug`, compared only to tell a fresh one apart.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the secret replaced by `<token>` (belt and braces: nothing the
    /// harness writes should hold it in the first place).
    pub fn redact(&self, text: &str) -> String {
        if self.0.is_empty() { text.to_string() } else { text.replace(&self.0, "<token>") }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Where an access token comes from.
enum TokenSource {
    /// An environment variable, read once at start (it cannot change during the run).
    Env(Secret),
    /// A file's first line, read at every login.
    File(PathBuf),
    /// A command's first line of output, run at every login.
    Command { command: String, dir: PathBuf },
}

impl TokenSource {
    /// As the scenario names it, for messages.
    fn key(&self) -> &'static str {
        match self {
            TokenSource::Env(_) => "token_env",
            TokenSource::File(_) => "token_file",
            TokenSource::Command { .. } => "token_command",
        }
    }

    /// Whether asking again can give another token.
    fn renewable(&self) -> bool {
        !matches!(self, TokenSource::Env(_))
    }

    async fn token(&self) -> Result<Secret, String> {
        match self {
            TokenSource::Env(token) => Ok(token.clone()),
            TokenSource::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?;
                parse_token(&text, "token_file")
            }
            TokenSource::Command { command, dir } => run_token_command(command, dir, TOKEN_COMMAND_TIMEOUT).await,
        }
    }
}

/// How to log in, and as whom.
pub struct Credentials {
    username: String,
    method: Method,
}

enum Method {
    Password(Secret),
    OAuth { auth: ImapAuth, source: TokenSource, host: String, port: u16, refresh: Option<Duration> },
}

impl Credentials {
    /// Reads what can be read up front (the password, a token from the environment); a token file or
    /// command is read or run at each login. `port` is the one connected to (OAUTHBEARER names it).
    pub fn from_options(options: &ImapOptions, port: u16) -> Result<Self, String> {
        let username = options.username.clone();
        let method = match options.auth {
            ImapAuth::Password => Method::Password(read_password(options)?),
            auth => {
                let source = if let Some(var) = &options.token_env {
                    let value = std::env::var(var)
                        .map_err(|_| format!("the environment variable {var} (the IMAP access token) is not set"))?;
                    TokenSource::Env(parse_token(&value, "token_env")?)
                } else if let Some(path) = &options.token_file {
                    TokenSource::File(path.clone())
                } else if let Some(command) = &options.token_command {
                    let dir = options.scenario_dir.clone().unwrap_or_else(|| PathBuf::from("."));
                    TokenSource::Command { command: command.clone(), dir }
                } else {
                    return Err(format!(
                        "auth = \"{}\" needs one of token_env, token_file and token_command",
                        auth.name()
                    ));
                };
                Method::OAuth { auth, source, host: options.host.clone(), port, refresh: options.token_refresh() }
            }
        };
        Ok(Self { username, method })
    }

    /// How often the session should log in again with a fresh token (token files and commands only).
    pub fn refresh_every(&self) -> Option<Duration> {
        match &self.method {
            Method::OAuth { refresh, source, .. } if source.renewable() => *refresh,
            _ => None,
        }
    }

    /// What the next login needs, got before connecting (a token command may take seconds, and a server
    /// does not wait long for a client that has not logged in): the access token, nothing for a password.
    pub async fn prepare(&self) -> Result<Option<Secret>, String> {
        match &self.method {
            Method::Password(_) => Ok(None),
            Method::OAuth { source, .. } => {
                source.token().await.map(Some).map_err(|e| format!("no IMAP access token: {e}"))
            }
        }
    }

    /// Logs in on a client that has read the greeting, with what `prepare` gave. With a token file or
    /// command, a refused token is replaced by a fresh one (the file read, the command run again) and
    /// the login tried once more.
    pub async fn login<T: ImapIo>(&self, client: Client<T>, prepared: Option<Secret>) -> Result<Session<T>, String> {
        let (auth, source, host, port) = match &self.method {
            Method::Password(password) => {
                return client
                    .login(&self.username, password.expose())
                    .await
                    .map_err(|(e, _)| password.redact(&format!("IMAP LOGIN as {} failed: {e}", self.username)));
            }
            Method::OAuth { auth, source, host, port, .. } => (*auth, source, host.as_str(), *port),
        };
        let token = match prepared {
            Some(token) => token,
            None => source.token().await.map_err(|e| format!("no IMAP access token: {e}"))?,
        };
        let refused = match self.authenticate(client, auth, host, port, &token).await {
            Ok(session) => return Ok(session),
            Err(Failure::Refused { client, class, .. }) if source.renewable() => {
                tracing::warn!(
                    "IMAP {} login refused for {}: {class}; getting a fresh token ({}) and trying once more",
                    auth.mechanism(),
                    self.username,
                    source.key()
                );
                client
            }
            Err(failure) => return Err(failure.message(auth, &self.username, "")),
        };
        let fresh = source.token().await.map_err(|e| format!("no fresh IMAP access token after a refusal: {e}"))?;
        let note = if fresh == token {
            format!(" (again after a second try: {} gave the same token)", source.key())
        } else {
            format!(" (again with a fresh token from {})", source.key())
        };
        self.authenticate(refused, auth, host, port, &fresh)
            .await
            .map_err(|failure| fresh.redact(&token.redact(&failure.message(auth, &self.username, &note))))
    }

    /// One AUTHENTICATE exchange.
    async fn authenticate<T: ImapIo>(
        &self,
        client: Client<T>,
        auth: ImapAuth,
        host: &str,
        port: u16,
        token: &Secret,
    ) -> Result<Session<T>, Failure<T>> {
        let mut challenge = None;
        let sasl = Sasl {
            initial: Some(initial_response(auth, &self.username, host, port, token.expose())),
            dummy: if auth == ImapAuth::Oauthbearer { vec![0x01] } else { Vec::new() },
            challenge: &mut challenge,
        };
        let result = client.authenticate(auth.mechanism(), sasl).await;
        match result {
            Ok(session) => Ok(session),
            Err((async_imap::error::Error::No(text), client)) => {
                let server = token.redact(&server_words(&text));
                let class = refusal_class(challenge.as_deref(), &server).to_string();
                Err(Failure::Refused { client, class, server })
            }
            Err((async_imap::error::Error::Bad(text), _)) => Err(Failure::Other(format!(
                "the server does not accept AUTHENTICATE {} (is AUTH={} in its CAPABILITY?); it said: {}",
                auth.mechanism(),
                auth.mechanism(),
                token.redact(&server_words(&text))
            ))),
            Err((e, _)) => Err(Failure::Other(token.redact(&e.to_string()))),
        }
    }
}

/// Why an AUTHENTICATE failed.
enum Failure<T: ImapIo> {
    /// A NO: the client can try again.
    Refused { client: Client<T>, class: String, server: String },
    /// Anything else (BAD, a lost connection).
    Other(String),
}

impl<T: ImapIo> Failure<T> {
    fn message(&self, auth: ImapAuth, username: &str, note: &str) -> String {
        match self {
            Failure::Refused { class, server, .. } => format!(
                "IMAP {} login refused for {username}: {class}{note}; the server said: {server}",
                auth.mechanism()
            ),
            Failure::Other(e) => format!("IMAP {} login for {username} failed: {e}", auth.mechanism()),
        }
    }
}

/// Answers the server's empty first challenge with the initial response, and an error challenge (the
/// JSON a refusing server sends) with the dummy reply the mechanism asks for, keeping the challenge.
struct Sasl<'a> {
    initial: Option<Vec<u8>>,
    dummy: Vec<u8>,
    challenge: &'a mut Option<String>,
}

impl Authenticator for Sasl<'_> {
    type Response = Vec<u8>;

    fn process(&mut self, challenge: &[u8]) -> Vec<u8> {
        if let Some(initial) = self.initial.take() {
            return initial;
        }
        *self.challenge = Some(String::from_utf8_lossy(challenge).into_owned());
        self.dummy.clone()
    }
}

/// The SASL initial response: XOAUTH2 `user=…^Aauth=Bearer …^A^A`, or OAUTHBEARER's (RFC 7628) GS2
/// header with the user, then host, port and the bearer token.
pub fn initial_response(auth: ImapAuth, username: &str, host: &str, port: u16, token: &str) -> Vec<u8> {
    match auth {
        ImapAuth::Oauthbearer => {
            let user = username.replace('=', "=3D").replace(',', "=2C");
            format!("n,a={user},\x01host={host}\x01port={port}\x01auth=Bearer {token}\x01\x01").into_bytes()
        }
        _ => format!("user={username}\x01auth=Bearer {token}\x01\x01").into_bytes(),
    }
}

/// What a refusal means, from the error challenge's status (XOAUTH2 and RFC 7628 servers send a JSON
/// object before the NO) or else the NO's response code.
pub fn refusal_class(challenge: Option<&str>, server: &str) -> &'static str {
    let status =
        challenge.and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok()).and_then(|v| match &v["status"] {
            serde_json::Value::String(s) => Some(s.to_ascii_lowercase()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    let code = server.to_ascii_uppercase();
    match status.as_deref() {
        Some("401" | "invalid_token") => "token rejected (expired or revoked?)",
        Some("403" | "insufficient_scope") => {
            "the token lacks the mail scope (Microsoft 365: IMAP.AccessAsUser.All; Gmail: https://mail.google.com/)"
        }
        Some("400" | "invalid_request") => {
            "token or user rejected (expired or revoked token, or one for another user?)"
        }
        _ if code.contains("[UNAVAILABLE]") => "the server could not check the token (its token service failed?)",
        _ if code.contains("[EXPIRED]") => "token expired",
        _ if code.contains("[AUTHORIZATIONFAILED]") => "the token's user may not open this mailbox",
        _ => "token rejected (expired or revoked, or not issued for this user?)",
    }
}

/// The server's own words from an async-imap NO/BAD text (`code: …, info: Some("[CODE] words")`).
fn server_words(text: &str) -> String {
    match text.split_once("info: Some(\"") {
        Some((_, rest)) => rest.strip_suffix("\")").unwrap_or(rest).to_string(),
        None => text.to_string(),
    }
}

/// The token on the first line of `text`, trimmed; refused when blank, JSON, or with spaces or control
/// characters (it would corrupt the SASL message).
fn parse_token(text: &str, key: &str) -> Result<Secret, String> {
    let line = text.lines().next().unwrap_or("").trim();
    if line.is_empty() {
        return Err(format!("{key} gave no token (its first line is empty)"));
    }
    if line.starts_with('{') || line.starts_with('[') {
        return Err(format!(
            "{key} gave JSON, not a bare token: print only the access token (e.g. `az … --query accessToken -o tsv`, `jq -r .access_token`)"
        ));
    }
    if line.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{key} gave a first line with spaces or control characters: print only the access token"));
    }
    Ok(Secret(line.to_string()))
}

/// Runs `command` with `sh -c` in `dir`; the token is the first line of its output. Its error output is
/// kept for the message when it fails (last line only, shortened), never shown otherwise.
pub async fn run_token_command(command: &str, dir: &Path, timeout: Duration) -> Result<Secret, String> {
    let child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start token_command with sh in {}: {e}", dir.display()))?;
    let output = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .map_err(|_| format!("token_command did not finish within {timeout:?} (it was stopped)"))?
        .map_err(|e| format!("token_command: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("no error output");
        let mut last: String = last.chars().take(200).collect();
        if let Some(first) = stdout.lines().next().map(str::trim).filter(|l| !l.is_empty()) {
            last = last.replace(first, "<token>");
        }
        return Err(format!("token_command failed ({}): {last}", output.status));
    }
    parse_token(&stdout, "token_command")
}

/// The password, from the environment variable or the file the scenario names (never from the scenario).
fn read_password(options: &ImapOptions) -> Result<Secret, String> {
    if let Some(var) = &options.password_env {
        return std::env::var(var)
            .map(Secret)
            .map_err(|_| format!("the environment variable {var} (the IMAP password) is not set"));
    }
    if let Some(path) = &options.password_file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the password file {}: {e}", path.display()))?;
        return Ok(Secret(text.lines().next().unwrap_or("").to_string()));
    }
    Err("no password_env or password_file".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn initial_responses_follow_the_mechanisms() {
        let x = initial_response(ImapAuth::Xoauth2, "u@mail.test", "h", 993, "tok");
        assert_eq!(x, b"user=u@mail.test\x01auth=Bearer tok\x01\x01");
        let o = initial_response(ImapAuth::Oauthbearer, "a,b=c@mail.test", "imap.example.test", 993, "tok");
        assert_eq!(o, b"n,a=a=2Cb=3Dc@mail.test,\x01host=imap.example.test\x01port=993\x01auth=Bearer tok\x01\x01");
    }

    #[test]
    fn refusals_are_named_by_the_servers_reply() {
        let dovecot_xoauth2 = r#"{"status":"401","schemes":"bearer","scope":"mail"}"#;
        assert_eq!(
            refusal_class(Some(dovecot_xoauth2), "[AUTHENTICATIONFAILED] x"),
            "token rejected (expired or revoked?)"
        );
        assert_eq!(refusal_class(Some(r#"{"status":"invalid_token"}"#), ""), "token rejected (expired or revoked?)");
        assert!(refusal_class(Some(r#"{"status":"insufficient_scope"}"#), "").contains("scope"));
        assert!(refusal_class(Some(r#"{"status":"400","schemes":"Bearer"}"#), "").contains("another user"));
        assert!(refusal_class(None, "[UNAVAILABLE] Temporary authentication failure.").contains("could not check"));
        assert!(refusal_class(Some("not json"), "AUTHENTICATE failed.").starts_with("token rejected"));
        let text = r#"code: None, info: Some("[AUTHENTICATIONFAILED] Authentication failed.")"#;
        assert_eq!(server_words(text), "[AUTHENTICATIONFAILED] Authentication failed.");
    }

    #[test]
    fn tokens_are_bare_first_lines() {
        assert_eq!(parse_token("ya29.abc\nsecond\n", "k").expect("token").expose(), "ya29.abc");
        assert_eq!(parse_token("  eyJ0.x.y  \r\n", "k").expect("token").expose(), "eyJ0.x.y");
        assert!(parse_token("\nya29", "k").expect_err("blank").contains("empty"));
        assert!(parse_token("{\"accessToken\": \"x\"}", "k").expect_err("json").contains("JSON"));
        assert!(parse_token("Bearer x", "k").expect_err("spaces").contains("spaces"));
        let secret = Secret("s3cr3t".into());
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        assert_eq!(secret.redact("a s3cr3t b"), "a <token> b");
    }

    #[tokio::test]
    async fn token_commands_run_in_the_scenarios_folder_with_a_timeout() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("t"), "tok-1\n").expect("file");
        let token = run_token_command("cat t; echo more", dir.path(), Duration::from_secs(10)).await.expect("runs");
        assert_eq!(token.expose(), "tok-1");
        let failed =
            run_token_command("echo tok-2; echo 'az login first' >&2; exit 3", dir.path(), Duration::from_secs(10))
                .await
                .expect_err("fails");
        assert!(failed.contains("az login first") && failed.contains("exit status: 3"), "{failed}");
        assert!(!failed.contains("tok-2"), "{failed}");
        let slow = run_token_command("sleep 5", dir.path(), Duration::from_millis(200)).await.expect_err("slow");
        assert!(slow.contains("did not finish"), "{slow}");
    }
}
