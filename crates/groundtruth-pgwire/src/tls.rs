//! TLS on the wire protocol. A client that asks for it (`sslmode=require`,
//! Grafana's default; the password is an API token) gets it when the
//! server has a certificate (`pgwire.tls_cert`, `pgwire.tls_key`); one that
//! does not ask is served as before.

use std::path::Path;
use std::sync::Arc;

use pgwire::tokio::tokio_rustls::rustls;
use pgwire::tokio::TlsAcceptor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// Why the wire protocol's TLS could not be set up. Not retryable: the
/// files need fixing.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the TLS certificate chain {path} (pgwire.tls_cert): {detail}; give the PEM file of the server's certificate and its chain")]
    Cert { path: String, detail: String },
    #[error("cannot read the TLS private key {path} (pgwire.tls_key): {detail}; give the certificate's private key as PEM (PKCS#8, PKCS#1 or SEC1)")]
    Key { path: String, detail: String },
    #[error("the TLS certificate {cert} and key {key} do not make a server: {detail}; check that the key is the certificate's")]
    Config {
        cert: String,
        key: String,
        detail: String,
    },
}

/// The acceptor for `cert` (a PEM chain, the server's first) and `key`.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let cert_err = |detail: String| TlsError::Cert {
        path: cert.display().to_string(),
        detail,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("it holds no certificate".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Key {
        path: key.display().to_string(),
        detail: e.to_string(),
    })?;
    let config_err = |detail: String| TlsError::Config {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        detail,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| config_err(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(chain, private)
    .map_err(|e| config_err(e.to_string()))?;
    // PostgreSQL 17's direct TLS negotiation names its protocol.
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_or_empty_files_say_which_setting_to_fix() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        let err = acceptor(&missing, &missing).err().unwrap().to_string();
        assert!(err.contains("pgwire.tls_cert"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = acceptor(&empty, &missing).err().unwrap().to_string();
        assert!(err.contains("holds no certificate"), "{err}");
    }
}
