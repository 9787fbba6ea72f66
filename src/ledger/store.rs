//! The ledger's statements, each on a connection the caller holds (the writer's inside
//! its grouped transaction, or the read connection). The rules of exactly-once live in
//! [`begin`] and [`finish`].

use super::entry::{Entry, EntryState, Finish, Location, Stats, unix_now};
use super::sql::{ROWS_A_STATEMENT, Row, Sql, SqlResult, Value, params};
use crate::mail::MailId;
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

pub(super) const COLUMNS: &str = "message_id, content, legacy, state, ticket, body_hash, text_hash, date_sent, \
     attempts, first_seen, last_attempt_ms, updated, outcome_unknown, unknown_since, mailbox, \
     folder, uid_validity, uid, reason, retry";

pub(super) fn entry(row: &Row) -> SqlResult<Entry> {
    let message_id = row.text(0)?;
    let state = row.text(3)?;
    Ok(Entry {
        id: MailId {
            message_id: (!message_id.is_empty()).then_some(message_id),
            content: row.text(1)?,
            legacy: row.opt_text(2)?,
        },
        // An unknown state (a newer writer) is read as pending: never posted blindly.
        state: EntryState::parse(&state).unwrap_or(EntryState::Pending),
        ticket: row.u64(4)?,
        body_hash: row.text(5)?,
        text_hash: row.text(6)?,
        date: row.text(7)?,
        attempts: row.u32(8)?,
        first_seen: row.u64(9)?,
        last_attempt_ms: row.opt_int(10)?.map(|v| v.max(0) as u64),
        updated: row.u64(11)?,
        outcome_unknown: row.bool(12)?,
        unknown_since: row.opt_int(13)?.map(|v| v.max(0) as u64),
        location: location_at(row, 14)?,
        reason: row.opt_text(18)?,
        retry: row.bool(19)?,
    })
}

fn entries_of(rows: Vec<Row>) -> SqlResult<Vec<Entry>> {
    rows.iter().map(entry).collect()
}

/// The four columns of a mail's place (mailbox, folder, UIDVALIDITY, UID) from `first` on.
pub(super) fn location_at(row: &Row, first: usize) -> SqlResult<Location> {
    Ok(Location {
        mailbox: row.text(first)?,
        folder: row.text(first + 1)?,
        uid_validity: row.u32(first + 2)?,
        uid: row.u32(first + 3)?,
    })
}

pub(super) fn key(id: &MailId) -> &str {
    id.message_id.as_deref().unwrap_or("")
}

/// The entry of a mail. An entry migrated from 0.1 (keyed by Message-ID alone, or by
/// the hash of the raw mail) is adopted by the first mail that matches it.
pub(super) fn find(conn: &mut dyn Sql, id: &MailId) -> SqlResult<Option<Entry>> {
    let found = find_many(conn, std::slice::from_ref(id))?;
    Ok(found.into_iter().next().flatten().map(|(e, _)| e))
}

/// A stored entry, read as the entry of the mail asked for, and the key it is stored
/// under (a legacy one until it is written anew).
pub(super) type Stored = (Entry, (String, String));

/// [`find`] for several mails in one query per [`ROWS_A_STATEMENT`], each with the key
/// its entry is stored under. The full identity wins over the 0.1 one.
pub(super) fn find_many(conn: &mut dyn Sql, ids: &[MailId]) -> SqlResult<Vec<Option<Stored>>> {
    let mut found = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(ROWS_A_STATEMENT) {
        let mut keys: Vec<(String, String)> = Vec::with_capacity(2 * chunk.len());
        for id in chunk {
            keys.push((key(id).to_string(), id.content.clone()));
            keys.extend(legacy_key(id));
        }
        let slots: Vec<String> = (0..keys.len())
            .map(|i| format!("(?{}, ?{})", 2 * i + 1, 2 * i + 2))
            .collect();
        let params: Vec<Value> = keys
            .iter()
            .flat_map(|(m, c)| [Value::from(m), Value::from(c)])
            .collect();
        let rows = entries_of(conn.query(
            &format!(
                "SELECT {COLUMNS} FROM mails WHERE (message_id, content) IN (VALUES {})",
                slots.join(", ")
            ),
            &params,
        )?)?;
        let stored_as = |e: &Entry, k: &(String, String)| key(&e.id) == k.0 && e.id.content == k.1;
        for id in chunk {
            let exact = (key(id).to_string(), id.content.clone());
            let hit = match rows.iter().find(|e| stored_as(e, &exact)) {
                Some(e) => Some((e.clone(), exact)),
                None => legacy_key(id).and_then(|k| {
                    let e = rows.iter().find(|e| stored_as(e, &k))?;
                    Some((
                        Entry {
                            id: id.clone(),
                            ..e.clone()
                        },
                        k,
                    ))
                }),
            };
            found.push(hit);
        }
    }
    Ok(found)
}

/// The key 0.1 stored a mail under: its Message-ID alone, or the hash of the raw mail.
fn legacy_key(id: &MailId) -> Option<(String, String)> {
    match (&id.message_id, &id.legacy) {
        (Some(mid), _) => Some((mid.clone(), String::new())),
        (None, Some(raw_key)) => Some((String::new(), raw_key.clone())),
        (None, None) => None,
    }
}

/// Fences the write that changed `rows` (their `mailbox`): refused, it is rolled back
/// with its savepoint.
fn fence_rows(conn: &mut dyn Sql, rows: &[Row]) -> SqlResult<()> {
    rows.iter().try_for_each(|r| conn.fence(&r.text(0)?))
}

/// Records how mails ended in a pass: the posted ones (nearly all) a few statements
/// for the lot, each round trip counting on a shared ledger; the others one by one.
pub(super) fn finish_all(conn: &mut dyn Sql, finished: &[Finish]) -> SqlResult<()> {
    let posted: Vec<(&MailId, u64)> = finished
        .iter()
        .filter_map(|f| match f {
            Finish::Posted { id, ticket } => Some((id, *ticket)),
            _ => None,
        })
        .collect();
    for chunk in posted.chunks(ROWS_A_STATEMENT) {
        finish_posted(conn, chunk)?;
    }
    finished
        .iter()
        .filter(|f| !matches!(f, Finish::Posted { .. }))
        .try_for_each(|f| finish(conn, f))
}

/// Marks mails posted in one statement; one without a pending entry is recorded anyway.
fn finish_posted(conn: &mut dyn Sql, posted: &[(&MailId, u64)]) -> SqlResult<()> {
    let now = unix_now();
    let values: Vec<String> = (0..posted.len())
        .map(|i| {
            format!(
                "(?{}, ?{}, CAST(?{} AS BIGINT))",
                3 * i + 2,
                3 * i + 3,
                3 * i + 4
            )
        })
        .collect();
    let mut params = vec![Value::from(now)];
    for (id, ticket) in posted {
        params.extend([
            Value::from(key(id)),
            Value::from(&id.content),
            Value::from(*ticket),
        ]);
    }
    let changed = conn.query(
        &format!(
            "UPDATE mails SET state = 'posted', ticket = v.column3, outcome_unknown = 0, reason = NULL, updated = ?1 \
             FROM (VALUES {}) AS v WHERE mails.message_id = v.column1 AND mails.content = v.column2 \
             RETURNING mails.mailbox, mails.message_id, mails.content",
            values.join(", ")
        ),
        &params,
    )?;
    fence_rows(conn, &changed)?;
    for (id, ticket) in posted {
        let found = changed.iter().any(|r| {
            r.text(1).is_ok_and(|m| m == key(id)) && r.text(2).is_ok_and(|c| c == id.content)
        });
        if !found {
            // That it was posted is what must not be lost.
            tracing::warn!(mail = %id, ticket, "posted without a pending ledger entry");
            conn.execute(
                &format!(
                    "INSERT INTO mails ({COLUMNS}) VALUES (?1, ?2, ?3, 'posted', ?4, '', '', '', 0, ?5, NULL, ?5, 0, NULL, '', '', 0, 0, NULL, 0)"
                ),
                params![key(id), &id.content, id.legacy.as_deref(), *ticket, now],
            )?;
        }
    }
    Ok(())
}

/// Records how a mail ended in a pass. A posted mail is never turned back. Each write
/// is fenced by the mailbox of the row it changed (one statement, not a look-up first).
pub(super) fn finish(conn: &mut dyn Sql, f: &Finish) -> SqlResult<()> {
    let now = unix_now();
    match f {
        Finish::Posted { id, ticket } => finish_posted(conn, &[(id, *ticket)])?,
        Finish::Failed {
            id,
            reason,
            outcome_unknown,
            location,
        } => {
            conn.fence(&location.mailbox)?;
            conn.execute(
                "UPDATE mails SET state = 'failed', reason = ?3, outcome_unknown = ?4, mailbox = ?5, folder = ?6, \
                 uid_validity = ?7, uid = ?8, retry = 0, updated = ?9 \
                 WHERE message_id = ?1 AND content = ?2 AND state != 'posted'",
                params![
                    key(id),
                    &id.content,
                    reason,
                    *outcome_unknown,
                    &location.mailbox,
                    &location.folder,
                    location.uid_validity,
                    location.uid,
                    now
                ],
            )?;
        }
        Finish::Deferred {
            id,
            counted,
            outcome_unknown,
        } => {
            let changed = conn.query(
                "UPDATE mails SET attempts = attempts + ?3, outcome_unknown = ?4, updated = ?5 \
                 WHERE message_id = ?1 AND content = ?2 AND state = 'pending' RETURNING mailbox",
                params![key(id), &id.content, *counted, *outcome_unknown, now],
            )?;
            fence_rows(conn, &changed)?;
        }
        Finish::Released {
            id,
            outcome_unknown,
        } => {
            let deleted = conn.query(
                "DELETE FROM mails WHERE message_id = ?1 AND content = ?2 AND state = 'pending' \
                 AND attempts = 0 AND ?3 = 0 RETURNING mailbox",
                params![key(id), &id.content, *outcome_unknown],
            )?;
            fence_rows(conn, &deleted)?;
            let changed = conn.query(
                "UPDATE mails SET outcome_unknown = ?3, updated = ?4 \
                 WHERE message_id = ?1 AND content = ?2 AND state = 'pending' RETURNING mailbox",
                params![key(id), &id.content, *outcome_unknown, now],
            )?;
            fence_rows(conn, &changed)?;
        }
    }
    Ok(())
}

/// Every entry of a Message-ID (a reused one has several), or of a content hash prefix.
pub(super) fn entries(conn: &mut dyn Sql, message_id_or_hash: &str) -> SqlResult<Vec<Entry>> {
    let (sql, arg) = match message_id_or_hash.strip_prefix("sha256:") {
        Some(hex) => (
            format!(
                "SELECT {COLUMNS} FROM mails WHERE content LIKE CAST(?1 AS TEXT) || '%' \
                 OR legacy = 'sha256:' || CAST(?1 AS TEXT) ORDER BY first_seen"
            ),
            hex.to_ascii_lowercase(),
        ),
        None => (
            format!("SELECT {COLUMNS} FROM mails WHERE message_id = ?1 ORDER BY first_seen"),
            crate::mail::identity::message_id_key(message_id_or_hash),
        ),
    };
    entries_of(conn.query(&sql, params![arg])?)
}

/// The tickets posted mails with this Message-ID went to (`match.use_references`).
pub(super) fn tickets_for_message_id(conn: &mut dyn Sql, message_id: &str) -> SqlResult<Vec<u64>> {
    conn.query(
        "SELECT DISTINCT ticket FROM mails WHERE message_id = ?1 AND state = 'posted' ORDER BY ticket",
        params![message_id],
    )?
    .iter()
    .map(|r| r.u64(0))
    .collect()
}

/// Posted mails other than `id` whose text on `ticket` is the same: the helpdesk
/// messages they account for are not this mail's.
pub(super) fn posted_with_same_text(
    conn: &mut dyn Sql,
    ticket: u64,
    text_hash: &str,
    id: &MailId,
) -> SqlResult<Vec<(String, u64, u64)>> {
    conn.query(
        "SELECT date_sent, first_seen, updated FROM mails WHERE ticket = ?1 AND text_hash = ?2 \
         AND state = 'posted' AND NOT (message_id = ?3 AND content = ?4)",
        params![ticket, text_hash, key(id), &id.content],
    )?
    .iter()
    .map(|r| Ok((r.text(0)?, r.u64(1)?, r.u64(2)?)))
    .collect()
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
pub(super) fn posted_on_ticket(conn: &mut dyn Sql, ticket: u64) -> SqlResult<Vec<PostedReply>> {
    conn.query(
        "SELECT text_hash, date_sent, last_attempt_ms, updated FROM mails \
         WHERE ticket = ?1 AND state = 'posted' AND last_attempt_ms IS NOT NULL AND text_hash != '' \
         AND new_ticket_from IS NULL",
        params![ticket],
    )?
    .iter()
    .map(|r| {
        Ok(PostedReply {
            text_hash: r.text(0)?,
            date_sent: r.text(1)?,
            from: r.u64(2)? / 1000,
            to: r.u64(3)?,
        })
    })
    .collect()
}

/// UID and first-seen time of the mails of `mailbox` that are pending.
pub(super) fn pending_since(conn: &mut dyn Sql, mailbox: &str) -> SqlResult<Vec<(u32, u64)>> {
    conn.query(
        "SELECT uid, first_seen FROM mails WHERE state = 'pending' AND mailbox = ?1",
        params![mailbox],
    )?
    .iter()
    .map(|r| Ok((r.u32(0)?, r.u64(1)?)))
    .collect()
}

/// New tickets `sender` began (posted or not) in the last `secs` seconds with mails other
/// than `except`: a mail retried (or re-seen after a crash) is not another ticket.
pub(super) fn new_tickets_from(
    conn: &mut dyn Sql,
    sender: &str,
    secs: u64,
    except: &MailId,
) -> SqlResult<u32> {
    let since = unix_now().saturating_sub(secs);
    let n = conn.query_int(
        "SELECT COUNT(*) FROM mails WHERE new_ticket_from = ?1 AND first_seen >= ?2 AND state != 'failed' \
         AND NOT (message_id = ?3 AND content = ?4)",
        params![sender, since, key(except), &except.content],
    )?;
    Ok(n.clamp(0, i64::from(u32::MAX)) as u32)
}

/// Whether a mail other than `id` is recorded as having opened `ticket`.
pub(super) fn ticket_opened_by_another(
    conn: &mut dyn Sql,
    ticket: u64,
    id: &MailId,
) -> SqlResult<bool> {
    let n = conn.query_int(
        "SELECT COUNT(*) FROM mails WHERE ticket = ?1 AND new_ticket_from IS NOT NULL \
         AND state = 'posted' AND NOT (message_id = ?2 AND content = ?3)",
        params![ticket, key(id), &id.content],
    )?;
    Ok(n > 0)
}

/// Mails that failed in the last `secs` seconds.
pub(super) fn failed_since(conn: &mut dyn Sql, secs: u64) -> SqlResult<u64> {
    let since = unix_now().saturating_sub(secs);
    let n = conn.query_int(
        "SELECT COUNT(*) FROM mails WHERE state = 'failed' AND updated >= ?1",
        params![since],
    )?;
    Ok(n.max(0) as u64)
}

pub(super) fn stats(conn: &mut dyn Sql) -> SqlResult<Stats> {
    let rows = conn.query(
        "SELECT state, COUNT(*), CAST(SUM(retry) AS BIGINT) FROM mails GROUP BY state",
        &[],
    )?;
    let mut stats = Stats::default();
    for row in rows {
        let count = row.u64(1)?;
        match EntryState::parse(&row.text(0)?) {
            Some(EntryState::Posted) => stats.posted += count,
            Some(EntryState::Failed) => {
                stats.failed += count;
                stats.retry += row.opt_int(2)?.unwrap_or(0).max(0) as u64;
            }
            _ => stats.pending += count,
        }
    }
    Ok(stats)
}

/// Marks failed entries to be tried again (all of them with `None`); returns them.
pub(super) fn mark_retry(conn: &mut dyn Sql, message_id: Option<&str>) -> SqlResult<Vec<Entry>> {
    let now = unix_now();
    let select = format!("SELECT {COLUMNS} FROM mails WHERE state = 'failed'");
    let update = "UPDATE mails SET retry = 1, updated = ?1 WHERE state = 'failed'";
    match message_id {
        Some(id) => {
            let id = crate::mail::identity::message_id_key(id);
            let marked =
                entries_of(conn.query(&format!("{select} AND message_id = ?1"), params![&id])?)?;
            conn.execute(&format!("{update} AND message_id = ?2"), params![now, &id])?;
            Ok(marked)
        }
        None => {
            let marked = entries_of(conn.query(&select, &[])?)?;
            conn.execute(update, params![now])?;
            Ok(marked)
        }
    }
}

/// A mail's strikes: how many, the last reason, and the host it last stopped (a crash
/// while it was read), if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Strikes {
    pub count: u32,
    pub reason: String,
    pub killed_on: Option<String>,
}

/// Adds a strike to the mail at `place` (`killed_on`: the host it stopped); returns its
/// strikes now. A mail that overran the reading budget is struck by the mailbox's leader
/// (fenced); one a dead process was reading is struck at the next start, before that
/// process leads anything (not fenced: a fact about the past, which must reach the
/// ledger before another host reads the mail).
pub(super) fn strike(
    conn: &mut dyn Sql,
    place: &Location,
    reason: &str,
    killed_on: Option<&str>,
) -> SqlResult<u32> {
    if killed_on.is_none() {
        conn.fence(&place.mailbox)?;
    }
    conn.execute(
        "INSERT INTO poison (mailbox, uid_validity, uid, strikes, reason, updated, killed_on) VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6) \
         ON CONFLICT (mailbox, uid_validity, uid) DO UPDATE SET strikes = poison.strikes + 1, reason = ?4, updated = ?5, \
         killed_on = COALESCE(?6, poison.killed_on)",
        params![&place.mailbox, place.uid_validity, place.uid, reason, unix_now(), killed_on],
    )?;
    strikes(conn, place).map(|s| s.map_or(0, |(n, _)| n))
}

/// The struck mails of one folder (by UID): their strikes and the last reason.
pub(super) fn struck(
    conn: &mut dyn Sql,
    mailbox: &str,
    uid_validity: u32,
) -> SqlResult<HashMap<u32, Strikes>> {
    conn.query(
        "SELECT uid, strikes, reason, killed_on FROM poison WHERE mailbox = ?1 AND uid_validity = ?2",
        params![mailbox, uid_validity],
    )?
    .iter()
    .map(|r| {
        let strikes = Strikes {
            count: r.u32(1)?,
            reason: r.text(2)?,
            killed_on: r.opt_text(3)?,
        };
        Ok((r.u32(0)?, strikes))
    })
    .collect()
}

/// The strikes of the mail at `place`, and the last reason.
fn strikes(conn: &mut dyn Sql, place: &Location) -> SqlResult<Option<(u32, String)>> {
    conn.query_row(
        "SELECT strikes, reason FROM poison WHERE mailbox = ?1 AND uid_validity = ?2 AND uid = ?3",
        params![&place.mailbox, place.uid_validity, place.uid],
    )?
    .map(|r| Ok((r.u32(0)?, r.text(1)?)))
    .transpose()
}
