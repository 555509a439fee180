//! OTP sources: where the harness reads the codes the pool mails — an IMAP inbox, the S3 bucket of an
//! SES receipt rule, or an outbox (`/_aws/ses` of the local pool or LocalStack). Each source runs one
//! watcher that parses new mail and feeds the shared `Mailroom`; virtual users wait there for the
//! code of *their* sign-in.

pub mod extract;
pub mod imap;
pub mod imap_auth;
pub mod mailroom;
pub mod outbox;
pub mod s3;
pub mod s3_event;
pub mod sqs;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use tokio::task::JoinHandle;

pub use extract::Extractor;
pub use mailroom::{Delivery, MailCounts, Mailroom, WaitError};

use crate::background::{self, CancellationToken};
use crate::cognito::ResolvedTarget;
use crate::scenario::{Otp, OtpSourceKind, Users};

/// The source could not be reached or set up: the run cannot happen (exit 3).
#[derive(Debug, thiserror::Error)]
#[error("{source_kind} source: {message}")]
pub struct SourceError {
    pub source_kind: &'static str,
    pub message: String,
}

impl SourceError {
    pub fn new(source_kind: &'static str, message: impl Into<String>) -> Self {
        Self { source_kind, message: message.into() }
    }
}

/// A running source: its watcher task and the mailroom it fills.
pub struct OtpSource {
    mailroom: Arc<Mailroom>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl OtpSource {
    /// Connects (a failure here is a `SourceError`), notes what is already there as old, and starts
    /// watching. `local_outbox` is the embedded pool's outbox address, the default for `outbox`.
    /// Only code mail to `users` is taken (and deleted or flagged); mail to anyone else is left as it was.
    pub async fn start(
        otp: &Otp,
        target: &ResolvedTarget,
        local_outbox: Option<&str>,
        users: &Users,
    ) -> Result<Self, SourceError> {
        let extractor = Extractor::new(&otp.pattern(), otp.from.as_deref())
            .map_err(|e| SourceError::new("otp", format!("bad code pattern: {e}")))?;
        let mailroom = Arc::new(Mailroom::for_users(users.clone()));
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let task = match otp.source {
            OtpSourceKind::Outbox => {
                let url = otp.outbox.url.clone().or_else(|| local_outbox.map(str::to_string)).ok_or_else(|| {
                    SourceError::new(
                        "outbox",
                        "no outbox address: set otp.outbox.url (the local pool's sink may be off)",
                    )
                })?;
                let watcher = outbox::OutboxWatcher::connect(url, otp.outbox.poll_interval, extractor).await?;
                tokio::spawn(watcher.run(Arc::clone(&mailroom), stopped))
            }
            OtpSourceKind::S3 => {
                let options = otp.s3.clone().ok_or_else(|| SourceError::new("s3", "[otp.s3] is missing"))?;
                if options.queue_url.is_some() {
                    // The push path: S3 event notifications from an SQS queue, no listing.
                    let watcher = sqs::SqsWatcher::connect(options, &target.region, extractor).await?;
                    return Ok(Self {
                        task: tokio::spawn(watcher.run(Arc::clone(&mailroom), stopped)),
                        mailroom,
                        stop,
                    });
                }
                let prefixes = options.all_prefixes();
                let mut tasks = Vec::with_capacity(prefixes.len());
                for prefix in prefixes {
                    let one = crate::scenario::S3Options { prefix, prefixes: Vec::new(), ..options.clone() };
                    let watcher = s3::S3Watcher::connect(one, &target.region, extractor.clone()).await?;
                    tasks.push(tokio::spawn(watcher.run(Arc::clone(&mailroom), stopped.clone())));
                }
                tokio::spawn(async move {
                    for task in tasks {
                        let _ = task.await;
                    }
                })
            }
            OtpSourceKind::Imap => {
                let options = otp.imap.clone().ok_or_else(|| SourceError::new("imap", "[otp.imap] is missing"))?;
                let count = options.connections.max(1);
                let mut tasks = Vec::with_capacity(count);
                for index in 0..count {
                    let watcher =
                        imap::ImapWatcher::connect(options.clone(), extractor.clone()).await?.with_shard(index, count);
                    tasks.push(tokio::spawn(watcher.run(Arc::clone(&mailroom), stopped.clone())));
                }
                tokio::spawn(async move {
                    for task in tasks {
                        let _ = task.await;
                    }
                })
            }
        };
        Ok(Self { mailroom, stop, task })
    }

    pub fn mailroom(&self) -> &Arc<Mailroom> {
        &self.mailroom
    }

    /// Stops the watcher and waits for it (5 s at most, then it is aborted).
    pub async fn stop(self) {
        background::finish(&self.stop, self.task, std::time::Duration::from_secs(5)).await;
    }
}

/// Remembers the last N ids seen, to skip mail already ingested.
#[derive(Debug)]
pub(crate) struct SeenIds {
    set: HashSet<String>,
    order: VecDeque<String>,
}

impl Default for SeenIds {
    /// Sized up front for twice the ids kept, so removals never make the set grow mid-run.
    fn default() -> Self {
        Self { set: HashSet::with_capacity(2 * Self::CAPACITY), order: VecDeque::with_capacity(Self::CAPACITY + 1) }
    }
}

impl SeenIds {
    const CAPACITY: usize = 100_000;

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    /// True if `id` is new (and remembers it).
    pub(crate) fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        self.set.insert(id.to_string());
        self.order.push_back(id.to_string());
        if self.order.len() > Self::CAPACITY
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

/// Feeds one parsed mail to the mailroom; true if it carried a code (false: unrelated mail, left alone).
pub fn deliver(mailroom: &Mailroom, extracted: Option<extract::Extracted>) -> bool {
    deliver_dated(mailroom, extracted, None)
}

/// As `deliver`, for a mail the source dates (`arrived`: when it existed there, to the millisecond or
/// better), so the harness's pickup time is measured.
pub fn deliver_dated(
    mailroom: &Mailroom,
    extracted: Option<extract::Extracted>,
    arrived: Option<std::time::SystemTime>,
) -> bool {
    sort(mailroom, extracted, arrived) == Sorted::Ours
}

/// Whose a mail was, once the mailroom has seen it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sorted {
    /// A code mail to this run's test users: taken (the source deletes or flags it as configured).
    Ours,
    /// A code mail to another run's or worker's users (a shared inbox): left as it was.
    Others,
    /// No code for the harness (unrelated mail, another sender): left as it was.
    Ignored,
}

/// Feeds one parsed mail to the mailroom (dated as in `deliver_dated`) and says whose it was.
pub fn sort(
    mailroom: &Mailroom,
    extracted: Option<extract::Extracted>,
    arrived: Option<std::time::SystemTime>,
) -> Sorted {
    match extracted {
        Some(extract::Extracted { recipients, code: Some(code), .. }) if !recipients.is_empty() => {
            if !mailroom.is_ours(&recipients) {
                // A shared inbox: another run's or another worker's code, not ours to read or touch.
                mailroom.count_others();
                return Sorted::Others;
            }
            mailroom.ingest_at(&recipients, &code, arrived);
            Sorted::Ours
        }
        _ => {
            mailroom.ignore();
            Sorted::Ignored
        }
    }
}
