//! `DATABASE_URL` read into what to connect to and how: libpq's `sslmode` and `sslrootcert`
//! parameters are taken out of the URL (tokio-postgres knows neither `verify-full` nor
//! `sslrootcert`) and become a rustls connector.

use crate::tls::{self, CaFile, HandshakeFailure};
use contact_list_cache_core::settings::SettingError;
use tokio_postgres::config::SslMode as WireMode;
use tokio_postgres_rustls::MakeRustlsConnect;

const SETTING: &str = "DATABASE_URL";

/// libpq's `sslmode` values this service supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, the certificate unchecked (libpq's default).
    Prefer,
    /// TLS or no connection, the certificate unchecked.
    Require,
    /// TLS, the chain checked against `sslrootcert` (or the built-in roots) and the host name
    /// against the certificate.
    VerifyFull,
}

impl SslMode {
    fn parse(raw: &str) -> Result<Self, SettingError> {
        match raw {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-full" => Ok(Self::VerifyFull),
            _ => Err(SettingError::Invalid {
                name: SETTING,
                expected: "a URL whose sslmode is disable, prefer, require or verify-full".into(),
                got: format!("sslmode={raw}"),
            }),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// A parsed `DATABASE_URL`.
#[derive(Clone)]
pub struct DbTarget {
    /// The connection settings, TLS parameters removed and `ssl_mode` set.
    pub config: tokio_postgres::Config,
    pub mode: SslMode,
    /// `sslrootcert`, read: the only CA trusted under `verify-full` when given.
    pub ca: Option<CaFile>,
}

impl DbTarget {
    /// Reads a `postgres://` URL or a `key=value` connection string. `sslmode` defaults to
    /// `prefer`, or to `verify-full` when `sslrootcert` is given (`sslrootcert=system`: the built-in
    /// roots); `sslrootcert` with any other mode is refused rather than silently not checked.
    pub fn parse(url: &str) -> Result<Self, SettingError> {
        refuse_transaction_pooler(url)?;
        let (rest, params) = take_tls_params(url);
        let ca = match params.root_cert.as_deref() {
            None | Some("system") => None,
            Some(path) => Some(CaFile::read("DATABASE_URL sslrootcert", path)?),
        };
        let mode = match (params.mode.as_deref().map(SslMode::parse).transpose()?, params.root_cert.is_some()) {
            (None, false) => SslMode::Prefer,
            (None, true) | (Some(SslMode::VerifyFull), _) => SslMode::VerifyFull,
            (Some(mode), false) => mode,
            (Some(mode), true) => {
                return Err(SettingError::Invalid {
                    name: SETTING,
                    expected: "sslmode=verify-full with sslrootcert (other modes never check the certificate)".into(),
                    got: format!("sslmode={}", mode.as_str()),
                })
            }
        };
        let mut config: tokio_postgres::Config = rest.parse().map_err(|err| SettingError::Invalid {
            name: SETTING,
            expected: "a PostgreSQL URL (postgres://user:password@host:port/database)".into(),
            got: format!("{err}"),
        })?;
        if config.get_ports().contains(&TRANSACTION_POOLER_PORT) {
            return Err(transaction_pooler(format!("port {TRANSACTION_POOLER_PORT}")));
        }
        config.ssl_mode(match mode {
            SslMode::Disable => WireMode::Disable,
            SslMode::Prefer => WireMode::Prefer,
            SslMode::Require | SslMode::VerifyFull => WireMode::Require,
        });
        Ok(Self { config, mode, ca })
    }

    /// The connector for this mode (never used under `disable`).
    pub fn connector(&self) -> MakeRustlsConnect {
        MakeRustlsConnect::new(match self.mode {
            SslMode::VerifyFull => tls::verifying(self.ca.as_ref()),
            SslMode::Disable | SslMode::Prefer | SslMode::Require => tls::encrypting_only(),
        })
    }

    /// The message naming `DATABASE_URL` for a connection that failed with `err`, when it failed
    /// over TLS.
    pub fn explain(&self, err: &(dyn std::error::Error + 'static)) -> Option<String> {
        let trust = match (self.mode, &self.ca) {
            (SslMode::VerifyFull, Some(ca)) => format!("sslmode=verify-full trusts only sslrootcert={}", ca.path.display()),
            (SslMode::VerifyFull, None) => "sslmode=verify-full trusts the built-in Mozilla roots; set sslrootcert to the server's CA file".into(),
            (mode, _) => format!("sslmode={}", mode.as_str()),
        };
        if let Some(failure) = HandshakeFailure::find(err) {
            return Some(failure.message(SETTING, &trust));
        }
        let text = err.to_string();
        let cause = err.source().map(|cause| cause.to_string()).unwrap_or_default();
        (text.contains("server does not support TLS") || cause.contains("server does not support TLS"))
            .then(|| format!("{SETTING}: the server does not offer TLS ({trust}; use sslmode=disable or prefer for a server without TLS)"))
    }
}

/// Supavisor's (and Supabase's former PgBouncer's) transaction-mode port.
pub const TRANSACTION_POOLER_PORT: u16 = 6543;

/// A transaction-mode pooler hands each transaction to any server connection: the change
/// capture's session advisory lock and the session settings would not hold, so such a URL is refused
/// at start. What can be told from the URL: the transaction pooler's port (6543) or a
/// `pgbouncer=true` parameter (Prisma's and others' way of saying so).
fn refuse_transaction_pooler(url: &str) -> Result<(), SettingError> {
    let words: Vec<&str> = match url.split_once('?') {
        Some((_, query)) if url.starts_with("postgres://") || url.starts_with("postgresql://") => query.split('&').collect(),
        Some(_) => Vec::new(),
        None if url.starts_with("postgres://") || url.starts_with("postgresql://") => Vec::new(),
        None => url.split_whitespace().collect(),
    };
    for word in words {
        if let Some((key, value)) = word.split_once('=') {
            if key.eq_ignore_ascii_case("pgbouncer") && !matches!(value.trim_matches('\'').to_ascii_lowercase().as_str(), "false" | "0" | "") {
                return Err(transaction_pooler(format!("pgbouncer={value}")));
            }
        }
    }
    Ok(())
}

fn transaction_pooler(what: String) -> SettingError {
    SettingError::Invalid {
        name: SETTING,
        expected: "a direct connection or Supavisor's session mode (port 5432): a transaction-mode pooler loses \
                   session locks and session settings"
            .into(),
        got: format!("{what}, a transaction-mode pooler"),
    }
}

/// The TLS parameters found in a connection string.
#[derive(Debug, Default, PartialEq)]
struct TlsParams {
    mode: Option<String>,
    root_cert: Option<String>,
}

/// `url` without its `sslmode` and `sslrootcert`, and their values (percent-decoded in a URL).
fn take_tls_params(url: &str) -> (String, TlsParams) {
    let mut params = TlsParams::default();
    let mut take = |key: &str, value: String| match key {
        "sslmode" => params.mode = Some(value),
        "sslrootcert" => params.root_cert = Some(value),
        _ => unreachable!("only TLS keys are taken"),
    };
    let is_tls_key = |key: &str| key == "sslmode" || key == "sslrootcert";
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else { return (url.to_owned(), params) };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some((key, value)) if is_tls_key(key) => take(key, percent_decode(value)),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
        (rest, params)
    } else {
        let mut kept = Vec::new();
        for word in url.split_whitespace() {
            match word.split_once('=') {
                Some((key, value)) if is_tls_key(key) => take(key, value.trim_matches('\'').to_owned()),
                _ => kept.push(word),
            }
        }
        (kept.join(" "), params)
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match (bytes[i], hex(i + 1), hex(i + 2)) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_a_url() {
        let (rest, params) = take_tls_params("postgres://u:p@db.example.com:5432/postgres?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem");
        assert_eq!(rest, "postgres://u:p@db.example.com:5432/postgres?application_name=x");
        assert_eq!(params, TlsParams { mode: Some("verify-full".into()), root_cert: Some("/etc/ca.pem".into()) });
        let (rest, params) = take_tls_params("host=localhost sslmode=require dbname=app");
        assert_eq!(rest, "host=localhost dbname=app");
        assert_eq!(params, TlsParams { mode: Some("require".into()), root_cert: None });
        assert_eq!(take_tls_params("postgres://h/db").0, "postgres://h/db");
    }

    #[test]
    fn the_mode_defaults_like_libpq_and_verify_full_needs_no_ca_file() {
        let mode = |url: &str| DbTarget::parse(url).map(|target| target.mode);
        assert_eq!(mode("postgres://u@h/db"), Ok(SslMode::Prefer));
        assert_eq!(mode("postgres://u@h/db?sslmode=disable"), Ok(SslMode::Disable));
        assert_eq!(mode("postgres://u@h/db?sslmode=require"), Ok(SslMode::Require));
        assert_eq!(mode("postgres://u@h/db?sslmode=verify-full"), Ok(SslMode::VerifyFull));
        assert_eq!(mode("postgres://u@h/db?sslrootcert=system"), Ok(SslMode::VerifyFull));
        let wire = DbTarget::parse("postgres://u@h/db?sslmode=verify-full").unwrap().config.get_ssl_mode();
        assert_eq!(wire, WireMode::Require);
    }

    #[test]
    fn a_transaction_pooler_is_refused_naming_database_url_and_what_gave_it_away() {
        for (url, named) in [
            ("postgres://postgres.ref:hunter2@aws-0-eu-central-1.pooler.supabase.com:6543/postgres", "port 6543"),
            ("postgres://u:hunter2@h:5432/db?pgbouncer=true", "pgbouncer=true"),
            ("host=h port=6543 user=u password=hunter2 dbname=db", "port 6543"),
        ] {
            let err = DbTarget::parse(url).err().expect(url).to_string();
            assert!(err.starts_with("DATABASE_URL") && err.contains(named) && err.contains("transaction-mode pooler"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
        assert!(DbTarget::parse("postgres://postgres.ref:p@aws-0-eu-central-1.pooler.supabase.com:5432/postgres").is_ok(), "session mode is fine");
        assert!(DbTarget::parse("postgres://u@h/db?pgbouncer=false").is_err(), "tokio-postgres knows no pgbouncer parameter");
    }

    #[test]
    fn bad_tls_parameters_name_database_url() {
        for url in [
            "postgres://u:hunter2@h/db?sslmode=verify-ca",
            "postgres://u:hunter2@h/db?sslmode=bogus",
            "postgres://u:hunter2@h/db?sslrootcert=/nonexistent/ca.pem",
            "postgres://u:hunter2@h/db?sslmode=require&sslrootcert=system",
        ] {
            let err = DbTarget::parse(url).err().expect(url).to_string();
            assert!(err.starts_with("DATABASE_URL"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
