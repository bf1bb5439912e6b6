//! Comparing secrets without leaking them through timing.

use sha2::{Digest, Sha256};

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
    fn sha256_hex_is_the_standard_digest() {
        assert_eq!(
            sha256_hex(b"abc", 64),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(sha256_hex(b"abc", 8), "ba7816bf");
    }
}
