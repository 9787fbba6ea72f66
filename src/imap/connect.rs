//! Connecting and logging in: implicit TLS, STARTTLS or plain, each bounded in time.

use super::certificate::Presented;
use super::error::{ImapError, server_reply};
use super::session::MailSession;
use super::stream::ImapStream;
use super::{tls, tls_failure};
use crate::config::{MailboxConfig, TlsMode};
use async_imap::Client;
use secrecy::{ExposeSecret, SecretString};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::ServerName;

/// Longest wait for connect, greeting, TLS and login.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The daemon waits this long for a greeting; `check` only [`CHECK_GREETING`]: a
/// server that answers at all greets at once, and an admin should not wait 30 s to
/// learn that a port expects TLS.
pub(crate) const DAEMON_GREETING: Duration = CONNECT_TIMEOUT;
pub(crate) const CHECK_GREETING: Duration = Duration::from_secs(3);

/// How a mailbox proves who it is.
pub(crate) enum Login {
    Password(SecretString),
    /// A SASL XOAUTH2/OAUTHBEARER access token.
    OAuth2 {
        token: SecretString,
        mechanism: crate::config::SaslMechanism,
    },
}

/// Opens a connection per the mailbox's `tls` mode and logs in; the greeting must come
/// within `greeting`.
pub(crate) async fn connect(
    mb: &MailboxConfig,
    login: &Login,
    greeting: Duration,
) -> Result<MailSession, ImapError> {
    let addr = format!("{}:{}", mb.host, mb.port());
    let (client, peer) = open(mb, &addr, greeting).await?;
    let session = timeout(CONNECT_TIMEOUT, authenticate(client, mb, login))
        .await
        .map_err(|_| ImapError::Timeout {
            command: "LOGIN".into(),
            after: CONNECT_TIMEOUT,
        })?
        .map_err(|reason| ImapError::Auth {
            addr: addr.clone(),
            user: mb.username.clone(),
            reason,
        })?;
    MailSession::new(session, peer).await
}

/// The server's certificate, and whether a pin trusted it.
type Peer = Option<(Presented, bool)>;

async fn open(
    mb: &MailboxConfig,
    addr: &str,
    greeting: Duration,
) -> Result<(Client<ImapStream>, Peer), ImapError> {
    let tcp = match timeout(
        CONNECT_TIMEOUT,
        TcpStream::connect((mb.host.as_str(), mb.port())),
    )
    .await
    {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => {
            return Err(ImapError::Connect {
                addr: addr.to_string(),
                reason: connect_hint(mb, &e),
            });
        }
        Err(_) => {
            return Err(ImapError::Connect {
                addr: addr.to_string(),
                reason: format!(
                    "no answer within {}: a wrong host, or a firewall dropping the connection",
                    humantime::format_duration(CONNECT_TIMEOUT)
                ),
            });
        }
    };
    let _ = tcp.set_nodelay(true);
    let waited = |mb: &MailboxConfig| silent_hint(mb, greeting);
    match mb.tls {
        // A TLS server answers a ClientHello at once, as an IMAP server greets: the
        // handshake gets the greeting's budget (3 s in `check`).
        TlsMode::Tls => {
            let (tls, peer) = timeout(greeting, start_tls(mb, addr, tcp))
                .await
                .map_err(|_| ImapError::Connect {
                    addr: addr.to_string(),
                    reason: format!(
                        "connected, but no answer to the TLS handshake came within {}: port {} speaks neither TLS nor IMAP (IMAP over TLS is usually 993, STARTTLS 143), or something in between holds the connection",
                        humantime::format_duration(greeting),
                        mb.port()
                    ),
                })??;
            let mut client = Client::new(ImapStream::tls(tls));
            read_greeting(&mut client, addr, greeting, &waited(mb)).await?;
            Ok((client, peer))
        }
        TlsMode::None => {
            let mut client = Client::new(ImapStream::plain(tcp));
            read_greeting(&mut client, addr, greeting, &waited(mb)).await?;
            Ok((client, None))
        }
        TlsMode::Starttls => {
            let mut client = Client::new(tcp);
            read_greeting(&mut client, addr, greeting, &waited(mb)).await?;
            let upgrade = async {
                client
                    .run_command_and_check_ok("STARTTLS", None)
                    .await
                    .map_err(|e| ImapError::Tls {
                        addr: addr.to_string(),
                        reason: format!("server refused STARTTLS: {e}"),
                        presented: None,
                    })?;
                start_tls(mb, addr, client.into_inner()).await
            };
            let (tls, peer) =
                timeout(CONNECT_TIMEOUT, upgrade)
                    .await
                    .map_err(|_| ImapError::Timeout {
                        command: "STARTTLS".into(),
                        after: CONNECT_TIMEOUT,
                    })??;
            Ok((Client::new(ImapStream::tls(tls)), peer))
        }
    }
}

async fn start_tls(
    mb: &MailboxConfig,
    addr: &str,
    tcp: TcpStream,
) -> Result<(tokio_rustls::client::TlsStream<TcpStream>, Peer), ImapError> {
    let tls_err = |reason: String, presented: Option<Presented>| ImapError::Tls {
        addr: addr.to_string(),
        reason,
        presented: presented.map(Box::new),
    };
    let trust = tls::trust(mb.ca_file.as_deref(), mb.tls_fingerprint)
        .map_err(|e| tls_err(e.to_string(), None))?;
    let name = ServerName::try_from(mb.host.clone())
        .map_err(|e| tls_err(format!("bad host name: {e}"), None))?;
    let stream = TlsConnector::from(Arc::clone(&trust.config))
        .connect(name, tcp)
        .await
        .map_err(|e| {
            let presented = trust.presented();
            let trusted = tls_failure::Trusted {
                host: &mb.host,
                port: mb.port(),
                ca_file: mb.ca_file.as_deref(),
                pin: mb.tls_fingerprint,
                starttls: mb.tls == TlsMode::Starttls,
            };
            tls_err(
                tls_failure::explain(&e, presented.as_ref(), &trusted),
                presented,
            )
        })?;
    // An expired pin is said by the caller: once by `check`, once per mailbox by the daemon.
    let peer = trust.presented().map(|p| {
        let pinned = trust.was_pinned(&p);
        (p, pinned)
    });
    Ok((stream, peer))
}

/// What a failed TCP connect most likely means.
fn connect_hint(mb: &MailboxConfig, e: &std::io::Error) -> String {
    let text = e.to_string();
    if e.kind() == std::io::ErrorKind::ConnectionRefused {
        format!(
            "connection refused: nothing listens on port {} (IMAP is 993 with tls = \"tls\", 143 with \"starttls\")",
            mb.port()
        )
    } else if text.contains("lookup")
        || text.contains("resolve")
        || text.contains("Name or service")
    {
        format!(
            "cannot resolve host {:?}: check host (DNS) ({text})",
            mb.host
        )
    } else {
        text
    }
}

/// What a server that accepted the connection but never greeted most likely is.
fn silent_hint(mb: &MailboxConfig, waited: Duration) -> String {
    let waited = humantime::format_duration(waited);
    match mb.tls {
        TlsMode::Tls => format!(
            "TLS was set up, but no IMAP greeting came within {waited}: is port {} an IMAP port?",
            mb.port()
        ),
        _ => format!(
            "connected, but no greeting came within {waited}: port {} may expect TLS at once (implicit TLS, usually 993): set tls = \"tls\" (or it is not an IMAP port)",
            mb.port()
        ),
    }
}

async fn read_greeting<T>(
    client: &mut Client<T>,
    addr: &str,
    within: Duration,
    silent: &str,
) -> Result<(), ImapError>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    let Ok(greeting) = timeout(within, client.read_response()).await else {
        return Err(ImapError::Connect {
            addr: addr.to_string(),
            reason: silent.to_string(),
        });
    };
    match greeting {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(ImapError::Connect {
            addr: addr.to_string(),
            reason: "connection closed before the greeting".into(),
        }),
        Err(e) => Err(ImapError::Connect {
            addr: addr.to_string(),
            reason: format!(
                "the server's greeting is not IMAP ({e}); with tls = \"none\" or \"starttls\" on a TLS port (993) that is what TLS looks like: set tls = \"tls\""
            ),
        }),
    }
}

/// Logs in; a refusal is the server's words, and for a password what to check.
async fn authenticate(
    client: Client<ImapStream>,
    mb: &MailboxConfig,
    login: &Login,
) -> Result<async_imap::Session<ImapStream>, String> {
    let user = mb.username.as_str();
    match login {
        Login::Password(password) => {
            client
                .login(user, password.expose_secret())
                .await
                .map_err(|(e, client)| {
                    format!(
                        "{}; check username and password{}",
                        server_reply(&e, client.get_ref().replies()),
                        password_hint(&mb.host)
                    )
                })
        }
        Login::OAuth2 { token, mechanism } => {
            let (name, auth) = super::sasl::oauth2(user, token, *mechanism);
            client
                .authenticate(name, auth)
                .await
                .map_err(|(e, client)| server_reply(&e, client.get_ref().replies()))
        }
    }
}

/// Microsoft 365 and Google turned off password logins to IMAP: there, the fix is
/// OAuth2, not another password.
fn password_hint(host: &str) -> &'static str {
    let host = host.to_ascii_lowercase();
    if host.ends_with("office365.com") || host.ends_with("outlook.com") {
        " (Microsoft 365 takes no IMAP passwords: use [mailbox.oauth2] with grant = \"client_credentials\")"
    } else if host == "imap.gmail.com" || host == "imap.googlemail.com" {
        " (Google Workspace takes no IMAP passwords: use [mailbox.oauth2] with grant = \"jwt_bearer\" or an app password)"
    } else {
        ""
    }
}
