//! Code mail: builds each one-time-code message as real MIME (text and HTML parts) and hands it to
//! the configured sinks — outbox, LMTP/SMTP relay, S3 — applying the mail faults (delay, duplicate,
//! loss) on the way. Sending never blocks the sign-in that caused it, as with SES.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use mail_builder::MessageBuilder;
use mail_builder::headers::message_id::MessageId;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Serialize;
use tokio::sync::Semaphore;

use super::config::{MailConfig, MailFaults, RelayConfig};
use super::outbox::{Body, Destination, Outbox, OutboxMessage};
use super::relay;
use super::s3sink::S3Sink;

/// Counters of what happened to code mail, served at `GET /_pool/stats`.
#[derive(Debug, Default)]
pub struct MailStats {
    pub generated: AtomicU64,
    pub lost: AtomicU64,
    pub duplicated: AtomicU64,
    pub relayed: AtomicU64,
    pub relay_failed: AtomicU64,
    pub stored_s3: AtomicU64,
    pub s3_failed: AtomicU64,
}

/// A snapshot of `MailStats`.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct MailStatsSnapshot {
    pub generated: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub relayed: u64,
    pub relay_failed: u64,
    pub stored_s3: u64,
    pub s3_failed: u64,
}

impl MailStats {
    pub fn snapshot(&self) -> MailStatsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MailStatsSnapshot {
            generated: get(&self.generated),
            lost: get(&self.lost),
            duplicated: get(&self.duplicated),
            relayed: get(&self.relayed),
            relay_failed: get(&self.relay_failed),
            stored_s3: get(&self.stored_s3),
            s3_failed: get(&self.s3_failed),
        }
    }
}

/// What a code mail says (no Debug: it holds the code).
struct MailContent {
    subject: String,
    text: String,
    html: String,
}

/// Text made safe inside HTML. (The pool keeps its own: `report::escape_markup` lives on the other side
/// of the module graph, and `scenario` already depends on `pool`.)
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// One built message (no Debug: it holds the code).
#[derive(Clone)]
struct CodeMail {
    /// SES-style message id: outbox Id and S3 object key.
    id: String,
    to: String,
    subject: String,
    text: String,
    html: String,
    date_rfc822: String,
    timestamp: String,
    raw: Arc<Vec<u8>>,
}

/// Sends code mail to every configured sink.
pub struct MailDispatcher {
    from: String,
    subject: String,
    region: String,
    faults: MailFaults,
    outbox: Option<Arc<Outbox>>,
    relay: Option<(RelayConfig, Arc<Semaphore>)>,
    s3: Option<S3Sink>,
    stats: Arc<MailStats>,
}

impl std::fmt::Debug for MailDispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailDispatcher").field("from", &self.from).finish_non_exhaustive()
    }
}

impl MailDispatcher {
    /// Connects the sinks the config names (the S3 sink creates its bucket).
    pub async fn new(config: &MailConfig, faults: &MailFaults, region: &str) -> anyhow::Result<Self> {
        let s3 = match &config.s3 {
            Some(s3) => Some(S3Sink::connect(s3).await?),
            None => None,
        };
        Ok(Self {
            from: config.from.clone(),
            subject: config.subject.clone(),
            region: region.to_string(),
            faults: faults.clone(),
            outbox: config.outbox.then(|| Arc::new(Outbox::new(config.outbox_capacity))),
            relay: config.relay.clone().map(|r| {
                let permits = Arc::new(Semaphore::new(r.concurrency));
                (r, permits)
            }),
            s3,
            stats: Arc::new(MailStats::default()),
        })
    }

    pub fn outbox(&self) -> Option<&Arc<Outbox>> {
        self.outbox.as_ref()
    }

    pub fn stats(&self) -> MailStatsSnapshot {
        self.stats.snapshot()
    }

    /// Mails a custom-auth `code` to `to` (the seed's Create trigger's message). Returns at once; delivery
    /// (and any injected delay) happens in the background, except for the outbox when there is no delay,
    /// which is filled before this returns.
    pub fn send_code(&self, to: &str, code: &str, validity_minutes: u64) {
        let text = format!(
            "Hello,\r\n\r\nYour sign-in code is {code}\r\n\r\nIt expires in {validity_minutes} minutes. \
             If you did not ask for it, ignore this mail.\r\n"
        );
        let html = format!(
            "<html><body><p>Hello,</p><p>Your sign-in code is <strong>{code}</strong></p>\
             <p>It expires in {validity_minutes}&nbsp;minutes. If you did not ask for it, ignore this mail.</p></body></html>"
        );
        self.send(to, MailContent { subject: self.subject.clone(), text, html });
    }

    /// Mails a native (EMAIL_OTP) `code` to `to` with the pool's template: `{####}` in `message` becomes
    /// the code, in the text part and (escaped) in the HTML part. Delivery as `send_code`.
    pub fn send_template_code(&self, to: &str, code: &str, subject: &str, message: &str) {
        let text = message.replace("{####}", code);
        let html = format!("<html><body><p>{}</p></body></html>", escape_html(message).replace("{####}", code));
        self.send(to, MailContent { subject: subject.to_string(), text, html });
    }

    fn send(&self, to: &str, content: MailContent) {
        self.stats.generated.fetch_add(1, Ordering::Relaxed);
        let (lost, duplicate) = {
            let mut rng = rand::rng();
            let lost = self.faults.loss_rate > 0.0 && rng.random::<f64>() < self.faults.loss_rate;
            let duplicate = self.faults.duplicate_rate > 0.0 && rng.random::<f64>() < self.faults.duplicate_rate;
            (lost, duplicate)
        };
        if lost {
            self.stats.lost.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let copies = if duplicate {
            self.stats.duplicated.fetch_add(1, Ordering::Relaxed);
            2
        } else {
            1
        };
        let mails: Vec<CodeMail> = match (0..copies).map(|_| self.build(to, &content)).collect() {
            Ok(mails) => mails,
            Err(e) => {
                tracing::error!(error = %e, "could not build a code mail");
                return;
            }
        };
        let delay = self.faults.delay;
        if delay.is_zero() {
            if let Some(outbox) = &self.outbox {
                for mail in &mails {
                    outbox.push(self.outbox_entry(mail));
                }
            }
            if self.relay.is_none() && self.s3.is_none() {
                return;
            }
        }
        let outbox_later = if delay.is_zero() { None } else { self.outbox.clone() };
        let relay = self.relay.clone();
        let s3 = self.s3.clone();
        let stats = Arc::clone(&self.stats);
        let from = self.from.clone();
        let region = self.region.clone();
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            for mail in mails {
                if let Some(outbox) = &outbox_later {
                    outbox.push(outbox_entry(&from, &region, &mail));
                }
                if let Some((relay, permits)) = &relay {
                    let _permit = permits.acquire().await;
                    match relay::deliver(relay.protocol, &relay.host, relay.port, &from, &mail.to, &mail.raw).await {
                        Ok(()) => stats.relayed.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "relay delivery failed");
                            stats.relay_failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
                if let Some(s3) = &s3 {
                    match s3.store(&mail.id, &from, &mail.to, &mail.date_rfc822, &mail.raw).await {
                        Ok(()) => stats.stored_s3.fetch_add(1, Ordering::Relaxed),
                        Err(e) => {
                            tracing::warn!(error = %format!("{e:#}"), "S3 delivery failed");
                            stats.s3_failed.fetch_add(1, Ordering::Relaxed)
                        }
                    };
                }
            }
        });
    }

    fn outbox_entry(&self, mail: &CodeMail) -> OutboxMessage {
        outbox_entry(&self.from, &self.region, mail)
    }

    fn build(&self, to: &str, content: &MailContent) -> anyhow::Result<CodeMail> {
        let id: String =
            rand::rng().sample_iter(Alphanumeric).take(40).map(|c| char::from(c).to_ascii_lowercase()).collect();
        let now = SystemTime::now();
        let epoch = now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let date = mail_builder::headers::date::Date::new(epoch);
        let date_rfc822 = date.to_rfc822();
        let domain = self.from.rsplit_once('@').map_or("otp-harness.test", |(_, d)| d);
        let MailContent { subject, text, html } = content;
        let raw = MessageBuilder::new()
            .from(self.from.as_str())
            .to(to)
            .subject(subject.as_str())
            .date(date)
            .message_id(MessageId::new(format!("{}@{domain}", uuid::Uuid::new_v4())))
            .text_body(text.as_str())
            .html_body(html.as_str())
            .write_to_vec()?;
        Ok(CodeMail {
            id,
            to: to.to_string(),
            subject: subject.clone(),
            text: text.clone(),
            html: html.clone(),
            date_rfc822,
            timestamp: humantime::format_rfc3339_millis(now).to_string(),
            raw: Arc::new(raw),
        })
    }
}

fn outbox_entry(from: &str, region: &str, mail: &CodeMail) -> OutboxMessage {
    OutboxMessage {
        id: mail.id.clone(),
        region: region.to_string(),
        destination: Destination { to_addresses: vec![mail.to.clone()] },
        source: from.to_string(),
        subject: mail.subject.clone(),
        body: Body { text_part: Some(mail.text.clone()), html_part: Some(mail.html.clone()) },
        timestamp: mail.timestamp.clone(),
        raw_data: String::from_utf8_lossy(&mail.raw).into_owned(),
    }
}
