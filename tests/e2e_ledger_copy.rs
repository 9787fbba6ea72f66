//! From one host to two: `ledger copy --to postgres` carries the SQLite ledger into a real
//! PostgreSQL, and what it recorded is not posted again there.

#[macro_use]
mod support;

use support::*;
use testbed::Postgres;

#[tokio::test(flavor = "multi_thread")]
async fn a_copied_ledger_posts_nothing_again_and_a_second_copy_adds_nothing() {
    let mut w = World::start().await;
    for t in 1..=3 {
        w.api.add_ticket(t, CUSTOMER);
    }
    let replies: Vec<Vec<u8>> = (0..6)
        .map(|n| reply(n % 3 + 1, n as u32, &format!("reply {n}")))
        .collect();
    for raw in &replies {
        w.append(raw);
    }
    // One host, its own SQLite ledger.
    let out = once(&w.config(), &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(posts(&w.api), 6);

    // The same config, pointed at PostgreSQL.
    let pg = tokio::task::spawn_blocking(Postgres::start)
        .await
        .expect("join")
        .expect("postgres starts");
    w.postgres = Some(pg);
    let config = w.config();
    let (ok, first) = ledger(&config, &["copy", "--to", "postgres"]).await;
    assert!(ok, "{first}");
    assert!(
        first.contains("mails      6 added, 0 already there"),
        "{first}"
    );
    let (ok, again) = ledger(&config, &["copy", "--to", "postgres"]).await;
    assert!(ok, "{again}");
    assert!(
        again.contains("mails      0 added, 6 already there"),
        "{again}"
    );

    // The same six mails back in the inbox, and one new reply: only the new one is posted.
    for raw in &replies {
        w.append(raw);
    }
    w.append(&reply(1, 9, "a new reply"));
    let out = once(&config, &[]).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(posts(&w.api), 7, "nothing recorded was posted again");
    assert!(w.folder("INBOX").is_empty());
    let (ok, stats) = ledger(&config, &["stats"]).await;
    assert!(ok && stats.contains("posted   7"), "{stats}");

    // The shared ledger has been used since: copying the old one in is refused.
    let refused = command(&config, &["ledger", "copy", "--to", "postgres"]).await;
    assert!(!refused.status.success(), "{}", text(&refused));
    assert!(
        text(&refused).contains("already holds 1 mail(s) this ledger does not have"),
        "{}",
        text(&refused)
    );
}
