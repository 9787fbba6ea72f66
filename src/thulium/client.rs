//! One shared HTTP client for the Thulium API: an HTTP/1.1 keep-alive pool (one
//! connection per request in flight, up to `thulium.concurrency`, reused across
//! passes), per-request timeout, Basic auth. The password only ever lives in a
//! sensitive header value.

use super::gate::{Gate, Withheld};
use super::new_ticket::{self, NewTicketRequest};
use super::{ApiError, Ticket, classify, request_body};
use crate::http_read::{ReadError, read_capped};
use crate::mail::decide::CustomerResponse;
use base64::Engine;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, Response, Url};
use secrecy::{ExposeSecret, SecretString};
use std::fmt;
use std::time::{Duration, Instant, SystemTime};

/// Idle keep-alive connections kept per host: `thulium.concurrency` may be up to 256.
const POOL_IDLE_PER_HOST: usize = 256;
/// Below the usual 60 s server keep-alive, so we rarely write into a connection being closed.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Connecting gets its own, shorter limit: a connect timeout proves nothing was sent.
const CONNECT_TIMEOUT_MAX: Duration = Duration::from_secs(10);
/// The most of a ticket read back: long histories of HTML mails run to a few MiB.
const TICKET_CAP: usize = 32 << 20;
/// The most of any other answer (errors, the probe): only the API's words are needed.
const SMALL_CAP: usize = 64 << 10;

/// Why the client could not be built (a config problem, found at start).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("thulium.url: {0}")]
    Url(String),
    #[error("thulium.user: {0}")]
    User(String),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

#[derive(Clone)]
pub struct ThuliumClient {
    http: reqwest::Client,
    /// The API root, always ending in `/` so joins append.
    root: Url,
    user: String,
    /// `Basic …`, marked sensitive; never printed.
    auth: HeaderValue,
    timeout: Duration,
}

/// By hand, so the credentials can never reach a log line.
impl fmt::Debug for ThuliumClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThuliumClient")
            .field("root", &self.root.as_str())
            .field("user", &self.user)
            .field("password", &"[redacted]")
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What every request says it comes from.
const AGENT: &str = concat!("thulium-mail-bridge/", env!("CARGO_PKG_VERSION"));

impl ThuliumClient {
    /// `instance`: this instance's name, when instances share a ledger.
    pub fn new(
        url: &str,
        user: &str,
        password: SecretString,
        timeout: Duration,
        instance: Option<&str>,
    ) -> Result<ThuliumClient, SetupError> {
        let root = api_root(url)?;
        if user.contains(':') {
            return Err(SetupError::User(
                "must not contain ':' (HTTP Basic auth)".into(),
            ));
        }
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("{user}:{}", password.expose_secret()));
        let mut auth = HeaderValue::from_str(&format!("Basic {credentials}"))
            .map_err(|_| SetupError::User("cannot be sent in an HTTP header".into()))?;
        auth.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout((timeout / 2).min(CONNECT_TIMEOUT_MAX))
            .pool_max_idle_per_host(POOL_IDLE_PER_HOST)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_keepalive(Duration::from_secs(60))
            // HTTP/1.1 only: `thulium.concurrency` connections carry that many requests
            // at once, whatever HTTP/2 stream limit a server or proxy would impose.
            .http1_only()
            .tcp_nodelay(true)
            // A redirected POST would become a GET; a redirect means a wrong thulium.url.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(match instance {
                // Instances sharing a ledger say which one sent a request.
                Some(name) => format!("{AGENT} (instance {name})"),
                None => AGENT.to_string(),
            })
            .build()
            .map_err(|e| SetupError::Http(error_chain(e)))?;
        Ok(ThuliumClient {
            http,
            root,
            user: user.to_string(),
            auth,
            timeout,
        })
    }

    /// `POST tickets/{id}/customer_response`; any 2xx is success (the body is empty).
    /// `gate` is asked once more as the request leaves.
    pub async fn post_customer_response(
        &self,
        ticket: u64,
        req: &CustomerResponse,
        gate: &Gate,
    ) -> Result<(), ApiError> {
        let body = request_body(req).map_err(|e| ApiError::Permanent {
            status: 0,
            message: format!("cannot encode the request as JSON: {e}"),
        })?;
        let path = format!("tickets/{ticket}/customer_response");
        let resp = self
            .send(Method::POST, &path, &[], Some(Payload::json(body, gate)))
            .await?;
        if resp.status().is_success() {
            // Posted. The body is drained only so the connection can be reused; a failure
            // reading it cannot undo the post.
            let _ = read_capped(resp, SMALL_CAP).await;
            return Ok(());
        }
        Err(rejection(resp).await)
    }

    /// `GET tickets/{id}`, read leniently (see [`Ticket`]).
    pub async fn get_ticket(&self, ticket: u64) -> Result<Ticket, ApiError> {
        let path = format!("tickets/{ticket}");
        let resp = self.send(Method::GET, &path, &[], None).await?;
        let status = resp.status().as_u16();
        if !resp.status().is_success() {
            return Err(rejection(resp).await);
        }
        let body = self.read(resp, TICKET_CAP, &format!("GET {path}")).await?;
        serde_json::from_slice(&body).map_err(|e| ApiError::Permanent {
            status,
            message: format!("GET {path} answered something that is not a ticket ({e})"),
        })
    }

    /// For `check`: a side-effect-free GET proving the URL and the credentials.
    ///
    /// `tickets/0` does not exist, so a JSON 404 (or any other rejection) still proves
    /// the credentials were accepted; an HTML page means the URL is not the API root.
    pub async fn probe(&self) -> Result<(), ApiError> {
        let path = "tickets/0";
        let resp = self.send(Method::GET, path, &[], None).await?;
        let status = resp.status().as_u16();
        let retry_after = retry_after_header(&resp);
        let body = self.read(resp, SMALL_CAP, &format!("GET {path}")).await?;
        match classify(status, retry_after.as_deref(), &body, SystemTime::now()) {
            Ok(()) | Err(ApiError::Permanent { .. }) if looks_like_html(&body) => {
                Err(ApiError::Permanent {
                    status,
                    message: format!(
                        "GET {} answered an HTML page, not the Thulium API; thulium.url must be the API root (e.g. https://acme.thulium.com/api)",
                        self.root
                    ),
                })
            }
            Ok(()) | Err(ApiError::Permanent { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A body read with a cap; past it, the answer counts as broken (transient).
    /// `request` names it in errors ("GET tickets/7", "POST temporary_files").
    async fn read(&self, resp: Response, cap: usize, request: &str) -> Result<Vec<u8>, ApiError> {
        read_capped(resp, cap).await.map_err(|e| match e {
            ReadError::Transport(e) => self.transport_error(request, e, self.timeout),
            e @ ReadError::TooLarge { .. } => ApiError::Transient {
                reason: format!("{request}: {e}"),
                retry_after: None,
                sent: true,
            },
        })
    }

    /// `POST tickets`; the new ticket's id.
    /// `gate` is asked once more as the request leaves.
    pub async fn create_ticket(
        &self,
        req: &NewTicketRequest,
        gate: &Gate,
    ) -> Result<u64, ApiError> {
        let body = serde_json::to_vec(req).map_err(|e| ApiError::Permanent {
            status: 0,
            message: format!("cannot encode the request as JSON: {e}"),
        })?;
        let resp = self
            .send(
                Method::POST,
                "tickets",
                &[],
                Some(Payload::json(body, gate)),
            )
            .await?;
        if !resp.status().is_success() {
            return Err(rejection(resp).await);
        }
        // Created: an answer that cannot be read leaves the outcome unknown.
        let unreadable = |reason: String| ApiError::Transient {
            reason: format!("POST tickets: {reason}"),
            retry_after: None,
            sent: true,
        };
        let body = read_capped(resp, SMALL_CAP)
            .await
            .map_err(|e| unreadable(e.to_string()))?;
        let answer: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| unreadable(format!("answer is not JSON ({e})")))?;
        new_ticket::created_ticket_id(&answer)
            .ok_or_else(|| unreadable("answer has no ticket_id".into()))
    }

    /// `POST temporary_files?filename=`; the token for `attachments` (kept 24 hours).
    /// `size` (decoded bytes) lengthens `thulium.timeout` for the transfer: a 20 MiB
    /// file must not time out on every try over a slow link.
    pub async fn upload(
        &self,
        filename: &str,
        body: reqwest::Body,
        size: u64,
    ) -> Result<String, ApiError> {
        let query = [("filename", filename.to_string())];
        let payload = Payload {
            content_type: "application/octet-stream",
            body,
            timeout: Some(
                self.timeout
                    + Duration::from_millis(size.saturating_mul(1000) / UPLOAD_FLOOR_BYTES_PER_S),
            ),
        };
        let resp = self
            .send(Method::POST, "temporary_files", &query, Some(payload))
            .await?;
        if !resp.status().is_success() {
            return Err(rejection(resp).await);
        }
        let body = self.read(resp, SMALL_CAP, "POST temporary_files").await?;
        serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("token").and_then(|t| t.as_str()).map(str::to_string))
            .ok_or_else(|| ApiError::Transient {
                reason: "POST temporary_files answered no token".into(),
                retry_after: None,
                sent: true,
            })
    }

    /// `GET tickets` created since `create_date_from` (`YYYY-MM-DD`, the account's zone), in one queue if given: one page of [`TICKET_PAGE`] from `offset`.
    pub async fn find_tickets(
        &self,
        create_date_from: &str,
        ticket_queue_id: Option<u64>,
        offset: usize,
    ) -> Result<Vec<Ticket>, ApiError> {
        let mut query = vec![
            ("create_date_from", create_date_from.to_string()),
            ("limit", TICKET_PAGE.to_string()),
            ("offset", offset.to_string()),
        ];
        if let Some(q) = ticket_queue_id {
            query.push(("ticket_queue_id", q.to_string()));
        }
        let resp = self.send(Method::GET, "tickets", &query, None).await?;
        if !resp.status().is_success() {
            return Err(rejection(resp).await);
        }
        let body = self.read(resp, TICKET_CAP, "GET tickets").await?;
        let answer = serde_json::from_slice(&body).map_err(|e| ApiError::Permanent {
            status: 200,
            message: format!("GET tickets answered something that is not JSON ({e})"),
        })?;
        Ok(new_ticket::ticket_list(&answer))
    }

    /// Sends one request; transport failures become [`ApiError::Transient`].
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        payload: Option<Payload>,
    ) -> Result<Response, ApiError> {
        let mut url = self.root.join(path).map_err(|e| ApiError::Transient {
            reason: format!("cannot build the URL for {path}: {e}"),
            retry_after: None,
            sent: false,
        })?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut req = self
            .http
            .request(method.clone(), url)
            .header(AUTHORIZATION, self.auth.clone())
            .header(ACCEPT, "application/json");
        let mut timeout = self.timeout;
        if let Some(p) = payload {
            req = req.header(CONTENT_TYPE, p.content_type).body(p.body);
            if let Some(t) = p.timeout {
                req = req.timeout(t);
                timeout = t;
            }
        }
        let started = Instant::now();
        let result = req.send().await;
        crate::ops::metrics::api_request(
            result.as_ref().ok().map(|r| r.status().as_u16()),
            started.elapsed(),
        );
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(resp) => {
                tracing::debug!(%method, path, status = resp.status().as_u16(), elapsed_ms, "Thulium API answered");
                Ok(resp)
            }
            Err(e) => {
                let err = self.transport_error(&format!("{method} {path}"), e, timeout);
                tracing::debug!(%method, path, elapsed_ms, error = %err, "Thulium API request failed");
                Err(err)
            }
        }
    }

    /// Connect errors never reached the server; anything later may have.
    /// `timeout` is the one the request had (an upload gets more than `thulium.timeout`).
    fn transport_error(&self, what: &str, e: reqwest::Error, timeout: Duration) -> ApiError {
        // A withheld body never left whole: nothing the server could act on.
        let sent = !(e.is_connect() || e.is_builder() || Withheld::caused(&e));
        let reason = if e.is_timeout() && sent {
            format!(
                "{what}: no answer within {}",
                humantime::format_duration(timeout)
            )
        } else {
            format!("{what}: {}", error_chain(e))
        };
        ApiError::Transient {
            reason,
            retry_after: None,
            sent,
        }
    }
}

/// A request body and its type.
struct Payload {
    content_type: &'static str,
    body: reqwest::Body,
    /// In place of `thulium.timeout`.
    timeout: Option<Duration>,
}

/// The slowest upload rate allowed for (1 Mbit/s): 20 MiB get 160 s beyond the timeout.
const UPLOAD_FLOOR_BYTES_PER_S: u64 = 128 << 10;

/// Tickets per page of `GET tickets`: the documented most.
pub const TICKET_PAGE: usize = 100;

impl Payload {
    fn json(bytes: Vec<u8>, gate: &Gate) -> Payload {
        Payload {
            content_type: "application/json",
            body: gate.body(bytes),
            timeout: None,
        }
    }
}

/// The API root as given, with or without a trailing slash, made joinable.
fn api_root(url: &str) -> Result<Url, SetupError> {
    let bad = |m: &str| SetupError::Url(m.to_string());
    let mut root =
        Url::parse(url.trim()).map_err(|e| SetupError::Url(format!("not a URL: {e}")))?;
    if !matches!(root.scheme(), "http" | "https") {
        return Err(bad("must start with https:// (or http://)"));
    }
    if !root.username().is_empty() || root.password().is_some() {
        return Err(bad(
            "must not hold credentials; set thulium.user and thulium.password",
        ));
    }
    if root.query().is_some() || root.fragment().is_some() {
        return Err(bad("must be the API root, without ?query or #fragment"));
    }
    if !root.path().ends_with('/') {
        let path = format!("{}/", root.path());
        root.set_path(&path);
    }
    Ok(root)
}

/// The error class of a non-2xx answer (the body is read for the API's message).
async fn rejection(resp: Response) -> ApiError {
    let status = resp.status().as_u16();
    let retry_after = retry_after_header(&resp);
    // The API's words are in the first bytes; an endless error page is cut.
    let body = read_capped(resp, SMALL_CAP).await.unwrap_or_default();
    match classify(status, retry_after.as_deref(), &body, SystemTime::now()) {
        Err(e) => e,
        Ok(()) => ApiError::Transient {
            reason: format!("unexpected HTTP status {status}"),
            retry_after: None,
            sent: true,
        },
    }
}

fn retry_after_header(resp: &Response) -> Option<String> {
    resp.headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn looks_like_html(body: &[u8]) -> bool {
    let head = String::from_utf8_lossy(&body[..body.len().min(512)]).to_ascii_lowercase();
    let head = head.trim_start();
    head.starts_with("<!doctype html") || head.starts_with("<html") || head.contains("<body")
}

/// The error and its causes on one line, without the URL reqwest attaches.
fn error_chain(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(&e);
    while let Some(cause) = source {
        let text = cause.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_joins_with_or_without_a_trailing_slash() {
        for root in [
            "https://acme.thulium.com/api",
            "https://acme.thulium.com/api/",
            " https://acme.thulium.com/api/ ",
        ] {
            let url = api_root(root)
                .unwrap()
                .join("tickets/5/customer_response")
                .unwrap();
            assert_eq!(
                url.as_str(),
                "https://acme.thulium.com/api/tickets/5/customer_response",
                "{root:?}"
            );
        }
        let url = api_root("http://127.0.0.1:8080")
            .unwrap()
            .join("tickets/0")
            .unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/tickets/0");
    }

    #[test]
    fn a_root_that_cannot_be_the_api_is_refused_without_echoing_it() {
        for bad in [
            "ftp://x/api",
            "acme.thulium.com/api",
            "https://x/api?k=v",
            "https://u:hunter2@x/api",
        ] {
            let e = api_root(bad).unwrap_err().to_string();
            assert!(e.starts_with("thulium.url: "), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn debug_output_shows_no_credentials() {
        let c = ThuliumClient::new(
            "https://acme.thulium.com/api",
            "api_user",
            SecretString::from("s3cr3t-pa55"),
            Duration::from_secs(5),
            None,
        )
        .unwrap();
        let shown = format!("{c:?} {c:#?}");
        let encoded = base64::engine::general_purpose::STANDARD.encode("api_user:s3cr3t-pa55");
        assert!(
            !shown.contains("s3cr3t-pa55") && !shown.contains(&encoded),
            "{shown}"
        );
        assert!(!shown.contains("Basic"), "{shown}");
        assert!(
            shown.contains("api_user") && shown.contains("[redacted]"),
            "{shown}"
        );
    }

    #[test]
    fn html_is_told_from_json() {
        assert!(looks_like_html(
            b"\n  <!DOCTYPE html><html><body>Not found</body></html>"
        ));
        assert!(looks_like_html(b"<HTML><BODY>x"));
        assert!(!looks_like_html(br#"{"errors":[{"message":"Not found"}]}"#));
        assert!(!looks_like_html(b""));
    }
}
