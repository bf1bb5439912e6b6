//! AES-256-GCM for KV entries through the runtime's WebCrypto (native code in workerd, tens of
//! times faster than the core's pure-Rust cipher compiled to wasm), in the sealed format of
//! `contact_list_cache_core::sealed`: the core takes entries apart and puts them together, so
//! both ciphers read and write the same entries.

use contact_list_cache_core::sealed::{Keyring, OpenError, NONCE_LEN};
use std::cell::RefCell;
use std::collections::HashMap;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AesGcmParams, CryptoKey, SubtleCrypto, WorkerGlobalScope};
use worker::js_sys;
use worker::wasm_bindgen::{JsCast, JsValue};

thread_local! {
    /// Imported keys by key id, with the bytes they were imported from.
    static KEYS: RefCell<HashMap<String, ([u8; 32], CryptoKey)>> = RefCell::new(HashMap::new());
}

/// Why WebCrypto could not seal or open an entry.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("{0}")]
    Refused(#[from] OpenError),
    #[error("WebCrypto failed: {0}")]
    Runtime(String),
}

fn runtime(err: JsValue) -> SealError {
    SealError::Runtime(err.as_string().unwrap_or_else(|| format!("{err:?}")))
}

fn subtle() -> Result<SubtleCrypto, SealError> {
    let global: WorkerGlobalScope = js_sys::global().unchecked_into();
    Ok(global.crypto().map_err(runtime)?.subtle())
}

/// The imported key `id` (imported once per isolate).
async fn key(subtle: &SubtleCrypto, id: &str, raw: &[u8; 32]) -> Result<CryptoKey, SealError> {
    let known = KEYS.with(|keys| keys.borrow().get(id).filter(|(bytes, _)| bytes == raw).map(|(_, key)| key.clone()));
    if let Some(key) = known {
        return Ok(key);
    }
    let algorithm = js_sys::Object::new();
    js_sys::Reflect::set(&algorithm, &"name".into(), &"AES-GCM".into()).map_err(runtime)?;
    let usages = js_sys::Array::of2(&"encrypt".into(), &"decrypt".into());
    let data = js_sys::Uint8Array::from(&raw[..]);
    let promise = subtle.import_key_with_object("raw", &data, &algorithm, false, &usages).map_err(runtime)?;
    let key: CryptoKey = JsFuture::from(promise).await.map_err(runtime)?.unchecked_into();
    KEYS.with(|keys| keys.borrow_mut().insert(id.to_owned(), (*raw, key.clone())));
    Ok(key)
}

fn params(nonce: &[u8; NONCE_LEN], cache_key: &str) -> AesGcmParams {
    let params = AesGcmParams::new("AES-GCM", &js_sys::Uint8Array::from(&nonce[..]));
    params.set_additional_data(&js_sys::Uint8Array::from(cache_key.as_bytes()));
    params.set_tag_length(128);
    params
}

/// Opens an entry stored at `cache_key`: tampered, moved or unknown-key entries are refused.
pub async fn open(keyring: &Keyring, cache_key: &str, sealed: &str) -> Result<String, SealError> {
    let envelope = keyring.envelope(sealed)?;
    let subtle = subtle()?;
    let key = key(&subtle, envelope.key_id, envelope.key).await?;
    let promise = subtle
        .decrypt_with_object_and_u8_array(&params(&envelope.nonce, cache_key), &key, &envelope.ciphertext)
        .map_err(runtime)?;
    // A failed authentication rejects the promise: that is a forgery, not a runtime fault.
    let plaintext = JsFuture::from(promise).await.map_err(|_| OpenError::Forged)?;
    String::from_utf8(js_sys::Uint8Array::new(&plaintext).to_vec()).map_err(|_| SealError::Refused(OpenError::Malformed))
}

/// Seals `plaintext` for `cache_key` with the keyring's current key and a fresh random nonce.
pub async fn seal(keyring: &Keyring, cache_key: &str, plaintext: &str) -> Result<String, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce).map_err(|err| SealError::Runtime(format!("no randomness for a nonce: {err}")))?;
    let (id, raw) = keyring.sealing_key();
    let subtle = subtle()?;
    let key = key(&subtle, id, raw).await?;
    let promise = subtle
        .encrypt_with_object_and_u8_array(&params(&nonce, cache_key), &key, plaintext.as_bytes())
        .map_err(runtime)?;
    let ciphertext = js_sys::Uint8Array::new(&JsFuture::from(promise).await.map_err(runtime)?).to_vec();
    Ok(Keyring::sealed_form(id, &nonce, &ciphertext))
}
