//! Workers KV, the edge layer (`CONTACT_CACHE`): sealed pages (which hold contact rows), the
//! marks of applied database changes, and health probes (which hold no contact data, and are
//! stored as they are). Scope states and carry records live in the state home (`home`).

use crate::config::{Upstreams, KV_BINDING};
use crate::layers::home;
use crate::runtime;
use crate::webcrypto::{self, ReadError};
use contact_list_cache_core::applied::{applied_key, AppliedMark};
use contact_list_cache_core::cache_key::kv_list_key;
use contact_list_cache_core::capacity::{Estimate, WriteLedger};
use contact_list_cache_core::carry::{carry, CarryRecord, Carried, ContactUpdate};
use crate::body::{Page, PageBody};
use contact_list_cache_core::engine::{Cache, LayerError, Source, SourceError, SourceMode};
use contact_list_cache_core::freshness::Freshness;
use contact_list_cache_core::generation::Generation;
use contact_list_cache_core::layer::CacheLayer;
use contact_list_cache_core::query::{ContactQuery, UserId, WorkspaceId};
use contact_list_cache_core::sealed::Keyring;
use contact_list_cache_core::time::UnixMillis;
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen_futures::JsFuture;
use worker::js_sys;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::Env;

/// The shortest expiration KV accepts, in seconds; probe keys vanish on their own.
const PROBE_TTL_SECONDS: u64 = 60;

fn failed(err: impl std::fmt::Display) -> LayerError {
    LayerError::failed(CacheLayer::Kv, err)
}

#[wasm_bindgen(inline_js = "
export function kv_put(namespace, key, value, ttl, t) {
  return namespace.put(key, value, t < 0 ? { expirationTtl: ttl } : { expirationTtl: ttl, metadata: { t } });
}")]
extern "C" {
    /// The KV binding as the runtime hands it over, called directly: each call is one call into
    /// the runtime (a page is read by `webcrypto::read_and_open`, its value never in the wasm).
    #[wasm_bindgen(extends = js_sys::Object)]
    #[derive(Clone)]
    pub type Namespace;
    #[wasm_bindgen(method, catch, js_name = get)]
    fn get_promise(this: &Namespace, key: &str, kind: &str) -> Result<js_sys::Promise, JsValue>;
    /// `put` with `expirationTtl` (seconds) and, when `t` is not negative, the metadata `{t}`.
    #[wasm_bindgen(catch)]
    fn kv_put(namespace: &Namespace, key: &str, value: &str, ttl: f64, t: f64) -> Result<js_sys::Promise, JsValue>;
}

thread_local! {
    static BINDING: JsValue = JsValue::from_str(KV_BINDING);
}

/// The namespace of cached pages, as the runtime hands it over.
pub fn store(env: &Env) -> Result<Namespace, LayerError> {
    let binding = BINDING.with(|name| js_sys::Reflect::get(env, name)).map_err(|err| failed(runtime::js_message(&err)))?;
    if binding.is_object() {
        Ok(binding.unchecked_into())
    } else {
        Err(failed(format!("no KV binding {KV_BINDING}")))
    }
}

fn js(err: JsValue) -> LayerError {
    failed(runtime::js_message(&err))
}

impl Namespace {
    /// The text at `key`, if any.
    async fn text(&self, key: &str) -> Result<Option<String>, LayerError> {
        Ok(JsFuture::from(self.get_promise(key, "text").map_err(js)?).await.map_err(js)?.as_string())
    }
}

/// One page in KV, sealed with the current key of the keyring and bound to its key.
pub struct KvPage {
    pub store: Namespace,
    pub upstreams: Rc<Upstreams>,
    pub key: String,
}

impl Cache for KvPage {
    type Body = PageBody;

    fn layer(&self) -> CacheLayer {
        CacheLayer::Kv
    }

    /// KV is read where the request is served: every request reads it for itself.
    fn is_local(&self) -> bool {
        true
    }

    /// The page and when it was read from its source (the epoch when unknown, which no
    /// freshness window accepts). An entry that does not open is refused, never served.
    async fn get(&self) -> Result<Option<Page>, LayerError> {
        match webcrypto::read_and_open(&self.store, &self.upstreams.keyring, &self.key).await {
            Ok(page) => Ok(page.map(|(body, read_at)| Page { body: PageBody::Opened(body), read_at })),
            Err(ReadError::Refused(err)) => Err(LayerError::Refused { layer: CacheLayer::Kv, reason: err.to_string() }),
            Err(ReadError::Runtime(err)) => Err(failed(err)),
        }
    }

    /// Kept through the stale-if-error period after the TTL.
    async fn put(&self, page: &Page) -> Result<(), LayerError> {
        let retention = self.upstreams.policy.freshness.retention_seconds();
        let sealed = sealed_for(&self.upstreams.keyring, &self.key, &page.body.text()).await?;
        write(&self.store, &self.key, &sealed, Some(page.read_at), retention).await
    }
}

/// `plaintext` sealed for `key` with the keyring's current key (`webcrypto::seal`): every value
/// that may hold contact data (pages, totals in KV, carry records in the state home) is written
/// this way.
pub async fn sealed_for(keyring: &Keyring, key: &str, plaintext: &str) -> Result<String, LayerError> {
    webcrypto::seal(keyring, key, plaintext).await.map_err(|err| failed(format!("sealing: {err}")))
}

/// A carry record as the state home holds it (sealed for `key`), opened and parsed. A record that
/// does not open (tampered, moved, under an unknown key id) or does not parse is none: the page
/// is then read below.
pub async fn carry_record(keyring: &Keyring, key: &str, sealed: Option<&str>) -> Result<Option<CarryRecord>, LayerError> {
    let Some(sealed) = sealed else { return Ok(None) };
    match webcrypto::open(keyring, key, sealed).await {
        Ok(body) => Ok(serde_json::from_slice(&body.to_vec()).ok()),
        Err(ReadError::Refused(_)) => Ok(None),
        Err(ReadError::Runtime(err)) => Err(failed(err)),
    }
}

/// The most keys the written-entries ledger remembers (about 100 bytes of bookkeeping each).
const LEDGER_CAPACITY: usize = 20_000;
/// The bytes counted for an entry's metadata (`{"t":<ms>}`).
const METADATA_BYTES: u64 = 20;

thread_local! {
    static WRITTEN: RefCell<WriteLedger> = RefCell::new(WriteLedger::new(LEDGER_CAPACITY));
}

/// What this isolate wrote to KV that has not expired yet: an estimate of KV's use (KV has no
/// size API; other isolates' and locations' writes are not seen).
pub fn written_estimate() -> Estimate {
    WRITTEN.with(|ledger| ledger.borrow_mut().estimate(runtime::now().0))
}

/// One KV write, with optional metadata, expiring after `ttl_seconds` (at least 60), entered in
/// the isolate's ledger once KV accepted it.
async fn write(store: &Namespace, key: &str, value: &str, read_at: Option<UnixMillis>, ttl_seconds: u32) -> Result<(), LayerError> {
    let metadata = if read_at.is_some() { METADATA_BYTES } else { 0 };
    let ttl = u64::from(ttl_seconds).max(PROBE_TTL_SECONDS);
    let t = read_at.map_or(-1.0, |at| at.0 as f64);
    JsFuture::from(kv_put(store, key, value, ttl as f64, t).map_err(js)?).await.map_err(js)?;
    let (bytes, now) = ((key.len() + value.len()) as u64 + metadata, runtime::now().0);
    WRITTEN.with(|ledger| ledger.borrow_mut().record(key, bytes, now + ttl * 1000, now));
    Ok(())
}

/// Whether KV accepts a write and returns it on read. Each probe uses its own key, so concurrent
/// probes never contend for KV's one-write-per-second-per-key limit.
pub async fn probe(env: &Env) -> bool {
    let Ok(store) = store(env) else { return false };
    let nonce = format!("{:016x}", (js_sys::Math::random() * 2f64.powi(53)) as u64);
    let key = format!("health:probe:{nonce}");
    write(&store, &key, &nonce, None, PROBE_TTL_SECONDS as u32).await.is_ok()
        && matches!(store.text(&key).await, Ok(Some(read)) if read == nonce)
}

/// How long a workspace's applied mark lives without a change.
const APPLIED_TTL_SECONDS: u32 = 7 * 86_400;

/// The workspace's applied mark (`contact_list_cache_core::applied`); none when KV fails, so that
/// nothing is skipped.
pub async fn applied_mark(store: &Namespace, workspace: &WorkspaceId) -> AppliedMark {
    AppliedMark::parse(store.text(&applied_key(workspace)).await.ok().flatten().as_deref())
}

/// Stores the workspace's applied mark. A failure only means a redelivery is applied again.
pub async fn mark_applied(store: &Namespace, workspace: &WorkspaceId, mark: AppliedMark) -> Result<(), LayerError> {
    write(store, &applied_key(workspace), &mark.as_stored(), None, APPLIED_TTL_SECONDS).await
}

/// A page of the current generation made from a KV copy of an earlier one, carried across the
/// contact updates of the scope's carry record: a source that reads no database. Declines when
/// there is no record leading to the current generation, no copy, a copy past stale-while-
/// revalidate, or an update that may move contacts across the page.
pub struct CarriedCopy {
    pub env: Env,
    pub store: Namespace,
    pub upstreams: Rc<Upstreams>,
    pub record_key: String,
    pub current: Generation,
    pub workspace: WorkspaceId,
    pub user: UserId,
    pub query: ContactQuery,
    /// The KV reads made so far (the record and each start's page).
    pub reads: std::cell::Cell<u32>,
    /// The KV key of the page at the newest start, when KV had no copy of it there to carry
    /// (none, or one past stale-while-revalidate): where the page read instead is kept.
    pub missing: RefCell<Option<String>>,
}

impl Source for CarriedCopy {
    type Body = PageBody;

    fn layer(&self) -> CacheLayer {
        CacheLayer::Kv
    }

    fn checks_membership(&self) -> bool {
        false
    }

    fn is_cache_copy(&self) -> bool {
        true
    }

    async fn read(&self, _mode: SourceMode) -> Result<Page, SourceError> {
        self.reads.set(self.reads.get() + 1);
        self.missing.replace(None);
        let snapshot = home::read(&self.env, &self.upstreams, &self.workspace, &[&self.record_key], false).await.map_err(failed)?;
        let Some(record) = carry_record(&self.upstreams.keyring, &self.record_key, snapshot.value(&self.record_key)).await? else { return Err(SourceError::Declined) };
        // The newest start first: its page has the fewest updates to carry.
        for (index, (from, updates)) in record.starts(&self.current).into_iter().enumerate() {
            match self.carried_from(from, updates).await? {
                AtStart::Carried(page) => return Ok(page),
                AtStart::Missing(key) if index == 0 => {
                    self.missing.replace(Some(key));
                }
                AtStart::Missing(_) | AtStart::NotCarried => {}
            }
        }
        Err(SourceError::Declined)
    }

    /// A page read below, for a newest start that had no copy: the next read after more writes
    /// carries it from there. Read after the start's generation was superseded, it shows every
    /// write up to it, and carrying a write a page already shows leaves it as it is.
    fn keeps_answers_below(&self) -> bool {
        self.missing.borrow().is_some()
    }

    async fn keep(&self, page: &Page) -> Result<(), LayerError> {
        let Some(key) = self.missing.take() else { return Ok(()) };
        KvPage { store: self.store.clone(), upstreams: Rc::clone(&self.upstreams), key }.put(page).await
    }
}

/// What KV holds at a start.
enum AtStart {
    /// The page of the current generation, carried from the start's copy.
    Carried(Page),
    /// No copy within stale-while-revalidate, at this KV key.
    Missing(String),
    /// A copy some update may have moved contacts across.
    NotCarried,
}

impl CarriedCopy {
    /// The page of generation `from` carried across `updates`, if KV has it within
    /// stale-while-revalidate and no update may move contacts across it.
    async fn carried_from(&self, from: &str, updates: &[ContactUpdate]) -> Result<AtStart, LayerError> {
        let Ok(from) = Generation::parse("generation", from) else { return Ok(AtStart::NotCarried) };
        let key = kv_list_key(&self.workspace, &self.user, &self.query, &from);
        let copy = KvPage { store: self.store.clone(), upstreams: Rc::clone(&self.upstreams), key };
        self.reads.set(self.reads.get() + 1);
        let now = crate::runtime::now();
        let page = match copy.get().await? {
            Some(page) if matches!(self.upstreams.policy.freshness.of(page.read_at, now), Freshness::Fresh | Freshness::Revalidate) => page,
            _ => return Ok(AtStart::Missing(copy.key)),
        };
        Ok(match carry(&page.body.text(), &self.query, &self.user, updates) {
            Some(Carried::Unchanged) => AtStart::Carried(page),
            Some(Carried::Patched(body)) => AtStart::Carried(Page { body: body.into(), read_at: page.read_at }),
            None => AtStart::NotCarried,
        })
    }
}
