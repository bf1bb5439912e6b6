//! Encryption at rest for cached entries: AES-256-GCM under a keyring (`CACHE_ENCRYPTION_KEY`),
//! bound to the entry's cache key, so an entry can be read only with a known key and only under
//! the key it was written for. Anything else (tampered, unknown key id, moved) is a miss.
//!
//! Sealed form: `v1.<key id>.<base64url nonce>.<base64url ciphertext+tag>`.
//!
//! Where a stored name must stay the same for the same data (a sorted set's member, which a
//! sealed value's random nonce would change on every write), the keyring gives a keyed hash
//! instead ([`Keyring::keyed_hash`]): without the key, a guess cannot be checked against it.

use crate::settings::SettingError;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The bytes of a nonce; the caller supplies fresh random ones for every seal.
pub const NONCE_LEN: usize = 12;

/// The keys entries may be sealed with: the first seals, all of them open (for rotation).
#[derive(Clone)]
pub struct Keyring {
    keys: Vec<Key>,
}

#[derive(Clone)]
struct Key {
    id: String,
    raw: [u8; 32],
}

/// The pure-Rust cipher for `raw` (the backend's; the worker uses WebCrypto).
fn cipher(raw: &[u8; 32]) -> Aes256Gcm {
    Aes256Gcm::new(raw.into())
}

impl std::fmt::Debug for Keyring {
    /// Key material is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("key_ids", &self.keys.iter().map(|k| &k.id).collect::<Vec<_>>()).finish()
    }
}

/// Why a sealed entry could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("not a sealed entry")]
    Malformed,
    #[error("sealed under an unknown key id")]
    UnknownKey,
    #[error("failed authentication (tampered, or not written for this cache key)")]
    Forged,
}

/// A sealed entry taken apart: the key it names, its nonce and its ciphertext with the tag
/// appended. (The worker takes entries apart in the runtime, by the same rules:
/// `src/webcrypto.rs`, `read_sealed`.)
struct Envelope<'a> {
    key: &'a [u8; 32],
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

/// What precedes the ciphertext in a sealed entry (`v1.<key id>.<nonce>`), read: the key it names
/// and the nonce.
struct Head<'a> {
    key: &'a [u8; 32],
    nonce: [u8; NONCE_LEN],
}

/// Splits a sealed entry at its third dot: the head (`v1.<key id>.<nonce>`) and the base64url
/// ciphertext. `None` when there are fewer than three dots.
fn split(sealed: &str) -> Option<(&str, &str)> {
    let (at, _) = sealed.match_indices('.').nth(2)?;
    Some((&sealed[..at], &sealed[at + 1..]))
}

/// The ciphertext's bytes (with the tag) from its base64url text.
fn decode_ciphertext(text: &str) -> Result<Vec<u8>, OpenError> {
    URL_SAFE_NO_PAD.decode(text).map_err(|_| OpenError::Malformed)
}

impl Keyring {
    /// Parses `CACHE_ENCRYPTION_KEY`: comma-separated `<key id>:<base64 of 32 bytes>`, the current
    /// key first. Key ids are 1 to 16 of `[A-Za-z0-9_-]`.
    pub fn parse(name: &'static str, raw: &str) -> Result<Self, SettingError> {
        let invalid = || SettingError::Invalid {
            name,
            expected: "comma-separated <key id>:<base64 of 32 bytes>, the current key first".into(),
            got: "(hidden)".into(),
        };
        let mut keys: Vec<Key> = Vec::new();
        for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (id, key) = entry.split_once(':').ok_or_else(invalid)?;
            let id_ok = (1..=16).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            let bytes = STANDARD.decode(key.trim()).or_else(|_| URL_SAFE_NO_PAD.decode(key.trim())).map_err(|_| invalid())?;
            let raw: [u8; 32] = bytes.as_slice().try_into().map_err(|_| invalid())?;
            if !id_ok || keys.iter().any(|known| known.id == id) {
                return Err(invalid());
            }
            keys.push(Key { id: id.to_owned(), raw });
        }
        if keys.is_empty() {
            return Err(invalid());
        }
        Ok(Self { keys })
    }

    /// Every key that opens entries, the sealing key first: its id and its bytes.
    pub fn keys(&self) -> impl Iterator<Item = (&str, &[u8; 32])> {
        self.keys.iter().map(|key| (key.id.as_str(), &key.raw))
    }

    /// The key that seals: its id and its bytes.
    pub fn sealing_key(&self) -> (&str, &[u8; 32]) {
        (&self.keys[0].id, &self.keys[0].raw)
    }

    /// The sealed form of `ciphertext` (tag appended) sealed with key `key_id` and `nonce`.
    pub fn sealed_form(key_id: &str, nonce: &[u8; NONCE_LEN], ciphertext: &[u8]) -> String {
        format!("v1.{key_id}.{}.{}", URL_SAFE_NO_PAD.encode(nonce), URL_SAFE_NO_PAD.encode(ciphertext))
    }

    /// Takes `sealed` apart: the key it names must be in this keyring.
    fn envelope<'a>(&'a self, sealed: &'a str) -> Result<Envelope<'a>, OpenError> {
        let (head, ciphertext) = split(sealed).ok_or(OpenError::Malformed)?;
        let Head { key, nonce } = self.head(head)?;
        Ok(Envelope { key, nonce, ciphertext: decode_ciphertext(ciphertext)? })
    }

    /// Reads a sealed entry's head (`v1.<key id>.<nonce>`, see [`split`]): the key it names must
    /// be in this keyring.
    fn head<'a>(&'a self, head: &str) -> Result<Head<'a>, OpenError> {
        let mut parts = head.split('.');
        let (Some("v1"), Some(id), Some(nonce), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err(OpenError::Malformed);
        };
        let key = self.keys.iter().find(|known| known.id == id).ok_or(OpenError::UnknownKey)?;
        let nonce = URL_SAFE_NO_PAD.decode(nonce).map_err(|_| OpenError::Malformed)?;
        let nonce: [u8; NONCE_LEN] = nonce.as_slice().try_into().map_err(|_| OpenError::Malformed)?;
        Ok(Head { key: &key.raw, nonce })
    }

    /// Seals `plaintext` for `cache_key` with the current key and `nonce`.
    pub fn seal(&self, cache_key: &str, plaintext: &str, nonce: [u8; NONCE_LEN]) -> String {
        let key = &self.keys[0];
        let ciphertext = cipher(&key.raw)
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plaintext.as_bytes(), aad: cache_key.as_bytes() })
            .expect("AES-GCM encrypts any message of cache size");
        Self::sealed_form(&key.id, &nonce, &ciphertext)
    }

    /// The keyed hash of `data` under the current key, as 32 hex digits (128 bits): HMAC-SHA256
    /// keyed with a key derived from the sealing key for this use alone, so the same data has
    /// the same hash until the key rotates, and a guessed search term or name cannot be checked
    /// against it without the key.
    pub fn keyed_hash(&self, data: &str) -> String {
        let derived = hmac_sha256(&self.keys[0].raw, KEYED_HASH_CONTEXT.as_bytes());
        hmac_sha256(&derived, data.as_bytes())[..16].iter().map(|byte| format!("{byte:02x}")).collect()
    }

    /// Opens an entry stored at `cache_key`.
    pub fn open(&self, cache_key: &str, sealed: &str) -> Result<String, OpenError> {
        let envelope = self.envelope(sealed)?;
        let plaintext = cipher(envelope.key)
            .decrypt(Nonce::from_slice(&envelope.nonce), Payload { msg: &envelope.ciphertext, aad: cache_key.as_bytes() })
            .map_err(|_| OpenError::Forged)?;
        String::from_utf8(plaintext).map_err(|_| OpenError::Malformed)
    }
}

/// What the key of [`Keyring::keyed_hash`] is derived for (never the sealing key itself).
const KEYED_HASH_CONTEXT: &str = "contact-list-cache keyed hash v1";

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "HxwdHhscGhkYFxYVFBMSERAPDg0MCwoJCAcGBQQDAgE=";

    fn ring(raw: &str) -> Keyring {
        Keyring::parse("CACHE_ENCRYPTION_KEY", raw).unwrap()
    }

    #[test]
    fn a_sealed_entry_opens_under_its_cache_key_only() {
        let keys = ring(&format!("k1:{K1}"));
        let sealed = keys.seal("contacts:a", r#"{"name":"Ann"}"#, [7; 12]);
        assert!(sealed.starts_with("v1.k1."));
        assert!(!sealed.contains("Ann"));
        assert_eq!(keys.open("contacts:a", &sealed).unwrap(), r#"{"name":"Ann"}"#);
        assert_eq!(keys.open("contacts:b", &sealed), Err(OpenError::Forged));
    }

    #[test]
    fn tampering_and_unknown_keys_are_refused() {
        let keys = ring(&format!("k1:{K1}"));
        let sealed = keys.seal("k", "secret", [1; 12]);
        let mut bytes = sealed.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(keys.open("k", &String::from_utf8(bytes).unwrap()), Err(OpenError::Forged));
        assert_eq!(ring(&format!("k2:{K2}")).open("k", &sealed), Err(OpenError::UnknownKey));
        assert_eq!(keys.open("k", "{\"plain\":true}"), Err(OpenError::Malformed));
        assert_eq!(keys.open("k", "v1.k1.short.x"), Err(OpenError::Malformed));
    }

    #[test]
    fn the_head_and_ciphertext_read_apart_are_the_envelope() {
        let keys = ring(&format!("k1:{K1}"));
        let sealed = keys.seal("k", "secret", [7; 12]);
        let (head, ciphertext) = split(&sealed).unwrap();
        let (read, whole) = (keys.head(head).unwrap(), keys.envelope(&sealed).unwrap());
        assert_eq!((read.key, read.nonce), (whole.key, whole.nonce));
        assert_eq!(URL_SAFE_NO_PAD.decode(ciphertext).unwrap(), whole.ciphertext);
        for bad in ["v1.k1", "v2.k1.AAAAAAAAAAAAAAAA", "v1.k1.x.AAAAAAAAAAAAAAAA", "v1.k1.AAAAAAAAAAAAAAAA.extra"] {
            assert!(keys.head(bad).is_err(), "{bad}");
        }
        assert_eq!(keys.head("v1.k9.AAAAAAAAAAAAAAAA").err(), Some(OpenError::UnknownKey));
        assert_eq!(split("v1.k1.no third dot"), None);
        assert_eq!(split("v1.k1.n.c.d"), Some(("v1.k1.n", "c.d")));
    }

    #[test]
    fn rotation_reads_old_entries_and_writes_with_the_new_key() {
        let old = ring(&format!("k1:{K1}"));
        let rotated = ring(&format!("k2:{K2}, k1:{K1}"));
        let sealed_before = old.seal("k", "v", [2; 12]);
        assert_eq!(rotated.open("k", &sealed_before).unwrap(), "v");
        assert!(rotated.seal("k", "v", [3; 12]).starts_with("v1.k2."));
    }

    #[test]
    fn a_keyed_hash_is_stable_under_one_key_and_another_under_another() {
        let keys = ring(&format!("k1:{K1}"));
        let hash = keys.keyed_hash("search=Ann Smith&page=1");
        assert_eq!(hash.len(), 32);
        assert!(hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(keys.keyed_hash("search=Ann Smith&page=1"), hash);
        assert_ne!(keys.keyed_hash("search=Ann Smith&page=2"), hash);
        // Not the plain SHA-256 a guess could be checked against, nor HMAC under the raw key.
        assert_ne!(hash, crate::secure::sha256_hex(b"search=Ann Smith&page=1", 32));
        let raw = STANDARD.decode(K1).unwrap();
        let under_raw: String = hmac_sha256(&raw, b"search=Ann Smith&page=1")[..16].iter().map(|b| format!("{b:02x}")).collect();
        assert_ne!(hash, under_raw);
        // The current key hashes; an older one in the ring does not change it.
        assert_eq!(ring(&format!("k1:{K1}, k2:{K2}")).keyed_hash("search=Ann Smith&page=1"), hash);
        assert_ne!(ring(&format!("k2:{K2}, k1:{K1}")).keyed_hash("search=Ann Smith&page=1"), hash);
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    #[test]
    fn bad_keyrings_are_refused_without_echoing_them() {
        for raw in ["", "k1", "k1:notbase64!", "k1:AAEC", &format!("k1:{K1},k1:{K2}"), &format!("bad id:{K1}")] {
            let err = Keyring::parse("CACHE_ENCRYPTION_KEY", raw).unwrap_err();
            assert!(!err.to_string().contains(K1), "{err}");
        }
        assert!(format!("{:?}", ring(&format!("k1:{K1}"))).contains("k1"));
    }
}
