//! Flows: what a virtual user does in one iteration — `login`, `retry` (k wrong codes, then the right
//! one) and `lockout` (max_attempts wrong codes, then the real code on the old session) — and the
//! probes run before the load. `context` holds what they share and the timed steps they are made of.

mod context;
mod lockout;
pub mod probes;
mod sign_in;

pub use context::{FlowContext, Mailing, StepError, StepRecord};

/// A code that is certainly not `code` (every digit shifted by five).
pub fn wrong_code(code: &str) -> String {
    code.chars().map(|c| c.to_digit(10).map_or('0', |d| char::from(b'0' + ((d as u8 + 5) % 10)))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_codes_differ_in_every_digit() {
        assert_eq!(wrong_code("059317"), "504862");
        for code in ["000000", "999999", "123456"] {
            assert!(wrong_code(code).chars().zip(code.chars()).all(|(a, b)| a != b));
        }
    }
}
