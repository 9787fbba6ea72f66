//! The config contract: the example loads, and every mistake names file, key and problem.

use std::path::Path;
use thulium_mail_bridge::config::{Config, Disposition, TlsMode};

const MINIMAL: &str = r#"
[thulium]
url = "https://acme.thulium.com/api"
user = "api"
password = "secret-api-pass"

[[mailbox]]
name = "support"
host = "imap.example.com"
username = "support@example.com"
password = "secret-imap-pass"
"#;

fn error_of(text: &str) -> String {
    Config::parse(text, "config.toml").unwrap_err().to_string()
}

#[test]
fn example_config_loads_with_systemd_credentials() {
    let creds = tempfile::tempdir().unwrap();
    std::fs::write(creds.path().join("api_password"), "api-pass\n").unwrap();
    std::fs::write(creds.path().join("imap_support"), "imap-pass\n").unwrap();
    // SAFETY: only this test in this binary touches the variable.
    unsafe { std::env::set_var("CREDENTIALS_DIRECTORY", creds.path()) };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config.example.toml");
    let config = Config::load(&path).unwrap();
    assert_eq!(config.mailboxes.len(), 1);
    let mb = &config.mailboxes[0];
    assert_eq!(mb.port(), 993);
    assert_eq!(mb.tls, TlsMode::Tls);
    assert_eq!(mb.on_posted, Disposition::Move("Processed".into()));
    assert_eq!(config.content.max_message_size.bytes(), 25 << 20);
    assert_eq!(config.thulium.concurrency, 4);
    // The secrets were read from the credentials directory, and never show in Debug.
    let debug = format!("{config:?}");
    assert!(
        !debug.contains("api-pass") && !debug.contains("imap-pass"),
        "{debug}"
    );
}

#[test]
fn minimal_config_takes_the_defaults() {
    let c = Config::parse(MINIMAL, "config.toml").unwrap();
    assert_eq!(c.thulium.timezone, "Europe/Warsaw");
    assert_eq!(c.mailboxes[0].folder, "INBOX");
    assert!(c.mailboxes[0].idle);
    assert_eq!(c.mailboxes[0].poll_interval.as_secs(), 60);
    assert_eq!(c.state.keep_decisions.as_secs(), 90 * 24 * 3600);
    assert!(!format!("{c:?}").contains("secret-"));
}

#[test]
fn errors_name_file_key_and_problem() {
    let bad_disposition = MINIMAL.replace(
        "password = \"secret-imap-pass\"",
        "password = \"x\"\non_posted = \"archive\"",
    );
    assert_eq!(
        error_of(&bad_disposition),
        "config.toml: mailbox[0].on_posted: expected move:<folder>, flag:<keyword>, seen or delete, got \"archive\""
    );
    let unknown = MINIMAL.replace("[thulium]", "[thulium]\nuri = \"x\"");
    let e = error_of(&unknown);
    assert!(
        e.starts_with("config.toml: thulium") && e.contains("unknown field `uri`"),
        "{e}"
    );
    let tz = MINIMAL.replace(
        "user = \"api\"",
        "user = \"api\"\ntimezone = \"Europe/Warszawa\"",
    );
    assert!(error_of(&tz).starts_with("config.toml: thulium.timezone: unknown IANA time zone"));
    let duration = MINIMAL.replace("user = \"api\"", "user = \"api\"\ntimeout = \"soon\"");
    assert!(
        error_of(&duration).starts_with("config.toml: thulium.timeout:"),
        "{}",
        error_of(&duration)
    );
    let keep = |value: &str| format!("{MINIMAL}\n[state]\nkeep_decisions = {value:?}\n");
    assert!(
        error_of(&keep("a while")).starts_with("config.toml: state.keep_decisions:"),
        "{}",
        error_of(&keep("a while"))
    );
    assert_eq!(
        error_of(&keep("12h")),
        "config.toml: state.keep_decisions: must be at least 1d (decisions are swept once a day)"
    );
    let kept = Config::parse(&keep("30d"), "config.toml").unwrap();
    assert_eq!(kept.state.keep_decisions.as_secs(), 30 * 24 * 3600);
    let size = format!("{MINIMAL}\n[content]\nmax_message_size = \"25 parsecs\"\n");
    assert!(
        error_of(&size).starts_with("config.toml: content.max_message_size: unknown size unit")
    );
    let regex = format!("{MINIMAL}\n[match]\nsubject_patterns = ['\\d+']\n");
    assert!(
        error_of(&regex).contains("match.subject_patterns[0]")
            && error_of(&regex).contains("named group `id`")
    );
    let both = MINIMAL.replace(
        "password = \"secret-api-pass\"",
        "password = \"a\"\npassword_file = \"/x\"",
    );
    assert_eq!(
        error_of(&both),
        "config.toml: thulium.password: set only one of password and password_file"
    );
    let missing_file = MINIMAL.replace(
        "password = \"secret-api-pass\"",
        "password_file = \"/nonexistent/pw\"",
    );
    assert!(
        error_of(&missing_file)
            .starts_with("config.toml: thulium.password_file: cannot read /nonexistent/pw")
    );
    let duplicate = format!(
        "{MINIMAL}\n[[mailbox]]\nname = \"support\"\nhost = \"h\"\nusername = \"u\"\npassword = \"p\"\n"
    );
    assert!(error_of(&duplicate).starts_with("config.toml: mailbox[1].name:"));
    assert!(error_of("[thulium\nurl=").starts_with("config.toml: (syntax):"));
    let missing = "[thulium]\nuser = \"a\"\npassword = \"b\"\n";
    assert!(error_of(missing).contains("url"), "{}", error_of(missing));
    // A new ticket's fallback keeps the mail, like every other disposition of a mail
    // that was not posted.
    let fallback = |to: &str| {
        MINIMAL.replace(
            "password = \"secret-imap-pass\"",
            &format!(
                "password = \"x\"\non_unmatched = \"new_ticket\"\n[mailbox.new_ticket]\nto = \"help@acme.example\"\nfallback = {to:?}"
            ),
        )
    };
    assert!(
        error_of(&fallback("delete")).starts_with(
            "config.toml: mailbox[0].new_ticket.fallback: delete is only for on_posted"
        ),
        "{}",
        error_of(&fallback("delete"))
    );
    assert!(
        error_of(&fallback("move:INBOX"))
            .starts_with("config.toml: mailbox[0].new_ticket.fallback: moving into \"INBOX\""),
        "{}",
        error_of(&fallback("move:INBOX"))
    );
    assert!(
        error_of(&fallback("new_ticket"))
            .starts_with("config.toml: mailbox[0].new_ticket.fallback: new_ticket is only for"),
        "{}",
        error_of(&fallback("new_ticket"))
    );
}

#[test]
fn plaintext_imap_is_refused_off_loopback() {
    let insecure = MINIMAL.replace(
        "host = \"imap.example.com\"",
        "host = \"imap.example.com\"\ntls = \"none\"",
    );
    let e = error_of(&insecure);
    assert!(
        e.starts_with("config.toml: mailbox[0].tls:") && e.contains("allow_insecure"),
        "{e}"
    );
    let allowed = insecure.replace("tls = \"none\"", "tls = \"none\"\nallow_insecure = true");
    assert_eq!(
        Config::parse(&allowed, "c").unwrap().mailboxes[0].port(),
        143
    );
    let loopback = MINIMAL.replace(
        "host = \"imap.example.com\"",
        "host = \"127.0.0.1\"\ntls = \"none\"",
    );
    assert!(Config::parse(&loopback, "c").is_ok());
}

/// A secret no config error may show, whole or in part.
const DISTINCT: &str = "Zebra7-Quokka-Hunter2";

#[test]
fn config_errors_never_show_a_secret_or_the_userinfo_of_a_url() {
    let api_password = format!("password = \"{DISTINCT}\"");
    let minimal = MINIMAL.replace("password = \"secret-api-pass\"", &api_password);
    let oauth2 = |secret: &str| {
        minimal.replace(
            "password = \"secret-imap-pass\"",
            &format!(
                "[mailbox.oauth2]\ngrant = \"client_credentials\"\ntoken_url = \"https://login.example.com/t\"\nclient_id = \"id\"\nclient_secret = {secret}"
            ),
        )
    };
    // (the mistake, the config, what the error must say instead)
    let cases = [
        (
            "an unclosed quote on the password line",
            minimal.replace(&api_password, &format!("password = \"{DISTINCT}")),
            "(syntax): line 5, column ",
        ),
        (
            "an unquoted password",
            minimal.replace(&api_password, &format!("password = {DISTINCT}")),
            "(syntax): line 5, column 12: ",
        ),
        (
            "a multi-line password left open",
            minimal.replace(&api_password, &format!("password = \"\"\"{DISTINCT}\nrest")),
            "(syntax): line ",
        ),
        (
            "a password that is a number",
            MINIMAL.replace("\"secret-imap-pass\"", "91827364555"),
            "mailbox[0].password: must be a quoted string, not integer",
        ),
        (
            "a client secret that is a list",
            oauth2(&format!("[\"{DISTINCT}\"]")),
            "mailbox[0].oauth2.client_secret: must be a quoted string, not array",
        ),
        (
            "a URL that is not one, with user:password@",
            minimal.replace(
                "url = \"https://acme.thulium.com/api\"",
                &format!("url = \"https://api:{DISTINCT}@acme.thulium.com:99999/api\""),
            ),
            "thulium.url: not a URL (invalid port number): \"https://***@acme.thulium.com:99999/api\"",
        ),
        (
            "a password with / in a URL that is not one",
            minimal.replace(
                "url = \"https://acme.thulium.com/api\"",
                &format!("url = \"https://api:a/{DISTINCT}@acme.thulium.com/api\""),
            ),
            "thulium.url: not a URL (invalid port number): \"https://***@acme.thulium.com/api\"",
        ),
        (
            "a URL with user:password@",
            minimal.replace(
                "url = \"https://acme.thulium.com/api\"",
                &format!("url = \"https://api:{DISTINCT}@acme.thulium.com/api\""),
            ),
            "thulium.url: must not hold a user or password",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (mistake, text, said) in cases {
        assert!(
            text.contains(DISTINCT) || text.contains("91827364555"),
            "{mistake}"
        );
        let path = dir.path().join("config.toml");
        std::fs::write(&path, &text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_thulium-mail-bridge"))
            .arg("--config")
            .arg(&path)
            .arg("check")
            .output()
            .unwrap();
        let shown = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.status.code(), Some(2), "{mistake}: {shown}");
        assert!(
            shown.contains(&format!("{}: {said}", path.display())),
            "{mistake}: {shown}"
        );
        for part in ["Zebra7", "Quokka", "Hunter2", "91827364555"] {
            assert!(!shown.contains(part), "{mistake}: {part:?} shown: {shown}");
        }
    }
}

#[test]
fn world_readable_inline_password_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, MINIMAL).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = Config::load(&path).unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("readable by group or others")),
        "{:?}",
        c.warnings
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(Config::load(&path).unwrap().warnings.is_empty());
}

/// A From header is easy to forge: agents need every mailbox to name the receiving
/// server whose Authentication-Results count.
#[test]
fn agents_need_trusted_authserv_id_on_every_mailbox() {
    let with_agents = MINIMAL.replace(
        "password = \"secret-api-pass\"",
        "password = \"secret-api-pass\"\nagents = [\"*@acme.pl\", \"jan@partner.example\"]",
    );
    assert_eq!(
        error_of(&with_agents),
        "config.toml: thulium.agents: needs trusted_authserv_id on every mailbox, and \
         mailbox[0] (\"support\") has none: a From header is easy to forge, so a mail counts \
         as an agent's only when the receiving server authenticated it (DMARC, or aligned \
         DKIM or SPF)"
    );
    let blank = with_agents.replace(
        "password = \"secret-imap-pass\"",
        "password = \"secret-imap-pass\"\ntrusted_authserv_id = [\" \"]",
    );
    assert!(error_of(&blank).contains("thulium.agents: needs trusted_authserv_id"));
    let trusted = with_agents.replace(
        "password = \"secret-imap-pass\"",
        "password = \"secret-imap-pass\"\ntrusted_authserv_id = [\"mx.acme.pl\"]",
    );
    let c = Config::parse(&trusted, "config.toml").unwrap();
    assert_eq!(c.thulium.agents, ["*@acme.pl", "jan@partner.example"]);
    // A broken glob names its index.
    let broken = trusted.replace("\"jan@partner.example\"", "\"[jan\"");
    assert!(
        error_of(&broken)
            .starts_with("config.toml: thulium.agents[1]: \"[jan\" is not a valid glob"),
        "{}",
        error_of(&broken)
    );
    // Without agents, no mailbox needs it.
    assert!(Config::parse(MINIMAL, "config.toml").is_ok());
}
