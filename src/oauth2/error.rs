//! Why no token could be had, with what the admin should do about it.

/// A failed attempt to get an access token.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenError {
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
    pub(crate) fn detail(&self) -> String {
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
    pub(crate) fn oauth_error(&self) -> Option<&str> {
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

/// Whitespace collapsed: Microsoft's descriptions carry trace ids on extra lines.
pub(crate) fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

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
