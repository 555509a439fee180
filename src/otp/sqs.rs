//! The S3 source's push path: the bucket's S3 event notifications (ObjectCreated), delivered to an SQS
//! queue directly or through SNS, long-polled (ReceiveMessage, 20 s waits, 10 messages) instead of
//! listing a busy prefix. Each new object under the watched prefixes is fetched, parsed and handed to
//! the mailroom like a listed one, dated by the event's `eventTime` (milliseconds) for `otp_pickup`;
//! then the object is deleted or kept (`after_read`) and the messages deleted in one batch.
//!
//! What happens to each message:
//! - an event for a new object under the prefixes: read; the message is deleted — unless the mail is
//!   another run's code mail (a queue shared by runs or workers: the object is left and the message
//!   returned to the queue after 1 s for its owner) or the object could not be read (returned, read
//!   again after 1 s; an object already gone is done);
//! - `s3:TestEvent`, other event types (ObjectRemoved…), objects in another bucket or outside the
//!   prefixes, and events dated more than 30 s before the source started (a previous run's
//!   leftovers: the object is left as it was): deleted, nothing read;
//! - a message that is no S3 event notification: logged once (its id and what is wrong, never its
//!   content) and left in the queue, where a redrive policy moves it to a dead-letter queue.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry, Message};
use parking_lot::Mutex;

use super::s3_event::{self, S3Message, S3Record};
use super::{Extractor, Mailroom, SeenIds, Sorted, SourceError, sort};
use crate::background::CancellationToken;
use crate::scenario::{AfterRead, S3Options};

/// The longest long poll SQS allows (seconds).
pub const WAIT_SECONDS: i32 = 20;
/// The most messages one ReceiveMessage returns.
const MAX_MESSAGES: i32 = 10;
/// A message to be looked at again (another run's mail, an object that could not be read) becomes
/// visible again after this many seconds.
const RETURN_AFTER_SECONDS: i32 = 1;
/// Events dated this much before the source started are a previous run's leftovers.
const STALE: Duration = Duration::from_secs(30);
/// After a failed receive, the next one waits this long.
const BACKOFF: Duration = Duration::from_secs(1);

/// Where a queue's requests go, from its URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueAddress {
    /// The queue's name (the URL's last segment).
    pub name: String,
    /// An AWS queue's region (`sqs.REGION.amazonaws.com`, `REGION.queue.amazonaws.com`).
    pub region: Option<String>,
    /// Another server's address (an emulator): its scheme, host and port. None for AWS, whose
    /// endpoint the SDK resolves from the region.
    pub endpoint: Option<String>,
}

impl QueueAddress {
    /// Reads a queue URL (its shape is checked when the scenario loads).
    pub fn of(queue_url: &str) -> Result<Self, String> {
        crate::scenario::check_queue_url(queue_url).map_err(|(message, _)| format!("queue_url {message}"))?;
        let url = reqwest::Url::parse(queue_url).map_err(|e| format!("queue_url is not a URL: {e}"))?;
        let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
        let name = url.path().trim_matches('/').rsplit('/').next().unwrap_or_default().to_string();
        let aws = host.ends_with(".amazonaws.com") || host.ends_with(".amazonaws.com.cn");
        if aws {
            let labels: Vec<&str> = host.split('.').collect();
            let region = match labels.as_slice() {
                ["sqs", region, ..] => Some(region.to_string()),
                [region, "queue", ..] => Some(region.to_string()),
                _ => None,
            };
            return Ok(Self { name, region, endpoint: None });
        }
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        let host = url.host_str().unwrap_or_default();
        Ok(Self { name, region: None, endpoint: Some(format!("{}://{host}{port}", url.scheme())) })
    }
}

/// Watches the queue with `receivers` long polls at once.
pub struct SqsWatcher {
    shared: Arc<Shared>,
    receivers: usize,
}

struct Shared {
    s3: aws_sdk_s3::Client,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    queue_name: String,
    bucket: String,
    prefixes: Vec<String>,
    after_read: AfterRead,
    extractor: Extractor,
    started: SystemTime,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Keys read, found gone, or older than the run: nothing more to do.
    done: SeenIds,
    /// Keys being read right now (by another message about the same object).
    reading: HashSet<String>,
    /// Keys holding another run's code mail: not fetched again.
    others: SeenIds,
    /// Messages that are no S3 event, already logged.
    refused: SeenIds,
    warned_others: bool,
    fetch_failing: bool,
}

/// What becomes of one SQS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disposition {
    /// Done with: deleted from the queue.
    Delete,
    /// To be looked at again soon: visible again after `RETURN_AFTER_SECONDS`.
    Return,
    /// Not understood: left as it is.
    Leave,
}

/// What became of one record.
enum RecordOutcome {
    Done,
    Again,
}

impl SqsWatcher {
    /// Builds the clients (standard credential chain, as the listing mode) and asks the queue for its
    /// attributes: it must exist and answer.
    pub async fn connect(options: S3Options, target_region: &str, extractor: Extractor) -> Result<Self, SourceError> {
        let shared = super::s3::aws_config(&options, target_region).await;
        Self::with_config(options, &shared, extractor).await
    }

    /// As `connect`, with the AWS configuration given (benchmarks: static credentials).
    pub async fn with_config(
        options: S3Options,
        shared: &aws_config::SdkConfig,
        extractor: Extractor,
    ) -> Result<Self, SourceError> {
        let queue_url = options
            .queue_url
            .clone()
            .ok_or_else(|| SourceError::new("s3", "[otp.s3] queue_url is missing for the SQS push path"))?;
        let address = QueueAddress::of(&queue_url).map_err(|e| SourceError::new("s3", e))?;
        let sqs = sqs_client(shared, &address);
        sqs.get_queue_attributes()
            .queue_url(&queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| SourceError::new("s3", format!("SQS queue {queue_url}: {}", DisplayErrorContext(&e))))?;
        let watcher = Self {
            shared: Arc::new(Shared {
                s3: super::s3::s3_client(shared, &options),
                sqs,
                queue_url,
                queue_name: address.name,
                bucket: options.bucket.clone(),
                prefixes: options.all_prefixes(),
                after_read: options.after_read,
                extractor,
                started: SystemTime::now(),
                state: Mutex::new(State::default()),
            }),
            receivers: options.queue_receivers.clamp(1, 16),
        };
        Ok(watcher)
    }

    /// How the source learns of new mail, for summary.json's `mail.mode`.
    pub fn mode_note(&self) -> String {
        format!(
            "sqs: S3 event notifications long-polled from queue {} ({WAIT_SECONDS} s waits, {} receiver{})",
            self.shared.queue_name,
            self.receivers,
            if self.receivers == 1 { "" } else { "s" }
        )
    }

    /// Receives until stopped: `receivers` long polls, each handling its messages before polling again.
    pub async fn run(self, mailroom: Arc<Mailroom>, stop: CancellationToken) {
        mailroom.set_mode(self.mode_note());
        let loops = (0..self.receivers).map(|_| self.shared.receive_loop(&mailroom, &stop));
        futures::future::join_all(loops).await;
    }
}

/// The SQS client: the queue's own server for an emulator, the queue's region for AWS; every attempt
/// bounded (a long poll answers within `WAIT_SECONDS`).
fn sqs_client(shared: &aws_config::SdkConfig, address: &QueueAddress) -> aws_sdk_sqs::Client {
    let timeouts = shared
        .timeout_config()
        .map(|t| t.to_builder())
        .unwrap_or_default()
        .operation_attempt_timeout(Duration::from_secs(WAIT_SECONDS as u64 + 10))
        .build();
    let mut builder = aws_sdk_sqs::config::Builder::from(shared).timeout_config(timeouts);
    builder.set_endpoint_url(address.endpoint.clone());
    if let Some(region) = &address.region {
        builder = builder.region(aws_sdk_sqs::config::Region::new(region.clone()));
    }
    aws_sdk_sqs::Client::from_conf(builder.build())
}

impl Shared {
    async fn receive_loop(&self, mailroom: &Mailroom, stop: &CancellationToken) {
        let mut failing = false;
        loop {
            mailroom.count_request();
            let received = tokio::select! {
                _ = stop.cancelled() => return,
                received = self.receive() => received,
            };
            match received {
                Ok(messages) => {
                    if failing {
                        mailroom.count_reconnect();
                        failing = false;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = self.handle_batch(messages, mailroom) => {}
                    }
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "SQS receive failed; retrying every second");
                    }
                    failing = true;
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(BACKOFF) => {}
                    }
                }
            }
        }
    }

    async fn receive(&self) -> Result<Vec<Message>, String> {
        let output = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(MAX_MESSAGES)
            .wait_time_seconds(WAIT_SECONDS)
            .send()
            .await
            .map_err(|e| format!("receiving from SQS queue {}: {}", self.queue_name, DisplayErrorContext(&e)))?;
        Ok(output.messages.unwrap_or_default())
    }

    /// Handles every message of one receive (at once), then deletes those done with and returns those
    /// to look at again.
    async fn handle_batch(&self, messages: Vec<Message>, mailroom: &Mailroom) {
        if messages.is_empty() {
            return;
        }
        let dispositions =
            futures::future::join_all(messages.iter().map(|message| self.handle_message(message, mailroom))).await;
        let mut delete = Vec::new();
        let mut again = Vec::new();
        for (message, disposition) in messages.iter().zip(dispositions) {
            let Some(handle) = message.receipt_handle() else { continue };
            match disposition {
                Disposition::Delete => delete.push(handle),
                Disposition::Return => again.push(handle),
                Disposition::Leave => {}
            }
        }
        tokio::join!(self.delete_messages(&delete), self.return_messages(&again));
    }

    async fn handle_message(&self, message: &Message, mailroom: &Mailroom) -> Disposition {
        let id = message.message_id().unwrap_or("(no id)");
        let records = match s3_event::parse(message.body().unwrap_or_default()) {
            Ok(S3Message::TestEvent) => {
                tracing::debug!(queue = %self.queue_name, "S3's test event: the notification configuration works");
                return Disposition::Delete;
            }
            Ok(S3Message::Records(records)) => records,
            Err(reason) => {
                if self.state.lock().refused.insert(id) {
                    mailroom.ignore();
                    tracing::warn!(
                        queue = %self.queue_name,
                        message_id = id,
                        reason = %reason,
                        "an SQS message that is no S3 event notification was left in the queue \
                         (a redrive policy moves it to a dead-letter queue)"
                    );
                }
                return Disposition::Leave;
            }
        };
        let mut disposition = Disposition::Delete;
        for record in records {
            if let RecordOutcome::Again = self.handle_record(record, mailroom).await {
                disposition = Disposition::Return;
            }
        }
        disposition
    }

    fn watches(&self, record: &S3Record) -> bool {
        record.is_object_created()
            && record.bucket == self.bucket
            && self.prefixes.iter().any(|prefix| record.key.starts_with(prefix.as_str()))
    }

    async fn handle_record(&self, record: S3Record, mailroom: &Mailroom) -> RecordOutcome {
        if !self.watches(&record) {
            return RecordOutcome::Done;
        }
        let key = record.key;
        {
            let mut state = self.state.lock();
            if record.event_time.is_some_and(|at| at + STALE < self.started) {
                state.done.insert(&key);
                return RecordOutcome::Done;
            }
            if state.done.contains(&key) || state.reading.contains(&key) {
                return RecordOutcome::Done;
            }
            if state.others.contains(&key) {
                return RecordOutcome::Again;
            }
            state.reading.insert(key.clone());
        }
        let fetched = self.fetch(&key).await;
        let outcome = match fetched {
            Ok(raw) => {
                self.state.lock().fetch_failing = false;
                match sort(mailroom, self.extractor.extract(&raw), record.event_time) {
                    Sorted::Ours => {
                        self.dispose(&key).await;
                        self.state.lock().done.insert(&key);
                        RecordOutcome::Done
                    }
                    Sorted::Ignored => {
                        self.state.lock().done.insert(&key);
                        RecordOutcome::Done
                    }
                    Sorted::Others => {
                        let first = {
                            let mut state = self.state.lock();
                            state.others.insert(&key);
                            !std::mem::replace(&mut state.warned_others, true)
                        };
                        if first {
                            tracing::warn!(
                                queue = %self.queue_name,
                                "the queue carries S3 events for another run's or worker's test users; they are \
                                 returned to the queue, but each run (or worker) needs a queue of its own"
                            );
                        }
                        RecordOutcome::Again
                    }
                }
            }
            Err(Fetch::Gone) => {
                self.state.lock().done.insert(&key);
                RecordOutcome::Done
            }
            Err(Fetch::Failed(e)) => {
                if !std::mem::replace(&mut self.state.lock().fetch_failing, true) {
                    tracing::warn!(error = %e, "S3 mail could not be read; its event is returned to the queue");
                }
                RecordOutcome::Again
            }
        };
        self.state.lock().reading.remove(&key);
        outcome
    }

    async fn fetch(&self, key: &str) -> Result<Vec<u8>, Fetch> {
        let object = self.s3.get_object().bucket(&self.bucket).key(key).send().await.map_err(|e| {
            if e.as_service_error().is_some_and(|s| s.is_no_such_key()) {
                Fetch::Gone
            } else {
                Fetch::Failed(format!("getting {key}: {}", DisplayErrorContext(&e)))
            }
        })?;
        let bytes = object.body.collect().await.map_err(|e| Fetch::Failed(format!("reading {key}: {e}")))?.into_bytes();
        Ok(bytes.to_vec())
    }

    /// Deletes a code mail once read, when asked to.
    async fn dispose(&self, key: &str) {
        if self.after_read == AfterRead::Delete
            && let Err(e) = self.s3.delete_object().bucket(&self.bucket).key(key).send().await
        {
            tracing::warn!(error = %DisplayErrorContext(&e), "could not delete a read mail from S3");
        }
    }

    async fn delete_messages(&self, handles: &[&str]) {
        if handles.is_empty() {
            return;
        }
        let entries = handles
            .iter()
            .enumerate()
            .filter_map(|(i, handle)| {
                DeleteMessageBatchRequestEntry::builder().id(format!("m{i}")).receipt_handle(*handle).build().ok()
            })
            .collect();
        match self.sqs.delete_message_batch().queue_url(&self.queue_url).set_entries(Some(entries)).send().await {
            Ok(output) if !output.failed().is_empty() => {
                let codes: Vec<&str> = output.failed().iter().map(|f| f.code()).collect();
                tracing::warn!(queue = %self.queue_name, failed = ?codes, "SQS did not delete some handled messages");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %DisplayErrorContext(&e), "could not delete handled SQS messages"),
        }
    }

    async fn return_messages(&self, handles: &[&str]) {
        if handles.is_empty() {
            return;
        }
        let entries = handles
            .iter()
            .enumerate()
            .filter_map(|(i, handle)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .receipt_handle(*handle)
                    .visibility_timeout(RETURN_AFTER_SECONDS)
                    .build()
                    .ok()
            })
            .collect();
        if let Err(e) = self
            .sqs
            .change_message_visibility_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            tracing::warn!(error = %DisplayErrorContext(&e), "could not return SQS messages to the queue");
        }
    }
}

/// Why an object was not read.
enum Fetch {
    /// It no longer exists (already read and deleted).
    Gone,
    Failed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_url_says_where_its_requests_go() {
        let aws = QueueAddress::of("https://sqs.eu-west-1.amazonaws.com/123456789012/otp-mail").expect("aws");
        assert_eq!(aws, QueueAddress { name: "otp-mail".into(), region: Some("eu-west-1".into()), endpoint: None });
        let legacy = QueueAddress::of("https://us-east-2.queue.amazonaws.com/123456789012/q").expect("legacy");
        assert_eq!(legacy.region.as_deref(), Some("us-east-2"));
        let china = QueueAddress::of("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q").expect("china");
        assert_eq!((china.region.as_deref(), china.endpoint), (Some("cn-north-1"), None));
        let moto = QueueAddress::of("http://127.0.0.1:5791/123456789012/mail-events").expect("moto");
        assert_eq!(
            moto,
            QueueAddress { name: "mail-events".into(), region: None, endpoint: Some("http://127.0.0.1:5791".into()) }
        );
        let localstack =
            QueueAddress::of("http://sqs.us-east-1.localhost.localstack.cloud:4566/000000000000/q").expect("ls");
        assert_eq!(localstack.endpoint.as_deref(), Some("http://sqs.us-east-1.localhost.localstack.cloud:4566"));
        assert!(QueueAddress::of("arn:aws:sqs:us-east-1:123456789012:q").is_err());
    }
}
