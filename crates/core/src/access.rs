//! Who may read: the bearer token of a request, the role a signed-in user's token carries, the
//! verified caller, and what is known of the caller's membership of a workspace.

use crate::query::UserId;

/// The role Supabase Auth gives a signed-in user's token. PostgREST runs a token's queries as
/// its `role`, and grants `anon` (or any other role) nothing this API serves: a cache must not
/// serve such a token what the database would refuse it.
pub const SIGNED_IN_ROLE: &str = "authenticated";

/// Whether a token's `role` claim is the signed-in user's (a token without one is read as
/// `anon` by PostgREST, so it is not).
pub fn is_signed_in(role: Option<&str>) -> bool {
    role == Some(SIGNED_IN_ROLE)
}

/// The token of an `Authorization: Bearer <token>` header value (the scheme in any case).
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The name a refresh-ahead answer of the backend is sealed under (the associated data of
/// `sealed`): the page's (or counts') Redis key, prefixed so such an answer opens as nothing else.
/// The backend answers a read that carries no user's token, only the internal key, this way: the
/// worker opens it with the cache's keyring; the internal key alone reads nothing.
pub fn refresh_ahead_seal_name(redis_key: &str) -> String {
    format!("refresh-ahead:{redis_key}")
}

/// A caller whose token was verified.
#[derive(Clone)]
pub struct Caller {
    pub user_id: UserId,
    /// The raw token, forwarded to PostgREST so row-level security applies.
    pub token: String,
    /// Workspaces the token says the caller belonged to when it was issued
    /// (`app_metadata.workspace_ids`): logged, never taken as proof of membership.
    pub workspaces_claim: Vec<String>,
}

impl std::fmt::Debug for Caller {
    /// The token is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caller").field("user_id", &self.user_id).field("workspaces_claim", &self.workspaces_claim).finish_non_exhaustive()
    }
}

/// What is known of the caller's membership of the workspace they name, once a non-member has
/// been turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Membership {
    /// Confirmed: by a check of the database within the last minute, or the database itself.
    Confirmed,
    /// Could not be checked (Supabase did not answer): no cached page may be served, and only a
    /// source that checks membership itself may be asked.
    Unverified,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_takes_only_a_bearer_token() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("BEARER abc"), Some("abc"));
        for header in ["", "Bearer ", "Bearer    ", "Basic abc", "abc", "Bearerabc"] {
            assert_eq!(bearer_token(header), None, "{header:?}");
        }
    }

    #[test]
    fn a_refresh_ahead_answer_is_sealed_under_its_own_name() {
        assert_eq!(refresh_ahead_seal_name("contacts:{w}:b"), "refresh-ahead:contacts:{w}:b");
    }

    #[test]
    fn only_the_signed_in_role_is_let_through() {
        assert!(is_signed_in(Some("authenticated")));
        for role in [None, Some("anon"), Some("service_role"), Some("Authenticated"), Some("")] {
            assert!(!is_signed_in(role), "{role:?}");
        }
    }
}
