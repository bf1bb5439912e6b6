//! Applying an invalidation: the boards it reaches, one new generation per scope key (each
//! keeping, within the staleness bound, the generation it supersedes), and a debounced refresh
//! of the hot pages of what changed. A constant number of KV operations, whatever is cached.

use crate::config::{Upstreams, KV_BINDING};
use crate::error::AppError;
use crate::layers::{backend, kv};
use crate::metrics::Trace;
use crate::refresh;
use crate::runtime::{self, Workerd};
use contact_list_cache_core::generation::{counts_generation_key, Generation, Scope};
use contact_list_cache_core::query::{BoardId, WorkspaceId};
use contact_list_cache_core::settings::SettingError;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::rc::Rc;
use worker::{js_sys, Context, Env};

/// The boards an invalidation reaches.
pub enum Boards {
    These(BTreeSet<BoardId>),
    /// Every board of the workspace (asked of the backend).
    All,
}

/// Writes a new generation for `scopes` on `boards`, schedules the refresh of their hot pages,
/// and answers what was done.
pub async fn apply(env: &Env, ctx: &Context, upstreams: &Rc<Upstreams>, workspace: &WorkspaceId, scopes: BTreeSet<Scope>, boards: Boards, trace: &Trace) -> Result<Value, AppError> {
    let lists: Vec<_> = scopes.iter().filter_map(|scope| match scope {
        Scope::List(filter) => Some(*filter),
        Scope::Counts => None,
    }).collect();
    let boards: Vec<BoardId> = match boards {
        _ if lists.is_empty() => Vec::new(),
        Boards::These(boards) => boards.into_iter().collect(),
        Boards::All => {
            // Concurrent invalidations of one workspace ask the backend once.
            let lookups = runtime::board_lists();
            let lookup = lookups.once(&Workerd, workspace.as_str(), upstreams.budgets().fallback_ms, || backend::boards(upstreams, workspace));
            lookup.await.0.map_err(|err| AppError::Unavailable(format!("listing the workspace's boards: {err}")))?
        }
    };
    let mut keys: Vec<String> = boards.iter().flat_map(|board| lists.iter().map(move |filter| Scope::List(*filter).generation_key(workspace, board))).collect();
    if scopes.contains(&Scope::Counts) {
        keys.push(counts_generation_key(workspace));
    }
    let now = runtime::now();
    let generation = Generation::new(now.0, (js_sys::Math::random() * f64::from(u32::MAX)) as u32);
    let store = kv::store(env).map_err(|_| SettingError::Missing { name: KV_BINDING })?;
    let (reads, writes) = kv::bump(&store, &keys, &generation, now, upstreams.staleness_bound_ms)
        .await
        .map_err(|err| AppError::Unavailable(format!("writing generations: {err}")))?;
    (0..reads + writes).for_each(|_| trace.kv_operation());
    let refreshed = boards.iter().flat_map(|board| lists.iter().map(move |filter| (board.clone(), *filter))).collect();
    refresh::schedule(ctx, env, upstreams, workspace, refreshed, scopes.contains(&Scope::Counts));
    Ok(json!({
        "workspace_id": workspace,
        "boards": boards,
        "scopes": scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "generation": generation.as_str(),
        "staleness_bound_ms": upstreams.staleness_bound_ms,
        "operations": {"kv_reads": reads, "kv_writes": writes, "kv_lists": 0, "redis": 0},
    }))
}
