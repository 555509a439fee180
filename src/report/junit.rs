//! `junit.xml`: one test case per check and per threshold, for CI systems that read JUnit.

use std::fmt::Write;

use super::{RunResult, escape_markup as escape};
use crate::checks::Status;

pub fn render(r: &RunResult) -> String {
    let failures = r.checks.iter().filter(|c| c.status == Status::Fail).count()
        + r.thresholds.iter().filter(|t| !t.passed).count();
    let skipped = r.checks.iter().filter(|c| c.status == Status::Skip).count();
    let tests = r.checks.len() + r.thresholds.len();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"otp-harness\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\" time=\"{:.3}\">",
        r.duration_secs
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" skipped=\"{skipped}\" errors=\"0\" time=\"{:.3}\" timestamp=\"{}\">",
        escape(&r.scenario),
        r.duration_secs,
        escape(&r.started_at)
    );
    for c in &r.checks {
        let _ = write!(out, "    <testcase classname=\"otp-harness.checks\" name=\"{}\" time=\"0\"", escape(&c.name));
        match c.status {
            Status::Pass => out.push_str("/>\n"),
            Status::Fail => {
                let _ = writeln!(
                    out,
                    ">\n      <failure message=\"{}\">{}: {} ({} of {} observations failed)</failure>\n    </testcase>",
                    escape(&c.reason),
                    escape(&c.description),
                    escape(&c.reason),
                    c.failed,
                    c.passed + c.failed
                );
            }
            Status::Skip => {
                let _ = writeln!(out, ">\n      <skipped message=\"{}\"/>\n    </testcase>", escape(&c.reason));
            }
        }
    }
    for t in &r.thresholds {
        let name = format!("{} {}", t.key, t.condition);
        let _ = write!(out, "    <testcase classname=\"otp-harness.thresholds\" name=\"{}\" time=\"0\"", escape(&name));
        if t.passed {
            out.push_str("/>\n");
        } else {
            let _ = writeln!(out, ">\n      <failure message=\"{}\"/>\n    </testcase>", escape(&t.reason));
        }
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn xml_special_characters_are_escaped() {
        assert_eq!(escape(r#"a<b & "c">'d'"#), "a&lt;b &amp; &quot;c&quot;&gt;&apos;d&apos;");
    }
}
