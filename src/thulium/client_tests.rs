//! The client against a tiny in-process API (axum), one behaviour per test.

use super::{ApiError, ThuliumClient};
use crate::decide::CustomerResponse;
use crate::mail::body::BodyType;
use axum::Router;
use axum::body::Bytes;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use secrecy::SecretString;
use std::time::{Duration, Instant};

const USER: &str = "api_user";
const PASSWORD: &str = "s3cret";

fn reply() -> CustomerResponse {
    CustomerResponse {
        body: "<p>Thanks, it works now</p>".into(),
        body_type: BodyType::Html,
        date: "2025-03-01 10:15".into(),
    }
}

fn api_error(status: StatusCode, message: &str) -> Response {
    let body = serde_json::json!({"request_id": "req-1", "errors": [{"message": message, "code": status.as_u16()}]});
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn authorized(headers: &HeaderMap) -> bool {
    let want = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        == Some(want.as_str())
}

/// The ticket id chooses the answer.
async fn customer_response(Path(id): Path<u64>, headers: HeaderMap, body: Bytes) -> Response {
    if !authorized(&headers) {
        return api_error(StatusCode::UNAUTHORIZED, "Invalid credentials");
    }
    match id {
        404 => api_error(StatusCode::NOT_FOUND, "Ticket not found"),
        422 => api_error(StatusCode::UNPROCESSABLE_ENTITY, "date: invalid format"),
        429 => (
            StatusCode::TOO_MANY_REQUESTS,
            [(header::RETRY_AFTER, "3")],
            "slow down",
        )
            .into_response(),
        503 => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "10")],
            "down for maintenance",
        )
            .into_response(),
        _ => {
            let json = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                == Some("application/json");
            let sent: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let want = serde_json::json!({"body": "<p>Thanks, it works now</p>", "body_type": "HTML", "date": "2025-03-01 10:15"});
            if json && sent == want {
                StatusCode::OK.into_response()
            } else {
                api_error(
                    StatusCode::BAD_REQUEST,
                    &format!("unexpected request: {sent}"),
                )
            }
        }
    }
}

async fn ticket(Path(id): Path<u64>, headers: HeaderMap) -> Response {
    if !authorized(&headers) {
        return api_error(StatusCode::UNAUTHORIZED, "Invalid credentials");
    }
    match id {
        7 => (
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"ticket_id":7,"from":"jan@example.com","customer_id":12,"subject":"Printer","status_id":"2",
                "priority":"high","messages":[{"type":"MAIL","body":"<p>Hi</p>","date":"2025-03-01 10:15:00"}]}"#,
        )
            .into_response(),
        8 => r#"{"ticket_id":"8","status_id":3,"messages":[]}"#.into_response(),
        _ => api_error(StatusCode::NOT_FOUND, "Ticket not found"),
    }
}

/// Serves the fake API under `/api`, and an HTML 404 everywhere else; returns the root.
async fn start_api() -> String {
    let app = Router::new()
        .route(
            "/api/tickets/{id}/customer_response",
            post(customer_response),
        )
        .route("/api/tickets/{id}", get(ticket))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/html")],
                "<!DOCTYPE html><html><body>404</body></html>",
            )
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/api")
}

fn client(root: &str, password: &str, timeout: Duration) -> ThuliumClient {
    ThuliumClient::new(root, USER, SecretString::from(password), timeout).unwrap()
}

#[tokio::test]
async fn a_2xx_with_an_empty_body_is_success_with_or_without_a_trailing_slash() {
    let root = start_api().await;
    for root in [root.clone(), format!("{root}/")] {
        let c = client(&root, PASSWORD, Duration::from_secs(5));
        assert_eq!(
            c.post_customer_response(1234, &reply()).await,
            Ok(()),
            "{root}"
        );
    }
}

#[tokio::test]
async fn a_404_is_permanent_with_the_apis_message() {
    let c = client(&start_api().await, PASSWORD, Duration::from_secs(5));
    assert_eq!(
        c.post_customer_response(404, &reply()).await,
        Err(ApiError::Permanent {
            status: 404,
            message: "Ticket not found".into()
        })
    );
    assert_eq!(
        c.post_customer_response(422, &reply()).await,
        Err(ApiError::Permanent {
            status: 422,
            message: "date: invalid format".into()
        })
    );
}

#[tokio::test]
async fn a_401_is_a_credentials_problem_and_names_no_secret() {
    let c = client(&start_api().await, "wrong-password", Duration::from_secs(5));
    let e = c.post_customer_response(1, &reply()).await.unwrap_err();
    assert_eq!(
        e,
        ApiError::Credentials {
            status: 401,
            message: "Invalid credentials".into()
        }
    );
    assert!(!format!("{e} {e:?}").contains("wrong-password"));
    assert_eq!(c.probe().await, Err(e));
}

#[tokio::test]
async fn a_429_honours_retry_after() {
    let c = client(&start_api().await, PASSWORD, Duration::from_secs(5));
    match c.post_customer_response(429, &reply()).await {
        Err(ApiError::Transient {
            retry_after,
            sent,
            reason,
        }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(3)));
            assert!(!sent, "a 429 was not acted on");
            assert!(
                reason.contains("429") && reason.contains("slow down"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_503_is_transient_with_its_retry_after() {
    let c = client(&start_api().await, PASSWORD, Duration::from_secs(5));
    match c.post_customer_response(503, &reply()).await {
        Err(ApiError::Transient {
            retry_after,
            reason,
            ..
        }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(10)));
            assert!(reason.contains("down for maintenance"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_ticket_is_read_leniently() {
    let c = client(&start_api().await, PASSWORD, Duration::from_secs(5));
    let t = c.get_ticket(7).await.unwrap();
    assert_eq!(
        (t.ticket_id, t.from.as_deref()),
        (7, Some("jan@example.com"))
    );
    assert_eq!(t.messages[0].r#type.as_deref(), Some("MAIL"));
    let t = c.get_ticket(8).await.unwrap();
    assert_eq!(t.ticket_id, 8);
    assert!(matches!(
        c.get_ticket(9).await,
        Err(ApiError::Permanent { status: 404, .. })
    ));
}

#[tokio::test]
async fn probe_accepts_the_apis_404_but_not_a_web_page() {
    let root = start_api().await;
    assert_eq!(
        client(&root, PASSWORD, Duration::from_secs(5))
            .probe()
            .await,
        Ok(())
    );
    let web = root.trim_end_matches("/api").to_string() + "/web";
    match client(&web, PASSWORD, Duration::from_secs(5)).probe().await {
        Err(ApiError::Permanent {
            status: 404,
            message,
        }) => assert!(message.contains("not the Thulium API"), "{message}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn no_answer_within_the_timeout_is_transient_and_maybe_sent() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts, reads nothing, answers nothing.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let c = client(
        &format!("http://{addr}/api"),
        PASSWORD,
        Duration::from_millis(300),
    );
    let started = Instant::now();
    match c.post_customer_response(1, &reply()).await {
        Err(ApiError::Transient {
            sent,
            reason,
            retry_after,
        }) => {
            assert!(sent, "the request was written: its outcome is unknown");
            assert_eq!(retry_after, None);
            assert!(reason.contains("no answer within 300ms"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_closed_port_is_transient_and_not_sent() {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let c = client(
        &format!("http://{addr}/api"),
        PASSWORD,
        Duration::from_secs(5),
    );
    match c.post_customer_response(1, &reply()).await {
        Err(ApiError::Transient { sent, reason, .. }) => {
            assert!(!sent, "nothing reached a server: {reason}");
            assert!(
                reason.starts_with("POST tickets/1/customer_response: "),
                "{reason}"
            );
            assert!(!reason.contains(PASSWORD));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_client_and_its_errors_cross_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<ThuliumClient>();
    shareable::<ApiError>();
    shareable::<super::SetupError>();
}
