//! `POST tickets` (https://api.thulium.com/docs/api/tickets/post_tickets) and the
//! reading of `GET tickets`, whose answer's shape the documentation does not show.

use super::Ticket;
use crate::mail::body::BodyType;
use crate::mail::decide::NewTicket;
use serde::Serialize;
use serde_json::Value;

/// The JSON body of `POST tickets`. `body_type` is always sent: its documented default
/// there is PLAIN, unlike `customer_response`'s HTML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewTicketRequest {
    /// The helpdesk mailbox's address (required; it picks the queue when none is given).
    pub to: String,
    /// The customer's address.
    pub from: String,
    pub subject: String,
    pub body: String,
    pub body_type: BodyType,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cc: Vec<String>,
    /// Tokens of `POST temporary_files`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ticket_queue_id: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_id: Option<u64>,
}

impl From<NewTicket> for NewTicketRequest {
    /// Without attachments yet: their tokens come from the uploads just before the POST.
    fn from(t: NewTicket) -> NewTicketRequest {
        NewTicketRequest {
            to: t.to,
            from: t.from,
            subject: t.subject,
            body: t.body,
            body_type: t.body_type,
            cc: t.cc,
            attachments: Vec::new(),
            ticket_queue_id: t.ticket_queue_id,
            tags: t.tags,
            category_id: t.category_id,
            status_id: t.status_id,
        }
    }
}

/// The tickets in a `GET tickets` answer: a bare array, or an object holding one (under
/// whatever key); entries that are not tickets are skipped.
pub fn ticket_list(answer: &Value) -> Vec<Ticket> {
    let items = match answer {
        Value::Array(items) => items.as_slice(),
        Value::Object(map) => map
            .values()
            .find_map(|v| match v {
                Value::Array(items) if items.iter().any(|i| i.get("ticket_id").is_some()) => {
                    Some(items.as_slice())
                }
                _ => None,
            })
            .unwrap_or(&[]),
        _ => &[],
    };
    items
        .iter()
        .filter(|i| i.get("ticket_id").is_some())
        .filter_map(|i| serde_json::from_value(i.clone()).ok())
        .collect()
}

/// `ticket_id` of a `POST tickets` answer (a number, or a number in a string).
pub fn created_ticket_id(answer: &Value) -> Option<u64> {
    match answer.get("ticket_id")? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_list_is_read_in_either_shape() {
        let t = json!({"ticket_id": 5, "from": "a@x", "subject": "Hi"});
        assert_eq!(ticket_list(&json!([t, 3])).len(), 1);
        assert_eq!(ticket_list(&json!({"count": 1, "tickets": [t]})).len(), 1);
        assert_eq!(ticket_list(&json!({"data": {"x": 1}})).len(), 0);
        assert_eq!(ticket_list(&json!("nonsense")).len(), 0);
    }

    #[test]
    fn the_documented_answer_gives_the_id() {
        let answer: Value = serde_json::from_str(r#"{"ticket_id": 1232}"#).unwrap();
        assert_eq!(created_ticket_id(&answer), Some(1232));
        assert_eq!(created_ticket_id(&json!({"ticket_id": "77"})), Some(77));
        assert_eq!(created_ticket_id(&json!({})), None);
    }

    #[test]
    fn the_request_is_the_documented_json() {
        let mut req = NewTicketRequest::from(NewTicket {
            to: "support@acme.example".into(),
            from: "anna@customer.example".into(),
            subject: "Printer".into(),
            body: "<p>Hi</p>".into(),
            body_type: BodyType::Html,
            cc: vec![],
            ticket_queue_id: Some(2),
            tags: vec![],
            category_id: None,
            status_id: None,
        });
        req.attachments.push("tok".into());
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({"to": "support@acme.example", "from": "anna@customer.example", "subject": "Printer",
                   "body": "<p>Hi</p>", "body_type": "HTML", "attachments": ["tok"], "ticket_queue_id": 2})
        );
    }
}
