//! The Thulium documentation's example answers, for contract tests here and in
//! other crates: a fake or a parser that disagrees with these is wrong.
//!
//! Copied from the stored pages of the API documentation; where a page's example
//! is not valid JSON, the completion is noted.

/// `GET tickets/:id`, <https://api.thulium.com/docs/api/tickets/get_tickets_id>.
///
/// As printed for messages 432–435 (the page leaves the second attachment token
/// of 435 unterminated; closed here). Message 436 (MAIL, `user_login` "") is cut
/// off after `"body": "Em`; its body, `created_at` and the closing are ours.
pub const GET_TICKET: &str = include_str!("../fixtures/get_ticket.json");

/// The error shape, <https://api.thulium.com/docs/api/error_handling>; `code` is
/// Thulium's own error code, not the HTTP status.
pub const ERROR: &str = include_str!("../fixtures/error.json");

/// `POST tickets`, <https://api.thulium.com/docs/api/tickets/post_tickets>; the
/// page prints `{ ticket_id: 1232 }` with the key unquoted.
pub const POST_TICKET: &str = include_str!("../fixtures/post_tickets.json");

/// `POST temporary_files?filename=file.txt`,
/// <https://api.thulium.com/docs/api/temporary_files/post_temporary_files>.
pub const TEMPORARY_FILE: &str = include_str!("../fixtures/post_temporary_files.json");

/// `POST tickets/:id/customer_response` answers an empty body
/// (<https://api.thulium.com/docs/api/tickets/post_tickets_id_customer_response>
/// prints `<!-- pusty -->`, "empty").
pub const CUSTOMER_RESPONSE: &str = "";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixtures_are_json() {
        for (name, text) in [
            ("get_ticket", GET_TICKET),
            ("error", ERROR),
            ("post_tickets", POST_TICKET),
            ("temporary_file", TEMPORARY_FILE),
        ] {
            let parsed = serde_json::from_str::<serde_json::Value>(text);
            assert!(parsed.is_ok(), "{name}: {parsed:?}");
        }
    }
}
