//! The ledger's tables, one numbered list of steps for both backends: plain SQL that
//! SQLite and PostgreSQL both speak (BIGINT is SQLite's BIGINT). Where a table is read
//! in insertion order, PostgreSQL gets the `rowid` SQLite has by itself.

use super::sql::{Sql, SqlError};

/// Bumped with every step below; the backend keeps the one applied
/// ([`Sql::schema_version`]).
pub(crate) const VERSION: i64 = 6;

const V1: &str = "
CREATE TABLE IF NOT EXISTS mails (
    message_id      TEXT    NOT NULL,  -- '<id>', or '' when the mail has none
    content         TEXT    NOT NULL,  -- MailId.content; '' for entries migrated from 0.1
    legacy          TEXT,              -- 0.1's key of a mail without Message-ID
    state           TEXT    NOT NULL,  -- pending | posted | failed
    ticket          BIGINT NOT NULL,
    body_hash       TEXT    NOT NULL,
    text_hash       TEXT    NOT NULL,
    date_sent       TEXT    NOT NULL,
    attempts        BIGINT NOT NULL,
    first_seen      BIGINT NOT NULL,
    last_attempt_ms BIGINT,
    updated         BIGINT NOT NULL,
    outcome_unknown BIGINT NOT NULL,
    unknown_since   BIGINT,
    mailbox         TEXT    NOT NULL,
    folder          TEXT    NOT NULL,
    uid_validity    BIGINT NOT NULL,
    uid             BIGINT NOT NULL,
    reason          TEXT,
    retry           BIGINT NOT NULL DEFAULT 0,
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
    uid_validity BIGINT NOT NULL,
    uid          BIGINT NOT NULL,
    strikes      BIGINT NOT NULL,
    reason       TEXT    NOT NULL,
    updated      BIGINT NOT NULL,
    PRIMARY KEY (mailbox, uid_validity, uid)
);
";

/// What tickets showed of replies the bridge posted, from which the API's clock is
/// learned (`thulium::api_clock`): the newest few are kept.
const V3: &str = "
CREATE TABLE IF NOT EXISTS api_clock ({rowid}
    ticket      BIGINT NOT NULL,
    created_at  TEXT    NOT NULL,
    date_sent   TEXT    NOT NULL,
    posted_from BIGINT NOT NULL,  -- unix seconds: the POST began
    posted_to   BIGINT NOT NULL,  -- unix seconds: its answer came
    seen        BIGINT NOT NULL,
    PRIMARY KEY (ticket, created_at, date_sent)
);
";

/// The latest decision about each mail, for `ledger list` (`ledger/decisions.rs`): a
/// short row, no body; swept after `state.keep_decisions`. A mail not read (too big,
/// unreadable) is keyed by its place: `message_id` '', `content` 'place:...'.
const V4: &str = "
CREATE TABLE IF NOT EXISTS decisions ({rowid}
    message_id   TEXT    NOT NULL,  -- '<id>', or '' when the mail has none
    content      TEXT    NOT NULL,  -- MailId.content, or 'place:mailbox/folder/uidvalidity/uid'
    decided      BIGINT NOT NULL,  -- unix seconds
    mailbox      TEXT    NOT NULL,
    folder       TEXT    NOT NULL,  -- where the mail was read from
    uid_validity BIGINT NOT NULL,
    uid          BIGINT NOT NULL,
    sender       TEXT,
    subject      TEXT    NOT NULL,
    ticket       BIGINT,
    outcome      TEXT    NOT NULL,  -- as in thulium_bridge_mails_total{outcome}
    reason       TEXT    NOT NULL,
    PRIMARY KEY (message_id, content)
);
CREATE INDEX IF NOT EXISTS decisions_by_time ON decisions (decided);
";

/// Who leads which mailbox when instances share a ledger (`ledger/leases.rs`): the
/// holder, its epoch (the fencing token every write for the mailbox is checked
/// against) and until when (the database's clock, unix ms). `instances` says who is up,
/// so that mailboxes are spread evenly.
const V5: &str = "
CREATE TABLE IF NOT EXISTS leases (
    mailbox    TEXT   NOT NULL PRIMARY KEY,
    holder     TEXT   NOT NULL,
    epoch      BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    since_ms   BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (
    instance   TEXT   NOT NULL PRIMARY KEY,
    seen_ms    BIGINT NOT NULL
);
";

/// Which host a mail stopped while it was read (a crash): with a shared ledger, another
/// host does not read it again (`daemon/poison.rs`). Runs once: with the step's number.
const V6: &str = "
ALTER TABLE poison ADD COLUMN killed_on TEXT;
";

/// Why the tables could not be made ready.
#[derive(Debug, thiserror::Error)]
pub(super) enum SchemaError {
    #[error(
        "it was written by a newer thulium-mail-bridge (schema {on_disk}, this one knows {VERSION}); upgrade, or restore the backup made before"
    )]
    Newer { on_disk: i64 },
    #[error("{0}")]
    Sql(#[from] SqlError),
}

/// Creates or upgrades the tables; refuses a ledger written by a newer version.
pub(super) fn create(conn: &mut dyn Sql) -> Result<(), SchemaError> {
    let on_disk = conn.schema_version()?;
    if on_disk > VERSION {
        return Err(SchemaError::Newer { on_disk });
    }
    if on_disk < VERSION {
        // Every step is idempotent (IF NOT EXISTS): an older ledger gets what it lacks.
        let mut steps = format!("{V1}{V2}{V3}{V4}{V5}").replace("{rowid}", conn.rowid_column());
        // The steps after 5 are not idempotent: each runs when the ledger predates it.
        if on_disk < 6 {
            steps.push_str(V6);
        }
        let on_disk = conn.migrate(&steps, VERSION)?;
        if on_disk > VERSION {
            return Err(SchemaError::Newer { on_disk });
        }
    }
    Ok(())
}
