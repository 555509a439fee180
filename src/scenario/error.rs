//! Errors in a scenario file: what is wrong, where (file and line), and how to fix it.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem with a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: PathBuf,
    /// 1-based line, when it can be told.
    pub line: Option<usize>,
    pub message: String,
    pub fix: String,
}

impl ScenarioError {
    pub fn new(file: &Path, line: Option<usize>, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self { file: file.to_path_buf(), line, message: message.into(), fix: fix.into() }
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}: {}", self.file.display(), self.message)?,
            None => write!(f, "{}: {}", self.file.display(), self.message)?,
        }
        write!(f, "\n  fix: {}", self.fix)
    }
}

impl std::error::Error for ScenarioError {}

/// Makes errors that point into one scenario file: its path, and the line of a key found in its text.
pub struct Locator<'a> {
    pub path: &'a Path,
    pub text: &'a str,
}

impl Locator<'_> {
    /// An error about `key` of `table` (the `index`-th `[[table]]` for arrays of tables; "" for the top
    /// level), on the key's line or else the table's.
    pub fn error(&self, table: &str, index: usize, key: &str, message: impl Into<String>, fix: &str) -> ScenarioError {
        ScenarioError::new(self.path, line_of_key(self.text, table, index, key), message, fix)
    }
}

/// The 1-based line of byte `offset` in `text`.
pub fn line_of_offset(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len())).map_or(1, |before| before.matches('\n').count() + 1)
}

/// The line where `key` is set inside table `table` ("" for the top level, "otp.imap" for `[otp.imap]`,
/// "flow" for an `[[flow]]` entry — the `index`-th one), or the table header's line if the key is absent;
/// a table with no header of its own is found by its first sub-table (`[target.pool.faults]`) or where
/// its parent sets it (`pool = { … }`, `pool.max_attempts = 0`).
pub fn line_of_key(text: &str, table: &str, index: usize, key: &str) -> Option<usize> {
    line_in_table(text, table, index, key).or_else(|| {
        if table.is_empty() {
            return None;
        }
        let sub = format!("{table}.");
        let first_sub = text.lines().position(|raw| {
            let line = raw.trim();
            line.starts_with('[') && line.trim_start_matches('[').trim_start().starts_with(&sub)
        });
        first_sub.map(|n| n + 1).or_else(|| {
            let (parent, name) = table.rsplit_once('.').unwrap_or(("", table));
            line_of_key(text, parent, 0, name)
        })
    })
}

fn line_in_table(text: &str, table: &str, index: usize, key: &str) -> Option<usize> {
    let mut current = String::new();
    let mut seen_of_table = 0usize;
    let mut header_line = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(header) = line.strip_prefix("[[").and_then(|l| l.split("]]").next()) {
            current = header.trim().to_string();
            if current == table {
                seen_of_table += 1;
                if seen_of_table == index + 1 {
                    header_line = Some(n + 1);
                }
            }
            continue;
        }
        if let Some(header) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            current = header.trim().to_string();
            if current == table {
                header_line = Some(n + 1);
            }
            continue;
        }
        let in_table = current == table && (seen_of_table == index + 1 || seen_of_table == 0);
        if in_table && !key.is_empty() {
            let name = line.split('=').next().unwrap_or("").trim().trim_matches('"');
            let dotted = name.strip_prefix(key).is_some_and(|rest| rest.starts_with('.'));
            if line.contains('=') && (name == key || dotted) {
                return Some(n + 1);
            }
        }
    }
    header_line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_in_their_tables() {
        let text = "name = \"x\"\n[otp]\nsource = \"imap\"\n[otp.imap]\nport = 1\n[[flow]]\nkind = \"a\"\n[[flow]]\nkind = \"b\"\n";
        assert_eq!(line_of_key(text, "", 0, "name"), Some(1));
        assert_eq!(line_of_key(text, "otp", 0, "source"), Some(3));
        assert_eq!(line_of_key(text, "otp.imap", 0, "port"), Some(5));
        assert_eq!(line_of_key(text, "otp.imap", 0, "host"), Some(4), "absent key: the table's header");
        assert_eq!(line_of_key(text, "flow", 1, "kind"), Some(9));
        assert_eq!(line_of_offset(text, 12), 2);
    }

    #[test]
    fn tables_without_a_header_are_found_by_sub_table_or_parent_key() {
        let sub = "name = \"x\"\n[target]\nkind = \"local\"\n[target.pool.faults.latency]\nInitiateAuth_ = \"1ms\"\n";
        assert_eq!(line_of_key(sub, "target.pool", 0, ""), Some(4));
        let inline = "name = \"x\"\n[target]\nkind = \"local\"\npool = { max_attempts = 0 }\n";
        assert_eq!(line_of_key(inline, "target.pool", 0, ""), Some(4));
        let dotted = "name = \"x\"\nusers.count = 0\n[target]\npool.max_attempts = 0\n";
        assert_eq!(line_of_key(dotted, "target.pool", 0, ""), Some(4));
        assert_eq!(line_of_key(dotted, "users", 0, "count"), Some(2));
        assert_eq!(line_of_key(dotted, "otp.imap", 0, "host"), None, "nowhere to point at");
    }
}
