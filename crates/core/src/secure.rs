//! Comparing secrets without leaking them through timing, and shared secrets that rotate with no
//! downtime (a current value and, during a switch, the previous one, both accepted).

use crate::settings::Secret;
use sha2::{Digest, Sha256};

/// A shared secret as its receiver holds it: the current value (`NAME`) and, while a rotation is
/// under way, the previous one (`NAME_PREVIOUS`). A presented value is accepted when it matches
/// either; the sender always presents the current one. Rotating: set `NAME_PREVIOUS` to the old
/// value and `NAME` to the new one on every receiver, then on every sender, then remove
/// `NAME_PREVIOUS`.
#[derive(Debug, Clone)]
pub struct RotatingSecret {
    current: Secret,
    previous: Option<Secret>,
}

impl RotatingSecret {
    /// From the two settings' raw values; an empty previous value counts as none.
    pub fn new(current: String, previous: Option<String>) -> Self {
        let previous = previous.filter(|value| !value.trim().is_empty()).map(Secret::new);
        Self { current: Secret::new(current), previous }
    }

    /// The value a sender presents.
    pub fn current(&self) -> &Secret {
        &self.current
    }

    /// Whether `given` is the current or the previous value (each compared in constant time,
    /// both always compared).
    pub fn accepts(&self, given: &[u8]) -> bool {
        let current = secrets_match(given, self.current.expose().as_bytes());
        let previous = self.previous.as_ref().is_some_and(|previous| secrets_match(given, previous.expose().as_bytes()));
        current | previous
    }
}

/// Whether `given` equals `expected`, in time independent of where they differ and of their
/// lengths: both are hashed first, and the digests compared without early exit.
pub fn secrets_match(given: &[u8], expected: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The first `hex_chars` hex digits of the SHA-256 of `input`.
pub fn sha256_hex(input: &[u8], hex_chars: usize) -> String {
    Sha256::digest(input)
        .iter()
        .flat_map(|byte| [byte >> 4, byte & 0x0f])
        .take(hex_chars)
        .map(|nibble| char::from_digit(u32::from(nibble), 16).expect("a nibble is a hex digit"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_secrets_match_and_others_do_not() {
        assert!(secrets_match(b"s3cret", b"s3cret"));
        assert!(!secrets_match(b"s3cret", b"s3cres"));
        assert!(!secrets_match(b"", b"s3cret"));
        assert!(!secrets_match(b"s3cret-and-more", b"s3cret"));
    }

    #[test]
    fn a_rotating_secret_accepts_the_current_and_the_previous_value_only() {
        let during = RotatingSecret::new("new".into(), Some("old".into()));
        assert!(during.accepts(b"new") && during.accepts(b"old"));
        assert!(!during.accepts(b"other") && !during.accepts(b""));
        assert_eq!(during.current().expose(), "new");
        let after = RotatingSecret::new("new".into(), Some(" ".into()));
        assert!(after.accepts(b"new") && !after.accepts(b"old") && !after.accepts(b" "));
    }

    #[test]
    fn sha256_hex_is_the_standard_digest() {
        assert_eq!(
            sha256_hex(b"abc", 64),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha256_hex(b"abc", 8), "ba7816bf");
    }
}
