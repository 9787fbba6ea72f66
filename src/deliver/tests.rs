//! The delivery pipeline against an in-process API: order across batches, intent
//! before action, and stopping.

use super::*;
use crate::config::Config;
use crate::ledger::Ledger;
use crate::mail::body::BodyType;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use std::sync::Mutex as StdMutex;

fn bridge(url: &str, dir: &std::path::Path, concurrency: usize) -> Arc<Bridge> {
    let text = format!(
        "[thulium]\nurl = {url:?}\nuser = \"api_user\"\npassword = \"api_password\"\n\
         timezone = \"Europe/Warsaw\"\ntimeout = \"5s\"\nconcurrency = {concurrency}\n\
         [[mailbox]]\nname = \"support\"\nhost = \"127.0.0.1\"\ntls = \"none\"\n\
         username = \"u\"\npassword = \"p\"\n[state]\ndir = {dir:?}\n"
    );
    let config = Config::parse(&text, "test.toml").expect("config");
    let ledger = Ledger::open(dir).expect("ledger");
    Arc::new(Bridge::new(Arc::new(config), false, ledger, Arc::default()).expect("bridge"))
}

/// Reply `n` to `ticket`, sent `n` minutes after 10:00; the body names its ledger key.
fn reply(ticket: u64, n: u32, uid: u32) -> Outgoing {
    let key = format!("<r{ticket}-{n}@x>");
    Outgoing {
        uid,
        key: key.clone(),
        message_id: Some(key.clone()),
        from: None,
        ticket,
        request: CustomerResponse {
            body: key,
            body_type: BodyType::Plain,
            date: format!("2026-01-05 10:{n:02}"),
        },
        sent: DateTime::parse_from_rfc3339(&format!("2026-01-05T10:{n:02}:00+01:00")).ok(),
    }
}

/// Every POST's body (its ledger key) in order of arrival; each answered after `delay`.
#[derive(Clone)]
struct Api {
    posts: Arc<StdMutex<Vec<(u64, String)>>>,
    /// The mails found not `pending` in the ledger when their POST arrived.
    not_pending: Arc<StdMutex<Vec<String>>>,
    ledger: Arc<StdMutex<Option<Ledger>>>,
    delay: Duration,
}

async fn customer_response(State(api): State<Api>, Path(id): Path<u64>, body: Bytes) -> StatusCode {
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let key = json["body"].as_str().unwrap_or_default().to_string();
    let ledger = api.ledger.lock().unwrap().clone();
    if let Some(ledger) = ledger {
        let state = ledger.get(&key).ok().flatten().map(|e| e.state);
        if state != Some(EntryState::Pending) {
            api.not_pending.lock().unwrap().push(key.clone());
        }
    }
    api.posts.lock().unwrap().push((id, key));
    tokio::time::sleep(api.delay).await;
    StatusCode::OK
}

async fn serve(delay: Duration) -> (Api, String) {
    let api = Api {
        posts: Arc::default(),
        not_pending: Arc::default(),
        ledger: Arc::default(),
        delay,
    };
    let router = Router::new()
        .route(
            "/api/tickets/{id}/customer_response",
            post(customer_response),
        )
        .with_state(api.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/api", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (api, url)
}

async fn drain(delivery: &mut Delivery) -> Vec<(Outgoing, Delivered)> {
    let mut all = Vec::new();
    while delivery.unfinished() > 0 {
        delivery.wait().await;
        all.extend(delivery.finished());
    }
    all
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tickets_replies_keep_their_order_across_batches() {
    let (api, url) = serve(Duration::from_millis(5)).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = bridge(&url, dir.path(), 8);
    let mut delivery = Delivery::new(&bridge, "support");
    // Within a batch newest first (the date decides); the second batch while the first
    // is still being posted.
    let first: Vec<Outgoing> = (0..6u32)
        .rev()
        .map(|n| reply(1, n, 100 - n))
        .chain((2..=9).map(|t| reply(t, 0, t as u32)))
        .collect();
    delivery.submit(first);
    delivery.submit((6..12u32).map(|n| reply(1, n, 200 + n)).collect());
    let done = drain(&mut delivery).await;
    assert_eq!(done.len(), 20);
    assert!(
        done.iter().all(|(_, d)| *d == Delivered::Posted),
        "{done:?}"
    );
    let ticket_1: Vec<String> = api
        .posts
        .lock()
        .unwrap()
        .iter()
        .filter(|(t, _)| *t == 1)
        .map(|(_, k)| k.clone())
        .collect();
    let expected: Vec<String> = (0..12).map(|n| format!("<r1-{n}@x>")).collect();
    assert_eq!(ticket_1, expected);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_post_finds_its_mail_pending_and_is_posted_when_handed_back() {
    let (api, url) = serve(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = bridge(&url, dir.path(), 4);
    *api.ledger.lock().unwrap() = Some(bridge.ledger.clone());
    let mut delivery = Delivery::new(&bridge, "support");
    let mut uid = 0;
    let mut handed_back = 0;
    for batch in 0..3u64 {
        let mails: Vec<Outgoing> = (0..150u64)
            .map(|t| {
                uid += 1;
                reply(1000 * batch + t % 50, (t / 50) as u32, uid)
            })
            .collect();
        delivery.submit(mails);
        for (mail, outcome) in delivery.finished() {
            assert_eq!(outcome, Delivered::Posted);
            let entry = bridge.ledger.get(&mail.key).unwrap().unwrap();
            assert_eq!(entry.state, EntryState::Posted, "{}", mail.key);
            handed_back += 1;
        }
    }
    for (mail, outcome) in drain(&mut delivery).await {
        assert_eq!(outcome, Delivered::Posted);
        let entry = bridge.ledger.get(&mail.key).unwrap().unwrap();
        assert_eq!((entry.state, entry.attempts), (EntryState::Posted, 1));
        handed_back += 1;
    }
    assert_eq!(handed_back, 450);
    assert_eq!(api.posts.lock().unwrap().len(), 450);
    assert_eq!(*api.not_pending.lock().unwrap(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn after_stop_no_post_starts_and_the_rest_is_left_unrecorded() {
    let (api, url) = serve(Duration::from_millis(40)).await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = bridge(&url, dir.path(), 2);
    let mut delivery = Delivery::new(&bridge, "support");
    delivery.submit((1..=200u64).map(|t| reply(t, 0, t as u32)).collect());
    delivery.wait().await;
    let mut done = delivery.finished();
    delivery.stop();
    done.extend(drain(&mut delivery).await);
    let posted: Vec<&Outgoing> = done
        .iter()
        .filter(|(_, d)| *d == Delivered::Posted)
        .map(|(m, _)| m)
        .collect();
    let stopped: Vec<&Outgoing> = done
        .iter()
        .filter(|(_, d)| *d == Delivered::Stopped)
        .map(|(m, _)| m)
        .collect();
    assert_eq!(posted.len() + stopped.len(), 200, "{done:?}");
    assert!(posted.len() <= 8, "{} posted after stop", posted.len());
    assert_eq!(api.posts.lock().unwrap().len(), posted.len());
    // Only the groups already committed are pending; the rest never reached the ledger.
    let recorded = stopped
        .iter()
        .filter(|m| bridge.ledger.get(&m.key).unwrap().is_some())
        .count();
    assert!(
        recorded <= 2 * INTENT_GROUP,
        "{recorded} stopped mails recorded"
    );
}
