//! An IMAP proxy that makes a full server (the test's Dovecot) look like one
//! that lacks what Exchange Online and Gmail lack: it hides `MOVE`,
//! `UIDPLUS` and `IDLE` from every CAPABILITY list and refuses those
//! commands, hides that keywords are kept (`\*` in PERMANENTFLAGS) and
//! refuses to set one, and drops the connection some time after login or
//! after IDLE starts, as those services do (Exchange ~30 min, Gmail ~10).
//!
//! It relays line by line, IMAP literals included (`{n}` waits for the
//! server's `+`, `{n+}` does not), and sends each server response whole, so
//! what it injects (a tagged `BAD`/`NO`) never splits one. It speaks plain
//! IMAP only: `STARTTLS` and `COMPRESS` are hidden and refused too.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use crate::imap_client::literal_length;

/// What the proxy hides, refuses and drops. `Default` hides nothing.
#[derive(Clone, Debug, Default)]
pub struct ProxyOptions {
    /// Hide `MOVE`; refuse `MOVE` and `UID MOVE` with `BAD`.
    pub hide_move: bool,
    /// Hide `UIDPLUS`; refuse `UID EXPUNGE` with `BAD` and strip the
    /// `APPENDUID`/`COPYUID` response codes.
    pub hide_uidplus: bool,
    /// Hide `IDLE`; refuse `IDLE` with `BAD`.
    pub hide_idle: bool,
    /// Strip `\*` and keywords from PERMANENTFLAGS (keywords are not kept,
    /// as on Exchange Online) and refuse with `NO [CANNOT]` a `STORE` or
    /// `UID STORE` that sets or replaces flags with a keyword.
    pub no_keywords: bool,
    /// Leave `RFC822.SIZE` out of FETCH answers, as a broken server might.
    pub hide_size: bool,
    /// Close the connection this long after a successful LOGIN/AUTHENTICATE.
    pub drop_after_login: Option<Duration>,
    /// Close the connection this long after the server accepted IDLE.
    pub drop_after_idle: Option<Duration>,
}

impl ProxyOptions {
    /// All of the above hidden and refused; no drops (set them as needed).
    pub fn restricted() -> ProxyOptions {
        ProxyOptions {
            hide_move: true,
            hide_uidplus: true,
            hide_idle: true,
            no_keywords: true,
            hide_size: false,
            drop_after_login: None,
            drop_after_idle: None,
        }
    }

    /// Capabilities to remove from every list, upper case.
    fn hidden(&self) -> Vec<&'static str> {
        let mut hidden = vec!["STARTTLS", "COMPRESS=DEFLATE"];
        if self.hide_move {
            hidden.push("MOVE");
        }
        if self.hide_uidplus {
            hidden.push("UIDPLUS");
        }
        if self.hide_idle {
            hidden.push("IDLE");
        }
        hidden
    }
}

/// A running proxy on a free loopback port; dropping it closes the
/// listener and every relayed connection.
pub struct CapabilityProxy {
    port: u16,
    stats: Arc<Stats>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct Stats {
    dropped: AtomicUsize,
    refused: Mutex<Vec<String>>,
}

impl CapabilityProxy {
    /// Listens on 127.0.0.1 and relays each connection to `upstream_port`
    /// on 127.0.0.1 (e.g. `dovecot.plain_port()`).
    pub async fn start(upstream_port: u16, options: ProxyOptions) -> Result<CapabilityProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("bind the proxy's port")?;
        let port = listener.local_addr()?.port();
        let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, upstream_port));
        let stats = Arc::new(Stats::default());
        let task = tokio::spawn(accept_loop(
            listener,
            upstream,
            Arc::new(options),
            stats.clone(),
        ));
        Ok(CapabilityProxy { port, stats, task })
    }

    /// The host to connect to.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The proxy's port (plain IMAP).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// How many connections the drop timers closed so far.
    pub fn dropped_connections(&self) -> usize {
        self.stats.dropped.load(Ordering::Relaxed)
    }

    /// The command lines refused so far (without literals), oldest first.
    pub fn refused_commands(&self) -> Vec<String> {
        self.stats
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for CapabilityProxy {
    fn drop(&mut self) {
        // The connections live in the loop's JoinSet and go with it.
        self.task.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    options: Arc<ProxyOptions>,
    stats: Arc<Stats>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((client, _)) => {
                    connections.spawn(relay(client, upstream, options.clone(), stats.clone()));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// What a pending tagged command is, for what its completion means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Login,
    Idle,
}

/// Shared between the two directions of one connection.
#[derive(Default)]
struct Session {
    /// Tags of pending LOGIN/AUTHENTICATE/IDLE commands.
    pending: HashMap<Vec<u8>, Kind>,
    /// The tag whose synchronizing literal waits for the server's `+`.
    awaiting_literal: Option<Vec<u8>>,
}

/// The server's answer to a synchronizing literal.
enum Go {
    /// `+`: send the literal.
    Continue,
    /// The command ended (`NO`/`BAD`) without it.
    Finished,
}

#[derive(Clone, Copy, Default)]
struct Deadlines {
    login: Option<Instant>,
    idle: Option<Instant>,
}

async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    options: Arc<ProxyOptions>,
    stats: Arc<Stats>,
) {
    let (client_read, mut client_write) = client.into_split();
    let server = match TcpStream::connect(upstream).await {
        Ok(server) => server,
        Err(_) => {
            let _ = client_write
                .write_all(b"* BYE testbed proxy: upstream unavailable\r\n")
                .await;
            return;
        }
    };
    let (server_read, server_write) = server.into_split();
    let (to_client, from_relay) = mpsc::unbounded_channel::<Vec<u8>>();
    let (go_tx, go_rx) = mpsc::unbounded_channel::<Go>();
    let (deadlines_tx, deadlines_rx) = watch::channel(Deadlines::default());
    let session = Arc::new(Mutex::new(Session::default()));

    let relaying = {
        let (options, stats, session) = (options.clone(), stats.clone(), session.clone());
        let to_client_too = to_client.clone();
        async move {
            tokio::select! {
                _ = client_to_server(
                    BufReader::new(client_read), server_write, to_client_too, go_rx,
                    session.clone(), &options, &stats,
                ) => {}
                _ = server_to_client(
                    BufReader::new(server_read), to_client, go_tx, deadlines_tx, session, &options,
                ) => {}
                _ = drop_timer(deadlines_rx) => {
                    stats.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    };
    // The writer drains what was queued, then ends when both directions
    // (holding the senders) are gone.
    tokio::join!(relaying, write_to_client(from_relay, client_write));
}

async fn write_to_client(mut queue: mpsc::UnboundedReceiver<Vec<u8>>, mut client: OwnedWriteHalf) {
    while let Some(bytes) = queue.recv().await {
        if client.write_all(&bytes).await.is_err() {
            return;
        }
    }
    let _ = client.shutdown().await;
}

/// Ends when the earliest deadline passes.
async fn drop_timer(mut deadlines: watch::Receiver<Deadlines>) {
    loop {
        let current = *deadlines.borrow_and_update();
        let next = match (current.login, current.idle) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let changed = async {
            if deadlines.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        match next {
            Some(at) => tokio::select! {
                _ = tokio::time::sleep_until(at) => return,
                _ = changed => {}
            },
            None => changed.await,
        }
    }
}

/// Reads the client's commands; forwards or refuses each.
async fn client_to_server(
    mut client: BufReader<OwnedReadHalf>,
    mut server: OwnedWriteHalf,
    to_client: mpsc::UnboundedSender<Vec<u8>>,
    mut go: mpsc::UnboundedReceiver<Go>,
    session: Arc<Mutex<Session>>,
    options: &ProxyOptions,
    stats: &Stats,
) -> Result<()> {
    loop {
        let mut line = Vec::new();
        if client.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
        let command = Command::parse(&line);
        if let Some(answer) = command.as_ref().and_then(|c| refusal(c, options)) {
            stats
                .refused
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(String::from_utf8_lossy(&line).trim_end().to_string());
            let _ = to_client.send(answer);
            skip_literals(&mut client, line).await?;
            continue;
        }
        if let Some(command) = &command {
            let kind = match command.name.as_str() {
                "LOGIN" | "AUTHENTICATE" => Some(Kind::Login),
                "IDLE" => Some(Kind::Idle),
                _ => None,
            };
            if let Some(kind) = kind {
                lock(&session).pending.insert(command.tag.clone(), kind);
            }
        }
        let tag = command.map(|c| c.tag).unwrap_or_default();
        // The command's segments: each literal, then the line after it.
        loop {
            let literal = literal_length(&line)?;
            let synchronizing = literal.is_some() && !line.trim_ascii_end().ends_with(b"+}");
            if synchronizing {
                lock(&session).awaiting_literal = Some(tag.clone());
            }
            server.write_all(&line).await?;
            let Some(size) = literal else {
                break;
            };
            if synchronizing {
                match go.recv().await {
                    Some(Go::Continue) => {}
                    Some(Go::Finished) | None => break,
                }
            }
            let copied = tokio::io::copy(&mut (&mut client).take(size as u64), &mut server).await?;
            if copied < size as u64 {
                bail!("client closed inside a literal");
            }
            line.clear();
            if client.read_until(b'\n', &mut line).await? == 0 {
                return Ok(());
            }
        }
    }
}

/// After a refused command, reads past its non-synchronizing literals (the
/// client sends those anyway; after `{n}` it waits for a `+` that never comes).
async fn skip_literals<R: AsyncRead + Unpin>(
    client: &mut BufReader<R>,
    mut line: Vec<u8>,
) -> Result<()> {
    while let Some(size) = literal_length(&line)? {
        if !line.trim_ascii_end().ends_with(b"+}") {
            return Ok(());
        }
        tokio::io::copy(
            &mut (&mut *client).take(size as u64),
            &mut tokio::io::sink(),
        )
        .await?;
        line.clear();
        if client.read_until(b'\n', &mut line).await? == 0 {
            return Ok(());
        }
    }
    Ok(())
}

/// Reads whole server responses, filters them, queues them for the client.
async fn server_to_client(
    mut server: BufReader<OwnedReadHalf>,
    to_client: mpsc::UnboundedSender<Vec<u8>>,
    go: mpsc::UnboundedSender<Go>,
    deadlines: watch::Sender<Deadlines>,
    session: Arc<Mutex<Session>>,
    options: &ProxyOptions,
) -> Result<()> {
    let hidden = options.hidden();
    loop {
        let response = read_response(&mut server).await?;
        if response.is_empty() {
            return Ok(());
        }
        if response.starts_with(b"+") {
            let awaiting = lock(&session).awaiting_literal.take();
            if awaiting.is_some() {
                let _ = go.send(Go::Continue);
            } else if let Some(after) = options.drop_after_idle {
                let idling = lock(&session).pending.values().any(|k| *k == Kind::Idle);
                if idling {
                    deadlines.send_modify(|d| d.idle = Some(Instant::now() + after));
                }
            }
            let _ = to_client.send(response);
            continue;
        }
        let filtered = filter_response(&response, &hidden, options);
        if !response.starts_with(b"* ") {
            let (tag, ok) = tagged_status(&response);
            let kind = {
                let mut session = lock(&session);
                if session.awaiting_literal.as_deref() == Some(tag) {
                    session.awaiting_literal = None;
                    let _ = go.send(Go::Finished);
                }
                session.pending.remove(tag)
            };
            match kind {
                Some(Kind::Login) if ok => {
                    if let Some(after) = options.drop_after_login {
                        deadlines.send_modify(|d| d.login = Some(Instant::now() + after));
                    }
                }
                Some(Kind::Idle) => deadlines.send_modify(|d| d.idle = None),
                _ => {}
            }
        }
        let _ = to_client.send(filtered);
    }
}

/// One response with its literals; empty at end of stream.
async fn read_response<R: AsyncRead + Unpin>(server: &mut BufReader<R>) -> Result<Vec<u8>> {
    let mut response = Vec::new();
    loop {
        let start = response.len();
        if server.read_until(b'\n', &mut response).await? == 0 {
            if start > 0 {
                bail!("server closed inside a response");
            }
            return Ok(Vec::new());
        }
        match literal_length(&response[start..])? {
            Some(size) => {
                let at = response.len();
                response.resize(at + size, 0);
                server.read_exact(&mut response[at..]).await?;
            }
            None => return Ok(response),
        }
    }
}

fn lock(session: &Mutex<Session>) -> std::sync::MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(|e| e.into_inner())
}

/// The tag and whether the status is OK, of a tagged response.
fn tagged_status(response: &[u8]) -> (&[u8], bool) {
    let mut words = response.splitn(3, |b| *b == b' ');
    let tag = words.next().unwrap_or_default();
    let ok = words
        .next()
        .is_some_and(|s| s.trim_ascii_end().eq_ignore_ascii_case(b"OK"));
    (tag, ok)
}

/// A client command line: its tag, name (`UID MOVE` as one) and the rest.
struct Command {
    tag: Vec<u8>,
    name: String,
    args: String,
}

impl Command {
    fn parse(line: &[u8]) -> Option<Command> {
        let text = std::str::from_utf8(line).ok()?.trim_end();
        let (tag, rest) = text.split_once(' ')?;
        let (name, mut args) = rest.split_once(' ').unwrap_or((rest, ""));
        let mut name = name.to_ascii_uppercase();
        if name == "UID" {
            let (sub, sub_args) = args.split_once(' ').unwrap_or((args, ""));
            name = format!("UID {}", sub.to_ascii_uppercase());
            args = sub_args;
        }
        Some(Command {
            tag: tag.as_bytes().to_vec(),
            name,
            args: args.to_string(),
        })
    }
}

/// The tagged answer refusing `command`, if it is refused.
fn refusal(command: &Command, options: &ProxyOptions) -> Option<Vec<u8>> {
    let tag = String::from_utf8_lossy(&command.tag);
    let unsupported = match command.name.as_str() {
        "MOVE" | "UID MOVE" => options.hide_move,
        "UID EXPUNGE" => options.hide_uidplus,
        "IDLE" => options.hide_idle,
        "STARTTLS" | "COMPRESS" => true,
        "STORE" | "UID STORE" if options.no_keywords && sets_keyword(&command.args) => {
            return Some(
                format!("{tag} NO [CANNOT] Keywords are not supported (testbed proxy)\r\n")
                    .into_bytes(),
            );
        }
        _ => false,
    };
    unsupported.then(|| format!("{tag} BAD Command not supported (testbed proxy)\r\n").into_bytes())
}

/// Whether `SET FLAGS|+FLAGS[.SILENT] (…)` names a keyword (a flag not
/// starting with `\`); removing one (`-FLAGS`) is allowed.
fn sets_keyword(args: &str) -> bool {
    let mut words = args.splitn(3, ' ');
    let (_set, item, flags) = (words.next(), words.next(), words.next());
    let Some(item) = item.map(str::to_ascii_uppercase) else {
        return false;
    };
    if item.starts_with('-') || !item.trim_start_matches('+').starts_with("FLAGS") {
        return false;
    }
    flags
        .unwrap_or_default()
        .split([' ', '(', ')'])
        .filter(|f| !f.is_empty())
        .any(|f| !f.starts_with('\\'))
}

/// Removes hidden capabilities, `\*` and keywords from PERMANENTFLAGS, and
/// the UIDPLUS response codes, as configured. Responses with literals or
/// not in UTF-8 pass unchanged (none of these is in them).
fn filter_response(response: &[u8], hidden: &[&str], options: &ProxyOptions) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(response) else {
        return response.to_vec();
    };
    if literal_length(response).ok().flatten().is_some() || text.matches("\r\n").count() > 1 {
        return response.to_vec();
    }
    let mut text = text.to_string();
    if let Some(list) = text.strip_prefix("* CAPABILITY ") {
        text = format!("* CAPABILITY {}", without_words(list.trim_end(), hidden)) + "\r\n";
    }
    text = map_code(&text, "CAPABILITY", |list| {
        Some(format!("CAPABILITY {}", without_words(list, hidden)))
    });
    if options.no_keywords {
        text = map_code(&text, "PERMANENTFLAGS", |flags| {
            let kept: Vec<&str> = flags
                .trim_matches(['(', ')'])
                .split(' ')
                .filter(|f| f.starts_with('\\') && *f != "\\*")
                .collect();
            Some(format!("PERMANENTFLAGS ({})", kept.join(" ")))
        });
    }
    if options.hide_uidplus {
        for code in ["APPENDUID", "COPYUID"] {
            text = map_code(&text, code, |_| None);
        }
    }
    if options.hide_size && text.starts_with("* ") && text.contains(" FETCH (") {
        text = without_size(&text);
    }
    text.into_bytes()
}

/// The FETCH answer without its `RFC822.SIZE n` item.
fn without_size(text: &str) -> String {
    let Some(start) = text.find("RFC822.SIZE ") else {
        return text.to_string();
    };
    let digits = text[start + "RFC822.SIZE ".len()..]
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(0);
    let end = start + "RFC822.SIZE ".len() + digits;
    let (before, after) = (&text[..start], &text[end..]);
    match after.strip_prefix(' ') {
        Some(after) => format!("{before}{after}"),
        None => format!("{}{after}", before.strip_suffix(' ').unwrap_or(before)),
    }
}

fn without_words(list: &str, hidden: &[&str]) -> String {
    list.split(' ')
        .filter(|w| !w.is_empty() && !hidden.iter().any(|h| w.eq_ignore_ascii_case(h)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Rewrites the response code `[NAME args]` with `f(args)`, or removes it
/// (with the space after it) when `f` gives `None`.
fn map_code(text: &str, name: &str, f: impl Fn(&str) -> Option<String>) -> String {
    let open = format!("[{name} ");
    let Some(start) = text.find(&open) else {
        return text.to_string();
    };
    let Some(len) = text[start..].find(']') else {
        return text.to_string();
    };
    let args = &text[start + open.len()..start + len];
    let rest = &text[start + len + 1..];
    match f(args) {
        Some(code) => format!("{}[{code}]{rest}", &text[..start]),
        None => format!(
            "{}{}",
            &text[..start],
            rest.strip_prefix(' ').unwrap_or(rest)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(line: &str) -> String {
        let options = ProxyOptions::restricted();
        String::from_utf8_lossy(&filter_response(
            line.as_bytes(),
            &options.hidden(),
            &options,
        ))
        .into_owned()
    }

    #[test]
    fn strips_capabilities_flags_and_uidplus_codes() {
        assert_eq!(
            filter("* OK [CAPABILITY IMAP4rev1 IDLE STARTTLS MOVE] Dovecot ready.\r\n"),
            "* OK [CAPABILITY IMAP4rev1] Dovecot ready.\r\n"
        );
        assert_eq!(
            filter("* CAPABILITY IMAP4rev1 UIDPLUS IDLE LITERAL+ MOVE\r\n"),
            "* CAPABILITY IMAP4rev1 LITERAL+\r\n"
        );
        assert_eq!(
            filter("a1 OK [CAPABILITY IMAP4rev1 UIDPLUS] Logged in\r\n"),
            "a1 OK [CAPABILITY IMAP4rev1] Logged in\r\n"
        );
        assert_eq!(
            filter(
                "* OK [PERMANENTFLAGS (\\Answered \\Seen $Forwarded done \\*)] Flags permitted.\r\n"
            ),
            "* OK [PERMANENTFLAGS (\\Answered \\Seen)] Flags permitted.\r\n"
        );
        assert_eq!(
            filter("a2 OK [COPYUID 17 1:2 5:6] Copy completed.\r\n"),
            "a2 OK Copy completed.\r\n"
        );
        assert_eq!(
            filter("* 1 FETCH (FLAGS (kw))\r\n"),
            "* 1 FETCH (FLAGS (kw))\r\n"
        );
    }

    #[test]
    fn leaves_the_size_out_where_told() {
        assert_eq!(
            without_size("* 1 FETCH (UID 5 RFC822.SIZE 1234)\r\n"),
            "* 1 FETCH (UID 5)\r\n"
        );
        assert_eq!(
            without_size("* 1 FETCH (RFC822.SIZE 1234 UID 5)\r\n"),
            "* 1 FETCH (UID 5)\r\n"
        );
    }

    #[test]
    fn refuses_what_is_hidden() {
        let options = ProxyOptions::restricted();
        let refused = |line: &str| {
            Command::parse(line.as_bytes())
                .and_then(|c| refusal(&c, &options))
                .map(|a| String::from_utf8_lossy(&a).into_owned())
        };
        assert_eq!(
            refused("a UID MOVE 1 Done\r\n").as_deref(),
            Some("a BAD Command not supported (testbed proxy)\r\n")
        );
        assert!(refused("b move 1 Done\r\n").is_some());
        assert!(refused("c UID EXPUNGE 1\r\n").is_some());
        assert!(refused("d IDLE\r\n").is_some());
        assert!(
            refused("e UID STORE 1 +FLAGS (done)\r\n").is_some_and(|a| a.contains("NO [CANNOT]"))
        );
        assert!(refused("f STORE 1 FLAGS.SILENT (\\Seen $Done)\r\n").is_some());
        assert!(refused("g UID STORE 1 +FLAGS (\\Seen)\r\n").is_none());
        assert!(refused("h UID STORE 1 -FLAGS (done)\r\n").is_none());
        assert!(refused("i UID FETCH 1 (FLAGS)\r\n").is_none());
        assert!(refused("DONE\r\n").is_none());
    }
}
