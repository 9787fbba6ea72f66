//! The integration harness: a real Dovecot, the fake Thulium API, a config, and the
//! real `thulium-mail-bridge` binary run as a child process.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use testbed::{Dovecot, FakeThulium, MaildirMail};

pub const USER: &str = "support";
pub const PASSWORD: &str = "imap-Secret-7";
pub const CUSTOMER: &str = "anna@customer.example";

/// One test's world.
pub struct World {
    pub dovecot: Dovecot,
    pub api: FakeThulium,
    pub dir: tempfile::TempDir,
}

/// How a mailbox table connects; the default is the plain port on loopback.
#[derive(Clone)]
pub struct MailboxOpts {
    pub name: String,
    pub user: String,
    pub password: String,
    pub tls: &'static str,
    pub extra: String,
}

impl Default for MailboxOpts {
    fn default() -> Self {
        MailboxOpts {
            name: "support".into(),
            user: USER.into(),
            password: PASSWORD.into(),
            tls: "none",
            extra: String::new(),
        }
    }
}

impl World {
    pub async fn start() -> World {
        let dovecot = Dovecot::start().expect("dovecot starts");
        dovecot.add_user(USER, PASSWORD).expect("user added");
        let api = FakeThulium::start().await.expect("fake API starts");
        World {
            dovecot,
            api,
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// A `[[mailbox]]` table for `opts`.
    pub fn mailbox_toml(&self, opts: &MailboxOpts) -> String {
        let port = match opts.tls {
            "tls" => self.dovecot.tls_port(),
            _ => self.dovecot.plain_port(),
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
    pub fn config_with(
        &self,
        mailboxes: &[MailboxOpts],
        thulium_extra: &str,
        sections: &str,
    ) -> PathBuf {
        let mut text = format!(
            "[thulium]\nurl = {:?}\nuser = {:?}\npassword = {:?}\ntimeout = \"2s\"\ntimezone = \"Europe/Warsaw\"\n{}\n",
            self.api.url(),
            self.api.user(),
            self.api.password(),
            thulium_extra,
        );
        for mb in mailboxes {
            text.push_str(&self.mailbox_toml(mb));
        }
        text.push_str(&format!(
            "[state]\ndir = {:?}\n",
            self.dir.path().join("state")
        ));
        text.push_str(sections);
        let path = self.dir.path().join("config.toml");
        std::fs::write(&path, text).expect("config written");
        path
    }

    pub fn config(&self) -> PathBuf {
        self.config_with(&[MailboxOpts::default()], "", "")
    }

    pub fn append(&self, raw: &[u8]) {
        self.dovecot
            .append(USER, "INBOX", raw, &[])
            .expect("mail appended");
    }

    pub fn folder(&self, folder: &str) -> Vec<MaildirMail> {
        self.dovecot.folder_mails(USER, folder).unwrap_or_default()
    }

    pub fn subjects(&self, folder: &str) -> Vec<String> {
        let mut s: Vec<String> = self
            .folder(folder)
            .iter()
            .filter_map(|m| m.subject())
            .collect();
        s.sort();
        s
    }
}

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_thulium-mail-bridge"));
    c.env_remove("RUST_LOG")
        .env_remove("THULIUM_MAIL_BRIDGE_CONFIG");
    c
}

/// Runs a command to completion off the async runtime (the fake API lives on it).
pub async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("binary runs"))
        .await
        .expect("join")
}

pub async fn once(config: &Path, extra_args: &[&str]) -> Output {
    let mut c = bin();
    c.arg("--config").arg(config).arg("once").args(extra_args);
    output(c).await
}

pub fn text(out: &Output) -> String {
    format!(
        "status: {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A child process that is killed when the test ends, even by a failed assertion.
pub struct Daemon(pub Child);

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
pub fn spawn_run(config: &Path, log: &Path) -> Daemon {
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

pub fn signal(child: &Child, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill runs");
    assert!(status.success());
}

/// Waits for a child's exit with a deadline (polling, not sleeping blindly).
pub async fn wait_exit(child: &mut Child, deadline: Duration) -> Option<std::process::ExitStatus> {
    let end = std::time::Instant::now() + deadline;
    while std::time::Instant::now() < end {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

/// Polls `cond` until it holds or `deadline` passes.
pub async fn eventually(deadline: Duration, mut cond: impl FnMut() -> bool) -> bool {
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

/// A customer reply to `ticket`.
pub fn reply(ticket: u64, n: u32, body: &str) -> Vec<u8> {
    reply_from(CUSTOMER, ticket, n, body)
}

pub fn reply_from(from: &str, ticket: u64, n: u32, body: &str) -> Vec<u8> {
    format!(
        "From: Customer <{from}>\r\nTo: support@acme.example\r\nSubject: Re: [TH#{ticket}] Order question\r\n\
         Date: Thu, 26 Nov 2026 {:02}:{:02}:00 +0100\r\nMessage-ID: <reply-{ticket}-{n}@customer.example>\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n",
        10 + (n / 60) % 12,
        n % 60
    )
    .into_bytes()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Status and body of a GET (status 0 when nothing answered).
pub async fn get(url: &str) -> (u16, String) {
    match reqwest::get(url).await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(_) => (0, String::new()),
    }
}
