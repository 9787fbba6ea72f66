//! A real PostgreSQL (Debian's `postgresql`, the highest version in
//! `/usr/lib/postgresql`) in a temp dir on a free loopback port, for the
//! bridge's ledger.
//!
//! initdb refuses root, so the cluster belongs to the `postgres` system user
//! (or `thulium-testbed`, created when Debian's is missing) and the server
//! runs as it, as our child under a supervisor shell. TCP logins (TLS or not)
//! need a password (scram-sha-256); the superuser logs in over the unix
//! socket only, by peer authentication.
//!
//! All calls block (initdb and a start take a second or two). From a tokio
//! test use `#[tokio::test(flavor = "multi_thread")]` or `spawn_blocking`,
//! so that the code under test keeps running meanwhile.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rand::distr::{Alphanumeric, SampleString};

use crate::cert::TestCert;
use crate::maildir::{Owner, chown_to, mkdir_owned};
use crate::ports;
use crate::process;
use crate::server_process::{START_TIMEOUT, ServerProcess};

/// Where Debian puts each major version's server binaries (`15/bin/initdb`).
const INSTALL_ROOT: &str = "/usr/lib/postgresql";
/// The system user we create when the package's `postgres` is missing.
const FALLBACK_USER: &str = "thulium-testbed";
/// The login role and database the bridge uses.
const ROLE: &str = "bridge";
/// How long a fast shutdown may take before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// `sh -c SUPERVISOR sh CMD ARGS...`: as [`crate::server_process::SUPERVISOR`],
/// but our TERM becomes a fast shutdown (SIGINT): PostgreSQL's own TERM waits
/// for every client to disconnect first.
const SUPERVISOR: &str = r#"
"$@" &
child=$!
trap 'kill -INT "$child" 2>/dev/null; wait "$child"; exit 143' TERM INT HUP
wait "$child"
"#;

/// Knobs for [`Postgres::start_with`]; `Default` is what the bridge tests want.
#[derive(Clone, Debug, Default)]
pub struct PostgresOptions {
    /// Raw lines appended to postgresql.conf, e.g. `log_statement = 'all'`.
    pub extra_config: String,
    /// The certificate and key to serve instead of a fresh testbed-CA-signed
    /// one; its `ca_pem` becomes [`Postgres::ca_file`].
    pub certificate: Option<TestCert>,
}

/// A running PostgreSQL with a login role `bridge` (random password) that
/// owns a database `bridge`. Dropping it stops it and removes its temp dir.
pub struct Postgres {
    // Declared before `home`: the server must die before its dir goes.
    process: Mutex<ServerProcess>,
    home: tempfile::TempDir,
    bin: PathBuf,
    /// The OS user the server runs as, also the superuser role's name.
    user: String,
    owner: Owner,
    port: u16,
    password: String,
    ca_pem: String,
}

impl Postgres {
    /// Starts a PostgreSQL with default options.
    pub fn start() -> Result<Postgres> {
        Postgres::start_with(PostgresOptions::default())
    }

    /// Creates a cluster, starts it (again on a new port if another process
    /// took ours meanwhile) and creates the `bridge` role and database.
    pub fn start_with(options: PostgresOptions) -> Result<Postgres> {
        let bin = bin_dir()?;
        let (user, owner) = server_user()?;
        let home = tempfile::Builder::new()
            .prefix("testbed-postgres-")
            .tempdir()?;
        let dir = home.path();
        chown_to(dir, owner)?;
        // Readable by all: tests read ca.pem and the log as whoever they are.
        fs::set_permissions(dir, fs::Permissions::from_mode(0o755))?;
        mkdir_owned(&dir.join("socket"), owner)?;

        let cert = match options.certificate {
            Some(cert) => cert,
            None => TestCert::generate()?,
        };
        fs::write(dir.join("ca.pem"), &cert.ca_pem)?;
        write_owned(&dir.join("server.crt"), &cert.cert_pem, owner, 0o644)?;
        // PostgreSQL refuses a key others may read.
        write_owned(&dir.join("server.key"), &cert.key_pem, owner, 0o600)?;

        init_cluster(&bin, &user, owner, dir)?;
        let data = dir.join("data");
        write_owned(&data.join("pg_hba.conf"), &render_hba(&user), owner, 0o600)?;
        let mut conf = fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .context("open postgresql.conf")?;
        std::io::Write::write_all(
            &mut conf,
            render_config(dir, &options.extra_config).as_bytes(),
        )
        .context("append to postgresql.conf")?;

        let mut attempt = 0;
        let (process, port) = loop {
            attempt += 1;
            let port = ports::free_port()?;
            match launch(&bin, owner, dir, port) {
                Ok(process) => break (process, port),
                Err(e) if attempt < 3 && format!("{e:#}").contains("Address already in use") => {}
                Err(e) => return Err(e),
            }
        };
        let postgres = Postgres {
            process: Mutex::new(process),
            home,
            bin,
            user,
            owner,
            port,
            password: Alphanumeric.sample_string(&mut rand::rng(), 24),
            ca_pem: cert.ca_pem,
        };
        postgres.psql(
            "postgres",
            &[
                &format!("CREATE ROLE {ROLE} LOGIN PASSWORD '{}'", postgres.password),
                // Apart: CREATE DATABASE refuses to run inside a transaction.
                &format!("CREATE DATABASE {ROLE} OWNER {ROLE}"),
            ],
        )?;
        Ok(postgres)
    }

    /// The host to connect to.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// The TCP port (the same after a [`restart`](Self::restart)).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The login role, `bridge`.
    pub fn user(&self) -> &'static str {
        ROLE
    }

    /// The database the role owns, `bridge`.
    pub fn database(&self) -> &'static str {
        ROLE
    }

    /// The role's password (random); not part of [`url`](Self::url).
    pub fn password(&self) -> &str {
        &self.password
    }

    /// `postgresql://bridge@127.0.0.1:PORT/bridge`, without the password:
    /// the bridge's config keeps that apart.
    pub fn url(&self) -> String {
        format!("postgresql://{ROLE}@{}:{}/{ROLE}", self.host(), self.port)
    }

    /// PEM of the CA that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A file holding [`ca_pem`](Self::ca_pem), for a `ca_file` setting.
    pub fn ca_file(&self) -> PathBuf {
        self.dir().join("ca.pem")
    }

    /// The directory of the unix socket (superuser logins only).
    pub fn socket_dir(&self) -> PathBuf {
        self.dir().join("socket")
    }

    /// The instance's directory (cluster, certificate, log).
    pub fn dir(&self) -> &Path {
        self.home.path()
    }

    /// The server's log so far (the tail), for failure messages.
    pub fn log(&self) -> String {
        process::read_tail(&self.dir().join("postgres.log"))
    }

    /// Runs `sql` as the superuser in the `bridge` database (`psql -Atq`, over
    /// the socket) and returns what it printed: one line per row, `|` between
    /// columns, without the last newline. Fails on any SQL error.
    pub fn superuser_psql(&self, sql: &str) -> Result<String> {
        self.psql(ROLE, &[sql])
    }

    /// Runs each of `commands` (one `-c` each) as the superuser in `database`.
    fn psql(&self, database: &str, commands: &[&str]) -> Result<String> {
        let mut cmd = as_user(self.owner, &self.bin.join("psql"), self.dir());
        cmd.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.socket_dir())
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", &self.user, "-d", database]);
        for command in commands {
            cmd.arg("-c").arg(command);
        }
        let out = run(cmd, "psql")?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text.strip_suffix('\n').unwrap_or(&text).to_string())
    }

    /// Whether the server still runs.
    pub fn is_running(&self) -> bool {
        self.lock_process().is_running()
    }

    /// Fast shutdown (clients are disconnected), SIGKILL if it takes long;
    /// the cluster stays for a [`restart`](Self::restart).
    pub fn stop(&self) -> Result<()> {
        self.lock_process().kill(STOP_GRACE);
        Ok(())
    }

    /// Stops (if running) and starts again with the same data on the same
    /// port; returns once it accepts connections.
    pub fn restart(&self) -> Result<()> {
        let mut process = self.lock_process();
        process.kill(STOP_GRACE);
        *process = launch(&self.bin, self.owner, self.dir(), self.port)?;
        Ok(())
    }

    fn lock_process(&self) -> std::sync::MutexGuard<'_, ServerProcess> {
        self.process.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.lock_process().kill(STOP_GRACE);
    }
}

/// The `bin` dir of the highest major version installed.
fn bin_dir() -> Result<PathBuf> {
    let mut best: Option<(u32, PathBuf)> = None;
    for entry in fs::read_dir(INSTALL_ROOT).into_iter().flatten().flatten() {
        let Some(version) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let bin = entry.path().join("bin");
        let complete = ["initdb", "postgres", "psql", "pg_isready"]
            .iter()
            .all(|b| bin.join(b).is_file());
        if complete && best.as_ref().is_none_or(|(v, _)| version > *v) {
            best = Some((version, bin));
        }
    }
    best.map(|(_, bin)| bin).with_context(|| {
        format!(
            "no PostgreSQL server in {INSTALL_ROOT}/*/bin: install the `postgresql` package (scripts/test.sh does)"
        )
    })
}

/// Debian's `postgres` user, else our own system user (created once).
fn server_user() -> Result<(String, Owner)> {
    if let Ok(owner) = Owner::system_user("postgres") {
        return Ok(("postgres".to_string(), owner));
    }
    static CREATING: Mutex<()> = Mutex::new(());
    let _guard = CREATING.lock().unwrap_or_else(|e| e.into_inner());
    if let Ok(owner) = Owner::system_user(FALLBACK_USER) {
        return Ok((FALLBACK_USER.to_string(), owner));
    }
    let out = Command::new("useradd")
        .args(["--system", "--user-group", "--no-create-home"])
        .args(["--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin"])
        .arg(FALLBACK_USER)
        .output()
        .context("run useradd")?;
    // Another test binary may have created it meanwhile: only its absence counts.
    let owner = Owner::system_user(FALLBACK_USER).with_context(|| {
        format!(
            "no `postgres` user, and `useradd --system {FALLBACK_USER}` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok((FALLBACK_USER.to_string(), owner))
}

/// `setpriv` to `owner` (no supplementary groups) running `program`, in `dir`,
/// with no `PG*` variables of ours: nothing redirects it elsewhere.
fn as_user(owner: Owner, program: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={}", owner.uid))
        .arg(format!("--regid={}", owner.gid))
        .arg("--clear-groups")
        .arg("--")
        .arg(program)
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir)
        .env("LC_ALL", "C")
        .env("PGCLIENTENCODING", "UTF8");
    cmd
}

/// Runs `cmd` to its end; fails with its output unless it succeeded.
fn run(mut cmd: Command, what: &str) -> Result<Output> {
    let out = cmd.output().with_context(|| format!("run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out)
}

/// initdb into `dir/data`; no fsync of the fresh files (the server's own
/// fsync stays on).
fn init_cluster(bin: &Path, user: &str, owner: Owner, dir: &Path) -> Result<()> {
    let mut cmd = as_user(owner, &bin.join("initdb"), dir);
    cmd.arg("-D")
        .arg(dir.join("data"))
        .args(["-U", user, "-E", "UTF8", "--no-locale", "--no-sync"])
        .args(["--auth-local=peer", "--auth-host=scram-sha-256"]);
    run(cmd, "initdb")?;
    Ok(())
}

/// Starts the server on `port` and waits until it accepts connections.
fn launch(bin: &Path, owner: Owner, dir: &Path, port: u16) -> Result<ServerProcess> {
    // Ours are dead by now: stale lock files (left by a SIGKILL) with a
    // reused pid would make PostgreSQL refuse to start.
    let _ = fs::remove_file(dir.join("data/postmaster.pid"));
    let _ = fs::remove_file(dir.join(format!("socket/.s.PGSQL.{port}.lock")));
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(SUPERVISOR)
        .arg("sh")
        .arg("setpriv")
        .arg(format!("--reuid={}", owner.uid))
        .arg(format!("--regid={}", owner.gid))
        .arg("--clear-groups")
        // Should the shell be SIGKILLed, the server still shuts down.
        .args(["--pdeathsig", "INT", "--"])
        .arg(bin.join("postgres"))
        .arg("-D")
        .arg(dir.join("data"))
        .arg("-p")
        .arg(port.to_string())
        .current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LC_ALL", "C");
    let process = ServerProcess::spawn("postgres", cmd, &dir.join("postgres.log"), &[port])?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if !process.is_running() {
            bail!("postgres exited at start:\n{}", process.output());
        }
        if accepts(bin, port) {
            return Ok(process);
        }
        if Instant::now() > deadline {
            process.kill(Duration::ZERO);
            bail!(
                "postgres did not accept connections on port {port} within {START_TIMEOUT:?}:\n{}",
                process.output()
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the server on `port` accepts connections (`pg_isready`: it answers
/// before it is ready, with "the database system is starting up").
fn accepts(bin: &Path, port: u16) -> bool {
    Command::new(bin.join("pg_isready"))
        .args(["-q", "-h", "127.0.0.1", "-t", "1", "-p"])
        .arg(port.to_string())
        .env_clear()
        .status()
        .is_ok_and(|s| s.success())
}

fn write_owned(path: &Path, text: &str, owner: Owner, mode: u32) -> Result<()> {
    fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    chown_to(path, owner)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

/// Superuser by peer over the socket only; everyone over TCP by password,
/// with TLS (`hostssl`) or without (`host`, for tests of a client that must
/// refuse plaintext).
fn render_hba(superuser: &str) -> String {
    format!(
        "# Written by testbed.\n\
         local all {superuser} peer\n\
         hostssl all all 127.0.0.1/32 scram-sha-256\n\
         host all all 127.0.0.1/32 scram-sha-256\n"
    )
}

/// Our settings, after initdb's (the last one wins). The port is given on
/// the command line, so that a retry on another port rewrites nothing.
fn render_config(dir: &Path, extra: &str) -> String {
    let d = dir.display();
    format!(
        r#"
# Written by testbed: loopback and a socket of its own, TLS by the testbed CA.
listen_addresses = '127.0.0.1'
unix_socket_directories = '{d}/socket'
ssl = on
ssl_cert_file = '{d}/server.crt'
ssl_key_file = '{d}/server.key'
password_encryption = 'scram-sha-256'
max_connections = 100
# Kept on: the ledger's commit cost is measured against this server.
fsync = on
log_min_messages = warning
{extra}
"#
    )
}
