//! The IMAP source: one shared connection per inbox (never one per virtual user), TLS by default,
//! plain text only to loopback. It notes the inbox's UIDNEXT at start (older mail is not ours), then
//! fetches every new UID as IDLE announces it (or as a NOOP poll finds it), hands each mail to the
//! mailroom, and deletes or flags it. A dropped connection is reopened and resumes from the last UID,
//! so nothing that arrived meanwhile is lost. It logs in with a password or an OAuth access token
//! (imap_auth.rs); with a token file or command, the session logs in again with a fresh token every
//! `token_refresh` (the new session opens before the old one closes, so no mail is missed).
//!
//! How it learns of new mail is chosen per server (`mode = "auto"`, the default): IDLE where the
//! server pushes promptly, adaptive NOOP polling where it does not — Dovecot holds every IDLE notice
//! ~500 ms by design (told by its `ID` answer), and a server without IDLE is polled too. Polling is
//! fast (`poll_interval`) while virtual users wait for codes and slow (`idle_poll_interval`) while none
//! do; a user starting to wait cuts a slow interval short. Each mail's INTERNALDATE against the time
//! it was read gives the server-side delay reported in summary.json (whole seconds: a mean over many
//! mails). With `connections` > 1 each connection reads its share of the test users, by address.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_imap::Session;
use async_imap::extensions::idle::IdleResponse;
use futures::TryStreamExt;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;

use super::imap_auth::Credentials;
use super::{Extractor, Mailroom, SourceError, deliver};
use crate::background::CancellationToken;
use crate::scenario::{AfterRead, ImapMode, ImapOptions};
use std::time::{SystemTime, UNIX_EPOCH};

/// How long one IDLE lasts before it is renewed (and new mail fetched regardless): bounds the cost of
/// a new-mail notice that arrived while no IDLE was listening.
const IDLE_CYCLE: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a single command (FETCH, STORE, EXPUNGE, NOOP, DONE) may take before the connection is
/// given up and reopened.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

/// A plain or TLS connection.
#[derive(Debug)]
pub enum ImapStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for ImapStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ImapStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            ImapStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ImapStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

type ImapSession = Session<ImapStream>;

/// Watches one inbox.
pub struct ImapWatcher {
    options: ImapOptions,
    credentials: Credentials,
    extractor: Extractor,
    tls: Option<TlsConnector>,
    session: Option<ImapSession>,
    last_uid: u32,
    uid_validity: Option<u32>,
    /// IDLE or polling, as chosen for this server (never `Auto`).
    resolved: ImapMode,
    /// Why, for the report.
    mode_note: String,
    /// This connection's share of the users: (index, count) of `connections`.
    shard: Option<(usize, usize)>,
    /// When the session should log in again with a fresh token (token files and commands only).
    renew_at: Option<Instant>,
}

impl ImapWatcher {
    /// Reads the password or gets a token, logs in and selects the mailbox: a failure here means the
    /// run cannot happen.
    pub async fn connect(options: ImapOptions, extractor: Extractor) -> Result<Self, SourceError> {
        let port = options.port.unwrap_or(if options.tls { 993 } else { 143 });
        let credentials = Credentials::from_options(&options, port).map_err(|e| SourceError::new("imap", e))?;
        let tls = if options.tls { Some(tls_connector(&options)?) } else { None };
        let mut watcher = Self {
            options,
            credentials,
            extractor,
            tls,
            session: None,
            last_uid: 0,
            uid_validity: None,
            resolved: ImapMode::Poll,
            mode_note: String::new(),
            shard: None,
            renew_at: None,
        };
        let (mut session, uid_next, uid_validity) = watcher.open().await.map_err(|e| SourceError::new("imap", e))?;
        let polling = format!(
            "NOOP every {:?} while users wait, every {:?} otherwise",
            watcher.options.poll_interval, watcher.options.idle_poll_interval
        );
        if watcher.options.mode != ImapMode::Poll {
            let capabilities =
                session.capabilities().await.map_err(|e| SourceError::new("imap", format!("CAPABILITY: {e}")))?;
            let has_idle = capabilities.has_str("IDLE");
            let server = if capabilities.has_str("ID") {
                session.id_nil().await.ok().flatten().and_then(|id| id.get("name").cloned())
            } else {
                None
            };
            let late_idle = server.as_deref().is_some_and(holds_idle_back);
            (watcher.resolved, watcher.mode_note) = match (watcher.options.mode, has_idle, late_idle) {
                (_, false, _) => {
                    tracing::warn!("the IMAP server does not offer IDLE; polling instead");
                    (ImapMode::Poll, format!("poll (the server has no IDLE): {polling}"))
                }
                (ImapMode::Auto, true, true) => (
                    ImapMode::Poll,
                    format!("poll (auto: {} holds IDLE notices back): {polling}", server.unwrap_or_default()),
                ),
                _ => (ImapMode::Idle, "idle".to_string()),
            };
        } else {
            watcher.mode_note = format!("poll: {polling}");
        }
        watcher.last_uid = uid_next.saturating_sub(1);
        watcher.uid_validity = uid_validity;
        watcher.session = Some(session);
        watcher.logged_in();
        Ok(watcher)
    }

    /// This connection reads only the users whose address falls in shard `index` of `count`.
    pub fn with_shard(mut self, index: usize, count: usize) -> Self {
        self.shard = (count > 1).then_some((index, count));
        self
    }

    /// How this watcher learns of new mail, and why.
    pub fn mode_note(&self) -> &str {
        &self.mode_note
    }

    fn port(&self) -> u16 {
        self.options.port.unwrap_or(if self.options.tls { 993 } else { 143 })
    }

    /// Connects, logs in, selects; returns the session, UIDNEXT and UIDVALIDITY.
    async fn open(&self) -> Result<(ImapSession, u32, Option<u32>), String> {
        let (host, port) = (self.options.host.as_str(), self.port());
        let prepared = self.credentials.prepare().await?;
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port)))
            .await
            .map_err(|_| format!("connecting to {host}:{port} timed out"))?
            .map_err(|e| format!("connecting to {host}:{port}: {e}"))?;
        let stream = match &self.tls {
            Some(connector) => {
                let name = rustls::pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| format!("{host} is not a valid TLS server name: {e}"))?;
                let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
                    .await
                    .map_err(|_| format!("TLS handshake with {host}:{port} timed out"))?
                    .map_err(|e| format!("TLS handshake with {host}:{port}: {e}"))?;
                ImapStream::Tls(Box::new(tls))
            }
            None => ImapStream::Plain(tcp),
        };
        let mut client = async_imap::Client::new(stream);
        tokio::time::timeout(CONNECT_TIMEOUT, client.read_response())
            .await
            .map_err(|_| format!("{host}:{port} sent no IMAP greeting"))?
            .map_err(|e| format!("reading the greeting of {host}:{port}: {e}"))?
            .ok_or_else(|| format!("{host}:{port} closed the connection before greeting"))?;
        // Bounded: an OAuth server may itself wait on its token service before it answers.
        let mut session = tokio::time::timeout(COMMAND_TIMEOUT, self.credentials.login(client, prepared))
            .await
            .map_err(|_| format!("{host}:{port} did not answer the login as {} in time", self.options.username))??;
        let mailbox = session
            .select(&self.options.mailbox)
            .await
            .map_err(|e| format!("selecting {}: {e}", self.options.mailbox))?;
        let uid_next = match mailbox.uid_next {
            Some(next) => next,
            None => {
                let uids = session.uid_search("ALL").await.map_err(|e| format!("UID SEARCH: {e}"))?;
                uids.into_iter().max().unwrap_or(0) + 1
            }
        };
        Ok((session, uid_next, mailbox.uid_validity))
    }

    /// Watches until stopped.
    pub async fn run(mut self, mailroom: Arc<Mailroom>, stop: CancellationToken) {
        if self.shard.is_none_or(|(index, _)| index == 0) {
            mailroom.set_mode(self.mode_note.clone());
        }
        let mut backoff = Duration::from_millis(200);
        loop {
            if stop.is_cancelled() {
                break;
            }
            let Some(mut session) = self.session.take() else {
                match self.open().await {
                    Ok((session, uid_next, uid_validity)) => {
                        self.check_uid_validity(uid_next, uid_validity);
                        mailroom.count_reconnect();
                        backoff = Duration::from_millis(200);
                        self.session = Some(session);
                        self.logged_in();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "IMAP reconnect failed; retrying");
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
                continue;
            };
            match tokio::time::timeout(COMMAND_TIMEOUT, self.fetch_new(&mut session, &mailroom)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "IMAP connection lost; reconnecting");
                    continue;
                }
                Err(_) => {
                    tracing::warn!("the IMAP server stopped answering; reconnecting");
                    continue;
                }
            }
            if self.renew_at.is_some_and(|at| Instant::now() >= at) {
                session = self.renew(session).await;
            }
            match self.wait_for_news(session, &mailroom, &stop).await {
                Ok(Some(session)) => self.session = Some(session),
                Ok(None) => break,
                Err(e) => tracing::warn!(error = %e, "IMAP connection lost; reconnecting"),
            }
        }
        if let Some(mut session) = self.session.take() {
            let _ = tokio::time::timeout(Duration::from_secs(2), session.logout()).await;
        }
    }

    /// A session just logged in: note when it must renew its token.
    fn logged_in(&mut self) {
        self.renew_at = self.credentials.refresh_every().map(|every| Instant::now() + every);
    }

    /// When UIDs were renumbered, what is there now cannot be told apart, so it is old.
    fn check_uid_validity(&mut self, uid_next: u32, uid_validity: Option<u32>) {
        if uid_validity != self.uid_validity {
            tracing::warn!("the mailbox's UIDVALIDITY changed; reading only mail that arrives from now");
            self.last_uid = uid_next.saturating_sub(1);
            self.uid_validity = uid_validity;
        }
    }

    /// Logs in again with a fresh token before the old one expires: the new session is opened first,
    /// then the old one logged out, so no mail goes unread (the next fetch resumes from the last UID).
    /// If the new login fails, the old session goes on and the renewal is tried again a minute later.
    async fn renew(&mut self, mut old: ImapSession) -> ImapSession {
        match self.open().await {
            Ok((session, uid_next, uid_validity)) => {
                self.check_uid_validity(uid_next, uid_validity);
                let _ = tokio::time::timeout(Duration::from_secs(2), old.logout()).await;
                self.logged_in();
                tracing::debug!("renewed the IMAP login with a fresh token");
                session
            }
            Err(e) => {
                tracing::warn!(error = %e, "renewing the IMAP login with a fresh token failed; keeping the current session");
                self.renew_at = Some(Instant::now() + Duration::from_secs(60).min(self.renew_interval()));
                old
            }
        }
    }

    fn renew_interval(&self) -> Duration {
        self.credentials.refresh_every().unwrap_or(Duration::from_secs(60))
    }

    /// Fetches every UID above the last one seen, feeds the mailroom, then deletes or flags them.
    async fn fetch_new(&mut self, session: &mut ImapSession, mailroom: &Mailroom) -> Result<(), String> {
        while session.unsolicited_responses.try_recv().is_ok() {}
        let range = format!("{}:*", self.last_uid + 1);
        let mut fetched: Vec<(u32, Option<i64>, Vec<u8>)> = session
            .uid_fetch(&range, "(UID INTERNALDATE BODY.PEEK[])")
            .await
            .map_err(|e| format!("UID FETCH: {e}"))?
            .try_filter_map(|f| async move {
                let arrived = f.internal_date().map(|d| d.timestamp_millis());
                Ok(f.uid.map(|uid| (uid, arrived, f.body().unwrap_or_default().to_vec())))
            })
            .try_collect()
            .await
            .map_err(|e| format!("UID FETCH: {e}"))?;
        // `n:*` always returns the last message, even when its UID is below n.
        fetched.retain(|(uid, _, _)| *uid > self.last_uid);
        fetched.sort_by_key(|(uid, _, _)| *uid);
        let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        let mut uids = Vec::with_capacity(fetched.len());
        for (uid, arrived_ms, raw) in fetched {
            self.last_uid = self.last_uid.max(uid);
            let extracted = self.extractor.extract(&raw);
            if let (Some((index, count)), Some(mail)) = (self.shard, &extracted)
                && mail.recipients.first().is_some_and(|r| shard_of(r, count) != index)
            {
                continue; // another connection's user
            }
            // Only code mail is deleted or flagged: other mail in a shared inbox is not ours to touch.
            if deliver(mailroom, extracted) {
                if let Some(arrived_ms) = arrived_ms {
                    // INTERNALDATE has whole seconds: the mail arrived somewhere in that second.
                    let delay = now_ms - arrived_ms - 500;
                    mailroom.note_server_delay(Duration::from_millis(delay.max(0) as u64));
                }
                uids.push(uid.to_string());
            }
        }
        if uids.is_empty() {
            return Ok(());
        }
        let set = uids.join(",");
        let flag = match self.options.after_read {
            AfterRead::Delete => "+FLAGS.SILENT (\\Deleted)",
            AfterRead::Flag => "+FLAGS.SILENT (\\Seen)",
            AfterRead::Keep => return Ok(()),
        };
        let _: Vec<_> = session
            .uid_store(&set, flag)
            .await
            .map_err(|e| format!("UID STORE: {e}"))?
            .try_collect()
            .await
            .map_err(|e| format!("UID STORE: {e}"))?;
        if self.options.after_read == AfterRead::Delete {
            let _: Vec<_> = session
                .uid_expunge(&set)
                .await
                .map_err(|e| format!("UID EXPUNGE: {e}"))?
                .try_collect()
                .await
                .map_err(|e| format!("UID EXPUNGE: {e}"))?;
        }
        Ok(())
    }

    /// Waits for new mail (IDLE or a NOOP poll); `Ok(None)` when told to stop.
    async fn wait_for_news(
        &self,
        mut session: ImapSession,
        mailroom: &Mailroom,
        stop: &CancellationToken,
    ) -> Result<Option<ImapSession>, String> {
        match self.resolved {
            ImapMode::Poll | ImapMode::Auto => {
                if mailroom.waiting() > 0 {
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(None),
                        _ = tokio::time::sleep(self.options.poll_interval) => {}
                    }
                } else {
                    // Nobody waits: poll slowly, but at once when someone starts to.
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(None),
                        _ = tokio::time::sleep(self.options.idle_poll_interval) => {}
                        _ = mailroom.someone_waits() => {}
                    }
                }
                mailroom.count_request();
                tokio::time::timeout(COMMAND_TIMEOUT, session.noop())
                    .await
                    .map_err(|_| "NOOP timed out".to_string())?
                    .map_err(|e| format!("NOOP: {e}"))?;
                Ok(Some(session))
            }
            ImapMode::Idle => {
                // A notice of new mail that came during FETCH/STORE/EXPUNGE: fetch again, do not idle.
                let mut pending = false;
                while let Ok(response) = session.unsolicited_responses.try_recv() {
                    pending |= matches!(
                        response,
                        async_imap::types::UnsolicitedResponse::Exists(_)
                            | async_imap::types::UnsolicitedResponse::Recent(_)
                    );
                }
                if pending {
                    return Ok(Some(session));
                }
                let mut idle = session.idle();
                mailroom.count_request();
                idle.init().await.map_err(|e| format!("IDLE: {e}"))?;
                let stopping = {
                    let (wait, interrupt) = idle.wait_with_timeout(IDLE_CYCLE);
                    tokio::pin!(wait);
                    tokio::select! {
                        answer = &mut wait => {
                            match answer.map_err(|e| format!("IDLE: {e}"))? {
                                IdleResponse::NewData(_) | IdleResponse::Timeout | IdleResponse::ManualInterrupt => false,
                            }
                        }
                        _ = stop.cancelled() => {
                            drop(interrupt);
                            let _ = (&mut wait).await;
                            true
                        }
                    }
                };
                let session = tokio::time::timeout(COMMAND_TIMEOUT, idle.done())
                    .await
                    .map_err(|_| "IDLE DONE timed out".to_string())?
                    .map_err(|e| format!("IDLE DONE: {e}"))?;
                Ok((!stopping).then_some(session))
            }
        }
    }
}

/// Servers known to hold IDLE notices back (by the `name` of their ID answer): Dovecot waits ~500 ms
/// before it tells an idling client of new mail.
fn holds_idle_back(server: &str) -> bool {
    server.to_ascii_lowercase().contains("dovecot")
}

/// Which of `count` shards an address belongs to (stable across processes: FNV-1a of the lowercased
/// address).
pub fn shard_of(address: &str, count: usize) -> usize {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in address.bytes().map(|b| b.to_ascii_lowercase()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % count.max(1) as u64) as usize
}

/// TLS with the system's roots, or only the given CA when `ca_file` is set.
fn tls_connector(options: &ImapOptions) -> Result<TlsConnector, SourceError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match &options.ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| SourceError::new("imap", format!("cannot read {}: {e}", path.display())))?;
            for cert in certs {
                let cert = cert.map_err(|e| SourceError::new("imap", format!("{}: {e}", path.display())))?;
                roots.add(cert).map_err(|e| SourceError::new("imap", format!("{}: {e}", path.display())))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SourceError::new("imap", format!("TLS setup: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_spread_over_shards_stably_and_without_regard_to_case() {
        let mut counts = [0usize; 4];
        for n in 0..4000 {
            let address = format!("loadtest+{n}@mail.test");
            let shard = shard_of(&address, 4);
            assert_eq!(shard, shard_of(&address.to_uppercase(), 4));
            counts[shard] += 1;
        }
        assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
        assert_eq!(shard_of("a@x", 1), 0);
    }

    #[test]
    fn dovecot_is_known_to_hold_idle_back() {
        assert!(holds_idle_back("Dovecot"));
        assert!(holds_idle_back("Dovecot (Debian)"));
        assert!(!holds_idle_back("Microsoft.Exchange.Imap4.Imap4Server"));
    }
}
