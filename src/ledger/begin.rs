//! Recording POSTs about to begin: the intent, durable before any request goes out. A
//! batch is looked up and written in a few statements, whatever its size: on a shared
//! ledger every statement is a round trip.

use super::entry::{Attempt, Entry, EntryState, unix_now, unix_now_ms};
use super::sql::{ROWS_A_STATEMENT, Sql, SqlError, SqlResult, Value};
use super::store::{Begun, COLUMNS, Stored, find_many, key};
use std::collections::HashSet;

/// What to do for one mail, given what the ledger holds.
enum Plan {
    /// Posted, or failed where it failed: left as it is.
    Keep(Begun),
    /// Recorded pending now; a legacy entry's key, if it was stored under one, goes.
    Write {
        begun: Begun,
        legacy: Option<(String, String)>,
    },
}

/// Records POSTs about to begin (state `Pending`, outcome unknown from now on) and says
/// what was known before. A posted mail stays posted; a failed one stays failed when it
/// is seen where it failed (a crash before its disposal), and is tried afresh when
/// `ledger retry` marked it or a person moved it back (a new place or UID).
pub(super) fn begin_all(conn: &mut dyn Sql, attempts: &[Attempt]) -> SqlResult<Vec<Begun>> {
    let mailboxes: HashSet<&str> = attempts
        .iter()
        .map(|a| a.location.mailbox.as_str())
        .collect();
    for mailbox in mailboxes {
        conn.fence(mailbox)?;
    }
    let ids: Vec<_> = attempts.iter().map(|a| a.id.clone()).collect();
    let distinct: HashSet<(&str, &str)> = ids
        .iter()
        .map(|id| (key(id), id.content.as_str()))
        .collect();
    if distinct.len() < ids.len() {
        // The same mail twice in one batch: one after the other, as it would be anyway.
        return attempts.iter().map(|a| begin_one(conn, a)).collect();
    }
    let found = find_many(conn, &ids)?;
    let (now, now_ms) = (unix_now(), unix_now_ms());
    let plans: Vec<Plan> = attempts
        .iter()
        .zip(found)
        .map(|(a, f)| plan(a, f, now, now_ms))
        .collect();
    write(conn, attempts, &plans, now)?;
    Ok(plans
        .into_iter()
        .map(|p| match p {
            Plan::Keep(b) | Plan::Write { begun: b, .. } => b,
        })
        .collect())
}

fn begin_one(conn: &mut dyn Sql, a: &Attempt) -> SqlResult<Begun> {
    begin_all(conn, std::slice::from_ref(a))?
        .into_iter()
        .next()
        .ok_or_else(|| SqlError("no entry recorded".into()))
}

fn plan(a: &Attempt, found: Option<Stored>, now: u64, now_ms: u64) -> Plan {
    let legacy = found
        .as_ref()
        .map(|(_, k)| k.clone())
        .filter(|k| k.0 != key(&a.id) || k.1 != a.id.content);
    let found = found.map(|(e, _)| e);
    let fresh_failure = |e: &Entry| e.retry || e.location != a.location;
    let (attempts, first_seen, outcome_unknown, previous_attempt_ms, unknown_since) = match &found {
        Some(e) if e.state == EntryState::Posted => {
            return Plan::Keep(Begun {
                entry: e.clone(),
                outcome_unknown: false,
                previous_attempt_ms: e.last_attempt_ms,
            });
        }
        Some(e) if e.state == EntryState::Failed && !fresh_failure(e) => {
            return Plan::Keep(Begun {
                entry: e.clone(),
                outcome_unknown: e.outcome_unknown,
                previous_attempt_ms: e.last_attempt_ms,
            });
        }
        Some(e) if e.state == EntryState::Failed => {
            (0, now, e.outcome_unknown, None, e.unknown_since)
        }
        Some(e) => (
            e.attempts,
            e.first_seen,
            e.outcome_unknown,
            e.last_attempt_ms,
            e.unknown_since,
        ),
        None => (0, now, false, None, None),
    };
    // The window a read-back searches opens with the first POST of unknown outcome.
    let unknown_since = match unknown_since {
        Some(t) if outcome_unknown => t,
        _ => now,
    };
    let entry = Entry {
        id: a.id.clone(),
        state: EntryState::Pending,
        ticket: a.ticket,
        body_hash: a.body_hash.clone(),
        text_hash: a.text_hash.clone(),
        date: a.date.clone(),
        attempts,
        first_seen,
        last_attempt_ms: Some(now_ms),
        updated: now,
        outcome_unknown: true,
        unknown_since: Some(unknown_since),
        location: a.location.clone(),
        reason: None,
        retry: false,
    };
    Plan::Write {
        begun: Begun {
            entry,
            outcome_unknown,
            previous_attempt_ms,
        },
        legacy,
    }
}

/// The entries to record pending, written anew (a legacy key replaced by the full one).
fn write(conn: &mut dyn Sql, attempts: &[Attempt], plans: &[Plan], now: u64) -> SqlResult<()> {
    let mut rows = Vec::new();
    for (a, p) in attempts.iter().zip(plans) {
        let Plan::Write { begun, legacy } = p else {
            continue;
        };
        if let Some((message_id, content)) = legacy {
            conn.execute(
                "DELETE FROM mails WHERE message_id = ?1 AND content = ?2",
                super::sql::params![message_id, content],
            )?;
        }
        rows.push((a, &begun.entry));
    }
    for chunk in rows.chunks(ROWS_A_STATEMENT) {
        let slots: Vec<String> = (0..chunk.len())
            .map(|r| {
                let p = |c: usize| format!("?{}", 17 * r + c);
                format!(
                    "({}, {}, {}, 'pending', {}, {}, {}, {}, {}, {}, {}, {}, 1, {}, {}, {}, {}, {}, NULL, 0, {})",
                    p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9), p(10), p(11), p(12), p(13), p(14), p(15), p(16), p(17)
                )
            })
            .collect();
        let mut values = Vec::with_capacity(17 * chunk.len());
        for (a, e) in chunk {
            values.extend([
                Value::from(key(&a.id)),
                Value::from(&a.id.content),
                Value::from(a.id.legacy.as_deref()),
                Value::from(a.ticket),
                Value::from(&a.body_hash),
                Value::from(&a.text_hash),
                Value::from(&a.date),
                Value::from(e.attempts),
                Value::from(e.first_seen),
                Value::from(e.last_attempt_ms),
                Value::from(now),
                Value::from(e.unknown_since),
                Value::from(&a.location.mailbox),
                Value::from(&a.location.folder),
                Value::from(a.location.uid_validity),
                Value::from(a.location.uid),
                Value::from(a.new_ticket_from.as_deref()),
            ]);
        }
        conn.execute(
            &format!(
                "INSERT INTO mails ({COLUMNS}, new_ticket_from) VALUES {} \
                 ON CONFLICT (message_id, content) DO UPDATE SET legacy = excluded.legacy, \
                 state = excluded.state, ticket = excluded.ticket, body_hash = excluded.body_hash, \
                 text_hash = excluded.text_hash, date_sent = excluded.date_sent, attempts = excluded.attempts, \
                 first_seen = excluded.first_seen, last_attempt_ms = excluded.last_attempt_ms, \
                 updated = excluded.updated, outcome_unknown = excluded.outcome_unknown, \
                 unknown_since = excluded.unknown_since, mailbox = excluded.mailbox, folder = excluded.folder, \
                 uid_validity = excluded.uid_validity, uid = excluded.uid, reason = excluded.reason, \
                 retry = excluded.retry, new_ticket_from = excluded.new_ticket_from",
                slots.join(", ")
            ),
            &values,
        )?;
    }
    Ok(())
}
