//! One-time code generation: the CSPRNG the seed's Create trigger uses, and the weak generator a
//! defective pool ships (clock-seeded, and it never yields the digit 9).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;

/// Makes one-time codes of a fixed number of digits.
#[derive(Debug)]
pub enum CodeGenerator {
    /// Uniform digits from the operating system's CSPRNG-seeded thread generator.
    Secure { length: usize },
    /// A linear congruential generator seeded from the clock; digits 0–8 only. A deliberate defect.
    Weak { length: usize, state: AtomicU64 },
}

impl CodeGenerator {
    pub fn secure(length: usize) -> Self {
        Self::Secure { length }
    }

    pub fn weak(length: usize) -> Self {
        let seed = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1);
        Self::Weak { length, state: AtomicU64::new(seed) }
    }

    /// A new code.
    pub fn next_code(&self) -> String {
        match self {
            Self::Secure { length } => {
                let mut rng = rand::rng();
                (0..*length).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect()
            }
            Self::Weak { length, state } => (0..*length)
                .map(|_| {
                    let next = state
                        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                            Some(s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407))
                        })
                        .unwrap_or(0);
                    char::from(b'0' + ((next >> 33) % 9) as u8)
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digit_counts(generator: &CodeGenerator, codes: usize) -> [usize; 10] {
        let mut counts = [0usize; 10];
        for _ in 0..codes {
            let code = generator.next_code();
            assert_eq!(code.len(), 6);
            for b in code.bytes() {
                counts[usize::from(b - b'0')] += 1;
            }
        }
        counts
    }

    #[test]
    fn secure_codes_use_every_digit_evenly() {
        let counts = digit_counts(&CodeGenerator::secure(6), 2000);
        // 12,000 digits: 1,200 expected each; 5 sigma is about ±164.
        for (digit, n) in counts.iter().enumerate() {
            assert!((1000..1400).contains(n), "digit {digit} appeared {n} times");
        }
    }

    #[test]
    fn weak_codes_never_contain_nine() {
        let counts = digit_counts(&CodeGenerator::weak(6), 2000);
        assert_eq!(counts[9], 0);
        assert!(counts[..9].iter().all(|&n| n > 0));
    }
}
