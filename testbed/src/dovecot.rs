//! A real Dovecot 2.3 (Debian's `dovecot-imapd`) in a temp dir on free
//! loopback ports, run as root inside a sandbox.
//!
//! All calls block (start and stop take up to a couple of seconds). From a
//! tokio test use `#[tokio::test(flavor = "multi_thread")]` or
//! `spawn_blocking`, so that the code under test keeps running meanwhile.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use crate::cert::TestCert;
use crate::maildir::{Maildir, MaildirMail, Owner, mkdir_owned};
use crate::ports;
use crate::process;

/// How long a start may take before we call it failed.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a graceful stop may take before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Knobs for [`Dovecot::start_with`]; `Default` is what the bridge tests want.
#[derive(Clone, Debug)]
pub struct DovecotOptions {
    /// Use this directory (created if missing, kept on drop) instead of a temp dir.
    pub dir: Option<PathBuf>,
    /// `imap_idle_notify_interval`: how often Dovecot sends `* OK Still here`
    /// during IDLE. It is a keep-alive, not the new-mail latency (inotify is).
    pub idle_notify_interval: Duration,
    /// Raw lines appended to dovecot.conf, e.g. an `imap_capability = ...`
    /// without IDLE (see [`NO_IDLE_CAPABILITY`]).
    pub extra_config: String,
    /// An RFC 7662 endpoint (e.g. `FakeIdp::introspection_url`): adds an
    /// `oauth2` passdb for XOAUTH2/OAUTHBEARER logins, checked there.
    /// Users still need [`Dovecot::add_user`] (the userdb); their password
    /// keeps working for PLAIN/LOGIN.
    pub oauth2_introspection_url: Option<String>,
    /// Record every IMAP session's traffic (`rawlog_dir`), for
    /// [`Dovecot::imap_commands`]. Off by default: a benchmark's FETCHes
    /// would fill the disk.
    pub rawlog: bool,
    /// The certificate and key to serve (e.g. [`TestCert::like_the_guides`]) instead
    /// of a fresh testbed-CA-signed one; its `ca_pem` becomes [`Dovecot::ca_file`].
    pub certificate: Option<TestCert>,
}

impl Default for DovecotOptions {
    fn default() -> Self {
        DovecotOptions {
            dir: None,
            idle_notify_interval: Duration::from_secs(1),
            extra_config: String::new(),
            oauth2_introspection_url: None,
            rawlog: false,
            certificate: None,
        }
    }
}

/// An `extra_config` line for a server without IDLE (to test polling):
/// Dovecot 2.3's own post-login capabilities minus `IDLE`.
pub const NO_IDLE_CAPABILITY: &str = "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY";

/// An `extra_config` line for a server without MOVE (RFC 6851), to test the
/// `COPY` + `\Deleted` + `UID EXPUNGE` fallback: Dovecot 2.3's own post-login
/// capabilities minus `MOVE` (UIDPLUS stays).
pub const NO_MOVE_CAPABILITY: &str = "imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY";

/// What Dovecot logs when an IMAP session ends (`imap_logout_format`, written
/// out in the config so that no distribution default can change it).
const LOGOUT_FORMAT: &str = "in=%i out=%o deleted=%{deleted} expunged=%{expunged} trashed=%{trashed} hdr_count=%{fetch_hdr_count} hdr_bytes=%{fetch_hdr_bytes} body_count=%{fetch_body_count} body_bytes=%{fetch_body_bytes}";

/// One ended IMAP session, from the line Dovecot logs when it ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionLog {
    pub user: String,
    /// Why it ended, e.g. `Logged out` or `Disconnected: Connection closed (...)`.
    pub reason: String,
    /// Bytes the client sent.
    pub bytes_in: u64,
    /// Bytes Dovecot sent.
    pub bytes_out: u64,
    /// Mails marked `\Deleted` and expunged in the session.
    pub deleted: u64,
    pub expunged: u64,
    /// FETCHes of headers, and of bodies (`BODY[]`, `BODY.PEEK[]`, `RFC822`, ...).
    pub hdr_count: u64,
    pub hdr_bytes: u64,
    pub body_count: u64,
    pub body_bytes: u64,
}

impl SessionLog {
    /// Parses one log line; `None` for any other line.
    fn parse(line: &str) -> Option<SessionLog> {
        let start = line.find("imap(")? + "imap(".len();
        let user_len = line[start..].find(')')?;
        let user = line[start..start + user_len].to_string();
        let stats_at = line.find(" in=")?;
        let head = &line[..stats_at];
        let reason = head
            .rfind("Info: ")
            .map(|i| head[i + "Info: ".len()..].to_string())
            .unwrap_or_default();
        let mut s = SessionLog {
            user,
            reason,
            ..SessionLog::default()
        };
        let mut seen = 0;
        for pair in line[stats_at..].split_whitespace() {
            let Some((key, value)) = pair.split_once('=') else {
                continue;
            };
            let Ok(value) = value.parse::<u64>() else {
                continue;
            };
            let field = match key {
                "in" => &mut s.bytes_in,
                "out" => &mut s.bytes_out,
                "deleted" => &mut s.deleted,
                "expunged" => &mut s.expunged,
                "hdr_count" => &mut s.hdr_count,
                "hdr_bytes" => &mut s.hdr_bytes,
                "body_count" => &mut s.body_count,
                "body_bytes" => &mut s.body_bytes,
                _ => continue,
            };
            *field = value;
            seen += 1;
        }
        // Every counter of LOGOUT_FORMAT but `trashed`, or it is some other line.
        (seen == 8).then_some(s)
    }
}

/// Where the state of one instance lives.
enum Home {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl Home {
    fn path(&self) -> &Path {
        match self {
            Home::Temp(t) => t.path(),
            Home::Kept(p) => p,
        }
    }
}

/// A running Dovecot. Dropping it kills it and removes its temp dir.
pub struct Dovecot {
    // Declared before `home`: the process must die before its dir goes.
    child: Mutex<Option<Child>>,
    home: Home,
    ca_file: PathBuf,
    plain_port: u16,
    tls_port: u16,
    owner: Owner,
}

impl Dovecot {
    /// Starts a Dovecot with default options.
    pub fn start() -> Result<Dovecot> {
        Dovecot::start_with(DovecotOptions::default())
    }

    /// Starts a Dovecot; retries with new ports if one was taken meanwhile.
    pub fn start_with(options: DovecotOptions) -> Result<Dovecot> {
        let mut last_error = None;
        for _ in 0..3 {
            match Dovecot::try_start(&options) {
                Ok(dovecot) => return Ok(dovecot),
                Err(e) if format!("{e:#}").contains("Address already in use") => {
                    last_error = Some(e)
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("dovecot did not start")))
    }

    fn try_start(options: &DovecotOptions) -> Result<Dovecot> {
        let owner = Owner::dovecot()?;
        let home = match &options.dir {
            Some(dir) => {
                fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
                Home::Kept(fs::canonicalize(dir)?)
            }
            None => Home::Temp(
                tempfile::Builder::new()
                    .prefix("testbed-dovecot-")
                    .tempdir()?,
            ),
        };
        let dir = home.path();
        // Login and mail processes run as dovenull/dovecot and must reach base_dir.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
        for sub in ["run", "state", "users"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        mkdir_owned(&dir.join("mail"), owner)?;
        if options.rawlog {
            mkdir_owned(&dir.join("rawlog"), owner)?;
        }

        let cert = match &options.certificate {
            Some(cert) => cert.clone(),
            None => TestCert::generate()?,
        };
        fs::write(dir.join("ca.pem"), &cert.ca_pem)?;
        fs::write(dir.join("cert.pem"), &cert.cert_pem)?;
        fs::write(dir.join("key.pem"), &cert.key_pem)?;
        fs::set_permissions(dir.join("key.pem"), fs::Permissions::from_mode(0o600))?;

        let (plain_port, tls_port) = (ports::free_port()?, ports::free_port()?);
        if let Some(url) = &options.oauth2_introspection_url {
            fs::write(dir.join("oauth2.conf.ext"), render_oauth2_config(url))?;
        }
        let conf = render_config(dir, plain_port, tls_port, options);
        fs::write(dir.join("dovecot.conf"), conf)?;

        let dovecot = Dovecot {
            child: Mutex::new(None),
            ca_file: dir.join("ca.pem"),
            home,
            plain_port,
            tls_port,
            owner,
        };
        dovecot.spawn()?;
        Ok(dovecot)
    }

    /// Runs the master in the foreground as our child and waits for the greeting.
    fn spawn(&self) -> Result<()> {
        let dir = self.dir();
        // Ours is dead by now; a reused pid in a stale file would make
        // Dovecot refuse to start ("already running").
        let _ = fs::remove_file(dir.join("run").join("master.pid"));
        let stderr = fs::File::create(dir.join("dovecot.stderr"))?;
        let mut cmd = Command::new("dovecot");
        cmd.arg("-F")
            .arg("-c")
            .arg(dir.join("dovecot.conf"))
            .stdin(Stdio::null())
            .stdout(stderr.try_clone()?)
            .stderr(stderr);
        let child =
            process::spawn_tied(cmd).context("run `dovecot` (is dovecot-imapd installed?)")?;
        *self.child.lock().unwrap_or_else(|e| e.into_inner()) = Some(child);
        if let Err(e) = self.wait_ready() {
            self.kill(Duration::ZERO);
            return Err(e);
        }
        Ok(())
    }

    /// Ready = the plain port greets with `* OK [CAPABILITY` (before the auth
    /// process is up Dovecot first says `* OK Waiting for authentication`).
    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child_exit_status() {
                bail!(
                    "dovecot exited at start ({status}):\n{}\n{}",
                    process::read_tail(&self.dir().join("dovecot.stderr")),
                    self.log()
                );
            }
            if ports::greets(self.plain_port, "* OK [CAPABILITY")
                && TcpStream::connect(self.tls_addr()).is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "dovecot did not answer within {START_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn child_exit_status(&self) -> Option<String> {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        match child.as_mut().map(|c| c.try_wait()) {
            Some(Ok(Some(status))) => Some(status.to_string()),
            Some(Err(e)) => Some(e.to_string()),
            _ => None,
        }
    }

    fn kill(&self, grace: Duration) {
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = child {
            process::stop(&mut child, grace);
        }
    }

    /// Stops gracefully (SIGTERM, then SIGKILL); mail and config stay.
    pub fn stop(&self) -> Result<()> {
        self.kill(STOP_GRACE);
        Ok(())
    }

    /// Kills at once, as a crash would; mail and config stay.
    pub fn crash(&self) {
        self.kill(Duration::ZERO);
    }

    /// Stops and starts again on the same ports with the same users and mail.
    pub fn restart(&self) -> Result<()> {
        self.stop()?;
        let deadline = Instant::now() + START_TIMEOUT;
        // Leftover login processes may still hold the listeners for a moment.
        while !(ports::port_free(self.plain_port) && ports::port_free(self.tls_port)) {
            if Instant::now() > deadline {
                bail!("ports {} / {} stay busy", self.plain_port, self.tls_port);
            }
            thread::sleep(Duration::from_millis(20));
        }
        self.spawn()
    }

    /// Whether the master process is still running.
    pub fn is_running(&self) -> bool {
        let has_child = self
            .child
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some();
        has_child && self.child_exit_status().is_none()
    }

    /// Adds or replaces a user. Each user has its own passwd-file, so a new
    /// one is seen at its first login even while Dovecot runs.
    pub fn add_user(&self, name: &str, password: &str) -> Result<()> {
        if name.is_empty() || name.contains(['/', ':', '\n', ' ']) || name.starts_with('.') {
            bail!("bad user name {name:?}");
        }
        let home = self.dir().join("mail").join(name);
        mkdir_owned(&home, self.owner)?;
        let rawlog = self.dir().join("rawlog");
        if rawlog.is_dir() {
            mkdir_owned(&rawlog.join(name), self.owner)?;
        }
        self.maildir(name).create_folder("INBOX")?;
        let line = format!(
            "{name}:{{PLAIN.b64}}{}:{}:{}::{}::\n",
            BASE64.encode(password),
            self.owner.uid,
            self.owner.gid,
            home.display()
        );
        let users = self.dir().join("users");
        let tmp = users.join(format!(".{name}.tmp"));
        fs::write(&tmp, line)?;
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644))?;
        fs::rename(&tmp, users.join(name))?;
        Ok(())
    }

    /// The host to connect to.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// Port of the plain listener (which also offers STARTTLS).
    pub fn plain_port(&self) -> u16 {
        self.plain_port
    }

    /// Port of the implicit-TLS listener.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    fn tls_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.tls_port))
    }

    /// PEM file of the CA that signed the server certificate (`ca_file`); with
    /// [`DovecotOptions::certificate`], that certificate's `ca_pem`.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// The instance's directory (config, logs, users, mail).
    pub fn dir(&self) -> &Path {
        self.home.path()
    }

    /// Dovecot's log file.
    pub fn log_file(&self) -> PathBuf {
        self.dir().join("dovecot.log")
    }

    /// The log so far, for failure messages.
    pub fn log(&self) -> String {
        process::read_tail(&self.log_file())
    }

    /// The IMAP sessions of `user` that have ended so far, in the order they
    /// ended, from the line Dovecot logs for each (`imap_logout_format`).
    /// Dovecot writes that line a moment after the client saw the session end:
    /// wait for the count you expect.
    pub fn sessions(&self, user: &str) -> Vec<SessionLog> {
        fs::read_to_string(self.log_file())
            .unwrap_or_default()
            .lines()
            .filter_map(SessionLog::parse)
            .filter(|s| s.user == user)
            .collect()
    }

    /// How many logins of `user` Dovecot accepted so far (any mechanism).
    pub fn logins(&self, user: &str) -> usize {
        let needle = format!("Login: user=<{user}>");
        fs::read_to_string(self.log_file())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("imap-login") && l.contains(&needle))
            .count()
    }

    /// The SASL mechanism of each login of `user` Dovecot accepted so far, in order
    /// (`PLAIN`, `XOAUTH2`, `OAUTHBEARER`…), as its login line says (`method=`): what
    /// was spoken on the wire, whatever the client believes it chose.
    pub fn login_mechanisms(&self, user: &str) -> Vec<String> {
        let needle = format!("Login: user=<{user}>");
        fs::read_to_string(self.log_file())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("imap-login") && l.contains(&needle))
            .filter_map(|l| {
                let method = l.split("method=").nth(1)?;
                Some(method.split(',').next()?.trim().to_string())
            })
            .collect()
    }

    /// Every command line `user`'s IMAP clients sent after logging in, session
    /// by session in the order the sessions began, as `TAG COMMAND ...` (needs
    /// [`DovecotOptions::rawlog`]; the login itself is not recorded). Literals
    /// (APPEND data) are not split out: the bridge sends none.
    pub fn imap_commands(&self, user: &str) -> Result<Vec<String>> {
        let dir = self.dir().join("rawlog").join(user);
        let mut files: Vec<PathBuf> = match fs::read_dir(&dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "in"))
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
        };
        // Named `YYYYMMDD-HHMMSS-PID.in`: the name orders them by start.
        files.sort();
        let mut commands = Vec::new();
        for file in files {
            let bytes = fs::read(&file).with_context(|| format!("read {}", file.display()))?;
            commands.extend(
                String::from_utf8_lossy(&bytes)
                    .lines()
                    .map(|l| strip_timestamp(l.trim_end_matches('\r')).to_string())
                    .filter(|l| !l.is_empty()),
            );
        }
        Ok(commands)
    }

    /// The user's maildir (exists once the user was added).
    pub fn maildir(&self, user: &str) -> Maildir {
        Maildir::new(
            self.dir().join("mail").join(user).join("Maildir"),
            self.owner,
        )
    }

    /// Creates `folder` for `user` if missing.
    pub fn create_folder(&self, user: &str, folder: &str) -> Result<()> {
        self.maildir(user).create_folder(folder)
    }

    /// Delivers one mail straight into the maildir (creating the folder);
    /// IMAP flags like `\Seen` or keywords. Returns the file name.
    pub fn append(&self, user: &str, folder: &str, raw: &[u8], flags: &[&str]) -> Result<String> {
        self.maildir(user).append(folder, raw, flags)
    }

    /// Delivers many mails at once (thousands per second).
    pub fn append_many<I, M>(
        &self,
        user: &str,
        folder: &str,
        mails: I,
        flags: &[&str],
    ) -> Result<usize>
    where
        I: IntoIterator<Item = M>,
        M: AsRef<[u8]>,
    {
        self.maildir(user).append_many(folder, mails, flags)
    }

    /// The mails of a folder as they are on disk, by UID.
    pub fn folder_mails(&self, user: &str, folder: &str) -> Result<Vec<MaildirMail>> {
        self.maildir(user).folder_mails(folder)
    }

    /// `INBOX` and the user's other folders.
    pub fn list_folders(&self, user: &str) -> Result<Vec<String>> {
        self.maildir(user).list_folders()
    }
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        self.kill(Duration::ZERO);
    }
}

fn render_config(dir: &Path, plain_port: u16, tls_port: u16, options: &DovecotOptions) -> String {
    let d = dir.display();
    let idle = options.idle_notify_interval.as_secs().max(1);
    let extra = &options.extra_config;
    let rawlog = if options.rawlog {
        format!("rawlog_dir = {d}/rawlog/%u\n")
    } else {
        String::new()
    };
    let (mechanisms, oauth2_passdb, password_mechanisms) = match options.oauth2_introspection_url {
        // The oauth2 passdb answers only the token mechanisms, the password
        // one only the password mechanisms: neither sees the other's secrets.
        Some(_) => (
            "plain login xoauth2 oauthbearer",
            format!(
                "passdb {{\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = {d}/oauth2.conf.ext\n}}\n"
            ),
            "  mechanisms = plain login\n",
        ),
        None => ("plain login", String::new(), ""),
    };
    format!(
        r#"# Written by testbed: Dovecot as root in a sandbox, loopback only.
base_dir = {d}/run
state_dir = {d}/state
instance_name = testbed-{plain_port}
listen = 127.0.0.1
protocols = imap
log_path = {d}/dovecot.log
# Session ends (with imap_logout_format's counters) are info lines.
info_log_path = {d}/dovecot.log
imap_logout_format = {LOGOUT_FORMAT}
{rawlog}default_login_user = dovenull
default_internal_user = dovecot
first_valid_uid = 1
ssl = yes
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
auth_mechanisms = {mechanisms}
disable_plaintext_auth = no
mail_location = maildir:~/Maildir
mail_max_userip_connections = 1000
imap_idle_notify_interval = {idle}s
mailbox_idle_check_interval = 1s
{oauth2_passdb}passdb {{
  driver = passwd-file
  args = scheme=PLAIN {d}/users/%u
{password_mechanisms}}}
userdb {{
  driver = passwd-file
  args = {d}/users/%u
}}
service imap-login {{
  chroot =
  service_count = 0
  inet_listener imap {{
    port = {plain_port}
  }}
  inet_listener imaps {{
    port = {tls_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
{extra}
"#
    )
}

/// Dovecot's oauth2 passdb settings: every login is checked by RFC 7662
/// introspection (POST `token=...`); the token's `email` must be the user.
fn render_oauth2_config(introspection_url: &str) -> String {
    format!(
        "introspection_url = {introspection_url}\nintrospection_mode = post\nusername_attribute = email\nactive_attribute = active\nactive_value = true\nforce_introspection = yes\n"
    )
}

/// A rawlog line without the `SECONDS.MICROS ` Dovecot puts before it.
fn strip_timestamp(line: &str) -> &str {
    match line.split_once(' ') {
        Some((stamp, rest))
            if !stamp.is_empty() && stamp.bytes().all(|b| b.is_ascii_digit() || b == b'.') =>
        {
            rest
        }
        _ => line,
    }
}
