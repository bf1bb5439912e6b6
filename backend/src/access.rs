//! Who a read is for, checked here, not taken on trust: the internal key alone reads nothing as a
//! user. A call that reads a user's data carries the user's own Supabase access token
//! (`Authorization: Bearer`, forwarded by the worker), verified with the core's rules
//! (`contact_list_cache_core::token`: HS256 with `SUPABASE_JWT_SECRET`, ES256/RS256 with the key
//! of the project's JWKS its `kid` names, the keys kept [`JWKS_TTL`]); the user is the token's
//! `sub`. A read served from Redis also needs the user to be a member of the workspace, asked of
//! PostgreSQL and remembered for at most [`MEMBERSHIP_TTL`] per (user, workspace). The one
//! exception is refresh-ahead (`X-Refresh-Ahead: sealed`, no token, for nobody waiting): the
//! named user's membership is checked the same way, and the answer is sealed with
//! `CACHE_ENCRYPTION_KEY`, which only the worker holds besides this service.

use crate::error::ApiError;
use crate::routes::header;
use crate::state::AppState;
use axum::http::HeaderMap;
use contact_list_cache_core::access::bearer_token;
use contact_list_cache_core::query::{UserId, WorkspaceId};
use contact_list_cache_core::settings::Secret;
use contact_list_cache_core::time::UnixMillis;
use contact_list_cache_core::token::{self, TokenError};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long fetched signing keys are trusted before they are fetched again.
pub const JWKS_TTL: Duration = Duration::from_secs(600);
/// A token naming a key id not in the set fetches it again, at most this often.
const JWKS_REFETCH_AFTER: Duration = Duration::from_secs(10);
/// How long a confirmed membership is remembered.
pub const MEMBERSHIP_TTL: Duration = Duration::from_secs(60);
/// The most memberships remembered; past it, the memory starts over.
const MEMBERSHIPS_KEPT: usize = 100_000;

/// On whose authority a user-scoped read is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acting {
    /// The user whose token was verified.
    User(UserId),
    /// Refresh-ahead for this user: the answer goes out sealed.
    Ahead(UserId),
}

impl Acting {
    pub fn user(&self) -> &UserId {
        match self {
            Self::User(user) | Self::Ahead(user) => user,
        }
    }
}

/// Token verification and remembered memberships, one per process.
pub struct Verifier {
    jwt_secret: Secret,
    jwks_url: String,
    client: reqwest::Client,
    jwks: Mutex<Option<(Arc<JwkSet>, Instant)>>,
    members: Mutex<HashMap<(UserId, WorkspaceId), Instant>>,
}

impl Verifier {
    /// Verifies with `jwt_secret` (HS256) and the JWKS of the project at `supabase_url`.
    pub fn new(jwt_secret: Secret, supabase_url: &str) -> Self {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("an HTTP client with rustls builds");
        Self {
            jwt_secret,
            jwks_url: format!("{}/auth/v1/.well-known/jwks.json", supabase_url.trim_end_matches('/')),
            client,
            jwks: Mutex::new(None),
            members: Mutex::new(HashMap::new()),
        }
    }

    /// The user of a valid `token`.
    pub async fn verify(&self, token: &str) -> Result<UserId, TokenError> {
        let (alg, kid) = token::header(token)?;
        let key = match alg {
            Algorithm::HS256 => DecodingKey::from_secret(self.jwt_secret.expose().as_bytes()),
            _ => self.signing_key(kid.as_deref(), alg).await?,
        };
        Ok(token::verify(token, alg, &key, now())?.user_id)
    }

    /// The key for `kid` from the project's JWKS: fetched at most once per [`JWKS_TTL`], and again
    /// when a token names a key id not yet seen (keys rotate), at most every few seconds.
    async fn signing_key(&self, kid: Option<&str>, alg: Algorithm) -> Result<DecodingKey, TokenError> {
        let held = self.jwks.lock().expect("the JWKS lock is never poisoned").clone();
        if let Some((set, fetched)) = &held {
            let age = fetched.elapsed();
            match token::key_in(set, kid, alg) {
                Some(key) if age < JWKS_TTL => return Ok(key),
                None if age < JWKS_REFETCH_AFTER => return Err(TokenError::UnknownKey),
                _ => {}
            }
        }
        let set = self.fetch_jwks().await.map_err(|err| {
            tracing::error!(error = %err, url = %self.jwks_url, "fetching the JWKS failed");
            TokenError::KeysUnavailable
        })?;
        let key = token::key_in(&set, kid, alg);
        *self.jwks.lock().expect("the JWKS lock is never poisoned") = Some((Arc::new(set), Instant::now()));
        key.ok_or(TokenError::UnknownKey)
    }

    async fn fetch_jwks(&self) -> anyhow::Result<JwkSet> {
        let response = self.client.get(&self.jwks_url).send().await?.error_for_status()?;
        Ok(serde_json::from_slice(&response.bytes().await?)?)
    }

    /// Whether `user` was confirmed a member of `workspace` within [`MEMBERSHIP_TTL`].
    fn remembered(&self, user: &UserId, workspace: &WorkspaceId) -> bool {
        let members = self.members.lock().expect("the membership lock is never poisoned");
        members.get(&(user.clone(), workspace.clone())).is_some_and(|at| at.elapsed() < MEMBERSHIP_TTL)
    }

    fn remember(&self, user: &UserId, workspace: &WorkspaceId) {
        let mut members = self.members.lock().expect("the membership lock is never poisoned");
        if members.len() >= MEMBERSHIPS_KEPT {
            members.retain(|_, at| at.elapsed() < MEMBERSHIP_TTL);
            if members.len() >= MEMBERSHIPS_KEPT {
                members.clear();
            }
        }
        members.insert((user.clone(), workspace.clone()), Instant::now());
    }
}

fn now() -> UnixMillis {
    crate::layers::runtime::now()
}

/// Who a user-scoped request acts for: the verified token's `sub` (an `X-User-ID`, if sent, must
/// be the same user), or with `X-Refresh-Ahead: sealed` and no token, the user `X-User-ID` names.
/// 401 naming what is wrong otherwise.
pub async fn acting(state: &AppState, headers: &HeaderMap) -> Result<Acting, ApiError> {
    let named = match header(headers, "x-user-id") {
        None | Some("") => None,
        Some(raw) => Some(UserId::parse("X-User-ID", raw)?),
    };
    let refused = |message: &'static str| {
        state.stats.unauthorized.increment();
        ApiError::NoUser(message)
    };
    let Some(authorization) = header(headers, "authorization") else {
        return match (header(headers, "x-refresh-ahead"), named) {
            (Some("sealed"), Some(user)) => Ok(Acting::Ahead(user)),
            (Some("sealed"), None) => Err(refused("X-Refresh-Ahead needs X-User-ID")),
            _ => Err(refused("missing Authorization: Bearer token (the user's own access token)")),
        };
    };
    let token = bearer_token(authorization).ok_or_else(|| refused("Authorization must be Bearer <token>"))?;
    let user = state.verifier.verify(token).await.map_err(|err| refused(err.message()))?;
    if named.is_some_and(|named| named != user) {
        return Err(refused("X-User-ID must be the token's subject"));
    }
    Ok(Acting::User(user))
}

/// 403 unless `user` is a member of `workspace` (PostgreSQL, or remembered for at most
/// [`MEMBERSHIP_TTL`]); 503 when it cannot be asked.
pub async fn require_member(state: &AppState, user: &UserId, workspace: &WorkspaceId) -> Result<(), ApiError> {
    if state.verifier.remembered(user, workspace) {
        return Ok(());
    }
    if !state.db.is_member(workspace, user).await? {
        return Err(ApiError::NotAMember);
    }
    state.verifier.remember(user, workspace);
    Ok(())
}
