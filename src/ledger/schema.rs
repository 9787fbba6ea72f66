//! The ledger's tables. Plain SQL that PostgreSQL also speaks (apart from the pragmas),
//! so a shared backend for two instances can take the same statements.

use rusqlite::Connection;

/// Bumped with every change below; `PRAGMA user_version` holds the one on disk.
pub(super) const VERSION: i64 = 4;

const V1: &str = "
CREATE TABLE IF NOT EXISTS mails (
    message_id      TEXT    NOT NULL,  -- '<id>', or '' when the mail has none
    content         TEXT    NOT NULL,  -- MailId.content; '' for entries migrated from 0.1
    legacy          TEXT,              -- 0.1's key of a mail without Message-ID
    state           TEXT    NOT NULL,  -- pending | posted | failed
    ticket          INTEGER NOT NULL,
    body_hash       TEXT    NOT NULL,
    text_hash       TEXT    NOT NULL,
    date_sent       TEXT    NOT NULL,
    attempts        INTEGER NOT NULL,
    first_seen      INTEGER NOT NULL,
    last_attempt_ms INTEGER,
    updated         INTEGER NOT NULL,
    outcome_unknown INTEGER NOT NULL,
    unknown_since   INTEGER,
    mailbox         TEXT    NOT NULL,
    folder          TEXT    NOT NULL,
    uid_validity    INTEGER NOT NULL,
    uid             INTEGER NOT NULL,
    reason          TEXT,
    retry           INTEGER NOT NULL DEFAULT 0,
    -- a new ticket's sender (NULL for a reply): per_sender_per_hour counts these
    new_ticket_from TEXT,
    PRIMARY KEY (message_id, content)
);
CREATE INDEX IF NOT EXISTS mails_new_tickets ON mails (new_ticket_from, first_seen) WHERE new_ticket_from IS NOT NULL;
CREATE INDEX IF NOT EXISTS mails_posted_by_ticket ON mails (ticket, text_hash) WHERE state = 'posted';
CREATE INDEX IF NOT EXISTS mails_by_state ON mails (state);
CREATE INDEX IF NOT EXISTS mails_by_legacy ON mails (legacy) WHERE legacy IS NOT NULL;
";

/// Mails that crashed or hung the reader, by where they sit: two strikes and the
/// mail is quarantined to `on_failed` instead of being read again.
const V2: &str = "
CREATE TABLE IF NOT EXISTS poison (
    mailbox      TEXT    NOT NULL,
    uid_validity INTEGER NOT NULL,
    uid          INTEGER NOT NULL,
    strikes      INTEGER NOT NULL,
    reason       TEXT    NOT NULL,
    updated      INTEGER NOT NULL,
    PRIMARY KEY (mailbox, uid_validity, uid)
);
";

/// What tickets showed of replies the bridge posted, from which the API's clock is
/// learned (`thulium::api_clock`): the newest few are kept.
const V3: &str = "
CREATE TABLE IF NOT EXISTS api_clock (
    ticket      INTEGER NOT NULL,
    created_at  TEXT    NOT NULL,
    date_sent   TEXT    NOT NULL,
    posted_from INTEGER NOT NULL,  -- unix seconds: the POST began
    posted_to   INTEGER NOT NULL,  -- unix seconds: its answer came
    seen        INTEGER NOT NULL,
    PRIMARY KEY (ticket, created_at, date_sent)
);
";

/// The latest decision about each mail, for `ledger list` (`ledger/decisions.rs`): a
/// short row, no body; swept after `state.keep_decisions`. A mail not read (too big,
/// unreadable) is keyed by its place: `message_id` '', `content` 'place:...'.
const V4: &str = "
CREATE TABLE IF NOT EXISTS decisions (
    message_id   TEXT    NOT NULL,  -- '<id>', or '' when the mail has none
    content      TEXT    NOT NULL,  -- MailId.content, or 'place:mailbox/folder/uidvalidity/uid'
    decided      INTEGER NOT NULL,  -- unix seconds
    mailbox      TEXT    NOT NULL,
    folder       TEXT    NOT NULL,  -- where the mail was read from
    uid_validity INTEGER NOT NULL,
    uid          INTEGER NOT NULL,
    sender       TEXT,
    subject      TEXT    NOT NULL,
    ticket       INTEGER,
    outcome      TEXT    NOT NULL,  -- as in thulium_bridge_mails_total{outcome}
    reason       TEXT    NOT NULL,
    PRIMARY KEY (message_id, content)
);
CREATE INDEX IF NOT EXISTS decisions_by_time ON decisions (decided);
";

/// WAL: readers (`ledger show` while the daemon runs) never wait for the writer;
/// synchronous = FULL: a commit is on disk when it returns (one fsync per group).
pub(super) fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

/// Why the tables could not be made ready.
#[derive(Debug, thiserror::Error)]
pub(super) enum SchemaError {
    #[error(
        "it was written by a newer thulium-mail-bridge (schema {on_disk}, this one knows {VERSION}); upgrade, or restore the backup made before"
    )]
    Newer { on_disk: i64 },
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Creates or upgrades the tables; refuses a ledger written by a newer version.
pub(super) fn create(conn: &Connection) -> Result<(), SchemaError> {
    let on_disk: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if on_disk > VERSION {
        return Err(SchemaError::Newer { on_disk });
    }
    if on_disk < VERSION {
        // Every step is idempotent (IF NOT EXISTS): an older file gets what it lacks.
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE;{V1}{V2}{V3}{V4}PRAGMA user_version = {VERSION};COMMIT;"
        ))?;
    }
    Ok(())
}
