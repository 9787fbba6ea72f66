//! The fake Thulium API: the documented contract, recording, and faults.

use std::time::Duration;

use anyhow::Result;
use reqwest::StatusCode;
use serde_json::{Value, json};
use testbed::{BodyStorage, CreatedAt, FakeThulium, FakeThuliumConfig, Fault};

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("reqwest client")
}

async fn post(api: &FakeThulium, ticket: u64, body: Value) -> reqwest::Result<reqwest::Response> {
    client()
        .post(format!("{}/tickets/{ticket}/customer_response", api.url()))
        .basic_auth(api.user(), Some(api.password()))
        .json(&body)
        .send()
        .await
}

/// Whether the error comes from an RST ("connection reset by peer").
fn is_reset(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::ConnectionReset;
        }
        source = e.source();
    }
    false
}

async fn error_message(response: reqwest::Response) -> Result<String> {
    let json: Value = response.json().await?;
    assert!(json["request_id"].is_string(), "{json}");
    assert!(json["errors"][0]["code"].is_number(), "{json}");
    Ok(json["errors"][0]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[tokio::test]
async fn accepted_reply_is_stored_and_shows_in_the_ticket() -> Result<()> {
    // Pinned, so the suite passes under any TESTBED_* setting.
    let api = FakeThulium::start_with(FakeThuliumConfig {
        created_at: CreatedAt::DateSent,
        body_storage: BodyStorage::AsSent,
        ..FakeThuliumConfig::default()
    })
    .await?;
    api.add_ticket(1234, "customer@example.com");

    let response = post(
        &api,
        1234,
        json!({"body": "Thanks!", "body_type": "PLAIN", "date": "2024-03-04 10:15"}),
    )
    .await?;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.bytes().await?.len(),
        0,
        "success has an empty body"
    );
    let response = post(&api, 1234, json!({"body": "<p>More</p>"})).await?;
    assert_eq!(response.status(), StatusCode::OK);

    let posted = api.posted(1234);
    assert_eq!(posted.len(), 2);
    assert_eq!(posted[0].body, "Thanks!");
    assert_eq!(posted[0].body_type, "PLAIN");
    assert_eq!(posted[0].date.as_deref(), Some("2024-03-04 10:15"));
    assert_eq!(
        posted[1].body_type, "HTML",
        "HTML is the server-side default"
    );
    assert!(posted[0].seq < posted[1].seq);
    assert_eq!(api.total_posted(), 2);

    let ticket: Value = client()
        .get(format!("{}/tickets/1234", api.url()))
        .basic_auth(api.user(), Some(api.password()))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    assert_eq!(ticket["ticket_id"], 1234);
    assert_eq!(ticket["from"], "customer@example.com");
    assert!(ticket["customer_id"].is_number());
    assert!(ticket["subject"].is_string());
    assert!(
        ticket["status_id"].is_string(),
        "status_id is a JSON string"
    );
    let messages = ticket["messages"].as_array().expect("messages");
    let types: Vec<&str> = messages.iter().filter_map(|m| m["type"].as_str()).collect();
    assert_eq!(
        types,
        ["MAIL", "REPLY", "COMMENT", "MAIL", "MAIL"],
        "the opening mail, an agent's reply and comment, then the two posts"
    );
    assert_eq!(messages[3]["body"], "Thanks!");
    assert_eq!(messages[3]["created_at"], "2024-03-04 10:15");
    assert_eq!(messages[3]["user_login"], "");
    assert_eq!(messages[4]["body"], "<p>More</p>");
    assert!(
        messages.iter().all(|m| m.get("date").is_none()),
        "no `date` on messages"
    );
    let ids: Vec<u64> = messages
        .iter()
        .filter_map(|m| m["message_id"].as_u64())
        .collect();
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    for agent in &messages[1..3] {
        assert_ne!(agent["user_login"], "", "{agent}");
        assert_ne!(agent["body"], "Thanks!");
    }

    let requests = api.requests();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/api/tickets/1234/customer_response");
    assert!(requests[0].auth_ok);
    assert_eq!(
        requests[0].body.as_ref().map(|b| b["body"].clone()),
        Some(json!("Thanks!"))
    );
    assert_eq!(requests[2].status, Some(200));
    Ok(())
}

#[tokio::test]
async fn contract_errors_come_in_the_documented_shape() -> Result<()> {
    let api = FakeThulium::start().await?;
    api.add_ticket(1, "a@example.com");

    let response = client()
        .post(format!("{}/tickets/1/customer_response", api.url()))
        .basic_auth(api.user(), Some("wrong"))
        .json(&json!({"body": "x"}))
        .send()
        .await?;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    error_message(response).await?;

    let response = post(&api, 999, json!({"body": "x"})).await?;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    error_message(response).await?;

    for bad in [
        json!({}),
        json!({"body": ""}),
        json!({"body": 5}),
        json!({"body": "x", "body_type": "TEXT"}),
        json!({"body": "x", "date": "2024-03-04T10:15:00Z"}),
        json!({"body": "x", "date": "2024-02-30 10:15"}),
    ] {
        let response = post(&api, 1, bad.clone()).await?;
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        error_message(response).await?;
    }
    assert_eq!(api.total_posted(), 0);
    let requests = api.requests();
    assert!(!requests[0].auth_ok);
    assert_eq!(requests[0].status, Some(401));
    Ok(())
}

#[tokio::test]
async fn status_and_429_faults_store_nothing() -> Result<()> {
    let api = FakeThulium::start().await?;
    api.add_ticket(7, "a@example.com");
    api.fail_next(1, Fault::Status(503));
    api.fail_next(
        1,
        Fault::TooManyRequests {
            retry_after_secs: 3,
        },
    );

    assert_eq!(post(&api, 7, json!({"body": "x"})).await?.status(), 503);
    let response = post(&api, 7, json!({"body": "x"})).await?;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "3");
    assert_eq!(api.total_posted(), 0);
    assert_eq!(post(&api, 7, json!({"body": "x"})).await?.status(), 200);
    assert_eq!(api.total_posted(), 1);
    assert_eq!(api.pending_faults(), 0);
    Ok(())
}

#[tokio::test]
async fn reset_drops_the_connection_before_storing() -> Result<()> {
    let api = FakeThulium::start().await?;
    api.add_ticket(7, "a@example.com");
    api.fail_next(1, Fault::Reset);
    let err = post(&api, 7, json!({"body": "x"})).await.unwrap_err();
    assert!(is_reset(&err), "a TCP reset: {err:?}");
    assert_eq!(api.total_posted(), 0);
    assert_eq!(api.requests()[0].status, None);
    // The next request gets a fresh connection and goes through.
    assert_eq!(post(&api, 7, json!({"body": "x"})).await?.status(), 200);
    Ok(())
}

#[tokio::test]
async fn accept_then_drop_stores_but_never_answers() -> Result<()> {
    let api = FakeThulium::start().await?;
    api.add_ticket(7, "a@example.com");
    api.fail_next(1, Fault::AcceptThenDrop);
    let err = post(&api, 7, json!({"body": "lost answer"}))
        .await
        .unwrap_err();
    assert!(is_reset(&err), "a TCP reset: {err:?}");
    assert_eq!(api.posted(7).len(), 1, "the reply was stored all the same");
    Ok(())
}

#[tokio::test]
async fn accept_then_delay_outlasts_the_client_timeout() -> Result<()> {
    let api = FakeThulium::start().await?;
    api.add_ticket(7, "a@example.com");
    api.fail_next(1, Fault::AcceptThenDelay(Duration::from_secs(5)));
    let err = post(&api, 7, json!({"body": "slow"})).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(api.posted(7).len(), 1);
    Ok(())
}

#[tokio::test]
async fn latency_get_faults_per_ticket_and_every_kth() -> Result<()> {
    let api = FakeThulium::start().await?;
    api.add_ticket(1, "a@example.com");
    api.add_ticket(2, "b@example.com");

    api.fail_next(1, Fault::Latency(Duration::from_millis(300)));
    let started = std::time::Instant::now();
    assert_eq!(post(&api, 1, json!({"body": "x"})).await?.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));

    api.fail_next(1, Fault::GetFails(500));
    let get = |id: u64| {
        client()
            .get(format!("{}/tickets/{id}", api.url()))
            .basic_auth(api.user(), Some(api.password()))
            .send()
    };
    assert_eq!(get(1).await?.status(), 500);
    assert_eq!(get(1).await?.status(), 200);

    api.fail_next_for(2, 1, Fault::Status(500));
    assert_eq!(post(&api, 1, json!({"body": "x"})).await?.status(), 200);
    assert_eq!(post(&api, 2, json!({"body": "x"})).await?.status(), 500);

    api.fail_every(2, Fault::Status(502));
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..4 {
            v.push(post(&api, 1, json!({"body": "x"})).await?.status().as_u16());
        }
        v
    };
    assert_eq!(
        statuses.iter().filter(|s| **s == 502).count(),
        2,
        "{statuses:?}"
    );
    api.clear_faults();
    assert_eq!(post(&api, 1, json!({"body": "x"})).await?.status(), 200);
    Ok(())
}

#[tokio::test]
async fn auto_tickets_and_waiting_for_posts() -> Result<()> {
    let api = FakeThulium::start_with(FakeThuliumConfig {
        auto_tickets: true,
        ..FakeThuliumConfig::default()
    })
    .await?;
    let poster = {
        let url = api.url();
        let (user, password) = (api.user().to_string(), api.password().to_string());
        tokio::spawn(async move {
            let client = client();
            for id in 0..50u64 {
                let _ = client
                    .post(format!("{url}/tickets/{id}/customer_response"))
                    .basic_auth(&user, Some(&password))
                    .json(&json!({"body": "x"}))
                    .send()
                    .await;
            }
        })
    };
    api.wait_posted(50, Duration::from_secs(30)).await?;
    poster.await?;
    assert_eq!(api.posted(49).len(), 1);
    assert_eq!(api.all_posted().len(), 50);
    Ok(())
}

#[tokio::test]
async fn testbed_endpoint_lists_requests() -> Result<()> {
    let api = FakeThulium::start().await?;
    api.add_ticket(1, "a@example.com");
    post(&api, 1, json!({"body": "x"})).await?;
    let url = format!("http://{}/_testbed/requests", api.addr());
    let listed: Value = client().get(url).send().await?.json().await?;
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["path"], "/api/tickets/1/customer_response");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reject_fault_answers_in_the_apis_own_words() -> Result<()> {
    let api = FakeThulium::start().await?;
    api.add_ticket(7, "customer@example.com");
    for (status, message) in [
        (400, "Malformed request"),
        (409, "Ticket 7 is closed"),
        (422, "The date does not match the format Y-m-d H:i."),
    ] {
        api.fail_next_for(
            7,
            1,
            Fault::Reject {
                status,
                message: message.into(),
            },
        );
        let response = post(&api, 7, json!({"body": "x"})).await?;
        assert_eq!(response.status().as_u16(), status);
        assert_eq!(error_message(response).await?, message);
    }
    assert!(api.posted(7).is_empty(), "a rejection stores nothing");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_in_flight_are_counted_with_their_latency() -> Result<()> {
    let api = FakeThulium::start().await?;
    for t in 1..=3 {
        api.add_ticket(t, "customer@example.com");
    }
    assert_eq!((api.in_flight(), api.max_in_flight()), (0, 0));
    api.set_latency(Duration::from_millis(500));
    let slow = async {
        let (a, b) = tokio::join!(
            post(&api, 1, json!({"body": "a"})),
            post(&api, 2, json!({"body": "b"}))
        );
        anyhow::Ok((a?.status(), b?.status()))
    };
    let watch = testbed::wait_until("two requests in flight", Duration::from_secs(30), || {
        api.in_flight() == 2
    });
    let (statuses, seen) = tokio::join!(slow, watch);
    seen?;
    assert_eq!(statuses?, (StatusCode::OK, StatusCode::OK));
    assert_eq!((api.in_flight(), api.max_in_flight()), (0, 2));
    assert_eq!((api.posts_in_flight(), api.max_posts_in_flight()), (0, 2));
    api.set_latency(Duration::ZERO);
    post(&api, 3, json!({"body": "c"})).await?;
    let get = client()
        .get(format!("{}/tickets/3", api.url()))
        .basic_auth(api.user(), Some(api.password()))
        .send()
        .await?;
    assert_eq!(get.status(), StatusCode::OK);
    assert_eq!((api.in_flight(), api.max_in_flight()), (0, 2));
    assert_eq!(api.max_posts_in_flight(), 2);
    Ok(())
}
