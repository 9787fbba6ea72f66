//! `testbed`: the Dovecot + fake Thulium pair for shell scripts (demo, benchmark).
//!
//! `up` runs until SIGTERM/SIGINT and describes itself in `DIR/env`;
//! `append` and `dump` work on the running instance through that directory.

use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use serde_json::Value;
use testbed::{Dovecot, DovecotOptions, FakeThulium, FakeThuliumConfig, Maildir, Owner};

#[derive(Parser)]
#[command(about = "A real Dovecot and a fake Thulium API on loopback ports")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start both, write DIR/env, run until SIGTERM/SIGINT, then write
    /// DIR/api-requests.json.
    Up {
        #[arg(long)]
        dir: PathBuf,
        /// IMAP user as NAME:PASSWORD (repeatable; default support:secret).
        #[arg(long = "user")]
        users: Vec<String>,
        /// Ticket as ID:CUSTOMER_EMAIL (repeatable).
        #[arg(long = "ticket")]
        tickets: Vec<String>,
        /// Every ticket id exists.
        #[arg(long)]
        auto_tickets: bool,
        /// Latency added to every API request.
        #[arg(long, default_value_t = 0)]
        latency_ms: u64,
        #[arg(long, default_value = "api_user")]
        api_user: String,
        #[arg(long, default_value = "api_password")]
        api_password: String,
        /// Don't keep request bodies in memory (long benchmarks).
        #[arg(long)]
        no_request_bodies: bool,
    },
    /// Drop .eml files into a user's folder of the running instance.
    Append {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        user: String,
        #[arg(long, default_value = "INBOX")]
        folder: String,
        /// IMAP flag for the new mails, e.g. '\Seen' (repeatable).
        #[arg(long = "flag")]
        flags: Vec<String>,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print every folder's mails and the requests the API received.
    Dump {
        #[arg(long)]
        dir: PathBuf,
    },
}

fn main() {
    let result = match Cli::parse().command {
        Command::Up {
            dir,
            users,
            tickets,
            auto_tickets,
            latency_ms,
            api_user,
            api_password,
            no_request_bodies,
        } => {
            // TESTBED_CREATED_AT / TESTBED_BODY_STORAGE pick the undocumented behaviour.
            FakeThuliumConfig::from_env()
                .map(|defaults| FakeThuliumConfig {
                    user: api_user,
                    password: api_password,
                    auto_tickets,
                    latency: Duration::from_millis(latency_ms),
                    record_bodies: !no_request_bodies,
                    port: 0,
                    ..defaults
                })
                .and_then(|config| {
                    tokio::runtime::Runtime::new()
                        .context("tokio runtime")
                        .and_then(|rt| rt.block_on(up(&dir, &users, &tickets, config)))
                })
        }
        Command::Append {
            dir,
            user,
            folder,
            flags,
            files,
        } => append(&dir, &user, &folder, &flags, &files),
        Command::Dump { dir } => dump(&dir),
    };
    if let Err(e) = result {
        eprintln!("testbed: {e:#}");
        std::process::exit(1);
    }
}

async fn up(
    dir: &Path,
    users: &[String],
    tickets: &[String],
    config: FakeThuliumConfig,
) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let dir = fs::canonicalize(dir)?;
    let _ = fs::remove_file(dir.join("env"));
    let users = parse_pairs(users, "--user", "NAME:PASSWORD")?;
    let users = if users.is_empty() {
        vec![("support".to_string(), "secret".to_string())]
    } else {
        users
    };
    let mut ticket_list = Vec::new();
    for (id, from) in parse_pairs(tickets, "--ticket", "ID:EMAIL")? {
        let id: u64 = id.parse().with_context(|| format!("ticket id {id:?}"))?;
        ticket_list.push((id, from));
    }

    // Before anything is announced, so an early SIGTERM is not fatal.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let dovecot = Dovecot::start_with(DovecotOptions {
        dir: Some(dir.join("dovecot")),
        ..DovecotOptions::default()
    })?;
    for (name, password) in &users {
        dovecot.add_user(name, password)?;
    }
    let api = FakeThulium::start_with(config).await?;
    for (id, from) in &ticket_list {
        api.add_ticket(*id, from);
    }

    let mut env = String::new();
    let mut var = |key: &str, value: &str| {
        let _ = writeln!(env, "{key}={}", shell_quote(value));
    };
    var("TESTBED_DIR", &dir.display().to_string());
    var("TESTBED_PID", &std::process::id().to_string());
    var("IMAP_HOST", dovecot.host());
    var("IMAP_PLAIN_PORT", &dovecot.plain_port().to_string());
    var("IMAP_TLS_PORT", &dovecot.tls_port().to_string());
    var("CA_FILE", &dovecot.ca_file().display().to_string());
    var("DOVECOT_LOG", &dovecot.log_file().display().to_string());
    var("API_URL", &api.url());
    var("API_USER", api.user());
    var("API_PASSWORD", api.password());
    let names: Vec<&str> = users.iter().map(|(n, _)| n.as_str()).collect();
    var("TESTBED_USERS", &names.join(" "));
    var("IMAP_USER", &users[0].0);
    var("IMAP_PASSWORD", &users[0].1);
    var(
        "MAILDIR",
        &dovecot.maildir(&users[0].0).root().display().to_string(),
    );
    for (name, _) in &users {
        let root = dovecot.maildir(name).root().display().to_string();
        var(&format!("MAILDIR_{}", env_suffix(name)), &root);
    }
    // Written last and renamed into place: its presence means "ready".
    fs::write(dir.join("env.tmp"), env)?;
    fs::rename(dir.join("env.tmp"), dir.join("env"))?;
    eprintln!(
        "testbed up: IMAP 127.0.0.1:{} (TLS {}), API {} — see {}",
        dovecot.plain_port(),
        dovecot.tls_port(),
        api.url(),
        dir.join("env").display()
    );

    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }

    let requests = serde_json::to_vec_pretty(&api.requests())?;
    fs::write(dir.join("api-requests.json"), requests)?;
    let posted = serde_json::to_vec_pretty(&api.all_posted())?;
    fs::write(dir.join("api-posted.json"), posted)?;
    let _ = fs::remove_file(dir.join("env"));
    dovecot.stop()?;
    eprintln!(
        "testbed down: requests in {}",
        dir.join("api-requests.json").display()
    );
    Ok(())
}

fn append(dir: &Path, user: &str, folder: &str, flags: &[String], files: &[PathBuf]) -> Result<()> {
    let maildir = user_maildir(dir, user)?;
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    for file in files {
        let raw = fs::read(file).with_context(|| format!("read {}", file.display()))?;
        let name = maildir.append(folder, &raw, &flags)?;
        println!("{} -> {user}/{folder}/{name}", file.display());
    }
    Ok(())
}

fn dump(dir: &Path) -> Result<()> {
    let users_dir = dir.join("dovecot").join("users");
    let mut users: Vec<String> = fs::read_dir(&users_dir)
        .with_context(|| format!("no testbed in {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    users.sort();
    for user in &users {
        let maildir = user_maildir(dir, user)?;
        println!("== mailbox {user}");
        for folder in maildir.list_folders()? {
            let mails = maildir.folder_mails(&folder)?;
            println!("{folder} ({})", mails.len());
            for mail in mails {
                let uid = mail.uid.map_or("-".to_string(), |u| u.to_string());
                println!(
                    "  uid {uid:>5}  [{}]  {}",
                    mail.flags.join(" "),
                    mail.subject().unwrap_or_default()
                );
            }
        }
    }

    let requests = match read_env(dir).and_then(|env| fetch_requests(&env)) {
        Ok(requests) => requests,
        Err(_) => {
            let saved = dir.join("api-requests.json");
            let text = fs::read(&saved)
                .with_context(|| format!("API not running and no {}", saved.display()))?;
            serde_json::from_slice(&text)?
        }
    };
    let list = requests.as_array().cloned().unwrap_or_default();
    println!("== API requests ({})", list.len());
    for r in list {
        let status = r["status"]
            .as_u64()
            .map_or("dropped".to_string(), |s| s.to_string());
        let fault = if r["fault"].is_null() {
            String::new()
        } else {
            format!("  fault={}", r["fault"])
        };
        let auth = if r["auth_ok"] == Value::Bool(true) {
            ""
        } else {
            "  BAD AUTH"
        };
        let body = &r["body"];
        let detail = if body.is_object() {
            let text = body["body"].as_str().unwrap_or_default();
            let short: String = text.chars().take(60).collect();
            format!(
                "  {} {}  {:?}",
                body["body_type"].as_str().unwrap_or("(HTML)"),
                body["date"].as_str().unwrap_or("(no date)"),
                short
            )
        } else {
            String::new()
        };
        println!(
            "  #{:<4} {} {} -> {status}{auth}{fault}{detail}",
            r["seq"],
            r["method"].as_str().unwrap_or("?"),
            r["path"].as_str().unwrap_or("?")
        );
    }
    Ok(())
}

fn user_maildir(dir: &Path, user: &str) -> Result<Maildir> {
    let dovecot = dir.join("dovecot");
    if !dovecot.join("users").join(user).is_file() {
        bail!("no user {user:?} in {}", dir.display());
    }
    let root = dovecot.join("mail").join(user).join("Maildir");
    Ok(Maildir::new(root, Owner::dovecot()?))
}

/// `GET /_testbed/requests` with plain HTTP/1.1 over a socket.
fn fetch_requests(env: &[(String, String)]) -> Result<Value> {
    let url = env
        .iter()
        .find(|(k, _)| k == "API_URL")
        .map(|(_, v)| v.as_str())
        .context("no API_URL in env")?;
    let host = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .context("API_URL is not http://HOST:PORT/...")?;
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET /_testbed/requests HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("bad HTTP answer")?;
    Ok(serde_json::from_slice(&response[split + 4..])?)
}

/// Reads back `DIR/env` as written by `up`.
fn read_env(dir: &Path) -> Result<Vec<(String, String)>> {
    let text = fs::read_to_string(dir.join("env"))?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), shell_unquote(v)))
        .collect())
}

fn parse_pairs(items: &[String], flag: &str, form: &str) -> Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|item| match item.split_once(':') {
            Some((a, b)) if !a.is_empty() && !b.is_empty() => Ok((a.to_string(), b.to_string())),
            _ => bail!("{flag} wants {form}, got {item:?}"),
        })
        .collect()
}

/// `support@example.com` -> `SUPPORT_EXAMPLE_COM`, a valid shell name part.
fn env_suffix(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

fn shell_unquote(value: &str) -> String {
    let inner = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\''));
    inner.map_or_else(|| value.to_string(), |v| v.replace(r"'\''", "'"))
}
