//! Who is asking: the Supabase access token (HS256 with the project secret, ES256/RS256 against
//! the project's JWKS), and whether they belong to the workspace they name.
//!
//! Caches live in the isolate (one per Cloudflare location and instance): the JWKS for
//! [`JWKS_TTL_MS`], membership answers for [`MEMBERSHIP_TTL_MS`]. A member removed from a
//! workspace can therefore read it through this isolate for at most one minute.

use crate::clock;
use crate::coalesce;
use crate::config::Upstreams;
use crate::error::AppError;
use crate::layers::supabase;
use crate::metrics::Trace;
use contact_list_cache_core::coalesce::Flights;
use contact_list_cache_core::query::{UserId, WorkspaceId};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::HashMap;
use worker::Request;

/// How long fetched signing keys are trusted before they are fetched again.
const JWKS_TTL_MS: u64 = 10 * 60 * 1000;
/// How long a membership answer is reused.
const MEMBERSHIP_TTL_MS: u64 = 60 * 1000;
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECONDS: u64 = 30;
/// The audience of a signed-in user's token.
const AUDIENCE: &str = "authenticated";

/// A verified caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: UserId,
    /// The raw token, forwarded to PostgREST so row-level security applies.
    pub token: String,
    /// Workspaces the token itself vouches for (`app_metadata.workspace_ids`).
    workspaces_claim: Vec<String>,
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    app_metadata: Option<AppMetadata>,
}

#[derive(Deserialize, Default)]
struct AppMetadata {
    #[serde(default)]
    workspace_ids: Vec<String>,
}

thread_local! {
    static JWKS: RefCell<Option<(JwkSet, u64)>> = const { RefCell::new(None) };
    static MEMBERSHIP: RefCell<HashMap<(String, String), (bool, u64)>> = RefCell::new(HashMap::new());
    static MEMBERSHIP_CHECKS: Flights<Result<bool, String>> = Flights::default();
}

/// Verifies `Authorization: Bearer <jwt>`: signature, `exp`, `nbf`, `aud` and a UUID `sub`.
pub async fn authenticate(req: &Request, upstreams: &Upstreams) -> Result<Caller, AppError> {
    let header = req.headers().get("Authorization")?.ok_or(AppError::Unauthorized("missing Authorization: Bearer token"))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AppError::Unauthorized("Authorization must be Bearer <token>"))?;
    let jwt_header = jsonwebtoken::decode_header(token).map_err(|_| AppError::Unauthorized("invalid token"))?;
    let key = match jwt_header.alg {
        Algorithm::HS256 => DecodingKey::from_secret(upstreams.jwt_secret.as_bytes()),
        Algorithm::ES256 | Algorithm::RS256 => signing_key(jwt_header.kid.as_deref(), jwt_header.alg, upstreams).await?,
        _ => return Err(AppError::Unauthorized("unsupported token algorithm")),
    };
    let mut validation = Validation::new(jwt_header.alg);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "sub", "aud"]);
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECONDS;
    let claims = jsonwebtoken::decode::<Claims>(token, &key, &validation)
        .map_err(|err| {
            AppError::Unauthorized(match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "token expired",
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => "token not yet valid",
                jsonwebtoken::errors::ErrorKind::InvalidAudience => "token audience must be authenticated",
                _ => "invalid token",
            })
        })?
        .claims;
    let user_id = UserId::parse("sub", &claims.sub).map_err(|_| AppError::Unauthorized("token subject is not a user id"))?;
    Ok(Caller {
        user_id,
        token: token.to_owned(),
        workspaces_claim: claims.app_metadata.unwrap_or_default().workspace_ids,
    })
}

/// The key for `kid` from the project's JWKS, fetched at most once per TTL, and once more when
/// a token names a key id not yet seen (keys rotate).
async fn signing_key(kid: Option<&str>, alg: Algorithm, upstreams: &Upstreams) -> Result<DecodingKey, AppError> {
    let now = clock::now().0;
    let find = |set: &JwkSet| {
        set.keys
            .iter()
            .find(|jwk| match kid {
                Some(kid) => jwk.common.key_id.as_deref() == Some(kid),
                None => jwk.common.key_algorithm.map(|a| a.to_string()) == Some(format!("{alg:?}")),
            })
            .and_then(|jwk| DecodingKey::from_jwk(jwk).ok())
    };
    let cached = JWKS.with(|cell| cell.borrow().as_ref().filter(|(_, fetched)| now.saturating_sub(*fetched) < JWKS_TTL_MS).and_then(|(set, _)| find(set)));
    if let Some(key) = cached {
        return Ok(key);
    }
    let set = supabase::fetch_jwks(upstreams).await.map_err(|err| {
        worker::console_error!("fetching the JWKS failed: {err}");
        AppError::Unauthorized("token signing key cannot be verified")
    })?;
    let key = find(&set);
    JWKS.with(|cell| *cell.borrow_mut() = Some((set, now)));
    key.ok_or(AppError::Unauthorized("token signed with an unknown key"))
}

/// Whether the caller may read `workspace`: vouched for by the token's `app_metadata`, or found
/// in `workspace_members` read with the caller's own token (so row-level security answers).
/// `Ok(None)` means the membership could not be checked (Supabase unreachable).
pub async fn is_member(caller: &Caller, workspace: &WorkspaceId, upstreams: &Upstreams, trace: &Trace) -> Result<Option<bool>, AppError> {
    if caller.workspaces_claim.iter().any(|id| id.eq_ignore_ascii_case(workspace.as_str())) {
        return Ok(Some(true));
    }
    let now = clock::now().0;
    let key = (caller.user_id.to_string(), workspace.to_string());
    let cached = MEMBERSHIP.with(|cell| cell.borrow().get(&key).filter(|(_, at)| now.saturating_sub(*at) < MEMBERSHIP_TTL_MS).map(|(m, _)| *m));
    if cached.is_some() {
        return Ok(cached);
    }
    // Concurrent checks of one membership in this isolate make one query.
    let flight = format!("{}|{}", key.0, key.1);
    let (checked, _) = coalesce::once(&MEMBERSHIP_CHECKS, &flight, upstreams.supabase_timeout_ms, || async {
        trace.database_query();
        supabase::is_member(caller, workspace, upstreams).await.map_err(|err| err.to_string())
    })
    .await;
    match checked {
        Ok(member) => {
            MEMBERSHIP.with(|cell| {
                let mut map = cell.borrow_mut();
                map.retain(|_, (_, at)| now.saturating_sub(*at) < MEMBERSHIP_TTL_MS);
                map.insert(key, (member, now));
            });
            Ok(Some(member))
        }
        Err(err) => {
            trace.failed(format!("membership check: {err}"));
            Ok(None)
        }
    }
}
