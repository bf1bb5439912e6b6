//! Applying an invalidation: the boards it reaches, one new generation per scope key (each
//! keeping, within the staleness bound, the generation it supersedes), and a debounced refresh
//! of the hot pages of what changed. A constant number of KV operations, whatever is cached.

use crate::config::{Upstreams, KV_BINDING};
use crate::error::AppError;
use crate::layers::kv::{self, Bump};
use crate::layers::{backend, l0};
use crate::metrics::Trace;
use crate::refresh;
use crate::runtime::{self, Workerd};
use contact_list_cache_core::carry::{carry_key, ContactUpdate};
use contact_list_cache_core::filter::Filter;
use contact_list_cache_core::generation::{counts_generation_key, Generation, Scope};
use contact_list_cache_core::query::{BoardId, WorkspaceId};
use contact_list_cache_core::settings::SettingError;
use contact_list_cache_core::time::UnixMillis;
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

/// What one change or call reaches: scopes on some boards, and the contact it updated in place
/// (`None`: not known, nothing carried).
pub struct Target {
    pub scopes: BTreeSet<Scope>,
    pub boards: Boards,
    pub update: Option<ContactUpdate>,
    /// When the change was made (a database change's stamp), if before it reached the worker.
    pub changed_at: Option<UnixMillis>,
}

/// What an invalidation reaches.
pub type Targets = Vec<Target>;

/// One board's lists of one filter, with the updates that carry their pages (`None`: unknown).
type ListScope = (BoardId, Filter, Option<Vec<ContactUpdate>>);

/// Writes a new generation for each target's scopes on its boards (one generation for all of
/// them), schedules the refresh of their hot pages, and answers what was done.
pub async fn apply(env: &Env, ctx: &Context, upstreams: &Rc<Upstreams>, workspace: &WorkspaceId, targets: Targets, trace: &Trace) -> Result<Value, AppError> {
    let mut every_board: Option<Vec<BoardId>> = None;
    // The superseded pages' bound runs from the earliest change, not from its arrival here.
    let now = runtime::now();
    let since = targets.iter().filter_map(|target| target.changed_at).min().map_or(now, |at| at.min(now));
    let mut lists: Vec<ListScope> = Vec::new();
    let mut counts = false;
    for Target { scopes, boards, update, .. } in targets {
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
                let updates = update.clone().map(|update| vec![update]);
                match lists.iter_mut().find(|(b, f, _)| *b == board && f == filter) {
                    Some((_, _, known)) => match (known.as_mut(), updates) {
                        (Some(known), Some(more)) => known.extend(more),
                        _ => *known = None,
                    },
                    None => lists.push((board.clone(), *filter, updates)),
                }
            }
        }
    }
    let mut bumps: Vec<Bump> = lists
        .iter()
        .map(|(board, filter, updates)| Bump {
            key: Scope::List(*filter).generation_key(workspace, board),
            carry: updates.clone().map(|updates| (carry_key(workspace, board, *filter), *filter, updates)),
        })
        .collect();
    if counts {
        bumps.push(Bump { key: counts_generation_key(workspace), carry: None });
    }
    let generation = Generation::new(now.0, (js_sys::Math::random() * f64::from(u32::MAX)) as u32);
    let store = kv::store(env).map_err(|_| SettingError::Missing { name: KV_BINDING })?;
    let (reads, writes) = kv::bump(&store, upstreams, &bumps, &generation, since)
        .await
        .map_err(|err| AppError::Unavailable(format!("writing generations: {err}")))?;
    (0..reads + writes).for_each(|_| trace.kv_operation());
    l0::forget_states(bumps.iter().map(|bump| bump.key.as_str()));
    let mut boards: Vec<&BoardId> = Vec::new();
    for (board, _, _) in &lists {
        if !boards.contains(&board) {
            boards.push(board);
        }
    }
    let filters: BTreeSet<Filter> = lists.iter().map(|(_, filter, _)| *filter).collect();
    let mut scopes: Vec<&str> = filters.into_iter().map(Filter::as_str).collect();
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
    // Refresh-ahead for the lists whose contacts may have moved; the others are carried from
    // their current pages when read.
    let moved = lists
        .into_iter()
        .filter(|(_, filter, updates)| updates.as_ref().is_none_or(|updates| updates.iter().any(|update| update.may_move(*filter))))
        .map(|(board, filter, _)| (board, filter))
        .collect();
    refresh::schedule(ctx, env, upstreams, workspace, moved, counts);
    crate::live::publish(env, ctx, &response);
    Ok(response)
}

/// Every board of `workspace`; concurrent invalidations of one workspace ask the backend once.
async fn boards_of(upstreams: &Upstreams, workspace: &WorkspaceId) -> Result<Vec<BoardId>, AppError> {
    let lookups = runtime::board_lists();
    let lookup = lookups.once(&Workerd, workspace.as_str(), upstreams.budgets().fallback_ms, || backend::boards(upstreams, workspace));
    lookup.await.0.map_err(|err| AppError::Unavailable(format!("listing the workspace's boards: {err}")))
}
