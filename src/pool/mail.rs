//! Mail delivery: builds each one-time-code message as real MIME (text and HTML parts) and hands it to
//! the configured sinks — outbox, LMTP/SMTP relay, S3 — applying the mail faults (delay, duplicate,
//! loss) on the way. Sending never blocks the sign-in that caused it, as with SES. Mail accepted by the
//! pool's SES API (`ses`) takes the same way (`send_message`, `send_raw`).

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
use super::ses::SendLedger;

/// Counters of what happened to mail, served at `GET /_pool/stats`: `generated` counts code mail; the
/// others count every mail, code mail and mail sent through the SES API alike (whose own counters are
/// under `ses`).
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

/// A mail to send: the pool's code mail or one accepted by its SES API (no Debug: it may hold a code).
struct Letter {
    /// The message id to use (SES's MessageId); a fresh one when absent, and for a duplicate's copy.
    id: Option<String>,
    /// The envelope sender (a bare address) and the `From` header (which may carry a display name).
    envelope_from: String,
    from_header: String,
    /// Every envelope recipient (To, Cc and Bcc).
    recipients: Vec<String>,
    /// The `To`, `Cc` and `Reply-To` headers of a built message (Bcc recipients are in `recipients` only).
    to: Vec<String>,
    cc: Vec<String>,
    reply_to: Vec<String>,
    subject: String,
    text: Option<String>,
    html: Option<String>,
    /// A ready MIME message (SendRawEmail), sent as it is; subject and bodies then only describe it.
    raw: Option<Vec<u8>>,
}

/// A message built from parts, as SES SendEmail's Simple content gives it (no Debug: it may hold a code).
pub struct SimpleMessage<'a> {
    /// The message id (SES's MessageId): outbox Id and S3 object key.
    pub id: &'a str,
    /// The `From` header, perhaps with a display name (`Name <a@b.test>`); the envelope uses its address.
    pub from: &'a str,
    pub to: &'a [String],
    pub cc: &'a [String],
    pub bcc: &'a [String],
    pub reply_to: &'a [String],
    pub subject: &'a str,
    pub text: Option<&'a str>,
    pub html: Option<&'a str>,
}

/// One built message (no Debug: it may hold a code).
#[derive(Clone)]
struct CodeMail {
    /// SES-style message id: outbox Id and S3 object key.
    id: String,
    from: String,
    /// Every envelope recipient.
    to: Vec<String>,
    subject: String,
    text: Option<String>,
    html: Option<String>,
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
    /// Where code mail is counted as sent through SES (the account's SentLast24Hours), when it is.
    ledger: std::sync::OnceLock<Arc<SendLedger>>,
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
            ledger: std::sync::OnceLock::new(),
        })
    }

    pub fn outbox(&self) -> Option<&Arc<Outbox>> {
        self.outbox.as_ref()
    }

    pub fn stats(&self) -> MailStatsSnapshot {
        self.stats.snapshot()
    }

    /// Counts every code mail from now on as one recipient sent through SES (the pool's own mail goes
    /// out through its SES account). Set once; later calls are ignored.
    pub fn count_code_mail_in(&self, ledger: Arc<SendLedger>) {
        let _ = self.ledger.set(ledger);
    }

    /// Sends a message built from parts (SES SendEmail with Simple content) to its To, Cc and Bcc
    /// recipients. Mail faults apply. Returns once the outbox holds it (without a delay fault); the
    /// other sinks get it in the background.
    pub fn send_message(&self, message: SimpleMessage<'_>) {
        let recipients = message.to.iter().chain(message.cc).chain(message.bcc).cloned().collect::<Vec<_>>();
        self.send(Letter {
            id: Some(message.id.to_string()),
            envelope_from: bare_address(message.from).to_string(),
            from_header: message.from.to_string(),
            recipients,
            to: message.to.to_vec(),
            cc: message.cc.to_vec(),
            reply_to: message.reply_to.to_vec(),
            subject: message.subject.to_string(),
            text: message.text.map(str::to_string),
            html: message.html.map(str::to_string),
            raw: None,
        });
    }

    /// Sends a ready MIME message (SES SendRawEmail) unchanged to every address in `recipients`, under
    /// message id `id`, with envelope sender `from` (a display name is dropped). The outbox entry's Subject and Body come from the parsed
    /// message. Delivery as `send_message`.
    pub fn send_raw(&self, id: &str, from: &str, recipients: &[String], raw: Vec<u8>) {
        let parsed = mail_parser::MessageParser::default().parse(&raw);
        let part = |f: fn(&mail_parser::Message<'_>) -> Option<String>| parsed.as_ref().and_then(f);
        let subject = part(|m| m.subject().map(str::to_string)).unwrap_or_default();
        let text = part(|m| m.body_text(0).map(|t| t.into_owned()));
        let html = part(|m| m.body_html(0).map(|t| t.into_owned()));
        self.send(Letter {
            id: Some(id.to_string()),
            envelope_from: bare_address(from).to_string(),
            from_header: from.to_string(),
            recipients: recipients.to_vec(),
            to: Vec::new(),
            cc: Vec::new(),
            reply_to: Vec::new(),
            subject,
            text,
            html,
            raw: Some(raw),
        });
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
        self.send_code_mail(to, MailContent { subject: self.subject.clone(), text, html });
    }

    /// Mails a native (EMAIL_OTP) `code` to `to` with the pool's template: `{####}` in `message` becomes
    /// the code, in the text part and (escaped) in the HTML part. Delivery as `send_code`.
    pub fn send_template_code(&self, to: &str, code: &str, subject: &str, message: &str) {
        let text = message.replace("{####}", code);
        let html = format!("<html><body><p>{}</p></body></html>", escape_html(message).replace("{####}", code));
        self.send_code_mail(to, MailContent { subject: subject.to_string(), text, html });
    }

    /// Code mail: counted as generated (and as one recipient sent through SES, when it counts), then sent.
    fn send_code_mail(&self, to: &str, content: MailContent) {
        self.stats.generated.fetch_add(1, Ordering::Relaxed);
        if let Some(ledger) = self.ledger.get() {
            ledger.record(1);
        }
        let MailContent { subject, text, html } = content;
        self.send(Letter {
            id: None,
            envelope_from: self.from.clone(),
            from_header: self.from.clone(),
            recipients: vec![to.to_string()],
            to: vec![to.to_string()],
            cc: Vec::new(),
            reply_to: Vec::new(),
            subject,
            text: Some(text),
            html: Some(html),
            raw: None,
        });
    }

    fn send(&self, letter: Letter) {
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
        let mails: Vec<CodeMail> = match (0..copies).map(|copy| self.build(&letter, copy == 0)).collect() {
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
                    outbox.push(outbox_entry(&self.region, mail));
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
        let from = letter.envelope_from;
        let region = self.region.clone();
        tokio::spawn(async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            for mail in mails {
                if let Some(outbox) = &outbox_later {
                    outbox.push(outbox_entry(&region, &mail));
                }
                // One delivery per recipient (code mail has one).
                if let Some((relay, permits)) = &relay {
                    for to in &mail.to {
                        let _permit = permits.acquire().await;
                        match relay::deliver(relay.protocol, &relay.host, relay.port, &from, to, &mail.raw).await {
                            Ok(()) => stats.relayed.fetch_add(1, Ordering::Relaxed),
                            Err(e) => {
                                tracing::warn!(error = %format!("{e:#}"), "relay delivery failed");
                                stats.relay_failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                }
                if let Some(s3) = &s3 {
                    let to = mail.to.first().map_or("", String::as_str);
                    match s3.store(&mail.id, &from, to, &mail.date_rfc822, &mail.raw).await {
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

    /// Builds one copy of `letter`: the first keeps the letter's id, other copies (duplicates) get
    /// their own.
    fn build(&self, letter: &Letter, first: bool) -> anyhow::Result<CodeMail> {
        let id = match (&letter.id, first) {
            (Some(id), true) => id.clone(),
            _ => rand::rng().sample_iter(Alphanumeric).take(40).map(|c| char::from(c).to_ascii_lowercase()).collect(),
        };
        let now = SystemTime::now();
        let epoch = now.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let date = mail_builder::headers::date::Date::new(epoch);
        let date_rfc822 = date.to_rfc822();
        let raw = match &letter.raw {
            Some(raw) => raw.clone(),
            None => {
                let domain = letter.envelope_from.rsplit_once('@').map_or("otp-harness.test", |(_, d)| d);
                let mut builder = MessageBuilder::new().from(header_address(&letter.from_header));
                builder = match letter.to.as_slice() {
                    [one] => builder.to(one.as_str()),
                    [] => builder,
                    many => builder.to(many.iter().map(String::as_str).collect::<Vec<_>>()),
                };
                builder = builder
                    .subject(letter.subject.as_str())
                    .date(date)
                    .message_id(MessageId::new(format!("{}@{domain}", uuid::Uuid::new_v4())));
                if !letter.cc.is_empty() {
                    builder = builder.cc(letter.cc.iter().map(String::as_str).collect::<Vec<_>>());
                }
                if !letter.reply_to.is_empty() {
                    builder = builder.reply_to(letter.reply_to.iter().map(String::as_str).collect::<Vec<_>>());
                }
                match (&letter.text, &letter.html) {
                    (text, Some(html)) => {
                        if let Some(text) = text {
                            builder = builder.text_body(text.as_str());
                        }
                        builder = builder.html_body(html.as_str());
                    }
                    (text, None) => builder = builder.text_body(text.as_deref().unwrap_or("")),
                }
                builder.write_to_vec()?
            }
        };
        Ok(CodeMail {
            id,
            from: letter.from_header.clone(),
            to: letter.recipients.clone(),
            subject: letter.subject.clone(),
            text: letter.text.clone(),
            html: letter.html.clone(),
            date_rfc822,
            timestamp: humantime::format_rfc3339_millis(now).to_string(),
            raw: Arc::new(raw),
        })
    }
}

/// The address in `Name <a@b.test>`, or the text itself.
pub fn bare_address(text: &str) -> &str {
    match (text.rfind('<'), text.rfind('>')) {
        (Some(open), Some(close)) if open < close => text[open + 1..close].trim(),
        _ => text.trim(),
    }
}

/// A `From` header value: `Name <a@b.test>` as name and address, anything else as an address.
fn header_address(text: &str) -> mail_builder::headers::address::Address<'_> {
    let address = bare_address(text);
    match text.rfind('<') {
        Some(open) if address != text.trim() => {
            let name = text[..open].trim().trim_matches('"');
            if name.is_empty() { address.into() } else { (name, address).into() }
        }
        _ => address.into(),
    }
}

/// The outbox's view of a mail: every recipient (To, Cc, Bcc) in ToAddresses, so that a reader looking
/// for mail to one address finds it.
fn outbox_entry(region: &str, mail: &CodeMail) -> OutboxMessage {
    OutboxMessage {
        id: mail.id.clone(),
        region: region.to_string(),
        destination: Destination { to_addresses: mail.to.clone() },
        source: mail.from.clone(),
        subject: mail.subject.clone(),
        body: Body { text_part: mail.text.clone(), html_part: mail.html.clone() },
        timestamp: mail.timestamp.clone(),
        raw_data: String::from_utf8_lossy(&mail.raw).into_owned(),
    }
}
