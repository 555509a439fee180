//! The in-memory outbox: every mail the pool sent, served at `GET /_aws/ses` in LocalStack's shape so
//! that tools written for LocalStack's SES read it unchanged. Bounded: the oldest mail goes first.
//! Two extensions LocalStack lacks: `after` (only what came after a message id) and `wait` (a read that
//! answers as soon as a matching message exists, so a reader has a code within a round trip of the
//! pool's hand-off instead of within a polling interval); each listed message also carries
//! `InsertedAtMicros`, when the outbox got it (µs since the Unix epoch).

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::Notify;

/// One sent mail, as LocalStack's `/_aws/ses` lists it (plus `RawData`, the MIME message).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct OutboxMessage {
    pub id: String,
    pub region: String,
    pub destination: Destination,
    pub source: String,
    pub subject: String,
    pub body: Body,
    /// RFC 3339 UTC, millisecond precision.
    pub timestamp: String,
    pub raw_data: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Destination {
    pub to_addresses: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Body {
    pub text_part: Option<String>,
    pub html_part: Option<String>,
}

/// What a reader asks the outbox for.
#[derive(Debug, Clone, Default)]
pub struct OutboxQuery {
    /// One message by id.
    pub id: Option<String>,
    /// Messages from this sender (LocalStack's `email` parameter).
    pub source: Option<String>,
    /// Messages to this recipient (case-insensitive).
    pub to: Option<String>,
    /// Only messages after the one with this id (all of them if that id is gone). Not in LocalStack.
    pub after: Option<String>,
}

impl OutboxQuery {
    fn matches(&self, m: &OutboxMessage) -> bool {
        self.id.as_ref().is_none_or(|id| &m.id == id)
            && self.source.as_ref().is_none_or(|s| &m.source == s)
            && self.to.as_ref().is_none_or(|to| m.destination.to_addresses.iter().any(|a| a.eq_ignore_ascii_case(to)))
    }
}

/// One message as listed: the message in LocalStack's shape, and when the outbox got it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    #[serde(flatten)]
    pub message: OutboxMessage,
    /// When the outbox got the message, in µs since the Unix epoch (not in LocalStack).
    #[serde(rename = "InsertedAtMicros")]
    pub inserted_at_micros: u64,
}

/// The longest a `wait` read is held open.
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// A bounded, ordered store of sent mail.
#[derive(Debug)]
pub struct Outbox {
    capacity: usize,
    messages: Mutex<VecDeque<Listed>>,
    /// Woken at every new message, for `wait` reads.
    arrived: Notify,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Self { capacity, messages: Mutex::new(VecDeque::new()), arrived: Notify::new() }
    }

    pub fn push(&self, message: OutboxMessage) {
        let inserted_at_micros = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64);
        {
            let mut messages = self.messages.lock();
            if messages.len() >= self.capacity {
                messages.pop_front();
            }
            messages.push_back(Listed { message, inserted_at_micros });
        }
        self.arrived.notify_waiters();
    }

    /// Matching messages, oldest first.
    pub fn list(&self, query: &OutboxQuery) -> Vec<OutboxMessage> {
        self.list_entries(query).into_iter().map(|l| l.message).collect()
    }

    /// Matching messages with their insertion times, oldest first.
    pub fn list_entries(&self, query: &OutboxQuery) -> Vec<Listed> {
        let messages = self.messages.lock();
        // Searched from the newest end: a reader that keeps up names one of the last few messages.
        let start = query
            .after
            .as_ref()
            .and_then(|after| messages.iter().rposition(|m| &m.message.id == after))
            .map_or(0, |i| i + 1);
        messages.iter().skip(start).filter(|m| query.matches(&m.message)).cloned().collect()
    }

    /// As `list_entries`, but when nothing matches yet, waits (at most `wait`, capped at `MAX_WAIT`)
    /// for a matching message and answers as soon as one is there; empty if none came in time.
    pub async fn wait_entries(&self, query: &OutboxQuery, wait: Duration) -> Vec<Listed> {
        let deadline = Instant::now() + wait.min(MAX_WAIT);
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let found = self.list_entries(query);
            let now = Instant::now();
            if !found.is_empty() || now >= deadline {
                return found;
            }
            if tokio::time::timeout(deadline - now, arrived).await.is_err() {
                return self.list_entries(query);
            }
        }
    }

    /// The newest message to `to`, searched from the newest end.
    pub fn latest_to(&self, to: &str) -> Option<OutboxMessage> {
        self.messages
            .lock()
            .iter()
            .rev()
            .map(|l| &l.message)
            .find(|m| m.destination.to_addresses.iter().any(|a| a.eq_ignore_ascii_case(to)))
            .cloned()
    }

    /// Removes matching messages; returns how many.
    pub fn remove(&self, query: &OutboxQuery) -> usize {
        let mut messages = self.messages.lock();
        let before = messages.len();
        messages.retain(|m| !query.matches(&m.message));
        before - messages.len()
    }

    pub fn len(&self) -> usize {
        self.messages.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, to: &str) -> OutboxMessage {
        OutboxMessage {
            id: id.into(),
            region: "us-east-1".into(),
            destination: Destination { to_addresses: vec![to.into()] },
            source: "from@x.test".into(),
            subject: "s".into(),
            body: Body { text_part: Some("t".into()), html_part: None },
            timestamp: "2026-11-24T00:00:00.000Z".into(),
            raw_data: String::new(),
        }
    }

    #[test]
    fn the_oldest_message_goes_when_full_and_queries_filter() {
        let outbox = Outbox::new(2);
        outbox.push(message("1", "a@x.test"));
        outbox.push(message("2", "b@x.test"));
        outbox.push(message("3", "A@x.test"));
        let all = outbox.list(&OutboxQuery::default());
        assert_eq!(all.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["2", "3"]);
        let to_a = outbox.list(&OutboxQuery { to: Some("a@x.test".into()), ..Default::default() });
        assert_eq!(to_a.len(), 1);
        let after_2 = outbox.list(&OutboxQuery { after: Some("2".into()), ..Default::default() });
        assert_eq!(after_2.iter().map(|m| m.id.as_str()).collect::<Vec<_>>(), ["3"]);
        let after_gone = outbox.list(&OutboxQuery { after: Some("1".into()), ..Default::default() });
        assert_eq!(after_gone.len(), 2, "an evicted id gives everything");
        assert_eq!(outbox.remove(&OutboxQuery { id: Some("2".into()), ..Default::default() }), 1);
        assert_eq!(outbox.len(), 1);
    }

    #[tokio::test]
    async fn a_wait_read_answers_when_a_matching_message_arrives_and_empty_when_none_does() {
        let outbox = std::sync::Arc::new(Outbox::new(10));
        outbox.push(message("1", "a@x.test"));
        let after_1 = OutboxQuery { after: Some("1".into()), ..Default::default() };
        // Nothing after 1: the read waits, then answers with what arrived (a non-matching one first).
        let writer = std::sync::Arc::clone(&outbox);
        let pusher = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(20)).await;
            writer.push(message("2", "b@x.test"));
            tokio::time::sleep(Duration::from_millis(20)).await;
            writer.push(message("3", "a@x.test"));
        });
        let to_a = OutboxQuery { to: Some("a@x.test".into()), ..after_1.clone() };
        let got = outbox.wait_entries(&to_a, Duration::from_secs(10)).await;
        assert_eq!(got.iter().map(|l| l.message.id.as_str()).collect::<Vec<_>>(), ["3"]);
        assert!(got[0].inserted_at_micros > 0);
        pusher.await.expect("pusher");
        // Something is there already: at once, even with a long wait.
        assert_eq!(outbox.wait_entries(&after_1, Duration::from_secs(60)).await.len(), 2);
        // Nothing comes: empty after the wait.
        let after_3 = OutboxQuery { after: Some("3".into()), ..Default::default() };
        assert!(outbox.wait_entries(&after_3, Duration::from_millis(30)).await.is_empty());
    }

    #[test]
    fn serializes_in_localstack_shape() {
        let json = serde_json::to_value(message("1", "a@x.test")).expect("json");
        assert_eq!(json["Destination"]["ToAddresses"][0], "a@x.test");
        assert_eq!(json["Body"]["text_part"], "t");
        assert!(json.get("Timestamp").is_some() && json.get("Source").is_some() && json.get("Id").is_some());
        let listed =
            serde_json::to_value(Listed { message: message("1", "a@x.test"), inserted_at_micros: 7 }).expect("json");
        assert_eq!((listed["Id"].as_str(), listed["InsertedAtMicros"].as_u64()), (Some("1"), Some(7)));
    }
}
