//! Talking to an IdP's token endpoint: a form POST, and its answer classified
//! into a token, a refusal (RFC 6749 5.2) or a transient failure.

use super::error::{TokenError, one_line};
use super::hint::hint;
use super::token::TokenResponse;
use serde::Deserialize;
use std::time::Duration;

/// Longest wait for one IdP answer.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Whose IdP a URL belongs to: their defaults and endpoints differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Provider {
    Microsoft,
    Google,
    Other,
}

impl Provider {
    pub(super) fn of(url: &str) -> Provider {
        let host = reqwest::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
            .unwrap_or_default();
        if host.starts_with("login.microsoftonline.")
            || host == "login.partner.microsoftonline.cn"
            || host == "login.chinacloudapi.cn"
        {
            Provider::Microsoft
        } else if host == "oauth2.googleapis.com"
            || host == "accounts.google.com"
            || host == "www.googleapis.com"
        {
            Provider::Google
        } else {
            Provider::Other
        }
    }
}

/// The HTTP client for IdPs: no redirects (a redirected POST would lose or leak
/// its form), bounded in time.
pub(crate) fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .connect_timeout(HTTP_TIMEOUT / 3)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("thulium-mail-bridge/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| error_chain(&e))
}

#[derive(Deserialize)]
struct ErrorAnswer {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// The most of a token or device-flow answer read: a token is a few KiB.
pub(crate) const ANSWER_CAP: usize = 256 << 10;

/// POSTs `form` to `url` and returns the token answer.
pub(crate) async fn post_form(
    http: &reqwest::Client,
    url: &str,
    grant: &'static str,
    mailbox: &str,
    form: &[(&str, &str)],
) -> Result<TokenResponse, TokenError> {
    let endpoint = display_url(url);
    let response = http
        .post(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .form(form)
        .send()
        .await
        .map_err(|e| TokenError::Unreachable {
            endpoint: endpoint.clone(),
            reason: error_chain(&e),
        })?;
    let status = response.status().as_u16();
    let body = crate::http_read::read_capped(response, ANSWER_CAP)
        .await
        .map_err(|e| TokenError::Unreachable {
            endpoint: endpoint.clone(),
            reason: match e {
                crate::http_read::ReadError::Transport(e) => error_chain(&e),
                e => e.to_string(),
            },
        })?;
    classify(status, &body, &endpoint, grant, mailbox)
}

/// The pure half of [`post_form`]: status and body to a token or an error.
pub(crate) fn classify(
    status: u16,
    body: &[u8],
    endpoint: &str,
    grant: &'static str,
    mailbox: &str,
) -> Result<TokenResponse, TokenError> {
    if (200..300).contains(&status) {
        return serde_json::from_slice::<TokenResponse>(body).map_err(|e| TokenError::Rejected {
            endpoint: endpoint.to_string(),
            grant,
            error: "no access_token in the answer".into(),
            description: Some(format!("HTTP {status}, {}", e.classify_name())),
            hint: "check that token_url is the identity provider's OAuth2 token endpoint".into(),
        });
    }
    if status == 408 || status == 429 || status >= 500 {
        return Err(TokenError::Unreachable {
            endpoint: endpoint.to_string(),
            reason: format!("HTTP {status}"),
        });
    }
    match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(a) => {
            let description = a
                .error_description
                .as_deref()
                .map(one_line)
                .filter(|d| !d.is_empty());
            Err(TokenError::Rejected {
                endpoint: endpoint.to_string(),
                grant,
                hint: hint(
                    grant,
                    &a.error,
                    description.as_deref().unwrap_or(""),
                    mailbox,
                ),
                error: one_line(&a.error),
                description,
            })
        }
        Err(_) => Err(TokenError::Rejected {
            endpoint: endpoint.to_string(),
            grant,
            error: format!("HTTP {status}"),
            description: None,
            hint: "the answer is not an OAuth2 error: check token_url".into(),
        }),
    }
}

/// What a serde_json error was, without echoing the (secret-bearing) input.
trait ClassifyName {
    fn classify_name(&self) -> &'static str;
}

impl ClassifyName for serde_json::Error {
    fn classify_name(&self) -> &'static str {
        match self.classify() {
            serde_json::error::Category::Data => "a JSON object without a usable access_token",
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "not JSON",
            serde_json::error::Category::Io => "unreadable",
        }
    }
}

/// The URL without query or fragment, for messages.
pub(crate) fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            let _ = u.set_password(None);
            let _ = u.set_username("");
            u.to_string()
        }
        Err(_) => url.to_string(),
    }
}

/// reqwest's own message is terse ("error sending request"); the causes say why.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(status: u16, body: &str) -> Result<TokenResponse, TokenError> {
        classify(
            status,
            body.as_bytes(),
            "https://idp/token",
            "refresh_token",
            "support",
        )
    }

    #[test]
    fn answers_are_classified() {
        assert!(run(200, r#"{"access_token":"a","expires_in":60}"#).is_ok());
        for status in [408, 429, 500, 502, 503] {
            assert!(
                matches!(run(status, ""), Err(TokenError::Unreachable { .. })),
                "{status}"
            );
        }
        let e = run(400, r#"{"error":"invalid_grant","error_description":"AADSTS70008: expired\r\nTrace ID: 1"}"#)
            .err()
            .unwrap();
        assert_eq!(e.oauth_error(), Some("invalid_grant"));
        let text = e.to_string();
        assert!(
            text.contains("AADSTS70008: expired Trace ID: 1")
                && text.contains("oauth2 login --mailbox support"),
            "{text}"
        );
        let e = run(404, "<html>not here</html>").err().unwrap();
        assert!(e.to_string().contains("HTTP 404") && !e.to_string().contains("html"));
        let e = run(200, r#"{"token_type":"Bearer","secret":"s3"}"#)
            .err()
            .unwrap();
        assert!(!e.to_string().contains("s3"), "{e}");
    }

    #[test]
    fn providers_are_told_apart() {
        assert_eq!(
            Provider::of("https://login.microsoftonline.com/t/oauth2/v2.0/token"),
            Provider::Microsoft
        );
        assert_eq!(
            Provider::of("https://oauth2.googleapis.com/token"),
            Provider::Google
        );
        assert_eq!(Provider::of("http://127.0.0.1:8080/token"), Provider::Other);
        assert_eq!(
            display_url("https://u:p@idp/token?x=1"),
            "https://idp/token"
        );
    }
}
