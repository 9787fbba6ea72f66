//! A TCP relay that holds every new connection until it is released: a server
//! that is slow to greet (an IMAP server under load, a far-away one), with the
//! test deciding when the greeting comes instead of a timer.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// Relays to `upstream` once [`HeldProxy::release`] was called; serves until dropped.
pub struct HeldProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

struct Shared {
    released: watch::Sender<bool>,
    /// Connections accepted and held back.
    waiting: AtomicUsize,
    /// Connections put through to the upstream server.
    relayed: AtomicUsize,
}

impl HeldProxy {
    /// Listens on a free loopback port in front of `upstream`; holds until released.
    pub async fn start(upstream: SocketAddr) -> Result<HeldProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("bind the held proxy")?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            released: watch::Sender::new(false),
            waiting: AtomicUsize::new(0),
            relayed: AtomicUsize::new(0),
        });
        let server = tokio::spawn(accept_loop(listener, upstream, Arc::clone(&shared)));
        Ok(HeldProxy {
            addr,
            shared,
            server,
        })
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted and still held back.
    pub fn waiting(&self) -> usize {
        self.shared.waiting.load(Ordering::SeqCst)
    }

    /// Connections put through so far.
    pub fn relayed(&self) -> usize {
        self.shared.relayed.load(Ordering::SeqCst)
    }

    /// Puts the held connections through, and every later one at once.
    pub fn release(&self) {
        self.shared.released.send_replace(true);
    }
}

impl Drop for HeldProxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every relay.
        self.server.abort();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, shared: Arc<Shared>) {
    let mut relays = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    relays.spawn(relay(client, upstream, Arc::clone(&shared)));
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            },
            Some(_) = relays.join_next(), if !relays.is_empty() => {}
        }
    }
}

async fn relay(mut client: TcpStream, upstream: SocketAddr, shared: Arc<Shared>) {
    shared.waiting.fetch_add(1, Ordering::SeqCst);
    let mut released = shared.released.subscribe();
    let mut peek = [0u8; 1];
    let go = tokio::select! {
        r = released.wait_for(|r| *r) => r.is_ok(),
        // The client gave up (or spoke first, which IMAP clients never do).
        _ = client.peek(&mut peek) => false,
    };
    shared.waiting.fetch_sub(1, Ordering::SeqCst);
    if !go {
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        return;
    };
    shared.relayed.fetch_add(1, Ordering::SeqCst);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}
