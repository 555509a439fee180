//! From a raw mail to (recipients, code): MIME through mail-parser (quoted-printable, base64, HTML-only
//! bodies, RFC 2047 headers), then the scenario's code pattern on the text body, the HTML body and the
//! subject, in that order; the first match wins.

use mail_parser::{Address, MessageParser};
use regex::Regex;

/// What a mail carries for the harness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// To (and Delivered-To / X-Original-To) addresses, lower-cased.
    pub recipients: Vec<String>,
    pub sender: Option<String>,
    /// The code, if the mail is from the expected sender and matches the pattern.
    pub code: Option<String>,
}

/// Extracts codes with one pattern and an optional sender filter.
#[derive(Debug, Clone)]
pub struct Extractor {
    pattern: Regex,
    from: Option<String>,
}

impl Extractor {
    /// `pattern` must have a capture group (the scenario validates it).
    pub fn new(pattern: &str, from: Option<&str>) -> Result<Self, regex::Error> {
        Ok(Self { pattern: Regex::new(pattern)?, from: from.map(str::to_ascii_lowercase) })
    }

    /// Parses a raw RFC 5322 message.
    pub fn extract(&self, raw: &[u8]) -> Option<Extracted> {
        let message = MessageParser::default().parse(raw)?;
        let mut recipients = Vec::new();
        collect(message.to(), &mut recipients);
        for header in ["Delivered-To", "X-Original-To"] {
            if let Some(value) = message.header_raw(header) {
                recipients.push(value.trim().trim_matches(|c| c == '<' || c == '>').to_ascii_lowercase());
            }
        }
        recipients.dedup();
        let sender = message.from().and_then(|a| a.first()).and_then(|a| a.address()).map(str::to_ascii_lowercase);
        let texts = [
            message.body_text(0).map(|t| t.into_owned()),
            message.body_html(0).map(|t| t.into_owned()),
            message.subject().map(str::to_string),
        ];
        let code = self.code_in(sender.as_deref(), texts.iter().flatten().map(String::as_str));
        Some(Extracted { recipients, sender, code })
    }

    /// For mail already split into parts (LocalStack's outbox without raw data).
    pub fn extract_parts(
        &self,
        to: &[String],
        sender: &str,
        subject: &str,
        text: Option<&str>,
        html: Option<&str>,
    ) -> Extracted {
        let sender = sender.to_ascii_lowercase();
        let code = self.code_in(Some(&sender), [text, html, Some(subject)].into_iter().flatten());
        Extracted { recipients: to.iter().map(|a| a.to_ascii_lowercase()).collect(), sender: Some(sender), code }
    }

    fn code_in<'a>(&self, sender: Option<&str>, mut texts: impl Iterator<Item = &'a str>) -> Option<String> {
        if let Some(expected) = &self.from
            && sender.is_none_or(|s| !s.eq_ignore_ascii_case(expected))
        {
            return None;
        }
        texts.find_map(|text| self.pattern.captures(text).and_then(|c| c.get(1)).map(|m| m.as_str().to_string()))
    }
}

fn collect(address: Option<&Address<'_>>, out: &mut Vec<String>) {
    if let Some(address) = address {
        out.extend(address.iter().filter_map(|a| a.address()).map(str::to_ascii_lowercase));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/mail-samples").join(name);
        std::fs::read(path).expect("sample")
    }

    fn six_digits() -> Extractor {
        Extractor::new(r"\b(\d{6})\b", None).expect("pattern")
    }

    #[test]
    fn codes_come_out_of_every_sample_shape() {
        for (file, to, code) in [
            ("ses-html-only-482913.eml", "loadtest+17@mail.example.test", "482913"),
            ("ses-receipt-s3-730155.eml", "loadtest+203@inbound.example.test", "730155"),
            ("qp-alternative-059317.eml", "loadtest+4@mail.example.test", "059317"),
            ("base64-alternative-661204.eml", "loadtest+88@mail.example.test", "661204"),
        ] {
            let got = six_digits().extract(&sample(file)).expect("parses");
            assert_eq!(got.code.as_deref(), Some(code), "{file}");
            assert!(got.recipients.contains(&to.to_string()), "{file}: {:?}", got.recipients);
        }
    }

    #[test]
    fn the_native_eight_digit_code_needs_its_pattern() {
        let mail = sample("native-email-otp-12345678.eml");
        assert_eq!(six_digits().extract(&mail).expect("parses").code, None);
        let eight = Extractor::new(r"\b(\d{8})\b", None).expect("pattern");
        assert_eq!(eight.extract(&mail).expect("parses").code.as_deref(), Some("12345678"));
    }

    #[test]
    fn unrelated_mail_is_addressed_elsewhere_or_filtered_by_sender() {
        let noise = six_digits().extract(&sample("noise-newsletter.eml")).expect("parses");
        assert_eq!(noise.recipients, ["loadtest@mail.example.test"], "not a plus-address any user waits on");
        let filtered = Extractor::new(r"\b(\d{6})\b", Some("signin@auth.example.test")).expect("pattern");
        assert_eq!(filtered.extract(&sample("noise-newsletter.eml")).expect("parses").code, None);
        assert_eq!(
            filtered.extract(&sample("qp-alternative-059317.eml")).expect("parses").code.as_deref(),
            Some("059317")
        );
    }
}
