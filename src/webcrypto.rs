//! AES-256-GCM for KV entries through the runtime's WebCrypto (native code in workerd, tens of
//! times faster than the core's pure-Rust cipher compiled to wasm), in the sealed format of
//! `contact_list_cache_core::sealed`: the core takes entries apart and puts them together, so
//! both ciphers read and write the same entries.

use contact_list_cache_core::sealed::{self, Keyring, OpenError, NONCE_LEN};
use std::cell::RefCell;
use std::collections::HashMap;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AesGcmParams, CryptoKey, SubtleCrypto, WorkerGlobalScope};
use worker::js_sys;
use worker::js_sys::JsString;
use wasm_bindgen::prelude::wasm_bindgen;
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
    SealError::Runtime(crate::runtime::js_message(&err))
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

#[wasm_bindgen]
extern "C" {
    /// `Uint8Array`, for its static `fromBase64`.
    type Bytes;
    /// Decodes base64 natively, into a new `Uint8Array` (outside the wasm's memory).
    #[wasm_bindgen(static_method_of = Bytes, js_class = "Uint8Array", js_name = fromBase64, catch)]
    fn from_base64(text: &JsString, options: &JsValue) -> Result<js_sys::Uint8Array, JsValue>;
}

/// The ciphertext's bytes from its base64url text, decoded by the runtime without bringing the
/// text into the wasm (where a page's copy in and decoding cost a fifth of a KV hit); by the
/// core's decoder where the runtime has no `Uint8Array.fromBase64`.
fn ciphertext(text: &JsString) -> Result<js_sys::Uint8Array, OpenError> {
    thread_local! {
        static URL_SAFE: JsValue = {
            let options = js_sys::Object::new();
            let _ = js_sys::Reflect::set(&options, &"alphabet".into(), &"base64url".into());
            options.into()
        };
    }
    match URL_SAFE.with(|options| Bytes::from_base64(text, options)) {
        Ok(bytes) => Ok(bytes),
        Err(_) => Ok(js_sys::Uint8Array::from(&sealed::decode_ciphertext(&String::from(text))?[..])),
    }
}

/// Opens an entry stored at `cache_key`, as KV returned it (a JavaScript string: only its short
/// head is read in the wasm): tampered, moved or unknown-key entries are refused.
pub async fn open(keyring: &Keyring, cache_key: &str, sealed: &JsString) -> Result<String, SealError> {
    // `sealed::split` on the JavaScript string: the head ends at the third dot, near the start
    // (searching from the end would scan the whole page).
    let mut dot = -1;
    for _ in 0..3 {
        dot = sealed.index_of(".", dot + 1);
        if dot < 0 {
            return Err(OpenError::Malformed.into());
        }
    }
    let dot = dot as u32;
    let head = keyring.head(&String::from(sealed.slice(0, dot)))?;
    let ciphertext = ciphertext(&sealed.slice(dot + 1, sealed.length()))?;
    let subtle = subtle()?;
    let key = key(&subtle, head.key_id, head.key).await?;
    let promise = subtle
        .decrypt_with_object_and_js_u8_array(&params(&head.nonce, cache_key), &key, &ciphertext)
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
