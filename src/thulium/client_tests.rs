//! The client against testbed's fake API (the documented contract), one behaviour per test.

use super::new_ticket::NewTicketRequest;
use super::{ApiError, Gate, ThuliumClient};
use crate::mail::body::BodyType;
use crate::mail::decide::CustomerResponse;
use secrecy::SecretString;
use std::time::{Duration, Instant};
use testbed::{FakeThulium, Fault};

fn reply() -> CustomerResponse {
    CustomerResponse {
        body: "<p>Thanks, it works now</p>".into(),
        body_type: BodyType::Html,
        date: "2025-03-01 10:15".into(),
    }
}

async fn fake() -> FakeThulium {
    let api = FakeThulium::start().await.expect("fake API");
    api.add_ticket(1234, "jan@example.com");
    api
}

fn client(root: &str, api: &FakeThulium, password: &str, timeout: Duration) -> ThuliumClient {
    ThuliumClient::new(
        root,
        api.user(),
        SecretString::from(password),
        timeout,
        None,
    )
    .expect("client")
}

fn good(api: &FakeThulium) -> ThuliumClient {
    client(&api.url(), api, api.password(), Duration::from_secs(5))
}

#[tokio::test]
async fn a_2xx_with_an_empty_body_is_success_with_or_without_a_trailing_slash() {
    let api = fake().await;
    for root in [api.url(), format!("{}/", api.url())] {
        let c = client(&root, &api, api.password(), Duration::from_secs(5));
        assert_eq!(
            c.post_customer_response(1234, &reply(), &Gate::open())
                .await,
            Ok(()),
            "{root}"
        );
    }
    assert_eq!(api.posted(1234).len(), 2);
}

#[tokio::test]
async fn a_missing_ticket_or_an_invalid_date_is_permanent_with_the_apis_message() {
    let api = fake().await;
    let c = good(&api);
    match c.post_customer_response(404, &reply(), &Gate::open()).await {
        Err(ApiError::Permanent {
            status: 404,
            message,
        }) => {
            assert!(message.contains("not found"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    let bad_date = CustomerResponse {
        date: "yesterday".into(),
        ..reply()
    };
    match c
        .post_customer_response(1234, &bad_date, &Gate::open())
        .await
    {
        Err(ApiError::Permanent {
            status: 422,
            message,
        }) => {
            assert!(message.contains("Y-m-d H:i"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_401_is_a_credentials_problem_and_names_no_secret() {
    let api = fake().await;
    let c = client(&api.url(), &api, "wrong-password", Duration::from_secs(5));
    let e = c
        .post_customer_response(1234, &reply(), &Gate::open())
        .await
        .unwrap_err();
    assert!(
        matches!(e, ApiError::Credentials { status: 401, .. }),
        "{e:?}"
    );
    assert!(!format!("{e} {e:?}").contains("wrong-password"));
    assert_eq!(c.probe().await, Err(e));
}

#[tokio::test]
async fn a_429_honours_retry_after_and_was_not_acted_on() {
    let api = fake().await;
    api.fail_next(
        1,
        Fault::TooManyRequests {
            retry_after_secs: 3,
        },
    );
    match good(&api)
        .post_customer_response(1234, &reply(), &Gate::open())
        .await
    {
        Err(ApiError::Transient {
            retry_after,
            sent,
            reason,
        }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(3)));
            assert!(!sent, "a 429 was not acted on");
            assert!(reason.contains("429"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(api.posted(1234).is_empty());
}

#[tokio::test]
async fn a_503_is_transient_and_maybe_acted_on() {
    let api = fake().await;
    api.fail_next(1, Fault::Status(503));
    match good(&api)
        .post_customer_response(1234, &reply(), &Gate::open())
        .await
    {
        Err(ApiError::Transient { sent, reason, .. }) => {
            assert!(sent, "a gateway may answer 5xx after the backend stored it");
            assert!(reason.contains("503"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn the_documented_ticket_is_read() {
    let api = fake().await;
    let t = good(&api).get_ticket(1234).await.expect("ticket");
    assert_eq!(
        (t.ticket_id, t.from.as_deref()),
        (1234, Some("jan@example.com"))
    );
    assert!(
        t.messages
            .iter()
            .any(|m| m.r#type.as_deref() == Some("MAIL"))
    );
    assert!(t.messages.iter().all(|m| m.created_at.is_some()));
    assert!(matches!(
        good(&api).get_ticket(9).await,
        Err(ApiError::Permanent { status: 404, .. })
    ));
}

#[tokio::test]
async fn probe_accepts_the_apis_404_but_not_a_web_page() {
    let api = fake().await;
    assert_eq!(good(&api).probe().await, Ok(()));
    // A web server that is not the API (a wrong thulium.url): any path, an HTML page.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf).await;
            let page = "<!DOCTYPE html><html><body>Not found</body></html>";
            let answer = format!(
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    let web = client(
        &format!("http://{addr}/"),
        &api,
        api.password(),
        Duration::from_secs(5),
    );
    match web.probe().await {
        Err(ApiError::Permanent {
            status: 404,
            message,
        }) => {
            assert!(message.contains("not the Thulium API"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn no_answer_within_the_timeout_is_transient_and_maybe_sent() {
    let api = fake().await;
    api.fail_next(1, Fault::Latency(Duration::from_secs(3)));
    let c = client(&api.url(), &api, api.password(), Duration::from_millis(300));
    let started = Instant::now();
    match c
        .post_customer_response(1234, &reply(), &Gate::open())
        .await
    {
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
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn an_upload_gets_time_for_its_size_beyond_the_timeout() {
    let api = fake().await;
    let c = client(&api.url(), &api, api.password(), Duration::from_millis(300));
    let file = vec![7u8; 1000];
    // 1 MiB announced: 8 s more than the 300 ms timeout, so 1 s of latency is fine.
    api.fail_next(1, Fault::Latency(Duration::from_secs(1)));
    let token = c.upload("scan.bin", file.clone().into(), 1 << 20).await;
    assert!(token.is_ok(), "{token:?}");
    // A small file gets no more than the timeout.
    api.fail_next(1, Fault::Latency(Duration::from_secs(1)));
    let token = c.upload("scan.bin", file.clone().into(), 1000).await;
    assert!(
        matches!(token, Err(ApiError::Transient { sent: true, .. })),
        "{token:?}"
    );
    // The error names the time the upload had: 300 ms + 64 KiB at 128 KiB/s.
    api.fail_next(1, Fault::Latency(Duration::from_secs(3)));
    match c.upload("scan.bin", file.into(), 64 << 10).await {
        Err(ApiError::Transient { reason, .. }) => {
            assert!(reason.contains("no answer within 800ms"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_closed_port_is_transient_and_not_sent() {
    let api = fake().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let c = client(
        &format!("http://{closed}/api"),
        &api,
        "s3cret",
        Duration::from_secs(5),
    );
    match c.post_customer_response(1, &reply(), &Gate::open()).await {
        Err(ApiError::Transient { sent, reason, .. }) => {
            assert!(!sent, "nothing reached a server: {reason}");
            assert!(
                reason.starts_with("POST tickets/1/customer_response: "),
                "{reason}"
            );
            assert!(!reason.contains("s3cret"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_client_and_its_errors_cross_threads() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<ThuliumClient>();
    shareable::<ApiError>();
}

/// One request as it arrives on a raw socket (head, and the body up to EOF or its
/// Content-Length); a `201` goes back if it came whole.
async fn capture_one() -> (String, tokio::task::JoinHandle<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let url = format!("http://{}/api", listener.local_addr().expect("address"));
    let task = tokio::spawn(async move {
        let Ok((mut conn, _)) = listener.accept().await else {
            return String::new();
        };
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let whole = |got: &[u8]| {
            let text = String::from_utf8_lossy(got).to_ascii_lowercase();
            let Some((head, body)) = text.split_once("\r\n\r\n") else {
                return false;
            };
            head.lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|n| n.trim().parse::<usize>().ok())
                .is_some_and(|n| body.len() >= n)
        };
        while !whole(&got) {
            match tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
                _ => break,
            }
        }
        if whole(&got) {
            let _ = conn
                .write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
                .await;
        }
        String::from_utf8_lossy(&got).into_owned()
    });
    (url, task)
}

/// A client of a raw socket (`capture_one`); the fake API only lends a user name.
async fn raw_client(url: &str) -> ThuliumClient {
    client(url, &fake().await, "pw", Duration::from_secs(5))
}

fn new_ticket() -> NewTicketRequest {
    NewTicketRequest {
        to: "support@acme.example".into(),
        from: "jan@example.com".into(),
        subject: "Printer".into(),
        body: "Thanks, it works now".into(),
        body_type: BodyType::Plain,
        cc: vec![],
        attachments: vec![],
        ticket_queue_id: None,
        tags: vec![],
        category_id: None,
        status_id: None,
    }
}

#[tokio::test]
async fn a_gated_post_goes_as_a_plain_request_while_the_gate_allows_it() {
    let (url, arrived) = capture_one().await;
    let c = raw_client(&url).await;
    let gate = Gate::new(|| true);
    assert_eq!(c.post_customer_response(1, &reply(), &gate).await, Ok(()));
    let request = arrived.await.expect("captured").to_ascii_lowercase();
    // A known length, as an ungated body: a strict server need not take chunked bodies.
    assert!(request.contains("\r\ncontent-length: "), "{request}");
    assert!(!request.contains("transfer-encoding"), "{request}");
    assert!(request.contains("thanks, it works now"), "{request}");
}

/// A reply or a new ticket whose gate closed: nothing of the body reaches the server,
/// and the error says it was withheld, not sent.
#[tokio::test]
async fn a_post_or_a_new_ticket_whose_gate_closed_is_withheld_and_not_sent() {
    let closed = Gate::new(|| false);
    let (url, reply_arrived) = capture_one().await;
    let posted = raw_client(&url)
        .await
        .post_customer_response(1, &reply(), &closed)
        .await;
    let (url, ticket_arrived) = capture_one().await;
    let created = raw_client(&url)
        .await
        .create_ticket(&new_ticket(), &closed)
        .await;
    for (result, arrived) in [
        (posted.map(|()| 0), reply_arrived),
        (created, ticket_arrived),
    ] {
        match result {
            Err(ApiError::Transient { sent, reason, .. }) => {
                assert!(!sent, "the body never left: {reason}");
                assert!(reason.contains("withheld"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let request = arrived.await.expect("captured");
        assert!(
            !request.contains("it works now"),
            "the body arrived: {request}"
        );
    }
}
