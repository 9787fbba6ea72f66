//! The bridge's reading of the Thulium API against the documentation's own examples
//! (testbed/fixtures, copied from the API pages) and against the fake that answers in
//! that shape, under every reading of what the documentation leaves open.

use secrecy::SecretString;
use std::time::{Duration, SystemTime};
use testbed::{FakeThulium, FakeThuliumConfig, Reading, fixtures};
use thulium_mail_bridge::mail::body::BodyType;
use thulium_mail_bridge::mail::decide::CustomerResponse;
use thulium_mail_bridge::thulium::api_clock::ApiClock;
use thulium_mail_bridge::thulium::read_back::{self, Sent};
use thulium_mail_bridge::thulium::{ApiError, Gate, ThuliumClient, Ticket, classify};

#[test]
fn the_documented_ticket_example_is_read() {
    let t: Ticket = serde_json::from_str(fixtures::GET_TICKET).expect("the example parses");
    assert_eq!(t.ticket_id, 1234);
    assert_eq!(t.from.as_deref(), Some("john.doe@foo.bar"));
    let kinds: Vec<&str> = t
        .messages
        .iter()
        .filter_map(|m| m.r#type.as_deref())
        .collect();
    assert_eq!(kinds, ["COMMENT", "COMMENT", "COMMENT", "REPLY", "MAIL"]);
    let mail = &t.messages[4];
    assert_eq!(mail.body.as_deref(), Some("Email message from client"));
    assert_eq!(
        mail.time(),
        Some("2014-07-02 13:40"),
        "created_at, no `date` field"
    );
}

#[test]
fn the_documented_error_example_gives_the_apis_words() {
    let e = classify(422, None, fixtures::ERROR.as_bytes(), SystemTime::now());
    match e {
        Err(ApiError::Permanent { status, message }) => {
            assert_eq!(status, 422);
            assert_eq!(
                message,
                "Wrong format of phone number.; Duplicated customer name."
            );
        }
        other => panic!("{other:?}"),
    }
}

fn reply(body: &str, body_type: BodyType) -> CustomerResponse {
    CustomerResponse {
        body: body.into(),
        body_type,
        date: "2026-11-26 10:05".into(),
    }
}

async fn read_back_under(name: &str, reading: Reading) {
    let config = FakeThuliumConfig::from_env()
        .expect("TESTBED_*")
        .under(reading);
    let api = FakeThulium::start_with(config).await.expect("fake API");
    api.add_ticket(1, "anna@customer.example");
    let client = ThuliumClient::new(
        &api.url(),
        api.user(),
        SecretString::from(api.password().to_string()),
        Duration::from_secs(5),
        None,
    )
    .expect("client");
    let unix_now = || {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    };
    let first_attempt = unix_now();
    let plain = reply(
        "Dzień dobry,\n\nthe order <42> arrived & works.\n",
        BodyType::Plain,
    );
    let html = reply("<div>Thanks&nbsp;a lot,<br>Anna</div>", BodyType::Html);
    for r in [&plain, &html] {
        client
            .post_customer_response(1, r, &Gate::open())
            .await
            .expect("accepted");
    }
    let ticket = client.get_ticket(1).await.expect("the ticket reads");
    assert_eq!(ticket.from.as_deref(), Some("anna@customer.example"));
    // Nothing learned yet: any clock.
    let clock = ApiClock::learn(chrono_tz::Europe::Warsaw, []);
    let sent = |request| Sent {
        request,
        first_attempt,
        now: unix_now(),
        clock: &clock,
    };
    let label = format!("{name}: {reading:?}");
    assert_eq!(
        read_back::matching_messages(&ticket, &sent(&plain)),
        1,
        "{label}"
    );
    assert_eq!(
        read_back::matching_messages(&ticket, &sent(&html)),
        1,
        "{label}"
    );
    let never = reply("Never sent", BodyType::Plain);
    assert_eq!(
        read_back::matching_messages(&ticket, &sent(&never)),
        0,
        "{label}"
    );
    // The agent's REPLY in the ticket is never taken for a customer's reply.
    let agent_text = ticket
        .messages
        .iter()
        .find(|m| m.r#type.as_deref() == Some("REPLY"))
        .and_then(|m| m.body.clone())
        .expect("a REPLY in the ticket");
    let mut echo = reply(&agent_text, BodyType::Html);
    echo.date = ticket
        .messages
        .iter()
        .find(|m| m.r#type.as_deref() == Some("REPLY"))
        .and_then(|m| m.created_at.clone())
        .unwrap_or_default();
    assert_eq!(
        read_back::matching_messages(&ticket, &sent(&echo)),
        0,
        "{label}"
    );
}

#[tokio::test]
async fn a_posted_reply_is_found_under_every_reading() {
    for (name, reading) in Reading::every() {
        read_back_under(name, reading).await
    }
}
