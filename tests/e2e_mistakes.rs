//! Issue 15, point 1: an admin's usual mistakes, each made against a real Dovecot, a
//! local listener or an IdP that answers as Microsoft's or Google's does, and what
//! `check` says about it: the hint that names the fix, the exit code, an answer within
//! a hang guard (3 s budgets, never 30), every warning once, and no secret in sight.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::*;
use testbed::FakeIdp;

/// Check returns within this whatever the mistake: a hang guard, not a timing test.
const HANG_GUARD: Duration = Duration::from_secs(15);

const APP: &str = "bridge-app";
const APP_SECRET: &str = "app-Secret-42";
const SERVICE_ACCOUNT: &str = "bridge@acme-mail.iam.gserviceaccount.com";

/// One mistake: the config that makes it, what check must say, how it must exit.
struct Row {
    mistake: &'static str,
    config: PathBuf,
    /// Environment for check (beyond a clean one: no CREDENTIALS_DIRECTORY).
    env: Vec<(&'static str, PathBuf)>,
    hints: Vec<String>,
    exit: i32,
}

impl Row {
    fn new(mistake: &'static str, config: PathBuf, hints: &[&str], exit: i32) -> Row {
        Row {
            mistake,
            config,
            env: Vec::new(),
            hints: hints.iter().map(|h| h.to_string()).collect(),
            exit,
        }
    }
}

/// What one check run printed, and how it ended.
struct Ran {
    exit: Option<i32>,
    out: String,
    took: Duration,
}

/// Runs check; kills it at the hang guard.
async fn check(config: &Path, env: &[(&str, PathBuf)]) -> Ran {
    let mut c = bin();
    c.arg("--config")
        .arg(config)
        .arg("check")
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let started = Instant::now();
    let mut child = c.spawn().expect("check starts");
    let status = wait_exit(&mut child, HANG_GUARD).await;
    if status.is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("output read");
    Ran {
        exit: status.and_then(|s| s.code()),
        out: format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        took: started.elapsed(),
    }
}

/// The text of each warning check printed (`ok   … warning: TEXT` lines and `WARN` log
/// lines); each must appear once in the whole output.
fn repeated_warnings(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            l.split_once("warning: ")
                .or_else(|| l.split_once(" WARN "))
                .map(|(_, text)| text.trim().to_string())
        })
        .filter(|text| out.matches(text.as_str()).count() != 1)
        .collect()
}

/// A `[[mailbox]]` named support for Dovecot's user, with `keys` (host, port, tls, …).
fn mailbox(keys: &str) -> String {
    format!(
        "[[mailbox]]\nname = \"support\"\n{keys}\nusername = {USER:?}\npoll_interval = \"1s\"\n"
    )
}

/// Dovecot on loopback, at `port` with `tls`, logging in with `password`.
fn dovecot_mailbox(w: &World, port: u16, tls: &str, extra: &str) -> String {
    mailbox(&format!(
        "host = \"127.0.0.1\"\nport = {port}\ntls = {tls:?}\nca_file = {:?}\npassword = {PASSWORD:?}\n{extra}",
        w.dovecot.ca_file()
    ))
}

/// A config file named `name` holding the API settings (the password inline) and
/// `table`, readable by others (mode 644) as a fresh file often is.
fn config(w: &World, name: &str, table: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = w.config_with(&[], "", table);
    let named = w.dir.path().join(format!("{name}.toml"));
    std::fs::rename(&path, &named).expect("config renamed");
    std::fs::set_permissions(&named, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    named
}

/// An IdP that answers every token request with `status` and `body`, as a provider
/// we cannot run here does (Google's exact words).
async fn answering(status: u16, body: &'static str) -> String {
    use axum::http::StatusCode;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let code = StatusCode::from_u16(status).expect("status");
    let app = axum::Router::new().route(
        "/token",
        axum::routing::post(
            move || async move { (code, [("content-type", "application/json")], body) },
        ),
    );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/token")
}

/// A listener that accepts connections and never says a word (until the test ends).
fn silent_port() -> (u16, std::thread::JoinHandle<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let keeper = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(8) {
            match stream {
                Ok(s) => held.push(s),
                Err(_) => return,
            }
        }
    });
    (port, keeper)
}

/// A server that offers STARTTLS, says yes to it, and then goes on in plain text, as a
/// middlebox that strips STARTTLS does.
fn starttls_then_plain_port() -> (u16, std::thread::JoinHandle<()>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || {
        for stream in listener.incoming().take(4) {
            let Ok(mut out) = stream else { return };
            let Ok(reader) = out.try_clone() else { return };
            let _ = out.write_all(b"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n");
            let mut reader = BufReader::new(reader);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                let tag = line.split(' ').next().unwrap_or("*").to_string();
                let command = line.to_ascii_uppercase();
                line.clear();
                if command.contains("STARTTLS") {
                    let _ = out.write_all(format!("{tag} OK Begin TLS now\r\n").as_bytes());
                    // The client's hello, answered in plain text.
                    let mut hello = [0u8; 512];
                    let _ = reader.read(&mut hello);
                    let _ = out.write_all(b"* BAD still plain text\r\n");
                    let _ = reader.read(&mut hello);
                    break;
                }
                let answer = format!("* CAPABILITY IMAP4rev1 STARTTLS\r\n{tag} OK done\r\n");
                if out.write_all(answer.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    (port, server)
}

/// The servers the mistakes are made against, and the files their configs name.
struct Setup {
    w: World,
    idp: FakeIdp,
    plain: u16,
    secret_file: PathBuf,
    revoked_file: PathBuf,
}

impl Setup {
    /// Dovecot with folders besides INBOX, an IdP that knows the app, the app's secret
    /// in a file and a refresh token the IdP has revoked.
    async fn start() -> Setup {
        let w = World::start().await;
        w.dovecot.create_folder(USER, "Archive").expect("folder");
        w.dovecot.create_folder(USER, "Klienci").expect("folder");
        let idp = FakeIdp::start().await.expect("fake IdP starts");
        idp.add_client(APP, Some(APP_SECRET));
        let plain = w.dovecot.plain_port();
        let secret_file = write(&w, "app.secret", &format!("{APP_SECRET}\n"));
        let revoked = idp.issue_refresh_token(APP, USER);
        idp.revoke_refresh_token(&revoked);
        let revoked_file = write(&w, "revoked.token", &revoked);
        Setup {
            w,
            idp,
            plain,
            secret_file,
            revoked_file,
        }
    }

    /// A config with an OAuth2 mailbox on Dovecot's plain port; `keys` is its `[mailbox.oauth2]`.
    fn oauth2(&self, name: &str, keys: &str) -> PathBuf {
        let plain = self.plain;
        config(
            &self.w,
            name,
            &format!(
                "[[mailbox]]\nname = \"support\"\nhost = \"127.0.0.1\"\nport = {plain}\ntls = \"none\"\nusername = {USER:?}\n[mailbox.oauth2]\n{keys}\n"
            ),
        )
    }

    fn client_credentials(&self, name: &str, url: &str, client: &str, secret: &Path) -> PathBuf {
        self.oauth2(
            name,
            &format!(
                "grant = \"client_credentials\"\ntoken_url = {url:?}\nclient_id = {client:?}\nclient_secret_file = {secret:?}\n"
            ),
        )
    }

    /// The refresh token grant with the revoked token.
    fn refresh_token(&self, name: &str, url: &str) -> PathBuf {
        let (secret_file, revoked_file) = (&self.secret_file, &self.revoked_file);
        self.oauth2(
            name,
            &format!(
                "grant = \"refresh_token\"\ntoken_url = {url:?}\nclient_id = {APP:?}\nclient_secret_file = {secret_file:?}\nrefresh_token_file = {revoked_file:?}\n"
            ),
        )
    }

    /// A service account's key file. One service account per key file: registering an
    /// account again replaces its key.
    fn key(&self, name: &str, delegated: bool) -> PathBuf {
        write(
            &self.w,
            name,
            &self
                .idp
                .add_service_account(&format!("{name}-{SERVICE_ACCOUNT}"), delegated)
                .expect("key"),
        )
    }

    fn jwt_bearer(&self, name: &str, url: &str, key: &Path) -> PathBuf {
        self.oauth2(
            name,
            &format!(
                "grant = \"jwt_bearer\"\ntoken_url = {url:?}\nservice_account_key_file = {key:?}\n"
            ),
        )
    }

    /// A config whose password file is named as in the systemd unit.
    fn in_unit(&self, name: &str, password_file: &str) -> PathBuf {
        let plain = self.plain;
        config(
            &self.w,
            name,
            &mailbox(&format!(
                "host = \"127.0.0.1\"\nport = {plain}\ntls = \"none\"\npassword_file = {password_file:?}\n"
            )),
        )
    }
}

/// Writes `text` to the file `name` in the test's directory.
fn write(w: &World, name: &str, text: &str) -> PathBuf {
    let path = w.dir.path().join(name);
    std::fs::write(&path, text).expect("written");
    path
}

/// A TLS mode the port does not speak, and a server that only pretends to.
fn tls_rows(s: &Setup, stripping: u16) -> Vec<Row> {
    let w = &s.w;
    let (plain, tls) = (s.plain, w.dovecot.tls_port());
    vec![
        Row::new(
            "tls = \"tls\" on the STARTTLS port",
            config(w, "tls-on-plain", &dovecot_mailbox(w, plain, "tls", "")),
            &["speaks plain IMAP", "set tls = \"starttls\""],
            1,
        ),
        Row::new(
            "a server that accepts STARTTLS and goes on in plain text",
            config(
                w,
                "starttls-stripped",
                &dovecot_mailbox(w, stripping, "starttls", ""),
            ),
            &["accepted STARTTLS", "did not then speak TLS"],
            1,
        ),
        Row::new(
            "tls = \"starttls\" on the implicit-TLS port",
            config(
                w,
                "starttls-on-tls",
                &dovecot_mailbox(w, tls, "starttls", ""),
            ),
            &[
                "no greeting came within 3s",
                "expect TLS at once",
                "set tls = \"tls\"",
            ],
            1,
        ),
        Row::new(
            "tls = \"none\" on the implicit-TLS port",
            config(w, "none-on-tls", &dovecot_mailbox(w, tls, "none", "")),
            &["no greeting came within 3s", "set tls = \"tls\""],
            1,
        ),
    ]
}

/// A host, port, folder or password that is wrong.
fn address_rows(s: &Setup, silent: u16, refused: u16) -> Vec<Row> {
    let w = &s.w;
    let plain = s.plain;
    vec![
        Row::new(
            "a host name that does not resolve",
            config(
                w,
                "dns",
                &mailbox(&format!(
                    "host = \"no-such-host.invalid\"\ntls = \"tls\"\npassword = {PASSWORD:?}\n"
                )),
            ),
            &["cannot resolve host \"no-such-host.invalid\"", "check host"],
            1,
        ),
        Row::new(
            "a port that accepts but never speaks (starttls)",
            config(
                w,
                "silent-starttls",
                &dovecot_mailbox(w, silent, "starttls", ""),
            ),
            &["connected, but no greeting came within 3s"],
            1,
        ),
        Row::new(
            "a port that accepts but never speaks (tls)",
            config(w, "silent-tls", &dovecot_mailbox(w, silent, "tls", "")),
            &[
                "no answer to the TLS handshake came within 3s",
                "speaks neither TLS nor IMAP",
            ],
            1,
        ),
        Row::new(
            "a port nothing listens on",
            config(w, "refused", &dovecot_mailbox(w, refused, "tls", "")),
            &["connection refused: nothing listens on port", "993"],
            1,
        ),
        Row::new(
            "a folder that does not exist",
            config(
                w,
                "folder",
                &dovecot_mailbox(w, plain, "none", "folder = \"Support\"\n"),
            ),
            &[
                "folder \"Support\" cannot be opened",
                "Archive",
                "Klienci",
                "INBOX",
                "set folder to one of them",
            ],
            1,
        ),
        Row::new(
            "a wrong password",
            config(
                w,
                "password",
                &mailbox(&format!(
                    "host = \"127.0.0.1\"\nport = {plain}\ntls = \"none\"\npassword = \"wrong-Password-3\"\n"
                )),
            ),
            &["login as support refused", "check username and password"],
            1,
        ),
    ]
}

/// systemd's `%d` and `$CREDENTIALS_DIRECTORY` outside the unit, and the fix.
fn credentials_directory_rows(s: &Setup) -> Vec<Row> {
    let credentials = s.w.dir.path().join("credentials");
    std::fs::create_dir_all(&credentials).expect("mkdir");
    std::fs::write(credentials.join("imap_support"), format!("{PASSWORD}\n")).expect("written");
    vec![
        Row::new(
            "%d in password_file outside the unit",
            s.in_unit("percent-d", "%d/imap_support"),
            &[
                "%d/imap_support",
                "$CREDENTIALS_DIRECTORY",
                "CREDENTIALS_DIRECTORY=/etc/thulium-mail-bridge",
                "check",
            ],
            2,
        ),
        Row::new(
            "${CREDENTIALS_DIRECTORY} in password_file outside the unit",
            s.in_unit("credentials-dir", "${CREDENTIALS_DIRECTORY}/imap_support"),
            &["CREDENTIALS_DIRECTORY=/etc/thulium-mail-bridge", "check"],
            2,
        ),
        Row {
            env: vec![("CREDENTIALS_DIRECTORY", credentials.clone())],
            ..Row::new(
                "(the fix) %d with CREDENTIALS_DIRECTORY as the hint says",
                s.in_unit("percent-d-fixed", "%d/imap_support"),
                &["ok   mailbox support: logged in"],
                0,
            )
        },
        Row {
            env: vec![("CREDENTIALS_DIRECTORY", credentials)],
            ..Row::new(
                "%d naming a credential the unit does not load",
                s.in_unit("no-credential", "%d/imap_sales"),
                &["no credential \"imap_sales\"", "LoadCredential=imap_sales:"],
                2,
            )
        },
    ]
}

/// Entra ID's answers to a wrong secret, app, consent or refresh token.
fn microsoft_rows(s: &Setup) -> Vec<Row> {
    let url = s.idp.token_url();
    let wrong_secret_file = write(&s.w, "wrong.secret", "the-Secret-ID-not-its-value\n");
    vec![
        Row::new(
            "Microsoft: the client secret's ID instead of its value",
            s.client_credentials("ms-secret", &url, APP, &wrong_secret_file),
            &[
                "invalid_client",
                "AADSTS7000215",
                "client_secret_file",
                "Value",
            ],
            1,
        ),
        Row::new(
            "Microsoft: an app id the tenant does not know",
            s.client_credentials("ms-app", &url, "not-the-app", &s.secret_file),
            &["AADSTS700016", "client_id", "tenant"],
            1,
        ),
        Row::new(
            "Microsoft: no admin consent / no mailbox permission",
            s.client_credentials("ms-consent", &url, APP, &s.secret_file),
            &["AADSTS65001", "admin consent"],
            1,
        ),
        Row::new(
            "Microsoft: a revoked refresh token",
            s.refresh_token("ms-revoked", &url),
            &[
                "invalid_grant",
                "AADSTS70008",
                "oauth2 login --mailbox support",
            ],
            1,
        ),
    ]
}

/// Google's answers to a stale key, a missing delegation, a revoked token, a wrong user.
async fn google_rows(s: &Setup) -> Vec<Row> {
    let undelegated = s.key("undelegated.json", false);
    // The account's key file, signed with a key Google no longer has for it.
    let stale_key = {
        let mut file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(s.key("stale.json", true)).expect("key"))
                .expect("key JSON");
        let other: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(s.key("other.json", true)).expect("key"))
                .expect("key JSON");
        file["private_key"] = other["private_key"].clone();
        write(&s.w, "stale.json", &file.to_string())
    };
    let mut rows = vec![
        Row::new(
            "Google: a key file whose key was deleted or replaced (invalid_grant)",
            s.jwt_bearer("google-key", &s.idp.token_url(), &stale_key),
            &[
                "invalid_grant",
                "Invalid JWT Signature",
                "new key",
                "service_account_key_file",
            ],
            1,
        ),
        Row::new(
            "Google: a service account without domain-wide delegation",
            s.jwt_bearer("google-delegation", &s.idp.token_url(), &undelegated),
            &[
                "unauthorized_client",
                "domain-wide delegation",
                "https://mail.google.com/",
            ],
            1,
        ),
    ];
    // Google's own answers, word for word, from an IdP that gives nothing else.
    let google = [
        (
            "Google: a revoked or expired refresh token (invalid_grant)",
            400,
            r#"{"error": "invalid_grant", "error_description": "Token has been expired or revoked."}"#,
            "refresh",
            &[
                "invalid_grant",
                "Token has been expired or revoked",
                "oauth2 login --mailbox support",
                "Testing",
            ][..],
        ),
        (
            "Google: a username that is no user of the domain (invalid_grant)",
            400,
            r#"{"error": "invalid_grant", "error_description": "Invalid email or User ID"}"#,
            "jwt",
            &["invalid_grant", "Invalid email or User ID", "username"][..],
        ),
    ];
    let delegated = s.key("delegated.json", true);
    for (i, (mistake, status, body, grant, hints)) in google.into_iter().enumerate() {
        let url = answering(status, body).await;
        let config = match grant {
            "refresh" => s.refresh_token(&format!("google-{i}"), &url),
            _ => s.jwt_bearer(&format!("google-{i}"), &url, &delegated),
        };
        rows.push(Row::new(mistake, config, hints, 1));
    }
    rows
}

/// Every password, client secret, token and key line the run could have shown.
fn secrets(s: &Setup) -> Vec<String> {
    let mut secrets: Vec<String> = [
        PASSWORD,
        "wrong-Password-3",
        APP_SECRET,
        "the-Secret-ID-not-its-value",
        s.w.api.password(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for s in s.idp.secrets() {
        secrets.extend(
            s.lines()
                .filter(|l| l.len() > 20 && !l.starts_with("-----"))
                .map(str::to_string),
        );
    }
    secrets
}

/// What a check run got wrong about its row: the exit code, a missing hint, a warning
/// said twice, the inline password warning not said once, a secret printed.
fn wrong(row: &Row, ran: &Ran, secrets: &[String]) -> Vec<String> {
    let mut wrong = Vec::new();
    if ran.exit != Some(row.exit) {
        wrong.push(format!("exit {:?}, want {}", ran.exit, row.exit));
    }
    for hint in &row.hints {
        if !ran.out.contains(hint.as_str()) {
            wrong.push(format!("no {hint:?}"));
        }
    }
    let repeated = repeated_warnings(&ran.out);
    if !repeated.is_empty() {
        wrong.push(format!("warnings said more than once: {repeated:?}"));
    }
    // Every config here holds the API password inline and is mode 644: once it
    // loads, check says so, once (a config error stops before any warning).
    let inline = ran.out.matches("holds a password inline").count();
    if row.exit != 2 && inline != 1 {
        wrong.push(format!("the inline password warning said {inline} times"));
    }
    for secret in secrets {
        if ran.out.contains(secret.as_str()) {
            wrong.push(format!("a secret is printed: {secret:?}"));
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread")]
async fn every_common_mistake_gets_a_hint_that_names_the_fix() {
    let s = Setup::start().await;
    let (silent, _keeper) = silent_port();
    let (stripping, _server) = starttls_then_plain_port();
    let mut rows = tls_rows(&s, stripping);
    rows.extend(address_rows(&s, silent, free_port()));
    rows.extend(credentials_directory_rows(&s));
    rows.extend(microsoft_rows(&s));
    rows.extend(google_rows(&s).await);
    let secrets = secrets(&s);
    let mut failures = Vec::new();
    for row in &rows {
        let ran = check(&row.config, &row.env).await;
        println!(
            "=== {} (exit {:?}, {:.1}s)\n{}",
            row.mistake,
            ran.exit,
            ran.took.as_secs_f64(),
            ran.out
        );
        let wrong = wrong(row, &ran, &secrets);
        if !wrong.is_empty() {
            failures.push(format!("{}: {}", row.mistake, wrong.join("; ")));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_inline_password_in_a_readable_file_is_warned_about_once() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::start().await;
    let config = w.config();
    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let ran = check(&config, &[]).await;
    assert_eq!(ran.exit, Some(0), "{}", ran.out);
    assert_eq!(
        ran.out.matches("holds a password inline").count(),
        1,
        "{}",
        ran.out
    );
    assert!(repeated_warnings(&ran.out).is_empty(), "{}", ran.out);

    // Said once by the daemon too (its log), under `once`.
    let out = once(&config, &[]).await;
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(all.matches("holds a password inline").count(), 1, "{all}");

    std::fs::set_permissions(&config, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let ran = check(&config, &[]).await;
    assert!(!ran.out.contains("holds a password inline"), "{}", ran.out);
}
