//! The IMAP source: one shared connection per inbox (never one per virtual user), TLS by default,
//! plain text only to loopback. It notes the inbox's UIDNEXT at start (older mail is not ours), then
//! fetches every new UID as IDLE announces it (or as a NOOP poll finds it), hands each mail to the
//! mailroom, and deletes or flags it. A dropped connection is reopened and resumes from the last UID,
//! so nothing that arrived meanwhile is lost. It logs in with a password or an OAuth access token
//! (imap_auth.rs); with a token file or command, the session logs in again with a fresh token every
//! `token_refresh` (the new session opens before the old one closes, so no mail is missed).

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
    /// IDLE was asked for but the server does not offer it: poll instead.
    idle_unsupported: bool,
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
            idle_unsupported: false,
            renew_at: None,
        };
        let (mut session, uid_next, uid_validity) = watcher.open().await.map_err(|e| SourceError::new("imap", e))?;
        if watcher.options.mode == ImapMode::Idle {
            let capabilities =
                session.capabilities().await.map_err(|e| SourceError::new("imap", format!("CAPABILITY: {e}")))?;
            if !capabilities.has_str("IDLE") {
                tracing::warn!(
                    "the IMAP server does not offer IDLE; polling every {:?} instead",
                    watcher.options.poll_interval
                );
                watcher.idle_unsupported = true;
            }
        }
        watcher.last_uid = uid_next.saturating_sub(1);
        watcher.uid_validity = uid_validity;
        watcher.session = Some(session);
        watcher.logged_in();
        Ok(watcher)
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
            match self.wait_for_news(session, &stop).await {
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
        let mut fetched: Vec<(u32, Vec<u8>)> = session
            .uid_fetch(&range, "(UID BODY.PEEK[])")
            .await
            .map_err(|e| format!("UID FETCH: {e}"))?
            .try_filter_map(|f| async move { Ok(f.uid.map(|uid| (uid, f.body().unwrap_or_default().to_vec()))) })
            .try_collect()
            .await
            .map_err(|e| format!("UID FETCH: {e}"))?;
        // `n:*` always returns the last message, even when its UID is below n.
        fetched.retain(|(uid, _)| *uid > self.last_uid);
        fetched.sort_by_key(|(uid, _)| *uid);
        let mut uids = Vec::with_capacity(fetched.len());
        for (uid, raw) in fetched {
            // Only code mail is deleted or flagged: other mail in a shared inbox is not ours to touch.
            if deliver(mailroom, self.extractor.extract(&raw)) {
                uids.push(uid.to_string());
            }
            self.last_uid = self.last_uid.max(uid);
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
        stop: &CancellationToken,
    ) -> Result<Option<ImapSession>, String> {
        let mode = if self.idle_unsupported { ImapMode::Poll } else { self.options.mode };
        match mode {
            ImapMode::Poll => {
                tokio::select! {
                    _ = stop.cancelled() => return Ok(None),
                    _ = tokio::time::sleep(self.options.poll_interval) => {}
                }
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
