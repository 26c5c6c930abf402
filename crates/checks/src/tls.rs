//! The `tls` item: certificate days left, hostname, chain.
//!
//! The handshake accepts any certificate, so that an untrusted, mismatched or expired one
//! can still be reported with its days left; the verdict of the normal verification is
//! recorded during the handshake and judged afterwards.

use std::sync::{Arc, Mutex, OnceLock};

use liftoff_plan::checks::TlsCheck;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::items::{outside, target, tidy_error};
use crate::{Env, ItemResult};

const SECONDS_PER_DAY: i64 = 86_400;

pub(crate) async fn run_tls(check: &TlsCheck, env: &Env) -> ItemResult {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match roots(check, env).await {
        Ok(roots) => roots,
        Err(why) => return ItemResult::fail(why),
    };
    let Ok(name) = ServerName::try_from(check.server_name.clone()) else {
        return ItemResult::fail(format!(
            "server_name `{}` is neither a DNS name nor an IP address",
            check.server_name
        ));
    };
    let verifier = Arc::new(RecordingVerifier::new(roots, provider.clone()));
    let config =
        match ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions() {
            Ok(builder) => builder
                .dangerous()
                .with_custom_certificate_verifier(verifier.clone())
                .with_no_client_auth(),
            Err(e) => return ItemResult::fail(format!("cannot set up TLS: {e}")),
        };
    let tcp = match tokio::net::TcpStream::connect(check.address.expose()).await {
        Ok(tcp) => tcp,
        Err(e) => {
            return ItemResult::fail(format!(
                "cannot connect to {}: {}",
                target(&check.address),
                outside(env, &tidy_error(&e.to_string()), &check.address)
            ));
        }
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    if let Err(e) = connector.connect(name.clone(), tcp).await {
        return ItemResult::fail(format!(
            "TLS handshake with {} failed: {}",
            target(&check.address),
            outside(env, &e.to_string(), &check.address)
        ));
    }
    let Some(seen) = verifier.take() else {
        return ItemResult::fail(format!("{} showed no certificate", target(&check.address)));
    };
    judge(check, &name, &seen, jiff::Timestamp::now().as_second())
}

/// The system's roots (loaded once; unreadable ones skipped) and the item's `ca_file`.
async fn roots(check: &TlsCheck, env: &Env) -> Result<RootCertStore, String> {
    static SYSTEM: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    let system = SYSTEM.get_or_init(|| rustls_native_certs::load_native_certs().certs);
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(system.iter().cloned());
    let Some(ca_file) = &check.ca_file else {
        return Ok(roots);
    };
    let pem = tokio::fs::read(env.workdir.join(ca_file.expose()))
        .await
        .map_err(|e| {
            format!(
                "cannot read ca_file {ca_file}: {}",
                tidy_error(&e.to_string())
            )
        })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("ca_file {ca_file} is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("ca_file {ca_file} holds no certificate"));
    }
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("ca_file {ca_file} holds a certificate rustls cannot use: {e}"))?;
    }
    Ok(roots)
}

/// What the handshake showed: the server's certificate and what normal verification
/// said of it.
#[derive(Debug)]
struct Seen {
    leaf: CertificateDer<'static>,
    verdict: Result<(), rustls::Error>,
}

/// Records the verdict of [`WebPkiServerVerifier`] and the server's certificate, then
/// accepts it. Handshake signatures are still verified: the peer must hold the key.
#[derive(Debug)]
struct RecordingVerifier {
    /// None: no roots at all (no system roots, no `ca_file`), nothing can be trusted.
    delegate: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    seen: Mutex<Option<Seen>>,
}

impl RecordingVerifier {
    fn new(roots: RootCertStore, provider: Arc<CryptoProvider>) -> Self {
        let delegate =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .ok();
        Self {
            delegate,
            provider,
            seen: Mutex::new(None),
        }
    }

    fn take(&self) -> Option<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = match &self.delegate {
            Some(delegate) => delegate
                .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
                .map(|_| ()),
            None => Err(CertificateError::UnknownIssuer.into()),
        };
        let seen = Seen {
            leaf: end_entity.clone().into_owned(),
            verdict,
        };
        *self.seen.lock().unwrap_or_else(|e| e.into_inner()) = Some(seen);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match &self.delegate {
            Some(delegate) => delegate.verify_tls12_signature(message, cert, dss),
            None => rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            ),
        }
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        match &self.delegate {
            Some(delegate) => delegate.verify_tls13_signature(message, cert, dss),
            None => rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.provider.signature_verification_algorithms,
            ),
        }
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Pass iff the chain is trusted, the certificate names `check.server_name`, and it has
/// at least `min_days` left. `now` in Unix seconds.
fn judge(check: &TlsCheck, name: &ServerName<'_>, seen: &Seen, now: i64) -> ItemResult {
    let (not_after, names) = match x509_parser::parse_x509_certificate(&seen.leaf) {
        Ok((_, cert)) => (cert.validity().not_after.timestamp(), names_in(&cert)),
        Err(e) => return ItemResult::fail(format!("the server's certificate does not parse: {e}")),
    };
    let days_left = (not_after - now).div_euclid(SECONDS_PER_DAY);
    let date = jiff::Timestamp::from_second(not_after)
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date().to_string())
        .unwrap_or_else(|_| format!("{not_after} in Unix time"));
    let lifetime = if days_left >= 0 {
        format!("expires in {} ({date})", days(days_left))
    } else {
        format!("expired {} ago ({date})", days(-days_left))
    };

    let mut problems = Vec::new();
    match &seen.verdict {
        Ok(()) => {}
        // The name and the days left are judged below, on their own.
        Err(rustls::Error::InvalidCertificate(e)) if is_about_name_or_expiry(e) => {}
        Err(rustls::Error::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        )) => problems.push("certificate not valid yet".to_string()),
        Err(rustls::Error::InvalidCertificate(e)) => {
            problems.push(format!("certificate chain not trusted: {e}"));
        }
        Err(e) => problems.push(format!("certificate chain not trusted: {e}")),
    }
    let named = rustls::server::ParsedCertificate::try_from(&seen.leaf)
        .and_then(|parsed| rustls::client::verify_server_name(&parsed, name));
    if let Err(e) = named {
        let why = match &e {
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => match names.as_slice() {
                [] => "it names no host".to_string(),
                names => format!("it is for {}", names.join(", ")),
            },
            e => e.to_string(),
        };
        problems.push(format!(
            "certificate not valid for {}: {why}",
            check.server_name
        ));
    }
    let short = days_left < i64::from(check.min_days);
    if days_left < 0 {
        problems.push(format!("certificate {lifetime}"));
    } else if short {
        problems.push(format!(
            "certificate {lifetime}, fewer than min_days {}",
            check.min_days
        ));
    }

    if problems.is_empty() {
        return ItemResult::pass(format!("certificate for {} {lifetime}", check.server_name));
    }
    if !short {
        problems.push(lifetime);
    }
    ItemResult::fail(problems.join("; "))
}

fn is_about_name_or_expiry(e: &CertificateError) -> bool {
    matches!(
        e,
        CertificateError::NotValidForName
            | CertificateError::NotValidForNameContext { .. }
            | CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
    )
}

/// The DNS names and IP addresses a certificate is for (its subjectAltName).
fn names_in(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => Some(dns.to_string()),
            GeneralName::IPAddress(ip) => match *ip {
                [a, b, c, d] => Some(std::net::Ipv4Addr::new(*a, *b, *c, *d).to_string()),
                _ => <[u8; 16]>::try_from(*ip)
                    .ok()
                    .map(|v6| std::net::Ipv6Addr::from(v6).to_string()),
            },
            _ => None,
        })
        .collect()
}

fn days(n: i64) -> String {
    if n == 1 {
        "1 day".to_string()
    } else {
        format!("{n} days")
    }
}
