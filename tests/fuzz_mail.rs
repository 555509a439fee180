//! Fuzzed mail fed to the code extractor (`otp::extract::Extractor`): generated MIME trees (multipart
//! mixed/alternative/related nested several deep, text and HTML-only leaves), quoted-printable and
//! base64 bodies (valid, with broken padding, bad escapes and garbage), known and unknown charsets,
//! headers with RFC 2047 encoded words (valid, broken, unknown charsets), odd Unicode, raw byte
//! damage; and a few giant cases (parts of several MB, a thousand nesting levels). Proves the
//! extractor never panics or hangs, and that a well-formed mail carrying a code in any encoding
//! still yields that code and its recipient. Fixed seed (`fuzz::SEED`), bounded case counts.

mod fuzz;

use std::time::Duration;

use base64::Engine;
use fuzz::{bounded, check, odd_unicode};
use otp_harness::otp::extract::{Extracted, Extractor};
use proptest::prelude::*;

const CODE: &str = "482913";
const TO: &str = "loadtest+17@mail.example.test";

/// Time bound of one ordinary case; giant cases get more (a debug build).
const LIMIT: Duration = Duration::from_secs(5);
const GIANT_LIMIT: Duration = Duration::from_secs(30);

fn extractor() -> Extractor {
    Extractor::new(r"\b(\d{6})\b", None).expect("pattern")
}

fn extract_bounded(raw: Vec<u8>, limit: Duration) -> Result<Option<Extracted>, String> {
    bounded(limit, move || extractor().extract(&raw))
}

#[derive(Debug, Clone, Copy)]
enum Encoding {
    SevenBit,
    EightBit,
    Qp,
    Base64,
    Unknown,
}

/// A body leaf or a multipart of them.
#[derive(Debug, Clone)]
enum Part {
    Leaf { html: bool, charset: String, encoding: Encoding, text: String, damage: u8 },
    Multi { subtype: &'static str, boundary: String, parts: Vec<Part>, close: bool },
}

fn charset() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("utf-8".to_string()),
        Just("UTF-8".to_string()),
        Just("iso-8859-1".to_string()),
        Just("windows-1252".to_string()),
        Just("shift_jis".to_string()),
        Just("utf-7".to_string()),
        Just("x-unknown-42".to_string()),
        Just(String::new()),
        "[a-z0-9-]{1,20}",
    ]
}

fn encoding() -> impl Strategy<Value = Encoding> {
    prop_oneof![
        Just(Encoding::SevenBit),
        Just(Encoding::EightBit),
        Just(Encoding::Qp),
        Just(Encoding::Base64),
        Just(Encoding::Unknown),
    ]
}

fn body_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(format!("Your sign-in code is {CODE}.")),
        odd_unicode().prop_map(|u| format!("{u} code {u}{CODE}{u}")),
        "\\PC{0,200}",
        (odd_unicode(), 0usize..2000).prop_map(|(u, n)| u.repeat(n)),
    ]
}

fn leaf() -> impl Strategy<Value = Part> {
    (any::<bool>(), charset(), encoding(), body_text(), any::<u8>())
        .prop_map(|(html, charset, encoding, text, damage)| Part::Leaf { html, charset, encoding, text, damage })
}

fn part() -> impl Strategy<Value = Part> {
    leaf().prop_recursive(6, 40, 4, |inner| {
        (
            prop::sample::select(vec!["mixed", "alternative", "related", "x-weird"]),
            prop_oneof![Just("b1".to_string()), Just("=_b".to_string()), "[a-zA-Z0-9'()+_,./:=? -]{0,70}"],
            prop::collection::vec(inner, 0..4),
            prop::bool::weighted(0.9),
        )
            .prop_map(|(subtype, boundary, parts, close)| Part::Multi { subtype, boundary, parts, close })
    })
}

/// Quoted-printable as a sender writes it (soft line breaks at 76).
fn qp(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut line = 0;
    for &b in bytes {
        let piece = if (b' '..=b'~').contains(&b) && b != b'=' { (b as char).to_string() } else { format!("={b:02X}") };
        if line + piece.len() > 75 {
            out.push_str("=\r\n");
            line = 0;
        }
        line += piece.len();
        out.push_str(&piece);
    }
    out
}

/// Damages an encoded body per `damage`: 0–127 none; else broken base64 padding, a bad QP escape,
/// a cut, or raw garbage.
fn damaged(body: String, damage: u8) -> String {
    match damage {
        0..=127 => body,
        128..=159 => format!("{}=", body.trim_end_matches('=')).replacen('A', "=", 1),
        160..=191 => format!("{body}=Z=\r\n=4"),
        192..=223 => body.chars().take(body.chars().count() / 2).collect(),
        _ => format!("{body}\u{0}\u{FFFD}%%%***\r\n===="),
    }
}

fn render(part: &Part, out: &mut String) {
    match part {
        Part::Leaf { html, charset, encoding, text, damage } => {
            let kind = if *html { "text/html" } else { "text/plain" };
            let text = if *html { format!("<html><body><p>{text}</p></body></html>") } else { text.clone() };
            let (name, body) = match encoding {
                Encoding::SevenBit => ("7bit", text),
                Encoding::EightBit => ("8bit", text),
                Encoding::Qp => ("quoted-printable", qp(text.as_bytes())),
                Encoding::Base64 => {
                    let b = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
                    let lines: Vec<String> =
                        b.as_bytes().chunks(76).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
                    ("base64", lines.join("\r\n"))
                }
                Encoding::Unknown => ("x-uuencode-ish", text),
            };
            out.push_str(&format!(
                "Content-Type: {kind}; charset=\"{charset}\"\r\nContent-Transfer-Encoding: {name}\r\n\r\n{}\r\n",
                damaged(body, *damage)
            ));
        }
        Part::Multi { subtype, boundary, parts, close } => {
            out.push_str(&format!("Content-Type: multipart/{subtype}; boundary=\"{boundary}\"\r\n\r\npreamble\r\n"));
            for p in parts {
                out.push_str(&format!("--{boundary}\r\n"));
                render(p, out);
            }
            if *close {
                out.push_str(&format!("--{boundary}--\r\nepilogue\r\n"));
            }
        }
    }
}

/// A header value: plain, odd Unicode raw, or RFC 2047 encoded words (valid, broken or in an
/// unknown charset).
fn header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(format!("Your code {CODE}")),
        odd_unicode(),
        odd_unicode().prop_map(|u| format!(
            "=?utf-8?B?{}?=",
            base64::engine::general_purpose::STANDARD.encode(format!("{u} {CODE}"))
        )),
        odd_unicode().prop_map(|u| format!("=?UTF-8?Q?{}?=", qp(u.as_bytes()).replace("=\r\n", ""))),
        Just("=?x-unknown?Q?caf=E9?= =?utf-8?B?broken padding?=".to_string()),
        Just("=?utf-8?B?4oCP?= =?utf-8?X?nope?= =?".to_string()),
        Just("=?iso-8859-1?q?=A0=FF=00?=\r\n =?utf-8?b?8J+UpQ==?=".to_string()),
        "\\PC{0,300}",
    ]
}

/// A whole message: headers (To may be an encoded word), then the MIME tree.
fn message() -> impl Strategy<Value = Vec<u8>> {
    (header_value(), header_value(), any::<bool>(), part(), any::<bool>()).prop_map(
        |(subject, display, delivered, body, crlf)| {
            let mut out = format!(
                "From: {display} <no-reply@auth.example.test>\r\nTo: {display} <{TO}>\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
            );
            if delivered {
                out.push_str(&format!("Delivered-To: <{TO}>\r\n"));
            }
            render(&body, &mut out);
            if !crlf {
                out = out.replace("\r\n", "\n");
            }
            out.into_bytes()
        },
    )
}

#[test]
fn generated_mime_never_panics_or_hangs() {
    check(256, message(), |raw| match extract_bounded(raw.clone(), LIMIT) {
        Err(what) => Err(TestCaseError::fail(format!("{what}\n--- mail ---\n{}", String::from_utf8_lossy(&raw)))),
        Ok(_) => Ok(()),
    });
}

/// Raw damage on top: a cut at any byte, bytes flipped, a NUL and invalid UTF-8 spliced in.
#[test]
fn damaged_bytes_never_panic_or_hang() {
    let strategy = (message(), any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 0..64), any::<bool>());
    check(256, strategy, |(mut raw, at, junk, cut)| {
        let i = at.index(raw.len() + 1);
        if cut {
            raw.truncate(i);
        } else {
            raw.splice(i..i, junk);
        }
        match extract_bounded(raw.clone(), LIMIT) {
            Err(what) => Err(TestCaseError::fail(format!("{what}\n--- mail ---\n{}", String::from_utf8_lossy(&raw)))),
            Ok(_) => Ok(()),
        }
    });
}

/// The suite can fail: a well-formed mail with the code in a text/plain (or HTML-only) part, in any
/// valid encoding and a known charset, nested in multiparts, yields the code and its recipient.
#[test]
fn a_well_formed_code_mail_yields_its_code_in_every_encoding() {
    let valid_leaf = (any::<bool>(), prop::sample::select(vec![Encoding::SevenBit, Encoding::Qp, Encoding::Base64]))
        .prop_map(|(html, encoding)| Part::Leaf {
            html,
            charset: "utf-8".into(),
            encoding,
            text: format!("Your sign-in code is {CODE}."),
            damage: 0,
        });
    let nested = (valid_leaf, 0usize..5).prop_map(|(leaf, depth)| {
        (0..depth).fold(leaf, |inner, d| Part::Multi {
            subtype: "mixed",
            boundary: format!("level{d}"),
            parts: vec![inner],
            close: true,
        })
    });
    check(64, nested, |body| {
        let mut raw =
            format!("From: <no-reply@auth.example.test>\r\nTo: <{TO}>\r\nSubject: sign in\r\nMIME-Version: 1.0\r\n");
        render(&body, &mut raw);
        let got = extract_bounded(raw.clone().into_bytes(), LIMIT).map_err(TestCaseError::fail)?;
        let got = got.ok_or_else(|| TestCaseError::fail(format!("not parsed:\n{raw}")))?;
        prop_assert_eq!(got.code.as_deref(), Some(CODE), "{}", raw);
        prop_assert!(got.recipients.contains(&TO.to_string()), "{:?}", got.recipients);
        Ok(())
    });
}

/// Giant parts and deep nesting: several MB of base64 (broken padding at the end), of
/// quoted-printable, of HTML, of one header line; a thousand nested multiparts. Each within a bound.
#[test]
fn giant_parts_and_deep_nesting_stay_bounded() {
    let mb = 1 << 20;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("x{CODE} ").repeat(3 * mb / 8));
    let b64: Vec<String> = b64.as_bytes().chunks(76).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
    let headers = format!("From: <no-reply@auth.example.test>\r\nTo: <{TO}>\r\nMIME-Version: 1.0\r\n");
    let cases = [
        (
            "base64, 3 MB, broken padding",
            format!(
                "{headers}Subject: s\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n{}A=\r\n",
                b64.join("\r\n")
            ),
        ),
        (
            "quoted-printable, 4 MB of escapes",
            format!(
                "{headers}Subject: s\r\nContent-Type: text/plain; charset=x-unknown\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n{}\r\n",
                "=E2=80=8F=F0=9F=94=A5=\r\n".repeat(4 * mb / 24)
            ),
        ),
        (
            "HTML only, 4 MB, unclosed tags",
            format!(
                "{headers}Subject: s\r\nContent-Type: text/html\r\n\r\n{}\r\n",
                "<div><p>&#x202E;&amp".repeat(4 * mb / 20)
            ),
        ),
        (
            "a 2 MB subject of encoded words",
            format!("{headers}Subject: {}\r\n\r\nbody\r\n", "=?utf-8?B?8J+UpQ==?= ".repeat(2 * mb / 21)),
        ),
        ("a thousand nested multiparts", {
            let mut raw = headers.clone() + "Subject: s\r\n";
            for d in 0..1000 {
                raw.push_str(&format!("Content-Type: multipart/mixed; boundary=\"n{d}\"\r\n\r\n--n{d}\r\n"));
            }
            raw.push_str(&format!("Content-Type: text/plain\r\n\r\ncode {CODE}\r\n"));
            raw
        }),
        ("10,000 sibling parts", {
            let mut raw = headers.clone() + "Subject: s\r\nContent-Type: multipart/mixed; boundary=\"s\"\r\n\r\n";
            for _ in 0..10_000 {
                raw.push_str("--s\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJD=\r\n");
            }
            raw
        }),
    ];
    for (what, raw) in cases {
        let started = std::time::Instant::now();
        if let Err(e) = extract_bounded(raw.into_bytes(), GIANT_LIMIT) {
            panic!("{what}: {e}");
        }
        eprintln!("{what}: {:?}", started.elapsed());
    }
}
