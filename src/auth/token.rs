//! Supabase access tokens at the edge: the rules are the core's
//! (`contact_list_cache_core::token`, shared with the backend); here the project's JWKS is
//! fetched and kept in the isolate for [`JWKS_TTL_MS`], fetched again when an unknown `kid`
//! appears.

use crate::config::Upstreams;
use crate::error::AppError;
use crate::layers::supabase;
use crate::runtime;
use contact_list_cache_core::access::{bearer_token, Caller};
use contact_list_cache_core::token::{self, TokenError};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use std::cell::RefCell;

/// How long fetched signing keys are trusted before they are fetched again.
const JWKS_TTL_MS: u64 = 10 * 60 * 1000;

thread_local! {
    static JWKS: RefCell<Option<(JwkSet, u64)>> = const { RefCell::new(None) };
}

fn refused(err: TokenError) -> AppError {
    AppError::Unauthorized(err.message())
}

/// The caller of `Authorization: Bearer <jwt>` (`authorization` is the header's value).
pub async fn authenticate(authorization: Option<&str>, upstreams: &Upstreams) -> Result<Caller, AppError> {
    let header = authorization.ok_or(AppError::Unauthorized("missing Authorization: Bearer token"))?;
    let token = bearer_token(header).ok_or(AppError::Unauthorized("Authorization must be Bearer <token>"))?;
    let (alg, kid) = token::header(token).map_err(refused)?;
    let key = match alg {
        Algorithm::HS256 => DecodingKey::from_secret(upstreams.jwt_secret.expose().as_bytes()),
        _ => signing_key(kid.as_deref(), alg, upstreams).await.map_err(refused)?,
    };
    let verified = token::verify(token, alg, &key, runtime::now()).map_err(refused)?;
    Ok(Caller { user_id: verified.user_id, token: token.to_owned(), workspaces_claim: verified.workspaces_claim })
}

/// The key for `kid` from the project's JWKS, fetched at most once per TTL, and once more when
/// a token names a key id not yet seen (keys rotate).
async fn signing_key(kid: Option<&str>, alg: Algorithm, upstreams: &Upstreams) -> Result<DecodingKey, TokenError> {
    let now = runtime::now().0;
    let cached = JWKS.with(|cell| {
        cell.borrow()
            .as_ref()
            .filter(|(_, fetched)| now.saturating_sub(*fetched) < JWKS_TTL_MS)
            .and_then(|(set, _)| token::key_in(set, kid, alg))
    });
    if let Some(key) = cached {
        return Ok(key);
    }
    let set = supabase::fetch_jwks(upstreams).await.map_err(|err| {
        worker::console_error!("fetching the JWKS failed: {err}");
        TokenError::KeysUnavailable
    })?;
    let key = token::key_in(&set, kid, alg);
    JWKS.with(|cell| *cell.borrow_mut() = Some((set, now)));
    key.ok_or(TokenError::UnknownKey)
}
