//! The fake API's own ceiling: how many `customer_response` POSTs per second it serves
//! on this machine with the benchmark's concurrency and latency, measured with a lean
//! keep-alive HTTP/1.1 client on its own thread (so the figure is the server's, not
//! the client's). The benchmark is only meaningful while the bridge stays well below.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use testbed::{FakeThulium, FakeThuliumConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Requests per second served by a fresh fake API with `latency`, `concurrency` clients
/// posting for `duration`. Runs the server on the current runtime.
pub(crate) async fn measure(
    latency: Duration,
    concurrency: usize,
    duration: Duration,
) -> Result<f64> {
    let api = FakeThulium::start_with(FakeThuliumConfig {
        auto_tickets: true,
        latency,
        record_bodies: false,
        ..FakeThuliumConfig::default()
    })
    .await?;
    let addr = api.addr();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        api.user(),
        api.password()
    ));
    // The client gets its own thread and runtime, as a separate process would.
    let client = std::thread::spawn(move || -> Result<(u64, Duration)> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async move {
            let started = Instant::now();
            let deadline = started + duration;
            let mut tasks = tokio::task::JoinSet::new();
            for c in 0..concurrency {
                let auth = auth.clone();
                tasks.spawn(async move { client(addr, &auth, c as u64, deadline).await });
            }
            let mut total = 0;
            while let Some(done) = tasks.join_next().await {
                total += done??;
            }
            Ok((total, started.elapsed()))
        })
    });
    let (requests, elapsed) = tokio::task::spawn_blocking(move || client.join())
        .await?
        .map_err(|_| anyhow::anyhow!("the load client panicked"))??;
    drop(api);
    Ok(requests as f64 / elapsed.as_secs_f64())
}

/// One keep-alive connection posting until `deadline`; returns the requests answered 200.
async fn client(
    addr: std::net::SocketAddr,
    auth: &str,
    lane: u64,
    deadline: Instant,
) -> Result<u64> {
    let mut stream = TcpStream::connect(addr).await.context("connect")?;
    stream.set_nodelay(true)?;
    let mut buf = vec![0u8; 4096];
    let mut done = 0u64;
    while Instant::now() < deadline {
        let ticket = 1 + lane * 1_000_000 + done;
        let body = format!(
            r#"{{"body":"<p>Thank you, the parcel arrived. bench-id:{done}</p>","body_type":"HTML","date":"2026-01-05 08:00"}}"#
        );
        let request = format!(
            "POST /api/tickets/{ticket}/customer_response HTTP/1.1\r\nHost: {addr}\r\n\
             Authorization: Basic {auth}\r\nAccept: application/json\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let status = read_response(&mut stream, &mut buf).await?;
        if status != 200 {
            bail!("the fake API answered {status}");
        }
        done += 1;
    }
    Ok(done)
}

/// Reads one response (head and a `Content-Length` body); returns its status.
async fn read_response(stream: &mut TcpStream, buf: &mut [u8]) -> Result<u16> {
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..]).await?;
        if n == 0 {
            bail!("the fake API closed the connection");
        }
        filled += n;
        let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") else {
            if filled == buf.len() {
                bail!("response head too long");
            }
            continue;
        };
        let head = std::str::from_utf8(&buf[..end]).context("response head")?;
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("status line")?;
        let length: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        let mut have = filled - (end + 4);
        while have < length {
            let n = stream.read(buf).await?;
            if n == 0 {
                bail!("the fake API closed the connection");
            }
            have += n;
        }
        return Ok(status);
    }
}
