//! Why a TLS handshake failed, in the words an admin acts on. The cause comes from
//! rustls's typed error (tokio-rustls wraps it in an I/O error) and the certificate the
//! server presented, never from the library's Debug text (`Other(OtherError(
//! CaUsedAsEndEntity))` tells an admin nothing); a certificate failure ends with what
//! the server presented and the config line that trusts exactly that certificate.

use super::certificate::{Fingerprint, Presented};
use std::path::Path;
use tokio_rustls::rustls::{self, CertificateError};

/// What the mailbox told the connection to trust.
pub(super) struct Trusted<'a> {
    pub host: &'a str,
    pub port: u16,
    pub ca_file: Option<&'a Path>,
    pub pin: Option<Fingerprint>,
    /// After STARTTLS the port is right: plain text then is the server's (or a
    /// middlebox's) doing, not a wrong mode.
    pub starttls: bool,
}

/// The reason to print for a failed handshake; `presented` is the server's certificate
/// when the handshake got that far.
pub(super) fn explain(
    err: &std::io::Error,
    presented: Option<&Presented>,
    trusted: &Trusted<'_>,
) -> String {
    let rustls_error = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match (rustls_error, presented) {
        (Some(rustls::Error::InvalidCertificate(e)), Some(p)) => {
            let (why, remedy) = certificate(e, p, trusted);
            let or = if remedy.is_empty() { "To" } else { "Or, to" };
            format!(
                "{why}. The server presented: {p}. {remedy}{or} trust exactly this certificate, set in this [[mailbox]]: tls_fingerprint = \"{}\"{}",
                p.fingerprint,
                // With a pin set, ca_file is not consulted: only the pin line helps.
                if p.is_self_signed() && trusted.pin.is_none() {
                    " (or ca_file = a PEM file holding this certificate)"
                } else {
                    ""
                }
            )
        }
        (Some(rustls::Error::InvalidMessage(_)), _) if trusted.starttls => format!(
            "the server accepted STARTTLS on port {} but did not then speak TLS (a broken server, or something in between that strips STARTTLS): check the server's TLS setup, or use its implicit-TLS port (usually 993) with tls = \"tls\"",
            trusted.port
        ),
        (Some(rustls::Error::InvalidMessage(_)), _) => format!(
            "the server did not answer in TLS: port {} speaks plain IMAP (a STARTTLS port, usually 143): set tls = \"starttls\", or use the implicit-TLS port (usually 993)",
            trusted.port
        ),
        _ => err.to_string(),
    }
}

/// What is wrong with the certificate, and what to change other than pinning it.
fn certificate(e: &CertificateError, p: &Presented, t: &Trusted<'_>) -> (String, String) {
    if let Some(pin) = t.pin {
        return (
            format!("the server's certificate is not the one tls_fingerprint pins ({pin})"),
            String::new(),
        );
    }
    let ca_file = t.ca_file.map(|f| f.display().to_string());
    match e {
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            let names = if p.names.is_empty() {
                format!(
                    "no host name in subjectAltName (only its subject {})",
                    p.subject
                )
            } else {
                p.names.join(", ")
            };
            let remedy = match p.names.first() {
                Some(name) => format!(
                    "Set host = \"{name}\" (or another of its names, with DNS or /etc/hosts pointing it at this server). "
                ),
                None => "A certificate needs subjectAltName to name a host; have one made with it, or pin this one. ".into(),
            };
            (
                format!(
                    "the certificate is not valid for {}: it is for {names}",
                    t.host
                ),
                remedy,
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => (
            format!("the certificate expired on {}", p.not_after),
            "Renew it on the server; meanwhile a pin keeps trusting it. ".into(),
        ),
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => (
            format!("the certificate is not valid before {}", p.not_before),
            "Check this host's clock. ".into(),
        ),
        CertificateError::BadSignature | CertificateError::BadEncoding => {
            (format!("the certificate is damaged ({e})"), String::new())
        }
        _ if p.is_self_signed() => match ca_file {
            Some(f) => (
                format!("the certificate is self-signed and not the one in ca_file ({f})"),
                "If the server's certificate was renewed, put the new one in ca_file. ".into(),
            ),
            None => (
                "the certificate is self-signed, so no CA vouches for it".into(),
                String::new(),
            ),
        },
        _ => (
            format!(
                "the certificate is signed by {}, which is not a CA this host trusts{}",
                p.issuer,
                match &ca_file {
                    Some(f) => format!(" nor in ca_file ({f})"),
                    None => String::new(),
                }
            ),
            "For a private CA set ca_file to its PEM certificate. ".into(),
        ),
    }
}
