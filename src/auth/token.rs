//! Supabase access tokens: HS256 with the project secret, or ES256/RS256 against the project's
//! JWKS (kept in the isolate for [`JWKS_TTL_MS`], fetched again when an unknown `kid` appears).
//! A token is accepted only with a valid signature, `exp` and `nbf` (with [`LEEWAY_SECONDS`]),
//! `aud = authenticated`, `role = authenticated` and a UUID `sub`.

use crate::config::Upstreams;
use crate::error::AppError;
use crate::layers::supabase;
use crate::runtime;
use contact_list_cache_core::access::{bearer_token, is_signed_in, Caller};
use contact_list_cache_core::query::UserId;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use std::cell::RefCell;

/// How long fetched signing keys are trusted before they are fetched again.
const JWKS_TTL_MS: u64 = 10 * 60 * 1000;
/// Clock skew tolerated on `exp` and `nbf`, in seconds.
const LEEWAY_SECONDS: u64 = 30;
/// The audience of a signed-in user's token.
const AUDIENCE: &str = "authenticated";

#[derive(Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    role: Option<String>,
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
}

/// The caller of `Authorization: Bearer <jwt>` (`authorization` is the header's value).
pub async fn authenticate(authorization: Option<&str>, upstreams: &Upstreams) -> Result<Caller, AppError> {
    let header = authorization.ok_or(AppError::Unauthorized("missing Authorization: Bearer token"))?;
    let token = bearer_token(header).ok_or(AppError::Unauthorized("Authorization must be Bearer <token>"))?;
    let jwt_header = jsonwebtoken::decode_header(token).map_err(|_| AppError::Unauthorized("invalid token"))?;
    let key = match jwt_header.alg {
        Algorithm::HS256 => DecodingKey::from_secret(upstreams.jwt_secret.expose().as_bytes()),
        Algorithm::ES256 | Algorithm::RS256 => signing_key(jwt_header.kid.as_deref(), jwt_header.alg, upstreams).await?,
        _ => return Err(AppError::Unauthorized("unsupported token algorithm")),
    };
    verify(token, jwt_header.alg, &key)
}

/// Checks `token`, signed with `alg`, against `key`: signature, `exp`, `nbf`, `aud`, `role` and
/// a UUID `sub`.
fn verify(token: &str, alg: Algorithm, key: &DecodingKey) -> Result<Caller, AppError> {
    let mut validation = Validation::new(alg);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "sub", "aud"]);
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECONDS;
    let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
        .map_err(|err| {
            AppError::Unauthorized(match err.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "token expired",
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => "token not yet valid",
                jsonwebtoken::errors::ErrorKind::InvalidAudience => "token audience must be authenticated",
                _ => "invalid token",
            })
        })?
        .claims;
    if !is_signed_in(claims.role.as_deref()) {
        return Err(AppError::Unauthorized("token role must be authenticated"));
    }
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
    let now = runtime::now().0;
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

#[cfg(test)]
mod tests {
    //! Bounded fuzzing of token handling: whatever arrives, verification never panics and accepts
    //! exactly the tokens the rules allow.
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    const SECRET: &str = "a-test-secret-of-reasonable-length";
    const USER: &str = "5d41402a-bc4b-2a76-b971-9d911017c592";

    fn now() -> i64 {
        i64::try_from(jsonwebtoken::get_current_timestamp()).expect("the clock fits")
    }

    fn sign(claims: &Value) -> String {
        crate::auth::crypto::install();
        encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(SECRET.as_bytes())).expect("signs")
    }

    fn check(token: &str) -> Result<Caller, AppError> {
        crate::auth::crypto::install();
        verify(token, Algorithm::HS256, &DecodingKey::from_secret(SECRET.as_bytes()))
    }

    #[test]
    fn a_well_formed_token_is_accepted_with_its_claims() {
        let token = sign(&json!({"sub": USER, "aud": "authenticated", "role": "authenticated", "exp": now() + 60, "app_metadata": {"workspace_ids": ["w"]}}));
        let caller = check(&token).expect("accepted");
        assert_eq!(caller.user_id.to_string(), USER);
        assert_eq!(caller.workspaces_claim, vec!["w".to_owned()]);
    }

    #[test]
    fn a_token_signed_with_the_project_secret_but_not_for_a_signed_in_user_is_refused() {
        for role in [json!("anon"), json!("service_role"), json!(null)] {
            let token = sign(&json!({"sub": USER, "aud": "authenticated", "role": role, "exp": now() + 60}));
            assert!(matches!(check(&token), Err(AppError::Unauthorized("token role must be authenticated"))), "{role}");
        }
        let without_role = sign(&json!({"sub": USER, "aud": "authenticated", "exp": now() + 60}));
        assert!(check(&without_role).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_text_is_never_a_valid_token(raw in ".{0,300}", dotted in "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,50}") {
            prop_assert!(check(&raw).is_err());
            prop_assert!(check(&dotted).is_err());
            let _ = bearer_token(&raw);
        }

        #[test]
        fn a_signed_token_with_one_character_changed_is_rejected(at in any::<prop::sample::Index>(), with in "[A-Za-z0-9_-]") {
            let token = sign(&json!({"sub": USER, "aud": "authenticated", "role": "authenticated", "exp": now() + 600}));
            let chars: Vec<char> = token.chars().collect();
            let i = at.index(chars.len());
            let with = with.chars().next().expect("one character");
            // The last character of a base64url segment may carry unused bits: skip those.
            let segment_end = chars.get(i + 1).is_none_or(|next| *next == '.');
            prop_assume!(chars[i] != '.' && chars[i] != with && !segment_end);
            let mut forged = chars.clone();
            forged[i] = with;
            let forged: String = forged.into_iter().collect();
            prop_assert!(check(&forged).is_err(), "accepted {forged}");
        }

        #[test]
        fn claims_are_accepted_exactly_when_the_rules_allow(
            sub in prop_oneof![Just(USER.to_owned()), "[0-9a-f-]{0,40}", ".{0,20}"],
            aud in prop_oneof![Just("authenticated".to_owned()), Just("anon".to_owned()), "[a-z]{0,12}"],
            role in prop::option::of(prop_oneof![Just("authenticated".to_owned()), Just("anon".to_owned()), "[a-z_]{0,14}"]),
            exp in prop::option::of(-7200i64..7200),
            nbf in prop::option::of(-7200i64..7200),
        ) {
            let t = now();
            let mut claims = json!({"sub": sub, "aud": aud});
            if let Some(role) = &role { claims["role"] = json!(role); }
            if let Some(exp) = exp { claims["exp"] = json!(t + exp); }
            if let Some(nbf) = nbf { claims["nbf"] = json!(t + nbf); }
            let leeway = i64::try_from(LEEWAY_SECONDS).expect("small");
            // Two seconds either side of a limit are left out: the clock moves during the test.
            let near = |offset: i64| (offset.abs() - leeway).abs() <= 2;
            prop_assume!(!exp.is_some_and(near) && !nbf.is_some_and(near));
            let allowed = UserId::parse("sub", &sub).is_ok()
                && aud == "authenticated"
                && role.as_deref() == Some("authenticated")
                && exp.is_some_and(|exp| exp > -leeway)
                && nbf.is_none_or(|nbf| nbf < leeway);
            prop_assert_eq!(check(&sign(&claims)).is_ok(), allowed, "{}", claims);
        }
    }
}
