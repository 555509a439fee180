//! The outbox source: polls `GET …/_aws/ses` (the local pool's, or LocalStack's: same shape). Asks for
//! messages after the last one seen (`?after=`, which the local pool honours and LocalStack ignores;
//! ids are de-duplicated either way).

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{Extractor, Mailroom, SeenIds, SourceError, deliver};
use crate::background::CancellationToken;

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
}

impl OutboxWatcher {
    /// Reads the outbox once: it must answer, and what it holds now is old mail.
    pub async fn connect(url: String, interval: Duration, extractor: Extractor) -> Result<Self, SourceError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| SourceError::new("outbox", e.to_string()))?;
        let mut watcher = Self { url, interval, extractor, client, seen: SeenIds::default(), last_id: None };
        let existing = watcher.fetch().await.map_err(|e| SourceError::new("outbox", e))?;
        for message in existing {
            watcher.seen.insert(&message.id);
            watcher.last_id = Some(message.id);
        }
        Ok(watcher)
    }

    async fn fetch(&self) -> Result<Vec<Message>, String> {
        let mut request = self.client.get(&self.url);
        if let Some(after) = &self.last_id {
            request = request.query(&[("after", after)]);
        }
        let response = request.send().await.map_err(|e| format!("{} unreachable: {e}", self.url))?;
        if !response.status().is_success() {
            return Err(format!("{} answered {}", self.url, response.status()));
        }
        let listing: Listing =
            response.json().await.map_err(|e| format!("{} is not an outbox listing: {e}", self.url))?;
        Ok(listing.messages)
    }

    /// Polls until stopped.
    pub async fn run(mut self, mailroom: Arc<Mailroom>, stop: CancellationToken) {
        let mut failing = false;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
            match self.fetch().await {
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
                        deliver(&mailroom, extracted);
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
