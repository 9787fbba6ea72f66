//! Issue 12, point 1: TLS that admins can make work, against a real Dovecot serving
//! the certificates admins really make. A self-signed `CA:TRUE`, CN-only certificate
//! (`openssl req -x509`, as most guides say) is trusted once given in `ca_file` or
//! pinned by `tls_fingerprint`; any certificate failure shows what the server
//! presented and the config line that trusts exactly it; an expired pin is a warning;
//! a CA-signed certificate still works through the CA, and a wrong host name is
//! refused with the names the certificate is for.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;
use support::*;
use testbed::{DovecotOptions, MadeBy, TestCert};

/// Check exits within this, whatever the server does: a hang guard, not a timing test.
const CHECK_BOUND: std::time::Duration = std::time::Duration::from_secs(60);

async fn serving(cert: TestCert) -> World {
    World::start_with(DovecotOptions {
        certificate: Some(cert),
        ..DovecotOptions::default()
    })
    .await
}

/// A self-signed certificate for `localhost` made as the guides say (and by whom).
fn guide_cert() -> (TestCert, MadeBy) {
    TestCert::like_the_guides("localhost").expect("certificate made")
}

/// Writes `pem` next to the config, as an admin would copy the server's certificate.
fn pem_file(w: &World, name: &str, pem: &str) -> PathBuf {
    let path = w.dir.path().join(name);
    std::fs::write(&path, pem).expect("pem written");
    path
}

/// A config whose one mailbox `support` reaches Dovecot at `host` with `tls` (the
/// implicit-TLS port for "tls", the plain one for "starttls"); `trust` holds the
/// `ca_file`/`tls_fingerprint` lines, if any.
fn config(w: &World, tls: &str, host: &str, trust: &str) -> PathBuf {
    let port = match tls {
        "tls" => w.dovecot.tls_port(),
        _ => w.dovecot.plain_port(),
    };
    let table = format!(
        "[[mailbox]]\nname = \"support\"\nhost = {host:?}\nport = {port}\ntls = {tls:?}\n{trust}\n\
         username = {USER:?}\npassword = {PASSWORD:?}\npoll_interval = \"1s\"\n"
    );
    w.config_with(&[], "", &table)
}

async fn check(config: &Path) -> Output {
    tokio::time::timeout(CHECK_BOUND, command(config, &["check"]))
        .await
        .expect("check returns")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// stdout and stderr together: what an admin sees in a terminal.
fn all(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// SHA-256 of the certificate's DER, computed here from the PEM (not by the bridge),
/// in the `sha256:AB:CD:…` form.
fn fingerprint_of(pem: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .expect("PEM body");
    let hex: Vec<String> = sha2::Sha256::digest(&der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    format!("sha256:{}", hex.join(":"))
}

/// What `openssl x509 -noout -fingerprint -sha256` prints for `path` (`sha256
/// Fingerprint=AB:CD:…`), when openssl is installed.
fn openssl_fingerprint_line(path: &Path) -> Option<String> {
    let out = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(path)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The `tls_fingerprint = "…"` line `check` printed, once.
fn suggested_pin(out: &str) -> String {
    let lines: Vec<&str> = out
        .match_indices("tls_fingerprint = \"")
        .map(|(at, _)| {
            let rest = &out[at..];
            let end = rest[19..].find('"').map_or(rest.len(), |e| 19 + e + 1);
            &rest[..end]
        })
        .collect();
    assert_eq!(lines.len(), 1, "one suggested pin in:\n{out}");
    lines[0].to_string()
}

/// Posts one reply over a mailbox config: check passes, `once` posts and moves it.
/// Returns check's output and once's.
async fn check_and_post(w: &World, config: &Path, ticket: u64) -> (Output, Output) {
    let out = check(config).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    w.api.add_ticket(ticket, CUSTOMER);
    w.append(&reply(ticket, 1, "sent over TLS"));
    let posted = once(config, &[]).await;
    assert_eq!(posted.status.code(), Some(0), "{}", text(&posted));
    assert_eq!(w.api.posted(ticket).len(), 1, "{}", text(&posted));
    assert_eq!(w.folder("INBOX").len(), 0, "the reply was disposed");
    (out, posted)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_self_signed_ca_true_cn_only_certificate_in_ca_file_works_over_tls_and_starttls() {
    let (cert, made_by) = guide_cert();
    let w = serving(cert.clone()).await;
    let ca = pem_file(&w, "server.pem", &cert.cert_pem);
    let trust = format!("ca_file = {ca:?}");

    // Implicit TLS (the 993 kind), with the host name the CN gives.
    let (out, _) = check_and_post(&w, &config(&w, "tls", "localhost", &trust), 100).await;
    let shown = stdout(&out);
    assert!(
        shown.contains("ok   mailbox support: logged in to localhost:")
            && shown.contains("(certificate pinned)"),
        "{shown}"
    );
    println!(
        "check of a self-signed ({made_by:?}) certificate in ca_file, tls:\n{}",
        all(&out)
    );

    // STARTTLS on the plain port, by its address: a pin needs no name.
    let (out, _) = check_and_post(&w, &config(&w, "starttls", "127.0.0.1", &trust), 101).await;
    assert!(
        stdout(&out).contains("(certificate pinned)"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_fingerprint_pins_the_leaf_without_ca_file_in_every_spelling() {
    let (cert, _) = guide_cert();
    let w = serving(cert.clone()).await;
    let pem = pem_file(&w, "server.pem", &cert.cert_pem);
    let fingerprint = fingerprint_of(&cert.cert_pem);
    let hex = fingerprint.trim_start_matches("sha256:");
    // openssl 3 prints `sha256 Fingerprint=AB:…` (1.1: `SHA256 Fingerprint=`): both
    // whole lines are tried whether or not openssl is installed to print one.
    let mut spellings = vec![
        fingerprint.clone(),
        hex.replace(':', "").to_lowercase(),
        hex.to_string(),
        format!("sha256 Fingerprint={hex}"),
        format!("SHA256 Fingerprint={hex}"),
    ];
    if let Some(line) = openssl_fingerprint_line(&pem) {
        let printed = line.split_once('=').map(|(_, h)| h).unwrap_or_default();
        assert_eq!(printed, hex, "openssl agrees with the test's own SHA-256");
        spellings.push(line);
    }
    for (i, spelling) in spellings.iter().enumerate() {
        let trust = format!("tls_fingerprint = {spelling:?}");
        let tls = if i % 2 == 0 { "tls" } else { "starttls" };
        let (out, _) =
            check_and_post(&w, &config(&w, tls, "127.0.0.1", &trust), 200 + i as u64).await;
        assert!(
            stdout(&out).contains("(certificate pinned)"),
            "{spelling}: {}",
            text(&out)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_untrusted_or_wrongly_pinned_certificate_fails_check_naming_its_case_and_what_was_presented()
 {
    let (cert, _) = guide_cert();
    let w = serving(cert.clone()).await;
    let real = fingerprint_of(&cert.cert_pem);
    let (other, _) = guide_cert();
    let wrong = fingerprint_of(&other.cert_pem);
    // What was tried, the mode, the trust lines, and the case the failure must name.
    let self_signed = "the certificate is self-signed, so no CA vouches for it";
    let not_in_ca_file = "the certificate is self-signed and not the one in ca_file";
    let not_pinned = "the server's certificate is not the one tls_fingerprint pins";
    let cases = [
        ("no ca_file, no pin", "tls", String::new(), self_signed),
        ("no ca_file, no pin", "starttls", String::new(), self_signed),
        (
            "a wrong pin",
            "tls",
            format!("tls_fingerprint = {wrong:?}"),
            not_pinned,
        ),
        // With a pin set, ca_file is not consulted, even when it holds the server's
        // own certificate.
        (
            "a wrong pin beside the right certificate in ca_file",
            "tls",
            format!(
                "tls_fingerprint = {wrong:?}\nca_file = {:?}",
                pem_file(&w, "real.pem", &cert.cert_pem)
            ),
            not_pinned,
        ),
        (
            "a wrong certificate in ca_file",
            "starttls",
            format!("ca_file = {:?}", pem_file(&w, "other.pem", &other.cert_pem)),
            not_in_ca_file,
        ),
    ];
    for (what, tls, trust, case) in cases {
        let out = check(&config(&w, tls, "localhost", &trust)).await;
        let shown = all(&out);
        assert_eq!(out.status.code(), Some(1), "{what} ({tls}): {shown}");
        let fail = stdout(&out)
            .lines()
            .find(|l| l.starts_with("FAIL mailbox support:"))
            .unwrap_or_default()
            .to_string();
        for part in [
            "subject CN=localhost",
            "issuer CN=localhost",
            "valid ",
            "names none (only the subject's CN)",
            &real,
        ] {
            assert!(fail.contains(part), "{what} ({tls}): {part:?} in {fail}");
        }
        assert_eq!(
            suggested_pin(&shown),
            format!("tls_fingerprint = \"{real}\""),
            "{what} ({tls})"
        );
        // Its own case, and no other's.
        for other in [self_signed, not_in_ca_file, not_pinned] {
            assert_eq!(
                fail.contains(other),
                other == case,
                "{what} ({tls}): says {case:?} only: {fail}"
            );
        }
        if what.starts_with("a wrong pin") {
            assert!(fail.contains(&wrong), "the pin that did not match: {fail}");
        }
        println!("check with {what} ({tls}):\n{shown}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_pinned_certificate_is_a_warning_in_check_not_a_failure() {
    let cert = TestCert::expired_like_the_guides("localhost").expect("certificate made");
    let w = serving(cert.clone()).await;
    let pin = format!("tls_fingerprint = {:?}", fingerprint_of(&cert.cert_pem));
    let in_ca_file = format!("ca_file = {:?}", pem_file(&w, "server.pem", &cert.cert_pem));
    for (ticket, trust) in [(300, pin), (301, in_ca_file)] {
        let (out, posted) =
            check_and_post(&w, &config(&w, "tls", "localhost", &trust), ticket).await;
        let log = all(&posted);
        assert_eq!(
            log.matches("the pinned certificate expired on").count(),
            1,
            "{trust}: the daemon says it once too:\n{log}"
        );
        let shown = all(&out);
        assert_eq!(
            shown.matches("expired").count(),
            1,
            "{trust}: the expiry is said once:\n{shown}"
        );
        assert!(
            shown.contains("ok   mailbox support: warning: the pinned certificate expired on")
                && shown.contains("2021"),
            "{trust}:\n{shown}"
        );
        println!("check of an expired pinned certificate ({trust}):\n{shown}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ca_signed_certificate_works_through_the_ca_and_a_wrong_host_name_is_named() {
    // The testbed CA's leaf for localhost and 127.0.0.1.
    let w = World::start().await;
    let trust = format!("ca_file = {:?}", w.dovecot.ca_file());
    let (out, _) = check_and_post(&w, &config(&w, "tls", "127.0.0.1", &trust), 400).await;
    let shown = stdout(&out);
    assert!(
        shown.contains("ok   mailbox support: logged in") && !shown.contains("pinned"),
        "trusted through the CA, not as a pin: {shown}"
    );

    // A leaf for mail.example.com only, reached by address: the CA vouches for the
    // certificate, not for this name.
    let cert = TestCert::generate_for(&["mail.example.com"]).expect("certificate made");
    let w = serving(cert.clone()).await;
    let trust = format!("ca_file = {:?}", w.dovecot.ca_file());
    for tls in ["tls", "starttls"] {
        let out = check(&config(&w, tls, "127.0.0.1", &trust)).await;
        let shown = all(&out);
        assert_eq!(out.status.code(), Some(1), "{shown}");
        assert!(
            shown.contains("is not valid for 127.0.0.1")
                && shown.contains("mail.example.com")
                && shown.contains("Set host = \"mail.example.com\""),
            "{tls}: says which names the certificate is for:\n{shown}"
        );
        assert_eq!(
            suggested_pin(&shown),
            format!("tls_fingerprint = \"{}\"", fingerprint_of(&cert.cert_pem)),
            "{shown}"
        );
        println!("check with a wrong host name ({tls}):\n{shown}");
    }
}
