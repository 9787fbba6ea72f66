//! The integration harness: a real Dovecot, the fake Thulium API, a config, and the
//! real `thulium-mail-bridge` binary run as a child process.
#![allow(dead_code, reason = "each test file uses a part of it")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::Duration;
use testbed::{
    Dovecot, DovecotOptions, FakeThulium, FakeThuliumConfig, MaildirMail, Postgres, Reading,
};

pub(crate) const USER: &str = "support";
pub(crate) const PASSWORD: &str = "imap-Secret-7";
pub(crate) const CUSTOMER: &str = "anna@customer.example";

/// How long a test waits for something that should happen: a hang guard for a
/// loaded two-core CI machine, never a performance assertion. When things work,
/// waits end as soon as their condition holds.
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// One test's world.
pub(crate) struct World {
    pub dovecot: Dovecot,
    pub api: FakeThulium,
    pub dir: tempfile::TempDir,
    /// The shared ledger, when the test runs on PostgreSQL ([`on_postgres`]).
    pub postgres: Option<Postgres>,
}

tokio::task_local! {
    /// Set by [`on_postgres`]: worlds made inside keep their ledger in a real PostgreSQL.
    static LEDGER_ON_POSTGRES: bool;
}

/// Runs `test` with every world it makes keeping its ledger in PostgreSQL (over TLS to
/// a private CA): the exactly-once suites run on both backends.
pub(crate) async fn on_postgres<F: std::future::Future>(test: F) -> F::Output {
    LEDGER_ON_POSTGRES.scope(true, test).await
}

/// How a mailbox table connects; the default is the plain port on loopback.
#[derive(Clone)]
pub(crate) struct MailboxOpts {
    pub name: String,
    pub user: String,
    pub password: String,
    pub tls: &'static str,
    /// Another port than Dovecot's (a proxy in front of it, a closed one).
    pub port: Option<u16>,
    pub extra: String,
}

impl Default for MailboxOpts {
    fn default() -> Self {
        MailboxOpts {
            name: "support".into(),
            user: USER.into(),
            password: PASSWORD.into(),
            tls: "none",
            port: None,
            extra: String::new(),
        }
    }
}

impl MailboxOpts {
    /// The mailbox of Dovecot user `name` (added with `password`), named after it.
    pub(crate) fn of_user(name: &str, password: &str) -> MailboxOpts {
        MailboxOpts {
            name: name.into(),
            user: name.into(),
            password: password.into(),
            ..MailboxOpts::default()
        }
    }
}

impl World {
    pub(crate) async fn start() -> World {
        World::start_with(DovecotOptions::default()).await
    }

    /// A world whose fake API keeps `reading` of what the documentation leaves open.
    pub(crate) async fn under(reading: Reading) -> World {
        let api = FakeThuliumConfig::from_env()
            .expect("TESTBED_* variables")
            .under(reading);
        World::start_full(DovecotOptions::default(), api).await
    }

    /// A world whose Dovecot runs with `options` (no IDLE, no MOVE, rawlog, ...).
    pub(crate) async fn start_with(options: DovecotOptions) -> World {
        let api = FakeThuliumConfig::from_env().expect("TESTBED_* variables");
        World::start_full(options, api).await
    }

    async fn start_full(options: DovecotOptions, api: FakeThuliumConfig) -> World {
        let dovecot = Dovecot::start_with(options).expect("dovecot starts");
        dovecot.add_user(USER, PASSWORD).expect("user added");
        let api = FakeThulium::start_with(api).await.expect("fake API starts");
        let postgres = if LEDGER_ON_POSTGRES.try_with(|on| *on).unwrap_or(false) {
            let started = tokio::task::spawn_blocking(Postgres::start).await;
            Some(started.expect("join").expect("postgres starts"))
        } else {
            None
        };
        World {
            dovecot,
            api,
            dir: tempfile::tempdir().expect("temp dir"),
            postgres,
        }
    }

    /// A `[[mailbox]]` table for `opts`.
    pub(crate) fn mailbox_toml(&self, opts: &MailboxOpts) -> String {
        let port = match (opts.port, opts.tls) {
            (Some(port), _) => port,
            (None, "tls") => self.dovecot.tls_port(),
            (None, _) => self.dovecot.plain_port(),
        };
        let ca = if opts.tls == "none" {
            String::new()
        } else {
            format!("ca_file = {:?}\n", self.dovecot.ca_file())
        };
        let poll = if opts.extra.contains("poll_interval") {
            ""
        } else {
            "poll_interval = \"1s\"\n"
        };
        format!(
            "[[mailbox]]\nname = {:?}\nhost = \"127.0.0.1\"\nport = {port}\ntls = {:?}\n{ca}username = {:?}\npassword = {:?}\n{poll}{}\n",
            opts.name, opts.tls, opts.user, opts.password, opts.extra
        )
    }

    /// Writes a config: `thulium_extra` goes into `[thulium]`, `sections` at the end.
    /// The API timeout is 2 s unless `thulium_extra` sets one.
    pub(crate) fn config_with(
        &self,
        mailboxes: &[MailboxOpts],
        thulium_extra: &str,
        sections: &str,
    ) -> PathBuf {
        let timeout = if thulium_extra.contains("timeout") {
            ""
        } else {
            "timeout = \"2s\"\n"
        };
        let mut text = format!(
            "[thulium]\nurl = {:?}\nuser = {:?}\npassword = {:?}\n{timeout}timezone = \"Europe/Warsaw\"\n{}\n",
            self.api.url(),
            self.api.user(),
            self.api.password(),
            thulium_extra,
        );
        for mb in mailboxes {
            text.push_str(&self.mailbox_toml(mb));
        }
        text.push_str(&format!(
            "[state]\ndir = {:?}\n{}",
            self.dir.path().join("state"),
            self.shared_ledger_toml()
        ));
        text.push_str(sections);
        let path = self.dir.path().join("config.toml");
        std::fs::write(&path, text).expect("config written");
        path
    }

    /// The `[state]` keys of the PostgreSQL ledger, if the world has one.
    pub(crate) fn shared_ledger_toml(&self) -> String {
        let Some(pg) = &self.postgres else {
            return String::new();
        };
        let password_file = self.dir.path().join("postgres.password");
        std::fs::write(&password_file, pg.password()).expect("password file written");
        format!(
            "backend = \"postgres\"\npostgres_url = {:?}\npostgres_password_file = {:?}\npostgres_ca_file = {:?}\nlease = \"6s\"\n",
            pg.url(),
            password_file,
            pg.ca_file()
        )
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.config_with(&[MailboxOpts::default()], "", "")
    }

    /// Where [`spawn_run`] is usually pointed, and what [`World::log`] reads.
    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.path().join("run.log")
    }

    /// The daemon's log so far.
    pub(crate) fn log(&self) -> String {
        read(&self.log_path())
    }

    /// The default mailbox, with the `[metrics]` listener on `port`.
    pub(crate) fn config_with_metrics(&self, port: u16) -> PathBuf {
        self.config_with(
            &[MailboxOpts::default()],
            "",
            &format!("[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
        )
    }

    /// `run` with this world's log file.
    pub(crate) fn spawn_run(&self, config: &Path) -> Daemon {
        spawn_run(config, &self.log_path())
    }

    pub(crate) fn append(&self, raw: &[u8]) {
        self.dovecot
            .append(USER, "INBOX", raw, &[])
            .expect("mail appended");
    }

    /// Moves mails of `from` into `to` with a second IMAP client, as a person's mail
    /// client would: `which` is `MOVE 1:*` for all of them, or `UID MOVE 42` for one.
    pub(crate) fn move_as_a_person(&self, from: &str, which: &str, to: &str) {
        let port = self.dovecot.plain_port();
        let mut client = testbed::ImapClient::login_to("127.0.0.1", port, USER, PASSWORD)
            .expect("a second IMAP client logs in");
        client.select(from).expect("select");
        client
            .command_ok(&format!("{which} {to}"))
            .expect("the move");
        client.logout().expect("logout");
    }

    pub(crate) fn folder(&self, folder: &str) -> Vec<MaildirMail> {
        self.dovecot.folder_mails(USER, folder).unwrap_or_default()
    }

    pub(crate) fn subjects(&self, folder: &str) -> Vec<String> {
        let mut s: Vec<String> = self
            .folder(folder)
            .iter()
            .filter_map(|m| m.subject())
            .collect();
        s.sort();
        s
    }
}

pub(crate) fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_thulium-mail-bridge"));
    c.env_remove("RUST_LOG")
        .env_remove("THULIUM_MAIL_BRIDGE_CONFIG");
    c
}

/// Runs a command to completion off the async runtime (the fake API lives on it).
pub(crate) async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("binary runs"))
        .await
        .expect("join")
}

/// `thulium-mail-bridge --config CONFIG ARGS…`, run to completion.
pub(crate) async fn command(config: &Path, args: &[&str]) -> Output {
    let mut c = bin();
    c.arg("--config").arg(config).args(args);
    output(c).await
}

pub(crate) async fn once(config: &Path, extra_args: &[&str]) -> Output {
    command(config, &[&["once"], extra_args].concat()).await
}

pub(crate) fn text(out: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A child process that is killed when the test ends, even by a failed assertion.
pub(crate) struct Daemon(pub Child);

impl std::ops::Deref for Daemon {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `run` as a child, appending its log to `log`.
pub(crate) fn spawn_run(config: &Path, log: &Path) -> Daemon {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("log file");
    Daemon(
        bin()
            .arg("--config")
            .arg(config)
            .arg("run")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("run starts"),
    )
}

pub(crate) fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Waits for a child's exit with a deadline (polling, not sleeping blindly).
/// `None` when it is still running: assert on the result.
#[must_use = "assert that the process exited, and how"]
pub(crate) async fn wait_exit(child: &mut Child, deadline: Duration) -> Option<ExitStatus> {
    let end = std::time::Instant::now() + deadline;
    while std::time::Instant::now() < end {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// SIGTERM, then the exit status; fails the test (with `log`) when the process has
/// not exited within [`WAIT`].
pub(crate) async fn terminate(child: &mut Child, log: &Path) -> ExitStatus {
    signal(child, "TERM");
    match wait_exit(child, WAIT).await {
        Some(status) => status,
        None => panic!("still running {WAIT:?} after SIGTERM; log:\n{}", read(log)),
    }
}

/// SIGTERM, and the process must exit 0 (the log in the failure message).
pub(crate) async fn terminate_ok(child: &mut Child, log: &Path) {
    let status = terminate(child, log).await;
    assert_eq!(
        status.code(),
        Some(0),
        "exit after SIGTERM; log:\n{}",
        read(log)
    );
}

/// A file's text, empty when it cannot be read (logs that do not exist yet).
pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Polls `cond` until it holds or `deadline` passes.
pub(crate) async fn eventually(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + deadline;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Calls the async `probe` until `done` holds for what it returned, or `deadline`
/// passes: `Ok(last value)`, or `Err(last value)` to show in the failure message.
pub(crate) async fn probe_until<T, F, Fut>(
    deadline: Duration,
    mut probe: F,
    done: impl Fn(&T) -> bool,
) -> Result<T, T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let end = std::time::Instant::now() + deadline;
    loop {
        let value = probe().await;
        if done(&value) {
            return Ok(value);
        }
        if std::time::Instant::now() >= end {
            return Err(value);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Whether a text log line carries `key=value`, as a plain or a quoted value, as an
/// event field or a span field (`mail{ticket=5}`): `ticket=5` is not `ticket=55`.
pub(crate) fn has_field(line: &str, key: &str, value: &str) -> bool {
    [format!("{key}={value}"), format!("{key}={value:?}")]
        .iter()
        .any(|pair| {
            line.match_indices(pair.as_str()).any(|(at, _)| {
                let before = line[..at].chars().next_back();
                let after = line[at + pair.len()..].chars().next();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                    && after.is_none_or(|c| matches!(c, ' ' | '}' | ',' | ':'))
            })
        })
}

/// One test per reading of what the documentation leaves open (testbed's
/// `Reading::every`): `under_every_reading!(scenario)` runs `scenario(reading)` under each.
#[macro_export]
macro_rules! under_every_reading {
    ($scenario:ident) => {
        mod $scenario {
            async fn under(name: &str) {
                let reading = testbed::Reading::named(name).expect("a reading of Reading::every");
                super::$scenario(reading).await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn date_sent() {
                under("date_sent").await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn date_sent_re_rendered() {
                under("date_sent_re_rendered").await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn date_sent_in_new_york() {
                under("date_sent_in_new_york").await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn storage_time() {
                under("storage_time").await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn storage_time_re_rendered() {
                under("storage_time_re_rendered").await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn storage_time_in_utc() {
                under("storage_time_in_utc").await
            }
            #[tokio::test(flavor = "multi_thread")]
            async fn storage_time_at_plus_05_30() {
                under("storage_time_at_plus_05_30").await
            }
            /// The reading that once stored the most duplicates, on the shared ledger.
            #[tokio::test(flavor = "multi_thread")]
            async fn storage_time_in_utc_on_postgres() {
                super::support::on_postgres(under("storage_time_in_utc")).await
            }
        }
    };
}

/// `(missing, duplicates)` of `per_ticket` replies to each of `tickets`, counted in the
/// API's store; fails unless each ticket's replies were stored in date order.
pub(crate) fn audit(api: &FakeThulium, tickets: u64, per_ticket: u32) -> (usize, usize) {
    let (mut missing, mut duplicates) = (0, 0);
    for t in 1..=tickets {
        let bodies: Vec<String> = api
            .posted(t)
            .iter()
            .map(|r| r.body.trim().to_string())
            .collect();
        // Reply n is dated n minutes after reply 0 (support::reply).
        let order: Vec<u32> = bodies
            .iter()
            .filter_map(|b| b.strip_prefix("reply ")?.split(' ').next()?.parse().ok())
            .collect();
        assert!(
            order.is_sorted(),
            "ticket {t}: stored out of date order: {order:?}"
        );
        for n in 0..per_ticket {
            match bodies
                .iter()
                .filter(|b| **b == format!("reply {n} to {t}"))
                .count()
            {
                0 => missing += 1,
                1 => {}
                k => duplicates += k - 1,
            }
        }
    }
    (missing, duplicates)
}

/// A customer reply to `ticket`.
pub(crate) fn reply(ticket: u64, n: u32, body: &str) -> Vec<u8> {
    reply_from(CUSTOMER, ticket, n, body)
}

pub(crate) fn reply_from(from: &str, ticket: u64, n: u32, body: &str) -> Vec<u8> {
    format!(
        "From: Customer <{from}>\r\nTo: support@acme.example\r\nSubject: Re: [TH#{ticket}] Order question\r\n\
         Date: Thu, 26 Nov 2026 {:02}:{:02}:00 +0100\r\nMessage-ID: <reply-{ticket}-{n}@customer.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        10 + (n / 60) % 12,
        n % 60
    )
    .into_bytes()
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// `ledger <args>` against `config`: (success, stdout).
pub(crate) async fn ledger(config: &Path, args: &[&str]) -> (bool, String) {
    let out = command(config, &[&["ledger"], args].concat()).await;
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// POSTs the fake API received so far, answered or not.
pub(crate) fn posts(api: &FakeThulium) -> usize {
    api.requests().iter().filter(|r| r.method == "POST").count()
}

/// The value of the sample `name{labels}` in Prometheus text format: the label
/// set must be exactly `labels` (in any order); `None` when there is no such
/// sample. `name{a="x"} 20` is not `name{a="x"} 2`, and `name_count` is not `name`.
pub(crate) fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut want: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    want.sort();
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(parse_sample)
        .find(|(n, l, _)| n == name && *l == want)
        .map(|(_, _, v)| v)
}

/// A sample's labels, sorted.
type Labels = Vec<(String, String)>;

/// `name{k="v",...} value [timestamp]` as (name, sorted labels, value).
fn parse_sample(line: &str) -> Option<(String, Labels, f64)> {
    let line = line.trim();
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut chars = inner.char_indices();
        let mut key = String::new();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '}' => break i,
                ',' | ' ' => {}
                '=' => {
                    if chars.next()?.1 != '"' {
                        return None;
                    }
                    let mut value = String::new();
                    loop {
                        match chars.next()?.1 {
                            '"' => break,
                            '\\' => match chars.next()?.1 {
                                'n' => value.push('\n'),
                                other => value.push(other),
                            },
                            other => value.push(other),
                        }
                    }
                    labels.push((std::mem::take(&mut key), value));
                }
                c => key.push(c),
            }
        };
        rest = &inner[end + 1..];
    }
    let value = rest.split_whitespace().next()?.parse().ok()?;
    labels.sort();
    Some((name.to_string(), labels, value))
}

/// `/metrics` of a daemon listening on `port` (empty when nothing answered).
pub(crate) async fn metrics(port: u16) -> String {
    get(&format!("http://127.0.0.1:{port}/metrics")).await.1
}

/// Status and body of a GET (status 0 when nothing answered).
pub(crate) async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}
