//! The signature checks `jsonwebtoken` runs, for the three algorithms Supabase issues tokens with
//! (HS256 with the project secret; ES256 and RS256 with its JWKS), from RustCrypto's crates. The
//! crate's own `rust_crypto` provider brings every algorithm it knows (P-384, Ed25519, RSA
//! signing and PSS, and a random number generator), which costs the wasm about a tenth of its
//! size for nothing this API accepts. The backend, a native service, runs the same checks.
//! Tokens are never signed, except HS256 in tests.

use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::signature::{Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use rsa::pkcs1::DecodeRsaPublicKey;
use rsa::{BigUint, Pkcs1v15Sign, RsaPublicKey};
use sha2::{Digest, Sha256};

type Hs256 = Hmac<Sha256>;

/// The provider: installed once per process (isolate) before any token is checked ([`super::verify`]
/// installs it).
static PROVIDER: CryptoProvider = CryptoProvider { signer_factory: signer, verifier_factory: verifier, key_utils: KeyUtils::new_unimplemented() };

/// Makes [`PROVIDER`] jsonwebtoken's; a second call changes nothing.
pub fn install() {
    let _ = PROVIDER.install_default();
}

fn verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    let family = match algorithm {
        Algorithm::HS256 => AlgorithmFamily::Hmac,
        Algorithm::ES256 => AlgorithmFamily::Ec,
        Algorithm::RS256 => AlgorithmFamily::Rsa,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    if key.family() != family {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(match algorithm {
        Algorithm::HS256 => Box::new(HmacKey(Hs256::new_from_slice(key.try_get_as_bytes()?).map_err(|_| ErrorKind::InvalidKeyFormat)?)),
        Algorithm::ES256 => Box::new(EcKey(p256::ecdsa::VerifyingKey::from_sec1_bytes(key.try_get_as_bytes()?).map_err(|_| ErrorKind::InvalidEcdsaKey)?)),
        _ => Box::new(RsaKey(rsa_key(key)?)),
    })
}

fn rsa_key(key: &DecodingKey) -> Result<RsaPublicKey, Error> {
    let invalid = |err: rsa::Error| Error::from(ErrorKind::InvalidRsaKey(err.to_string()));
    match key.kind() {
        DecodingKeyKind::SecretOrDer(der) => RsaPublicKey::from_pkcs1_der(der).map_err(|err| ErrorKind::InvalidRsaKey(err.to_string()).into()),
        DecodingKeyKind::RsaModulusExponent { n, e } => RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e)).map_err(invalid),
    }
}

/// HS256 tokens are signed only by tests (neither the worker nor the backend signs).
fn signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    match algorithm {
        Algorithm::HS256 if key.family() == AlgorithmFamily::Hmac => {
            Ok(Box::new(HmacKey(Hs256::new_from_slice(key.as_bytes()).map_err(|_| ErrorKind::InvalidKeyFormat)?)))
        }
        _ => Err(ErrorKind::InvalidAlgorithm.into()),
    }
}

struct HmacKey(Hs256);
struct EcKey(p256::ecdsa::VerifyingKey);
struct RsaKey(RsaPublicKey);

impl Verifier<Vec<u8>> for HmacKey {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), jsonwebtoken::signature::Error> {
        let mut mac = self.0.clone();
        mac.update(message);
        mac.verify_slice(signature).map_err(jsonwebtoken::signature::Error::from_source)
    }
}

impl Signer<Vec<u8>> for HmacKey {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, jsonwebtoken::signature::Error> {
        let mut mac = self.0.clone();
        mac.update(message);
        Ok(mac.finalize().into_bytes().to_vec())
    }
}

impl Verifier<Vec<u8>> for EcKey {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), jsonwebtoken::signature::Error> {
        let signature = p256::ecdsa::Signature::from_slice(signature)?;
        self.0.verify(message, &signature)
    }
}

impl Verifier<Vec<u8>> for RsaKey {
    fn verify(&self, message: &[u8], signature: &Vec<u8>) -> Result<(), jsonwebtoken::signature::Error> {
        let digest = Sha256::digest(message);
        self.0.verify(Pkcs1v15Sign::new::<Sha256>(), &digest, signature).map_err(jsonwebtoken::signature::Error::from_source)
    }
}

impl JwtVerifier for HmacKey {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtSigner for HmacKey {
    fn algorithm(&self) -> Algorithm {
        Algorithm::HS256
    }
}

impl JwtVerifier for EcKey {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

impl JwtVerifier for RsaKey {
    fn algorithm(&self) -> Algorithm {
        Algorithm::RS256
    }
}
