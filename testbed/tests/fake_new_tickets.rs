//! The fake's `POST temporary_files`, `POST tickets` and `GET tickets`: the documented
//! answers, token checks, the created ticket as `GET tickets/{id}` shows it, the list's
//! filters, and the faults.

use std::time::Duration;

use anyhow::Result;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testbed::{BodyStorage, Endpoint, FakeThulium, FakeThuliumConfig, Fault, fixtures};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("reqwest client")
}

async fn upload(api: &FakeThulium, name: &str, bytes: &[u8]) -> reqwest::Result<reqwest::Response> {
    client()
        .post(format!("{}/temporary_files?filename={name}", api.url()))
        .basic_auth(api.user(), Some(api.password()))
        .header("Content-Type", "application/octet-stream")
        .body(bytes.to_vec())
        .send()
        .await
}

async fn create(api: &FakeThulium, body: &Value) -> reqwest::Result<reqwest::Response> {
    client()
        .post(format!("{}/tickets", api.url()))
        .basic_auth(api.user(), Some(api.password()))
        .json(body)
        .send()
        .await
}

async fn get(api: &FakeThulium, path_and_query: &str) -> Result<Value> {
    Ok(client()
        .get(format!("{}/{path_and_query}", api.url()))
        .basic_auth(api.user(), Some(api.password()))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?)
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    k.sort();
    k
}

async fn error_message(response: reqwest::Response) -> Result<String> {
    let json: Value = response.json().await?;
    assert!(json["request_id"].is_string(), "{json}");
    Ok(json["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[tokio::test]
async fn an_upload_and_a_create_answer_as_documented() -> Result<()> {
    let api = FakeThulium::start_with(FakeThuliumConfig {
        body_storage: BodyStorage::AsSent,
        ..FakeThuliumConfig::default()
    })
    .await?;
    let response = upload(&api, "file.txt", b"file content").await?;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await?;
    let documented: Value = serde_json::from_str(fixtures::TEMPORARY_FILE)?;
    assert_eq!(keys(&answer), keys(&documented));
    assert_eq!(answer["filename"], "file.txt");
    assert_eq!(answer["size"], 12, "size is a number, in bytes");
    let token = answer["token"].as_str().expect("token").to_string();

    let request = json!({"to": "help@acme.example", "from": "anna@customer.example",
        "subject": "Printer", "body": "<p>It jams.</p>", "body_type": "HTML",
        "cc": ["boss@customer.example"], "attachments": [token], "ticket_queue_id": 7});
    let response = create(&api, &request).await?;
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await?;
    let documented: Value = serde_json::from_str(fixtures::POST_TICKET)?;
    assert_eq!(keys(&answer), keys(&documented));
    let id = answer["ticket_id"].as_u64().expect("a numeric ticket_id");
    assert_eq!(id, 1232, "the first id is the page's example");

    let created = api.created_tickets();
    assert_eq!(created.len(), 1);
    let c = &created[0];
    assert_eq!(
        (
            c.ticket,
            c.to.as_str(),
            c.from.as_deref(),
            c.subject.as_str()
        ),
        (
            id,
            "help@acme.example",
            Some("anna@customer.example"),
            "Printer"
        )
    );
    assert_eq!(c.cc, ["boss@customer.example"]);
    assert_eq!(c.ticket_queue_id, Some(7));
    assert_eq!(c.request, request);
    let files = api.ticket_files(id);
    assert_eq!(files.len(), 1);
    assert_eq!(&files[0].bytes[..], b"file content");
    assert_eq!(files[0].filename, "file.txt");
    assert_eq!(
        files[0].content_type.as_deref(),
        Some("application/octet-stream")
    );

    let ticket = get(&api, &format!("tickets/{id}")).await?;
    let documented: Value = serde_json::from_str(fixtures::GET_TICKET)?;
    assert_eq!(keys(&ticket), keys(&documented));
    assert_eq!(ticket["from"], "anna@customer.example");
    assert_eq!(ticket["subject"], "Printer");
    assert_eq!(ticket["ticket_queue_id"], 7);
    assert!(ticket["customer_id"].is_number());
    let messages = ticket["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 1, "{ticket}");
    assert_eq!(keys(&messages[0]), keys(&documented["messages"][0]));
    assert_eq!(messages[0]["type"], "MAIL");
    assert_eq!(messages[0]["user_login"], "");
    assert_eq!(messages[0]["body"], "<p>It jams.</p>");
    assert_eq!(messages[0]["attachments"], json!([token]));

    // The customer's response lands on the created ticket like on any other.
    let response = client()
        .post(format!("{}/tickets/{id}/customer_response", api.url()))
        .basic_auth(api.user(), Some(api.password()))
        .json(&json!({"body": "Still jams."}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(api.posted(id).len(), 1);
    Ok(())
}

#[tokio::test]
async fn unknown_and_expired_tokens_and_missing_fields_are_refused() -> Result<()> {
    let api = FakeThulium::start().await?;
    let ok = json!({"to": "help@acme.example", "subject": "S", "body": "B"});
    for key in ["to", "subject", "body"] {
        let mut bad = ok.clone();
        bad.as_object_mut().map(|m| m.remove(key));
        let response = create(&api, &bad).await?;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{key}");
        assert_eq!(
            error_message(response).await?,
            format!("The {key} field is required.")
        );
    }
    let mut elsewhere = ok.clone();
    elsewhere["to"] = json!("nobody@acme.example");
    let response = create(&api, &elsewhere).await?;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error_message(response).await?,
        "The selected to is invalid."
    );

    let mut unknown = ok.clone();
    unknown["attachments"] = json!(["180174033853be57b76ed6a"]);
    let response = create(&api, &unknown).await?;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_message(response).await?.contains("does not name"));

    let token = upload(&api, "a.bin", &[0, 1, 2])
        .await?
        .json::<Value>()
        .await?["token"]
        .clone();
    api.set_token_lifetime(Duration::ZERO);
    let mut expired = ok.clone();
    expired["attachments"] = json!([token]);
    let response = create(&api, &expired).await?;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(error_message(response).await?.contains("expired"));
    api.set_token_lifetime(testbed::TOKEN_LIFETIME);
    assert_eq!(create(&api, &expired).await?.status(), StatusCode::OK);

    let response = client()
        .post(format!("{}/temporary_files", api.url()))
        .basic_auth(api.user(), Some(api.password()))
        .body("x")
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        error_message(response).await?,
        "The filename field is required."
    );
    let response = client()
        .post(format!("{}/tickets", api.url()))
        .basic_auth(api.user(), Some("wrong"))
        .json(&ok)
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api.total_created(), 1);
    assert_eq!(api.uploads().len(), 1);
    Ok(())
}

#[tokio::test]
async fn a_large_upload_is_kept_byte_for_byte() -> Result<()> {
    let api = FakeThulium::start().await?;
    let data: Vec<u8> = (0..(21u32 << 20)).map(|i| (i * 31 % 251) as u8).collect();
    let response = client()
        .post(format!("{}/temporary_files?filename=big.bin", api.url()))
        .basic_auth(api.user(), Some(api.password()))
        .timeout(Duration::from_secs(30))
        .body(data.clone())
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await?["size"], data.len());
    assert!(api.uploads()[0].bytes == data);
    Ok(())
}

#[tokio::test]
async fn accept_then_drop_stores_and_never_answers() -> Result<()> {
    let api = FakeThulium::start().await?;
    api.fail_next_on(Endpoint::TemporaryFiles, 1, Fault::AcceptThenDrop);
    api.fail_next_on(Endpoint::CreateTicket, 1, Fault::AcceptThenDrop);
    assert!(upload(&api, "a.txt", b"abc").await.is_err());
    assert_eq!(api.uploads().len(), 1, "stored all the same");
    let request = json!({"to": "help@acme.example", "subject": "S", "body": "B",
        "attachments": [api.uploads()[0].token]});
    assert!(create(&api, &request).await.is_err());
    assert_eq!(api.total_created(), 1, "created all the same");
    assert_eq!(api.pending_faults(), 0);
    let requests = api.requests();
    assert_eq!(requests.len(), 2);
    assert!(requests.iter().all(|r| r.status.is_none()));
    assert_eq!(requests[0].path, "/api/temporary_files");
    assert_eq!(requests[0].query.as_deref(), Some("filename=a.txt"));
    assert_eq!(requests[0].body, None, "the bytes are in uploads()");
    assert_eq!(requests[1].path, "/api/tickets");
    Ok(())
}

#[tokio::test]
async fn the_list_is_filtered_newest_first_without_messages() -> Result<()> {
    let api = FakeThulium::start().await?;
    api.add_ticket(5, "old@customer.example");
    let new = |subject: &str, queue: Option<u64>| {
        let mut v = json!({"to": "help@acme.example", "from": "anna@customer.example",
            "subject": subject, "body": "B"});
        if let Some(q) = queue {
            v["ticket_queue_id"] = json!(q);
        }
        v
    };
    for (subject, queue) in [("one", None), ("two", Some(2)), ("three", Some(2))] {
        assert_eq!(create(&api, &new(subject, queue)).await?.status(), 200);
        // Distinct modification times, so the order is the creation order reversed.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all = get(&api, "tickets").await?;
    let subjects: Vec<&str> = all
        .as_array()
        .expect("a bare array")
        .iter()
        .filter_map(|t| t["subject"].as_str())
        .collect();
    assert_eq!(subjects, ["three", "two", "one", "Ticket 5"]);
    assert!(all[0].get("messages").is_none());
    assert!(all[0]["ticket_id"].is_number());

    let queue2 = get(&api, "tickets?ticket_queue_id=2").await?;
    assert_eq!(queue2.as_array().map(Vec::len), Some(2));
    // The seeded ticket opened an hour ago; the created ones now.
    let now = api
        .account_timezone()
        .format_minutes(now_ms().saturating_sub(60_000));
    let recent = get(&api, &format!("tickets?create_date_from={now}")).await?;
    assert_eq!(recent.as_array().map(Vec::len), Some(3), "{recent}");
    let paged = get(&api, "tickets?limit=1&offset=1").await?;
    assert_eq!(paged[0]["subject"], "two");

    api.fail_next_on(Endpoint::ListTickets, 1, Fault::GetFails(503));
    let response = client()
        .get(format!("{}/tickets", api.url()))
        .basic_auth(api.user(), Some(api.password()))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let last = api.requests().pop().expect("recorded");
    assert_eq!((last.method.as_str(), last.status), ("GET", Some(503)));
    Ok(())
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}
