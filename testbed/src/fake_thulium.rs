//! A fake Thulium helpdesk API that follows the documented contract
//! (SPEC.md, "The Thulium API"; `fixtures/`), records everything and injects
//! faults. What the documentation leaves open is switchable ([`CreatedAt`],
//! [`BodyStorage`]) so clients can be tested under every reading.
//!
//! Faults that drop the connection go through `conn.rs` (our accept loop).
//! New tickets, their attachments and the ticket list live in the child modules.

mod new_tickets;
mod temporary_files;
mod ticket_list;

pub use new_tickets::CreatedTicket;
pub use temporary_files::{TOKEN_LIFETIME, UploadedFile};

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::conn::{ConnHandle, accept_loop};
use crate::contract::{
    AccountTimezone, BodyStorage, CreatedAt, error, status, unauthorized, validate,
};
use crate::faults::{Endpoint, Fault, FaultPlan, Scope};
use temporary_files::Uploads;

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
    /// What a stored response's `created_at` is (run time: [`FakeThulium::set_created_at`]).
    pub created_at: CreatedAt,
    /// How a posted body is stored (run time: [`FakeThulium::set_body_storage`]).
    pub body_storage: BodyStorage,
    /// The account's zone: a `date` sent is read in it.
    pub account_timezone: AccountTimezone,
    /// The zone of the API's own clock, in which it writes every date; the account's
    /// when `None`. Undocumented (SPEC shows `"created_at": "2014-07-08 08:05"`, no zone).
    pub clock_zone: Option<AccountTimezone>,
    /// The helpdesk's mailboxes: `POST tickets` takes only these as `to` (SPEC: "the
    /// address of a mailbox defined in the helpdesk").
    pub mailboxes: Vec<String>,
}

/// Picks [`CreatedAt`] (`date_sent|storage_time`), so a whole test suite can
/// be re-run under another reading of the documentation.
pub const CREATED_AT_ENV: &str = "TESTBED_CREATED_AT";
/// Picks [`BodyStorage`] (`as_sent|rendered_html`), likewise.
pub const BODY_STORAGE_ENV: &str = "TESTBED_BODY_STORAGE";
/// Picks [`FakeThuliumConfig::clock_zone`] (`UTC`, `America/New_York`, `+05:30`), likewise.
pub const CLOCK_ZONE_ENV: &str = "TESTBED_CLOCK_ZONE";

impl Default for FakeThuliumConfig {
    /// [`FakeThuliumConfig::from_env`].
    ///
    /// # Panics
    /// When `TESTBED_CREATED_AT` or `TESTBED_BODY_STORAGE` holds an unknown
    /// value: a suite silently run under the default would prove nothing.
    fn default() -> Self {
        match FakeThuliumConfig::from_env() {
            Ok(config) => config,
            Err(e) => panic!("{e:#}"),
        }
    }
}

impl FakeThuliumConfig {
    /// Defaults (`DateSent`, `AsSent`, Europe/Warsaw), with `created_at`,
    /// `body_storage` and `clock_zone` taken from `TESTBED_CREATED_AT=date_sent|storage_time`,
    /// `TESTBED_BODY_STORAGE=as_sent|rendered_html` and `TESTBED_CLOCK_ZONE` when set.
    pub fn from_env() -> Result<Self> {
        Ok(FakeThuliumConfig {
            user: "api_user".into(),
            password: "api_password".into(),
            auto_tickets: false,
            latency: Duration::ZERO,
            record_bodies: true,
            port: 0,
            created_at: from_env(CREATED_AT_ENV)?.unwrap_or_default(),
            body_storage: from_env(BODY_STORAGE_ENV)?.unwrap_or_default(),
            account_timezone: AccountTimezone::default(),
            clock_zone: from_env(CLOCK_ZONE_ENV)?,
            mailboxes: vec!["help@acme.example".into()],
        })
    }
}

fn from_env<T: std::str::FromStr<Err = String>>(name: &str) -> Result<Option<T>> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .parse()
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{name}: {e}")),
        Ok(_) | Err(std::env::VarError::NotPresent) => Ok(None),
        Err(e) => anyhow::bail!("{name}: {e}"),
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
    /// empty or not recorded, and always for `temporary_files`, whose bytes
    /// are in [`FakeThulium::uploads`]).
    pub body: Option<Value>,
    /// The query string as sent, if any (`GET tickets` filters, `filename=`).
    pub query: Option<String>,
    pub at_unix_ms: u64,
    /// The status answered; `None` when the connection was dropped instead.
    pub status: Option<u16>,
    /// The fault injected into this request, if any.
    pub fault: Option<Fault>,
    /// Who sent it (User-Agent): two bridges on one shared ledger name their instance.
    pub user_agent: Option<String>,
}

struct Ticket {
    from: String,
    customer_id: u64,
    subject: String,
    /// `message_id` of the opening MAIL; a seeded ticket's REPLY and COMMENT follow it.
    first_message_id: u64,
    /// When the opening MAIL came in.
    opened_ms: u64,
    /// How the ticket began.
    opening: Opening,
    responses: Vec<Posted>,
}

/// How a ticket began, which decides its opening messages and its status.
enum Opening {
    /// [`FakeThulium::add_ticket`]: the customer's first mail, an agent's REPLY
    /// asking a question, and a COMMENT; waiting for the customer.
    Seeded,
    /// `POST tickets`: the customer's mail as the request gave it, nothing else yet.
    Created {
        ticket: Box<CreatedTicket>,
        /// The body as the helpdesk keeps it ([`BodyStorage`]).
        stored_body: String,
    },
}

/// A stored response and how the helpdesk keeps it.
struct Posted {
    response: StoredResponse,
    message_id: u64,
    /// `created_at` is the `date` sent (under `DateSent`, when one was sent).
    created_is_sent_date: bool,
    /// The body as stored, when not as sent.
    rendered: Option<String>,
}

/// The opening REPLY and COMMENT come this long after the customer's mail.
const REPLY_AFTER_MS: u64 = 12 * 60_000;
const COMMENT_AFTER_MS: u64 = 13 * 60_000;
/// Opening messages are this old when the ticket is made, so they precede posts.
const OPENED_AGO_MS: u64 = 60 * 60_000;
const AGENT: &str = "anowak";
/// The queue of seeded tickets, and of created ones that name none.
const DEFAULT_QUEUE: u64 = 1;
const DEFAULT_QUEUE_NAME: &str = "helpdesk@example.com";
/// The largest request body accepted (an upload); axum's default is 2 MB.
const BODY_LIMIT: usize = 64 << 20;

struct Shared {
    config: FakeThuliumConfig,
    created_at: AtomicU8,
    body_storage: AtomicU8,
    /// Next `message_id`, unique across tickets as in the helpdesk.
    message_ids: AtomicU64,
    tickets: Mutex<HashMap<u64, Ticket>>,
    requests: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<FaultPlan>,
    latency_ms: AtomicU64,
    /// Numbers requests in order of arrival.
    seq: AtomicU64,
    /// Numbers stored responses in order of acceptance.
    stored_seq: AtomicU64,
    posted: watch::Sender<usize>,
    /// Files stored by `temporary_files`, by token.
    uploads: Mutex<Uploads>,
    /// How long a token stays valid (the documentation says 24 hours).
    token_lifetime_ms: AtomicU64,
    /// The next id `POST tickets` tries (the documentation's example answers 1232).
    next_ticket_id: AtomicU64,
    /// Customer ids by address, for created tickets: one customer per address.
    customers: Mutex<HashMap<String, u64>>,
    /// Tickets created by `POST tickets` so far.
    created: watch::Sender<usize>,
    /// Ticket requests being handled right now, and the most there ever were
    /// at once (for `thulium.concurrency`): all of them, and the POSTs alone.
    in_flight: Gauge,
    posts_in_flight: Gauge,
}

/// A count of requests in flight and its high-water mark.
#[derive(Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

/// Counts one request as in flight from its arrival until its answer is
/// handed back (or the connection is dropped).
struct InFlight<'a>(&'a Gauge);

impl<'a> InFlight<'a> {
    fn enter(gauge: &'a Gauge) -> InFlight<'a> {
        let now = gauge.now.fetch_add(1, Ordering::SeqCst) + 1;
        gauge.max.fetch_max(now, Ordering::SeqCst);
        InFlight(gauge)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The fake API, serving until dropped.
pub struct FakeThulium {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

impl FakeThulium {
    /// Starts with default settings (user `api_user`, password `api_password`,
    /// `TESTBED_*` switches from the environment).
    pub async fn start() -> Result<FakeThulium> {
        FakeThulium::start_with(FakeThuliumConfig::from_env()?).await
    }

    /// Starts on 127.0.0.1 in the current tokio runtime.
    pub async fn start_with(config: FakeThuliumConfig) -> Result<FakeThulium> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, config.port))
            .await
            .context("bind the fake Thulium API")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            latency_ms: AtomicU64::new(config.latency.as_millis() as u64),
            created_at: AtomicU8::new(config.created_at as u8),
            body_storage: AtomicU8::new(config.body_storage as u8),
            message_ids: AtomicU64::new(1000),
            config,
            tickets: Mutex::default(),
            requests: Mutex::default(),
            faults: Mutex::default(),
            seq: AtomicU64::new(0),
            stored_seq: AtomicU64::new(0),
            posted: watch::Sender::new(0),
            uploads: Mutex::default(),
            token_lifetime_ms: AtomicU64::new(TOKEN_LIFETIME.as_millis() as u64),
            next_ticket_id: AtomicU64::new(1232),
            customers: Mutex::default(),
            created: watch::Sender::new(0),
            in_flight: Gauge::default(),
            posts_in_flight: Gauge::default(),
        });
        let router = Router::new()
            .route("/api/tickets/{id}/customer_response", post(post_response))
            .route("/api/tickets/{id}", get(get_ticket))
            .route(
                "/api/tickets",
                post(new_tickets::create_ticket).get(ticket_list::list_tickets),
            )
            .route("/api/temporary_files", post(temporary_files::upload))
            .route("/_testbed/requests", get(list_requests))
            .fallback(fallback)
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
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
        let ticket = self.shared.new_ticket(id, from);
        lock(&self.shared.tickets).insert(id, ticket);
    }

    /// The responses stored for `ticket`, in order of acceptance.
    pub fn posted(&self, ticket: u64) -> Vec<StoredResponse> {
        lock(&self.shared.tickets)
            .get(&ticket)
            .map(|t| t.responses.iter().map(|p| p.response.clone()).collect())
            .unwrap_or_default()
    }

    /// Every stored response, in order of acceptance.
    pub fn all_posted(&self) -> Vec<StoredResponse> {
        let mut all: Vec<StoredResponse> = lock(&self.shared.tickets)
            .values()
            .flat_map(|t| t.responses.iter().map(|p| p.response.clone()))
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
        wait_count(&self.shared.posted, count, timeout, "responses stored").await
    }

    /// Ticket requests (POST `customer_response`, GET `tickets/{id}`) being
    /// handled right now: arrived, not yet answered (latency included).
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.now.load(Ordering::SeqCst)
    }

    /// The most ticket requests that were ever in flight at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.in_flight.max.load(Ordering::SeqCst)
    }

    /// POSTs of customer responses being handled right now.
    pub fn posts_in_flight(&self) -> usize {
        self.shared.posts_in_flight.now.load(Ordering::SeqCst)
    }

    /// The most POSTs of customer responses that were ever in flight at once.
    pub fn max_posts_in_flight(&self) -> usize {
        self.shared.posts_in_flight.max.load(Ordering::SeqCst)
    }

    /// Every API request so far, in order of arrival.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        let mut requests = lock(&self.shared.requests).clone();
        requests.sort_by_key(|r| r.seq);
        requests
    }

    /// Queues `count` faults for the next matching requests (POSTs, or GETs
    /// for [`Fault::GetFails`]), whatever the endpoint.
    pub fn fail_next(&self, count: usize, fault: Fault) {
        lock(&self.shared.faults).push(Scope::Any, count, fault);
    }

    /// Like [`fail_next`](Self::fail_next), for requests to one ticket only.
    pub fn fail_next_for(&self, ticket: u64, count: usize, fault: Fault) {
        lock(&self.shared.faults).push(Scope::Ticket(ticket), count, fault);
    }

    /// Like [`fail_next`](Self::fail_next), for requests to one endpoint only
    /// (e.g. the `POST tickets` after the uploads).
    pub fn fail_next_on(&self, endpoint: Endpoint, count: usize, fault: Fault) {
        lock(&self.shared.faults).push(Scope::Endpoint(endpoint), count, fault);
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

    /// `created_at` of responses stored from now on.
    pub fn set_created_at(&self, created_at: CreatedAt) {
        self.shared
            .created_at
            .store(created_at as u8, Ordering::Relaxed);
    }

    pub fn created_at(&self) -> CreatedAt {
        self.shared.created_at()
    }

    /// How responses stored from now on keep their body.
    pub fn set_body_storage(&self, body_storage: BodyStorage) {
        self.shared
            .body_storage
            .store(body_storage as u8, Ordering::Relaxed);
    }

    pub fn body_storage(&self) -> BodyStorage {
        self.shared.body_storage()
    }

    pub fn account_timezone(&self) -> AccountTimezone {
        self.shared.config.account_timezone
    }

    /// The zone every date the API writes is in.
    pub fn clock_zone(&self) -> AccountTimezone {
        self.shared.config.clock()
    }
}

impl FakeThuliumConfig {
    /// These settings under `reading`.
    pub fn under(self, reading: crate::Reading) -> FakeThuliumConfig {
        FakeThuliumConfig {
            created_at: reading.created_at,
            body_storage: reading.body_storage,
            clock_zone: reading.clock_zone,
            ..self
        }
    }

    /// The zone of the API's clock.
    pub fn clock(&self) -> AccountTimezone {
        self.clock_zone.unwrap_or(self.account_timezone)
    }
}

impl Drop for FakeThulium {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Ticket {
    /// The documented `GET tickets/{id}` answer (see `fixtures/get_ticket.json`);
    /// without `messages` for the list ([`ticket_list`]).
    fn view<'a>(
        &'a self,
        id: u64,
        config: &FakeThuliumConfig,
        with_messages: bool,
    ) -> TicketView<'a> {
        let opened = self.opened_ms;
        let tz = &config.clock();
        let messages = with_messages.then(|| self.messages(config));
        let created_at = tz.format_minutes(opened);
        let updated_at = tz.format_minutes(self.updated_ms());
        match &self.opening {
            Opening::Seeded => TicketView {
                ticket_id: id,
                from: &self.from,
                ticket_queue_name: DEFAULT_QUEUE_NAME,
                ticket_queue_id: DEFAULT_QUEUE,
                subject: &self.subject,
                status_id: "2".into(),
                substatus_id: "3",
                customer_id: self.customer_id,
                full_status_name: "Otwarte - Oczekuje na klienta",
                category_id: "1".into(),
                user_login: AGENT,
                created_at,
                updated_at,
                // Not closed; the documentation writes absent text as "".
                closed_at: "",
                close_time: "",
                first_agent_responded_at: tz.format_minutes(opened + REPLY_AFTER_MS),
                first_agent_response_time: "00:12:00",
                messages,
            },
            Opening::Created { ticket, .. } => TicketView {
                ticket_id: id,
                from: &self.from,
                ticket_queue_name: &ticket.to,
                ticket_queue_id: self.queue_id(),
                subject: &self.subject,
                status_id: ticket
                    .status_id
                    .map_or("1".into(), |s| s.to_string().into()),
                substatus_id: "",
                customer_id: self.customer_id,
                full_status_name: "Nowe",
                category_id: ticket
                    .category_id
                    .map_or("".into(), |c| c.to_string().into()),
                user_login: "",
                created_at,
                updated_at,
                closed_at: "",
                close_time: "",
                // No agent has answered yet.
                first_agent_responded_at: String::new(),
                first_agent_response_time: "",
                messages,
            },
        }
    }

    /// The opening messages, then the customer responses posted since.
    fn messages<'a>(&'a self, config: &FakeThuliumConfig) -> Vec<MessageView<'a>> {
        let tz = &config.clock();
        let opened = self.opened_ms;
        let mut messages = Vec::with_capacity(3 + self.responses.len());
        match &self.opening {
            Opening::Seeded => {
                messages.push(MessageView {
                    message_id: self.first_message_id,
                    user_login: "",
                    kind: "MAIL",
                    body: Cow::Borrowed(FIRST_MAIL),
                    comment: "",
                    system_comment: "",
                    created_at: Cow::Owned(tz.format_minutes(opened)),
                    attachments: &[],
                });
                messages.push(MessageView {
                    message_id: self.first_message_id + 1,
                    user_login: AGENT,
                    kind: "REPLY",
                    body: Cow::Borrowed(AGENT_REPLY),
                    comment: "",
                    system_comment: "Changed status from [Nowe] to [Oczekuje na klienta]",
                    created_at: Cow::Owned(tz.format_minutes(opened + REPLY_AFTER_MS)),
                    attachments: &[],
                });
                messages.push(MessageView {
                    message_id: self.first_message_id + 2,
                    user_login: AGENT,
                    kind: "COMMENT",
                    body: Cow::Borrowed(""),
                    comment: "Asked for the order number; waiting for the customer.",
                    system_comment: "",
                    created_at: Cow::Owned(tz.format_minutes(opened + COMMENT_AFTER_MS)),
                    attachments: &[],
                });
            }
            // A message's attachments are tokens (strings), as in the page's message 435.
            Opening::Created {
                ticket,
                stored_body,
            } => messages.push(MessageView {
                message_id: self.first_message_id,
                user_login: "",
                kind: "MAIL",
                body: Cow::Borrowed(stored_body),
                comment: "",
                system_comment: "",
                created_at: Cow::Owned(tz.format_minutes(opened)),
                attachments: &ticket.attachments,
            }),
        }
        for p in &self.responses {
            let r = &p.response;
            // The date sent is read in the account's zone and written in the clock's.
            let created_at = match (&r.date, p.created_is_sent_date) {
                (Some(date), true) if config.clock_zone.is_none() => Cow::Borrowed(date.as_str()),
                (Some(date), true) => match config.account_timezone.parse_minutes(date) {
                    Some(ms) => Cow::Owned(tz.format_minutes(ms)),
                    None => Cow::Borrowed(date.as_str()),
                },
                _ => Cow::Owned(tz.format_minutes(r.at_unix_ms)),
            };
            // A customer response is the customer's message: SPEC's "`MAIL` (from the
            // customer)"; how the helpdesk files it is not documented further.
            messages.push(MessageView {
                message_id: p.message_id,
                user_login: "",
                kind: "MAIL",
                body: Cow::Borrowed(p.rendered.as_deref().unwrap_or(&r.body)),
                comment: "",
                system_comment: "",
                created_at,
                attachments: &[],
            });
        }
        messages
    }

    /// When the ticket last changed: its last message.
    fn updated_ms(&self) -> u64 {
        match (self.responses.last(), &self.opening) {
            (Some(p), _) => p.response.at_unix_ms,
            (None, Opening::Seeded) => self.opened_ms + COMMENT_AFTER_MS,
            (None, Opening::Created { .. }) => self.opened_ms,
        }
    }

    fn queue_id(&self) -> u64 {
        match &self.opening {
            Opening::Created { ticket, .. } => ticket.ticket_queue_id.unwrap_or(DEFAULT_QUEUE),
            Opening::Seeded => DEFAULT_QUEUE,
        }
    }
}

const FIRST_MAIL: &str = "<p>Hello,</p><p>my order has not arrived yet. Could you check \
    where it is?</p><p>Regards</p>";
const AGENT_REPLY: &str = "<p>Hello,</p><p>thank you for your message. Could you send us \
    your order number, so we can check the shipment?</p><p>Best regards,<br>Anna Nowak<br>\
    Customer Support</p><blockquote><p>Hello,</p><p>my order has not arrived yet. Could you \
    check where it is?</p></blockquote>";

/// `GET tickets/{id}`, fields in the documented order.
#[derive(Serialize)]
struct TicketView<'a> {
    ticket_id: u64,
    from: &'a str,
    ticket_queue_name: &'a str,
    ticket_queue_id: u64,
    subject: &'a str,
    status_id: Cow<'a, str>,
    substatus_id: &'static str,
    customer_id: u64,
    full_status_name: &'static str,
    category_id: Cow<'a, str>,
    user_login: &'static str,
    created_at: String,
    updated_at: String,
    closed_at: &'static str,
    close_time: &'static str,
    first_agent_responded_at: String,
    first_agent_response_time: &'static str,
    /// Left out of `GET tickets` list entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    messages: Option<Vec<MessageView<'a>>>,
}

#[derive(Serialize)]
struct MessageView<'a> {
    message_id: u64,
    user_login: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    body: Cow<'a, str>,
    comment: &'static str,
    system_comment: &'static str,
    created_at: Cow<'a, str>,
    attachments: &'a [String],
}

impl Shared {
    fn created_at(&self) -> CreatedAt {
        match self.created_at.load(Ordering::Relaxed) {
            x if x == CreatedAt::StorageTime as u8 => CreatedAt::StorageTime,
            _ => CreatedAt::DateSent,
        }
    }

    fn body_storage(&self) -> BodyStorage {
        match self.body_storage.load(Ordering::Relaxed) {
            x if x == BodyStorage::RenderedHtml as u8 => BodyStorage::RenderedHtml,
            _ => BodyStorage::AsSent,
        }
    }

    fn new_ticket(&self, id: u64, from: &str) -> Ticket {
        Ticket {
            from: from.to_string(),
            customer_id: 100_000 + id,
            subject: format!("Ticket {id}"),
            first_message_id: self.message_ids.fetch_add(3, Ordering::Relaxed),
            opened_ms: now_ms().saturating_sub(OPENED_AGO_MS),
            opening: Opening::Seeded,
            responses: Vec::new(),
        }
    }

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
                .or_insert_with(|| self.new_ticket(id, &from))));
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
        // Rendered before taking the lock: the benchmark posts in parallel.
        let rendered = match self.body_storage() {
            BodyStorage::AsSent => None,
            storage => Some(
                storage
                    .store(&payload.body, &payload.body_type)
                    .into_owned(),
            ),
        };
        let created_is_sent_date = self.created_at() == CreatedAt::DateSent;
        let stored = self.with_ticket(id, |t| {
            let seq = self.stored_seq.fetch_add(1, Ordering::Relaxed);
            t.responses.push(Posted {
                response: StoredResponse {
                    seq,
                    ticket: id,
                    body: payload.body,
                    body_type: payload.body_type,
                    date: payload.date,
                    at_unix_ms: now_ms(),
                },
                message_id: self.message_ids.fetch_add(1, Ordering::Relaxed),
                created_is_sent_date,
                rendered,
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

fn user_agent(headers: &HeaderMap) -> Option<String> {
    headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A request's arrival: numbered, its fault picked (and its latency served), its
/// credentials checked; recorded later with what was answered.
async fn arrive(
    shared: &Shared,
    endpoint: Endpoint,
    ticket: Option<u64>,
    uri: &Uri,
    headers: &HeaderMap,
    body: Option<Value>,
) -> (RecordedRequest, Option<Fault>) {
    let seq = shared.seq.fetch_add(1, Ordering::Relaxed);
    let fault = lock(&shared.faults).take(endpoint, ticket);
    delay(shared, fault.as_ref()).await;
    let method = if endpoint.is_post() { "POST" } else { "GET" };
    let request = RecordedRequest {
        seq,
        method: method.into(),
        path: uri.path().to_string(),
        ticket,
        auth_ok: shared.auth_ok(headers),
        body,
        query: uri.query().map(str::to_string),
        at_unix_ms: now_ms(),
        status: None,
        fault: fault.clone(),
        user_agent: user_agent(headers),
    };
    (request, fault)
}

/// A POST under its fault: early faults answer (or reset) without `handle` running;
/// `AcceptThenDrop` runs it and resets, so the client cannot know it went through;
/// `AcceptThenDelay` runs it and answers late; `AcceptThenStatus` runs it and answers an
/// error.
async fn post_with_fault(
    shared: &Shared,
    mut request: RecordedRequest,
    fault: Option<Fault>,
    conn: Option<axum::Extension<ConnHandle>>,
    handle: impl FnOnce(bool) -> Response,
) -> Response {
    if let Some(early) = early_fault(fault.as_ref()) {
        request.status = early.as_ref().map(|r| r.status().as_u16());
        shared.record(request);
        return answer_or_reset(early, conn).await;
    }
    let response = handle(request.auth_ok);
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
        Some(Fault::AcceptThenStatus(code)) => {
            request.status = Some(code);
            shared.record(request);
            crate::contract::error(crate::contract::status(code), "Injected fault")
        }
        _ => {
            request.status = Some(response.status().as_u16());
            shared.record(request);
            response
        }
    }
}

async fn post_response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    conn: Option<axum::Extension<ConnHandle>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _in_flight = (
        InFlight::enter(&shared.in_flight),
        InFlight::enter(&shared.posts_in_flight),
    );
    let ticket = ticket_id(&id);
    let (request, fault) = arrive(
        &shared,
        Endpoint::CustomerResponse,
        ticket,
        &uri,
        &headers,
        body_json(&body),
    )
    .await;
    post_with_fault(&shared, request, fault, conn, |auth_ok| {
        shared.handle_post(auth_ok, ticket, &body)
    })
    .await
}

async fn get_ticket(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let _in_flight = InFlight::enter(&shared.in_flight);
    let ticket = ticket_id(&id);
    let (mut request, fault) =
        arrive(&shared, Endpoint::GetTicket, ticket, &uri, &headers, None).await;
    let response = match &fault {
        Some(Fault::GetFails(code)) => error(status(*code), "Injected fault"),
        _ if !request.auth_ok => unauthorized(),
        _ => {
            let json = ticket.and_then(|id| {
                shared.with_ticket(id, |t| {
                    serde_json::to_vec(&t.view(id, &shared.config, true))
                })
            });
            match json {
                Some(Ok(bytes)) => json_response(StatusCode::OK, bytes),
                Some(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
                None => error(StatusCode::NOT_FOUND, "Ticket not found"),
            }
        }
    };
    request.status = Some(response.status().as_u16());
    shared.record(request);
    response
}

/// A JSON answer from bytes already serialized.
fn json_response(status: StatusCode, bytes: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
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
        user_agent: user_agent(&headers),
        seq: shared.seq.fetch_add(1, Ordering::Relaxed),
        method: method.to_string(),
        path: uri.path().to_string(),
        ticket: None,
        auth_ok,
        body: None,
        query: uri.query().map(str::to_string),
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
        Fault::Reject {
            status: code,
            message,
        } => Some(Some(error(status(*code), message))),
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
/// Waits until the counter reaches `count`; the error says how far it got.
async fn wait_count(
    counter: &watch::Sender<usize>,
    count: usize,
    timeout: Duration,
    what: &str,
) -> Result<()> {
    let mut rx = counter.subscribe();
    match tokio::time::timeout(timeout, rx.wait_for(|n| *n >= count)).await {
        Ok(Ok(_)) => Ok(()),
        _ => anyhow::bail!(
            "{} {what} after {timeout:?}, wanted {count}",
            *counter.borrow()
        ),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
