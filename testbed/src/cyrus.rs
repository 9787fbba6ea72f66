//! A real Cyrus IMAP 3.6 (Debian's `cyrus-imapd`, unpacked by
//! `scripts/imap-servers.sh`) in a temp dir on free loopback ports, set up
//! the way Debian ships it: the personal namespace is `INBOX.` with `.` as
//! separator (`altnamespace: no`, `unixhierarchysep: no`), so a folder
//! `Processed` is `INBOX.Processed` and a top-level CREATE is refused.
//!
//! Passwords are checked by SASL against a sasldb2 file of the instance
//! (LOGIN and AUTHENTICATE PLAIN); an admin creates each user's INBOX
//! (`user.NAME`). Cyrus refuses to run as root, so the master drops to the
//! `cyrus` user. Mail is seeded and read over IMAP: Cyrus keeps no maildir.
//! IDLE is immediate through `idled`. Cyrus logs only to syslog.
//!
//! All calls block; from a tokio test use the multi-thread flavour.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use anyhow::{Context, Result, bail};
use rand::distr::{Alphanumeric, SampleString};

use crate::cert::TestCert;
use crate::imap_client::{ImapClient, Status};
use crate::imap_store::{ImapServer, ImapStore};
use crate::maildir::{Owner, mkdir_owned};
use crate::ports;
use crate::server_process::{SUPERVISOR, ServerProcess, start_retrying};
use crate::unpacked::unpacked;

/// Cyrus's binaries, below the unpacked root.
const BIN: &str = "usr/lib/cyrus/bin";
/// Its own shared libraries (libcyrus*.so), below the unpacked root.
const LIB: &str = "usr/lib/x86_64-linux-gnu";
/// `saslpasswd2` from the installed sasl2-bin.
const SASLPASSWD2: &str = "/usr/sbin/saslpasswd2";
/// The SASL realm of every user: Cyrus looks users up in the realm named
/// `servername`, so both are set to this.
const REALM: &str = "testbed-cyrus";
/// The admin who creates users' mailboxes.
const ADMIN: &str = "cyrusadmin";

/// A running Cyrus. Dropping it kills it and removes its temp dir.
pub struct Cyrus {
    // Declared before `home`: the processes must die before their dir goes.
    process: ServerProcess,
    store: ImapStore,
    home: tempfile::TempDir,
    plain_port: u16,
    tls_port: u16,
    owner: Owner,
    admin_password: String,
    /// saslpasswd2 rewrites one file: one writer at a time.
    sasldb: Mutex<()>,
}

impl Cyrus {
    /// Starts Cyrus; retries with new ports if one was taken meanwhile.
    pub fn start() -> Result<Cyrus> {
        start_retrying("cyrus", Cyrus::try_start)
    }

    fn try_start() -> Result<Cyrus> {
        let root = unpacked(
            "Cyrus IMAP",
            "cyrus",
            &[
                "usr/lib/cyrus/bin/master",
                "usr/lib/cyrus/bin/imapd",
                "usr/lib/cyrus/bin/idled",
                "usr/lib/cyrus/bin/ctl_cyrusdb",
            ],
            &[SASLPASSWD2],
        )?;
        let owner = Owner::system_user("cyrus")
            .context("Cyrus runs as the `cyrus` user: run scripts/imap-servers.sh")?;
        let home = tempfile::Builder::new()
            .prefix("testbed-cyrus-")
            .tempdir()?;
        let dir = home.path();
        // The cyrus user must reach everything below.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
        for sub in [
            "conf/db",
            "conf/proc",
            "conf/lock",
            "conf/log",
            "conf/sieve",
            "conf/socket",
            "spool",
        ] {
            mkdir_owned(&dir.join(sub), owner)?;
        }

        let cert = TestCert::generate()?;
        fs::write(dir.join("ca.pem"), &cert.ca_pem)?;
        write_owned(
            &dir.join("cert.pem"),
            cert.cert_pem.as_bytes(),
            owner,
            0o644,
        )?;
        write_owned(&dir.join("key.pem"), cert.key_pem.as_bytes(), owner, 0o600)?;

        let (plain_port, tls_port) = (ports::free_port()?, ports::free_port()?);
        let bin = root.join(BIN);
        fs::write(dir.join("imapd.conf"), render_imapd_conf(dir))?;
        fs::write(
            dir.join("cyrus.conf"),
            render_cyrus_conf(dir, &bin, plain_port, tls_port),
        )?;

        let admin_password = Alphanumeric.sample_string(&mut rand::rng(), 24);
        let sasldb = dir.join("sasldb2");
        set_sasl_password(&sasldb, ADMIN, &admin_password)?;
        chown(&sasldb, Some(owner.uid), Some(owner.gid))
            .with_context(|| format!("chown {}", sasldb.display()))?;

        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(SUPERVISOR)
            .arg("sh")
            .arg(bin.join("master"))
            .arg("-C")
            .arg(dir.join("imapd.conf"))
            .arg("-M")
            .arg(dir.join("cyrus.conf"))
            .arg("-p")
            .arg(dir.join("conf/master.pid"))
            .env("LD_LIBRARY_PATH", root.join(LIB))
            .current_dir(dir);
        let process = ServerProcess::spawn(
            "cyrus master",
            cmd,
            &dir.join("master.out"),
            &[plain_port, tls_port],
        )?;
        process.wait_imap(plain_port, tls_port)?;
        Ok(Cyrus {
            process,
            store: ImapStore::new(plain_port),
            home,
            plain_port,
            tls_port,
            owner,
            admin_password,
            sasldb: Mutex::new(()),
        })
    }

    /// Whether the master still runs.
    pub fn is_running(&self) -> bool {
        self.process.is_running()
    }
}

impl ImapServer for Cyrus {
    /// Adds a user (or sets a new password) and creates its INBOX
    /// (`user.NAME`, as the admin).
    fn add_user(&self, name: &str, password: &str) -> Result<()> {
        if name.is_empty()
            || name == ADMIN
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("bad user name {name:?} (Cyrus: letters, digits, `-`, `_`)");
        }
        {
            let _guard = self.sasldb.lock().unwrap_or_else(|e| e.into_inner());
            let sasldb = self.dir().join("sasldb2");
            set_sasl_password(&sasldb, name, password)?;
            chown(&sasldb, Some(self.owner.uid), Some(self.owner.gid))?;
        }
        let mut admin =
            ImapClient::login_to(self.host(), self.plain_port, ADMIN, &self.admin_password)?;
        let reply = admin.command(&format!("CREATE user.{name}"))?;
        if reply.status != Status::Ok && !reply.text.to_ascii_lowercase().contains("exists") {
            bail!(
                "CREATE user.{name} failed: {:?} {}",
                reply.status,
                reply.text
            );
        }
        admin.logout()?;
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

/// Sets `user`'s password in the sasldb2 at `path` (created if missing).
fn set_sasl_password(path: &Path, user: &str, password: &str) -> Result<()> {
    if password.contains(['\n', '\r']) {
        bail!("a password with a line break cannot be set");
    }
    let mut child = Command::new(SASLPASSWD2)
        .args(["-p", "-c", "-f"])
        .arg(path)
        .args(["-u", REALM, user])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("run saslpasswd2 (is sasl2-bin installed? run scripts/imap-servers.sh)")?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(password.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        bail!(
            "saslpasswd2 for {user:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    fs::set_permissions(path, fs::Permissions::from_mode(0o640))?;
    Ok(())
}

fn write_owned(path: &Path, bytes: &[u8], owner: Owner, mode: u32) -> Result<()> {
    fs::write(path, bytes).with_context(|| format!("write {}", path.display()))?;
    chown(path, Some(owner.uid), Some(owner.gid))
        .with_context(|| format!("chown {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn render_imapd_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        r#"# Written by testbed: Debian's Cyrus defaults, in a temp dir, loopback only.
configdirectory: {d}/conf
defaultpartition: default
partition-default: {d}/spool
servername: {REALM}
admins: {ADMIN}
cyrus_user: cyrus
# The namespace Debian ships: INBOX.Folder, `.` as separator.
altnamespace: no
unixhierarchysep: no
# Passwords from our sasldb2 (PLAIN and LOGIN), plaintext allowed as on
# most private servers.
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: {d}/sasldb2
sasl_mech_list: PLAIN LOGIN
allowplaintext: yes
tls_server_cert: {d}/cert.pem
tls_server_key: {d}/key.pem
idlesocket: {d}/conf/socket/idle
lmtpsocket: {d}/conf/socket/lmtp
notifysocket: {d}/conf/socket/notify
# idled pushes changes at once; polling is only its fallback.
imapidlepoll: 1
syslog_prefix: testbed
"#
    )
}

/// Cyrus's master does not pass `-C` on, so every command names the config.
fn render_cyrus_conf(dir: &Path, bin: &Path, plain_port: u16, tls_port: u16) -> String {
    let conf = dir.join("imapd.conf");
    let (c, b) = (conf.display(), bin.display());
    format!(
        r#"# Written by testbed.
START {{
  recover cmd="{b}/ctl_cyrusdb -C {c} -r"
}}
SERVICES {{
  imap cmd="{b}/imapd -C {c}" listen="127.0.0.1:{plain_port}" prefork=0
  imaps cmd="{b}/imapd -s -C {c}" listen="127.0.0.1:{tls_port}" prefork=0
}}
EVENTS {{
  checkpoint cmd="{b}/ctl_cyrusdb -C {c} -c" period=30
}}
DAEMON {{
  idled cmd="{b}/idled -C {c}"
}}
"#
    )
}
