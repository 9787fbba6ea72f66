//! A real Courier IMAP 5 (Debian's `courier-imap`, unpacked by
//! `scripts/imap-servers.sh`) in a temp dir on free loopback ports, with
//! Debian's default settings: maildir storage, the personal namespace
//! `INBOX.` with `.` as separator (a folder `Processed` is `INBOX.Processed`;
//! a top-level CREATE is refused), STARTTLS on the plain port, LOGIN and
//! AUTHENTICATE PLAIN checked by authdaemond against a userdb with crypted
//! passwords.
//!
//! authlib reads compiled-in paths (`/etc/courier/authdaemonrc`,
//! `/etc/courier/userdb.dat`, the socket in `/run/courier/authdaemon`), so
//! the server runs in a private mount namespace with this instance's
//! directories bind-mounted over `/etc/courier` and `/run`: the system is
//! not touched; and in a private PID namespace, so that all of it dies with
//! the harness. IDLE is Courier's enhanced IDLE (`IMAP_ENHANCEDIDLE=1`,
//! gamin watching the maildir; Debian's default 0 would poll every 60 s).
//!
//! Mail is seeded and read over IMAP, so keywords and UIDs are what a client
//! sees (Courier keeps them in its own files). All calls block.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};

use crate::cert::TestCert;
use crate::imap_store::{ImapServer, ImapStore};
use crate::maildir::{Maildir, Owner, mkdir_owned};
use crate::ports;
use crate::server_process::{ServerProcess, start_retrying};
use crate::unpacked::unpacked;

/// authlib's daemon, from the installed courier-authlib.
const AUTHDAEMOND: &str = "/usr/lib/courier/courier-authlib/authdaemond";
/// Builds userdb.dat from the text userdb (courier-authlib-userdb).
const MAKEUSERDB: &str = "/usr/sbin/makeuserdb";
/// Crypts a password read from stdin (courier-authlib-userdb).
const USERDBPW: &str = "/usr/sbin/userdbpw";
/// authlib's compiled-in config directory: an (empty) mount point.
const ETC_COURIER: &str = "/etc/courier";

/// Mounts this instance's files over authlib's fixed paths, then runs
/// authdaemond and one couriertcpd per listener until one of them exits.
const START_SCRIPT: &str = r#"
set -eu
mount --bind "$TESTBED_DIR/etc" /etc/courier
mount --bind "$TESTBED_DIR/run" /run
"$AUTHDAEMOND" &
pids=$!
"$COURIER/usr/sbin/couriertcpd" -address=127.0.0.1 -maxprocs=100 -maxperip=100 \
  -nodnslookup -noidentlookup "$PLAIN_PORT" \
  "$COURIER/usr/lib/courier/courier/imaplogin" "$COURIER/usr/bin/imapd" Maildir &
pids="$pids $!"
IMAP_TLS=1 IMAP_STARTTLS=NO "$COURIER/usr/sbin/couriertcpd" -address=127.0.0.1 \
  -maxprocs=100 -maxperip=100 -nodnslookup -noidentlookup "$TLS_PORT" \
  "$COURIERTLS" -server -tcpd \
  "$COURIER/usr/lib/courier/courier/imaplogin" "$COURIER/usr/bin/imapd" Maildir &
pids="$pids $!"
trap 'kill -TERM $pids 2>/dev/null; wait; exit 143' TERM INT HUP
set +e
wait -n
status=$?
kill -TERM $pids 2>/dev/null
wait
exit $status
"#;

/// A running Courier. Dropping it kills it and removes its temp dir.
pub struct Courier {
    // Declared before `home`: the processes must die before their dir goes.
    process: ServerProcess,
    store: ImapStore,
    home: tempfile::TempDir,
    plain_port: u16,
    tls_port: u16,
    owner: Owner,
    /// userdb lines by user; the whole file is rewritten on each change.
    users: Mutex<BTreeMap<String, String>>,
}

impl Courier {
    /// Starts Courier (authdaemond, a plain+STARTTLS and a TLS listener);
    /// retries with new ports if one was taken meanwhile.
    pub fn start() -> Result<Courier> {
        start_retrying("courier", Courier::try_start)
    }

    fn try_start() -> Result<Courier> {
        let root = unpacked(
            "Courier IMAP",
            "courier",
            &[
                "usr/bin/imapd",
                "usr/bin/couriertls",
                "usr/sbin/couriertcpd",
                "usr/lib/courier/courier/imaplogin",
            ],
            &[AUTHDAEMOND, MAKEUSERDB, USERDBPW, ETC_COURIER],
        )?;
        let owner = Owner::system_user("courier")
            .context("courier-authlib adds the `courier` user: run scripts/imap-servers.sh")?;
        let home = tempfile::Builder::new()
            .prefix("testbed-courier-")
            .tempdir()?;
        let dir = home.path();
        // Mail processes run as `courier` and must reach the maildirs.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
        fs::create_dir_all(dir.join("etc"))?;
        fs::create_dir_all(dir.join("run/courier/authdaemon"))?;
        fs::set_permissions(dir.join("etc"), fs::Permissions::from_mode(0o755))?;
        mkdir_owned(&dir.join("mail"), owner)?;

        let cert = TestCert::generate()?;
        fs::write(dir.join("ca.pem"), &cert.ca_pem)?;
        // couriertls runs as `courier` and wants key and chain in one file.
        let pem = dir.join("etc/imapd.pem");
        fs::write(&pem, format!("{}{}", cert.key_pem, cert.cert_pem))?;
        chown(&pem, Some(owner.uid), Some(owner.gid))?;
        fs::set_permissions(&pem, fs::Permissions::from_mode(0o600))?;

        fs::write(dir.join("etc/authdaemonrc"), AUTHDAEMONRC)?;
        let userdb = dir.join("etc/userdb");
        fs::write(&userdb, "")?;
        fs::set_permissions(&userdb, fs::Permissions::from_mode(0o600))?;
        make_userdb(&userdb)?;

        let (plain_port, tls_port) = (ports::free_port()?, ports::free_port()?);
        let mut cmd = Command::new("unshare");
        // A PID namespace too: couriertcpd leads its own process group, so
        // only the namespace's end (its init, bash, killed with unshare)
        // reliably takes it, its sessions and gam_server down.
        cmd.args([
            "--mount",
            "--propagation",
            "private",
            "--pid",
            "--fork",
            "--kill-child",
            "bash",
            "-c",
        ])
        .arg(START_SCRIPT)
        .current_dir(dir)
        .env_clear()
        .envs(imapd_environment(&root, dir))
        .env("TESTBED_DIR", dir)
        .env("AUTHDAEMOND", AUTHDAEMOND)
        .env("COURIER", &root)
        .env("PLAIN_PORT", plain_port.to_string())
        .env("TLS_PORT", tls_port.to_string())
        // One gam_server per instance, dying with it.
        .env("GAM_CLIENT_ID", format!("testbed-courier-{plain_port}"));
        let process = ServerProcess::spawn(
            "courier",
            cmd,
            &dir.join("courier.log"),
            &[plain_port, tls_port],
        )?;
        process.wait_imap(plain_port, tls_port)?;
        Ok(Courier {
            process,
            store: ImapStore::new(plain_port),
            home,
            plain_port,
            tls_port,
            owner,
            users: Mutex::new(BTreeMap::new()),
        })
    }

    /// The user's maildir root: `INBOX.Name` is the directory `.Name` below
    /// it; Courier keeps keywords in `courierimapkeywords/` and UIDs in
    /// `courierimapuiddb`, so read mail with [`folder_mails`](Self::folder_mails).
    pub fn maildir_path(&self, user: &str) -> PathBuf {
        self.dir().join("mail").join(user).join("Maildir")
    }

    fn maildir(&self, user: &str) -> Maildir {
        Maildir::new(self.maildir_path(user), self.owner)
    }

    /// Whether authdaemond and both listeners still run.
    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }
}

impl ImapServer for Courier {
    /// Adds a user (or sets a new password) with an empty maildir; the
    /// password is crypted by `userdbpw -md5`, as `userdb` users do.
    fn add_user(&self, name: &str, password: &str) -> Result<()> {
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        {
            bail!("bad user name {name:?}");
        }
        let home = self.dir().join("mail").join(name);
        mkdir_owned(&home, self.owner)?;
        self.maildir(name).create_folder("INBOX")?;
        let hash = crypt_password(password)?;
        let line = format!(
            "{name}\tuid={}|gid={}|home={}|mail={}|systempw={hash}",
            self.owner.uid,
            self.owner.gid,
            home.display(),
            home.join("Maildir").display()
        );
        let mut users = self.users.lock().unwrap_or_else(|e| e.into_inner());
        users.insert(name.to_string(), line);
        let text: String = users.values().map(|l| format!("{l}\n")).collect();
        let userdb = self.dir().join("etc/userdb");
        fs::write(&userdb, text)?;
        make_userdb(&userdb)?;
        self.store.set_password(name, password);
        Ok(())
    }

    fn plain_port(&self) -> u16 {
        self.plain_port
    }

    fn tls_port(&self) -> u16 {
        self.tls_port
    }

    fn dir(&self) -> &Path {
        self.home.path()
    }

    fn store(&self) -> &ImapStore {
        &self.store
    }
}

/// Only the userdb module; the socket where libcourierauth looks for it.
const AUTHDAEMONRC: &str = r#"# Written by testbed.
authmodulelist="authuserdb"
authmodulelistorig="authuserdb"
daemons=3
authdaemonvar=/run/courier/authdaemon
DEBUG_LOGIN=0
DEFAULTOPTIONS=""
LOGGEROPTS=""
"#;

/// Debian's /etc/courier/imapd and imapd-ssl defaults, except enhanced IDLE.
fn imapd_environment(root: &Path, dir: &Path) -> Vec<(String, String)> {
    let capability = "IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE";
    let pairs = [
        ("PATH", "/usr/sbin:/usr/bin:/sbin:/bin".to_string()),
        ("IMAP_CAPABILITY", capability.to_string()),
        ("IMAP_CAPABILITY_TLS", format!("{capability} AUTH=PLAIN")),
        ("IMAP_KEYWORDS", "1".into()),
        ("IMAP_ACL", "1".into()),
        ("IMAP_PROXY", "0".into()),
        ("IMAP_IDLE_TIMEOUT", "60".into()),
        ("IMAP_MAILBOX_SANITY_CHECK", "1".into()),
        ("IMAP_DISABLETHREADSORT", "0".into()),
        ("IMAP_CHECK_ALL_FOLDERS", "0".into()),
        ("IMAP_OBSOLETE_CLIENT", "0".into()),
        ("IMAP_UMASK", "022".into()),
        ("IMAP_USELOCKS", "1".into()),
        ("IMAP_SHAREDINDEXFILE", "/etc/courier/shared/index".into()),
        ("IMAP_ENHANCEDIDLE", "1".into()),
        ("IMAP_TRASHFOLDERNAME", "Trash".into()),
        ("IMAP_EMPTYTRASH", "Trash:7".into()),
        ("IMAP_MOVE_EXPUNGE_TO_TRASH", "0".into()),
        ("HEADERFROM", "X-IMAP-Sender".into()),
        ("MAILDIRPATH", "Maildir".into()),
        ("IMAP_STARTTLS", "YES".into()),
        ("IMAP_TLS_REQUIRED", "0".into()),
        (
            "COURIERTLS",
            root.join("usr/bin/couriertls").display().to_string(),
        ),
        (
            "TLS_CERTFILE",
            dir.join("etc/imapd.pem").display().to_string(),
        ),
        ("TLS_VERIFYPEER", "NONE".into()),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// `userdbpw -md5`: the crypt(3) hash userdb keeps in `systempw`.
fn crypt_password(password: &str) -> Result<String> {
    if password.contains(['\n', '\r']) {
        bail!("a password with a line break cannot be set");
    }
    let mut child = Command::new(USERDBPW)
        .arg("-md5")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("run userdbpw (is courier-authlib-userdb installed?)")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(format!("{password}\n").as_bytes())?;
    }
    let output = child.wait_with_output()?;
    let hash = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || !hash.starts_with('$') {
        bail!(
            "userdbpw failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(hash)
}

/// `makeuserdb -f FILE`: FILE.dat and FILEshadow.dat next to it, which
/// authdaemond (seeing this dir as /etc/courier) reopens when they change.
fn make_userdb(userdb: &Path) -> Result<()> {
    let output = Command::new(MAKEUSERDB)
        .arg("-f")
        .arg(userdb)
        .output()
        .context("run makeuserdb")?;
    if !output.status.success() {
        bail!(
            "makeuserdb failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
