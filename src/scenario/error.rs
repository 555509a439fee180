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
/// "flow" for an `[[flow]]` entry — the `index`-th one), or the table header's line if the key is absent.
pub fn line_of_key(text: &str, table: &str, index: usize, key: &str) -> Option<usize> {
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
            if line.contains('=') && name == key {
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
}
