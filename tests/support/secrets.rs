//! The one secrets scanner every test uses: a run's output (every file of its report folder, stdout and
//! stderr) must carry no one-time code the pool mailed, nothing shaped like a JWT or one of its
//! base64url segments, no Session string of the local pool, and no password.
#![allow(dead_code)]

use std::sync::LazyLock;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use regex::Regex;

/// What must not appear, besides anything shaped like a token or a Session string.
#[derive(Debug, Default, Clone)]
pub struct Secrets {
    /// Every code the pool mailed during the run.
    pub codes: Vec<String>,
    /// Passwords (e.g. the IMAP password file's content).
    pub passwords: Vec<String>,
}

impl Secrets {
    pub fn codes(codes: Vec<String>) -> Self {
        Self { codes, passwords: Vec::new() }
    }

    pub fn with_password(mut self, password: &str) -> Self {
        self.passwords.push(password.trim().to_string());
        self
    }
}

/// One secret found: where, what kind, and the text around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub source: String,
    pub kind: &'static str,
    pub excerpt: String,
}

/// Numbers as whole tokens: a decimal like `12.345678` is one token, so a fraction never passes for a code.
static NUMBER: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\d+(?:\.\d+)?").expect("regex"));
/// The start of a base64url-encoded JSON object (`{"`), as every JWT header and payload begins.
static JSON_SEGMENT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"eyJ[A-Za-z0-9_-]*").expect("regex"));
/// Three dot-separated base64url runs: a compact JWS (a JWE has five, and contains three).
static DOTTED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}").expect("regex"));
/// Runs of base64url characters (Session strings, signatures, refresh-token parts).
static BASE64URL_RUN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"[A-Za-z0-9_-]{54,}").expect("regex"));

/// A Session string of the local pool: 32 random bytes and its expiry (ms since the epoch, big-endian),
/// base64url without padding — 54 characters (src/pool/auth.rs, `new_session_token`).
const SESSION_CHARS: usize = 54;
/// A 2048-bit RSA signature in base64url is 342 characters; no report has a base64url run this long.
const LONG_RUN: usize = 300;

fn excerpt(text: &str, start: usize, end: usize) -> String {
    let from = text.floor_char_boundary(start.saturating_sub(40));
    let to = text.ceil_char_boundary((end + 40).min(text.len()));
    text[from..to].replace('\n', "⏎")
}

/// Every secret in `text` (named `source` in the findings).
pub fn scan(source: &str, text: &str, secrets: &Secrets) -> Vec<Finding> {
    let mut found = Vec::new();
    let mut push = |kind: &'static str, start: usize, end: usize| {
        found.push(Finding { source: source.to_string(), kind, excerpt: excerpt(text, start, end) })
    };
    if !secrets.codes.is_empty() {
        let codes: std::collections::HashSet<&str> = secrets.codes.iter().map(String::as_str).collect();
        for m in NUMBER.find_iter(text) {
            if codes.contains(m.as_str()) {
                push("one-time code", m.start(), m.end());
            }
        }
    }
    for m in JSON_SEGMENT.find_iter(text) {
        if looks_like_json_segment(m.as_str()) {
            push("JWT segment (base64url JSON)", m.start(), m.end());
        }
    }
    for m in DOTTED.find_iter(text) {
        push("JWT (three dotted base64url parts)", m.start(), m.end());
    }
    for m in BASE64URL_RUN.find_iter(text) {
        if m.as_str().len() >= LONG_RUN {
            push("long base64url run (a signature or refresh-token part)", m.start(), m.end());
        } else if contains_session(m.as_str()) {
            push("Session string", m.start(), m.end());
        }
    }
    for password in secrets.passwords.iter().filter(|p| !p.is_empty()) {
        for (at, _) in text.match_indices(password.as_str()) {
            push("password", at, at + password.len());
        }
    }
    found
}

/// `eyJ…` decodes to `{"…`; a JWT's segment goes on in printable JSON, a random base64 run soon does not.
fn looks_like_json_segment(segment: &str) -> bool {
    let usable = segment.len() / 4 * 4;
    if usable < 16 {
        return false;
    }
    let Ok(bytes) = URL_SAFE_NO_PAD.decode(&segment[..usable]) else {
        return false;
    };
    bytes.iter().take(12).all(|b| (0x20..0x7f).contains(b))
}

/// Some 54-character window of `run` decodes to 40 bytes ending in an expiry within a day of now.
fn contains_session(run: &str) -> bool {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let day = 86_400_000;
    (0..=run.len() - SESSION_CHARS).any(|at| {
        URL_SAFE_NO_PAD.decode(&run[at..at + SESSION_CHARS]).ok().is_some_and(|bytes| {
            let tail: [u8; 8] = bytes[32..40].try_into().expect("40 bytes");
            let expiry = u64::from_be_bytes(tail);
            expiry > now - day && expiry < now + day
        })
    })
}

/// Scans every `(source, text)` and panics naming each finding.
pub fn assert_clean<'a>(sources: impl IntoIterator<Item = (&'a str, &'a str)>, secrets: &Secrets) {
    let findings: Vec<Finding> = sources.into_iter().flat_map(|(name, text)| scan(name, text, secrets)).collect();
    assert!(findings.is_empty(), "secrets in the output:\n{findings:#?}");
}
