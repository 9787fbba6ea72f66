//! A fake Thulium helpdesk API that follows the documented contract
//! (SPEC.md, "The Thulium API"), records everything and injects faults.
//!
//! Faults that drop the connection go through `conn.rs` (our accept loop).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::conn::{ConnHandle, accept_loop};
use crate::contract::{error, format_minutes, status, unauthorized, validate};
use crate::faults::{Fault, FaultPlan};

/// Settings of a [`FakeThulium`].
#[derive(Clone, Debug)]
pub struct FakeThuliumConfig {
    /// HTTP Basic user the API accepts.
    pub user: String,
    /// HTTP Basic password the API accepts.
    pub password: String,
    /// Every ticket id exists (created on first use), for benchmarks.
    pub auto_tickets: bool,
    /// Added to every API request before it is handled.
    pub latency: Duration,
    /// Keep request bodies in [`FakeThulium::requests`]; off saves memory in
    /// long benchmarks (stored responses keep their bodies either way).
    pub record_bodies: bool,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
}

impl Default for FakeThuliumConfig {
    fn default() -> Self {
        FakeThuliumConfig {
            user: "api_user".into(),
            password: "api_password".into(),
            auto_tickets: false,
            latency: Duration::ZERO,
            record_bodies: true,
            port: 0,
        }
    }
}

/// A customer response the API accepted and stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredResponse {
    /// Global order of acceptance, across tickets.
    pub seq: u64,
    pub ticket: u64,
    pub body: String,
    /// `"HTML"` or `"PLAIN"` (HTML when the request left it out).
    pub body_type: String,
    /// The `date` as sent (`YYYY-MM-DD HH:MM`), if any.
    pub date: Option<String>,
    pub at_unix_ms: u64,
}

/// One request as received, with what was answered.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecordedRequest {
    /// Order of arrival.
    pub seq: u64,
    pub method: String,
    pub path: String,
    /// The ticket id in the path, if any.
    pub ticket: Option<u64>,
    /// Whether the Basic credentials were right.
    pub auth_ok: bool,
    /// The JSON body (a JSON string when the body was not JSON; `None` when
    /// empty or not recorded).
    pub body: Option<Value>,
    pub at_unix_ms: u64,
    /// The status answered; `None` when the connection was dropped instead.
    pub status: Option<u16>,
    /// The fault injected into this request, if any.
    pub fault: Option<Fault>,
}

struct Ticket {
    from: String,
    customer_id: u64,
    subject: String,
    created: String,
    responses: Vec<StoredResponse>,
}

struct Shared {
    config: FakeThuliumConfig,
    tickets: Mutex<HashMap<u64, Ticket>>,
    requests: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<FaultPlan>,
    latency_ms: AtomicU64,
    /// Numbers requests in order of arrival.
    seq: AtomicU64,
    /// Numbers stored responses in order of acceptance.
    stored_seq: AtomicU64,
    posted: watch::Sender<usize>,
}

/// The fake API, serving until dropped.
pub struct FakeThulium {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl FakeThulium {
    /// Starts with default settings (user `api_user`, password `api_password`).
    pub async fn start() -> Result<FakeThulium> {
        FakeThulium::start_with(FakeThuliumConfig::default()).await
    }

    /// Starts on 127.0.0.1 in the current tokio runtime.
    pub async fn start_with(config: FakeThuliumConfig) -> Result<FakeThulium> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, config.port))
            .await
            .context("bind the fake Thulium API")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            latency_ms: AtomicU64::new(config.latency.as_millis() as u64),
            config,
            tickets: Mutex::default(),
            requests: Mutex::default(),
            faults: Mutex::default(),
            seq: AtomicU64::new(0),
            stored_seq: AtomicU64::new(0),
            posted: watch::Sender::new(0),
        });
        let router = Router::new()
            .route("/api/tickets/{id}/customer_response", post(post_response))
            .route("/api/tickets/{id}", get(get_ticket))
            .route("/_testbed/requests", get(list_requests))
            .fallback(fallback)
            .with_state(shared.clone());
        let server = tokio::spawn(accept_loop(listener, router));
        Ok(FakeThulium {
            shared,
            addr,
            server,
        })
    }

    /// The API root, e.g. `http://127.0.0.1:PORT/api`.
    pub fn url(&self) -> String {
        format!("http://{}/api", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn user(&self) -> &str {
        &self.shared.config.user
    }

    pub fn password(&self) -> &str {
        &self.shared.config.password
    }

    /// Creates (or resets) a ticket whose customer writes from `from`.
    pub fn add_ticket(&self, id: u64, from: &str) {
        lock(&self.shared.tickets).insert(id, Ticket::new(id, from));
    }

    /// The responses stored for `ticket`, in order of acceptance.
    pub fn posted(&self, ticket: u64) -> Vec<StoredResponse> {
        lock(&self.shared.tickets)
            .get(&ticket)
            .map(|t| t.responses.clone())
            .unwrap_or_default()
    }

    /// Every stored response, in order of acceptance.
    pub fn all_posted(&self) -> Vec<StoredResponse> {
        let mut all: Vec<StoredResponse> = lock(&self.shared.tickets)
            .values()
            .flat_map(|t| t.responses.iter().cloned())
            .collect();
        all.sort_by_key(|r| r.seq);
        all
    }

    /// How many responses were stored, over all tickets.
    pub fn total_posted(&self) -> usize {
        *self.shared.posted.borrow()
    }

    /// Waits until at least `count` responses are stored in total.
    pub async fn wait_posted(&self, count: usize, timeout: Duration) -> Result<()> {
        let mut rx = self.shared.posted.subscribe();
        match tokio::time::timeout(timeout, rx.wait_for(|n| *n >= count)).await {
            Ok(Ok(_)) => Ok(()),
            _ => anyhow::bail!(
                "{} responses stored after {timeout:?}, wanted {count}",
                self.total_posted()
            ),
        }
    }

    /// Every API request so far, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        let mut requests = lock(&self.shared.requests).clone();
        requests.sort_by_key(|r| r.seq);
        requests
    }

    /// Queues `count` faults for the next matching requests (POSTs, or GETs
    /// for [`Fault::GetFails`]).
    pub fn fail_next(&self, count: usize, fault: Fault) {
        lock(&self.shared.faults).push(None, count, fault);
    }

    /// Like [`fail_next`](Self::fail_next), for requests to one ticket only.
    pub fn fail_next_for(&self, ticket: u64, count: usize, fault: Fault) {
        lock(&self.shared.faults).push(Some(ticket), count, fault);
    }

    /// Injects `fault` into every `k`-th POST (0 turns the rule off).
    pub fn fail_every(&self, k: u64, fault: Fault) {
        lock(&self.shared.faults).set_every(k, fault);
    }

    /// Queued one-shot faults not yet used.
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.faults).pending()
    }

    /// Drops queued faults and the every-k-th rule.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Latency added to every API request from now on.
    pub fn set_latency(&self, latency: Duration) {
        self.shared
            .latency_ms
            .store(latency.as_millis() as u64, Ordering::Relaxed);
    }
}

impl Drop for FakeThulium {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Ticket {
    fn new(id: u64, from: &str) -> Ticket {
        Ticket {
            from: from.to_string(),
            customer_id: 100_000 + id,
            subject: format!("Ticket {id}"),
            created: format_minutes(now_ms()),
            responses: Vec::new(),
        }
    }

    fn to_json(&self, id: u64) -> Value {
        let mut messages = vec![json!({
            "id": 1,
            "type": "MAIL",
            "direction": "in",
            "kind": "customer",
            "from": self.from,
            "body": "<p>The customer's first message.</p>",
            "body_type": "HTML",
            "date": self.created,
        })];
        for (i, r) in self.responses.iter().enumerate() {
            messages.push(json!({
                "id": i + 2,
                "type": "MAIL",
                "direction": "in",
                "kind": "customer",
                "from": self.from,
                "body": r.body,
                "body_type": r.body_type,
                "date": r.date.clone().unwrap_or_else(|| format_minutes(r.at_unix_ms)),
            }));
        }
        json!({
            "ticket_id": id,
            "from": self.from,
            "customer_id": self.customer_id,
            "subject": self.subject,
            "status_id": "1",
            "queue_id": 1,
            "messages": messages,
        })
    }
}

impl Shared {
    fn auth_ok(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let Some(encoded) = value
            .strip_prefix("Basic ")
            .or_else(|| value.strip_prefix("basic "))
        else {
            return false;
        };
        let Ok(decoded) = BASE64.decode(encoded.trim()) else {
            return false;
        };
        let expected = format!("{}:{}", self.config.user, self.config.password);
        decoded == expected.as_bytes()
    }

    fn record(&self, mut request: RecordedRequest) {
        if !self.config.record_bodies {
            request.body = None;
        }
        lock(&self.requests).push(request);
    }

    /// Runs `f` on the ticket, creating it first under `auto_tickets`.
    fn with_ticket<T>(&self, id: u64, f: impl FnOnce(&mut Ticket) -> T) -> Option<T> {
        let mut tickets = lock(&self.tickets);
        if self.config.auto_tickets {
            let from = format!("customer{id}@example.com");
            return Some(f(tickets
                .entry(id)
                .or_insert_with(|| Ticket::new(id, &from))));
        }
        tickets.get_mut(&id).map(f)
    }

    /// The contract itself: 401, 404, 400/422, or store and 200 (empty body).
    fn handle_post(&self, auth_ok: bool, ticket: Option<u64>, body: &Bytes) -> Response {
        if !auth_ok {
            return unauthorized();
        }
        let Some(id) = ticket else {
            return error(StatusCode::NOT_FOUND, "Ticket not found");
        };
        let payload = match validate(body) {
            Ok(payload) => payload,
            Err((status, message)) => return error(status, &message),
        };
        let stored = self.with_ticket(id, |t| {
            let seq = self.stored_seq.fetch_add(1, Ordering::Relaxed);
            t.responses.push(StoredResponse {
                seq,
                ticket: id,
                body: payload.body,
                body_type: payload.body_type,
                date: payload.date,
                at_unix_ms: now_ms(),
            });
        });
        if stored.is_none() {
            return error(StatusCode::NOT_FOUND, "Ticket not found");
        }
        self.posted.send_modify(|n| *n += 1);
        StatusCode::OK.into_response()
    }
}

fn ticket_id(raw: &str) -> Option<u64> {
    raw.parse().ok()
}

async fn post_response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    conn: Option<axum::Extension<ConnHandle>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let seq = shared.seq.fetch_add(1, Ordering::Relaxed);
    let ticket = ticket_id(&id);
    let fault = lock(&shared.faults).take(true, ticket);
    delay(&shared, fault.as_ref()).await;
    let auth_ok = shared.auth_ok(&headers);
    let mut request = RecordedRequest {
        seq,
        method: "POST".into(),
        path: uri.path().to_string(),
        ticket,
        auth_ok,
        body: body_json(&body),
        at_unix_ms: now_ms(),
        status: None,
        fault: fault.clone(),
    };
    if let Some(early) = early_fault(fault.as_ref()) {
        request.status = early.as_ref().map(|r| r.status().as_u16());
        shared.record(request);
        return answer_or_reset(early, conn).await;
    }
    let response = shared.handle_post(auth_ok, ticket, &body);
    match fault {
        Some(Fault::AcceptThenDrop) => {
            shared.record(request);
            answer_or_reset(None, conn).await
        }
        Some(Fault::AcceptThenDelay(d)) => {
            request.status = Some(response.status().as_u16());
            shared.record(request);
            tokio::time::sleep(d).await;
            response
        }
        _ => {
            request.status = Some(response.status().as_u16());
            shared.record(request);
            response
        }
    }
}

async fn get_ticket(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let seq = shared.seq.fetch_add(1, Ordering::Relaxed);
    let ticket = ticket_id(&id);
    let fault = lock(&shared.faults).take(false, ticket);
    delay(&shared, fault.as_ref()).await;
    let auth_ok = shared.auth_ok(&headers);
    let mut request = RecordedRequest {
        seq,
        method: "GET".into(),
        path: uri.path().to_string(),
        ticket,
        auth_ok,
        body: None,
        at_unix_ms: now_ms(),
        status: None,
        fault: fault.clone(),
    };
    let response = match &fault {
        Some(Fault::GetFails(code)) => error(status(*code), "Injected fault"),
        _ if !auth_ok => unauthorized(),
        _ => match ticket.and_then(|id| shared.with_ticket(id, |t| t.to_json(id))) {
            Some(json) => axum::Json(json).into_response(),
            None => error(StatusCode::NOT_FOUND, "Ticket not found"),
        },
    };
    request.status = Some(response.status().as_u16());
    shared.record(request);
    response
}

/// Any other path: 401 without credentials, else 404, both as error JSON.
async fn fallback(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let auth_ok = shared.auth_ok(&headers);
    let response = if auth_ok {
        error(StatusCode::NOT_FOUND, "Not found")
    } else {
        unauthorized()
    };
    shared.record(RecordedRequest {
        seq: shared.seq.fetch_add(1, Ordering::Relaxed),
        method: method.to_string(),
        path: uri.path().to_string(),
        ticket: None,
        auth_ok,
        body: None,
        at_unix_ms: now_ms(),
        status: Some(response.status().as_u16()),
        fault: None,
    });
    response
}

/// For `testbed dump`: everything received, as JSON.
async fn list_requests(State(shared): State<Arc<Shared>>) -> Response {
    let mut requests = lock(&shared.requests).clone();
    requests.sort_by_key(|r| r.seq);
    axum::Json(requests).into_response()
}

/// Global latency plus a `Latency` fault.
async fn delay(shared: &Shared, fault: Option<&Fault>) {
    let mut total = Duration::from_millis(shared.latency_ms.load(Ordering::Relaxed));
    if let Some(Fault::Latency(d)) = fault {
        total += *d;
    }
    if !total.is_zero() {
        tokio::time::sleep(total).await;
    }
}

/// Faults that answer before the request is handled: `Some(Some(r))` answers
/// `r`, `Some(None)` resets the connection.
fn early_fault(fault: Option<&Fault>) -> Option<Option<Response>> {
    match fault? {
        Fault::Status(code) => Some(Some(error(status(*code), "Injected fault"))),
        Fault::TooManyRequests { retry_after_secs } => {
            let mut r = error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
            if let Ok(v) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Some(Some(r))
        }
        Fault::Reset => Some(None),
        _ => None,
    }
}

/// Answers `response`, or resets the connection and never answers.
async fn answer_or_reset(
    response: Option<Response>,
    conn: Option<axum::Extension<ConnHandle>>,
) -> Response {
    match (response, conn) {
        (Some(r), _) => r,
        (None, Some(axum::Extension(conn))) => {
            conn.reset();
            std::future::pending().await
        }
        // Not behind our accept loop (e.g. `oneshot` in a unit test).
        (None, None) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn body_json(body: &Bytes) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    Some(
        serde_json::from_slice(body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned())),
    )
}

/// A poisoned lock only means a test panicked elsewhere; keep serving.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
