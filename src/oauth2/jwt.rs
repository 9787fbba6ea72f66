//! RS256 JWT assertions (RFC 7523) signed with a Google service account key.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use rustls_pemfile::Item;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// Google caps an assertion's lifetime at an hour.
pub(crate) const ASSERTION_LIFETIME_SECS: u64 = 3600;

/// The fields of Google's service account key file that signing needs.
#[derive(Deserialize)]
pub(crate) struct ServiceAccountKey {
    pub client_email: String,
    pub private_key: SecretString,
    #[serde(default)]
    pub private_key_id: Option<String>,
}

impl ServiceAccountKey {
    /// Parses the JSON key file's text; errors never quote it.
    pub(super) fn parse(json: &str) -> Result<ServiceAccountKey, String> {
        serde_json::from_str(json).map_err(|e| {
            format!(
                "not a service account key (JSON with client_email and private_key) at line {}",
                e.line()
            )
        })
    }
}

/// The claims of one assertion.
pub(crate) struct Claims<'a> {
    pub iss: &'a str,
    pub sub: &'a str,
    pub scope: &'a str,
    pub aud: &'a str,
    pub iat: u64,
}

/// `header.claims.signature`, signed RS256 with the key's private key.
pub(crate) fn assertion(
    key: &ServiceAccountKey,
    claims: &Claims<'_>,
) -> Result<SecretString, String> {
    let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
    if let Some(kid) = &key.private_key_id {
        header["kid"] = serde_json::Value::String(kid.clone());
    }
    let body = serde_json::json!({
        "iss": claims.iss,
        "sub": claims.sub,
        "scope": claims.scope,
        "aud": claims.aud,
        "iat": claims.iat,
        "exp": claims.iat + ASSERTION_LIFETIME_SECS,
    });
    let signed = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(body.to_string())
    );
    let pair = key_pair(key.private_key.expose_secret())?;
    let mut signature = vec![0; pair.public_modulus_len()];
    pair.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        signed.as_bytes(),
        &mut signature,
    )
    .map_err(|_| "signing with the private key failed".to_string())?;
    Ok(SecretString::from(format!(
        "{signed}.{}",
        B64URL.encode(signature)
    )))
}

/// The RSA key from a PEM `PRIVATE KEY` (PKCS#8, Google's form) or `RSA PRIVATE KEY` (PKCS#1).
fn key_pair(pem: &str) -> Result<RsaKeyPair, String> {
    let mut reader = pem.as_bytes();
    loop {
        match rustls_pemfile::read_one(&mut reader) {
            Ok(Some(Item::Pkcs8Key(der))) => {
                return RsaKeyPair::from_pkcs8(der.secret_pkcs8_der())
                    .map_err(|e| format!("private_key is not a usable RSA key: {e}"));
            }
            Ok(Some(Item::Pkcs1Key(der))) => {
                return RsaKeyPair::from_der(der.secret_pkcs1_der())
                    .map_err(|e| format!("private_key is not a usable RSA key: {e}"));
            }
            Ok(Some(_)) => continue,
            Ok(None) => return Err("private_key holds no PEM private key".into()),
            Err(_) => return Err("private_key is not valid PEM".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn the_assertion_verifies_with_the_public_key_and_carries_the_claims() {
        let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
        let der = pair.as_der().unwrap();
        let b64 = STANDARD.encode(der.as_ref());
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            lines.join("\n")
        );
        let json = serde_json::json!({"type": "service_account", "client_email": "sa@p.iam.gserviceaccount.com",
            "private_key": pem, "private_key_id": "k1"});
        let key = ServiceAccountKey::parse(&json.to_string()).unwrap();
        let claims = Claims {
            iss: &key.client_email,
            sub: "support@acme.example",
            scope: "https://mail.google.com/",
            aud: "https://oauth2.googleapis.com/token",
            iat: 1_700_000_000,
        };
        let jwt = assertion(&key, &claims).unwrap();
        let parts: Vec<&str> = jwt.expose_secret().split('.').collect();
        assert_eq!(parts.len(), 3);
        let signed = format!("{}.{}", parts[0], parts[1]);
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pair.public_key().as_ref())
            .verify(signed.as_bytes(), &B64URL.decode(parts[2]).unwrap())
            .unwrap();
        let header: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["kid"], "k1");
        let body: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(body["iss"], "sa@p.iam.gserviceaccount.com");
        assert_eq!(body["sub"], "support@acme.example");
        assert_eq!(body["aud"], "https://oauth2.googleapis.com/token");
        assert_eq!(body["exp"], 1_700_003_600u64);
    }

    #[test]
    fn broken_keys_are_reported_without_their_content() {
        let e = ServiceAccountKey::parse("{\"private_key\": \"SECRET")
            .err()
            .unwrap();
        assert!(!e.contains("SECRET"));
        let key =
            ServiceAccountKey::parse(r#"{"client_email":"a","private_key":"garbage"}"#).unwrap();
        let claims = Claims {
            iss: "a",
            sub: "b",
            scope: "s",
            aud: "u",
            iat: 0,
        };
        assert!(assertion(&key, &claims).is_err());
    }
}
