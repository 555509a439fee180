//! `summary.json`: the run result as JSON, field names stable (schema `otp-harness/summary/v1`).

use super::RunResult;

pub fn render(result: &RunResult) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(result)? + "\n")
}
