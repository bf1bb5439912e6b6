//! TLS to Redis and PostgreSQL (rustls, no OpenSSL): which certificates to trust, and failed
//! handshakes turned into errors that name the setting to fix.

use contact_list_cache_core::settings::SettingError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::PathBuf;
use std::sync::Arc;

/// A CA certificate file (PEM, one or more certificates) read and checked at startup.
#[derive(Clone)]
pub struct CaFile {
    /// The setting that named it, for messages (`REDIS_CA_CERT`, `DATABASE_URL sslrootcert`).
    pub setting: &'static str,
    pub path: PathBuf,
    /// The file's text, as read.
    pub pem: Vec<u8>,
    pub certs: Vec<CertificateDer<'static>>,
}

impl std::fmt::Debug for CaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaFile").field("path", &self.path).field("certs", &self.certs.len()).finish()
    }
}

impl CaFile {
    /// Reads `path`, which must hold at least one PEM `CERTIFICATE`.
    pub fn read(setting: &'static str, path: &str) -> Result<Self, SettingError> {
        let invalid = |why: String| SettingError::Invalid {
            name: setting,
            expected: format!("the path of a PEM file of CA certificates ({why})"),
            got: path.to_owned(),
        };
        let pem = std::fs::read(path).map_err(|err| invalid(err.to_string()))?;
        let certs = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| invalid(format!("not PEM: {err}")))?;
        if certs.is_empty() {
            return Err(invalid("it holds no CERTIFICATE".into()));
        }
        let mut store = RootCertStore::empty();
        for cert in &certs {
            store.add(cert.clone()).map_err(|err| invalid(format!("not a usable CA certificate: {err}")))?;
        }
        Ok(Self { setting, path: PathBuf::from(path), pem, certs })
    }

    fn roots(&self) -> RootCertStore {
        let mut store = RootCertStore::empty();
        store.add_parsable_certificates(self.certs.iter().cloned());
        store
    }
}

/// A client configuration that checks the server's chain against `ca` (the built-in Mozilla
/// roots when `None`) and its name against the host connected to.
pub fn verifying(ca: Option<&CaFile>) -> ClientConfig {
    let roots = match ca {
        Some(ca) => ca.roots(),
        None => RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
    };
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// A client configuration that encrypts but accepts any certificate (libpq's `sslmode=require`):
/// safe against eavesdropping, not against an active man in the middle.
pub fn encrypting_only() -> ClientConfig {
    let verifier = AnyCertificate(provider());
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth()
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts every certificate but still checks the handshake signatures made with it.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(&self, _: &CertificateDer<'_>, _: &[CertificateDer<'_>], _: &ServerName<'_>, _: &[u8], _: UnixTime) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Why a TLS handshake failed, told apart from the error's text (the Redis client keeps only the
/// text of its I/O errors, so the rustls error cannot always be downcast).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The chain does not lead to a trusted root.
    NotTrusted,
    /// The certificate is not for the host connected to.
    WrongHost(String),
    /// Any other refusal of the certificate or the handshake.
    Other(String),
}

impl HandshakeFailure {
    /// The failure in `err` (its whole `source()` chain), if it was one of TLS.
    pub fn find(err: &(dyn std::error::Error + 'static)) -> Option<Self> {
        let mut text = err.to_string();
        let mut next = err.source();
        while let Some(cause) = next {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            next = cause.source();
        }
        Self::from_text(&text)
    }

    fn from_text(text: &str) -> Option<Self> {
        // The last occurrence: wrappers may repeat their cause's text before it.
        let detail = |marker: &str, keep: bool| {
            let at = text.rfind(marker)?;
            Some(text[if keep { at } else { at + marker.len() }..].trim().to_owned())
        };
        if text.contains("UnknownIssuer") {
            Some(Self::NotTrusted)
        } else if let Some(detail) = detail("certificate not valid for name", true) {
            Some(Self::WrongHost(detail))
        } else if text.contains("NotValidForName") {
            Some(Self::WrongHost("the certificate names another host".into()))
        } else if let Some(detail) = detail("invalid peer certificate:", false) {
            Some(Self::Other(format!("certificate refused: {detail}")))
        } else {
            detail("received fatal alert:", false).map(|alert| Self::Other(format!("the server ended the handshake: {alert}")))
        }
    }

    /// The message for the operator: `url_setting` names the connection setting, `trust` says what
    /// was trusted (and which setting changes it).
    pub fn message(&self, url_setting: &str, trust: &str) -> String {
        match self {
            Self::NotTrusted => format!("{url_setting}: TLS certificate not trusted ({trust})"),
            Self::WrongHost(detail) => format!("{url_setting}: TLS certificate does not match the host name ({detail})"),
            Self::Other(detail) => format!("{url_setting}: TLS handshake failed ({detail}; {trust})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_failures_are_told_apart_by_their_text() {
        let unknown = "Connection refused - IoError: invalid peer certificate: UnknownIssuer";
        assert_eq!(HandshakeFailure::from_text(unknown), Some(HandshakeFailure::NotTrusted));
        let name = "Io: certificate not valid for name \"localhost\"; certificate is only valid for IpAddress(127.0.0.1): invalid peer certificate: certificate not valid for name \"localhost\"; certificate is only valid for IpAddress(127.0.0.1)";
        assert_eq!(
            HandshakeFailure::from_text(name),
            Some(HandshakeFailure::WrongHost("certificate not valid for name \"localhost\"; certificate is only valid for IpAddress(127.0.0.1)".into()))
        );
        assert_eq!(HandshakeFailure::from_text("Connection refused (os error 111)"), None);
        let message = HandshakeFailure::NotTrusted.message("REDIS_PUBLIC_URL", "trusting REDIS_CA_CERT");
        assert_eq!(message, "REDIS_PUBLIC_URL: TLS certificate not trusted (trusting REDIS_CA_CERT)");
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = std::env::temp_dir().join(format!("clc-tls-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let err = CaFile::read("REDIS_CA_CERT", empty.to_str().unwrap()).unwrap_err().to_string();
        assert!(err.starts_with("REDIS_CA_CERT must be the path of a PEM file") && err.contains("holds no CERTIFICATE"), "{err}");
        let missing = CaFile::read("REDIS_CA_CERT", "/nonexistent/ca.pem").unwrap_err().to_string();
        assert!(missing.starts_with("REDIS_CA_CERT") && missing.contains("/nonexistent/ca.pem"), "{missing}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
