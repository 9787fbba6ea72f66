//! `POST tickets` (<https://api.thulium.com/docs/api/tickets/post_tickets>): the
//! parameters validated as the page lists them (`to`, `subject`, `body` required),
//! every attachment token checked against `temporary_files` (known, not expired),
//! and the ticket opened with the body as its first MAIL from `from`. The page's
//! answer is `{ ticket_id: 1232 }` (key unquoted there; JSON here).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::temporary_files::TokenProblem;
use super::{
    FakeThulium, InFlight, Opening, Shared, Ticket, arrive, body_json, lock, now_ms,
    post_with_fault,
};
use crate::conn::ConnHandle;
use crate::contract::{Rejection, error, invalid, unauthorized};
use crate::faults::Endpoint;

/// A ticket `POST tickets` opened, with what the request said.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CreatedTicket {
    /// Order of creation.
    pub seq: u64,
    pub ticket: u64,
    pub to: String,
    /// Optional on the page; `None` when left out.
    pub from: Option<String>,
    pub subject: String,
    /// As sent (the MAIL in `GET tickets/{id}` shows it as [`crate::BodyStorage`] keeps it).
    pub body: String,
    /// As sent, else `PLAIN`: the default the page's table-layout copy gives.
    pub body_type: String,
    pub cc: Vec<String>,
    /// Tokens of `temporary_files`, in the order sent.
    pub attachments: Vec<String>,
    pub ticket_queue_id: Option<u64>,
    pub tags: Vec<String>,
    pub category_id: Option<u64>,
    pub status_id: Option<u64>,
    pub customer_id: Option<u64>,
    /// As sent, else `email`.
    pub source: String,
    /// The request's JSON object as received, every key, documented or not.
    pub request: Value,
    pub at_unix_ms: u64,
}

impl FakeThulium {
    /// Every ticket `POST tickets` opened, in order of creation.
    pub fn created_tickets(&self) -> Vec<CreatedTicket> {
        let mut all: Vec<CreatedTicket> = lock(&self.shared.tickets)
            .values()
            .filter_map(|t| match &t.opening {
                Opening::Created { ticket, .. } => Some((**ticket).clone()),
                Opening::Seeded => None,
            })
            .collect();
        all.sort_by_key(|t| t.seq);
        all
    }

    /// The ticket `POST tickets` opened as `ticket`, if it did.
    pub fn created_ticket(&self, ticket: u64) -> Option<CreatedTicket> {
        match &lock(&self.shared.tickets).get(&ticket)?.opening {
            Opening::Created { ticket, .. } => Some((**ticket).clone()),
            Opening::Seeded => None,
        }
    }

    /// How many tickets `POST tickets` opened.
    pub fn total_created(&self) -> usize {
        *self.shared.created.borrow()
    }

    /// Waits until at least `count` tickets were opened by `POST tickets`.
    pub async fn wait_created(&self, count: usize, timeout: Duration) -> anyhow::Result<()> {
        super::wait_count(&self.shared.created, count, timeout, "tickets created").await
    }
}

pub(super) async fn create_ticket(
    State(shared): State<Arc<Shared>>,
    conn: Option<axum::Extension<ConnHandle>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let _in_flight = InFlight::enter(&shared.in_flight);
    let (request, fault) = arrive(
        &shared,
        Endpoint::CreateTicket,
        None,
        &uri,
        &headers,
        body_json(&body),
    )
    .await;
    post_with_fault(&shared, request, fault, conn, |auth_ok| {
        if !auth_ok {
            return unauthorized();
        }
        match shared.create(&body) {
            Ok(id) => (StatusCode::OK, axum::Json(json!({"ticket_id": id}))).into_response(),
            Err((status, message)) => error(status, &message),
        }
    })
    .await
}

impl Shared {
    /// Validates, checks the tokens, opens the ticket; its id.
    fn create(&self, raw: &Bytes) -> Result<u64, Rejection> {
        let mut ticket = validate(raw)?;
        if !self
            .config
            .mailboxes
            .iter()
            .any(|m| m.eq_ignore_ascii_case(ticket.to.trim()))
        {
            return Err(invalid("The selected to is invalid."));
        }
        {
            let lifetime = self.token_lifetime_ms.load(Ordering::Relaxed);
            let uploads = lock(&self.uploads);
            for (i, token) in ticket.attachments.iter().enumerate() {
                match uploads.check(token, lifetime) {
                    Ok(()) => {}
                    Err(TokenProblem::Unknown) => {
                        return Err(invalid(&format!(
                            "The attachments.{i} token {token} does not name a temporary file."
                        )));
                    }
                    Err(TokenProblem::Expired) => {
                        return Err(invalid(&format!(
                            "The attachments.{i} token {token} has expired."
                        )));
                    }
                }
            }
        }
        let from = ticket.from.clone().unwrap_or_default();
        let customer_id = match ticket.customer_id {
            Some(id) => id,
            None => {
                let mut customers = lock(&self.customers);
                let next = 200_000 + customers.len() as u64;
                *customers.entry(from.to_ascii_lowercase()).or_insert(next)
            }
        };
        let stored_body = self
            .body_storage()
            .store(&ticket.body, &ticket.body_type)
            .into_owned();
        let mut tickets = lock(&self.tickets);
        let id = loop {
            let id = self.next_ticket_id.fetch_add(1, Ordering::Relaxed);
            if !tickets.contains_key(&id) {
                break id;
            }
        };
        ticket.ticket = id;
        ticket.seq = *self.created.borrow() as u64;
        ticket.at_unix_ms = now_ms();
        tickets.insert(
            id,
            Ticket {
                from,
                customer_id,
                subject: ticket.subject.clone(),
                first_message_id: self.message_ids.fetch_add(1, Ordering::Relaxed),
                opened_ms: ticket.at_unix_ms,
                opening: Opening::Created {
                    ticket: Box::new(ticket),
                    stored_body,
                },
                responses: Vec::new(),
            },
        );
        self.created.send_modify(|n| *n += 1);
        Ok(id)
    }
}

/// The page's parameters, Laravel-style: 400 for JSON that does not parse, 422 for a
/// missing or malformed field. Ids may come as numbers or numeric strings.
fn validate(raw: &Bytes) -> Result<CreatedTicket, Rejection> {
    let value: Value = serde_json::from_slice(raw)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("Malformed JSON: {e}")))?;
    let Value::Object(map) = &value else {
        return Err(invalid("The request body must be a JSON object."));
    };
    let to = required_text(map, "to")?;
    if !looks_like_address(&to) {
        return Err(invalid("The to must be a valid email address."));
    }
    let from = optional_text(map, "from")?;
    if from.as_deref().is_some_and(|f| !looks_like_address(f)) {
        return Err(invalid("The from must be a valid email address."));
    }
    let cc = texts(map, "cc")?;
    if let Some(bad) = cc.iter().find(|c| !looks_like_address(c)) {
        return Err(invalid(&format!("The cc address {bad} is not valid.")));
    }
    let body_type = optional_text(map, "body_type")?.unwrap_or_else(|| "PLAIN".into());
    if body_type != "HTML" && body_type != "PLAIN" {
        return Err(invalid("The selected body type is invalid."));
    }
    let source = optional_text(map, "source")?.unwrap_or_else(|| "email".into());
    if !["email", "phone", "sms", "chat", "www"].contains(&source.as_str()) {
        return Err(invalid("The selected source is invalid."));
    }
    if let Some(d) = optional_text(map, "direction")?
        && d != "in_behalf_of"
        && d != "out"
    {
        return Err(invalid("The selected direction is invalid."));
    }
    for key in ["user_login", "comment"] {
        optional_text(map, key)?;
    }
    if let Some(substatus) = map.get("substatus_id") {
        id(substatus, "substatus_id")?;
    }
    if map
        .get("custom_fields")
        .is_some_and(|v| !v.is_object() && !v.is_null())
    {
        return Err(invalid("The custom fields must be an object."));
    }
    Ok(CreatedTicket {
        seq: 0,
        ticket: 0,
        to,
        from,
        subject: required_text(map, "subject")?,
        body: required_text(map, "body")?,
        body_type,
        cc,
        attachments: texts(map, "attachments")?,
        ticket_queue_id: optional_id(map, "ticket_queue_id")?,
        tags: texts(map, "tags")?,
        category_id: optional_id(map, "category_id")?,
        status_id: optional_id(map, "status_id")?,
        customer_id: optional_id(map, "customer_id")?,
        source,
        request: value.clone(),
        at_unix_ms: 0,
    })
}

fn required_text(map: &Map<String, Value>, key: &str) -> Result<String, Rejection> {
    match map.get(key) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            Err(invalid(&format!("The {key} field is required.")))
        }
        Some(_) => Err(invalid(&format!("The {key} must be a string."))),
    }
}

fn optional_text(map: &Map<String, Value>, key: &str) -> Result<Option<String>, Rejection> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(invalid(&format!("The {key} must be a string."))),
    }
}

/// An array of strings ("Tablica …"), empty when left out.
fn texts(map: &Map<String, Value>, key: &str) -> Result<Vec<String>, Rejection> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                _ => Err(invalid(&format!("The {key} must be an array of strings."))),
            })
            .collect(),
        Some(_) => Err(invalid(&format!("The {key} must be an array."))),
    }
}

fn optional_id(map: &Map<String, Value>, key: &str) -> Result<Option<u64>, Rejection> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => id(v, key).map(Some),
    }
}

fn id(v: &Value, key: &str) -> Result<u64, Rejection> {
    let parsed = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| invalid(&format!("The {key} must be an integer.")))
}

/// `local@domain`, one `@`, no spaces or angle brackets: the address alone.
fn looks_like_address(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.contains('@')
        && !s.contains(|c: char| c.is_whitespace() || c == '<' || c == '>')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(v: Value) -> Result<CreatedTicket, String> {
        validate(&Bytes::from(v.to_string())).map_err(|(_, m)| m)
    }

    #[test]
    fn the_pages_example_request_is_valid() {
        let t = check(json!({"to":"mailbox@foo.bar","subject":"ticket subject","from":"john.doe@foo.bar",
            "body":"email content","comment":"ticket comment","attachments":["61527075253ba62a76ca5c"],
            "cc":["cc_mail1@foo.bar","cc_mail2@foo.bar"]}))
        .expect("valid");
        assert_eq!(t.to, "mailbox@foo.bar");
        assert_eq!(t.from.as_deref(), Some("john.doe@foo.bar"));
        assert_eq!(t.cc.len(), 2);
        assert_eq!(t.attachments, ["61527075253ba62a76ca5c"]);
        assert_eq!(
            (t.body_type.as_str(), t.source.as_str()),
            ("PLAIN", "email")
        );
    }

    #[test]
    fn required_and_malformed_fields_are_refused() {
        let ok = json!({"to": "help@acme.example", "subject": "S", "body": "B"});
        assert!(check(ok.clone()).is_ok());
        for key in ["to", "subject", "body"] {
            let mut v = ok.clone();
            v.as_object_mut().map(|m| m.remove(key));
            assert_eq!(
                check(v).err().as_deref(),
                Some(format!("The {key} field is required.").as_str())
            );
        }
        let with = |k: &str, x: Value| {
            let mut v = ok.clone();
            v[k] = x;
            check(v).err()
        };
        assert!(with("from", json!("Anna <anna@x.example>")).is_some());
        assert!(with("cc", json!("a@x.example")).is_some());
        assert!(with("attachments", json!([1])).is_some());
        assert!(with("body_type", json!("MARKDOWN")).is_some());
        assert!(with("ticket_queue_id", json!("two")).is_some());
        assert_eq!(with("ticket_queue_id", json!("2")), None);
        assert!(with("custom_fields", json!([1])).is_some());
    }
}
