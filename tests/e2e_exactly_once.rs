//! Exactly once against the API as documented, under the faults that break it: lost and
//! late answers, kill -9, failing read-backs. Each runs under every reading of what the
//! documentation leaves open (`created_at` = date sent or storage time, in the account's
//! zone or the API's own; body stored as sent or re-rendered as HTML).

#[macro_use]
mod support;

use rand::{Rng, SeedableRng};
use std::time::Duration;
use support::*;
use testbed::{BodyStorage, CreatedAt, Fault, Reading};

fn seed(w: &World, tickets: u64, per_ticket: u32) {
    for t in 1..=tickets {
        w.api.add_ticket(t, CUSTOMER);
    }
    let mails: Vec<Vec<u8>> = (0..per_ticket)
        .flat_map(|n| (1..=tickets).map(move |t| reply(t, n, &format!("reply {n} to {t}"))))
        .collect();
    w.dovecot.append_many(USER, "INBOX", mails, &[]).unwrap();
}

/// `once` until the inbox is empty (transient failures leave mails for the next pass).
async fn drain(w: &World, config: &std::path::Path, max_passes: usize) {
    for _ in 0..max_passes {
        let out = once(config, &[]).await;
        assert!(out.status.success(), "{}", text(&out));
        if w.folder("INBOX").is_empty() {
            return;
        }
    }
    panic!(
        "{} mails still in INBOX after {max_passes} passes",
        w.folder("INBOX").len()
    );
}

under_every_reading!(one_answer_in_five_lost);
async fn one_answer_in_five_lost(reading: Reading) {
    let w = World::under(reading).await;
    seed(&w, 60, 5);
    w.api.fail_every(5, Fault::AcceptThenDrop);
    let config = w.config_with(&[MailboxOpts::default()], "concurrency = 8", "");
    drain(&w, &config, 10).await;
    let lost = w
        .api
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.status.is_none())
        .count();
    let posts = posts(&w.api);
    let (missing, duplicates) = audit(&w.api, 60, 5);
    println!(
        "{reading:?}: 300 replies, {posts} POSTs, {lost} answers lost: {missing} missing, {duplicates} duplicates, {} failed",
        w.folder("Failed").len()
    );
    assert!(lost >= 50, "the fault really fired ({lost})");
    assert_eq!((missing, duplicates), (0, 0));
    assert_eq!(w.folder("Processed").len(), 300);
    assert!(w.folder("Failed").is_empty());
}

under_every_reading!(one_answer_in_five_is_a_502_after_storing);
async fn one_answer_in_five_is_a_502_after_storing(reading: Reading) {
    let w = World::under(reading).await;
    seed(&w, 20, 5);
    // A gateway that gave up on a slow backend which stored the reply anyway.
    w.api.fail_every(5, Fault::AcceptThenStatus(502));
    let config = w.config_with(&[MailboxOpts::default()], "concurrency = 8", "");
    drain(&w, &config, 10).await;
    let fired = w
        .api
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.status == Some(502))
        .count();
    let (missing, duplicates) = audit(&w.api, 20, 5);
    println!(
        "{reading:?}: 100 replies, {fired} stored but answered 502: {missing} missing, {duplicates} duplicates"
    );
    assert!(fired >= 15, "the fault really fired ({fired})");
    assert_eq!((missing, duplicates), (0, 0));
    assert!(w.folder("Failed").is_empty());
}

/// A customer who writes the same words twice to one ticket ("Thanks!"): the second
/// reply's answer is lost (`fault` on the second POST). The first one's stored text must
/// not pass for the second's in the read-back (lost), nor the second be posted twice.
async fn the_same_words_twice(fault: Fault, reading: Reading) {
    let w = World::under(reading).await;
    w.api.add_ticket(1, CUSTOMER);
    w.append(&reply(1, 0, "Thanks!"));
    w.append(&reply(1, 1, "Thanks!"));
    w.api.fail_every(2, fault);
    drain(&w, &w.config(), 5).await;
    let stored = w.api.posted(1);
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_eq!(w.folder("Processed").len(), 2);
}

under_every_reading!(the_same_words_twice_the_second_reset_before_storing);
async fn the_same_words_twice_the_second_reset_before_storing(reading: Reading) {
    the_same_words_twice(Fault::Reset, reading).await
}

under_every_reading!(the_same_words_twice_the_second_stored_and_its_answer_lost);
async fn the_same_words_twice_the_second_stored_and_its_answer_lost(reading: Reading) {
    the_same_words_twice(Fault::AcceptThenDrop, reading).await
}

under_every_reading!(answers_after_the_client_timeout);
async fn answers_after_the_client_timeout(reading: Reading) {
    let w = World::under(reading).await;
    seed(&w, 10, 4);
    // The harness's client timeout is 2 s.
    w.api
        .fail_every(5, Fault::AcceptThenDelay(Duration::from_secs(3)));
    let config = w.config_with(&[MailboxOpts::default()], "concurrency = 8", "");
    drain(&w, &config, 10).await;
    let (missing, duplicates) = audit(&w.api, 10, 4);
    println!(
        "{reading:?}: 40 replies, every 5th answered late: {missing} missing, {duplicates} duplicates, {} failed",
        w.folder("Failed").len()
    );
    assert_eq!((missing, duplicates), (0, 0));
    assert!(w.folder("Failed").is_empty());
}

under_every_reading!(kill_9_at_20_random_instants);
async fn kill_9_at_20_random_instants(reading: Reading) {
    let w = World::under(reading).await;
    let (tickets, per_ticket) = (30, 10);
    seed(&w, tickets, per_ticket);
    w.api.set_latency(Duration::from_millis(30));
    let config = w.config();
    let log = w.dir.path().join("run.log");
    // KILL_SEED=n repeats a run's kill instants.
    let seed = std::env::var("KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    println!("{reading:?}: kill instants from KILL_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    for k in 1..=20usize {
        let target = (k * 14).saturating_sub(rng.random_range(0..10));
        let mut child = spawn_run(&config, &log);
        let reached = eventually(Duration::from_secs(60), || w.api.total_posted() >= target).await;
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(
            reached,
            "stalled before {target} posts (KILL_SEED={seed}):\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }
    let mut child = spawn_run(&config, &log);
    let all = (tickets * u64::from(per_ticket)) as usize;
    let done = eventually(Duration::from_secs(120), || {
        w.folder("Processed").len() == all
    })
    .await;
    let exit = terminate(&mut child, &log).await;
    assert!(
        done,
        "only {} processed (KILL_SEED={seed})",
        w.folder("Processed").len()
    );
    assert!(exit.success(), "run ends cleanly: {exit:?}");
    let (missing, duplicates) = audit(&w.api, tickets, per_ticket);
    println!(
        "{reading:?}: {all} replies, kill -9 x20: {missing} missing, {duplicates} duplicates, {} failed",
        w.folder("Failed").len()
    );
    assert_eq!((missing, duplicates), (0, 0), "KILL_SEED={seed}");
    assert!(w.folder("Failed").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn no_post_while_the_read_back_fails() {
    let w = World::under(Reading {
        created_at: CreatedAt::StorageTime,
        body_storage: BodyStorage::RenderedHtml,
        clock_zone: None,
    })
    .await;
    w.api.add_ticket(1, CUSTOMER);
    w.append(&reply(1, 0, "reply 0 to 1"));
    w.api.fail_next(1, Fault::AcceptThenDrop);
    w.api.fail_next(4, Fault::GetFails(503));
    // Every GET is the read-back's: no ticket read for verify_sender takes a fault.
    let config = w.config_with(&[MailboxOpts::default()], "verify_sender = \"off\"", "");

    let out = once(&config, &[]).await;
    assert_eq!(
        out.status.code(),
        Some(1),
        "no post was seen to succeed: {}",
        text(&out)
    );
    assert_eq!(posts(&w.api), 1, "the lost post is not repeated blindly");
    assert_eq!(
        w.folder("INBOX").len(),
        1,
        "the mail waits for the read-back"
    );
    let mut passes = 1;
    while !w.folder("INBOX").is_empty() && passes < 8 {
        let out = once(&config, &[]).await;
        // 1 while the read-back fails, 0 once it succeeds; never a crash.
        assert!(matches!(out.status.code(), Some(0 | 1)), "{}", text(&out));
        assert_eq!(posts(&w.api), 1, "still no second post");
        passes += 1;
    }
    assert!(w.folder("INBOX").is_empty(), "read back once the GET works");
    assert_eq!(w.api.posted(1).len(), 1);
    assert_eq!(w.api.pending_faults(), 0, "every GET fault was consumed");

    let (_, shown) = ledger(&config, &["show", "reply-1-0@customer.example"]).await;
    assert!(
        shown.contains("state:       posted") && shown.contains("ticket:      1"),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mail_the_api_keeps_failing_goes_to_failed_after_max_attempts_while_others_post() {
    let w = World::start().await;
    for t in 1..=4 {
        w.api.add_ticket(t, CUSTOMER);
    }
    w.append(&reply(1, 0, "never accepted"));
    w.api.fail_next_for(1, 1000, Fault::Status(500));
    let config = w.config_with(
        &[MailboxOpts::default()],
        "",
        "[delivery]\nmax_attempts = 2\n",
    );
    for pass in 2..=4u64 {
        // Each pass, another customer's reply goes through: the API works, this mail does not.
        w.append(&reply(pass, 0, &format!("reply 0 to {pass}")));
        let out = once(&config, &[]).await;
        assert!(out.status.success(), "{}", text(&out));
    }
    assert_eq!(w.folder("Failed").len(), 1, "given up on");
    assert_eq!(w.folder("Processed").len(), 3, "the others were posted");
    let (_, shown) = ledger(&config, &["show", "<reply-1-0@customer.example>"]).await;
    assert!(
        shown.contains("state:       failed") && shown.contains("gave up after 2 failed attempts"),
        "{shown}"
    );
    let (_, stats) = ledger(&config, &["stats"]).await;
    assert!(
        stats.contains("failed   1") && stats.contains("posted   3"),
        "{stats}"
    );
}

under_every_reading!(an_outage_longer_than_max_attempts_gives_nothing_up_and_is_loud);
async fn an_outage_longer_than_max_attempts_gives_nothing_up_and_is_loud(reading: Reading) {
    let w = World::under(reading).await;
    seed(&w, 5, 2);
    w.api.fail_every(1, Fault::Status(503));
    let config = w.config_with(
        &[MailboxOpts::default()],
        "",
        "[delivery]\nmax_attempts = 2\n",
    );
    for _ in 0..4 {
        let out = once(&config, &[]).await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "no post succeeded: {}",
            text(&out)
        );
    }
    assert!(w.folder("Failed").is_empty(), "an outage fails nothing");
    assert_eq!(w.folder("INBOX").len(), 10);

    // Under run: the outage is announced once, health and the metric say so, and the
    // replies follow within a minute of the recovery.
    let port = free_port();
    let config = w.config_with(
        &[MailboxOpts::default()],
        "",
        &format!("[delivery]\nmax_attempts = 2\n[metrics]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    let log = w.dir.path().join("run.log");
    let mut child = spawn_run(&config, &log);
    let announced = eventually(Duration::from_secs(60), || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("failing for every request"))
    })
    .await;
    assert!(
        announced,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let (status, health) = get(&format!("http://127.0.0.1:{port}/healthz")).await;
    assert_eq!(status, 503, "{health}");
    assert!(health.contains("\"api\""), "names the API: {health}");
    let (_, metrics) = get(&format!("http://127.0.0.1:{port}/metrics")).await;
    assert!(metrics.contains("thulium_bridge_api_up 0"), "{metrics}");
    // The number that matters: all 10 replies wait, the oldest since the first pass.
    let support = [("mailbox", "support")];
    let waiting = probe_until(
        Duration::from_secs(30),
        || async { get(&format!("http://127.0.0.1:{port}/metrics")).await.1 },
        |m| metric(m, "thulium_bridge_waiting_mails", &support) == Some(10.0),
    )
    .await
    .unwrap_or_else(|m| panic!("waiting mails: {m}"));
    let oldest = metric(&waiting, "thulium_bridge_oldest_waiting_seconds", &support);
    assert!(oldest.is_some_and(|s| s > 0.0), "{oldest:?}");

    w.api.clear_faults();
    let recovered = std::time::Instant::now();
    let all_posted = eventually(Duration::from_secs(90), || {
        w.folder("Processed").len() == 10
    })
    .await;
    let took = recovered.elapsed();
    terminate_ok(&mut child, &log).await;
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(all_posted, "{log}");
    let (missing, duplicates) = audit(&w.api, 5, 2);
    println!(
        "{reading:?}: 503 for every POST over 4 passes + run: {missing} missing, {duplicates} duplicates, {} failed; all posted {:.1} s after the recovery",
        w.folder("Failed").len(),
        took.as_secs_f64()
    );
    assert_eq!((missing, duplicates), (0, 0));
    assert!(w.folder("Failed").is_empty());
    assert_eq!(log.matches("failing for every request").count(), 1, "{log}");
    assert_eq!(log.matches("works again").count(), 1, "{log}");
}

/// While the API is down the replies wait, each tried again every 30 s, and of those
/// only one POST at a time goes out to probe whether the API is back (at most one in
/// 5 s): twelve replies retried together send one. `max_age` still gives up on each
/// of them, probe or not.
#[tokio::test(flavor = "multi_thread")]
async fn an_outage_is_probed_by_one_post_at_a_time_and_max_age_still_gives_up() {
    let w = World::start().await;
    seed(&w, 12, 1);
    w.api.fail_every(1, Fault::Status(503));
    let config = w.config_with(
        &[MailboxOpts::default()],
        "",
        "[delivery]\nmax_age = \"20s\"\n",
    );
    let mut child = w.spawn_run(&config);
    // The first pass: each reply tried, the outage announced, all twelve waiting.
    let deferred = || {
        w.log()
            .lines()
            .filter(|l| l.contains("mail handled") && has_field(l, "outcome", "retried"))
            .count()
    };
    let waiting = eventually(WAIT, || deferred() == 12).await;
    assert!(
        waiting && w.log().contains("failing for every request"),
        "{}",
        w.log()
    );
    let since = std::time::Instant::now();
    let first_round = posts(&w.api);
    let first_round_end = w
        .api
        .requests()
        .iter()
        .map(|r| r.at_unix_ms)
        .max()
        .unwrap_or(0);
    assert!(w.folder("Failed").is_empty(), "younger than max_age");

    // The retry: one probe, then every reply (now older than max_age) is given up.
    let given_up = eventually(Duration::from_secs(90), || w.folder("Failed").len() == 12).await;
    let took = since.elapsed();
    terminate_ok(&mut child, &w.log_path()).await;
    assert!(given_up, "{}", w.log());
    let probes: Vec<u64> = w.api.requests()[..]
        .iter()
        .filter(|r| r.method == "POST")
        .skip(first_round)
        .map(|r| r.at_unix_ms)
        .collect();
    println!(
        "outage: {} POST(s) after the first pass, the first {:?} ms after it; all given up {:.1} s after it",
        probes.len(),
        probes.first().map(|at| at.saturating_sub(first_round_end)),
        took.as_secs_f64()
    );
    assert_eq!(
        probes.len(),
        1,
        "one probe for twelve waiting replies: {probes:?}"
    );
    assert!(w.folder("INBOX").is_empty());
    assert_eq!(w.api.total_posted(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_credentials_for_longer_than_max_attempts_give_nothing_up() {
    let w = World::start().await;
    seed(&w, 3, 1);
    let good = w.config_with(
        &[MailboxOpts::default()],
        "",
        "[delivery]\nmax_attempts = 1\n",
    );
    let text_of = std::fs::read_to_string(&good).unwrap();
    let bad = w.dir.path().join("bad.toml");
    std::fs::write(&bad, text_of.replace(w.api.password(), "expired-password")).unwrap();
    for _ in 0..3 {
        let out = once(&bad, &[]).await;
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("refused our credentials"));
    }
    assert!(w.folder("Failed").is_empty());
    drain(&w, &good, 2).await;
    assert_eq!(audit(&w.api, 3, 1), (0, 0));
    assert!(w.folder("Failed").is_empty());
}

/// Waiting has one bound, `delivery.max_age` from first seen: through a refused
/// password as through an outage, a reply older than that goes to `on_failed`.
#[tokio::test(flavor = "multi_thread")]
async fn max_age_gives_up_a_reply_that_waits_on_a_refused_password_or_an_outage() {
    let w = World::start().await;
    let max_age = Duration::from_secs(2);
    let good = w.config_with(
        &[MailboxOpts::default()],
        "",
        "[delivery]\nmax_age = \"2s\"\n",
    );
    let bad = w.dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        read(&good).replace(w.api.password(), "expired-password"),
    )
    .unwrap();

    for (ticket, config) in [(1, &bad), (2, &good)] {
        w.api.add_ticket(ticket, CUSTOMER);
        w.append(&reply(ticket, 0, &format!("reply 0 to {ticket}")));
        if ticket == 2 {
            // The whole API is down: the sender check's ticket reads fail first.
            w.api.fail_every(1, Fault::Status(503));
            w.api.fail_next(100, Fault::GetFails(503));
        }
        let out = once(config, &[]).await;
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            w.folder("Failed").len() < ticket as usize,
            "younger than max_age: {}",
            text(&out)
        );
        // First seen during that pass, so max_age from now on it is older.
        tokio::time::sleep(max_age).await;
        let out = once(config, &[]).await;
        assert_eq!(w.folder("Failed").len(), ticket as usize, "{}", text(&out));
        assert!(w.folder("INBOX").is_empty(), "{}", text(&out));
        let id = format!("<reply-{ticket}-0@customer.example>");
        let (_, shown) = ledger(config, &["show", &id]).await;
        assert!(
            shown.contains("state:       failed")
                && shown.contains("gave up after 0 failed attempts"),
            "{shown}"
        );
    }
    assert_eq!(w.api.total_posted(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_reply_is_retried_after_ledger_retry_move_back() {
    let w = World::start().await;
    w.append(&reply(9, 0, "reply 0 to 9"));
    let config = w.config();
    // Ticket 9 does not exist yet: a permanent rejection.
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.folder("Failed").len(), 1);
    let (_, shown) = ledger(&config, &["show", "reply-9-0@customer.example"]).await;
    assert!(
        shown.contains("state:       failed") && shown.contains("HTTP 404"),
        "{shown}"
    );

    w.api.add_ticket(9, CUSTOMER);
    let (ok, said) = ledger(
        &config,
        &["retry", "reply-9-0@customer.example", "--move-back"],
    )
    .await;
    assert!(ok, "{said}");
    assert!(said.contains("moved 1 of 1"), "{said}");
    assert_eq!(w.folder("INBOX").len(), 1, "back in the watched folder");
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.posted(9).len(), 1);
    assert_eq!(w.folder("Processed").len(), 1);
    let (ok, said) = ledger(&config, &["retry", "--failed"]).await;
    assert!(ok && said.contains("no failed mails"), "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mail_moved_back_by_a_person_is_fresh_but_a_lost_disposal_is_not() {
    let w = World::start().await;
    let raw = reply(9, 0, "reply 0 to 9");
    w.append(&raw);
    // on_failed = seen: the disposal is a flag in the maildir file name, which the test
    // can take away again as a crash between the ledger write and the STORE would.
    let config = w.config_with(
        &[MailboxOpts {
            extra: "on_failed = \"seen\"\n".into(),
            ..MailboxOpts::default()
        }],
        // The POST itself meets the missing ticket (HTTP 404), not a ticket read.
        "verify_sender = \"off\"",
        "",
    );
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let inbox = w.folder("INBOX");
    assert!(
        inbox.len() == 1 && inbox[0].has_flag("\\Seen"),
        "failed and marked seen"
    );
    assert_eq!(posts(&w.api), 1);

    // The disposal is lost: same mail, same UID, unseen again.
    let cur = w.dovecot.maildir(USER).folder_dir("INBOX").join("cur");
    let path = cur.join(&inbox[0].file_name);
    let unflagged = cur.join(inbox[0].file_name.replace(":2,S", ":2,"));
    std::fs::rename(&path, &unflagged).unwrap();
    assert!(!w.folder("INBOX")[0].has_flag("\\Seen"));
    w.api.add_ticket(9, CUSTOMER);
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        posts(&w.api),
        1,
        "the same UID again is the crash: failed, not posted"
    );
    let inbox = w.folder("INBOX");
    assert!(inbox[0].has_flag("\\Seen"), "disposed as failed again");

    // A person puts the mail back (a new UID): a fresh attempt.
    std::fs::remove_file(cur.join(&inbox[0].file_name)).unwrap();
    w.append(&raw);
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.api.posted(9).len(), 1, "posted on the fresh attempt");
}

#[tokio::test(flavor = "multi_thread")]
async fn reused_message_ids_and_true_copies_in_one_folder_are_finished_in_one_pass() {
    let w = World::start().await;
    w.api.add_ticket(1, CUSTOMER);
    let scanner = |body: &str| {
        format!(
            "From: {CUSTOMER}\r\nSubject: Re: [TH#1] Scans\r\nDate: Thu, 26 Nov 2026 10:00:00 +0100\r\n\
             Message-ID: <scan@erp.example>\r\nContent-Type: text/plain\r\n\r\n{body}\r\n"
        )
        .into_bytes()
    };
    w.append(&scanner("scan one"));
    w.append(&scanner("scan two"));
    let copy = reply(1, 5, "the same reply twice");
    w.append(&copy);
    w.append(&copy);
    let out = once(&w.config(), &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let bodies: Vec<String> = w
        .api
        .posted(1)
        .iter()
        .map(|r| r.body.trim().to_string())
        .collect();
    assert_eq!(bodies.len(), 3, "{bodies:?}");
    assert!(bodies.contains(&"scan one".to_string()) && bodies.contains(&"scan two".to_string()));
    assert!(
        w.folder("INBOX").is_empty(),
        "the copy did not wait for another pass"
    );
    assert_eq!(w.folder("Processed").len(), 4);
    let log = String::from_utf8_lossy(&out.stderr);
    assert_eq!(log.matches("outcome=\"duplicate\"").count(), 1, "{log}");
    let (_, shown) = ledger(&w.config(), &["show", "scan@erp.example"]).await;
    assert_eq!(shown.matches("state:       posted").count(), 2, "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upgrade_from_the_redb_ledger_posts_nothing_again() {
    use redb::{Database, TableDefinition};
    const ENTRIES: TableDefinition<'static, &str, &[u8]> = TableDefinition::new("entries");
    let w = World::start().await;
    w.api.add_ticket(1, CUSTOMER);
    // Posted by 0.1, whose disposal never happened.
    w.append(&reply(1, 0, "reply 0 to 1"));
    let state = w.dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    {
        let db = Database::create(state.join("ledger.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(ENTRIES).unwrap();
            let entry = r#"{"state":"posted","ticket":1,"body_hash":"x","date":"2026-11-26 10:00","attempts":1,"first_seen":1764000000,"updated":1764000000,"mailbox":"support","uid":1}"#;
            t.insert("<reply-1-0@customer.example>", entry.as_bytes())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let out = once(&w.config(), &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(posts(&w.api), 0, "nothing posted again");
    assert_eq!(w.folder("Processed").len(), 1, "only disposed");
    assert!(
        state.join("ledger.redb.bak").exists(),
        "the old file is kept"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("migrated"));
}

#[tokio::test(flavor = "multi_thread")]
async fn per_ticket_order_holds_across_a_long_retry_after_under_run() {
    let w = World::start().await;
    w.api.add_ticket(1, CUSTOMER);
    w.api.add_ticket(2, CUSTOMER);
    // The first reply is throttled for longer than a pass waits; the second must not overtake it.
    w.api.fail_next_for(
        1,
        1,
        Fault::TooManyRequests {
            retry_after_secs: 8,
        },
    );
    w.append(&reply(1, 0, "first"));
    w.append(&reply(1, 1, "second"));
    w.append(&reply(2, 0, "other ticket"));
    // A Retry-After far beyond any sense, on another ticket: clamped, no overflow.
    w.api.fail_next_for(
        2,
        1,
        Fault::TooManyRequests {
            retry_after_secs: u64::MAX,
        },
    );
    let config = w.config();
    let log = w.dir.path().join("run.log");
    let mut child = spawn_run(&config, &log);
    // A third reply arrives while the first still waits out its Retry-After.
    let throttled = eventually(WAIT, || {
        w.api
            .requests()
            .iter()
            .any(|r| r.ticket == Some(1) && r.status == Some(429))
    })
    .await;
    assert!(throttled, "{}", read(&log));
    w.append(&reply(1, 2, "third"));
    let done = eventually(Duration::from_secs(60), || w.api.posted(1).len() == 3).await;
    assert!(child.try_wait().unwrap().is_none(), "still running");
    terminate_ok(&mut child, &log).await;
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(done, "{log}");
    let order: Vec<String> = w
        .api
        .posted(1)
        .iter()
        .map(|r| r.body.trim().to_string())
        .collect();
    assert_eq!(order, ["first", "second", "third"], "{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        w.api.posted(2).is_empty(),
        "ticket 2 waits out its (clamped) hour"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ledger_is_read_and_a_failed_reply_retried_while_the_daemon_runs() {
    let w = World::start().await;
    w.append(&reply(9, 0, "reply 0 to 9"));
    let config = w.config();
    let log = w.dir.path().join("run.log");
    let mut child = spawn_run(&config, &log);
    assert!(
        eventually(WAIT, || w.folder("Failed").len() == 1).await,
        "ticket 9 does not exist: failed\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let (ok, shown) = ledger(&config, &["show", "reply-9-0@customer.example"]).await;
    assert!(ok && shown.contains("state:       failed"), "{shown}");
    let (ok, stats) = ledger(&config, &["stats"]).await;
    assert!(ok && stats.contains("failed   1"), "{stats}");
    let second = once(&config, &[]).await;
    assert_eq!(
        second.status.code(),
        Some(1),
        "a second daemon on the state.dir is refused"
    );
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another thulium-mail-bridge is running")
    );

    w.api.add_ticket(9, CUSTOMER);
    let (ok, said) = ledger(&config, &["retry", "--failed", "--move-back"]).await;
    assert!(ok, "{said}");
    let posted = eventually(WAIT, || w.api.posted(9).len() == 1).await;
    let exit = terminate(&mut child, &log).await;
    assert!(
        posted,
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(exit.success(), "{exit:?}");
    assert_eq!(w.folder("Processed").len(), 1);
}
