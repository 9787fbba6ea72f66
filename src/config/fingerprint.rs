//! The SHA-256 fingerprint of a whole certificate, as `tls_fingerprint` pins it.

use sha2::{Digest, Sha256};
use std::fmt;

/// A SHA-256 fingerprint of a whole DER certificate.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    pub fn of(der: &[u8]) -> Fingerprint {
        Fingerprint(Sha256::digest(der).into())
    }
}

/// `sha256:AB:CD:…`, the config spelling.
impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex: Vec<String> = self.0.iter().map(|b| format!("{b:02X}")).collect();
        write!(f, "sha256:{}", hex.join(":"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = String;

    /// `sha256:AB:CD:…` or `AB:CD:…` or `abcd…`, any case, colons optional; openssl's
    /// whole line (`sha256 Fingerprint=AB:…`) too, as admins paste it.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let s = match s.split_once('=') {
            Some((label, rest)) if label.trim().eq_ignore_ascii_case("sha256 fingerprint") => {
                rest.trim()
            }
            _ => s,
        };
        let hex_part = match s.split_once(':') {
            Some((algo, rest)) if algo.eq_ignore_ascii_case("sha256") => rest,
            _ => s,
        };
        let hex_digits: String = hex_part.chars().filter(|c| *c != ':').collect();
        let bytes = hex::decode(&hex_digits).map_err(|_| {
            format!("{s:?} is not a SHA-256 fingerprint (64 hex digits, colons optional)")
        })?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| {
            format!("{s:?} is not a SHA-256 fingerprint (64 hex digits, colons optional)")
        })?;
        Ok(Fingerprint(bytes))
    }
}

impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_every_way_openssl_and_people_write_them() {
        let f = Fingerprint([0xAB; 32]);
        let openssl = format!("sha256:{}", vec!["AB"; 32].join(":"));
        assert_eq!(f.to_string(), openssl);
        for text in [
            openssl.clone(),
            openssl.to_lowercase(),
            vec!["ab"; 32].join(""),
            format!("SHA256:{}", vec!["AB"; 32].join("")),
            vec!["AB"; 32].join(":"),
            format!("sha256 Fingerprint={}", vec!["AB"; 32].join(":")),
            format!("SHA256 Fingerprint={}", vec!["AB"; 32].join(":")),
        ] {
            assert_eq!(text.parse::<Fingerprint>(), Ok(f), "{text}");
        }
        assert!("sha256:AB:CD".parse::<Fingerprint>().is_err());
        assert!("not hex".parse::<Fingerprint>().is_err());
    }
}
