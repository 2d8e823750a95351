//! The certificates of an `https` listener: loaded from PEM files, chosen
//! by SNI (exact name, then wildcard, then the first as default) and
//! reloaded when their files change, keeping the old ones when the new
//! ones do not load.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::Shutdown;
use crate::config::{name_matches, pem, CertificateConfig};

/// One certificate as loaded, with the file contents it came from (to
/// notice changes).
struct Loaded {
    names: Vec<String>,
    key: Arc<CertifiedKey>,
    files: (Vec<u8>, Vec<u8>),
}

/// The certificates of one listener, swapped whole on reload.
#[derive(Debug)]
pub struct CertStore {
    certs: ArcSwap<Vec<Arc<Loaded>>>,
}

// rustls wants resolvers to be `Debug`; the key material stays out of it.
impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificate")
            .field("names", &self.names)
            .finish()
    }
}

impl CertStore {
    /// Loads every certificate; any failure is an error naming the file.
    pub fn load(configs: &[CertificateConfig]) -> anyhow::Result<CertStore> {
        let certs = configs
            .iter()
            .map(|c| load_one(c, None).map(Arc::new))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(CertStore {
            certs: ArcSwap::from_pointee(certs),
        })
    }

    fn choose(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let certs = self.certs.load();
        if let Some(name) = server_name.map(str::to_ascii_lowercase) {
            let exact = certs.iter().find(|c| {
                c.names
                    .iter()
                    .any(|p| !p.starts_with("*.") && name_matches(p, &name))
            });
            let wild = || {
                certs.iter().find(|c| {
                    c.names
                        .iter()
                        .any(|p| p.starts_with("*.") && name_matches(p, &name))
                })
            };
            if let Some(c) = exact.or_else(wild) {
                return Some(c.key.clone());
            }
        }
        certs.first().map(|c| c.key.clone())
    }

    /// Re-reads the files of `configs`; a changed pair that loads replaces
    /// the old one, a changed pair that fails is logged and skipped.
    /// `failed` remembers bad contents so each is reported once.
    fn reload(&self, configs: &[CertificateConfig], failed: &mut [Option<(Vec<u8>, Vec<u8>)>]) {
        let current = self.certs.load_full();
        let mut next: Vec<Arc<Loaded>> = current.iter().cloned().collect();
        let mut reloaded = Vec::new();
        for (i, config) in configs.iter().enumerate() {
            let (Ok(cert), Ok(key)) = (std::fs::read(&config.cert), std::fs::read(&config.key))
            else {
                continue; // mid-rotation or removed: keep serving the old one
            };
            let files = (cert, key);
            if files == current[i].files || failed[i].as_ref() == Some(&files) {
                continue;
            }
            match load_one(config, Some(files.clone())) {
                Ok(loaded) => {
                    reloaded.push((config.cert.display().to_string(), loaded.names.clone()));
                    next[i] = Arc::new(loaded);
                    failed[i] = None;
                }
                Err(e) => {
                    tracing::warn!(cert = %config.cert.display(), error = %e, "certificate reload failed; keeping the previous one");
                    failed[i] = Some(files);
                }
            }
        }
        if !reloaded.is_empty() {
            self.certs.store(Arc::new(next));
        }
        // Logged once in force, so whoever waits for the line gets the new one.
        for (cert, names) in reloaded {
            tracing::info!(cert, ?names, "certificate reloaded");
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(hello.server_name())
    }
}

fn load_one(
    config: &CertificateConfig,
    files: Option<(Vec<u8>, Vec<u8>)>,
) -> anyhow::Result<Loaded> {
    let files = match files {
        Some(f) => f,
        None => (read(&config.cert)?, read(&config.key)?),
    };
    let key = pem::certified_key_from(&config.cert, &files.0, &config.key, &files.1)?;
    let names = if config.names.is_empty() {
        dns_names(key.cert.first().map(|c| c.as_ref()).unwrap_or_default())
    } else {
        config
            .names
            .iter()
            .map(|n| n.to_ascii_lowercase())
            .collect()
    };
    Ok(Loaded { names, key, files })
}

fn read(path: &PathBuf) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The DNS names in a certificate's subject alternative names.
fn dns_names(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(name) => Some(name.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// The subject of a certificate, RFC 4514 style (`CN=client,O=Example`).
pub(super) fn subject(der: &[u8]) -> Option<String> {
    x509_parser::parse_x509_certificate(der)
        .ok()
        .map(|(_, c)| c.subject().to_string())
}

/// Checks the certificate files every `interval` and reloads what changed.
pub async fn watch_certificates(
    store: Arc<CertStore>,
    configs: Vec<CertificateConfig>,
    interval: Duration,
    mut shutdown: Shutdown,
) {
    let mut failed = vec![None; configs.len()];
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.started() => return,
        }
        // File reads are small but blocking: keep them off the workers.
        let (s, c, f) = (store.clone(), configs.clone(), std::mem::take(&mut failed));
        failed = match tokio::task::spawn_blocking(move || {
            let mut f = f;
            s.reload(&c, &mut f);
            f
        })
        .await
        {
            Ok(f) => f,
            Err(_) => vec![None; configs.len()],
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_and_dns_names_are_read_from_the_certificate() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params =
            rcgen::CertificateParams::new(vec!["a.example".to_string(), "*.b.example".to_string()])
                .expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "alice");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example");
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(dns_names(cert.der()), ["a.example", "*.b.example"]);
        let subject = subject(cert.der()).expect("subject");
        assert!(
            subject.contains("CN=alice") && subject.contains("O=Example"),
            "{subject}"
        );
    }
}
