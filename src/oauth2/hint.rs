//! What to do about an identity provider's refusal. Microsoft says the most in the
//! AADSTS number of its `error_description`, Google in the fixed sentences of its own;
//! the RFC 6749 `error` for the grant is the fallback for any other provider.

/// The fix for a refusal of `grant` with `error` and `description`, for `mailbox`.
pub(crate) fn hint(grant: &'static str, error: &str, description: &str, mailbox: &str) -> String {
    let login_again =
        format!("run `thulium-mail-bridge oauth2 login --mailbox {mailbox}` to sign in again");
    microsoft(description, &login_again)
        .or_else(|| google(description, &login_again))
        .unwrap_or_else(|| by_error(grant, error, &login_again))
}

/// Entra ID's AADSTS codes (learn.microsoft.com, "Microsoft Entra authentication and
/// authorization error codes") that admins meet setting up IMAP access.
fn microsoft(description: &str, login_again: &str) -> Option<String> {
    let code = aadsts(description)?;
    Some(match code {
        "7000215" => "the client secret is wrong: client_secret_file must hold the secret's Value (shown once, when it was made), not its Secret ID; or make a new one (Certificates & secrets)".into(),
        "7000222" => "the client secret has expired: create a new one in the app registration (Certificates & secrets) and put it in client_secret_file".into(),
        "7000218" => "no client secret was sent: set client_secret_file".into(),
        "700016" => "no app with this client_id in this tenant: client_id is the app's Application (client) ID, and token_url must name the tenant it is registered in (https://login.microsoftonline.com/<tenant ID or domain>/oauth2/v2.0/token)".into(),
        "90002" | "900023" => "the tenant in token_url does not exist: use your tenant ID or primary domain (https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token)".into(),
        "65001" => "consent is missing: an administrator must grant admin consent for the app's permissions (Microsoft 365: API permissions > Grant admin consent)".into(),
        "500011" => "Exchange Online is not known to the tenant under this scope: use scope = \"https://outlook.office365.com/.default\" and check that the tenant has Exchange Online".into(),
        "70008" | "700082" | "700084" | "50173" => {
            format!("the refresh token has expired or was revoked (inactivity, a password change or a sign-out); {login_again}")
        }
        "50076" | "50079" | "50158" => {
            format!("the sign-in now needs multi-factor authentication; {login_again}")
        }
        _ => return None,
    })
}

/// The number after `AADSTS` in a Microsoft description.
fn aadsts(description: &str) -> Option<&str> {
    let (_, rest) = description.split_once("AADSTS")?;
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// Google's token endpoint answers in fixed sentences (developers.google.com, "Using
/// OAuth 2.0 for Server to Server Applications", error codes).
fn google(description: &str, login_again: &str) -> Option<String> {
    let sentence = description.trim().trim_end_matches('.');
    Some(match sentence {
        "Token has been expired or revoked" => format!(
            "the refresh token was revoked (by the user, an admin or a password change) or has expired: Google expires them after 7 days while the app's OAuth consent screen is in \"Testing\" (publish it: In production); {login_again}"
        ),
        "Invalid JWT Signature" => "Google does not know the key in service_account_key_file (deleted or replaced): create a new key for the service account (IAM > Service accounts > Keys) and put its JSON file in service_account_key_file".into(),
        "Invalid email or User ID" => "the mailbox `username` is no user of the Google Workspace domain the service account acts for: set username to the mailbox's address".into(),
        s if s.starts_with("Invalid JWT: Token must be a short-lived token") => {
            "this host's clock is off: Google takes an assertion only within minutes of its own time; set the clock right (NTP)".into()
        }
        _ => return None,
    })
}

/// RFC 6749 5.2's codes, by grant, for any provider.
fn by_error(grant: &str, error: &str, login_again: &str) -> String {
    match (error, grant) {
        ("interaction_required", "refresh_token") => {
            format!("the identity provider wants an interactive sign-in; {login_again}")
        }
        ("consent_required" | "interaction_required", _) => {
            "consent is missing: an administrator must grant admin consent for the app's permissions (Microsoft 365: API permissions > Grant admin consent)".into()
        }
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
        ("unsupported_grant_type", _) => {
            "the identity provider does not offer this grant: check `grant` and token_url".into()
        }
        _ => "check [mailbox.oauth2] (token_url, client_id, secrets) against the identity provider".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_name_the_fix() {
        let cases = [
            (
                "refresh_token",
                "invalid_grant",
                "",
                "oauth2 login --mailbox support",
            ),
            (
                "client_credentials",
                "invalid_client",
                "AADSTS7000222: expired",
                "expired",
            ),
            (
                "client_credentials",
                "invalid_client",
                "AADSTS7000215: Invalid client secret",
                "not its Secret ID",
            ),
            (
                "client_credentials",
                "unauthorized_client",
                "AADSTS700016: Application with identifier 'x' was not found",
                "tenant",
            ),
            (
                "client_credentials",
                "invalid_request",
                "AADSTS90002: Tenant 'acme' not found.",
                "tenant in token_url",
            ),
            (
                "client_credentials",
                "invalid_grant",
                "AADSTS65001: no consent",
                "admin consent",
            ),
            (
                "refresh_token",
                "invalid_grant",
                "AADSTS50173: The provided grant has expired",
                "oauth2 login --mailbox support",
            ),
            (
                "refresh_token",
                "interaction_required",
                "AADSTS50076: Due to a configuration change",
                "multi-factor",
            ),
            (
                "refresh_token",
                "interaction_required",
                "",
                "oauth2 login --mailbox support",
            ),
            (
                "jwt_bearer",
                "unauthorized_client",
                "",
                "domain-wide delegation",
            ),
            (
                "client_credentials",
                "invalid_client",
                "",
                "client_secret_file",
            ),
            (
                "refresh_token",
                "invalid_grant",
                "Token has been expired or revoked.",
                "Testing",
            ),
            (
                "jwt_bearer",
                "invalid_grant",
                "Invalid JWT Signature.",
                "new key",
            ),
            (
                "jwt_bearer",
                "invalid_grant",
                "Invalid email or User ID",
                "username",
            ),
            (
                "jwt_bearer",
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.",
                "clock",
            ),
        ];
        for (grant, error, description, want) in cases {
            let got = hint(grant, error, description, "support");
            assert!(got.contains(want), "{grant} {error} {description:?}: {got}");
        }
        assert_eq!(aadsts("AADSTS700016: x"), Some("700016"));
        assert_eq!(aadsts("no code AADSTS"), None);
    }
}
