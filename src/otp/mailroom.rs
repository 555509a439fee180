//! The mailroom: every code mail the sources see, per recipient, in the order the mailbox received it.
//! A virtual user takes a mark before its request and then waits for the newest code to its address
//! that arrived after the mark. Mail that lands before the user waits is buffered, not missed; a mail
//! repeating a code already taken (a duplicate, or an old mail arriving late) is only taken if no newer
//! code comes within the settle time, and is then flagged.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::scenario::Users;

/// A code handed to a virtual user.
#[derive(Clone, PartialEq, Eq)]
pub struct Delivery {
    pub code: String,
    /// When the harness saw the mail.
    pub seen_at: Instant,
    /// The code had been taken before (same code mailed again, or a duplicate arriving late).
    pub repeated: bool,
    /// An earlier wait for this address timed out and its mail never showed: this may be that late
    /// mail rather than the one just asked for. A refusal of this code is then no proof of a defect.
    pub uncertain: bool,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("repeated", &self.repeated)
            .field("uncertain", &self.uncertain)
            .finish_non_exhaustive()
    }
}

/// Why no code came.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    #[error("no code mail to {0} arrived within the OTP timeout")]
    Timeout(String),
    #[error("the mail source stopped: {0}")]
    SourceStopped(String),
}

#[derive(Clone)]
struct Arrival {
    seq: u64,
    code: String,
    seen_at: Instant,
}

#[derive(Default)]
struct Inner {
    by_recipient: HashMap<String, VecDeque<Arrival>>,
    /// Codes already handed out, per recipient (newest last).
    taken: HashMap<String, VecDeque<String>>,
    /// Waits that timed out, per recipient, whose mail has not been seen since.
    abandoned: HashMap<String, u32>,
    stopped: Option<String>,
}

/// Counts of what the sources brought in.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MailCounts {
    /// Mails with a code.
    pub code_mails: u64,
    /// Mails without a code for the harness (unrelated mail, other senders).
    pub ignored: u64,
    /// Codes handed out that had been handed out before.
    pub repeated: u64,
    /// Reconnections of the source after a lost connection.
    pub reconnects: u64,
    /// Code mails addressed to users of other runs or workers (a shared inbox): left untouched.
    #[serde(default)]
    pub others: u64,
}

const KEEP_PER_RECIPIENT: usize = 16;

/// Shared between the source's watcher (which ingests) and the virtual users (which wait).
#[derive(Default)]
pub struct Mailroom {
    inner: Mutex<Inner>,
    notify: Notify,
    seq: AtomicU64,
    code_mails: AtomicU64,
    ignored: AtomicU64,
    repeated: AtomicU64,
    reconnects: AtomicU64,
    others: AtomicU64,
    /// The run's test users: code mail to anyone else is another run's (None: every address is ours).
    users: Option<Users>,
}

impl Mailroom {
    /// A mailroom for every address (tests, benchmarks).
    pub fn new() -> Self {
        Self::default()
    }

    /// A mailroom for this run's test users only.
    pub fn for_users(users: Users) -> Self {
        Self { users: Some(users), ..Self::default() }
    }

    /// True if a mail to `recipients` is for this run (and so is the run's to delete or flag).
    pub fn is_ours(&self, recipients: &[String]) -> bool {
        self.users.as_ref().is_none_or(|users| recipients.iter().any(|r| users.owns(r)))
    }

    /// A code mail for another run's users, left as it was.
    pub fn count_others(&self) {
        self.others.fetch_add(1, Ordering::Relaxed);
    }

    /// The mark to take before sending a request that makes the pool mail a code.
    pub fn mark(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// A mail with a code for these recipients, as the mailbox ordered it.
    pub fn ingest(&self, recipients: &[String], code: &str) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let seen_at = Instant::now();
        self.code_mails.fetch_add(1, Ordering::Relaxed);
        {
            let mut inner = self.inner.lock();
            for recipient in recipients {
                let queue = inner.by_recipient.entry(recipient.to_ascii_lowercase()).or_default();
                queue.push_back(Arrival { seq, code: code.to_string(), seen_at });
                if queue.len() > KEEP_PER_RECIPIENT {
                    queue.pop_front();
                }
            }
        }
        self.notify.notify_waiters();
    }

    /// A mail the harness has no use for.
    pub fn ignore(&self) {
        self.ignored.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// The source gave up: waiters fail at once.
    pub fn stop(&self, reason: &str) {
        self.inner.lock().stopped = Some(reason.to_string());
        self.notify.notify_waiters();
    }

    pub fn counts(&self) -> MailCounts {
        MailCounts {
            code_mails: self.code_mails.load(Ordering::Relaxed),
            ignored: self.ignored.load(Ordering::Relaxed),
            repeated: self.repeated.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            others: self.others.load(Ordering::Relaxed),
        }
    }

    /// Waits for the newest code to `recipient` that arrived after `mark`, until `timeout`.
    pub async fn wait(
        &self,
        recipient: &str,
        mark: u64,
        timeout: Duration,
        settle: Duration,
    ) -> Result<Delivery, WaitError> {
        let recipient = recipient.to_ascii_lowercase();
        let deadline = Instant::now() + timeout;
        let mut repeat_seen_at: Option<Instant> = None;
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut inner = self.inner.lock();
                if let Some(reason) = &inner.stopped {
                    return Err(WaitError::SourceStopped(reason.clone()));
                }
                let taken: HashSet<&String> =
                    inner.taken.get(&recipient).map(|t| t.iter().collect()).unwrap_or_default();
                let newer: Vec<&Arrival> = inner
                    .by_recipient
                    .get(&recipient)
                    .map(|q| q.iter().filter(|a| a.seq > mark).collect())
                    .unwrap_or_default();
                let fresh_count = newer.iter().filter(|a| !taken.contains(&a.code)).count();
                let fresh = newer.iter().rev().find(|a| !taken.contains(&a.code)).map(|a| (*a).clone());
                let newest = newer.last().map(|a| (*a).clone());
                drop(taken);
                if fresh_count >= 2 {
                    // Two new mails: one of them is likely the straggler of a timed-out wait.
                    if let Some(n) = inner.abandoned.get_mut(&recipient) {
                        *n = n.saturating_sub(1);
                    }
                }
                if let Some(arrival) = fresh {
                    return Ok(self.hand_out(&mut inner, &recipient, arrival, false));
                }
                if let Some(arrival) = newest {
                    let first = *repeat_seen_at.get_or_insert_with(Instant::now);
                    if first.elapsed() >= settle {
                        self.repeated.fetch_add(1, Ordering::Relaxed);
                        return Ok(self.hand_out(&mut inner, &recipient, arrival, true));
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                *self.inner.lock().abandoned.entry(recipient.clone()).or_insert(0) += 1;
                return Err(WaitError::Timeout(recipient));
            }
            let mut wake = deadline;
            if let Some(first) = repeat_seen_at {
                wake = wake.min(first + settle);
            }
            let _ = tokio::time::timeout(wake.saturating_duration_since(now), notified).await;
        }
    }

    fn hand_out(&self, inner: &mut Inner, recipient: &str, arrival: Arrival, repeated: bool) -> Delivery {
        let uncertain = inner.abandoned.get(recipient).is_some_and(|n| *n > 0);
        let taken = inner.taken.entry(recipient.to_string()).or_default();
        taken.push_back(arrival.code.clone());
        if taken.len() > KEEP_PER_RECIPIENT {
            taken.pop_front();
        }
        Delivery { code: arrival.code, seen_at: arrival.seen_at, repeated, uncertain }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTLE: Duration = Duration::from_millis(100);

    fn to(a: &str) -> Vec<String> {
        vec![a.to_string()]
    }

    #[tokio::test]
    async fn mail_that_arrived_before_the_wait_is_not_missed() {
        let room = Mailroom::new();
        let mark = room.mark();
        room.ingest(&to("a@x"), "111111");
        let got = room.wait("A@x", mark, Duration::from_secs(1), SETTLE).await.expect("buffered");
        assert_eq!(got.code, "111111");
        assert!(!got.repeated);
    }

    #[tokio::test]
    async fn only_mail_after_the_mark_and_to_this_user_counts_and_the_newest_wins() {
        let room = Mailroom::new();
        room.ingest(&to("a@x"), "000000");
        let mark = room.mark();
        room.ingest(&to("b@x"), "222222");
        room.ingest(&to("a@x"), "333333");
        room.ingest(&to("a@x"), "444444");
        assert_eq!(room.wait("a@x", mark, Duration::from_secs(1), SETTLE).await.expect("code").code, "444444");
        let err = room.wait("c@x", room.mark(), Duration::from_millis(50), SETTLE).await.unwrap_err();
        assert!(matches!(err, WaitError::Timeout(_)));
    }

    #[tokio::test]
    async fn a_late_duplicate_of_a_taken_code_yields_to_the_new_code() {
        let room = std::sync::Arc::new(Mailroom::new());
        let mark = room.mark();
        room.ingest(&to("a@x"), "111111");
        assert_eq!(room.wait("a@x", mark, Duration::from_secs(1), SETTLE).await.expect("first").code, "111111");
        let mark = room.mark();
        room.ingest(&to("a@x"), "111111"); // duplicate of the old code, arriving after the new request
        let later = std::sync::Arc::clone(&room);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            later.ingest(&to("a@x"), "222222");
        });
        let got = room.wait("a@x", mark, Duration::from_secs(1), Duration::from_millis(500)).await.expect("second");
        assert_eq!(got.code, "222222");
        assert!(!got.repeated);
    }

    #[tokio::test]
    async fn the_same_code_mailed_again_is_taken_after_the_settle_time_and_flagged() {
        let room = Mailroom::new();
        let mark = room.mark();
        room.ingest(&to("a@x"), "111111");
        room.wait("a@x", mark, Duration::from_secs(1), SETTLE).await.expect("first");
        let mark = room.mark();
        room.ingest(&to("a@x"), "111111");
        let got = room.wait("a@x", mark, Duration::from_secs(1), SETTLE).await.expect("repeat");
        assert!(got.repeated);
        assert_eq!(room.counts().repeated, 1);
    }

    #[tokio::test]
    async fn after_a_timed_out_wait_codes_are_uncertain_until_the_straggler_shows() {
        let room = Mailroom::new();
        let err = room.wait("a@x", room.mark(), Duration::from_millis(20), SETTLE).await.unwrap_err();
        assert!(matches!(err, WaitError::Timeout(_)));
        let mark = room.mark();
        room.ingest(&to("a@x"), "111111");
        assert!(room.wait("a@x", mark, Duration::from_secs(1), SETTLE).await.expect("code").uncertain);
        let mark = room.mark();
        room.ingest(&to("a@x"), "222222"); // the late mail of the timed-out wait
        room.ingest(&to("a@x"), "333333");
        let got = room.wait("a@x", mark, Duration::from_secs(1), SETTLE).await.expect("code");
        assert_eq!(got.code, "333333");
        assert!(!got.uncertain, "the straggler showed up");
    }
}
