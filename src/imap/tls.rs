//! TLS client settings: the system roots (Mozilla's as a fallback) plus the mailbox's
//! `ca_file`, and pins. A certificate in `ca_file` that is exactly the one the server
//! presents is trusted as it is — a self-signed one made the way most guides say
//! (`openssl req -x509`, CA:TRUE, only a CN) included — and `tls_fingerprint` trusts
//! exactly one certificate instead of any CA. A pin skips the name, chain and validity
//! checks; nothing accepts an arbitrary certificate.

use super::certificate::{Fingerprint, Presented};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, CertificateError, ClientConfig, DigitallySignedStruct, Error, RootCertStore,
    SignatureScheme,
};

/// Makes sure one crypto provider is installed (two crates in the tree bring one each).
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// Why the TLS settings could not be made (a config problem).
#[derive(Debug, thiserror::Error)]
pub(crate) enum TlsSetupError {
    #[error("cannot read ca_file {path}: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("ca_file {path}: {problem}")]
    BadCaFile { path: PathBuf, problem: String },
    #[error("cannot build the TLS settings: {0}")]
    Verifier(String),
}

/// What a connection trusts, and what the server showed.
pub(crate) struct Trust {
    pub config: Arc<ClientConfig>,
    /// The certificate the server presented, once the handshake got that far.
    pub presented: Arc<Mutex<Option<CertificateDer<'static>>>>,
    /// The certificates trusted as they are (not through a CA).
    pins: Vec<Fingerprint>,
}

impl Trust {
    pub(crate) fn presented(&self) -> Option<Presented> {
        let der = self.presented.lock().unwrap_or_else(|e| e.into_inner());
        der.as_ref().map(|d| Presented::describe(d.as_ref()))
    }

    /// Whether `presented` was trusted as a pin, not through a CA.
    pub(crate) fn was_pinned(&self, presented: &Presented) -> bool {
        self.pins.contains(&presented.fingerprint)
    }
}

/// Settings trusting the system roots and `ca_file` (whose certificates are also pins),
/// or only `fingerprint` when given (`ca_file` is then not consulted).
pub(crate) fn trust(
    ca_file: Option<&Path>,
    fingerprint: Option<Fingerprint>,
) -> Result<Trust, TlsSetupError> {
    install_crypto_provider();
    let mut roots = RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    let mut pins = Vec::new();
    if let Some(path) = ca_file.filter(|_| fingerprint.is_none()) {
        let bad = |problem: String| TlsSetupError::BadCaFile {
            path: path.to_path_buf(),
            problem,
        };
        let pem = std::fs::read(path).map_err(|source| TlsSetupError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
            let cert = cert.map_err(|e| bad(format!("not a PEM certificate: {e}")))?;
            pins.push(Fingerprint::of(cert.as_ref()));
            // A leaf certificate is no CA: it is still trusted, as a pin.
            let _ = roots.add(cert);
        }
        if pins.is_empty() {
            return Err(bad("no PEM certificate found".into()));
        }
    }
    let pins_only = fingerprint.is_some();
    pins.extend(fingerprint);
    let webpki = WebPkiServerVerifier::builder(Arc::new(roots))
        .build()
        .map_err(|e| TlsSetupError::Verifier(e.to_string()))?;
    let presented = Arc::new(Mutex::new(None));
    let verifier = PinningVerifier {
        webpki,
        pins: pins.clone(),
        pins_only,
        presented: Arc::clone(&presented),
    };
    let config = ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Trust {
        config: Arc::new(config),
        presented,
        pins,
    })
}

#[derive(Debug)]
struct PinningVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    pins: Vec<Fingerprint>,
    /// `tls_fingerprint` is set: CA validation is replaced, not added to.
    pins_only: bool,
    presented: Arc<Mutex<Option<CertificateDer<'static>>>>,
}

/// The pinned fingerprint did not match what the server presented.
#[derive(Debug)]
struct NotThePinnedCertificate;

impl std::fmt::Display for NotThePinnedCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("not the certificate tls_fingerprint pins")
    }
}

impl std::error::Error for NotThePinnedCertificate {}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        *self.presented.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(end_entity.clone().into_owned());
        if self.pins.contains(&Fingerprint::of(end_entity.as_ref())) {
            return Ok(ServerCertVerified::assertion());
        }
        if self.pins_only {
            return Err(Error::InvalidCertificate(CertificateError::Other(
                rustls::OtherError(Arc::new(NotThePinnedCertificate)),
            )));
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}
