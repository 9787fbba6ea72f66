//! An access token with its lifetime, and the token endpoint's answer (RFC 6749 5.1).

use secrecy::SecretString;
use serde::{Deserialize, Deserializer};
use std::time::{Duration, Instant};

/// Replaced once this share of its lifetime has passed, so a login never
/// presents a token about to expire (clock skew, slow connects).
const REFRESH_AT_PERCENT: u32 = 80;

/// An access token; `Debug` shows no secret (`SecretString` redacts it).
#[derive(Debug, Clone)]
pub(super) struct AccessToken {
    pub secret: SecretString,
    pub obtained: Instant,
    /// `None` when the source did not say (a `command` printing a bare token):
    /// such a token is used for one login only.
    pub lifetime: Option<Duration>,
}

impl AccessToken {
    pub(super) fn new(secret: SecretString, lifetime: Option<Duration>) -> AccessToken {
        AccessToken {
            secret,
            obtained: Instant::now(),
            lifetime,
        }
    }

    /// When a new token should be fetched instead of this one.
    pub(super) fn refresh_at(&self) -> Option<Instant> {
        self.lifetime
            .map(|l| self.obtained + l * REFRESH_AT_PERCENT / 100)
    }

    /// Whether this token may still be used for a login at `now`.
    pub(super) fn is_fresh(&self, now: Instant) -> bool {
        self.refresh_at().is_some_and(|at| now < at)
    }
}

/// The token endpoint's success answer; secrets go straight into `SecretString`s.
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    pub access_token: SecretString,
    #[serde(default)]
    pub refresh_token: Option<SecretString>,
    /// Seconds; some IdPs send it as a string.
    #[serde(default, deserialize_with = "lenient_seconds")]
    pub expires_in: Option<u64>,
}

/// Assumed when the IdP leaves `expires_in` out (RFC 6749 makes it optional);
/// an hour is what Microsoft and Google issue.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

impl TokenResponse {
    pub(super) fn into_access_token(self) -> AccessToken {
        let lifetime = self
            .expires_in
            .map_or(DEFAULT_LIFETIME, Duration::from_secs);
        AccessToken::new(self.access_token, Some(lifetime))
    }
}

/// A number, a numeric string, or absent.
pub(crate) fn lenient_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Option::<serde_json::Value>::deserialize(d)? {
        Some(serde_json::Value::Number(n)) => {
            n.as_u64().or_else(|| n.as_f64().map(|f| f.max(0.0) as u64))
        }
        Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn a_token_is_replaced_at_eighty_percent_of_its_lifetime() {
        let t = AccessToken::new("x".to_string().into(), Some(Duration::from_secs(100)));
        assert!(t.is_fresh(t.obtained));
        assert!(t.is_fresh(t.obtained + Duration::from_secs(79)));
        assert!(!t.is_fresh(t.obtained + Duration::from_secs(80)));
        let once = AccessToken::new("x".to_string().into(), None);
        assert!(
            !once.is_fresh(once.obtained),
            "a token of unknown lifetime is not reused"
        );
    }

    #[test]
    fn token_answers_parse_leniently_and_debug_hides_the_token() {
        let r: TokenResponse = serde_json::from_str(
            r#"{"access_token":"AT-secret","expires_in":"3599","token_type":"Bearer"}"#,
        )
        .unwrap();
        assert_eq!(r.expires_in, Some(3599));
        let t = r.into_access_token();
        assert_eq!(t.lifetime, Some(Duration::from_secs(3599)));
        assert_eq!(t.secret.expose_secret(), "AT-secret");
        assert!(!format!("{t:?}").contains("AT-secret"));
        let r: TokenResponse =
            serde_json::from_str(r#"{"access_token":"a","refresh_token":"r"}"#).unwrap();
        assert!(r.refresh_token.is_some() && r.expires_in.is_none());
        assert_eq!(r.into_access_token().lifetime, Some(DEFAULT_LIFETIME));
    }
}
