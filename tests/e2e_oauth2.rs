//! OAuth2 mailboxes end to end: the real binary, a real Dovecot whose oauth2
//! passdb asks the fake IdP (RFC 7662) about every token, and the fake Thulium API.

mod support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::*;
use testbed::{Dovecot, DovecotOptions, FakeIdp, FakeThulium};

const APP: &str = "bridge-app";
const APP_SECRET: &str = "app-Secret-42";
const PUBLIC_APP: &str = "public-app";
const SERVICE_ACCOUNT: &str = "bridge@acme-mail.iam.gserviceaccount.com";

struct OWorld {
    w: World,
    idp: FakeIdp,
}

impl OWorld {
    async fn start() -> OWorld {
        let idp = FakeIdp::start().await.expect("fake IdP starts");
        let dovecot = Dovecot::start_with(DovecotOptions {
            oauth2_introspection_url: Some(idp.introspection_url()),
            ..DovecotOptions::default()
        })
        .expect("dovecot starts");
        dovecot.add_user(USER, PASSWORD).expect("user added");
        idp.add_client(APP, Some(APP_SECRET));
        idp.add_client(PUBLIC_APP, None);
        OWorld {
            w: World {
                dovecot,
                api: FakeThulium::start().await.expect("fake API starts"),
                dir: tempfile::tempdir().expect("temp dir"),
                postgres: None,
            },
            idp,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.w.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).expect("file written");
        path
    }

    /// An OAuth2 `[[mailbox]]` for Dovecot user `user`; `oauth2` holds the `[mailbox.oauth2]` keys.
    fn mailbox(&self, name: &str, user: &str, oauth2: &str) -> String {
        format!(
            "[[mailbox]]\nname = {name:?}\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nusername = {user:?}\npoll_interval = \"1s\"\n[mailbox.oauth2]\n{oauth2}\n",
            self.w.dovecot.plain_port()
        )
    }

    fn client_credentials(&self, name: &str, user: &str) -> String {
        let secret = self.write(&format!("{name}.secret"), &format!("{APP_SECRET}\n"));
        self.mailbox(
            name,
            user,
            &format!(
                "grant = \"client_credentials\"\ntoken_url = {:?}\nclient_id = {APP:?}\nclient_secret_file = {secret:?}\nscope = \"https://outlook.office365.com/.default\"\n",
                self.idp.token_url()
            ),
        )
    }

    fn refresh_token(&self, name: &str, user: &str, token_file: &Path) -> String {
        self.mailbox(
            name,
            user,
            &format!(
                "grant = \"refresh_token\"\ntoken_url = {:?}\ndevice_authorization_url = {:?}\nclient_id = {PUBLIC_APP:?}\nrefresh_token_file = {token_file:?}\n",
                self.idp.token_url(),
                self.idp.device_authorization_url()
            ),
        )
    }

    /// The config: `password` mailboxes, then `tables` (OAuth2 mailboxes and
    /// more sections), logging at trace level.
    fn config(&self, password: &[MailboxOpts], tables: &str) -> PathBuf {
        self.w
            .config_with(password, "", &format!("{tables}[log]\nlevel = \"trace\"\n"))
    }

    fn add_user(&self, user: &str) {
        self.w
            .dovecot
            .add_user(user, "unused-Password-1")
            .expect("user added");
    }

    fn append(&self, user: &str, raw: &[u8]) {
        self.w
            .dovecot
            .append(user, "INBOX", raw, &[])
            .expect("mail appended");
    }

    /// Fails if any secret the IdP knows, or a SASL response carrying a token, is in `log`.
    fn assert_no_secrets(&self, log: &str, extra: &[&str]) {
        let mut secrets: Vec<String> = self.idp.secrets();
        secrets.extend(extra.iter().map(|s| s.to_string()));
        let mut needles = Vec::new();
        for s in &secrets {
            // A PEM key shows up line by line, if at all.
            needles.extend(
                s.lines()
                    .filter(|l| l.len() > 20 && !l.starts_with("-----"))
                    .map(str::to_string),
            );
            if s.starts_with("at") {
                for user in ["support", "cc", "rt", "jwt", "cmd"] {
                    needles.push(BASE64.encode(format!("user={user}\x01auth=Bearer {s}\x01\x01")));
                    needles.push(BASE64.encode(format!("n,a={user},\x01auth=Bearer {s}\x01\x01")));
                }
            }
        }
        let leaks: Vec<&str> = log
            .lines()
            .filter(|line| {
                needles
                    .iter()
                    .any(|n| n.len() >= 8 && line.contains(n.as_str()))
            })
            .collect();
        assert!(
            leaks.is_empty(),
            "{} log line(s) carry a secret:\n{}",
            leaks.len(),
            leaks.join("\n")
        );
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0)
}

/// Drops the user's IMAP connections, so the daemon must log in again; false
/// when the user had none.
fn kick(dovecot: &Dovecot, user: &str) -> bool {
    Command::new("doveadm")
        .arg("-c")
        .arg(dovecot.dir().join("dovecot.conf"))
        .args(["kick", user])
        .output()
        .expect("doveadm runs")
        .status
        .success()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_grant_logs_in_to_dovecot_and_the_mail_is_posted() {
    let o = OWorld::start().await;
    for user in ["cc", "rt", "jwt", "cmd"] {
        o.add_user(user);
    }
    o.idp.grant_mailbox(APP, "cc");
    let rt_file = o.write("rt.token", &o.idp.issue_refresh_token(PUBLIC_APP, "rt"));
    let key = o.write(
        "sa.json",
        &o.idp
            .add_service_account(SERVICE_ACCOUNT, true)
            .expect("key"),
    );
    let cmd_token = o.write("cmd.token", &o.idp.issue_access_token("cmd"));
    let tables = [
        o.client_credentials("cc", "cc"),
        o.refresh_token("rt", "rt", &rt_file),
        o.mailbox(
            "jwt",
            "jwt",
            &format!(
                "grant = \"jwt_bearer\"\ntoken_url = {:?}\nservice_account_key_file = {key:?}\nmechanism = \"oauthbearer\"\n",
                o.idp.token_url()
            ),
        ),
        o.mailbox("cmd", "cmd", &format!("grant = \"command\"\ncommand = [\"cat\", {cmd_token:?}]\n")),
    ]
    .concat();
    for (n, user) in ["cc", "rt", "jwt", "cmd"].iter().enumerate() {
        let ticket = 100 + n as u64;
        o.w.api.add_ticket(ticket, CUSTOMER);
        o.append(user, &reply(ticket, n as u32, &format!("via {user}")));
    }
    let config = o.config(&[], &tables);

    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    for (n, user) in ["cc", "rt", "jwt", "cmd"].iter().enumerate() {
        let posted = o.w.api.posted(100 + n as u64);
        assert_eq!(posted.len(), 1, "{user}: {}", text(&out));
        assert!(posted[0].body.contains(&format!("via {user}")));
        assert_eq!(
            o.w.dovecot
                .folder_mails(user, "Processed")
                .unwrap_or_default()
                .len(),
            1,
            "{user}"
        );
    }
    let grants: Vec<String> = o.idp.issued().iter().map(|t| t.grant.clone()).collect();
    for g in [
        "client_credentials",
        "refresh_token",
        "jwt_bearer",
        "direct",
    ] {
        assert!(grants.contains(&g.to_string()), "{g} in {grants:?}");
    }
    // The mechanism on the wire, as Dovecot logged each login: OAUTHBEARER where the
    // mailbox asks for it, XOAUTH2 (the default) elsewhere.
    for (user, mechanism) in [
        ("cc", "XOAUTH2"),
        ("rt", "XOAUTH2"),
        ("jwt", "OAUTHBEARER"),
        ("cmd", "XOAUTH2"),
    ] {
        let used = o.w.dovecot.login_mechanisms(user);
        assert!(
            !used.is_empty() && used.iter().all(|m| m == mechanism),
            "{user}: {used:?}\n{}",
            o.w.dovecot.log()
        );
    }
    // Dovecot checked four tokens, all live: no login was tried with a bad one.
    let checks = o.idp.introspections();
    assert!(
        checks.len() >= 4 && checks.iter().all(|i| i.active),
        "{checks:?}"
    );
    o.assert_no_secrets(&String::from_utf8_lossy(&out.stderr), &[APP_SECRET]);
}

#[tokio::test(flavor = "multi_thread")]
async fn check_reports_the_token_and_the_login_on_separate_lines() {
    let o = OWorld::start().await;
    o.idp.grant_mailbox(APP, USER);
    let config = o.config(&[], &o.client_credentials("support", USER));
    let out = command(&config, &["check"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout.contains("ok   mailbox support: OAuth2 token from client_credentials\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok   mailbox support: logged in to 127.0.0.1:")
            && stdout.contains("with XOAUTH2"),
        "{stdout}"
    );

    // The app may open another mailbox only: a token, but no login.
    o.idp.grant_mailbox(APP, "someone-else");
    let out = command(&config, &["check"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout.contains("ok   mailbox support: OAuth2 token from client_credentials\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL mailbox support: login as support refused"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Add-MailboxPermission"),
        "says what to check: {stdout}"
    );

    // A changed secret: no token, and no login tried.
    o.idp.set_client_secret(APP, "rotated-Secret-9");
    let out = command(&config, &["check"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        stdout.contains(
            "FAIL mailbox support: OAuth2 token from client_credentials: identity provider"
        ) && stdout.contains("invalid_client (AADSTS7000215"),
        "{stdout}"
    );
    assert!(
        stdout.contains("FAIL mailbox support: IMAP login not tried without a token"),
        "{stdout}"
    );
    o.assert_no_secrets(
        &format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)),
        &[APP_SECRET],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_that_expires_during_run_is_replaced_before_the_next_login() {
    let o = OWorld::start().await;
    o.idp.grant_mailbox(APP, USER);
    // The first token lives 6 s; its replacement an hour, so exactly one is needed.
    o.idp.set_token_lifetime(Duration::from_secs(6));
    o.w.api.add_ticket(1, CUSTOMER);
    o.w.api.add_ticket(2, CUSTOMER);
    let config = o.config(&[], &o.client_credentials("support", USER));
    let log = o.path("run.log");
    let mut daemon = spawn_run(&config, &log);
    testbed::wait_until("the first token", WAIT, || !o.idp.issued().is_empty())
        .await
        .expect("a token");
    // Due for renewal only at 80 % of 6 s: well after this.
    o.idp.set_token_lifetime(Duration::from_secs(3600));

    o.w.append(&reply(1, 1, "before expiry"));
    o.w.api
        .wait_posted(1, WAIT)
        .await
        .expect("first reply posted");
    testbed::wait_until("the first token expired", WAIT, || {
        o.idp.issued().first().is_some_and(|t| t.expired)
    })
    .await
    .expect("token expiry");
    // IMAP sessions outlive their token (Dovecot, unlike Exchange Online,
    // never drops them): make the daemon log in again.
    let logins = o.w.dovecot.logins(USER);
    let kicked = kick(&o.w.dovecot, USER);
    o.w.append(&reply(2, 2, "after expiry"));
    o.w.api
        .wait_posted(2, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", read(&log)));
    assert!(
        kicked && o.w.dovecot.logins(USER) > logins,
        "no session to kick ({kicked}) or no login after the kick:\n{}",
        read(&log)
    );
    terminate_ok(&mut daemon, &log).await;

    let log = read(&log);
    // Exactly one replacement, fetched because the first was due, and used for every
    // later login; no login ever presented an expired token.
    let issued = o.idp.issued();
    let seqs: Vec<u64> = issued.iter().map(|t| t.seq).collect();
    assert_eq!(
        issued.len(),
        2,
        "one token, then one replacement: {issued:?}"
    );
    assert_eq!(
        (issued[0].lifetime_secs, issued[1].lifetime_secs),
        (6, 3600),
        "{issued:?}"
    );
    let checks = o.idp.introspections();
    assert!(
        checks.iter().all(|i| i.active),
        "an expired token was presented: {checks:?}\n{log}"
    );
    let presented: Vec<Option<u64>> = checks.iter().map(|i| i.token_seq).collect();
    assert_eq!(presented.first(), Some(&Some(seqs[0])), "{checks:?}");
    assert!(
        presented.len() >= 2 && presented[1..].iter().all(|p| *p == Some(seqs[1])),
        "every login after the first used the replacement: {checks:?}"
    );
    for bad in [
        "refused",
        "AUTHENTICATIONFAILED",
        "trying a new one",
        "identity provider",
    ] {
        assert!(!log.contains(bad), "{bad:?} in the log:\n{log}");
    }
    o.assert_no_secrets(&log, &[APP_SECRET]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_the_server_refuses_is_replaced_once() {
    let o = OWorld::start().await;
    o.idp.grant_mailbox(APP, USER);
    o.w.api.add_ticket(1, CUSTOMER);
    o.w.api.add_ticket(2, CUSTOMER);
    let config = o.config(&[], &o.client_credentials("support", USER));
    let log = o.path("run.log");
    let mut daemon = spawn_run(&config, &log);
    o.w.append(&reply(1, 1, "first"));
    o.w.api
        .wait_posted(1, WAIT)
        .await
        .expect("first reply posted");

    // The IdP revokes the (still young) cached token; the next login is refused once.
    o.idp.revoke_access_tokens();
    assert!(kick(&o.w.dovecot, USER), "the daemon had a session");
    o.w.append(&reply(2, 2, "second"));
    o.w.api
        .wait_posted(2, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", read(&log)));
    signal(&daemon, "TERM");
    assert!(
        wait_exit(&mut daemon, WAIT)
            .await
            .is_some_and(|s| s.success())
    );
    let log = read(&log);
    assert!(
        log.contains("refused the OAuth2 token; trying a new one"),
        "{log}"
    );
    assert_eq!(o.idp.issued().len(), 2, "{:?}", o.idp.issued());
    let refused: Vec<_> = o
        .idp
        .introspections()
        .into_iter()
        .filter(|i| !i.active)
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stop_during_a_slow_token_exchange_still_saves_the_rotated_refresh_token() {
    let o = OWorld::start().await;
    o.idp.set_rotate_refresh_tokens(true);
    // The IdP rotates at once and answers 2 s later.
    o.idp.set_answer_delay(Duration::from_secs(2));
    let first = o.idp.issue_refresh_token(PUBLIC_APP, USER);
    let rt_file = o.write("refresh.token", &format!("{first}\n"));
    std::fs::set_permissions(&rt_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = o.config(&[], &o.refresh_token("support", USER, &rt_file));
    let log = o.path("run.log");

    let mut daemon = spawn_run(&config, &log);
    let asked = eventually(WAIT, || o.idp.token_requests_decided() > 0).await;
    signal(&daemon, "TERM");
    assert!(asked, "{}", read(&log));
    assert!(
        wait_exit(&mut daemon, WAIT)
            .await
            .is_some_and(|s| s.success()),
        "{}",
        read(&log)
    );
    // The old token is spent: had the answer been dropped, the mailbox could not sign
    // in again without `oauth2 login`.
    let saved = read(&rt_file).trim().to_string();
    assert_eq!(
        o.idp.live_refresh_tokens(USER),
        std::slice::from_ref(&saved),
        "{}",
        read(&log)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_refresh_token_is_saved_and_survives_a_restart() {
    let o = OWorld::start().await;
    o.idp.set_rotate_refresh_tokens(true);
    let first = o.idp.issue_refresh_token(PUBLIC_APP, USER);
    let rt_file = o.write("refresh.token", &format!("{first}\n"));
    std::fs::set_permissions(&rt_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    o.w.api.add_ticket(1, CUSTOMER);
    o.w.api.add_ticket(2, CUSTOMER);
    let config = o.config(&[], &o.refresh_token("support", USER, &rt_file));
    let log = o.path("run.log");

    let mut daemon = spawn_run(&config, &log);
    o.w.append(&reply(1, 1, "first run"));
    o.w.api
        .wait_posted(1, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", read(&log)));
    signal(&daemon, "TERM");
    assert!(
        wait_exit(&mut daemon, WAIT)
            .await
            .is_some_and(|s| s.success())
    );
    let second = read(&rt_file).trim().to_string();
    assert_ne!(second, first, "the rotated token replaced the old one");
    assert_eq!(
        o.idp.live_refresh_tokens(USER),
        std::slice::from_ref(&second)
    );
    assert_eq!(mode(&rt_file), 0o600);

    // A new process starts from the saved token.
    o.w.append(&reply(2, 2, "after restart"));
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(o.w.api.posted(2).len(), 1);
    let third = read(&rt_file).trim().to_string();
    assert!(third != second && o.idp.live_refresh_tokens(USER) == [third.clone()]);
    let names: Vec<String> = std::fs::read_dir(o.w.dir.path())
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().to_string()))
        .filter(|n| n.contains(".tmp"))
        .collect();
    assert!(names.is_empty(), "temp files left: {names:?}");
    let log = format!("{}{}", read(&log), String::from_utf8_lossy(&out.stderr));
    assert!(
        log.contains("saved the rotated OAuth2 refresh token"),
        "{log}"
    );
    o.assert_no_secrets(&log, &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn idp_refusals_take_only_their_mailbox_down_loudly() {
    let o = OWorld::start().await;
    o.add_user("rt");
    o.add_user("sales");
    o.idp.grant_mailbox(APP, USER);
    // The secret was rotated at the IdP but not in the file; the refresh token was revoked.
    o.idp.set_client_secret(APP, "new-Secret-77");
    let revoked = o.idp.issue_refresh_token(PUBLIC_APP, "rt");
    o.idp.revoke_refresh_token(&revoked);
    let rt_file = o.write("rt.token", &revoked);
    o.w.dovecot.add_user("sales", "sales-pw").unwrap();
    let sales = MailboxOpts {
        name: "sales".into(),
        user: "sales".into(),
        password: "sales-pw".into(),
        ..MailboxOpts::default()
    };
    let port = free_port();
    let tables = format!(
        "{}{}[metrics]\nlisten = \"127.0.0.1:{port}\"\n",
        o.client_credentials("support", USER),
        o.refresh_token("rt", "rt", &rt_file)
    );
    let config = o.config(&[sales], &tables);
    for t in [1, 2, 3] {
        o.w.api.add_ticket(t, CUSTOMER);
    }
    o.append("sales", &reply(1, 1, "password mailbox"));
    o.append(USER, &reply(2, 2, "oauth mailbox"));
    let log = o.path("run.log");
    let mut daemon = spawn_run(&config, &log);

    o.w.api
        .wait_posted(1, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", read(&log)));
    assert_eq!(o.w.api.posted(1).len(), 1, "the password mailbox goes on");
    let healthz = format!("http://127.0.0.1:{port}/healthz");
    if let Err(health) = probe_until(
        WAIT,
        || get(&healthz),
        |(status, body)| *status == 503 && body.contains("\"support\"") && body.contains("\"rt\""),
    )
    .await
    {
        panic!("{health:?}\n{}", read(&log));
    }
    let m = metrics(port).await;
    let up = |mailbox: &str| metric(&m, "thulium_bridge_mailbox_up", &[("mailbox", mailbox)]);
    assert_eq!(
        (up("support"), up("rt"), up("sales")),
        (Some(0.0), Some(0.0), Some(1.0)),
        "{m}"
    );

    let text = read(&log);
    let line = text
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("support") && l.contains("invalid_client"))
        .unwrap_or_else(|| panic!("no error line for support:\n{text}"));
    assert!(
        line.contains("AADSTS7000215") && line.contains("client_secret_file"),
        "{line}"
    );
    let line = text
        .lines()
        .find(|l| l.contains("ERROR") && l.contains("invalid_grant"))
        .unwrap_or_else(|| panic!("no error line for rt:\n{text}"));
    assert!(
        line.contains("AADSTS70008") && line.contains("oauth2 login --mailbox rt"),
        "{line}"
    );

    // The admin fixes the secret file; the next retry gets a token and the mail goes.
    std::fs::write(o.path("support.secret"), "new-Secret-77\n").unwrap();
    o.w.api
        .wait_posted(2, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", read(&log)));
    assert_eq!(o.w.api.posted(2).len(), 1);
    o.append("sales", &reply(3, 3, "still going"));
    o.w.api
        .wait_posted(3, WAIT)
        .await
        .expect("sales still posts");
    signal(&daemon, "TERM");
    assert!(
        wait_exit(&mut daemon, WAIT)
            .await
            .is_some_and(|s| s.success())
    );
    o.assert_no_secrets(&read(&log), &[APP_SECRET, "new-Secret-77"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn device_login_writes_a_private_refresh_token_that_logs_in() {
    let o = OWorld::start().await;
    o.idp.set_slow_down_first(0);
    let rt_file = o.path("state-refresh.token");
    let config_path = o.config(&[], &o.refresh_token("support", USER, &rt_file));
    let config = thulium_mail_bridge::config::Config::load(&config_path).expect("config loads");

    // The admin opens the URL and signs in once the code is shown.
    let approve = async {
        testbed::wait_until("a pending device code", WAIT, || {
            !o.idp.pending_user_codes().is_empty()
        })
        .await
        .expect("device code requested");
        let code = o.idp.pending_user_codes().remove(0);
        testbed::wait_until("a first poll", WAIT, || o.idp.device_polls(&code) >= 1)
            .await
            .expect("polled");
        assert!(o.idp.approve_device(&code, USER));
    };
    let (result, ()) = tokio::join!(
        thulium_mail_bridge::oauth2::device_login(&config, "support"),
        approve
    );
    result.expect("device login succeeds");
    let saved = read(&rt_file).trim().to_string();
    assert_eq!(o.idp.live_refresh_tokens(USER), [saved]);
    assert_eq!(mode(&rt_file), 0o600);
    let polls: Vec<_> = o.idp.requests().into_iter().map(|r| r.error).collect();
    assert!(
        polls.contains(&Some("authorization_pending".into())),
        "{polls:?}"
    );

    // The daemon logs in with it.
    o.w.api.add_ticket(5, CUSTOMER);
    o.w.append(&reply(5, 1, "after device login"));
    let out = once(&config_path, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(o.w.api.posted(5).len(), 1);
    o.assert_no_secrets(&String::from_utf8_lossy(&out.stderr), &[]);
}

#[tokio::test(flavor = "multi_thread")]
async fn device_login_reports_a_declined_sign_in_and_writes_nothing() {
    let o = OWorld::start().await;
    let rt_file = o.path("refresh.token");
    let config_path = o.config(&[], &o.refresh_token("support", USER, &rt_file));
    let config = thulium_mail_bridge::config::Config::load(&config_path).expect("config loads");
    let deny = async {
        testbed::wait_until("a pending device code", WAIT, || {
            !o.idp.pending_user_codes().is_empty()
        })
        .await
        .expect("device code requested");
        let code = o.idp.pending_user_codes().remove(0);
        assert!(o.idp.deny_device(&code));
    };
    let (result, ()) = tokio::join!(
        thulium_mail_bridge::oauth2::device_login(&config, "support"),
        deny
    );
    let err = result.expect_err("declined");
    assert!(err.to_string().contains("declined"), "{err}");
    assert!(!rt_file.exists());

    let err = thulium_mail_bridge::oauth2::device_login(&config, "nope")
        .await
        .expect_err("unknown mailbox");
    assert!(
        err.to_string().contains("no mailbox named \"nope\""),
        "{err}"
    );
}

/// The `oauth2 login` subcommand end to end (the library call is tested above).
#[tokio::test(flavor = "multi_thread")]
async fn oauth2_login_subcommand_prints_the_code_and_saves_the_token() {
    let o = OWorld::start().await;
    let rt_file = o.path("cli-refresh.token");
    let config = o.config(&[], &o.refresh_token("support", USER, &rt_file));
    let stdout = o.path("login.out");
    let mut child = Daemon(
        bin()
            .arg("--config")
            .arg(&config)
            .args(["oauth2", "login", "--mailbox", "support"])
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("binary runs"),
    );
    testbed::wait_until("a pending device code", WAIT, || {
        !o.idp.pending_user_codes().is_empty()
    })
    .await
    .expect("device code requested");
    let code = o.idp.pending_user_codes().remove(0);
    assert!(
        eventually(WAIT, || read(&stdout).contains(&code)).await,
        "{}",
        read(&stdout)
    );
    assert!(read(&stdout).contains(&format!("{}/device", o.idp.url())));
    assert!(o.idp.approve_device(&code, USER));
    let status = wait_exit(&mut child, WAIT).await;
    assert!(
        status.is_some_and(|s| s.success()),
        "{status:?}\n{}",
        read(&stdout)
    );
    assert_eq!(
        o.idp.live_refresh_tokens(USER),
        [read(&rt_file).trim().to_string()]
    );
    assert_eq!(mode(&rt_file), 0o600);
    o.assert_no_secrets(&read(&stdout), &[]);
}
