//! The API's clock (`created_at`'s meaning and zone), learned from what the bridge
//! posted, said in the log and by `check`, and the rule before it is learned: any clock
//! counts, so the first lost answer is found, not posted again.

mod support;

use support::*;
use testbed::{Fault, Reading};

fn reading(name: &str) -> Reading {
    Reading::named(name).expect("a reading of Reading::every")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_answer_ever_lost_is_found_before_the_clock_is_learned() {
    let w = World::under(reading("storage_time_in_utc")).await;
    w.api.add_ticket(1, CUSTOMER);
    w.append(&reply(1, 0, "reply 0 to 1"));
    w.api.fail_next(1, Fault::AcceptThenDrop);
    // No GET before the POST: the read-back is the first the bridge sees of the API's clock.
    let config = w.config_with(&[MailboxOpts::default()], "verify_sender = \"off\"", "");

    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    let log = text(&out);
    assert!(
        log.lines()
            .any(|l| l.contains("read the ticket back") && has_field(l, "found", "true")),
        "{log}"
    );
    assert_eq!(posts(&w.api), 1, "found, not posted again: {log}");
    assert_eq!(w.api.posted(1).len(), 1);
    assert_eq!(w.folder("Processed").len(), 1);

    let check = text(&command(&config, &["check"]).await);
    assert!(
        check.contains("api clock: not learned yet"),
        "a read-back of a mail whose outcome was unknown teaches nothing: {check}"
    );
}

/// Also: once the clock is learned (no ticket is read to learn it), a backlog costs
/// the sender check one `GET tickets/{id}` per ticket, however many replies it holds.
#[tokio::test(flavor = "multi_thread")]
async fn check_and_the_log_say_which_clock_the_api_keeps_and_a_backlog_reads_each_ticket_once() {
    let w = World::under(reading("storage_time_at_plus_05_30")).await;
    for t in 1..=3 {
        w.api.add_ticket(t, CUSTOMER);
        for n in 0..2 {
            w.append(&reply(t, n, &format!("reply {n} to {t}")));
        }
    }
    let config = w.config();
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(w.folder("Processed").len(), 6);
    let said = "the API writes created_at as the storage time, UTC+05:30";
    let log = text(&out);
    assert_eq!(log.matches(said).count(), 1, "said once: {log}");

    let check = text(&command(&config, &["check"]).await);
    assert!(
        check.contains(&format!("ok   api clock: {said} (learned from")),
        "{check}"
    );
    // A restart knows it from the ledger and says it at start.
    w.append(&reply(1, 2, "reply 2 to 1"));
    let again = once(&config, &[]).await;
    assert!(text(&again).contains(said), "{}", text(&again));

    // A backlog of four replies to each of the three tickets.
    for t in 1..=3 {
        for n in 3..7 {
            w.append(&reply(t, n, &format!("reply {n} to {t}")));
        }
    }
    let gets = || {
        let mut per_ticket = std::collections::BTreeMap::new();
        for r in w.api.requests().iter().filter(|r| r.method == "GET") {
            *per_ticket.entry(r.ticket).or_insert(0) += 1;
        }
        per_ticket
    };
    let before = gets();
    let backlog = once(&config, &[]).await;
    assert!(backlog.status.success(), "{}", text(&backlog));
    assert_eq!(w.folder("Processed").len(), 7 + 12, "{}", text(&backlog));
    let read: Vec<(Option<u64>, i32)> = gets()
        .into_iter()
        .map(|(t, n)| (t, n - before.get(&t).copied().unwrap_or(0)))
        .filter(|(_, n)| *n > 0)
        .collect();
    assert_eq!(
        read,
        [(Some(1), 1), (Some(2), 1), (Some(3), 1)],
        "{}",
        text(&backlog)
    );
}
