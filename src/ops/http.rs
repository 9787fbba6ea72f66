//! The `[metrics] listen` endpoint: `/metrics` (Prometheus text), `/healthz`, `/readyz`.
//!
//! Three fixed routes need no web framework: read the request head, answer, close. Each
//! connection is its own task, its head must come within `HEAD_TIMEOUT`, and idle
//! connections give way to new ones (`ConnectionSlots`), so none can lock a probe out.

use crate::ops::connection_slots::{ConnectionSlots, Slot};
use crate::ops::health::Health;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Connections open at once (a scraper and a probe need one each); more evict idle ones.
const MAX_CONNECTIONS: usize = 32;
/// The whole request head must arrive within this (a byte now and then does not count).
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// An answer not taken within this is dropped (a client that never reads).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a request head read; only the request line matters.
const MAX_HEAD: usize = 8 << 10;
/// Pause after a failed accept (EMFILE: out of file descriptors), doubling to a cap.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
const ACCEPT_BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Binds now (so a bad address fails at start) and serves in the background.
pub(crate) async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics and /healthz");
    let slots = ConnectionSlots::new(MAX_CONNECTIONS);
    Ok(tokio::spawn(async move {
        let mut backoff = ACCEPT_BACKOFF;
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => {
                    backoff = ACCEPT_BACKOFF;
                    stream
                }
                Err(e) => {
                    if backoff == ACCEPT_BACKOFF {
                        tracing::warn!("metrics listener: accept failed ({e}); backing off");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_CAP);
                    continue;
                }
            };
            // Every slot busy answering: this connection is closed unheard.
            let Some(slot) = slots.admit() else {
                continue;
            };
            tokio::spawn(answer(stream, slot, Arc::clone(&health)));
        }
    }))
}

/// Reads one request head and answers it, unless a newcomer evicts the connection first.
async fn answer(mut stream: TcpStream, mut slot: Slot, health: Arc<Health>) {
    let head = tokio::select! {
        _ = slot.evicted() => return,
        head = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)) => match head {
            Ok(Some(head)) => head,
            _ => return,
        },
    };
    if !slot.answering() {
        return;
    }
    let response = respond(&String::from_utf8_lossy(&head), &health);
    let _ = tokio::time::timeout(WRITE_TIMEOUT, async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    })
    .await;
}

/// The request head (up to its empty line, or `MAX_HEAD` bytes); `None` when the client
/// closed before sending one. Read whole, so closing never resets the answer away.
async fn read_head(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
        let ended =
            head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n");
        if ended || head.len() >= MAX_HEAD {
            return Some(head);
        }
    }
}

/// The whole answer to one request: GET and HEAD (its head only) on the routes; any
/// other method is refused, since nothing here changes by request.
fn respond(request: &str, health: &Health) -> Vec<u8> {
    let mut words = request.lines().next().unwrap_or("").split_whitespace();
    let method = words.next().unwrap_or("");
    let path = words.next().unwrap_or("/");
    let (status, content_type, body) = match method {
        "GET" | "HEAD" => route(path, health),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET and HEAD\n".into(),
        ),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nAllow: GET, HEAD\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(body.as_bytes());
    }
    response
}

fn route(path: &str, health: &Health) -> (&'static str, &'static str, String) {
    match path {
        "/metrics" => (
            "200 OK",
            "text/plain; version=0.0.4",
            crate::ops::metrics::render(),
        ),
        "/readyz" => {
            let (ready, report) = health.readiness();
            let status = if ready {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            (status, "application/json", format!("{report}\n"))
        }
        "/healthz" => {
            let (ok, report) = health.report();
            let status = if ok {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            (status, "application/json", format!("{report}\n"))
        }
        _ => (
            "404 Not Found",
            "text/plain",
            "try /metrics, /healthz or /readyz\n".into(),
        ),
    }
}
