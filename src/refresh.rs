//! Refresh-ahead. The worker tells the backend which pages are being read (batched, at most one
//! record per page per isolate every few seconds; the backend keeps the most recent in Redis), and
//! right after an invalidation refreshes the most recently read pages of each scope it changed,
//! before readers ask. Invalidations of one scope within the debounce window make one refresh of
//! each of its hot pages, at the window's end (per isolate: a burst reaches one isolate through
//! the backend's change capture).

use crate::config::Upstreams;
use crate::layers::backend::{self, Acting, Read, Scoped};
use crate::layers::home::{self, Known};
use crate::metrics::Trace;
use crate::read_path::{PageRead, Reader};
use crate::runtime::{self, Workerd};
use contact_list_cache_core::engine::Mode;
use contact_list_cache_core::filter::Filter;
use contact_list_cache_core::generation::counts_generation_key;
use contact_list_cache_core::query::{BoardId, ContactQuery, UserId, WorkspaceId};
use contact_list_cache_core::time::Runtime;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use worker::{Context, Env};

/// A page (or a user's counts) is recorded at most this often per isolate.
const RECORD_EVERY_MS: u64 = 5_000;
/// Records are sent to the backend at least this often, or when this many are waiting.
const SEND_EVERY_MS: u64 = 1_000;
const SEND_AT: usize = 200;
/// Pages of one scope refreshed at once.
const CONCURRENCY: usize = 8;
/// Scopes refreshed at once (so at most this many times `CONCURRENCY` page reads).
const SCOPES_AT_ONCE: usize = 3;

#[derive(Default)]
struct Reads {
    recorded: HashMap<String, u64>,
    waiting: Vec<Read>,
    /// Whether a send of what waits is scheduled.
    sending: bool,
}

thread_local! {
    static READS: RefCell<Reads> = RefCell::default();
    /// Scopes whose refresh waits for the end of its debounce window.
    static PENDING: RefCell<HashSet<String>> = RefCell::default();
}

/// The scope name of a board's lists of one filter.
fn list_scope(board: &BoardId, filter: Filter) -> String {
    format!("{board}:{}", filter.as_str())
}

/// Notes that `user` read `query`'s page in `workspace`; `key`, the page's cache key, names it.
pub fn record_page(ctx: &Context, upstreams: &Rc<Upstreams>, key: &str, workspace: &WorkspaceId, user: &UserId, query: &ContactQuery) {
    record(ctx, upstreams, key, || Read {
        workspace: workspace.to_string(),
        scope: list_scope(&query.board_id, query.filter),
        user: user.to_string(),
        query: query.canonical_query_string(),
    });
}

/// Notes that `user` read their counts in `workspace`.
pub fn record_counts(ctx: &Context, upstreams: &Rc<Upstreams>, workspace: &WorkspaceId, user: &UserId) {
    let read = || Read { workspace: workspace.to_string(), scope: "counts".into(), user: user.to_string(), query: String::new() };
    record(ctx, upstreams, &format!("counts {workspace} {user}"), read);
}

/// Records the read named `id` (at most once per [`RECORD_EVERY_MS`]). Records are sent to the
/// backend in batches: at once when [`SEND_AT`] wait, else within [`SEND_EVERY_MS`].
fn record(ctx: &Context, upstreams: &Rc<Upstreams>, id: &str, read: impl FnOnce() -> Read) {
    if upstreams.refresh_ahead_pages == 0 {
        return;
    }
    let now = runtime::now().0;
    let send = READS.with(|cell| {
        let mut reads = cell.borrow_mut();
        if reads.recorded.get(id).is_some_and(|at| now.saturating_sub(*at) < RECORD_EVERY_MS) {
            return None;
        }
        if reads.recorded.len() >= 10_000 {
            reads.recorded.retain(|_, at| now.saturating_sub(*at) < RECORD_EVERY_MS);
        }
        reads.recorded.insert(id.to_owned(), now);
        reads.waiting.push(read());
        if reads.waiting.len() >= SEND_AT {
            Some(0)
        } else if !reads.sending {
            reads.sending = true;
            Some(SEND_EVERY_MS)
        } else {
            None
        }
    });
    if let Some(after_ms) = send {
        let upstreams = Rc::clone(upstreams);
        ctx.wait_until(async move {
            if after_ms > 0 {
                Workerd.sleep(after_ms as u32).await;
            }
            let batch = READS.with(|cell| {
                let mut reads = cell.borrow_mut();
                reads.sending = false;
                std::mem::take(&mut reads.waiting)
            });
            if batch.is_empty() {
                return;
            }
            if let Err(err) = backend::record_reads(&upstreams, &batch).await {
                worker::console_warn!("recording reads for refresh-ahead: {err}");
            }
        });
    }
}

/// After an invalidation of `lists` (and of the counts, with `counts`) in `workspace`: once the
/// debounce window is over, refreshes their most recently read pages. A scope already waiting
/// for its refresh is left to it.
pub fn schedule(ctx: &Context, env: &Env, upstreams: &Rc<Upstreams>, workspace: &WorkspaceId, lists: Vec<(BoardId, Filter)>, counts: bool) {
    if upstreams.refresh_ahead_pages == 0 {
        return;
    }
    let id = |scope: &str| format!("{workspace} {scope}");
    let claim = |scope: String| PENDING.with(|pending| pending.borrow_mut().insert(id(&scope)));
    let lists: Vec<_> = lists.into_iter().filter(|(board, filter)| claim(list_scope(board, *filter))).collect();
    let counts = counts && claim("counts".to_owned());
    if lists.is_empty() && !counts {
        return;
    }
    let (env, upstreams, workspace) = (env.clone(), Rc::clone(upstreams), workspace.clone());
    ctx.wait_until(async move {
        Workerd.sleep(upstreams.refresh_debounce_ms).await;
        PENDING.with(|pending| {
            let mut pending = pending.borrow_mut();
            lists.iter().for_each(|(board, filter)| {
                pending.remove(&format!("{workspace} {}", list_scope(board, *filter)));
            });
            if counts {
                pending.remove(&format!("{workspace} counts"));
            }
        });
        // The scopes side by side, a few at a time: the last one's pages are not kept waiting
        // behind every other scope's.
        let lists_refreshed = async {
            for group in lists.chunks(SCOPES_AT_ONCE) {
                runtime::all(group.iter().map(|(board, filter)| refresh_lists(&env, &upstreams, &workspace, board, *filter))).await;
            }
        };
        let counts_refreshed = async {
            if counts {
                refresh_counts(&env, &upstreams, &workspace).await;
            }
        };
        futures_util::future::join(lists_refreshed, counts_refreshed).await;
    });
}

/// Refreshes the hot pages of one board's lists of one filter.
async fn refresh_lists(env: &Env, upstreams: &Rc<Upstreams>, workspace: &WorkspaceId, board: &BoardId, filter: Filter) {
    let hot = match backend::hot_reads(upstreams, workspace, &list_scope(board, filter), upstreams.refresh_ahead_pages).await {
        Ok(hot) => hot,
        Err(err) => return worker::console_warn!("refresh-ahead skipped: {err}"),
    };
    for chunk in hot.chunks(CONCURRENCY) {
        let pages = chunk.iter().filter_map(|(user, raw)| {
            let query = ContactQuery::parse(board.as_str(), raw).ok().filter(|query| query.filter == filter)?;
            Some(refresh_page(env, upstreams, workspace, user, query))
        });
        runtime::all(pages).await;
    }
}

async fn refresh_page(env: &Env, upstreams: &Rc<Upstreams>, workspace: &WorkspaceId, user: &UserId, query: ContactQuery) {
    let trace = Trace::default();
    match PageRead::open(env, upstreams, Reader::Ahead { workspace, user }, query, Mode::Normal, &trace).await {
        Ok(page) => page.refresh().await,
        Err(err) => worker::console_warn!("refresh-ahead of a page skipped: {err}"),
    }
}

/// Refreshes the counts of the users who read them recently, under the current generation.
async fn refresh_counts(env: &Env, upstreams: &Rc<Upstreams>, workspace: &WorkspaceId) {
    let Ok(hot) = backend::hot_reads(upstreams, workspace, "counts", upstreams.refresh_ahead_pages).await else { return };
    let key = counts_generation_key(workspace);
    let Ok(Known { state, .. }) = home::scope_state(env, None, upstreams, workspace, &key, None, &Trace::default()).await else { return };
    for chunk in hot.chunks(CONCURRENCY) {
        let refreshes = chunk.iter().map(|(user, _)| {
            let scoped = Scoped { workspace: workspace.clone(), user: user.clone(), generation: state.current.clone(), acting: Acting::Ahead };
            async move { backend::counts(upstreams, &scoped, true, None).await }
        });
        runtime::all(refreshes).await;
    }
}
