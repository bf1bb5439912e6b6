//! Supabase access tokens, checked the same way by the worker and the backend: the signature
//! (HS256 with the project secret, ES256/RS256 with a key of the project's JWKS chosen by `kid`),
//! then the claim rules: `exp` and `nbf` (with [`LEEWAY_SECONDS`]), `aud = authenticated`,
//! `role = authenticated` and a UUID `sub`. Fetching and caching the JWKS is each side's I/O;
//! the time is passed in.

pub mod crypto;

use crate::access::is_signed_in;
use crate::query::UserId;
use crate::time::UnixMillis;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

/// Clock skew tolerated on `exp` and `nbf`, in seconds.
pub const LEEWAY_SECONDS: u64 = 30;
/// The audience of a signed-in user's token.
pub const AUDIENCE: &str = "authenticated";

/// Why a token was refused. Each reason's [`TokenError::message`] is what the caller is told
/// (401); none of them reveals a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Invalid,
    UnsupportedAlgorithm,
    UnknownKey,
    KeysUnavailable,
    NoExpiry,
    Expired,
    NotYetValid,
    WrongAudience,
    NotSignedIn,
    NotAUser,
}

impl TokenError {
    /// The reason as the 401's message.
    pub fn message(self) -> &'static str {
        match self {
            Self::Invalid => "invalid token",
            Self::UnsupportedAlgorithm => "unsupported token algorithm",
            Self::UnknownKey => "token signed with an unknown key",
            Self::KeysUnavailable => "token signing key cannot be verified",
            Self::NoExpiry => "token has no expiry",
            Self::Expired => "token expired",
            Self::NotYetValid => "token not yet valid",
            Self::WrongAudience => "token audience must be authenticated",
            Self::NotSignedIn => "token role must be authenticated",
            Self::NotAUser => "token subject is not a user id",
        }
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for TokenError {}

/// `aud`: one audience or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn includes(&self, wanted: &str) -> bool {
        match self {
            Self::One(aud) => aud == wanted,
            Self::Many(auds) => auds.iter().any(|aud| aud == wanted),
        }
    }
}

/// The claims the rules read, as the token carries them (a claim may be missing).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Claims {
    #[serde(default)]
    pub sub: Option<String>,
    #[serde(default)]
    pub aud: Option<Audience>,
    /// Seconds since the epoch (JSON numbers, possibly fractional).
    #[serde(default)]
    pub exp: Option<f64>,
    #[serde(default)]
    pub nbf: Option<f64>,
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub app_metadata: Option<AppMetadata>,
}

/// `app_metadata`: the workspaces the token vouches for, if any.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AppMetadata {
    #[serde(default)]
    pub workspace_ids: Vec<String>,
}

/// What an accepted token says: whose it is and which workspaces it vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub user_id: UserId,
    pub workspaces_claim: Vec<String>,
}

/// The claim rules at `now`: `exp` present and not past (less [`LEEWAY_SECONDS`]), `nbf` if
/// present not ahead (plus the leeway), `aud` includes `authenticated`, `role` is
/// `authenticated`, `sub` a UUID.
pub fn check_claims(claims: Claims, now: UnixMillis) -> Result<Verified, TokenError> {
    let now = (now.0 / 1000) as f64;
    let leeway = LEEWAY_SECONDS as f64;
    let exp = claims.exp.ok_or(TokenError::NoExpiry)?;
    if exp < now - leeway {
        return Err(TokenError::Expired);
    }
    if claims.nbf.is_some_and(|nbf| nbf > now + leeway) {
        return Err(TokenError::NotYetValid);
    }
    if !claims.aud.as_ref().is_some_and(|aud| aud.includes(AUDIENCE)) {
        return Err(TokenError::WrongAudience);
    }
    if !is_signed_in(claims.role.as_deref()) {
        return Err(TokenError::NotSignedIn);
    }
    let sub = claims.sub.as_deref().ok_or(TokenError::NotAUser)?;
    let user_id = UserId::parse("sub", sub).map_err(|_| TokenError::NotAUser)?;
    Ok(Verified { user_id, workspaces_claim: claims.app_metadata.unwrap_or_default().workspace_ids })
}

/// The algorithm and key id a token's header names; only HS256, ES256 and RS256 are accepted.
pub fn header(token: &str) -> Result<(Algorithm, Option<String>), TokenError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
    match header.alg {
        Algorithm::HS256 | Algorithm::ES256 | Algorithm::RS256 => Ok((header.alg, header.kid)),
        _ => Err(TokenError::UnsupportedAlgorithm),
    }
}

/// The key of `set` a token signed with `alg` names by `kid` (without a `kid`, the set's key for
/// `alg`), when there is one.
pub fn key_in(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
    set.keys
        .iter()
        .find(|jwk| match kid {
            Some(kid) => jwk.common.key_id.as_deref() == Some(kid),
            None => jwk.common.key_algorithm.map(|a| a.to_string()) == Some(format!("{alg:?}")),
        })
        .and_then(|jwk| DecodingKey::from_jwk(jwk).ok())
}

/// Checks `token`'s signature (`alg`, `key`), then its claims at `now`.
pub fn verify(token: &str, alg: Algorithm, key: &DecodingKey, now: UnixMillis) -> Result<Verified, TokenError> {
    crypto::install();
    // The signature only: the claim rules are `check_claims`, with the time given.
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|_| TokenError::Invalid)?.claims;
    check_claims(claims, now)
}

#[cfg(test)]
mod tests {
    //! The claim rules at fixed times, and bounded fuzzing of whole tokens: whatever arrives,
    //! verification never panics and accepts exactly the tokens the rules allow.
    use super::*;
    use jsonwebtoken::{encode, EncodingKey, Header};
    use proptest::prelude::*;
    use serde_json::{json, Value};

    const SECRET: &str = "a-test-secret-of-reasonable-length";
    const USER: &str = "5d41402a-bc4b-2a76-b971-9d911017c592";
    /// A fixed now: 2026-01-01T00:00:00Z.
    const NOW_S: i64 = 1_767_225_600;
    const NOW: UnixMillis = UnixMillis(NOW_S as u64 * 1000);

    fn claims(value: Value) -> Claims {
        serde_json::from_value(value).expect("claims deserialize")
    }

    fn valid() -> Value {
        json!({"sub": USER, "aud": "authenticated", "role": "authenticated", "exp": NOW_S + 60})
    }

    fn with(key: &str, value: Value) -> Claims {
        let mut claims = valid();
        claims[key] = value;
        self::claims(claims)
    }

    fn sign(claims: &Value) -> String {
        crypto::install();
        encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(SECRET.as_bytes())).expect("signs")
    }

    fn check(token: &str) -> Result<Verified, TokenError> {
        verify(token, Algorithm::HS256, &DecodingKey::from_secret(SECRET.as_bytes()), NOW)
    }

    #[test]
    fn a_well_formed_token_is_accepted_with_its_claims() {
        let token = sign(&json!({"sub": USER, "aud": "authenticated", "role": "authenticated", "exp": NOW_S + 60, "app_metadata": {"workspace_ids": ["w"]}}));
        let verified = check(&token).expect("accepted");
        assert_eq!(verified.user_id.to_string(), USER);
        assert_eq!(verified.workspaces_claim, vec!["w".to_owned()]);
    }

    #[test]
    fn expiry_and_not_before_allow_thirty_seconds_of_skew() {
        assert!(check_claims(with("exp", json!(NOW_S - 30)), NOW).is_ok());
        assert_eq!(check_claims(with("exp", json!(NOW_S - 31)), NOW), Err(TokenError::Expired));
        assert!(check_claims(with("nbf", json!(NOW_S + 30)), NOW).is_ok());
        assert_eq!(check_claims(with("nbf", json!(NOW_S + 31)), NOW), Err(TokenError::NotYetValid));
        assert_eq!(check_claims(with("exp", json!(null)), NOW), Err(TokenError::NoExpiry));
        assert!(check_claims(with("exp", json!(NOW_S as f64 + 0.5)), NOW).is_ok(), "a fractional exp is a date too");
    }

    #[test]
    fn the_audience_role_and_subject_must_be_a_signed_in_users() {
        assert!(check_claims(with("aud", json!(["other", "authenticated"])), NOW).is_ok());
        for aud in [json!("anon"), json!(["anon"]), json!(null), json!("Authenticated")] {
            assert_eq!(check_claims(with("aud", aud.clone()), NOW), Err(TokenError::WrongAudience), "{aud}");
        }
        for role in [json!("anon"), json!("service_role"), json!(null)] {
            assert_eq!(check_claims(with("role", role.clone()), NOW), Err(TokenError::NotSignedIn), "{role}");
        }
        for sub in [json!("me"), json!(""), json!(null)] {
            assert_eq!(check_claims(with("sub", sub.clone()), NOW), Err(TokenError::NotAUser), "{sub}");
        }
    }

    #[test]
    fn only_the_three_supabase_algorithms_are_named() {
        let token = sign(&valid());
        assert_eq!(header(&token), Ok((Algorithm::HS256, None)));
        let hs512 = format!("eyJhbGciOiJIUzUxMiIsInR5cCI6IkpXVCJ9.{}", token.split_once('.').expect("dotted").1);
        assert_eq!(header(&hs512), Err(TokenError::UnsupportedAlgorithm));
        assert_eq!(header("not a token"), Err(TokenError::Invalid));
    }

    #[test]
    fn a_token_signed_with_another_secret_is_refused() {
        let other = encode(&Header::new(Algorithm::HS256), &valid(), &EncodingKey::from_secret(b"another-secret-entirely")).expect("signs");
        assert_eq!(check(&other), Err(TokenError::Invalid));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_text_is_never_a_valid_token(raw in ".{0,300}", dotted in "[A-Za-z0-9_-]{0,40}\\.[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,50}") {
            prop_assert!(check(&raw).is_err());
            prop_assert!(check(&dotted).is_err());
        }

        #[test]
        fn a_signed_token_with_one_character_changed_is_rejected(at in any::<prop::sample::Index>(), with in "[A-Za-z0-9_-]") {
            let token = sign(&valid());
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
            let mut claims = json!({"sub": sub, "aud": aud});
            if let Some(role) = &role { claims["role"] = json!(role); }
            if let Some(exp) = exp { claims["exp"] = json!(NOW_S + exp); }
            if let Some(nbf) = nbf { claims["nbf"] = json!(NOW_S + nbf); }
            let leeway = LEEWAY_SECONDS as i64;
            let allowed = UserId::parse("sub", &sub).is_ok()
                && aud == "authenticated"
                && role.as_deref() == Some("authenticated")
                && exp.is_some_and(|exp| exp >= -leeway)
                && nbf.is_none_or(|nbf| nbf <= leeway);
            prop_assert_eq!(check(&sign(&claims)).is_ok(), allowed, "{}", claims);
        }
    }
}
