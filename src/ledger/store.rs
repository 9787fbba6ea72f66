//! The ledger's statements, each on a connection the caller holds (the writer's inside
//! its grouped transaction, or the read connection). The rules of exactly-once live in
//! [`begin`] and [`finish`].

use super::entry::{Attempt, Entry, EntryState, Finish, Location, Stats, unix_now, unix_now_ms};
use crate::mail::MailId;
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::collections::HashMap;

/// What [`begin`] found and recorded for one mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Begun {
    /// As recorded now: `Pending` (post it), or `Posted`/`Failed` left as they were.
    pub entry: Entry,
    /// An earlier POST may have reached the helpdesk: read the ticket back first.
    pub outcome_unknown: bool,
    /// When the previous POST of this mail began (unix ms), if there was one.
    pub previous_attempt_ms: Option<u64>,
}

const COLUMNS: &str = "message_id, content, legacy, state, ticket, body_hash, text_hash, date_sent, \
     attempts, first_seen, last_attempt_ms, updated, outcome_unknown, unknown_since, mailbox, \
     folder, uid_validity, uid, reason, retry";

fn entry(row: &Row<'_>) -> rusqlite::Result<Entry> {
    let message_id: String = row.get(0)?;
    let state: String = row.get(3)?;
    Ok(Entry {
        id: MailId {
            message_id: (!message_id.is_empty()).then_some(message_id),
            content: row.get(1)?,
            legacy: row.get(2)?,
        },
        // An unknown state (a newer writer) is read as pending: never posted blindly.
        state: EntryState::parse(&state).unwrap_or(EntryState::Pending),
        ticket: row.get::<_, i64>(4)? as u64,
        body_hash: row.get(5)?,
        text_hash: row.get(6)?,
        date: row.get(7)?,
        attempts: row.get::<_, i64>(8)?.clamp(0, u32::MAX as i64) as u32,
        first_seen: row.get::<_, i64>(9)?.max(0) as u64,
        last_attempt_ms: row.get::<_, Option<i64>>(10)?.map(|v| v.max(0) as u64),
        updated: row.get::<_, i64>(11)?.max(0) as u64,
        outcome_unknown: row.get(12)?,
        unknown_since: row.get::<_, Option<i64>>(13)?.map(|v| v.max(0) as u64),
        location: location_at(row, 14)?,
        reason: row.get(18)?,
        retry: row.get(19)?,
    })
}

/// The four columns of a mail's place (mailbox, folder, UIDVALIDITY, UID) from `first` on.
pub(super) fn location_at(row: &Row<'_>, first: usize) -> rusqlite::Result<Location> {
    let u32_at = |i: usize| -> rusqlite::Result<u32> {
        Ok(row.get::<_, i64>(i)?.clamp(0, u32::MAX as i64) as u32)
    };
    Ok(Location {
        mailbox: row.get(first)?,
        folder: row.get(first + 1)?,
        uid_validity: u32_at(first + 2)?,
        uid: u32_at(first + 3)?,
    })
}

fn key(id: &MailId) -> &str {
    id.message_id.as_deref().unwrap_or("")
}

/// The entry of a mail. An entry migrated from 0.1 (keyed by Message-ID alone, or by
/// the hash of the raw mail) is adopted by the first mail that matches it.
pub(super) fn find(conn: &Connection, id: &MailId) -> rusqlite::Result<Option<Entry>> {
    Ok(find_stored(conn, id)?.map(|(e, _)| e))
}

/// [`find`], with the key the entry is stored under (a legacy one until [`begin`]).
fn find_stored(
    conn: &Connection,
    id: &MailId,
) -> rusqlite::Result<Option<(Entry, (String, String))>> {
    let by_key = |message_id: &str, content: &str| {
        conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM mails WHERE message_id = ?1 AND content = ?2"
        ))?
        .query_row(params![message_id, content], entry)
        .optional()
    };
    if let Some(e) = by_key(key(id), &id.content)? {
        return Ok(Some((e, (key(id).to_string(), id.content.clone()))));
    }
    let legacy = match (&id.message_id, &id.legacy) {
        (Some(mid), _) => by_key(mid, "")?,
        (None, Some(raw_key)) => by_key("", raw_key)?,
        (None, None) => None,
    };
    Ok(legacy.map(|e| {
        let stored = (key(&e.id).to_string(), e.id.content.clone());
        (
            Entry {
                id: id.clone(),
                ..e
            },
            stored,
        )
    }))
}

/// Records a POST about to begin (state `Pending`, outcome unknown from now on) and
/// says what was known before. A posted mail stays posted; a failed one stays failed
/// when it is seen where it failed (a crash before its disposal), and is tried afresh
/// when `ledger retry` marked it or a person moved it back (a new place or UID).
pub(super) fn begin(conn: &Connection, a: &Attempt) -> rusqlite::Result<Begun> {
    let now = unix_now();
    let now_ms = unix_now_ms() as i64;
    let found = find_stored(conn, &a.id)?;
    let stored_key = found.as_ref().map(|(_, k)| k.clone());
    let found = found.map(|(e, _)| e);
    let fresh_failure = |e: &Entry| e.retry || e.location != a.location;
    let (attempts, first_seen, outcome_unknown, previous_attempt_ms, unknown_since) = match &found {
        Some(e) if e.state == EntryState::Posted => {
            return Ok(Begun {
                entry: e.clone(),
                outcome_unknown: false,
                previous_attempt_ms: e.last_attempt_ms,
            });
        }
        Some(e) if e.state == EntryState::Failed && !fresh_failure(e) => {
            return Ok(Begun {
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
    if let Some((message_id, content)) = stored_key {
        // Written anew below, under the full identity (a legacy entry's key changes).
        conn.prepare_cached("DELETE FROM mails WHERE message_id = ?1 AND content = ?2")?
            .execute(params![message_id, content])?;
    }
    conn.prepare_cached(&format!(
        "INSERT INTO mails ({COLUMNS}, new_ticket_from) VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 1, ?12, ?13, ?14, ?15, ?16, NULL, 0, ?17)"
    ))?
    .execute(params![
        key(&a.id),
        a.id.content,
        a.id.legacy,
        a.ticket as i64,
        a.body_hash,
        a.text_hash,
        a.date,
        attempts as i64,
        first_seen as i64,
        now_ms,
        now as i64,
        unknown_since as i64,
        a.location.mailbox,
        a.location.folder,
        a.location.uid_validity as i64,
        a.location.uid as i64,
        a.new_ticket_from,
    ])?;
    let entry = Entry {
        id: a.id.clone(),
        state: EntryState::Pending,
        ticket: a.ticket,
        body_hash: a.body_hash.clone(),
        text_hash: a.text_hash.clone(),
        date: a.date.clone(),
        attempts,
        first_seen,
        last_attempt_ms: Some(now_ms as u64),
        updated: now,
        outcome_unknown: true,
        unknown_since: Some(unknown_since),
        location: a.location.clone(),
        reason: None,
        retry: false,
    };
    Ok(Begun {
        entry,
        outcome_unknown,
        previous_attempt_ms,
    })
}

/// Records how a mail ended in a pass. A posted mail is never turned back.
pub(super) fn finish(conn: &Connection, f: &Finish) -> rusqlite::Result<()> {
    let now = unix_now() as i64;
    match f {
        Finish::Posted { id, ticket } => {
            let changed = conn
                .prepare_cached(
                    "UPDATE mails SET state = 'posted', ticket = ?3, outcome_unknown = 0, reason = NULL, updated = ?4 \
                     WHERE message_id = ?1 AND content = ?2",
                )?
                .execute(params![key(id), id.content, *ticket as i64, now])?;
            if changed == 0 {
                // That it was posted is what must not be lost.
                tracing::warn!(mail = %id, ticket, "posted without a pending ledger entry");
                conn.prepare_cached(&format!(
                    "INSERT INTO mails ({COLUMNS}) VALUES (?1, ?2, ?3, 'posted', ?4, '', '', '', 0, ?5, NULL, ?5, 0, NULL, '', '', 0, 0, NULL, 0)"
                ))?
                .execute(params![key(id), id.content, id.legacy, *ticket as i64, now])?;
            }
        }
        Finish::Failed {
            id,
            reason,
            outcome_unknown,
            location,
        } => {
            conn.prepare_cached(
                "UPDATE mails SET state = 'failed', reason = ?3, outcome_unknown = ?4, mailbox = ?5, folder = ?6, \
                 uid_validity = ?7, uid = ?8, retry = 0, updated = ?9 \
                 WHERE message_id = ?1 AND content = ?2 AND state != 'posted'",
            )?
            .execute(params![
                key(id),
                id.content,
                reason,
                outcome_unknown,
                location.mailbox,
                location.folder,
                location.uid_validity as i64,
                location.uid as i64,
                now
            ])?;
        }
        Finish::Deferred {
            id,
            counted,
            outcome_unknown,
        } => {
            conn.prepare_cached(
                "UPDATE mails SET attempts = attempts + ?3, outcome_unknown = ?4, updated = ?5 \
                 WHERE message_id = ?1 AND content = ?2 AND state = 'pending'",
            )?
            .execute(params![
                key(id),
                id.content,
                i64::from(*counted),
                outcome_unknown,
                now
            ])?;
        }
        Finish::Released {
            id,
            outcome_unknown,
        } => {
            conn.prepare_cached(
                "DELETE FROM mails WHERE message_id = ?1 AND content = ?2 AND state = 'pending' \
                 AND attempts = 0 AND NOT ?3",
            )?
            .execute(params![key(id), id.content, outcome_unknown])?;
            conn.prepare_cached(
                "UPDATE mails SET outcome_unknown = ?3, updated = ?4 \
                 WHERE message_id = ?1 AND content = ?2 AND state = 'pending'",
            )?
            .execute(params![key(id), id.content, outcome_unknown, now])?;
        }
    }
    Ok(())
}

/// Every entry of a Message-ID (a reused one has several), or of a content hash prefix.
pub(super) fn entries(conn: &Connection, message_id_or_hash: &str) -> rusqlite::Result<Vec<Entry>> {
    let (sql, arg) = match message_id_or_hash.strip_prefix("sha256:") {
        Some(hex) => (
            format!(
                "SELECT {COLUMNS} FROM mails WHERE content LIKE ?1 || '%' OR legacy = 'sha256:' || ?1 ORDER BY first_seen"
            ),
            hex.to_ascii_lowercase(),
        ),
        None => (
            format!("SELECT {COLUMNS} FROM mails WHERE message_id = ?1 ORDER BY first_seen"),
            crate::mail::identity::message_id_key(message_id_or_hash),
        ),
    };
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params![arg], entry)?;
    rows.collect()
}

/// The tickets posted mails with this Message-ID went to (`match.use_references`).
pub(super) fn tickets_for_message_id(
    conn: &Connection,
    message_id: &str,
) -> rusqlite::Result<Vec<u64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT ticket FROM mails WHERE message_id = ?1 AND state = 'posted' ORDER BY ticket",
    )?;
    let rows = stmt.query_map(params![message_id], |r| r.get::<_, i64>(0))?;
    rows.map(|r| r.map(|t| t as u64)).collect()
}

/// Posted mails other than `id` whose text on `ticket` is the same: the helpdesk
/// messages they account for are not this mail's.
pub(super) fn posted_with_same_text(
    conn: &Connection,
    ticket: u64,
    text_hash: &str,
    id: &MailId,
) -> rusqlite::Result<Vec<(String, u64, u64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT date_sent, first_seen, updated FROM mails WHERE ticket = ?1 AND text_hash = ?2 \
         AND state = 'posted' AND NOT (message_id = ?3 AND content = ?4)",
    )?;
    let rows = stmt.query_map(
        params![ticket as i64, text_hash, key(id), id.content],
        |r| {
            Ok((
                r.get(0)?,
                r.get::<_, i64>(1)?.max(0) as u64,
                r.get::<_, i64>(2)?.max(0) as u64,
            ))
        },
    )?;
    rows.collect()
}

/// A reply recorded posted: its text, its date sent, and the unix seconds between which
/// the API stored it (its last POST began .. it was recorded posted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PostedReply {
    pub text_hash: String,
    pub date_sent: String,
    pub from: u64,
    pub to: u64,
}

/// The replies recorded posted to `ticket` whose last POST's time is known.
pub(super) fn posted_on_ticket(
    conn: &Connection,
    ticket: u64,
) -> rusqlite::Result<Vec<PostedReply>> {
    let mut stmt = conn.prepare_cached(
        "SELECT text_hash, date_sent, last_attempt_ms, updated FROM mails \
         WHERE ticket = ?1 AND state = 'posted' AND last_attempt_ms IS NOT NULL AND text_hash != '' \
         AND new_ticket_from IS NULL",
    )?;
    let rows = stmt.query_map(params![ticket as i64], |r| {
        Ok(PostedReply {
            text_hash: r.get(0)?,
            date_sent: r.get(1)?,
            from: (r.get::<_, i64>(2)?.max(0) / 1000) as u64,
            to: r.get::<_, i64>(3)?.max(0) as u64,
        })
    })?;
    rows.collect()
}

/// UID and first-seen time of the mails of `mailbox` that are pending.
pub(super) fn pending_since(conn: &Connection, mailbox: &str) -> rusqlite::Result<Vec<(u32, u64)>> {
    let mut stmt =
        conn.prepare("SELECT uid, first_seen FROM mails WHERE state = 'pending' AND mailbox = ?1")?;
    let rows = stmt.query_map(params![mailbox], |r| {
        Ok((
            r.get::<_, i64>(0)?.clamp(0, u32::MAX as i64) as u32,
            r.get::<_, i64>(1)?.max(0) as u64,
        ))
    })?;
    rows.collect()
}

/// New tickets `sender` began (posted or not) in the last `secs` seconds with mails other
/// than `except`: a mail retried (or re-seen after a crash) is not another ticket.
pub(super) fn new_tickets_from(
    conn: &Connection,
    sender: &str,
    secs: u64,
    except: &MailId,
) -> rusqlite::Result<u32> {
    let since = unix_now().saturating_sub(secs) as i64;
    conn.query_row(
        "SELECT COUNT(*) FROM mails WHERE new_ticket_from = ?1 AND first_seen >= ?2 AND state != 'failed' \
         AND NOT (message_id = ?3 AND content = ?4)",
        params![sender, since, key(except), except.content],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n.clamp(0, u32::MAX as i64) as u32)
}

/// Whether a mail other than `id` is recorded as having opened `ticket`.
pub(super) fn ticket_opened_by_another(
    conn: &Connection,
    ticket: u64,
    id: &MailId,
) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM mails WHERE ticket = ?1 AND new_ticket_from IS NOT NULL \
         AND state = 'posted' AND NOT (message_id = ?2 AND content = ?3))",
        params![ticket as i64, key(id), id.content],
        |r| r.get(0),
    )
}

/// Mails that failed in the last `secs` seconds.
pub(super) fn failed_since(conn: &Connection, secs: u64) -> rusqlite::Result<u64> {
    let since = unix_now().saturating_sub(secs) as i64;
    conn.query_row(
        "SELECT COUNT(*) FROM mails WHERE state = 'failed' AND updated >= ?1",
        params![since],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n.max(0) as u64)
}

pub(super) fn stats(conn: &Connection) -> rusqlite::Result<Stats> {
    let mut stmt = conn.prepare("SELECT state, COUNT(*), SUM(retry) FROM mails GROUP BY state")?;
    let mut stats = Stats::default();
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, Option<i64>>(2)?,
        ))
    })?;
    for row in rows {
        let (state, count, retry) = row?;
        let count = count.max(0) as u64;
        match EntryState::parse(&state) {
            Some(EntryState::Posted) => stats.posted += count,
            Some(EntryState::Failed) => {
                stats.failed += count;
                stats.retry += retry.unwrap_or(0).max(0) as u64;
            }
            _ => stats.pending += count,
        }
    }
    Ok(stats)
}

/// Marks failed entries to be tried again (all of them with `None`); returns them.
pub(super) fn mark_retry(
    conn: &Connection,
    message_id: Option<&str>,
) -> rusqlite::Result<Vec<Entry>> {
    let (filter, arg) = match message_id {
        Some(id) => (
            "AND message_id = ?1",
            crate::mail::identity::message_id_key(id),
        ),
        None => ("AND ?1 = ?1", String::new()),
    };
    let marked = {
        let mut stmt = conn.prepare(&format!(
            "SELECT {COLUMNS} FROM mails WHERE state = 'failed' {filter}"
        ))?;
        let rows = stmt.query_map(params![arg], entry)?;
        rows.collect::<rusqlite::Result<Vec<Entry>>>()?
    };
    conn.execute(
        &format!("UPDATE mails SET retry = 1, updated = ?2 WHERE state = 'failed' {filter}"),
        params![arg, unix_now() as i64],
    )?;
    Ok(marked)
}

/// Adds a strike to the mail at `place`; returns its strikes now.
pub(super) fn strike(conn: &Connection, place: &Location, reason: &str) -> rusqlite::Result<u32> {
    conn.prepare_cached(
        "INSERT INTO poison (mailbox, uid_validity, uid, strikes, reason, updated) VALUES (?1, ?2, ?3, 1, ?4, ?5) \
         ON CONFLICT (mailbox, uid_validity, uid) DO UPDATE SET strikes = strikes + 1, reason = ?4, updated = ?5",
    )?
    .execute(params![
        place.mailbox,
        place.uid_validity as i64,
        place.uid as i64,
        reason,
        unix_now() as i64
    ])?;
    strikes(conn, place).map(|s| s.map_or(0, |(n, _)| n))
}

/// The struck mails of one folder (by UID): their strikes and the last reason.
pub(super) fn struck(
    conn: &Connection,
    mailbox: &str,
    uid_validity: u32,
) -> rusqlite::Result<HashMap<u32, (u32, String)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT uid, strikes, reason FROM poison WHERE mailbox = ?1 AND uid_validity = ?2",
    )?;
    let rows = stmt.query_map(params![mailbox, uid_validity as i64], |r| {
        Ok((
            r.get::<_, i64>(0)? as u32,
            (
                r.get::<_, i64>(1)?.clamp(0, u32::MAX as i64) as u32,
                r.get(2)?,
            ),
        ))
    })?;
    rows.collect()
}

/// The strikes of the mail at `place`, and the last reason.
fn strikes(conn: &Connection, place: &Location) -> rusqlite::Result<Option<(u32, String)>> {
    conn.prepare_cached(
        "SELECT strikes, reason FROM poison WHERE mailbox = ?1 AND uid_validity = ?2 AND uid = ?3",
    )?
    .query_row(
        params![place.mailbox, place.uid_validity as i64, place.uid as i64],
        |r| {
            Ok((
                r.get::<_, i64>(0)?.clamp(0, u32::MAX as i64) as u32,
                r.get(1)?,
            ))
        },
    )
    .optional()
}
