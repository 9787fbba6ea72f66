//! Seeding and reading a server's mail through its own IMAP, as each user:
//! for servers whose storage the harness should not touch directly (Cyrus's
//! spool and databases; Courier's keyword and UID files).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Result, anyhow, bail};

use crate::imap_client::{ImapClient, ImapMail, ListEntry, Status};

/// Cyrus and Courier as the tests see them: a real server in a temp dir, its users
/// added by the harness, its mail seeded and read over its own IMAP.
pub trait ImapServer {
    /// Adds a user (or sets a new password) with an empty INBOX.
    fn add_user(&self, name: &str, password: &str) -> Result<()>;

    /// Port of the plain listener (which also offers STARTTLS).
    fn plain_port(&self) -> u16;

    /// Port of the implicit-TLS listener.
    fn tls_port(&self) -> u16;

    /// The instance's directory.
    fn dir(&self) -> &Path;

    /// Where the harness logs in as each user.
    fn store(&self) -> &ImapStore;

    /// The host to connect to.
    fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// PEM file of the CA that signed the server certificate (`ca_file`).
    fn ca_file(&self) -> PathBuf {
        self.dir().join("ca.pem")
    }

    /// Creates `folder` (UTF-8 full name, e.g. `INBOX.Obsłużone`) if missing.
    fn create_folder(&self, user: &str, folder: &str) -> Result<()> {
        self.store().create_folder(user, folder)
    }

    /// APPENDs one mail with `flags` (creating the folder); its UID.
    fn append(&self, user: &str, folder: &str, raw: &[u8], flags: &[&str]) -> Result<Option<u32>> {
        self.store().append(user, folder, raw, flags)
    }

    /// The mails of `folder` by UID, with flags and keywords.
    fn folder_mails(&self, user: &str, folder: &str) -> Result<Vec<ImapMail>> {
        self.store().folder_mails(user, folder)
    }

    /// The user's folders decoded to UTF-8 (`INBOX`, `INBOX.Obsłużone`).
    fn list_folders(&self, user: &str) -> Result<Vec<String>> {
        Ok(self
            .store()
            .list(user)?
            .into_iter()
            .map(|e| e.name)
            .collect())
    }

    /// The user's folders as sent (`INBOX.Obs&AUI-u&AXw-one`).
    fn list_folders_raw(&self, user: &str) -> Result<Vec<String>> {
        Ok(self
            .store()
            .list(user)?
            .into_iter()
            .map(|e| e.raw_name)
            .collect())
    }

    /// The full LIST answers (attributes and separator too).
    fn list(&self, user: &str) -> Result<Vec<ListEntry>> {
        self.store().list(user)
    }
}

/// Where to log in, and each user's password (the harness added them).
pub struct ImapStore {
    port: u16,
    passwords: Mutex<HashMap<String, String>>,
}

impl ImapStore {
    pub fn new(port: u16) -> ImapStore {
        ImapStore {
            port,
            passwords: Mutex::new(HashMap::new()),
        }
    }

    pub fn set_password(&self, user: &str, password: &str) {
        self.passwords
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(user.to_string(), password.to_string());
    }

    /// A session logged in as `user`.
    pub fn login(&self, user: &str) -> Result<ImapClient> {
        let password = self
            .passwords
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(user)
            .cloned()
            .ok_or_else(|| anyhow!("no user {user:?}: add_user first"))?;
        ImapClient::login_to("127.0.0.1", self.port, user, &password)
    }

    /// Creates `folder` (UTF-8, the server's full name) unless it exists.
    pub fn create_folder(&self, user: &str, folder: &str) -> Result<()> {
        let mut imap = self.login(user)?;
        ensure_folder(&mut imap, folder)?;
        imap.logout()
    }

    /// Appends one mail with `flags` (creating the folder); its UID if told.
    pub fn append(
        &self,
        user: &str,
        folder: &str,
        raw: &[u8],
        flags: &[&str],
    ) -> Result<Option<u32>> {
        let mut imap = self.login(user)?;
        ensure_folder(&mut imap, folder)?;
        let uid = imap.append(folder, flags, raw)?;
        imap.logout()?;
        Ok(uid)
    }

    /// The mails of `folder` by UID, read without setting `\Seen`.
    pub fn folder_mails(&self, user: &str, folder: &str) -> Result<Vec<ImapMail>> {
        let mut imap = self.login(user)?;
        let select = imap.select(folder)?;
        let empty = select
            .lines()
            .iter()
            .any(|l| l.eq_ignore_ascii_case("0 EXISTS"));
        let mails = if empty { Vec::new() } else { imap.fetch_all()? };
        imap.logout()?;
        Ok(mails)
    }

    /// The user's folders as LIST shows them, in the server's order.
    pub fn list(&self, user: &str) -> Result<Vec<ListEntry>> {
        let mut imap = self.login(user)?;
        let entries = imap.list()?;
        imap.logout()?;
        Ok(entries)
    }
}

/// `CREATE` unless LIST already shows the folder (servers answer an
/// existing name differently: Cyrus `NO Mailbox already exists`, Courier
/// `NO Cannot create this folder.`).
fn ensure_folder(imap: &mut ImapClient, folder: &str) -> Result<()> {
    if folder.eq_ignore_ascii_case("INBOX") {
        return Ok(());
    }
    if imap.list()?.iter().any(|e| e.name == folder) {
        return Ok(());
    }
    let reply = imap.create(folder)?;
    if reply.status != Status::Ok {
        bail!(
            "CREATE {folder:?} failed: {:?} {}",
            reply.status,
            reply.text
        );
    }
    Ok(())
}
