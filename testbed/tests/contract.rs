//! The fake answers in the documented shapes (`testbed::fixtures`), under every
//! reading of what the documentation leaves open.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Result;
use chrono::{DateTime, Utc};
use chrono_tz::Europe::Warsaw;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testbed::{BodyStorage, CreatedAt, FakeThulium, FakeThuliumConfig, fixtures};

const PLAIN: &str = "Line one & <two>\nline three\n\nSecond paragraph";
const HTML: &str = "<p>Hello&nbsp;there</p>\n  <p>Bye<br></p>";
const SENT_DATE: &str = "2024-03-04 10:15";

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("reqwest client")
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Key -> JSON type of an object.
fn shape(v: &Value) -> BTreeMap<String, &'static str> {
    v.as_object()
        .expect("an object")
        .iter()
        .map(|(k, v)| (k.clone(), json_type(v)))
        .collect()
}

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture is JSON")
}

/// The one shape every documented message has.
fn message_shape(ticket: &Value) -> BTreeMap<String, &'static str> {
    let messages = ticket["messages"].as_array().expect("messages");
    let first = shape(&messages[0]);
    for m in messages {
        assert_eq!(shape(m), first, "every message has one shape: {m}");
    }
    first
}

/// `^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$`
fn is_minute(s: &str) -> bool {
    s.len() == 16
        && s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            10 => b == b' ',
            13 => b == b':',
            _ => b.is_ascii_digit(),
        })
}

fn warsaw_minute(unix_ms: u64) -> String {
    DateTime::<Utc>::from_timestamp_millis(unix_ms as i64)
        .expect("a valid instant")
        .with_timezone(&Warsaw)
        .format("%Y-%m-%d %H:%M")
        .to_string()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

/// The Europe/Warsaw minutes from a minute before `from` to a minute after `to`.
fn minutes_around(from: u64, to: u64) -> Vec<String> {
    (from.saturating_sub(60_000)..=to + 60_000)
        .step_by(30_000)
        .map(warsaw_minute)
        .collect()
}

async fn post(api: &FakeThulium, ticket: u64, body: Value) -> Result<reqwest::Response> {
    Ok(client()
        .post(format!("{}/tickets/{ticket}/customer_response", api.url()))
        .basic_auth(api.user(), Some(api.password()))
        .json(&body)
        .send()
        .await?)
}

async fn get_ticket(api: &FakeThulium, ticket: u64) -> Result<Value> {
    Ok(client()
        .get(format!("{}/tickets/{ticket}", api.url()))
        .basic_auth(api.user(), Some(api.password()))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

#[test]
fn fixtures_have_the_documented_shapes() {
    let ticket = fixture(fixtures::GET_TICKET);
    let top = shape(&ticket);
    for (key, ty) in [
        ("ticket_id", "number"),
        ("ticket_queue_id", "number"),
        ("customer_id", "number"),
        ("status_id", "string"),
        ("substatus_id", "string"),
        ("category_id", "string"),
        ("created_at", "string"),
        ("messages", "array"),
    ] {
        assert_eq!(top.get(key).copied(), Some(ty), "{key}");
    }
    let message = message_shape(&ticket);
    let keys: Vec<&str> = message.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "attachments",
            "body",
            "comment",
            "created_at",
            "message_id",
            "system_comment",
            "type",
            "user_login"
        ]
    );
    let types: Vec<&str> = ticket["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["type"].as_str())
        .collect();
    for t in ["MAIL", "REPLY", "COMMENT"] {
        assert!(types.contains(&t), "{t} in {types:?}");
    }
    let error = fixture(fixtures::ERROR);
    assert_eq!(error["errors"][0]["code"], 111111);
    assert_eq!(fixture(fixtures::POST_TICKET)["ticket_id"], 1232);
    assert_eq!(fixture(fixtures::TEMPORARY_FILE)["size"], 12);
}

/// Posts a PLAIN reply with a date and two HTML replies (without and with
/// one); returns the ticket as read back and the time span of the posts.
async fn post_three(api: &FakeThulium, id: u64) -> Result<(Value, u64, u64)> {
    api.add_ticket(id, "customer@example.com");
    let before = now_ms();
    for body in [
        json!({"body": PLAIN, "body_type": "PLAIN", "date": SENT_DATE}),
        json!({"body": HTML}),
        json!({"body": HTML, "body_type": "HTML", "date": SENT_DATE}),
    ] {
        let response = post(api, id, body).await?;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await?, fixtures::CUSTOMER_RESPONSE);
    }
    let after = now_ms();
    Ok((get_ticket(api, id).await?, before, after))
}

/// Everything that holds whatever the switches say.
fn assert_documented_shape(ticket: &Value, what: &str) {
    let documented = fixture(fixtures::GET_TICKET);
    assert_eq!(shape(ticket), shape(&documented), "{what}: top level");
    let documented_message = message_shape(&documented);
    let messages = ticket["messages"].as_array().expect("messages");
    for m in messages {
        assert_eq!(shape(m), documented_message, "{what}: {m}");
        let created = m["created_at"].as_str().unwrap_or_default();
        assert!(is_minute(created), "{what}: created_at {created:?}");
        assert!(
            m["attachments"].as_array().is_some_and(|a| a.is_empty()),
            "{what}: {m}"
        );
    }
    for key in ["created_at", "updated_at", "first_agent_responded_at"] {
        let value = ticket[key].as_str().unwrap_or_default();
        assert!(is_minute(value), "{what}: {key} {value:?}");
    }
    let types: Vec<&str> = messages.iter().filter_map(|m| m["type"].as_str()).collect();
    for t in ["MAIL", "REPLY", "COMMENT"] {
        assert!(types.contains(&t), "{what}: {t} in {types:?}");
    }
    assert_eq!(types[0], "MAIL", "{what}: the customer opened the ticket");
    let mut ids: Vec<u64> = messages
        .iter()
        .filter_map(|m| m["message_id"].as_u64())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), messages.len(), "{what}: message ids unique");
    for m in messages.iter().filter(|m| m["type"] != "MAIL") {
        for posted in [PLAIN, HTML] {
            assert!(!m["body"].as_str().unwrap_or_default().contains(posted));
        }
    }
}

#[tokio::test]
async fn get_ticket_has_the_documented_shape_under_every_switch() -> Result<()> {
    let mut id = 500;
    for created_at in [CreatedAt::DateSent, CreatedAt::StorageTime] {
        for body_storage in [BodyStorage::AsSent, BodyStorage::RenderedHtml] {
            id += 1;
            let what = format!("{created_at:?} + {body_storage:?}");
            let api = FakeThulium::start_with(FakeThuliumConfig {
                created_at,
                body_storage,
                ..FakeThuliumConfig::default()
            })
            .await?;
            assert_eq!(
                (api.created_at(), api.body_storage()),
                (created_at, body_storage)
            );
            let (ticket, before, after) = post_three(&api, id).await?;
            assert_documented_shape(&ticket, &what);
            assert_eq!(ticket["ticket_id"], id);
            assert_eq!(ticket["from"], "customer@example.com");

            let messages = ticket["messages"].as_array().expect("messages");
            assert_eq!(messages.len(), 6, "{what}: 3 opening + 3 posted");
            let posted = &messages[3..];
            for m in posted {
                assert_eq!(m["type"], "MAIL", "{what}: {m}");
                assert_eq!(m["user_login"], "", "{what}: {m}");
            }

            let now = minutes_around(before, after);
            let created: Vec<&str> = posted
                .iter()
                .map(|m| m["created_at"].as_str().unwrap_or_default())
                .collect();
            match created_at {
                CreatedAt::DateSent => {
                    assert_eq!(created[0], SENT_DATE, "{what}");
                    assert!(now.iter().any(|n| n == created[1]), "{what}: {created:?}");
                    assert_eq!(created[2], SENT_DATE, "{what}");
                }
                CreatedAt::StorageTime => {
                    for c in &created {
                        assert!(now.iter().any(|n| n == c), "{what}: {c} not in {now:?}");
                    }
                }
            }

            let bodies: Vec<&str> = posted
                .iter()
                .map(|m| m["body"].as_str().unwrap_or_default())
                .collect();
            match body_storage {
                BodyStorage::AsSent => assert_eq!(bodies, [PLAIN, HTML, HTML], "{what}"),
                BodyStorage::RenderedHtml => {
                    assert_eq!(
                        bodies[0],
                        "<div class=\"thulium-message\"><p>Line one &amp; &lt;two&gt;<br />\
                         line three</p><p>Second paragraph</p></div>",
                        "{what}: PLAIN comes back as HTML"
                    );
                    assert_eq!(
                        bodies[1],
                        "<div class=\"thulium-message\"><p>Hello&#160;there</p> \
                         <p>Bye<br /></p></div>",
                        "{what}: HTML comes back re-rendered"
                    );
                    assert_eq!(bodies[1], bodies[2]);
                }
            }
            // The audit trail keeps what the client sent, whatever was stored.
            let audit = api.posted(id);
            assert_eq!(audit.len(), 3);
            assert_eq!(audit[0].body, PLAIN);
            assert_eq!(audit[0].body_type, "PLAIN");
            assert_eq!(audit[0].date.as_deref(), Some(SENT_DATE));
            assert_eq!(audit[1].body, HTML);
            assert_eq!(audit[1].date, None);
        }
    }
    Ok(())
}

#[tokio::test]
async fn switches_change_at_run_time_for_later_posts_only() -> Result<()> {
    let api = FakeThulium::start_with(FakeThuliumConfig {
        created_at: CreatedAt::DateSent,
        body_storage: BodyStorage::AsSent,
        ..FakeThuliumConfig::default()
    })
    .await?;
    api.add_ticket(9, "customer@example.com");
    let sent = json!({"body": "first", "body_type": "PLAIN", "date": SENT_DATE});
    assert_eq!(post(&api, 9, sent).await?.status(), StatusCode::OK);
    api.set_created_at(CreatedAt::StorageTime);
    api.set_body_storage(BodyStorage::RenderedHtml);
    assert_eq!(
        (api.created_at(), api.body_storage()),
        (CreatedAt::StorageTime, BodyStorage::RenderedHtml)
    );
    let before = now_ms();
    let sent = json!({"body": "second", "body_type": "PLAIN", "date": SENT_DATE});
    assert_eq!(post(&api, 9, sent).await?.status(), StatusCode::OK);
    let after = now_ms();

    let ticket = get_ticket(&api, 9).await?;
    assert_documented_shape(&ticket, "switched");
    let messages = &ticket["messages"];
    assert_eq!(messages[3]["body"], "first");
    assert_eq!(messages[3]["created_at"], SENT_DATE);
    assert_eq!(
        messages[4]["body"],
        "<div class=\"thulium-message\"><p>second</p></div>"
    );
    let created = messages[4]["created_at"].as_str().unwrap_or_default();
    assert!(minutes_around(before, after).iter().any(|m| m == created));
    Ok(())
}

/// Asserts the documented error shape; returns the message.
async fn assert_error_shape(response: reqwest::Response, status: StatusCode) -> Result<String> {
    assert_eq!(response.status(), status);
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().await?;
    let documented = fixture(fixtures::ERROR);
    assert_eq!(shape(&body), shape(&documented), "{status}: {body}");
    let errors = body["errors"].as_array().expect("errors");
    assert!(!errors.is_empty(), "{status}: {body}");
    for e in errors {
        assert_eq!(shape(e), shape(&documented["errors"][0]), "{status}: {e}");
    }
    assert!(!body["request_id"].as_str().unwrap_or_default().is_empty());
    Ok(errors[0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[tokio::test]
async fn errors_have_the_documented_shape() -> Result<()> {
    let api = FakeThulium::start().await?;
    api.add_ticket(1, "customer@example.com");
    let url = api.url();

    // 401: wrong password, and no credentials at all.
    let response = client()
        .post(format!("{url}/tickets/1/customer_response"))
        .basic_auth(api.user(), Some("wrong"))
        .json(&json!({"body": "x"}))
        .send()
        .await?;
    assert_error_shape(response, StatusCode::UNAUTHORIZED).await?;
    let response = client().get(format!("{url}/tickets/1")).send().await?;
    assert_error_shape(response, StatusCode::UNAUTHORIZED).await?;

    // 404: no such ticket (POST and GET), no such resource.
    assert_error_shape(
        post(&api, 999, json!({"body": "x"})).await?,
        StatusCode::NOT_FOUND,
    )
    .await?;
    for path in ["tickets/999", "tickets/not-a-number", "no_such_resource"] {
        let response = client()
            .get(format!("{url}/{path}"))
            .basic_auth(api.user(), Some(api.password()))
            .send()
            .await?;
        assert_error_shape(response, StatusCode::NOT_FOUND).await?;
    }

    // 422: invalid fields.
    for bad in [
        json!({}),
        json!({"body": " "}),
        json!({"body": "x", "body_type": "TEXT"}),
        json!({"body": "x", "date": "2024-03-04T10:15:00+01:00"}),
    ] {
        let message = assert_error_shape(
            post(&api, 1, bad.clone()).await?,
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await?;
        assert!(!message.is_empty(), "{bad}");
    }

    // 400: not JSON at all.
    let response = client()
        .post(format!("{url}/tickets/1/customer_response"))
        .basic_auth(api.user(), Some(api.password()))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await?;
    assert_error_shape(response, StatusCode::BAD_REQUEST).await?;
    assert_eq!(api.total_posted(), 0);
    Ok(())
}
