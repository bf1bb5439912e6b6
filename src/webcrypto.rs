//! AES-256-GCM for KV entries through the runtime's WebCrypto (native code in workerd, tens of
//! times faster than the core's pure-Rust cipher compiled to wasm), in the sealed format of
//! `contact_list_cache_core::sealed`, so both ciphers read and write the same entries. A page is
//! read from KV and opened in one call into the runtime (`read_and_open`): neither the sealed
//! entry nor its plaintext enters the wasm.

use contact_list_cache_core::sealed::{Keyring, OpenError, NONCE_LEN};
use contact_list_cache_core::time::UnixMillis;
use std::cell::RefCell;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AesGcmParams, CryptoKey, SubtleCrypto, WorkerGlobalScope};
use worker::js_sys;
use wasm_bindgen::prelude::wasm_bindgen;
use worker::wasm_bindgen::{JsCast, JsValue};

/// Why WebCrypto could not seal an entry.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
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

/// `raw` imported as an AES-GCM key (see `keys`, which imports each once per isolate).
async fn import(subtle: &SubtleCrypto, raw: &[u8; 32]) -> Result<CryptoKey, SealError> {
    let algorithm = js_sys::Object::new();
    js_sys::Reflect::set(&algorithm, &"name".into(), &"AES-GCM".into()).map_err(runtime)?;
    let usages = js_sys::Array::of2(&"encrypt".into(), &"decrypt".into());
    let data = js_sys::Uint8Array::from(&raw[..]);
    let promise = subtle.import_key_with_object("raw", &data, &algorithm, false, &usages).map_err(runtime)?;
    Ok(JsFuture::from(promise).await.map_err(runtime)?.unchecked_into())
}

fn params(nonce: &[u8; NONCE_LEN], cache_key: &str) -> AesGcmParams {
    let params = AesGcmParams::new("AES-GCM", &js_sys::Uint8Array::from(&nonce[..]));
    params.set_additional_data(&js_sys::Uint8Array::from(cache_key.as_bytes()));
    params.set_tag_length(128);
    params
}

#[wasm_bindgen(inline_js = "
const fromBase64url = typeof Uint8Array.fromBase64 === 'function'
  ? (text) => Uint8Array.fromBase64(text, { alphabet: 'base64url' })
  : (text) => Uint8Array.from(atob(text.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));
const encoder = new TextEncoder();

export function held(value) {
  return { getWithMetadata: async () => ({ value, metadata: null }) };
}

export async function read_sealed(namespace, cacheKey, keys) {
  const { value, metadata } = await namespace.getWithMetadata(cacheKey, 'text');
  if (typeof value !== 'string') return { state: 0 };
  const t = typeof metadata?.t === 'number' ? metadata.t : -1;
  const first = value.indexOf('.');
  const second = first < 0 ? -1 : value.indexOf('.', first + 1);
  const third = second < 0 ? -1 : value.indexOf('.', second + 1);
  if (third < 0 || value.slice(0, first) !== 'v1') return { state: 2 };
  const key = keys.get(value.slice(first + 1, second));
  if (key === undefined) return { state: 3 };
  let iv, data;
  try {
    iv = fromBase64url(value.slice(second + 1, third));
    data = fromBase64url(value.slice(third + 1));
  } catch {
    return { state: 2 };
  }
  if (iv.length !== 12) return { state: 2 };
  try {
    const params = { name: 'AES-GCM', iv, additionalData: encoder.encode(cacheKey), tagLength: 128 };
    return { state: 1, body: new Uint8Array(await crypto.subtle.decrypt(params, key, data)), t };
  } catch {
    return { state: 4 };
  }
}")]
extern "C" {
    /// Reads the entry at `cache_key` from the KV namespace and opens it with `keys` (key id to
    /// imported key), all in the runtime: one call and one promise for the read, the base64
    /// decoding and the decryption, and neither the entry nor its plaintext enters the wasm. The
    /// head is read by the rules of the core's `sealed`.
    #[wasm_bindgen(catch)]
    fn read_sealed(namespace: &js_sys::Object, cache_key: &str, keys: &js_sys::Map) -> Result<js_sys::Promise, JsValue>;

    /// A sealed value already read (from the state home), in the shape `read_sealed` reads from.
    fn held(value: &str) -> js_sys::Object;

    /// What `read_sealed` resolves to.
    type Read;
    /// 0: no entry; 1: opened; 2: malformed; 3: an unknown key id; 4: failed authentication.
    #[wasm_bindgen(method, getter)]
    fn state(this: &Read) -> u8;
    /// The plaintext, when opened.
    #[wasm_bindgen(method, getter)]
    fn body(this: &Read) -> Option<js_sys::Uint8Array>;
    /// When the entry was read from its source (its metadata's `t`), negative when unknown.
    #[wasm_bindgen(method, getter)]
    fn t(this: &Read) -> f64;
}

/// A keyring's key ids and bytes, as remembered.
type Ring = Vec<(String, [u8; 32])>;

thread_local! {
    /// The keyring's keys imported, by key id (as `read_sealed` takes them), with the ids and
    /// bytes they came from.
    static IMPORTED: RefCell<Option<(Ring, js_sys::Map)>> = const { RefCell::new(None) };
}

/// Every key of `keyring`, imported, by key id: imported once per isolate (again if the keyring
/// changes), for sealing and opening alike.
async fn keys(keyring: &Keyring) -> Result<js_sys::Map, SealError> {
    let known = IMPORTED.with(|imported| {
        let imported = imported.borrow();
        let (ring, map) = imported.as_ref()?;
        ring.iter().map(|(id, raw)| (id.as_str(), raw)).eq(keyring.keys()).then(|| map.clone())
    });
    if let Some(map) = known {
        return Ok(map);
    }
    let (subtle, map) = (subtle()?, js_sys::Map::new());
    for (id, raw) in keyring.keys() {
        map.set(&id.into(), import(&subtle, raw).await?.as_ref());
    }
    let ring = keyring.keys().map(|(id, raw)| (id.to_owned(), *raw)).collect();
    IMPORTED.with(|imported| imported.replace(Some((ring, map.clone()))));
    Ok(map)
}

/// Why a sealed entry in KV could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// KV (or WebCrypto) failed: nothing is known about the entry.
    #[error("{0}")]
    Runtime(String),
    /// The entry is there but does not open: refused, never served.
    #[error("{0}")]
    Refused(OpenError),
}

/// The entry KV holds at `cache_key`, opened: its plaintext, left in the runtime's memory, and
/// when it was read from its source (the epoch when its metadata does not say). Tampered, moved
/// or unknown-key entries are refused.
pub async fn read_and_open(namespace: &js_sys::Object, keyring: &Keyring, cache_key: &str) -> Result<Option<(js_sys::Uint8Array, UnixMillis)>, ReadError> {
    let keys = keys(keyring).await.map_err(|err| ReadError::Runtime(err.to_string()))?;
    let failed = |err: JsValue| ReadError::Runtime(crate::runtime::js_message(&err));
    let promise = read_sealed(namespace, cache_key, &keys).map_err(failed)?;
    let read: Read = JsFuture::from(promise).await.map_err(failed)?.unchecked_into();
    let refused = |err| Err(ReadError::Refused(err));
    match read.state() {
        0 => Ok(None),
        1 => {
            let Some(body) = read.body() else { return refused(OpenError::Malformed) };
            let t = read.t();
            Ok(Some((body, UnixMillis(if t >= 0.0 { t as u64 } else { 0 }))))
        }
        3 => refused(OpenError::UnknownKey),
        4 => refused(OpenError::Forged),
        _ => refused(OpenError::Malformed),
    }
}

/// `sealed`, a value sealed for `cache_key` read from elsewhere than KV, opened the way
/// [`read_and_open`] opens KV's entries.
pub async fn open(keyring: &Keyring, cache_key: &str, sealed: &str) -> Result<js_sys::Uint8Array, ReadError> {
    match read_and_open(&held(sealed), keyring, cache_key).await? {
        Some((body, _)) => Ok(body),
        None => Err(ReadError::Refused(OpenError::Malformed)),
    }
}

/// Seals `plaintext` for `cache_key` with the keyring's current key and a fresh random nonce.
pub async fn seal(keyring: &Keyring, cache_key: &str, plaintext: &str) -> Result<String, SealError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce).map_err(|err| SealError::Runtime(format!("no randomness for a nonce: {err}")))?;
    let (id, _) = keyring.sealing_key();
    let key: CryptoKey = keys(keyring).await?.get(&id.into()).unchecked_into();
    let subtle = subtle()?;
    let promise = subtle
        .encrypt_with_object_and_u8_array(&params(&nonce, cache_key), &key, plaintext.as_bytes())
        .map_err(runtime)?;
    let ciphertext = js_sys::Uint8Array::new(&JsFuture::from(promise).await.map_err(runtime)?).to_vec();
    Ok(Keyring::sealed_form(id, &nonce, &ciphertext))
}
