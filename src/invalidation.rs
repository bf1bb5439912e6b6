//! Applying an invalidation: the boards it reaches, one new generation per scope key (each
//! keeping, within the staleness bound, the generation it supersedes), and a debounced refresh
//! of the hot pages of what changed. A constant number of KV operations, whatever is cached.

use crate::config::{Upstreams, KV_BINDING};
use crate::error::AppError;
use crate::layers::{backend, kv};
use crate::metrics::Trace;
use crate::refresh;
use crate::runtime::{self, Workerd};
use contact_list_cache_core::filter::Filter;
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

/// What an invalidation reaches: scopes, each set on some boards.
pub type Targets = Vec<(BTreeSet<Scope>, Boards)>;

/// Writes a new generation for each target's scopes on its boards (one generation for all of
/// them), schedules the refresh of their hot pages, and answers what was done.
pub async fn apply(env: &Env, ctx: &Context, upstreams: &Rc<Upstreams>, workspace: &WorkspaceId, targets: Targets, trace: &Trace) -> Result<Value, AppError> {
    let mut every_board: Option<Vec<BoardId>> = None;
    let mut lists: Vec<(BoardId, Filter)> = Vec::new();
    let mut counts = false;
    for (scopes, boards) in targets {
        counts |= scopes.contains(&Scope::Counts);
        let filters: Vec<Filter> = scopes.iter().filter_map(|scope| match scope {
            Scope::List(filter) => Some(*filter),
            Scope::Counts => None,
        }).collect();
        if filters.is_empty() {
            continue;
        }
        let boards: Vec<BoardId> = match boards {
            Boards::These(boards) => boards.into_iter().collect(),
            Boards::All => match &every_board {
                Some(all) => all.clone(),
                None => every_board.insert(boards_of(upstreams, workspace).await?).clone(),
            },
        };
        for board in boards {
            for filter in &filters {
                if !lists.iter().any(|(b, f)| *b == board && f == filter) {
                    lists.push((board.clone(), *filter));
                }
            }
        }
    }
    let mut keys: Vec<String> = lists.iter().map(|(board, filter)| Scope::List(*filter).generation_key(workspace, board)).collect();
    if counts {
        keys.push(counts_generation_key(workspace));
    }
    let now = runtime::now();
    let generation = Generation::new(now.0, (js_sys::Math::random() * f64::from(u32::MAX)) as u32);
    let store = kv::store(env).map_err(|_| SettingError::Missing { name: KV_BINDING })?;
    let (reads, writes) = kv::bump(&store, &keys, &generation, now, upstreams.staleness_bound_ms)
        .await
        .map_err(|err| AppError::Unavailable(format!("writing generations: {err}")))?;
    (0..reads + writes).for_each(|_| trace.kv_operation());
    let mut boards: Vec<&BoardId> = Vec::new();
    for (board, _) in &lists {
        if !boards.contains(&board) {
            boards.push(board);
        }
    }
    let mut scopes: Vec<&str> = lists.iter().map(|(_, filter)| filter.as_str()).collect();
    scopes.sort_unstable_by_key(|name| Filter::ALL.iter().position(|f| f.as_str() == *name));
    scopes.dedup();
    if counts {
        scopes.push(Scope::Counts.as_str());
    }
    let response = json!({
        "workspace_id": workspace,
        "boards": boards,
        "scopes": scopes,
        "generation": generation.as_str(),
        "staleness_bound_ms": upstreams.staleness_bound_ms,
        "operations": {"kv_reads": reads, "kv_writes": writes, "kv_lists": 0, "redis": 0},
    });
    refresh::schedule(ctx, env, upstreams, workspace, lists, counts);
    crate::live::publish(env, ctx, &response);
    Ok(response)
}

/// Every board of `workspace`; concurrent invalidations of one workspace ask the backend once.
async fn boards_of(upstreams: &Upstreams, workspace: &WorkspaceId) -> Result<Vec<BoardId>, AppError> {
    let lookups = runtime::board_lists();
    let lookup = lookups.once(&Workerd, workspace.as_str(), upstreams.budgets().fallback_ms, || backend::boards(upstreams, workspace));
    lookup.await.0.map_err(|err| AppError::Unavailable(format!("listing the workspace's boards: {err}")))
}
