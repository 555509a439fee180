//! The outbox source: reads `GET …/_aws/ses` (the local pool's, or LocalStack's: same shape). Asks for
//! messages after the last one seen (`?after=`, which the local pool honours and LocalStack ignores;
//! ids are de-duplicated either way). Whether the outbox can hold a read open until new mail exists
//! (`&wait=`, the local pool's extension) is detected at start, not configured: if it can, the watcher
//! keeps one such read open at all times and has each code within a round trip of the pool's
//! hand-off; if not (LocalStack), it polls every `poll_interval`. Mail is dated by the outbox's
//! `InsertedAtMicros` (the local pool) or `Timestamp` (LocalStack, to the millisecond) for `otp_pickup`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::{Extractor, Mailroom, SeenIds, SourceError, deliver_dated};
use crate::background::CancellationToken;

/// How long one wait-capable read is held open by the outbox before it answers empty.
const WAIT: Duration = Duration::from_secs(5);
/// The header the local pool answers a `wait` read with (`pool::wire::OUTBOX_WAIT_HEADER`).
const WAIT_HEADER: &str = "x-otp-harness-outbox-wait";

#[derive(Deserialize)]
struct Listing {
    messages: Vec<Message>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Message {
    id: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    subject: String,
    destination: Option<Destination>,
    body: Option<Body>,
    raw_data: Option<String>,
    /// When the local pool's outbox got it (µs since the epoch).
    inserted_at_micros: Option<u64>,
    /// RFC 3339 (LocalStack, the local pool): millisecond precision.
    timestamp: Option<String>,
}

impl Message {
    /// When the mail existed in the outbox, as precisely as the outbox says.
    fn arrived(&self) -> Option<SystemTime> {
        if let Some(micros) = self.inserted_at_micros {
            return Some(SystemTime::UNIX_EPOCH + Duration::from_micros(micros));
        }
        let stamp = self.timestamp.as_deref()?;
        // Only a stamp with fractional seconds dates a mail finely enough for `otp_pickup`.
        if !stamp.contains('.') {
            return None;
        }
        humantime::parse_rfc3339_weak(stamp.trim_end_matches('Z')).ok()
    }
}

/// How the watcher learns of new mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxMode {
    /// One read held open by the outbox until mail exists (the local pool).
    Wait,
    /// A read every poll interval (LocalStack).
    Poll,
}

impl OutboxMode {
    pub fn name(self) -> &'static str {
        match self {
            OutboxMode::Wait => "wait",
            OutboxMode::Poll => "poll",
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Destination {
    #[serde(default)]
    to_addresses: Vec<String>,
}

#[derive(Deserialize)]
struct Body {
    text_part: Option<String>,
    html_part: Option<String>,
}

pub struct OutboxWatcher {
    url: String,
    interval: Duration,
    extractor: Extractor,
    client: reqwest::Client,
    seen: SeenIds,
    last_id: Option<String>,
    mode: OutboxMode,
}

impl OutboxWatcher {
    /// Reads the outbox once, asking it to wait no time at all: it must answer, what it holds now is
    /// old mail, and its answer tells whether it can hold a read open (then the watcher waits on it
    /// rather than polling).
    pub async fn connect(url: String, interval: Duration, extractor: Extractor) -> Result<Self, SourceError> {
        let client = reqwest::Client::builder()
            .timeout(WAIT + Duration::from_secs(10))
            .build()
            .map_err(|e| SourceError::new("outbox", e.to_string()))?;
        let mut watcher =
            Self { url, interval, extractor, client, seen: SeenIds::default(), last_id: None, mode: OutboxMode::Poll };
        let (existing, waits) = watcher.fetch(Some(Duration::ZERO)).await.map_err(|e| SourceError::new("outbox", e))?;
        if waits {
            watcher.mode = OutboxMode::Wait;
        }
        for message in existing {
            watcher.seen.insert(&message.id);
            watcher.last_id = Some(message.id);
        }
        Ok(watcher)
    }

    /// Polls even an outbox that can hold reads open (benchmarks: today's and yesterday's way side by
    /// side).
    pub fn polling(mut self) -> Self {
        self.mode = OutboxMode::Poll;
        self
    }

    /// How the watcher learns of new mail (detected at start).
    pub fn mode(&self) -> OutboxMode {
        self.mode
    }

    /// One read; with `wait`, asks the outbox to hold it open until mail exists. Returns the messages
    /// and whether the outbox honoured `wait`.
    async fn fetch(&self, wait: Option<Duration>) -> Result<(Vec<Message>, bool), String> {
        let mut request = self.client.get(&self.url);
        if let Some(after) = &self.last_id {
            request = request.query(&[("after", after)]);
        }
        if let Some(wait) = wait {
            request = request.query(&[("wait", wait.as_millis().to_string())]);
        }
        let response = request.send().await.map_err(|e| format!("{} unreachable: {e}", self.url))?;
        if !response.status().is_success() {
            return Err(format!("{} answered {}", self.url, response.status()));
        }
        let waits = response.headers().contains_key(WAIT_HEADER);
        let body = response.bytes().await.map_err(|e| format!("reading {}: {e}", self.url))?;
        let listing: Listing =
            serde_json::from_slice(&body).map_err(|e| format!("{} is not an outbox listing: {e}", self.url))?;
        Ok((listing.messages, waits))
    }

    /// Watches until stopped: a read held open at all times, or one read per poll interval.
    pub async fn run(mut self, mailroom: Arc<Mailroom>, stop: CancellationToken) {
        mailroom.set_mode(self.mode.name());
        let mut failing = false;
        loop {
            let wait = match self.mode {
                OutboxMode::Wait if !failing => Some(WAIT),
                _ => {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(self.interval) => {}
                    }
                    (self.mode == OutboxMode::Wait).then_some(WAIT)
                }
            };
            mailroom.count_request();
            let fetched = tokio::select! {
                _ = stop.cancelled() => return,
                fetched = self.fetch(wait) => fetched,
            };
            match fetched.map(|(messages, _)| messages) {
                Ok(messages) => {
                    if failing {
                        mailroom.count_reconnect();
                        failing = false;
                    }
                    for message in messages {
                        if !self.seen.insert(&message.id) {
                            continue;
                        }
                        self.last_id = Some(message.id.clone());
                        let arrived = message.arrived();
                        let extracted = match &message.raw_data {
                            Some(raw) => self.extractor.extract(raw.as_bytes()),
                            None => {
                                let to =
                                    message.destination.as_ref().map(|d| d.to_addresses.clone()).unwrap_or_default();
                                let body = message.body.as_ref();
                                Some(self.extractor.extract_parts(
                                    &to,
                                    &message.source,
                                    &message.subject,
                                    body.and_then(|b| b.text_part.as_deref()),
                                    body.and_then(|b| b.html_part.as_deref()),
                                ))
                            }
                        };
                        deliver_dated(&mailroom, extracted, arrived);
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "outbox poll failed; retrying");
                    }
                    failing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(json: serde_json::Value) -> Message {
        serde_json::from_value(json).expect("message")
    }

    #[test]
    fn a_mail_is_dated_by_the_pools_microseconds_or_a_fine_enough_timestamp() {
        let pool = message(serde_json::json!({"Id": "1", "InsertedAtMicros": 1_700_000_000_123_456u64,
            "Timestamp": "2023-11-14T22:13:20.123Z"}));
        let micros = pool.arrived().expect("dated").duration_since(SystemTime::UNIX_EPOCH).expect("after");
        assert_eq!(micros.as_micros(), 1_700_000_000_123_456);
        let localstack = message(serde_json::json!({"Id": "2", "Timestamp": "2023-11-14T22:13:20.123Z"}));
        let ms = localstack.arrived().expect("dated").duration_since(SystemTime::UNIX_EPOCH).expect("after");
        assert_eq!(ms.as_millis(), 1_700_000_000_123);
        // Whole seconds are too coarse for a pickup time.
        assert!(message(serde_json::json!({"Id": "3", "Timestamp": "2023-11-14T22:13:20Z"})).arrived().is_none());
        assert!(message(serde_json::json!({"Id": "4"})).arrived().is_none());
    }
}
