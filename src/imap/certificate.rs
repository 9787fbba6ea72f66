//! What a server presented as its certificate, in the words an admin needs to decide
//! whether to trust it: subject, issuer, validity, names, and the SHA-256 fingerprint
//! in the form `tls_fingerprint` takes (as `openssl x509 -fingerprint -sha256` prints it).

pub(super) use crate::config::Fingerprint;
use std::fmt;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// A presented certificate, described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Presented {
    pub subject: String,
    pub issuer: String,
    pub not_before: String,
    pub not_after: String,
    /// Unix seconds of `not_after`, to tell an expired one.
    pub expires: i64,
    pub names: Vec<String>,
    pub fingerprint: Fingerprint,
}

impl Presented {
    /// Describes a DER certificate; what cannot be parsed is said so, the fingerprint
    /// always comes from the bytes themselves.
    pub(crate) fn describe(der: &[u8]) -> Presented {
        let fingerprint = Fingerprint::of(der);
        match X509Certificate::from_der(der) {
            Ok((_, cert)) => {
                let validity = cert.validity();
                let names = match cert.subject_alternative_name() {
                    Ok(Some(san)) => san
                        .value
                        .general_names
                        .iter()
                        .map(|n| match n {
                            GeneralName::DNSName(d) => d.to_string(),
                            GeneralName::IPAddress(ip) => ip_text(ip),
                            other => format!("{other:?}"),
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                Presented {
                    subject: cert.subject().to_string(),
                    issuer: cert.issuer().to_string(),
                    not_before: validity.not_before.to_string(),
                    not_after: validity.not_after.to_string(),
                    expires: validity.not_after.timestamp(),
                    names,
                    fingerprint,
                }
            }
            Err(e) => Presented {
                subject: format!("(unreadable certificate: {e})"),
                issuer: String::new(),
                not_before: String::new(),
                not_after: String::new(),
                expires: i64::MAX,
                names: Vec::new(),
                fingerprint,
            },
        }
    }

    /// Its own issuer: what `openssl req -x509` makes (no CA vouches for it).
    pub(crate) fn is_self_signed(&self) -> bool {
        !self.subject.is_empty() && self.subject == self.issuer
    }

    /// The warning for a pinned certificate past its end: a pin skips validity, so it
    /// still works, but the admin should know before someone "fixes" the pin.
    pub(crate) fn expired_pin_warning(&self) -> Option<String> {
        self.is_expired().then(|| {
            format!(
                "the pinned certificate expired on {}; it is still trusted because it is pinned, but renew it on the server",
                self.not_after
            )
        })
    }

    pub(crate) fn is_expired(&self) -> bool {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.expires < now
    }
}

impl fmt::Display for Presented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = if self.names.is_empty() {
            "none (only the subject's CN)".to_string()
        } else {
            self.names.join(", ")
        };
        write!(
            f,
            "subject {}; issuer {}; valid {} to {}; names {names}; {}",
            self.subject, self.issuer, self.not_before, self.not_after, self.fingerprint
        )
    }
}

fn ip_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string(),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(bytes);
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => hex::encode(bytes),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_is_described() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["mail.example.com".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mail.example.com");
        let cert = params.self_signed(&key).unwrap();
        let p = Presented::describe(cert.der());
        assert!(p.subject.contains("mail.example.com"), "{p}");
        assert_eq!(p.names, ["mail.example.com"]);
        assert_eq!(p.fingerprint, Fingerprint::of(cert.der()));
        assert!(!p.is_expired());
        let junk = Presented::describe(b"not a certificate");
        assert!(junk.subject.contains("unreadable"));
    }
}
