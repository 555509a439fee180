//! Code randomness: a chi-squared test of digit frequencies over every code the run was mailed.
//! A weak generator (a digit that never appears, a skewed one) fails it; a uniform one passes at the
//! 0.0001 level (9 degrees of freedom: critical value 33.720), so a sound pool fails it once in 10,000
//! runs. A missing digit over N digits gives chi-squared ≈ N/9: about 50 six-digit codes reveal it.
//! Only the counts are kept (`DigitCounts`: eleven numbers), never the codes, so an hour-long run holds
//! no more than a short one.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Check, Verdicts};
use crate::cognito::Auth;

const CRITICAL_9_DOF: f64 = 33.720;

/// How often each digit appeared over the codes seen, and how many codes: all the test needs.
#[derive(Debug, Default)]
pub struct DigitCounts {
    digits: [AtomicU64; 10],
    codes: AtomicU64,
}

impl DigitCounts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one code's digits (other characters are ignored).
    pub fn add(&self, code: &str) {
        self.codes.fetch_add(1, Ordering::Relaxed);
        for b in code.bytes().filter(u8::is_ascii_digit) {
            self.digits[usize::from(b - b'0')].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The test over what was counted, given at least `min_codes` codes.
    pub fn verdict(&self, min_codes: usize) -> RandomnessVerdict {
        let counts: [u64; 10] = std::array::from_fn(|d| self.digits[d].load(Ordering::Relaxed));
        chi_squared(&counts, self.codes.load(Ordering::Relaxed) as usize, min_codes)
    }
}

/// Records the `code_randomness` verdict (for `auth`'s codes) over the codes counted.
pub fn record(verdicts: &Verdicts, auth: Auth, counts: &DigitCounts, min_codes: usize) {
    let check = Check::CodeRandomness.of(auth);
    match counts.verdict(min_codes) {
        RandomnessVerdict::Uniform { .. } => verdicts.pass(check),
        RandomnessVerdict::Skewed { codes, chi_squared, rarest_digit, rarest_count, expected } => verdicts.fail(
            check,
            format!(
                "digit frequencies over {codes} codes are not uniform (chi-squared {chi_squared:.1} > 33.7, p < 0.0001): \
                 digit {rarest_digit} appeared {rarest_count} times, {expected:.0} expected"
            ),
        ),
        RandomnessVerdict::TooFew { codes, needed } => {
            verdicts.skip(check, format!("{codes} codes seen, {needed} needed (expect.min_codes_for_randomness)"))
        }
    }
}

/// The outcome of the test.
#[derive(Debug, Clone, PartialEq)]
pub enum RandomnessVerdict {
    Uniform { codes: usize, chi_squared: f64 },
    Skewed { codes: usize, chi_squared: f64, rarest_digit: u8, rarest_count: u64, expected: f64 },
    TooFew { codes: usize, needed: usize },
}

/// Tests the digits of `codes` (non-digits are ignored).
pub fn digit_frequencies<'a>(codes: impl IntoIterator<Item = &'a str>, min_codes: usize) -> RandomnessVerdict {
    let counts = DigitCounts::new();
    for code in codes {
        counts.add(code);
    }
    counts.verdict(min_codes)
}

fn chi_squared(counts: &[u64; 10], n_codes: usize, min_codes: usize) -> RandomnessVerdict {
    if n_codes < min_codes.max(1) {
        return RandomnessVerdict::TooFew { codes: n_codes, needed: min_codes.max(1) };
    }
    let total: u64 = counts.iter().sum();
    let expected = total as f64 / 10.0;
    let chi_squared: f64 = counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
    if chi_squared <= CRITICAL_9_DOF {
        return RandomnessVerdict::Uniform { codes: n_codes, chi_squared };
    }
    let (rarest_digit, rarest_count) =
        counts.iter().enumerate().min_by_key(|(_, c)| **c).map(|(d, c)| (d as u8, *c)).unwrap_or((0, 0));
    RandomnessVerdict::Skewed { codes: n_codes, chi_squared, rarest_digit, rarest_count, expected }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window_codes(alphabet: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| alphabet.chars().cycle().skip(i % alphabet.len()).take(6).collect()).collect()
    }

    #[test]
    fn uniform_digits_pass_and_a_missing_digit_fails() {
        let balanced = window_codes("0123456789", 60);
        assert!(matches!(
            digit_frequencies(balanced.iter().map(String::as_str), 40),
            RandomnessVerdict::Uniform { .. }
        ));
        let no_zero_or_nine = window_codes("12345678", 64);
        match digit_frequencies(no_zero_or_nine.iter().map(String::as_str), 40) {
            RandomnessVerdict::Skewed { rarest_count, .. } => assert_eq!(rarest_count, 0),
            other => panic!("expected skewed, got {other:?}"),
        }
        assert!(matches!(digit_frequencies(["123456"], 40), RandomnessVerdict::TooFew { codes: 1, needed: 40 }));
    }
}
