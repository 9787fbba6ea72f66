//! Just enough IMAP to prove the server works, over any stream.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// Generous: only reached when something is broken.
const READ_TIMEOUT: Duration = Duration::from_secs(20);

pub(crate) struct Imap<S> {
    stream: BufReader<S>,
    tag: u32,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Imap<S> {
    /// Wraps a connected stream and reads the real greeting.
    pub(crate) async fn greeted(stream: S) -> Result<Imap<S>> {
        let mut imap = Imap {
            stream: BufReader::new(stream),
            tag: 0,
        };
        loop {
            let line = imap.read_line(READ_TIMEOUT).await?;
            if line.starts_with("* OK [CAPABILITY") || line.contains("ready") {
                return Ok(imap);
            }
        }
    }

    /// Wraps a stream whose greeting was already read (after STARTTLS).
    pub(crate) fn resumed(stream: S) -> Imap<S> {
        Imap {
            stream: BufReader::new(stream),
            tag: 100,
        }
    }

    /// One line, with any `{N}` literal appended.
    pub(crate) async fn read_line(&mut self, timeout: Duration) -> Result<String> {
        let mut line = String::new();
        let n = tokio::time::timeout(timeout, self.stream.read_line(&mut line))
            .await
            .context("timed out reading from IMAP")??;
        if n == 0 {
            bail!("IMAP connection closed");
        }
        if let Some(size) = literal_size(&line) {
            let mut literal = vec![0; size];
            self.stream.read_exact(&mut literal).await?;
            line.push_str(&String::from_utf8_lossy(&literal));
            let rest = Box::pin(self.read_line(timeout)).await?;
            line.push_str(&rest);
        }
        Ok(line)
    }

    pub(crate) async fn send(&mut self, text: &str) -> Result<()> {
        self.stream.get_mut().write_all(text.as_bytes()).await?;
        self.stream.get_mut().flush().await?;
        Ok(())
    }

    /// Runs a command; returns its untagged lines, fails unless tagged OK.
    pub(crate) async fn command(&mut self, command: &str) -> Result<Vec<String>> {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        self.send(&format!("{tag} {command}\r\n")).await?;
        let mut lines = Vec::new();
        loop {
            let line = self.read_line(READ_TIMEOUT).await?;
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                if rest.starts_with("OK") {
                    return Ok(lines);
                }
                bail!("{command:?} failed: {rest}");
            }
            lines.push(line);
        }
    }

    pub(crate) fn into_inner(self) -> S {
        self.stream.into_inner()
    }
}

fn literal_size(line: &str) -> Option<usize> {
    let line = line.trim_end();
    let open = line.rfind('{')?;
    line.strip_suffix('}')?[open + 1..].parse().ok()
}

/// A TLS connector trusting only the CA in `ca_file`.
pub(crate) fn tls_connector(ca_file: &Path) -> Result<TlsConnector> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file)? {
        roots.add(cert?)?;
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(TlsConnector::from(Arc::new(config)))
}

pub(crate) fn server_name(name: &str) -> ServerName<'static> {
    ServerName::try_from(name.to_string()).expect("valid server name")
}

/// A plain customer mail with `subject`.
pub(crate) fn mail(subject: &str) -> Vec<u8> {
    format!(
        "From: Customer <customer@example.com>\r\nTo: support@example.com\r\n\
         Subject: {subject}\r\nMessage-ID: <{subject}@example.com>\r\n\
         Date: Mon, 4 Mar 2024 10:00:00 +0100\r\n\r\nHello.\r\n"
    )
    .into_bytes()
}
