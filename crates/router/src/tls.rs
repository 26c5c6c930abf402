//! TLS termination: a listener's certificates, chosen by SNI, reloaded from disk; and
//! the client side for `https://` instances ([`client_config`]).
//!
//! A route's `tls` names certificate/key pairs (PEM files on the router's host). The
//! routes sharing a listener share its certificates: the client's SNI picks the first
//! whose names cover it, the first one otherwise (no SNI, or no match). TLS 1.2 and
//! 1.3 only (rustls has nothing older); ALPN offers `h2` and `http/1.1`.
//!
//! Every pair is loaded and checked when the snapshot naming it is applied (the key
//! matches the certificate's public key), never at the first handshake: a snapshot
//! with a bad pair is refused whole. Once a second the files are looked at (size,
//! modification time, inode); a pair replaced on disk is loaded and serves the next
//! handshakes, while connections already open keep the session they have. A
//! replacement that does not load (a certificate written before its key) keeps the
//! previous pair in service and is tried again at the next change.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::snapshot::CertificateConfig;

/// A certificate/key pair that cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate in it")]
    NoCertificate { path: PathBuf },
    #[error("{path}: no PEM private key in it (PKCS#8, PKCS#1 or SEC1)")]
    NoKey { path: PathBuf },
    #[error("{path}: {why}")]
    BadPem { path: PathBuf, why: String },
    #[error("{key}: not a key rustls can sign with: {why}")]
    UnusableKey { key: PathBuf, why: String },
    #[error("{key} is not the key of the certificate in {cert}")]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS settings: {0}")]
    Config(String),
}

/// Load and check one pair: the certificate chain (leaf first) and its private key.
pub fn load_pair(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_path_buf(),
            source,
        })
    };
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadPem {
            path: cert.to_path_buf(),
            why: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: key.to_path_buf(),
        },
        e => TlsError::BadPem {
            path: key.to_path_buf(),
            why: e.to_string(),
        },
    })?;
    let signer = provider()
        .key_provider
        .load_private_key(private)
        .map_err(|e| TlsError::UnusableKey {
            key: key.to_path_buf(),
            why: e.to_string(),
        })?;
    let pair = CertifiedKey::new(chain, signer);
    pair.keys_match().map_err(|_| TlsError::Mismatch {
        cert: cert.to_path_buf(),
        key: key.to_path_buf(),
    })?;
    Ok(pair)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The client side for `https://` instances: their certificates are verified against
/// the PEM roots in `ca`, or the system's when there is none. TLS 1.2 and 1.3; ALPN
/// offers `http/1.1` only (gRPC's `h2up` offers `h2` alone, on a copy). Read when a
/// snapshot naming it is applied: a CA file that cannot be read or holds no
/// certificate refuses it.
pub fn client_config(ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(path) => {
            let pem = std::fs::read(path).map_err(|source| TlsError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let bad = |why: String| TlsError::BadPem {
                path: path.to_path_buf(),
                why,
            };
            let certs = CertificateDer::pem_slice_iter(&pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(TlsError::NoCertificate {
                    path: path.to_path_buf(),
                });
            }
            for cert in certs {
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _unparsable) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(TlsError::Config(
                    "no system root certificates found; give the route's upstreams a `ca`".into(),
                ));
            }
        }
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What a listener terminates TLS with.
pub(crate) struct Terminator {
    pub(crate) config: Arc<rustls::ServerConfig>,
    certs: Arc<Certificates>,
    /// The pairs as the snapshot names them: the same list keeps this terminator.
    pub(crate) sources: Vec<CertificateConfig>,
}

impl Terminator {
    pub(crate) fn load(sources: &[CertificateConfig]) -> Result<Terminator, TlsError> {
        if sources.is_empty() {
            return Err(TlsError::Config("no certificate given".into()));
        }
        let mut loaded = Vec::with_capacity(sources.len());
        for s in sources {
            let stamps = (stamp(Path::new(&s.cert)), stamp(Path::new(&s.key)));
            let pair = load_pair(Path::new(&s.cert), Path::new(&s.key))?;
            loaded.push(Loaded {
                pair: Arc::new(pair),
                stamps,
            });
        }
        let certs = Arc::new(Certificates {
            loaded: ArcSwap::from_pointee(loaded),
            failed: Mutex::new(Vec::new()),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(certs.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Terminator {
            config: Arc::new(config),
            certs,
            sources: sources.to_vec(),
        })
    }

    /// Load the pairs whose files changed since they were loaded; returns how many
    /// were replaced. One that fails to load keeps its predecessor in service.
    pub(crate) fn reload(&self) -> usize {
        let current = self.certs.loaded.load();
        let mut next: Vec<Loaded> = current.iter().cloned().collect();
        let mut replaced = 0;
        let mut failed = self.certs.failed.lock().unwrap_or_else(|p| p.into_inner());
        for (i, s) in self.sources.iter().enumerate() {
            let stamps = (stamp(Path::new(&s.cert)), stamp(Path::new(&s.key)));
            if stamps == next[i].stamps || failed.contains(&(i, stamps)) {
                continue;
            }
            match load_pair(Path::new(&s.cert), Path::new(&s.key)) {
                Ok(pair) => {
                    tracing::info!(cert = %s.cert, "certificate reloaded");
                    next[i] = Loaded {
                        pair: Arc::new(pair),
                        stamps,
                    };
                    replaced += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "a replaced certificate does not load; the previous one still serves");
                    failed.push((i, stamps));
                }
            }
        }
        if replaced > 0 {
            failed.clear();
            self.certs.loaded.store(Arc::new(next));
        }
        replaced
    }
}

/// A file's identity and version, as far as `stat` tells.
type Stamp = Option<(u64, Option<SystemTime>, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&m);
    #[cfg(not(unix))]
    let inode = 0;
    Some((m.len(), m.modified().ok(), inode))
}

#[derive(Clone)]
struct Loaded {
    pair: Arc<CertifiedKey>,
    stamps: (Stamp, Stamp),
}

/// The pairs in service, in the snapshot's order.
struct Certificates {
    loaded: ArcSwap<Vec<Loaded>>,
    /// Replacements that did not load (by pair, with their files' stamps).
    failed: Mutex<Vec<(usize, (Stamp, Stamp))>>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("pairs", &self.loaded.load().len())
            .finish()
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let loaded = self.loaded.load();
        let first = loaded.first().map(|l| l.pair.clone());
        let Some(name) = hello
            .server_name()
            .and_then(|n| ServerName::try_from(n).ok())
        else {
            return first;
        };
        loaded
            .iter()
            .find(|l| covers(&l.pair, &name))
            .map(|l| l.pair.clone())
            .or(first)
    }
}

/// Is the pair's certificate valid for `name` (its subject alternative names,
/// wildcards included)?
fn covers(pair: &CertifiedKey, name: &ServerName<'_>) -> bool {
    let Some(leaf) = pair.cert.first() else {
        return false;
    };
    webpki::EndEntityCert::try_from(leaf)
        .and_then(|cert| cert.verify_is_valid_for_subject_name(name))
        .is_ok()
}
