//! The in-memory outbox: every mail the pool sent, served at `GET /_aws/ses` in LocalStack's shape so
//! that tools written for LocalStack's SES read it unchanged. Bounded: the oldest mail goes first.

use std::collections::VecDeque;

use parking_lot::Mutex;
use serde::Serialize;

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

/// A bounded, ordered store of sent mail.
#[derive(Debug)]
pub struct Outbox {
    capacity: usize,
    messages: Mutex<VecDeque<OutboxMessage>>,
}

impl Outbox {
    pub fn new(capacity: usize) -> Self {
        Self { capacity, messages: Mutex::new(VecDeque::new()) }
    }

    pub fn push(&self, message: OutboxMessage) {
        let mut messages = self.messages.lock();
        if messages.len() >= self.capacity {
            messages.pop_front();
        }
        messages.push_back(message);
    }

    /// Matching messages, oldest first.
    pub fn list(&self, query: &OutboxQuery) -> Vec<OutboxMessage> {
        let messages = self.messages.lock();
        let start =
            query.after.as_ref().and_then(|after| messages.iter().rposition(|m| &m.id == after)).map_or(0, |i| i + 1);
        messages.iter().skip(start).filter(|m| query.matches(m)).cloned().collect()
    }

    /// The newest message to `to`, searched from the newest end.
    pub fn latest_to(&self, to: &str) -> Option<OutboxMessage> {
        self.messages
            .lock()
            .iter()
            .rev()
            .find(|m| m.destination.to_addresses.iter().any(|a| a.eq_ignore_ascii_case(to)))
            .cloned()
    }

    /// Removes matching messages; returns how many.
    pub fn remove(&self, query: &OutboxQuery) -> usize {
        let mut messages = self.messages.lock();
        let before = messages.len();
        messages.retain(|m| !query.matches(m));
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

    #[test]
    fn serializes_in_localstack_shape() {
        let json = serde_json::to_value(message("1", "a@x.test")).expect("json");
        assert_eq!(json["Destination"]["ToAddresses"][0], "a@x.test");
        assert_eq!(json["Body"]["text_part"], "t");
        assert!(json.get("Timestamp").is_some() && json.get("Source").is_some() && json.get("Id").is_some());
    }
}
