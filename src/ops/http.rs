//! The `[metrics] listen` endpoint: `/metrics` (Prometheus text) and `/healthz`.
//!
//! Two fixed GET routes need no web framework: read the request line, answer, close.

use crate::ops::health::Health;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Connections answered at once; more are closed at once (a scraper needs one).
const MAX_CONNECTIONS: usize = 32;
/// Pause after a failed accept (EMFILE: out of file descriptors), doubling to a cap.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
const ACCEPT_BACKOFF_CAP: Duration = Duration::from_secs(5);

/// Binds now (so a bad address fails at start) and serves in the background.
pub async fn serve(
    addr: SocketAddr,
    health: Arc<Health>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics and /healthz");
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    Ok(tokio::spawn(async move {
        let mut backoff = ACCEPT_BACKOFF;
        loop {
            let mut stream = match listener.accept().await {
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
            let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                continue;
            };
            let health = Arc::clone(&health);
            tokio::spawn(async move {
                let _slot = slot;
                let mut buf = [0u8; 2048];
                let n = match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
                    .await
                {
                    Ok(Ok(n)) => n,
                    _ => return,
                };
                let request = String::from_utf8_lossy(&buf[..n]);
                let path = request.split_whitespace().nth(1).unwrap_or("/");
                let (status, content_type, body) = route(path, &health);
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(body.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    }))
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
