//! Whether a caller belongs to the workspace they name: found in `workspace_members` read through
//! PostgREST with the caller's own token (row-level security answers). Answers are kept in the
//! isolate for [`MEMBERSHIP_TTL_MS`], so a member removed from a workspace can read it through a
//! warm isolate for at most one minute; concurrent checks of one membership make one query.
//!
//! A token's `app_metadata.workspace_ids` claim is not taken as proof: it was true when the token
//! was issued and stays in the token for its whole life (an hour by default), past a removal.

use crate::config::Upstreams;
use crate::error::AppError;
use crate::limits::Action;
use crate::layers::supabase;
use crate::metrics::Trace;
use crate::runtime::{self, Workerd};
use contact_list_cache_core::access::Caller;
use contact_list_cache_core::engine::LayerError;
use contact_list_cache_core::query::WorkspaceId;
use std::cell::RefCell;
use std::collections::HashMap;

/// How long a membership answer is reused.
const MEMBERSHIP_TTL_MS: u64 = 60 * 1000;

thread_local! {
    static KNOWN: RefCell<HashMap<(String, String), (bool, u64)>> = RefCell::new(HashMap::new());
}

/// What a membership check found.
pub enum Checked {
    Member,
    NotMember,
    /// Supabase did not answer.
    Unchecked(LayerError),
    /// Not asked: the caller or the workspace is over its membership lookup limit.
    Limited(AppError),
}

/// Checks whether `caller` belongs to `workspace`.
pub async fn check(caller: &Caller, workspace: &WorkspaceId, upstreams: &Upstreams, trace: &Trace) -> Checked {
    let now = runtime::now().0;
    let key = (caller.user_id.to_string(), workspace.to_string());
    let known = KNOWN.with(|cell| cell.borrow().get(&key).filter(|(_, at)| now.saturating_sub(*at) < MEMBERSHIP_TTL_MS).map(|(m, _)| *m));
    let answer = match known {
        Some(member) => Ok(member),
        None => {
            if let Err(limited) = upstreams.limiters.admit(Action::MembershipLookup, &caller.user_id, workspace, trace).await {
                return Checked::Limited(limited);
            }
            let flight = format!("{}|{}", key.0, key.1);
            let checks = runtime::membership_checks();
            let (checked, _) = checks
                .once(&Workerd, &flight, upstreams.budgets().database_ms, || async {
                    trace.database_query();
                    supabase::is_member(caller, workspace, upstreams).await
                })
                .await;
            if let Ok(member) = checked {
                KNOWN.with(|cell| {
                    let mut map = cell.borrow_mut();
                    map.retain(|_, (_, at)| now.saturating_sub(*at) < MEMBERSHIP_TTL_MS);
                    map.insert(key, (member, now));
                });
            }
            checked
        }
    };
    match answer {
        Ok(true) => Checked::Member,
        Ok(false) => Checked::NotMember,
        Err(err) => Checked::Unchecked(err),
    }
}
