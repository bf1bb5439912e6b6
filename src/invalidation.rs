//! Applying an invalidation: the boards it reaches, one new generation for its scopes, written to
//! the workspace's state home (each scope keeping, when soft and within the staleness bound, the
//! generation it supersedes), and a debounced refresh of the hot pages of what changed. One read
//! and one write of the state home, whatever is cached (more only when invalidations race).

use crate::config::Upstreams;
use crate::error::AppError;
use crate::layers::home::{self, KnownStates, Written};
use crate::layers::{backend, kv};
use crate::metrics::Trace;
use crate::refresh;
use crate::runtime::{self, Workerd};
use contact_list_cache_core::carry::{carry_key, CarryRecord, ContactUpdate};
use contact_list_cache_core::filter::Filter;
use contact_list_cache_core::generation::{counts_generation_key, Generation, InvalidationMode, Scope, ScopeState};
use contact_list_cache_core::metrics::StateHomeCalls;
use contact_list_cache_core::query::{BoardId, WorkspaceId};
use contact_list_cache_core::time::{Runtime, UnixMillis};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap, HashSet};
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
pub async fn apply(env: &Env, ctx: &Context, upstreams: &Rc<Upstreams>, workspace: &WorkspaceId, targets: Targets, mode: InvalidationMode, trace: &Trace) -> Result<Value, AppError> {
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
    let (generation, calls, clock_reads) = bump(env, upstreams, workspace, &bumps, mode, since, trace).await?;
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
        "mode": match mode { InvalidationMode::Hard => "hard", InvalidationMode::Soft => "soft" },
        "operations": {"state_home_reads": calls.reads, "clock_reads": clock_reads, "state_home_writes": calls.writes, "state_home_conflicts": calls.conflicts, "kv_reads": 0, "kv_writes": 0, "kv_lists": 0, "redis": 0},
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

/// Attempts at writing the state home before an invalidation gives up (503): each one that
/// fails lost to another isolate's invalidation of the workspace, which it then reads.
const HOME_WRITE_ATTEMPTS: u32 = 8;

/// The turns of each workspace's invalidations in this isolate: the next ticket, the one being
/// served, and the tickets given up before their turn.
#[derive(Default)]
struct Turns {
    next: u64,
    serving: u64,
    abandoned: HashSet<u64>,
}

thread_local! {
    static TURNS: RefCell<HashMap<String, Turns>> = RefCell::default();
}

/// How often a waiting invalidation looks whether its turn came, on its own timer (a request
/// never waits on another request's I/O: workerd cancels it as hung).
const TURN_POLL_MS: u32 = 2;

/// One invalidation's turn at its workspace's state home in this isolate, from its ticket until
/// dropped. Invalidations of one workspace in one isolate take turns, in the order they came,
/// so they never race one another to the home (only other isolates' can make a write conflict).
struct Turn {
    workspace: String,
    ticket: u64,
}

impl Turn {
    async fn take(workspace: &WorkspaceId) -> Turn {
        let workspace = workspace.to_string();
        let ticket = TURNS.with(|turns| {
            let mut turns = turns.borrow_mut();
            let turns = turns.entry(workspace.clone()).or_default();
            turns.next += 1;
            turns.next - 1
        });
        let turn = Turn { workspace, ticket };
        while !turn.served() {
            Workerd.sleep(TURN_POLL_MS).await;
        }
        turn
    }

    fn served(&self) -> bool {
        TURNS.with(|turns| turns.borrow().get(&self.workspace).is_some_and(|turns| turns.serving == self.ticket))
    }
}

impl Drop for Turn {
    /// Hands the turn to the next ticket not given up, or marks this one given up if its turn
    /// has not come.
    fn drop(&mut self) {
        TURNS.with(|turns| {
            let mut all = turns.borrow_mut();
            let Some(turns) = all.get_mut(&self.workspace) else { return };
            if turns.serving != self.ticket {
                turns.abandoned.insert(self.ticket);
                return;
            }
            turns.serving += 1;
            while turns.abandoned.remove(&turns.serving) {
                turns.serving += 1;
            }
            if turns.serving == turns.next {
                all.remove(&self.workspace);
            }
        });
    }
}

/// One scope to move to a new generation: its state's key and, when the invalidation says which
/// contacts it updated in place, its carry record's key, its filter and those updates. Without
/// them no record is written: the one stored leads to a generation no longer current, which
/// carries nothing, and the next record starts from this generation.
struct Bump {
    key: String,
    carry: Option<(String, Filter, Vec<ContactUpdate>)>,
}

/// Moves every scope of `bumps` to one new generation, after the workspace's newest, at `since`
/// (keeping, when soft and within the staleness bound, the generation it supersedes: see
/// `ScopeState::bumped`), and rewrites the carry record of those that have one (see
/// `CarryRecord::after`), sealed: read from the state home, computed here, written back on the
/// condition that nothing was written in between, else read again. Returns the generation and
/// the calls made; this isolate knows the new states at once (other isolates within the bound,
/// or at once when asked for the generation). The calls' reads leave out change capture's clock,
/// read when the kept reading is too old (`clock_due`): they are counted apart, last.
async fn bump(env: &Env, upstreams: &Rc<Upstreams>, workspace: &WorkspaceId, bumps: &[Bump], mode: InvalidationMode, since: UnixMillis, trace: &Trace) -> Result<(Generation, StateHomeCalls, u64), AppError> {
    let unavailable = |err: String| AppError::Unavailable(format!("writing generations: {err}"));
    let keys: Vec<&str> = bumps.iter().flat_map(|bump| std::iter::once(bump.key.as_str()).chain(bump.carry.as_ref().map(|(key, _, _)| key.as_str()))).collect();
    let before = trace.home_calls();
    let mut clock_reads = 0;
    let _turn = Turn::take(workspace).await;
    for attempt in 0..HOME_WRITE_ATTEMPTS {
        if attempt > 0 {
            // Lost to another isolate: wait a little, at random, before reading again.
            let pause = 10.0 + js_sys::Math::random() * f64::from(10 << attempt.min(5));
            worker::Delay::from(std::time::Duration::from_millis(pause as u64)).await;
        }
        // Change capture's clock before the states, so this isolate knows how long to trust them.
        if home::clock_due(upstreams, runtime::now(), workspace) {
            trace.home_read();
            clock_reads += 1;
        }
        let clock = home::clock_before(env, upstreams, runtime::now(), workspace).await.map_err(unavailable)?;
        let read_at = runtime::now();
        trace.home_read();
        let snapshot = home::read(env, upstreams, workspace, &keys, true).await.map_err(unavailable)?;
        let now = runtime::now();
        let next = Generation::after(&snapshot.newest, now.0, (js_sys::Math::random() * f64::from(u32::MAX)) as u32);
        let mut values = serde_json::Map::new();
        let mut states = Vec::new();
        for bump in bumps {
            // A state that does not parse is replaced: the new generation makes its pages unreachable.
            let state = snapshot.state(&bump.key).unwrap_or_else(|_| ScopeState::initial());
            if let Some((key, filter, updates)) = &bump.carry {
                let last = kv::carry_record(&upstreams.keyring, key, snapshot.value(key)).await.map_err(|err| unavailable(err.to_string()))?;
                let record = serde_json::to_string(&CarryRecord::after(last, &state.current, &next, *filter, updates)).expect("a carry record serializes");
                values.insert(key.clone(), kv::sealed_for(&upstreams.keyring, key, &record).await.map_err(|err| unavailable(err.to_string()))?.into());
            }
            let state = state.bumped(next.clone(), since, mode.bound_ms(upstreams.staleness_bound_ms));
            values.insert(bump.key.clone(), state.format().into());
            states.push((bump.key.clone(), state));
        }
        let written = home::write(env, upstreams, workspace, snapshot.version, &next, values).await.map_err(unavailable)?;
        trace.home_write(matches!(written, Written::Conflict));
        if let Written::Done = written {
            // Every state as of the version read, and this write: the workspace's states as of `next`.
            home::remember(upstreams, workspace, KnownStates::of(&snapshot, read_at, clock, upstreams.staleness_bound_ms).after(states, next.clone()));
            let after = trace.home_calls();
            let calls = StateHomeCalls { reads: after.reads - before.reads - clock_reads, writes: after.writes - before.writes, conflicts: after.conflicts - before.conflicts };
            return Ok((next, calls, clock_reads));
        }
    }
    Err(unavailable(format!("{HOME_WRITE_ATTEMPTS} attempts lost to other invalidations of the workspace")))
}

/// Every board of `workspace`; concurrent invalidations of one workspace ask the backend once.
async fn boards_of(upstreams: &Upstreams, workspace: &WorkspaceId) -> Result<Vec<BoardId>, AppError> {
    let lookups = runtime::board_lists();
    let lookup = lookups.once(&Workerd, workspace.as_str(), upstreams.budgets().fallback_ms, || backend::boards(upstreams, workspace));
    lookup.await.0.map_err(|err| AppError::Unavailable(format!("listing the workspace's boards: {err}")))
}
