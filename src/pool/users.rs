//! The pool's user directory, in either of Cognito's username modes: `UsernameAttributes = [email]`
//! (the default) — users keyed by an internal UUID username, signing in with their email — or `[]`:
//! the username is the name the user was created with (for the harness's test users, their email),
//! case-insensitive, and the email is an attribute.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::error::{CognitoError, ErrorKind};

/// One user of the pool.
#[derive(Debug, Clone)]
pub struct User {
    /// Internal username: a UUID in a pool signing in by email (`UsernameAttributes = [email]`), else
    /// the name the user was created with.
    pub username: String,
    /// The `sub` attribute (equal to a UUID username, as in real pools signing in by email).
    pub sub: String,
    pub email: String,
    pub email_verified: bool,
    /// Other attributes given at creation (name → value).
    pub extra_attributes: BTreeMap<String, String>,
    /// Epoch seconds.
    pub created: f64,
    pub enabled: bool,
}

impl User {
    /// Every attribute as Cognito lists them: `sub` first, then email, email_verified and the rest.
    pub fn attributes(&self) -> Vec<(String, String)> {
        let mut out = vec![
            ("sub".to_string(), self.sub.clone()),
            ("email".to_string(), self.email.clone()),
            ("email_verified".to_string(), self.email_verified.to_string()),
        ];
        out.extend(self.extra_attributes.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }

    /// Cognito's status for a user created by an administrator and never given a password.
    pub fn status(&self) -> &'static str {
        "FORCE_CHANGE_PASSWORD"
    }
}

/// A ListUsers filter: `attribute = "value"` (exact) or `attribute ^= "value"` (prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFilter {
    pub attribute: String,
    pub value: String,
    pub prefix: bool,
}

impl UserFilter {
    /// Parses Cognito's filter syntax; attributes Cognito allows to filter on are accepted.
    pub fn parse(text: &str) -> Result<Self, CognitoError> {
        let bad = || CognitoError::invalid_parameter(format!("Error while parsing filter: {text}"));
        let (attribute, rest, prefix) = if let Some((a, r)) = text.split_once("^=") {
            (a, r, true)
        } else if let Some((a, r)) = text.split_once('=') {
            (a, r, false)
        } else {
            return Err(bad());
        };
        let attribute = attribute.trim();
        let value = rest.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).ok_or_else(bad)?;
        const FILTERABLE: [&str; 9] = [
            "username",
            "email",
            "phone_number",
            "name",
            "given_name",
            "family_name",
            "preferred_username",
            "cognito:user_status",
            "sub",
        ];
        if !FILTERABLE.contains(&attribute) && attribute != "status" {
            return Err(bad());
        }
        Ok(Self { attribute: attribute.to_string(), value: value.to_string(), prefix })
    }

    fn matches(&self, user: &User) -> bool {
        let actual = match self.attribute.as_str() {
            "username" => Some(user.username.clone()),
            "email" => Some(user.email.clone()),
            "sub" => Some(user.sub.clone()),
            "cognito:user_status" => Some(user.status().to_string()),
            "status" => Some(if user.enabled { "Enabled" } else { "Disabled" }.to_string()),
            other => user.extra_attributes.get(other).cloned(),
        };
        match actual {
            Some(a) if self.prefix => a.starts_with(&self.value),
            Some(a) => a == self.value,
            None => false,
        }
    }
}

/// All users, by username and by their lower-cased sign-in name (the email, or the username).
#[derive(Debug)]
pub struct UserDirectory {
    /// `UsernameAttributes = [email]`: UUID usernames, sign-in by email.
    email_is_username_attribute: bool,
    by_username: BTreeMap<String, Arc<User>>,
    by_email: HashMap<String, String>,
}

impl Default for UserDirectory {
    fn default() -> Self {
        Self::new(true)
    }
}

impl UserDirectory {
    /// An empty directory; `email_is_username_attribute` picks the username mode.
    pub fn new(email_is_username_attribute: bool) -> Self {
        Self { email_is_username_attribute, by_username: BTreeMap::new(), by_email: HashMap::new() }
    }

    /// Whether usernames are UUIDs and users sign in by email.
    pub fn email_is_username_attribute(&self) -> bool {
        self.email_is_username_attribute
    }

    /// Creates a user signing in with `name` — the email in a pool signing in by email, else the
    /// username (its email is `extra["email"]`, or the name itself when it is an address); `extra`
    /// holds further attributes.
    pub fn create(
        &mut self,
        name: &str,
        email_verified: bool,
        mut extra: BTreeMap<String, String>,
    ) -> Result<Arc<User>, CognitoError> {
        let (username, email) = if self.email_is_username_attribute {
            if !looks_like_email(name) {
                return Err(CognitoError::invalid_parameter("Username should be an email."));
            }
            extra.remove("email");
            (uuid::Uuid::new_v4().to_string(), name.to_string())
        } else {
            if name.is_empty() || name.chars().any(char::is_whitespace) || name.chars().count() > 128 {
                return Err(CognitoError::invalid_parameter(
                    "1 validation error detected: Value at 'username' failed to satisfy constraint: Member must \
                     satisfy regular expression pattern: [\\p{L}\\p{M}\\p{S}\\p{N}\\p{P}]+",
                ));
            }
            let email = extra.remove("email").unwrap_or_else(|| name.to_string());
            if !looks_like_email(&email) {
                return Err(CognitoError::invalid_parameter(
                    "Invalid email address format. (the local pool mails every user: give an email attribute)",
                ));
            }
            (name.to_string(), email)
        };
        let key = if self.email_is_username_attribute { email.to_ascii_lowercase() } else { name.to_lowercase() };
        if self.by_email.contains_key(&key) {
            return Err(CognitoError::new(
                ErrorKind::UsernameExists,
                if self.email_is_username_attribute {
                    "An account with the given email already exists."
                } else {
                    "User account already exists"
                },
            ));
        }
        let sub = if self.email_is_username_attribute { username.clone() } else { uuid::Uuid::new_v4().to_string() };
        let user = Arc::new(User {
            username: username.clone(),
            sub,
            email,
            email_verified,
            extra_attributes: extra,
            created: now_epoch_seconds(),
            enabled: true,
        });
        self.by_email.insert(key, username.clone());
        self.by_username.insert(username, Arc::clone(&user));
        Ok(user)
    }

    /// Finds a user as sign-in does: by internal username, or by email alias (case-insensitive) in a
    /// pool signing in by email; by username (case-insensitive) otherwise.
    pub fn find(&self, name: &str) -> Option<Arc<User>> {
        if let Some(user) = self.by_username.get(name) {
            return Some(Arc::clone(user));
        }
        let key = if self.email_is_username_attribute { name.to_ascii_lowercase() } else { name.to_lowercase() };
        self.by_email.get(&key).and_then(|u| self.by_username.get(u)).cloned()
    }

    /// Marks a user's email verified (a right email code proves it), returning the user as now stored.
    pub fn mark_email_verified(&mut self, username: &str) -> Option<Arc<User>> {
        let user = self.by_username.get_mut(username)?;
        if !user.email_verified {
            let mut updated = User::clone(user);
            updated.email_verified = true;
            *user = Arc::new(updated);
        }
        Some(Arc::clone(user))
    }

    /// Removes a user found by username or email.
    pub fn delete(&mut self, name: &str) -> Result<(), CognitoError> {
        let user = self.find(name).ok_or_else(CognitoError::user_not_found)?;
        self.by_username.remove(&user.username);
        let key = if self.email_is_username_attribute {
            user.email.to_ascii_lowercase()
        } else {
            user.username.to_lowercase()
        };
        self.by_email.remove(&key);
        Ok(())
    }

    /// Users in username order, after `start` (exclusive), at most `limit`, matching `filter`.
    /// Returns the page and the username to continue after, if more remain.
    pub fn list(
        &self,
        filter: Option<&UserFilter>,
        after: Option<&str>,
        limit: usize,
    ) -> (Vec<Arc<User>>, Option<String>) {
        use std::ops::Bound::{Excluded, Unbounded};
        let lower = after.map_or(Unbounded, |a| Excluded(a.to_string()));
        let mut matching =
            self.by_username.range((lower, Unbounded)).map(|(_, u)| u).filter(|u| filter.is_none_or(|f| f.matches(u)));
        let page: Vec<Arc<User>> = matching.by_ref().take(limit).cloned().collect();
        let next = if matching.next().is_some() { page.last().map(|u| u.username.clone()) } else { None };
        (page, next)
    }

    pub fn len(&self) -> usize {
        self.by_username.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_username.is_empty()
    }
}

fn looks_like_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.') && !s.contains(char::is_whitespace)
        }
        None => false,
    }
}

/// Seconds since the Unix epoch, with fractions, as Cognito's timestamps are.
pub fn now_epoch_seconds() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_found_by_username_and_by_email_in_any_case() {
        let mut dir = UserDirectory::default();
        let user = dir.create("A+1@Mail.test", true, BTreeMap::new()).expect("created");
        assert_eq!(dir.find(&user.username).map(|u| u.email.clone()), Some("A+1@Mail.test".into()));
        assert!(dir.find("a+1@mail.test").is_some());
        assert!(dir.find("a+2@mail.test").is_none());
    }

    #[test]
    fn duplicate_emails_and_non_emails_are_refused() {
        let mut dir = UserDirectory::default();
        dir.create("a@mail.test", true, BTreeMap::new()).expect("created");
        assert_eq!(dir.create("A@mail.test", true, BTreeMap::new()).unwrap_err().kind, ErrorKind::UsernameExists);
        assert_eq!(dir.create("not-an-email", true, BTreeMap::new()).unwrap_err().kind, ErrorKind::InvalidParameter);
    }

    #[test]
    fn without_username_attributes_the_username_is_the_given_name() {
        let mut dir = UserDirectory::new(false);
        let user = dir.create("A+1@Mail.test", true, BTreeMap::new()).expect("created");
        assert_eq!(user.username, "A+1@Mail.test");
        assert_ne!(user.sub, user.username, "sub is a UUID of its own");
        assert_eq!(user.email, "A+1@Mail.test");
        assert!(dir.find("a+1@mail.test").is_some(), "usernames are case-insensitive");
        let named = dir.create("alice", true, BTreeMap::from([("email".into(), "al@mail.test".into())])).expect("ok");
        assert_eq!((named.username.as_str(), named.email.as_str()), ("alice", "al@mail.test"));
        assert!(dir.find("al@mail.test").is_none(), "no email alias in this mode");
        assert_eq!(dir.create("ALICE", true, BTreeMap::new()).unwrap_err().kind, ErrorKind::InvalidParameter);
        assert_eq!(
            dir.create("ALICE", true, BTreeMap::from([("email".into(), "x@mail.test".into())])).unwrap_err().kind,
            ErrorKind::UsernameExists
        );
        dir.delete("Alice").expect("deleted");
        assert!(dir.find("alice").is_none());
    }

    #[test]
    fn list_pages_and_filters() {
        let mut dir = UserDirectory::default();
        for n in 0..5 {
            dir.create(&format!("u+{n}@mail.test"), true, BTreeMap::new()).expect("created");
        }
        dir.create("other@mail.test", true, BTreeMap::new()).expect("created");
        let (first, next) = dir.list(None, None, 4);
        assert_eq!(first.len(), 4);
        let (rest, none) = dir.list(None, next.as_deref(), 4);
        assert_eq!(rest.len(), 2);
        assert!(none.is_none());

        let exact = UserFilter::parse("email = \"u+3@mail.test\"").expect("parses");
        let (found, _) = dir.list(Some(&exact), None, 60);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].email, "u+3@mail.test");

        let prefix = UserFilter::parse("email ^= \"u+\"").expect("parses");
        assert_eq!(dir.list(Some(&prefix), None, 60).0.len(), 5);
        assert!(UserFilter::parse("email ~ \"x\"").is_err());
        assert!(UserFilter::parse("email = unquoted").is_err());
    }
}
