//! Direct access to a Dovecot Maildir++ tree: seeding mail and reading it back.
//!
//! Writing files is how an MTA delivers, so Dovecot picks them up like any
//! delivery (inotify wakes IDLE), and it is fast enough for thousands of
//! mails. Files must belong to the `dovecot` user the IMAP processes run as.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::chown;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};

/// Maildir letters of the IMAP system flags (the `:2,` info suffix).
const SYSTEM_FLAGS: [(&str, char); 5] = [
    ("\\Draft", 'D'),
    ("\\Flagged", 'F'),
    ("\\Answered", 'R'),
    ("\\Seen", 'S'),
    ("\\Deleted", 'T'),
];

/// Dovecot's keyword file; line `N name` gives keyword `name` the letter `a`+N.
const KEYWORDS_FILE: &str = "dovecot-keywords";

/// Owner of everything written into the tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    /// The `dovecot` user from /etc/passwd: Dovecot's mail processes run as it.
    pub fn dovecot() -> Result<Owner> {
        Owner::system_user("dovecot")
            .context("no `dovecot` user in /etc/passwd (is dovecot-imapd installed?)")
    }

    /// A user's uid and primary gid from /etc/passwd.
    pub fn system_user(name: &str) -> Result<Owner> {
        let passwd = fs::read_to_string("/etc/passwd").context("read /etc/passwd")?;
        for line in passwd.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.len() >= 4 && fields[0] == name {
                let uid = fields[2].parse().with_context(|| format!("{name} uid"))?;
                let gid = fields[3].parse().with_context(|| format!("{name} gid"))?;
                return Ok(Owner { uid, gid });
            }
        }
        bail!("no `{name}` user in /etc/passwd")
    }
}

/// One mail file as found on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MaildirMail {
    /// The IMAP UID, once Dovecot has seen the file (from `dovecot-uidlist`).
    pub uid: Option<u32>,
    /// File name, including any `:2,FLAGS` suffix.
    pub file_name: String,
    /// IMAP flags: `\Seen`-style system flags and keywords.
    pub flags: Vec<String>,
    /// The raw message.
    pub raw: Vec<u8>,
}

impl MaildirMail {
    /// Whether the mail carries `flag` (case-insensitive, as in IMAP).
    pub fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
    }

    /// The value of the first header `name` (unfolded, not MIME-decoded).
    pub fn header(&self, name: &str) -> Option<String> {
        crate::headers::header_value(&self.raw, name)
    }

    /// The `Subject` header, raw.
    pub fn subject(&self) -> Option<String> {
        self.header("Subject")
    }
}

/// A user's Maildir++ root (`INBOX`); other folders are `.Name` below it.
#[derive(Clone, Debug)]
pub struct Maildir {
    root: PathBuf,
    owner: Owner,
}

impl Maildir {
    /// A maildir at `root` whose files belong to `owner`. Nothing is created yet.
    pub fn new(root: impl Into<PathBuf>, owner: Owner) -> Maildir {
        Maildir {
            root: root.into(),
            owner,
        }
    }

    /// The INBOX directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory of `folder`: INBOX is the root, others are `.Folder` (Maildir++).
    pub fn folder_dir(&self, folder: &str) -> PathBuf {
        if folder.eq_ignore_ascii_case("INBOX") {
            self.root.clone()
        } else {
            self.root.join(format!(".{folder}"))
        }
    }

    /// Creates `folder` (with cur/new/tmp) if missing, owned by the mail user.
    pub fn create_folder(&self, folder: &str) -> Result<()> {
        if folder.is_empty() || folder.contains('/') || folder.starts_with('.') {
            bail!("bad folder name {folder:?}");
        }
        let dir = self.folder_dir(folder);
        mkdir_owned(&dir, self.owner)?;
        for sub in ["cur", "new", "tmp"] {
            mkdir_owned(&dir.join(sub), self.owner)?;
        }
        if dir != self.root {
            let marker = dir.join("maildirfolder");
            if !marker.exists() {
                fs::write(&marker, b"").with_context(|| format!("write {}", marker.display()))?;
                chown_to(&marker, self.owner)?;
            }
        }
        Ok(())
    }

    /// Folder names as IMAP shows them: `INBOX` first, then the `.Name`
    /// directories (modified UTF-7, `.` as hierarchy separator), sorted.
    pub fn list_folders(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        if self.root.join("cur").is_dir() {
            names.push("INBOX".to_string());
        }
        let entries = match fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(e).context(format!("list {}", self.root.display())),
        };
        let mut others = Vec::new();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(folder) = name.strip_prefix('.')
                && !folder.is_empty()
                && folder != "."
                && entry.path().join("cur").is_dir()
            {
                others.push(folder.to_string());
            }
        }
        others.sort();
        names.extend(others);
        Ok(names)
    }

    /// Delivers one mail into `folder` (created if missing): into `new/`
    /// without flags, else into `cur/` with a `:2,` suffix. Returns the file name.
    ///
    /// Its INTERNALDATE (the file's mtime, for Dovecot's maildir) is the mail's
    /// `Date` header when that reads as RFC 5322, as if delivered the moment it
    /// was sent, else now: a fixed Date in a test then never drifts a month away
    /// from INTERNALDATE as the calendar moves on.
    pub fn append(&self, folder: &str, raw: &[u8], flags: &[&str]) -> Result<String> {
        self.create_folder(folder)?;
        let letters = self.flag_letters(folder, flags)?;
        self.write_mail(&self.folder_dir(folder), raw, &letters, sent_at(raw))
    }

    /// [`append`](Self::append) with this INTERNALDATE, whatever the mail says.
    pub fn append_received(
        &self,
        folder: &str,
        raw: &[u8],
        flags: &[&str],
        received: SystemTime,
    ) -> Result<String> {
        self.create_folder(folder)?;
        let letters = self.flag_letters(folder, flags)?;
        self.write_mail(&self.folder_dir(folder), raw, &letters, Some(received))
    }

    /// Delivers many mails with the same flags; returns how many were written.
    pub fn append_many<I, M>(&self, folder: &str, mails: I, flags: &[&str]) -> Result<usize>
    where
        I: IntoIterator<Item = M>,
        M: AsRef<[u8]>,
    {
        self.create_folder(folder)?;
        let letters = self.flag_letters(folder, flags)?;
        let dir = self.folder_dir(folder);
        let mut count = 0;
        for raw in mails {
            let raw = raw.as_ref();
            self.write_mail(&dir, raw, &letters, sent_at(raw))?;
            count += 1;
        }
        Ok(count)
    }

    /// Every mail of `folder` (new/ and cur/), by UID, unseen files last.
    pub fn folder_mails(&self, folder: &str) -> Result<Vec<MaildirMail>> {
        let dir = self.folder_dir(folder);
        let uids = read_uidlist(&dir);
        let keywords = read_keywords(&dir);
        let mut mails = Vec::new();
        for sub in ["new", "cur"] {
            let entries = match fs::read_dir(dir.join(sub)) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e).context(format!("list {}/{sub}", dir.display())),
            };
            for entry in entries {
                let entry = entry?;
                let file_name = entry.file_name().to_string_lossy().into_owned();
                // A file can be renamed or expunged by Dovecot while we list.
                let Ok(raw) = fs::read(entry.path()) else {
                    continue;
                };
                let (base, info) = match file_name.split_once(":2,") {
                    Some((base, info)) => (base, info),
                    None => (file_name.as_str(), ""),
                };
                let flags = info
                    .chars()
                    .filter_map(|c| letter_to_flag(c, &keywords))
                    .collect();
                mails.push(MaildirMail {
                    uid: uids.get(base).copied(),
                    file_name,
                    flags,
                    raw,
                });
            }
        }
        mails.sort_by(|a, b| {
            (a.uid.is_none(), a.uid, &a.file_name).cmp(&(b.uid.is_none(), b.uid, &b.file_name))
        });
        Ok(mails)
    }

    /// Writes into tmp/ and renames, so Dovecot never sees half a mail;
    /// `received` becomes the file's mtime (Dovecot's INTERNALDATE).
    fn write_mail(
        &self,
        dir: &Path,
        raw: &[u8],
        letters: &str,
        received: Option<SystemTime>,
    ) -> Result<String> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let base = format!(
            "{}.M{}P{}Q{}.testbed,S={}",
            now.as_secs(),
            now.subsec_micros(),
            std::process::id(),
            n,
            raw.len()
        );
        let tmp = dir.join("tmp").join(&base);
        {
            let mut file =
                fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
            file.write_all(raw)?;
            if let Some(received) = received {
                file.set_modified(received)
                    .with_context(|| format!("set the mtime of {}", tmp.display()))?;
            }
        }
        chown_to(&tmp, self.owner)?;
        let (sub, name) = if letters.is_empty() {
            ("new", base)
        } else {
            ("cur", format!("{base}:2,{letters}"))
        };
        let dest = dir.join(sub).join(&name);
        fs::rename(&tmp, &dest).with_context(|| format!("rename to {}", dest.display()))?;
        Ok(name)
    }

    /// Maildir info letters for `flags`, adding unknown keywords to the
    /// folder's `dovecot-keywords` (at most 26, Maildir's limit).
    fn flag_letters(&self, folder: &str, flags: &[&str]) -> Result<String> {
        let dir = self.folder_dir(folder);
        let mut keywords = read_keywords(&dir);
        let mut letters = Vec::new();
        let mut keywords_changed = false;
        for flag in flags {
            if let Some((_, c)) = SYSTEM_FLAGS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(flag))
            {
                letters.push(*c);
                continue;
            }
            if flag.starts_with('\\') || flag.is_empty() || flag.contains(char::is_whitespace) {
                bail!("cannot store flag {flag:?} in a maildir file name");
            }
            let index = match keywords.iter().position(|k| k == flag) {
                Some(i) => i,
                None => {
                    keywords.push(flag.to_string());
                    keywords_changed = true;
                    keywords.len() - 1
                }
            };
            if index >= 26 {
                bail!("more than 26 keywords in {}", dir.display());
            }
            letters.push((b'a' + index as u8) as char);
        }
        if keywords_changed {
            let text: String = keywords
                .iter()
                .enumerate()
                .map(|(i, k)| format!("{i} {k}\n"))
                .collect();
            let tmp = dir.join("tmp").join("testbed-keywords");
            fs::write(&tmp, text)?;
            chown_to(&tmp, self.owner)?;
            fs::rename(&tmp, dir.join(KEYWORDS_FILE))?;
        }
        letters.sort_unstable();
        letters.dedup();
        Ok(letters.into_iter().collect())
    }
}

fn letter_to_flag(c: char, keywords: &[String]) -> Option<String> {
    if let Some((name, _)) = SYSTEM_FLAGS.iter().find(|(_, l)| *l == c) {
        return Some((*name).to_string());
    }
    if c.is_ascii_lowercase() {
        let index = (c as u8 - b'a') as usize;
        return Some(
            keywords
                .get(index)
                .cloned()
                .unwrap_or_else(|| format!("?{c}")),
        );
    }
    None
}

/// Keywords by index; a missing file means none.
fn read_keywords(dir: &Path) -> Vec<String> {
    let text = fs::read_to_string(dir.join(KEYWORDS_FILE)).unwrap_or_default();
    let mut keywords: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some((index, name)) = line.split_once(' ')
            && let Ok(index) = index.parse::<usize>()
            && index < 26
        {
            if keywords.len() <= index {
                keywords.resize(index + 1, String::new());
            }
            keywords[index] = name.to_string();
        }
    }
    keywords
}

/// Base file name -> UID, from `dovecot-uidlist` (v3: `UID [fields] :base`).
fn read_uidlist(dir: &Path) -> HashMap<String, u32> {
    let text = fs::read_to_string(dir.join("dovecot-uidlist")).unwrap_or_default();
    let mut map = HashMap::new();
    for line in text.lines().skip(1) {
        let Some((uid, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(uid) = uid.parse::<u32>() else {
            continue;
        };
        let base = match rest.find(':') {
            Some(i) => &rest[i + 1..],
            None => rest.rsplit(' ').next().unwrap_or(rest),
        };
        map.insert(base.to_string(), uid);
    }
    map
}

/// `mkdir -p` where every directory it creates belongs to `owner`.
pub(crate) fn mkdir_owned(dir: &Path, owner: Owner) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        mkdir_owned(parent, owner)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => chown_to(dir, owner),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e).context(format!("mkdir {}", dir.display())),
    }
}

pub(crate) fn chown_to(path: &Path, owner: Owner) -> Result<()> {
    chown(path, Some(owner.uid), Some(owner.gid))
        .with_context(|| format!("chown {}", path.display()))
}

/// The instant in the mail's first `Date` header (RFC 5322 form), if it reads.
fn sent_at(raw: &[u8]) -> Option<SystemTime> {
    let date = MaildirMail {
        uid: None,
        file_name: String::new(),
        flags: Vec::new(),
        raw: raw.to_vec(),
    }
    .header("Date")?;
    let at = chrono::DateTime::parse_from_rfc2822(date.trim()).ok()?;
    let secs = u64::try_from(at.timestamp()).ok()?;
    UNIX_EPOCH.checked_add(std::time::Duration::from_secs(secs))
}
