//! Code randomness: are the digits of the codes the run was mailed uniform — over all digits together
//! and at each position of the code? Three kinds of test, one family:
//! - **pooled**: a chi-squared test of all digits' frequencies (9 degrees of freedom). A digit that never
//!   appears anywhere (the seed's LCG never yields 9) shows after about 50 six-digit codes.
//! - **per position**: a chi-squared test of each position's digit frequencies. A flaw at one position
//!   only — `Math.floor(100000 + Math.random() * 900000)` never puts a 0 first — barely moves the pooled
//!   counts (about 2,000 codes to see it) but fails its position's test after about 400.
//! - **missing digit**: a digit that never appeared at a position over `n` codes. Exact under
//!   uniformity (probability 0.9^n per digit and position): the never-0-first generator fails it after
//!   about 150 codes.
//!
//! A sound generator must fail the whole family no more than once in 10,000 runs. Multiple testing is
//! corrected with Bonferroni's inequality: the family's 0.0001 is split into thirds, one for the pooled
//! test and one for the missing-digit tests, each split again between its tests (each digit at each
//! position); the per-position chi-squared tests get half of the last third, because at 50–100 codes
//! (5–10 expected per digit) the chi-squared approximation was measured to fire 1.3–1.5 times its
//! nominal rate — so even then the chance that any test fails a uniform generator stays below 0.0001
//! (1/3 + 1/3 + 1.5 × 1/6 = 0.92 of it). Per-position chi-squared tests need at least 5 expected
//! occurrences per digit (50 codes), the textbook condition for the approximation; with fewer codes only
//! the pooled and exact tests run.
//! Only counts are kept (`DigitCounts`: per position, never the codes), so an hour-long run holds no
//! more than a short one.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{Check, Verdicts};
use crate::cognito::Auth;

/// The family's false-failure rate for a uniform generator.
pub const FAMILY_ALPHA: f64 = 1e-4;
/// Positions counted (codes are at most 10 digits here; EMAIL_OTP has 8).
const MAX_POSITIONS: usize = 12;
/// Codes needed before a position's chi-squared test runs (5 expected per digit).
const MIN_CODES_PER_POSITION_TEST: u64 = 50;

/// How often each digit appeared, overall and at each position, and how many codes: all the tests need.
#[derive(Debug)]
pub struct DigitCounts {
    digits: [AtomicU64; 10],
    positions: [[AtomicU64; 10]; MAX_POSITIONS],
    codes: AtomicU64,
}

impl Default for DigitCounts {
    fn default() -> Self {
        Self {
            digits: Default::default(),
            positions: std::array::from_fn(|_| Default::default()),
            codes: AtomicU64::new(0),
        }
    }
}

impl DigitCounts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one code's digits (other characters are ignored; positions count digits only).
    pub fn add(&self, code: &str) {
        self.codes.fetch_add(1, Ordering::Relaxed);
        for (position, b) in code.bytes().filter(u8::is_ascii_digit).enumerate() {
            let digit = usize::from(b - b'0');
            self.digits[digit].fetch_add(1, Ordering::Relaxed);
            if let Some(row) = self.positions.get(position) {
                row[digit].fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The tests over what was counted, given at least `min_codes` codes.
    pub fn verdict(&self, min_codes: usize) -> RandomnessVerdict {
        let load = |row: &[AtomicU64; 10]| -> [u64; 10] { std::array::from_fn(|d| row[d].load(Ordering::Relaxed)) };
        let pooled = load(&self.digits);
        let positions: Vec<[u64; 10]> =
            self.positions.iter().map(load).take_while(|row| row.iter().sum::<u64>() > 0).collect();
        test_family(&pooled, &positions, self.codes.load(Ordering::Relaxed) as usize, min_codes)
    }
}

/// Records the `code_randomness` verdict (for `auth`'s codes) over the codes counted.
pub fn record(verdicts: &Verdicts, auth: Auth, counts: &DigitCounts, min_codes: usize) {
    let check = Check::CodeRandomness.of(auth);
    match counts.verdict(min_codes) {
        RandomnessVerdict::Uniform { .. } => verdicts.pass(check),
        RandomnessVerdict::Skewed { codes, finding } => verdicts.fail(check, finding.describe(codes)),
        RandomnessVerdict::TooFew { codes, needed } => {
            verdicts.skip(check, format!("{codes} codes seen, {needed} needed (expect.min_codes_for_randomness)"))
        }
    }
}

/// The outcome of the tests.
#[derive(Debug, Clone, PartialEq)]
pub enum RandomnessVerdict {
    Uniform { codes: usize },
    Skewed { codes: usize, finding: Finding },
    TooFew { codes: usize, needed: usize },
}

/// The first test that failed, with what it saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Finding {
    /// All digits together are not uniform.
    Pooled { chi_squared: f64, p: f64, rarest_digit: u8, rarest_count: u64, expected: f64 },
    /// A digit never appeared at a position (1-based).
    MissingAtPosition { position: usize, digit: u8, p: f64 },
    /// A position's digits are not uniform.
    Position { position: usize, chi_squared: f64, p: f64, rarest_digit: u8, rarest_count: u64, expected: f64 },
}

impl Finding {
    /// The verdict's reason, in words a person reads.
    pub fn describe(&self, codes: usize) -> String {
        match self {
            Finding::Pooled { chi_squared, p, rarest_digit, rarest_count, expected } => format!(
                "digit frequencies over {codes} codes are not uniform (chi-squared {chi_squared:.1}, p = {p:.1e}): \
                 digit {rarest_digit} appeared {rarest_count} times, {expected:.0} expected"
            ),
            Finding::MissingAtPosition { position, digit, p } => format!(
                "digit {digit} never appeared at position {position} of {codes} codes (a uniform generator misses a \
                 digit there with probability {p:.1e}){}",
                if *position == 1 && *digit == 0 {
                    ": codes never start with 0 — e.g. Math.floor(100000 + Math.random() * 900000)"
                } else {
                    ""
                }
            ),
            Finding::Position { position, chi_squared, p, rarest_digit, rarest_count, expected } => format!(
                "the digits at position {position} over {codes} codes are not uniform (chi-squared {chi_squared:.1}, \
                 p = {p:.1e}): digit {rarest_digit} appeared there {rarest_count} times, {expected:.0} expected"
            ),
        }
    }
}

/// Tests the digits of `codes` (non-digits are ignored).
pub fn digit_frequencies<'a>(codes: impl IntoIterator<Item = &'a str>, min_codes: usize) -> RandomnessVerdict {
    let counts = DigitCounts::new();
    for code in codes {
        counts.add(code);
    }
    counts.verdict(min_codes)
}

/// Pearson's statistic of 10 counts against a uniform expectation; with the rarest digit.
fn pearson(counts: &[u64; 10]) -> (f64, f64, u8, u64) {
    let total: u64 = counts.iter().sum();
    let expected = total as f64 / 10.0;
    let chi_squared = counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
    let (rarest_digit, rarest_count) =
        counts.iter().enumerate().min_by_key(|(_, c)| **c).map(|(d, c)| (d as u8, *c)).unwrap_or((0, 0));
    (chi_squared, expected, rarest_digit, rarest_count)
}

fn test_family(pooled: &[u64; 10], positions: &[[u64; 10]], n_codes: usize, min_codes: usize) -> RandomnessVerdict {
    if n_codes < min_codes.max(1) {
        return RandomnessVerdict::TooFew { codes: n_codes, needed: min_codes.max(1) };
    }
    let share = FAMILY_ALPHA / 3.0;
    let skewed = |finding| RandomnessVerdict::Skewed { codes: n_codes, finding };
    let (chi_squared, expected, rarest_digit, rarest_count) = pearson(pooled);
    let p = chi_squared_9_survival(chi_squared);
    if p < share {
        return skewed(Finding::Pooled { chi_squared, p, rarest_digit, rarest_count, expected });
    }
    let per_cell = share / (10 * positions.len().max(1)) as f64;
    for (i, row) in positions.iter().enumerate() {
        let n: u64 = row.iter().sum();
        let p = 0.9f64.powf(n as f64);
        if let Some(digit) = row.iter().position(|&c| c == 0)
            && p < per_cell
        {
            return skewed(Finding::MissingAtPosition { position: i + 1, digit: digit as u8, p });
        }
    }
    // Half a share: the approximation's excess at few codes (see the module's comment).
    let per_position = share / 2.0 / positions.len().max(1) as f64;
    for (i, row) in positions.iter().enumerate() {
        if row.iter().sum::<u64>() < MIN_CODES_PER_POSITION_TEST {
            continue;
        }
        let (chi_squared, expected, rarest_digit, rarest_count) = pearson(row);
        let p = chi_squared_9_survival(chi_squared);
        if p < per_position {
            return skewed(Finding::Position { position: i + 1, chi_squared, p, rarest_digit, rarest_count, expected });
        }
    }
    RandomnessVerdict::Uniform { codes: n_codes }
}

/// P(X ≥ x) for X chi-squared with 9 degrees of freedom: the regularized upper incomplete gamma
/// Q(4.5, x/2), by its series below a + 1 and its continued fraction above (Numerical Recipes §6.2).
pub fn chi_squared_9_survival(x: f64) -> f64 {
    upper_regularized_gamma(4.5, x / 2.0)
}

fn upper_regularized_gamma(a: f64, x: f64) -> f64 {
    if x <= 0.0 {
        return 1.0;
    }
    let log_prefix = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        // Series for P(a, x).
        let (mut sum, mut term, mut ap) = (1.0 / a, 1.0 / a, a);
        for _ in 0..500 {
            ap += 1.0;
            term *= x / ap;
            sum += term;
            if term.abs() < sum.abs() * 1e-15 {
                break;
            }
        }
        (1.0 - sum * log_prefix.exp()).clamp(0.0, 1.0)
    } else {
        // Lentz's continued fraction for Q(a, x).
        let tiny = 1e-300;
        let mut b = x + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..500 {
            let an = -(i as f64) * (i as f64 - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-15 {
                break;
            }
        }
        (log_prefix.exp() * h).clamp(0.0, 1.0)
    }
}

/// ln Γ(x) for x > 0 (Lanczos, g = 7, n = 9).
fn ln_gamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    let x = x - 1.0;
    let t = x + G + 0.5;
    let series = C[0] + C.iter().enumerate().skip(1).map(|(i, c)| c / (x + i as f64)).sum::<f64>();
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + series.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window_codes(alphabet: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| alphabet.chars().cycle().skip(i % alphabet.len()).take(6).collect()).collect()
    }

    #[test]
    fn the_survival_function_matches_the_tables() {
        // Critical values of chi-squared with 9 degrees of freedom.
        for (x, p) in [(16.919, 0.05), (21.666, 0.01), (27.877, 0.001), (33.720, 0.0001), (9.0, 0.437_274)] {
            let got = chi_squared_9_survival(x);
            assert!((got - p).abs() / p < 0.002, "Q({x}) = {got}, table {p}");
        }
        assert_eq!(chi_squared_9_survival(0.0), 1.0);
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
            RandomnessVerdict::Skewed { finding: Finding::Pooled { rarest_count, .. }, .. } => {
                assert_eq!(rarest_count, 0)
            }
            other => panic!("expected skewed, got {other:?}"),
        }
        assert!(matches!(digit_frequencies(["123456"], 40), RandomnessVerdict::TooFew { codes: 1, needed: 40 }));
    }

    /// Codes from a seeded xorshift (a sound generator's output shape, reproducible).
    fn codes_from(seed: u64, n: usize, first_never_zero: bool) -> Vec<String> {
        let mut state = seed;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        (0..n)
            .map(|_| {
                let value = if first_never_zero { 100_000 + next() % 900_000 } else { next() % 1_000_000 };
                format!("{value:06}")
            })
            .collect()
    }

    #[test]
    fn a_first_digit_that_is_never_zero_fails_where_the_pooled_test_cannot_see_it() {
        let flawed = codes_from(0x9e37_79b9_7f4a_7c15, 300, true);
        let pooled_only = {
            let counts = DigitCounts::new();
            flawed.iter().for_each(|c| counts.add(c));
            let pooled: [u64; 10] = std::array::from_fn(|d| counts.digits[d].load(Ordering::Relaxed));
            test_family(&pooled, &[], flawed.len(), 50)
        };
        assert!(
            matches!(pooled_only, RandomnessVerdict::Uniform { .. }),
            "the pooled test alone passes it: {pooled_only:?}"
        );
        match digit_frequencies(flawed.iter().map(String::as_str), 50) {
            RandomnessVerdict::Skewed {
                finding: finding @ Finding::MissingAtPosition { position: 1, digit: 0, .. },
                codes,
            } => {
                assert!(finding.describe(codes).contains("never start with 0"), "{}", finding.describe(codes));
            }
            other => panic!("expected a missing first 0, got {other:?}"),
        }
        let sound = codes_from(0x9e37_79b9_7f4a_7c15, 300, false);
        assert!(matches!(digit_frequencies(sound.iter().map(String::as_str), 50), RandomnessVerdict::Uniform { .. }));
    }

    #[test]
    fn a_skewed_position_fails_its_chi_squared_test() {
        // Position 3 favours low digits (0–4 twice as often), everything else uniform.
        let mut codes = codes_from(42, 400, false);
        for (i, code) in codes.iter_mut().enumerate() {
            let digit = if i % 3 == 0 { (i / 3 % 5) + 5 } else { i % 5 };
            code.replace_range(2..3, &digit.to_string());
        }
        match digit_frequencies(codes.iter().map(String::as_str), 50) {
            RandomnessVerdict::Skewed { finding: Finding::Position { position: 3, .. }, .. } => {}
            other => panic!("expected position 3 to fail, got {other:?}"),
        }
    }
}
