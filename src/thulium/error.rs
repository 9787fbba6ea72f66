//! The three ways an API call can fail, each with its own remedy.

use std::time::Duration;

/// Why a call to the Thulium API did not succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// Worth retrying later (408, 429, 5xx, timeouts, connection errors).
    ///
    /// `sent` means the request may have reached the server, so its outcome is unknown
    /// and the ticket must be read back before posting again.
    #[error("{reason}{}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
        sent: bool,
    },
    /// The API rejected this request for good (400, 404, 409, 422, other 4xx).
    #[error("the Thulium API rejected the request (HTTP {status}): {message}")]
    Permanent { status: u16, message: String },
    /// The API refused our credentials (401, 403): stop posting, alert, retry slowly.
    #[error("the Thulium API refused the credentials (HTTP {status}): {message}")]
    Credentials { status: u16, message: String },
}
