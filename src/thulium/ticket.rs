//! `GET tickets/{id}`: only a few fields are documented, so everything is optional
//! and read leniently (ids and `status_id` arrive as strings or numbers).

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// A ticket as far as the bridge needs it (verify_sender, reading a post back).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Ticket {
    #[serde(deserialize_with = "lenient_u64")]
    pub ticket_id: u64,
    /// The customer's e-mail address.
    #[serde(deserialize_with = "lenient_string")]
    pub from: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub customer_id: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub subject: Option<String>,
    /// Documented as a JSON string; a number is accepted too.
    #[serde(deserialize_with = "lenient_string")]
    pub status_id: Option<String>,
    #[serde(deserialize_with = "lenient_messages")]
    pub messages: Vec<TicketMessage>,
}

/// One message of a ticket; the field names beyond these are unknown, so they are kept.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TicketMessage {
    /// The JSON field `type` (e.g. MAIL).
    #[serde(deserialize_with = "lenient_string")]
    pub r#type: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub body: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub body_type: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub date: Option<String>,
    /// Every other field, as sent.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// A string, or a number written as one; anything else (null, objects) is absent.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64().unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    })
}

/// The messages that are objects; anything else in the array is skipped.
fn lenient_messages<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<TicketMessage>, D::Error> {
    let Value::Array(items) = Value::deserialize(d)? else {
        return Ok(Vec::new());
    };
    Ok(items
        .into_iter()
        .filter(Value::is_object)
        .filter_map(|m| serde_json::from_value(m).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_fields_are_read_and_unknown_ones_ignored() {
        let json = r#"{
            "ticket_id": 1234, "from": "jan@example.com", "customer_id": 77,
            "subject": "Printer", "status_id": "3", "queue_id": 9, "tags": ["a"],
            "messages": [
                {"type": "MAIL", "body": "<p>Hi</p>", "date": "2025-03-01 10:15:00", "agent_id": null},
                {"type": "NOTE", "body": "internal"}
            ]
        }"#;
        let t: Ticket = serde_json::from_str(json).unwrap();
        assert_eq!(t.ticket_id, 1234);
        assert_eq!(t.from.as_deref(), Some("jan@example.com"));
        assert_eq!(t.customer_id.as_deref(), Some("77"));
        assert_eq!(t.subject.as_deref(), Some("Printer"));
        assert_eq!(t.status_id.as_deref(), Some("3"));
        assert_eq!(t.messages.len(), 2);
        assert_eq!(t.messages[0].r#type.as_deref(), Some("MAIL"));
        assert_eq!(t.messages[0].date.as_deref(), Some("2025-03-01 10:15:00"));
        assert!(t.messages[0].other.contains_key("agent_id"));
        assert_eq!(t.messages[1].body.as_deref(), Some("internal"));
        assert_eq!(t.messages[1].date, None);
    }

    #[test]
    fn numbers_nulls_and_missing_fields_are_tolerated() {
        let t: Ticket = serde_json::from_str(
            r#"{"ticket_id": "55", "status_id": 4, "from": null, "messages": [1, "x", {}]}"#,
        )
        .unwrap();
        assert_eq!(t.ticket_id, 55);
        assert_eq!(t.status_id.as_deref(), Some("4"));
        assert_eq!(t.from, None);
        assert_eq!(t.messages, vec![TicketMessage::default()]);
        let t: Ticket = serde_json::from_str("{}").unwrap();
        assert_eq!(t, Ticket::default());
        let t: Ticket = serde_json::from_str(r#"{"messages": null, "subject": {"x": 1}}"#).unwrap();
        assert!(t.messages.is_empty() && t.subject.is_none());
    }
}
