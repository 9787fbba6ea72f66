//! A plain TCP relay that a test can cut: every connection through it closes
//! at once and new ones are refused until it is restored. It stands between
//! one bridge process and its database, which stays up for everyone else (a
//! network partition on one host, a database failing over).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use anyhow::{Context, Result};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Mutex, oneshot};
use tokio::task::{JoinHandle, JoinSet};

/// Relays a loopback port to `target` until cut; serves until dropped.
pub struct CuttableProxy {
    addr: SocketAddr,
    target: SocketAddr,
    counters: Arc<Counters>,
    cut: AtomicBool,
    /// The accept loop, `None` while cut. Async: `cut` waits for it to end.
    serving: Mutex<Option<Serving>>,
}

#[derive(Default)]
struct Counters {
    /// Connections accepted since the start.
    accepted: AtomicUsize,
    /// Connections being relayed now.
    open: AtomicUsize,
}

struct Serving {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl CuttableProxy {
    /// Listens on a free loopback port in front of `target`.
    pub async fn start(target: SocketAddr) -> Result<CuttableProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("bind the cuttable proxy")?;
        let addr = listener.local_addr()?;
        let counters = Arc::new(Counters::default());
        let serving = Serving::spawn(listener, target, Arc::clone(&counters));
        Ok(CuttableProxy {
            addr,
            target,
            counters,
            cut: AtomicBool::new(false),
            serving: Mutex::new(Some(serving)),
        })
    }

    /// Where clients connect (the same after a [`restore`](Self::restore)).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Where it relays to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Connections accepted since the start (a client reconnecting counts again).
    pub fn accepted(&self) -> usize {
        self.counters.accepted.load(Ordering::SeqCst)
    }

    /// Connections being relayed now.
    pub fn open(&self) -> usize {
        self.counters.open.load(Ordering::SeqCst)
    }

    /// Whether it is cut.
    pub fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }

    /// Closes the listener and every connection; returns once they are
    /// closed, so that a new connection is refused (`ECONNREFUSED`) and the
    /// next read of an old one sees its end.
    pub async fn cut(&self) {
        let mut serving = self.serving.lock().await;
        if let Some(serving) = serving.take() {
            let _ = serving.stop.send(());
            let _ = serving.task.await;
        }
        self.cut.store(true, Ordering::SeqCst);
    }

    /// Listens again on the same port. Fails if another process took it meanwhile.
    pub async fn restore(&self) -> Result<()> {
        let mut serving = self.serving.lock().await;
        if serving.is_none() {
            let listener = TcpListener::bind(self.addr)
                .await
                .with_context(|| format!("bind {} again", self.addr))?;
            *serving = Some(Serving::spawn(
                listener,
                self.target,
                Arc::clone(&self.counters),
            ));
        }
        self.cut.store(false, Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every relay.
        if let Some(serving) = self.serving.get_mut().take() {
            serving.task.abort();
        }
    }
}

impl Serving {
    fn spawn(listener: TcpListener, target: SocketAddr, counters: Arc<Counters>) -> Serving {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(accept_loop(listener, target, counters, stopped));
        Serving { stop, task }
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    counters: Arc<Counters>,
    mut stopped: oneshot::Receiver<()>,
) {
    let mut relays = JoinSet::new();
    loop {
        tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    counters.accepted.fetch_add(1, Ordering::SeqCst);
                    relays.spawn(relay(client, target, Arc::clone(&counters)));
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
            },
            Some(_) = relays.join_next(), if !relays.is_empty() => {}
        }
    }
    drop(listener);
    relays.abort_all();
    // An aborted relay's sockets are closed once its join returns.
    while relays.join_next().await.is_some() {}
}

async fn relay(mut client: TcpStream, target: SocketAddr, counters: Arc<Counters>) {
    let _open = Open::count(&counters);
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

/// Counts one relay in [`Counters::open`] while it lives, aborted or not.
struct Open<'a>(&'a Counters);

impl<'a> Open<'a> {
    fn count(counters: &'a Counters) -> Open<'a> {
        counters.open.fetch_add(1, Ordering::SeqCst);
        Open(counters)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}
