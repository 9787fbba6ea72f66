//! `GET tickets/{id}` as documented (https://api.thulium.com/docs/api/tickets/get_tickets_id):
//! the ticket's `from` and its `messages`, each `{message_id, user_login, type
//! (MAIL|REPLY|COMMENT), body, comment, system_comment, created_at "YYYY-MM-DD HH:MM",
//! attachments}`. Everything is optional and read leniently (a number may come as a
//! string and the other way round); fields the bridge does not use are ignored.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

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
    pub subject: Option<String>,
    #[serde(deserialize_with = "lenient_messages")]
    pub messages: Vec<TicketMessage>,
}

/// One message of a ticket.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct TicketMessage {
    /// The JSON field `type`: MAIL (from the customer), REPLY (to the customer) or COMMENT.
    #[serde(deserialize_with = "lenient_string")]
    pub r#type: Option<String>,
    #[serde(deserialize_with = "lenient_string")]
    pub body: Option<String>,
    /// `YYYY-MM-DD HH:MM` in the account's zone; whether it is the `date` we sent or the
    /// time the helpdesk stored the message, the documentation does not say.
    #[serde(deserialize_with = "lenient_string")]
    pub created_at: Option<String>,
    /// Not documented; read in case a server sends it instead of `created_at`.
    #[serde(deserialize_with = "lenient_string")]
    pub date: Option<String>,
}

impl TicketMessage {
    /// A message from the customer (`MAIL`), not a REPLY or COMMENT; a message without a
    /// type counts as one.
    pub fn is_mail(&self) -> bool {
        self.r#type
            .as_deref()
            .is_none_or(|t| t.eq_ignore_ascii_case("MAIL"))
    }

    /// The message's time as the server wrote it.
    pub fn time(&self) -> Option<&str> {
        self.created_at.as_deref().or(self.date.as_deref())
    }
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
    fn numbers_nulls_and_missing_fields_are_tolerated() {
        let t: Ticket = serde_json::from_str(
            r#"{"ticket_id": "55", "from": null, "messages": [1, "x", {}, {"type": 5, "created_at": null, "date": "2025-01-01 10:00:00"}]}"#,
        )
        .unwrap();
        assert_eq!(t.ticket_id, 55);
        assert_eq!(t.from, None);
        assert_eq!(t.messages.len(), 2);
        assert_eq!(t.messages[0], TicketMessage::default());
        assert_eq!(t.messages[1].r#type.as_deref(), Some("5"));
        assert_eq!(t.messages[1].time(), Some("2025-01-01 10:00:00"));
        let t: Ticket = serde_json::from_str("{}").unwrap();
        assert_eq!(t, Ticket::default());
        let t: Ticket = serde_json::from_str(r#"{"messages": null, "from": {"x": 1}}"#).unwrap();
        assert!(t.messages.is_empty() && t.from.is_none());
    }
}
