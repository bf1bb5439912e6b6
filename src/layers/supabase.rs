//! Supabase: PostgREST with the `postgrest` crate, forwarding the caller's token (and the anon
//! key as `apikey`) so row-level security applies; and the project's JWKS.

use crate::config::{Upstreams, CACHE_TTL_SECONDS};
use crate::layers::kv::KvPage;
use crate::runtime::{self, within};
use contact_list_cache_core::access::Caller;
use crate::body::{Page, PageBody};
use contact_list_cache_core::engine::{Cache, LayerError, Source, SourceError, SourceMode};
use contact_list_cache_core::envelope::{Contact, ContactListResponse};
use contact_list_cache_core::layer::CacheLayer;
use contact_list_cache_core::postgrest::{contact_page, list_total as counter_filters, KeysetRequest, PostgrestQuery};
use contact_list_cache_core::query::{ContactQuery, WorkspaceId};
use jsonwebtoken::jwk::JwkSet;
use futures_util::future::join;
use postgrest::Postgrest;
use std::rc::Rc;

/// PostgREST for `caller`, with the request's `X-Request-ID` (its `db-pre-request` function puts
/// it in `application_name`: supabase/migrations/20250127001200_request_tracing.sql).
fn client(upstreams: &Upstreams, caller: &Caller) -> Postgrest {
    let client = Postgrest::new(upstreams.rest_url())
        .insert_header("apikey", upstreams.supabase_anon_key.expose())
        .insert_header("Authorization", format!("Bearer {}", caller.token));
    match crate::runtime::request_id() {
        Some(id) => client.insert_header("X-Request-ID", &*id),
        None => client,
    }
}

/// A failed call, without its URL: URLs carry the search term, which logs must never hold.
fn failed(err: impl std::fmt::Display) -> LayerError {
    LayerError::failed(CacheLayer::Database, err)
}

/// One contact page read through PostgREST, as the caller (row-level security applies, so the
/// rows are only ever the caller's workspace's; a non-member would get none, which is why the
/// edge confirms membership before asking).
pub struct SupabasePage {
    pub upstreams: Rc<Upstreams>,
    pub caller: Caller,
    pub workspace: WorkspaceId,
    pub query: ContactQuery,
    /// Where a narrowed list's total is kept once counted (KV, under the list's generation), so
    /// its pages count it once between them; `None` for a list with a counter, or when the
    /// generation is unknown.
    pub total: Option<KvPage>,
}

impl Source for SupabasePage {
    type Body = PageBody;

    fn layer(&self) -> CacheLayer {
        CacheLayer::Database
    }

    fn checks_membership(&self) -> bool {
        false
    }

    /// Always from the database: PostgREST keeps no cache.
    async fn read(&self, _: SourceMode) -> Result<Page, SourceError> {
        let (contacts, total) = self.page().await?;
        let read_at = runtime::now();
        let envelope = ContactListResponse::new(&self.query, contacts, total, read_at, CACHE_TTL_SECONDS);
        Ok(Page { body: serde_json::to_string(&envelope).expect("a response serializes").into(), read_at })
    }
}

impl SupabasePage {
    /// One page and the total of its list: from the list's counter, read beside the rows; for a
    /// narrowed list, from where it was kept, or counted with the rows and kept.
    async fn page(&self) -> Result<(Vec<Contact>, u64), LayerError> {
        let (upstreams, caller, query) = (&self.upstreams, &self.caller, &self.query);
        let request = contact_page(&self.workspace, &caller.user_id, query);
        if let Some(counter) = query.counter(&caller.user_id) {
            let (rows, total) = join(page_rows(upstreams, caller, &request), list_total(upstreams, caller, &self.workspace, query, &counter)).await;
            return Ok((rows?, total?));
        }
        let now = runtime::now();
        let known = match &self.total {
            Some(kept) => match kept.get().await {
                Ok(Some(page)) if now.since(page.read_at) < u64::from(CACHE_TTL_SECONDS) * 1000 => page.body.text().parse::<u64>().ok(),
                _ => None,
            },
            None => None,
        };
        let (contacts, counted) = match known {
            Some(_) => (page_rows(upstreams, caller, &request).await?, None),
            None => page_and_count(upstreams, caller, &request).await?,
        };
        match (known, counted, &self.total) {
            (Some(total), _, _) => Ok((contacts, total)),
            (None, Some(total), Some(kept)) => {
                if let Err(err) = kept.put(&Page { body: total.to_string().into(), read_at: now }).await {
                    worker::console_warn!("a list's total was not kept: {err}");
                }
                Ok((contacts, total))
            }
            (None, Some(total), None) => Ok((contacts, total)),
            (None, None, _) => Err(failed("PostgREST sent no total")),
        }
    }
}

/// One page and the count of its list. A search narrowed by its character pairs is counted
/// through their index only when rare: probed beside the page by its row at
/// `SearchTerm::COMMON_MATCHES`, a common one is counted by one pass with the match alone (see
/// that constant). A keyset page's filters are not the list's: the list is counted by a request
/// of its own (one row and the count), beside the page.
async fn page_and_count(upstreams: &Upstreams, caller: &Caller, request: &PostgrestQuery) -> Result<(Vec<Contact>, Option<u64>), LayerError> {
    if let (Some(probe), Some(plain)) = (request.common_probe(), request.without_pairs()) {
        let (page, common) = join(page_rows(upstreams, caller, request), rows(upstreams, caller, &probe, None, 1, false)).await;
        let (page, common) = (page?, !common?.0.is_empty());
        let (_, total) = rows(upstreams, caller, if common { &plain } else { request }, None, 1, true).await?;
        return Ok((page, total));
    }
    if request.runs.is_empty() {
        return rows(upstreams, caller, request, None, request.limit, true).await;
    }
    let (page, count) = join(page_rows(upstreams, caller, request), rows(upstreams, caller, request, None, 1, true)).await;
    Ok((page?, count?.1))
}

/// One page's rows: by offset, or for a cursor page run after run (see
/// `contact_list_cache_core::cursor`) until it is full, in the list's order.
async fn page_rows(upstreams: &Upstreams, caller: &Caller, request: &PostgrestQuery) -> Result<Vec<Contact>, LayerError> {
    if request.runs.is_empty() {
        return Ok(rows(upstreams, caller, request, None, request.limit, false).await?.0);
    }
    let mut contacts = Vec::new();
    for run in &request.runs {
        let wanted = usize::from(request.limit) - contacts.len();
        if wanted == 0 {
            break;
        }
        contacts.extend(rows(upstreams, caller, request, Some(run), wanted as u8, false).await?.0);
    }
    if request.reversed {
        contacts.reverse();
    }
    Ok(contacts)
}

/// Up to `limit` rows of `request` (past its offset, or of one keyset `run`) and, with `count`,
/// the total of the list's rows (which costs counting them).
async fn rows(upstreams: &Upstreams, caller: &Caller, request: &PostgrestQuery, run: Option<&KeysetRequest>, limit: u8, count: bool) -> Result<(Vec<Contact>, Option<u64>), LayerError> {
    let offset = if run.is_some() { 0 } else { request.offset as usize };
    let (low, high) = (offset, offset + usize::from(limit) - 1);
    let order = run.map_or(&request.order, |run| &run.order);
    let mut builder = client(upstreams, caller).from(request.table).select(&request.select);
    if !order.is_empty() {
        builder = builder.order(order.clone());
    }
    if count {
        builder = builder.exact_count();
    }
    // range() after exact_count(): the count for the whole list, the rows for this page.
    builder = builder.range(low, high);
    if let Some(run) = run {
        let terms = run.and.strip_prefix('(').and_then(|inner| inner.strip_suffix(')')).unwrap_or(&run.and);
        builder = builder.and(terms);
    }
    for (name, value) in &request.filters {
        builder = match value.split_once('.') {
            _ if name == "or" => builder.or(value.trim_start_matches('(').trim_end_matches(')')),
            Some(("eq", operand)) => builder.eq(name, operand),
            Some(("is", operand)) => builder.is(name, operand),
            Some(("cs", operand)) => builder.cs(name, operand),
            _ => return Err(failed(format!("untranslatable filter {name}"))),
        };
    }
    let response = builder.build().send().await.map_err(|err| failed(err.without_url()))?;
    let status = response.status().as_u16();
    let total = response
        .headers()
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .and_then(|range| range.rsplit('/').next())
        .and_then(|total| total.parse::<u64>().ok());
    match status {
        // 416: the page is past the end (the range header still carries the total, if counted).
        416 => Ok((Vec::new(), total)),
        200 | 206 => Ok((response.json::<Vec<Contact>>().await.map_err(|err| failed(err.without_url()))?, total)),
        401 => Err(failed("PostgREST rejected the token")),
        _ => Err(failed(format!("PostgREST answered {status}"))),
    }
}

/// The total a list's counter holds (0 when it has none yet), as the caller may read it.
async fn list_total(upstreams: &Upstreams, caller: &Caller, workspace: &WorkspaceId, query: &ContactQuery, counter: &str) -> Result<u64, LayerError> {
    #[derive(serde::Deserialize)]
    struct Counter {
        total: u64,
    }
    let mut builder = client(upstreams, caller).from("contact_list_counts").select("total");
    for (name, value) in counter_filters(workspace, &query.board_id, counter) {
        builder = builder.eq(name, value.trim_start_matches("eq."));
    }
    let response = builder.build().send().await.map_err(|err| failed(err.without_url()))?;
    if !response.status().is_success() {
        return Err(failed(format!("PostgREST answered {} for a list's total", response.status())));
    }
    let counters: Vec<Counter> = response.json().await.map_err(|err| failed(err.without_url()))?;
    Ok(counters.first().map_or(0, |counter| counter.total))
}

/// Whether `workspace_members`, read with the caller's token, shows them in `workspace`.
pub async fn is_member(caller: &Caller, workspace: &WorkspaceId, upstreams: &Upstreams) -> Result<bool, LayerError> {
    let request = client(upstreams, caller)
        .from("workspace_members")
        .select("workspace_id")
        .eq("workspace_id", workspace.as_str())
        .eq("user_id", caller.user_id.as_str())
        .limit(1)
        .build();
    within(CacheLayer::Database, upstreams.budgets().database_ms, async {
        let response = request.send().await.map_err(|err| failed(err.without_url()))?;
        if !response.status().is_success() {
            return Err(failed(format!("membership check answered {}", response.status())));
        }
        let rows: Vec<serde_json::Value> = response.json().await.map_err(|err| failed(err.without_url()))?;
        Ok(!rows.is_empty())
    })
    .await
}

/// Whether PostgREST answers (any status below 500) within `budget_ms`.
pub async fn reachable(upstreams: &Upstreams, budget_ms: u32) -> bool {
    let request = reqwest::Client::new().get(format!("{}/", upstreams.rest_url())).header("apikey", upstreams.supabase_anon_key.expose());
    within(CacheLayer::Database, budget_ms, async {
        let response = request.send().await.map_err(|err| failed(err.without_url()))?;
        Ok(response.status().as_u16() < 500)
    })
    .await
    .unwrap_or(false)
}

/// The project's signing keys for ES256/RS256 tokens.
pub async fn fetch_jwks(upstreams: &Upstreams) -> Result<JwkSet, LayerError> {
    let url = upstreams.jwks_url();
    within(CacheLayer::Database, upstreams.budgets().database_ms, async {
        let response = reqwest::Client::new().get(&url).send().await.map_err(|err| failed(err.without_url()))?;
        if !response.status().is_success() {
            return Err(failed(format!("JWKS answered {}", response.status())));
        }
        response.json::<JwkSet>().await.map_err(|err| failed(err.without_url()))
    })
    .await
}
