//! Session strings and the table of live and consumed sessions, shared by both sign-in flows. A Session
//! string is opaque to clients: random bytes and its own expiry, so an expired one is recognized even
//! after the table has dropped it. The table keys sessions by their first 128 random bits and boxes the
//! flow state, so a consumed session costs a few dozen bytes until it expires (a pool serving thousands
//! of sign-ins a second holds `auth_session_validity` of them).

use std::collections::{HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::pool::error::CognitoError;

/// One session: the flow state it carries (while usable), whether an answer consumed it, its expiry.
pub(super) struct SessionEntry<F> {
    /// Kept while usable; a consumed entry keeps it only when a defect replays sessions.
    pub flow: Option<Box<F>>,
    pub consumed: bool,
    pub expires_at_ms: u64,
}

/// Live and consumed sessions, dropped once expired.
pub(super) struct SessionTable<F> {
    entries: HashMap<u128, SessionEntry<F>>,
    expiry_order: VecDeque<(u64, u128)>,
}

impl<F> Default for SessionTable<F> {
    fn default() -> Self {
        Self { entries: HashMap::new(), expiry_order: VecDeque::new() }
    }
}

impl<F> SessionTable<F> {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds a session (and drops the expired ones).
    pub fn insert(&mut self, token: &str, flow: F, expires_at_ms: u64, now_ms: u64) {
        let Some(key) = session_key(token) else {
            return;
        };
        // Drop expired sessions, and the order's leftovers of sessions already consumed and removed.
        while let Some(&(at, old)) = self.expiry_order.front() {
            if at > now_ms && self.entries.contains_key(&old) {
                break;
            }
            self.expiry_order.pop_front();
            self.entries.remove(&old);
        }
        self.expiry_order.push_back((expires_at_ms, key));
        self.entries.insert(key, SessionEntry { flow: Some(Box::new(flow)), consumed: false, expires_at_ms });
    }

    /// Runs `use_entry` on the entry of a Session string that has not expired (see `live_entry`); an
    /// entry it leaves consumed and without flow state is dropped at once — a later use of that Session
    /// gets `Invalid session` all the same, and the table holds only sessions still in use.
    pub fn with_live_entry<T>(
        &mut self,
        token: &str,
        now_ms: u64,
        use_entry: impl FnOnce(&mut SessionEntry<F>) -> Result<T, CognitoError>,
    ) -> Result<T, CognitoError> {
        let entry = self.live_entry(token, now_ms)?;
        let result = use_entry(entry);
        let dead = entry.consumed && entry.flow.is_none();
        if dead && let Some(key) = session_key(token) {
            self.entries.remove(&key);
        }
        result
    }

    /// The entry of a Session string that has not expired: an unknown string is `Invalid session`, or
    /// `session is expired` when its own expiry has passed.
    fn live_entry(&mut self, token: &str, now_ms: u64) -> Result<&mut SessionEntry<F>, CognitoError> {
        let Some(entry) = session_key(token).and_then(|key| self.entries.get_mut(&key)) else {
            return Err(match session_token_expiry(token) {
                Some(at) if at <= now_ms => CognitoError::expired_session(),
                _ => CognitoError::invalid_session(),
            });
        };
        if entry.expires_at_ms <= now_ms {
            return Err(CognitoError::expired_session());
        }
        Ok(entry)
    }
}

/// An opaque Session string: 32 random bytes and the expiry (ms since the epoch), base64url.
pub(super) fn new_session_token(expires_at_ms: u64) -> String {
    let mut bytes = [0u8; 40];
    bytes[..32].copy_from_slice(&rand::random::<[u8; 32]>());
    bytes[32..].copy_from_slice(&expires_at_ms.to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A Session string's key in the table: its first 128 random bits (None if it is not one of ours).
fn session_key(token: &str) -> Option<u128> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok().filter(|b| b.len() == 40)?;
    Some(u128::from_be_bytes(bytes.get(..16)?.try_into().ok()?))
}

/// The expiry written into a Session string, if it is one of ours.
fn session_token_expiry(token: &str) -> Option<u64> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let tail: [u8; 8] = bytes.get(32..40)?.try_into().ok()?;
    (bytes.len() == 40).then(|| u64::from_be_bytes(tail))
}

pub(super) fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_tokens_carry_their_expiry() {
        let token = new_session_token(1_234_567);
        assert_eq!(session_token_expiry(&token), Some(1_234_567));
        assert_eq!(session_token_expiry("not-a-session"), None);
        assert_ne!(new_session_token(1), new_session_token(1));
    }

    #[test]
    fn expired_and_unknown_sessions_are_told_apart() {
        let mut table = SessionTable::default();
        let live = new_session_token(10_000);
        table.insert(&live, (), 10_000, 0);
        assert!(table.live_entry(&live, 5_000).is_ok());
        assert_eq!(table.live_entry(&live, 10_000).err(), Some(CognitoError::expired_session()));
        assert_eq!(table.live_entry(&new_session_token(1), 5_000).err(), Some(CognitoError::expired_session()));
        assert_eq!(table.live_entry("nope", 5_000).err(), Some(CognitoError::invalid_session()));
    }

    #[test]
    fn consumed_sessions_are_dropped_at_once_and_their_order_entries_soon_after() {
        let mut table = SessionTable::default();
        let tokens: Vec<String> = (0..100).map(|_| new_session_token(60_000)).collect();
        for token in &tokens {
            table.insert(token, 7u32, 60_000, 0);
        }
        for token in &tokens[1..] {
            let flow = table.with_live_entry(token, 1, |entry| {
                entry.consumed = true;
                entry.flow.take().map(|f| *f).ok_or_else(CognitoError::invalid_session)
            });
            assert_eq!(flow, Ok(7));
        }
        assert_eq!(table.len(), 1, "only the session still in use is held");
        assert_eq!(
            table.with_live_entry(&tokens[1], 2, |_| Ok(())).err(),
            Some(CognitoError::invalid_session()),
            "a consumed Session is refused as before"
        );
        table.insert(&new_session_token(60_000), 8, 60_000, 3);
        assert_eq!(table.expiry_order.len(), 101, "the consumed ones behind a live one wait for it");
        let _ = table.with_live_entry(&tokens[0], 4, |entry| {
            entry.consumed = true;
            entry.flow = None;
            Ok(())
        });
        table.insert(&new_session_token(60_000), 9, 60_000, 5);
        assert_eq!((table.len(), table.expiry_order.len()), (2, 2), "then they go");
    }
}
