//! Why no token could be had, with what the admin should do about it.

/// A failed attempt to get an access token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The IdP answered with an OAuth2 error (RFC 6749 5.2): a wrong or expired
    /// secret, a revoked grant, missing consent. Needs the admin.
    #[error("identity provider {endpoint} refused the {grant} grant: {}", self.detail())]
    Rejected {
        endpoint: String,
        grant: &'static str,
        /// The IdP's `error` code (or `HTTP nnn` when the answer had none).
        error: String,
        /// The IdP's `error_description`, on one line.
        description: Option<String>,
        /// What the admin should do.
        hint: String,
    },
    /// The IdP could not be reached or failed on its side (timeouts, 5xx, 429): retried.
    #[error("identity provider {endpoint} unreachable: {reason}")]
    Unreachable { endpoint: String, reason: String },
    /// Our side: an unreadable secret, key or refresh token file, a failing command.
    #[error("OAuth2 ({grant}): {}", self.detail())]
    Setup {
        grant: &'static str,
        reason: String,
        hint: String,
    },
}

impl TokenError {
    /// The message without the leading "who": error, description and hint.
    pub fn detail(&self) -> String {
        match self {
            TokenError::Rejected {
                error,
                description,
                hint,
                ..
            } => match description {
                Some(d) => format!("{error} ({d}); {hint}"),
                None => format!("{error}; {hint}"),
            },
            TokenError::Unreachable { reason, .. } => reason.clone(),
            TokenError::Setup { reason, hint, .. } if hint.is_empty() => reason.clone(),
            TokenError::Setup { reason, hint, .. } => format!("{reason}; {hint}"),
        }
    }

    /// The IdP's `error` code, when it sent one.
    pub fn oauth_error(&self) -> Option<&str> {
        match self {
            TokenError::Rejected { error, .. } => Some(error),
            _ => None,
        }
    }

    pub(crate) fn setup(
        grant: &'static str,
        reason: impl Into<String>,
        hint: impl Into<String>,
    ) -> TokenError {
        TokenError::Setup {
            grant,
            reason: reason.into(),
            hint: hint.into(),
        }
    }
}

/// What to do about an IdP's `error`, per grant; the description refines it
/// where the providers' codes say more (AADSTS numbers).
pub(crate) fn hint(grant: &'static str, error: &str, description: &str, mailbox: &str) -> String {
    let login_again =
        format!("run `thulium-mail-bridge oauth2 login --mailbox {mailbox}` to sign in again");
    if description.contains("AADSTS7000222") {
        return "the client secret has expired: create a new one in the app registration (Certificates & secrets) and put it in client_secret_file".into();
    }
    if description.contains("AADSTS65001")
        || error == "consent_required"
        || error == "interaction_required"
    {
        return "consent is missing: an administrator must grant admin consent for the app's permissions (Microsoft 365: API permissions > Grant admin consent)".into();
    }
    match (error, grant) {
        ("invalid_client", "jwt_bearer") => {
            "the service account or its key is unknown: check service_account_key_file (a deleted or disabled key needs a new one)".into()
        }
        ("invalid_client", _) => {
            "check client_id and the client secret (client_secret_file): it may be wrong or expired; create a new one in the app registration".into()
        }
        ("invalid_grant", "refresh_token") => {
            format!("the refresh token was revoked or has expired; {login_again}")
        }
        ("invalid_grant", "jwt_bearer") => {
            "the assertion was refused: check that the mailbox user exists, the service account key is current and this host's clock is right".into()
        }
        ("unauthorized_client", "jwt_bearer") => {
            "the service account may not act for this user: in the Google Admin console add its client ID under domain-wide delegation with the scope https://mail.google.com/".into()
        }
        ("unauthorized_client", _) => {
            "the app may not use this grant: check the app registration (for client_credentials an application permission such as IMAP.AccessAsApp, with admin consent)".into()
        }
        ("invalid_scope", _) => "the scope was refused: check `scope` in [mailbox.oauth2]".into(),
        ("unsupported_grant_type", _) => "the identity provider does not offer this grant: check `grant` and token_url".into(),
        _ => "check [mailbox.oauth2] (token_url, client_id, secrets) against the identity provider".into(),
    }
}

/// Whitespace collapsed: Microsoft's descriptions carry trace ids on extra lines.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_fix() {
        assert!(
            hint("refresh_token", "invalid_grant", "", "support")
                .contains("oauth2 login --mailbox support")
        );
        assert!(
            hint(
                "client_credentials",
                "invalid_client",
                "AADSTS7000222: expired",
                "s"
            )
            .contains("expired")
        );
        assert!(
            hint(
                "client_credentials",
                "invalid_grant",
                "AADSTS65001: no consent",
                "s"
            )
            .contains("admin consent")
        );
        assert!(
            hint("jwt_bearer", "unauthorized_client", "", "s").contains("domain-wide delegation")
        );
        assert!(
            hint("client_credentials", "invalid_client", "", "s").contains("client_secret_file")
        );
    }

    #[test]
    fn detail_carries_error_description_and_hint() {
        let e = TokenError::Rejected {
            endpoint: "https://idp/token".into(),
            grant: "client_credentials",
            error: "invalid_client".into(),
            description: Some("AADSTS7000215: Invalid client secret provided.".into()),
            hint: "check the secret".into(),
        };
        assert_eq!(
            e.to_string(),
            "identity provider https://idp/token refused the client_credentials grant: invalid_client (AADSTS7000215: Invalid client secret provided.); check the secret"
        );
        assert_eq!(one_line("a\r\n  Trace ID: x\n"), "a Trace ID: x");
    }
}
