//! Reading the PEM files the config names: certificate chains, private
//! keys and CA bundles. Every error names the file.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// A PEM file that could not be used; the message names the file.
#[derive(Debug, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct PemError {
    pub path: std::path::PathBuf,
    pub message: String,
}

fn error(path: &Path, message: impl std::fmt::Display) -> PemError {
    PemError {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Every certificate in the PEM file at `path` (at least one).
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let bytes = std::fs::read(path).map_err(|e| error(path, e))?;
    certificates_from(path, &bytes)
}

pub fn certificates_from(
    path: &Path,
    bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = rustls_pemfile::certs(&mut &bytes[..])
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(path, format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(error(path, "no certificate found"));
    }
    Ok(certs)
}

/// The first private key in the PEM bytes read from `path`.
pub fn private_key_from(path: &Path, bytes: &[u8]) -> Result<PrivateKeyDer<'static>, PemError> {
    rustls_pemfile::private_key(&mut &bytes[..])
        .map_err(|e| error(path, format!("not a PEM key file: {e}")))?
        .ok_or_else(|| error(path, "no private key found"))
}

/// A certificate chain and its key, checked to belong together.
pub fn certified_key(cert_path: &Path, key_path: &Path) -> Result<Arc<CertifiedKey>, PemError> {
    let cert = std::fs::read(cert_path).map_err(|e| error(cert_path, e))?;
    let key = std::fs::read(key_path).map_err(|e| error(key_path, e))?;
    certified_key_from(cert_path, &cert, key_path, &key)
}

pub fn certified_key_from(
    cert_path: &Path,
    cert: &[u8],
    key_path: &Path,
    key: &[u8],
) -> Result<Arc<CertifiedKey>, PemError> {
    let chain = certificates_from(cert_path, cert)?;
    let key = private_key_from(key_path, key)?;
    let provider = rustls::crypto::ring::default_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => error(
            key_path,
            format!(
                "key does not match the certificate in {}",
                cert_path.display()
            ),
        ),
        e => error(key_path, format!("unusable private key: {e}")),
    })?;
    Ok(Arc::new(certified))
}

/// A root store of the CA certificates in the PEM file at `path`.
pub fn root_store(path: &Path) -> Result<rustls::RootCertStore, PemError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(path)? {
        roots
            .add(cert)
            .map_err(|e| error(path, format!("unusable CA certificate: {e}")))?;
    }
    Ok(roots)
}
