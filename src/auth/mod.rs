//! The one gate of every route that needs a caller and a workspace: the token is verified, then
//! the caller's membership of the workspace; a non-member is turned away here, and what is known
//! of a member's membership travels on as [`Membership`].

mod membership;
mod token;

pub use token::authenticate;

use crate::config::Upstreams;
use crate::error::AppError;
use crate::metrics::Trace;
use contact_list_cache_core::access::{Caller, Membership};
use contact_list_cache_core::query::WorkspaceId;
use membership::Checked;
use worker::Request;

/// A verified caller, the workspace they may read, and how sure that is.
#[derive(Debug, Clone)]
pub struct Access {
    pub caller: Caller,
    pub workspace: WorkspaceId,
    pub membership: Membership,
}

impl Access {
    /// For routes that change a workspace's caches: membership must be confirmed, not just
    /// unrefuted (503 while it cannot be checked).
    pub fn confirmed(self) -> Result<Self, AppError> {
        match self.membership {
            Membership::Confirmed => Ok(self),
            Membership::Unverified => Err(AppError::Unavailable("membership cannot be checked".into())),
        }
    }
}

/// 401 without a valid signed-in user's token, 403 for a non-member of `workspace`; otherwise
/// the access, with the membership `Unverified` when Supabase could not be asked.
pub async fn authorize(req: &Request, upstreams: &Upstreams, workspace: WorkspaceId, trace: &Trace) -> Result<Access, AppError> {
    let caller = authenticate(req.headers().get("Authorization")?.as_deref(), upstreams).await?;
    trace.workspace(&workspace);
    let membership = match membership::check(&caller, &workspace, upstreams, trace).await {
        Checked::Member => Membership::Confirmed,
        Checked::NotMember => return Err(AppError::Forbidden),
        Checked::Limited(limited) => return Err(limited),
        Checked::Unchecked(err) => {
            trace.failed(format!("membership check: {err}"));
            Membership::Unverified
        }
    };
    Ok(Access { caller, workspace, membership })
}
