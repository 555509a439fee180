//! The mailroom: every code mail the sources see, per recipient, in the order the mailbox received it.
//! A virtual user takes a mark before its request and then waits for the newest code to its address
//! that arrived after the mark. Mail that lands before the user waits is buffered, not missed; a mail
//! repeating a code already taken (a duplicate, or an old mail arriving late) is only taken if no newer
//! code comes within the settle time, and is then flagged. A new mail wakes only the users waiting for
//! its recipients, not every waiting user.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

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
    /// From the moment the mail existed in the source (as the source dates it, to the millisecond or
    /// better) to the harness having read it; None when the source does not say.
    pub pickup: Option<Duration>,
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
    pickup: Option<Duration>,
}

#[derive(Default)]
struct Inner {
    /// One wake-up per recipient someone has waited for.
    wakers: HashMap<String, Arc<Notify>>,
    by_recipient: HashMap<String, VecDeque<Arrival>>,
    /// Codes already handed out, per recipient (newest last).
    taken: HashMap<String, VecDeque<String>>,
    /// Waits that timed out, per recipient, whose mail has not been seen since.
    abandoned: HashMap<String, u32>,
    stopped: Option<String>,
}

/// Counts of what the sources brought in.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
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
    /// How the source learned of new mail (`wait`, `poll`, `idle`, `poll adaptive 2ms–1s`, `sqs`…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Requests the source sent to learn of new mail (outbox reads, IMAP NOOP/IDLE, S3 listings,
    /// SQS receives): what watching cost the server.
    #[serde(default)]
    pub source_requests: u64,
    /// IMAP: mean time from the mail's arrival in the inbox (INTERNALDATE, whole seconds, taken as
    /// the middle of its second) to the harness having read it, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_delay_mean_ms: Option<f64>,
}

const KEEP_PER_RECIPIENT: usize = 16;

/// Shared between the source's watcher (which ingests) and the virtual users (which wait).
#[derive(Default)]
pub struct Mailroom {
    inner: Mutex<Inner>,
    seq: AtomicU64,
    /// Virtual users waiting for a code right now, and a wake-up for a source idling between slow
    /// polls when one starts to.
    waiting: AtomicU64,
    someone_waits: Notify,
    code_mails: AtomicU64,
    ignored: AtomicU64,
    repeated: AtomicU64,
    reconnects: AtomicU64,
    others: AtomicU64,
    source_requests: AtomicU64,
    /// Sum (µs) and count of the source's server-side delays (IMAP INTERNALDATE).
    server_delay: Mutex<(u128, u64)>,
    mode: Mutex<Option<String>>,
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
        self.ingest_at(recipients, code, None);
    }

    /// As `ingest`, for a mail the source dates: `arrived` is when it existed there (the pickup
    /// measured is from then to now; a source clock ahead of ours counts as zero).
    pub fn ingest_at(&self, recipients: &[String], code: &str, arrived: Option<SystemTime>) {
        let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
        let seen_at = Instant::now();
        let pickup = arrived.map(|at| SystemTime::now().duration_since(at).unwrap_or(Duration::ZERO));
        self.code_mails.fetch_add(1, Ordering::Relaxed);
        let mut wake = Vec::with_capacity(recipients.len());
        {
            let mut inner = self.inner.lock();
            for recipient in recipients {
                let recipient = recipient.to_ascii_lowercase();
                if let Some(waker) = inner.wakers.get(&recipient) {
                    wake.push(Arc::clone(waker));
                }
                let queue = inner.by_recipient.entry(recipient).or_default();
                queue.push_back(Arrival { seq, code: code.to_string(), seen_at, pickup });
                if queue.len() > KEEP_PER_RECIPIENT {
                    queue.pop_front();
                }
            }
        }
        for waker in wake {
            waker.notify_waiters();
        }
    }

    /// A mail the harness has no use for.
    pub fn ignore(&self) {
        self.ignored.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// One request the source sent to learn of new mail.
    pub fn count_request(&self) {
        self.source_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// How the source learns of new mail, for the report.
    pub fn set_mode(&self, mode: impl Into<String>) {
        *self.mode.lock() = Some(mode.into());
    }

    /// A mail's delay from its arrival in the source (as the server dates it) to the harness having it.
    pub fn note_server_delay(&self, delay: Duration) {
        let mut d = self.server_delay.lock();
        d.0 += delay.as_micros();
        d.1 += 1;
    }

    /// The source gave up: waiters fail at once.
    pub fn stop(&self, reason: &str) {
        let wakers: Vec<Arc<Notify>> = {
            let mut inner = self.inner.lock();
            inner.stopped = Some(reason.to_string());
            inner.wakers.values().cloned().collect()
        };
        for waker in wakers {
            waker.notify_waiters();
        }
    }

    pub fn counts(&self) -> MailCounts {
        MailCounts {
            code_mails: self.code_mails.load(Ordering::Relaxed),
            ignored: self.ignored.load(Ordering::Relaxed),
            repeated: self.repeated.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            others: self.others.load(Ordering::Relaxed),
            mode: self.mode.lock().clone(),
            source_requests: self.source_requests.load(Ordering::Relaxed),
            server_delay_mean_ms: {
                let (sum, n) = *self.server_delay.lock();
                (n > 0).then(|| ((sum as f64 / n as f64) / 1000.0 * 10.0).round() / 10.0)
            },
        }
    }

    /// How many virtual users wait for a code right now.
    pub fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Resolves when a virtual user starts waiting (at once if one already does).
    pub async fn someone_waits(&self) {
        let started = self.someone_waits.notified();
        tokio::pin!(started);
        started.as_mut().enable();
        if self.waiting() > 0 {
            return;
        }
        started.await;
    }

    /// Waits for the newest code to `recipient` that arrived after `mark`, until `timeout`.
    pub async fn wait(
        &self,
        recipient: &str,
        mark: u64,
        timeout: Duration,
        settle: Duration,
    ) -> Result<Delivery, WaitError> {
        struct Waiting<'a>(&'a AtomicU64);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        self.someone_waits.notify_waiters();
        self.wait_for(recipient, mark, timeout, settle).await
    }

    async fn wait_for(
        &self,
        recipient: &str,
        mark: u64,
        timeout: Duration,
        settle: Duration,
    ) -> Result<Delivery, WaitError> {
        let recipient = recipient.to_ascii_lowercase();
        let deadline = Instant::now() + timeout;
        let mut repeat_seen_at: Option<Instant> = None;
        let waker = Arc::clone(self.inner.lock().wakers.entry(recipient.clone()).or_default());
        loop {
            let notified = waker.notified();
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
        Delivery { code: arrival.code, seen_at: arrival.seen_at, pickup: arrival.pickup, repeated, uncertain }
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
    async fn a_mail_wakes_its_waiter_and_the_pickup_is_measured_from_the_source_date() {
        let room = std::sync::Arc::new(Mailroom::new());
        let (a_mark, b_mark) = (room.mark(), room.mark());
        let waiter = |who: &'static str, mark| {
            let room = std::sync::Arc::clone(&room);
            tokio::spawn(async move { room.wait(who, mark, Duration::from_secs(5), SETTLE).await })
        };
        let (a, b) = (waiter("a@x", a_mark), waiter("b@x", b_mark));
        tokio::time::sleep(Duration::from_millis(20)).await;
        let sent = SystemTime::now() - Duration::from_millis(250);
        room.ingest_at(&to("b@x"), "222222", Some(sent));
        let got_b = b.await.expect("task").expect("b's code");
        assert_eq!(got_b.code, "222222");
        let pickup = got_b.pickup.expect("dated mail");
        assert!(pickup >= Duration::from_millis(250), "{pickup:?}");
        assert!(!a.is_finished(), "a's waiter is still waiting");
        room.ingest(&to("A@X"), "111111");
        let got_a = a.await.expect("task").expect("a's code");
        assert_eq!((got_a.code.as_str(), got_a.pickup), ("111111", None));
        // A source clock ahead of ours: zero, not an error.
        let mark = room.mark();
        room.ingest_at(&to("c@x"), "333333", Some(SystemTime::now() + Duration::from_secs(5)));
        let got_c = room.wait("c@x", mark, Duration::from_secs(1), SETTLE).await.expect("c");
        assert_eq!(got_c.pickup, Some(Duration::ZERO));
        // A stopped source still wakes every waiter.
        let d = waiter("d@x", room.mark());
        tokio::time::sleep(Duration::from_millis(10)).await;
        room.stop("test");
        assert!(matches!(d.await.expect("task"), Err(WaitError::SourceStopped(_))));
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
