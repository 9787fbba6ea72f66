//! Fencing on a real PostgreSQL: a write for a mailbox is refused once a newer epoch of
//! its lease exists, whatever this instance still believes (a paused leader whose local
//! check passed just before the pause).

use super::entry::{Attempt, Finish, Location};
use super::postgres::Target;
use super::{Ledger, LedgerError};
use crate::config::{LedgerBackend, StateConfig};
use crate::mail::MailId;

fn attempt(n: u32) -> Attempt {
    Attempt {
        id: MailId {
            message_id: Some(format!("<fence-{n}@x>")),
            content: format!("c{n}"),
            legacy: None,
        },
        ticket: 7,
        body_hash: "b".into(),
        text_hash: "t".into(),
        date: "2026-12-05 10:00".into(),
        location: Location {
            mailbox: "support".into(),
            folder: "INBOX".into(),
            uid_validity: 1,
            uid: n,
        },
        new_ticket_from: None,
    }
}

#[test]
fn a_write_is_refused_once_a_newer_epoch_of_the_lease_exists() {
    let pg = testbed::Postgres::start().expect("postgres starts");
    let state = StateConfig {
        backend: LedgerBackend::Postgres,
        postgres_url: Some(pg.url()),
        postgres_password: Some(pg.password().to_string().into()),
        postgres_ca_file: Some(pg.ca_file()),
        ..StateConfig::default()
    };
    let ledger = Ledger::open_postgres(Target::of(&state)).expect("ledger opens");
    let fences = ledger.shared().expect("shared").fences.clone();
    let lease = |epoch: i64| {
        pg.superuser_psql(&format!(
            "DELETE FROM leases; INSERT INTO leases (mailbox, holder, epoch, expires_ms, since_ms) \
             VALUES ('support', 'host-a', {epoch}, 9999999999999, 0)"
        ))
        .expect("lease written");
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");

    // Not led by this instance at all: nothing is written.
    let refused = rt.block_on(ledger.begin(vec![attempt(1)]));
    assert!(
        matches!(refused, Err(LedgerError::Store { .. })),
        "{refused:?}"
    );

    // Led with epoch 1: the intent is recorded.
    lease(1);
    fences
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert("support".into(), 1);
    rt.block_on(ledger.begin(vec![attempt(1)]))
        .expect("begun under epoch 1");

    // Another instance took over (epoch 2): this one's next intent and its outcome
    // are refused, and the refusal names the new leader.
    lease(2);
    let err = rt
        .block_on(ledger.begin(vec![attempt(2)]))
        .expect_err("begin refused under a newer epoch")
        .to_string();
    assert!(err.contains("is led by host-a (epoch 2) now"), "{err}");
    let finished = rt.block_on(ledger.finish(vec![Finish::Posted {
        id: attempt(1).id,
        ticket: 7,
    }]));
    assert!(finished.is_err(), "{finished:?}");
    let rows = pg
        .superuser_psql("SELECT message_id, state FROM mails ORDER BY message_id")
        .expect("read");
    assert_eq!(
        rows.trim(),
        "<fence-1@x>|pending",
        "only the intent under epoch 1"
    );
}
