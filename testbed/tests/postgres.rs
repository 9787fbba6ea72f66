//! testbed::Postgres: a real PostgreSQL on a loopback port, reached over TLS
//! with the crates the bridge uses (postgres + tokio-postgres-rustls).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};
use postgres::config::SslMode;
use postgres::error::SqlState;
use postgres::{Client, Config, NoTls};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, RootCertStore};
use testbed::{CuttableProxy, Postgres, TestCert};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Trusts `ca_pem` only, as the bridge does with its `ca_file`.
fn tls(ca_pem: &str) -> Result<MakeRustlsConnect> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert?)?;
    }
    let config = ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// `pg.url()` as the bridge reads it, on `port` (the server's or a proxy's).
fn config(pg: &Postgres, port: u16, password: Option<&str>) -> Result<Config> {
    let url = pg
        .url()
        .replace(&format!(":{}/", pg.port()), &format!(":{port}/"));
    let mut config: Config = url.parse().context("parse url()")?;
    config
        .ssl_mode(SslMode::Require)
        .connect_timeout(Duration::from_secs(5));
    if let Some(password) = password {
        config.password(password);
    }
    Ok(config)
}

fn connect(pg: &Postgres) -> Result<Client> {
    let config = config(pg, pg.port(), Some(pg.password()))?;
    Ok(config.connect(tls(pg.ca_pem())?)?)
}

/// The error with its causes: postgres::Error's Display shows only the first.
fn chain(err: postgres::Error) -> String {
    format!("{:#}", anyhow::Error::from(err))
}

/// Whether this session runs over TLS, as the server sees it.
fn session_ssl(client: &mut Client) -> Result<bool> {
    let row = client.query_one(
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
        &[],
    )?;
    Ok(row.get(0))
}

#[test]
fn bridge_logs_in_over_tls_and_owns_its_database() -> Result<()> {
    let pg = Postgres::start()?;
    assert_eq!(
        pg.url(),
        format!("postgresql://bridge@127.0.0.1:{}/bridge", pg.port())
    );
    assert!(!pg.url().contains(pg.password()));
    assert_eq!(std::fs::read_to_string(pg.ca_file())?, pg.ca_pem());

    let mut client = connect(&pg)?;
    assert!(session_ssl(&mut client)?);
    let who: String = client.query_one("SELECT current_user", &[])?.get(0);
    assert_eq!(who, "bridge");
    client.batch_execute("CREATE TABLE ledger (id int PRIMARY KEY, what text)")?;
    client.execute(
        "INSERT INTO ledger VALUES ($1, $2), (2, 'b|c')",
        &[&1i32, &"a"],
    )?;

    // The superuser sees the same database, one line per row.
    assert_eq!(
        pg.superuser_psql("SELECT id, what FROM ledger ORDER BY id")?,
        "1|a\n2|b|c"
    );
    assert_eq!(
        pg.superuser_psql("SELECT datdba::regrole FROM pg_database WHERE datname = 'bridge'")?,
        "bridge"
    );
    assert_eq!(pg.superuser_psql("SHOW fsync")?, "on");
    assert_eq!(pg.superuser_psql("SHOW max_connections")?, "100");
    let err = pg
        .superuser_psql("SELECT * FROM no_such_table")
        .unwrap_err();
    assert!(format!("{err:#}").contains("no_such_table"), "{err:#}");
    Ok(())
}

#[test]
fn a_server_signed_by_another_ca_is_refused() -> Result<()> {
    let pg = Postgres::start()?;
    let other = TestCert::generate()?;
    let config = config(&pg, pg.port(), Some(pg.password()))?;
    let err = config
        .connect(tls(&other.ca_pem)?)
        .err()
        .context("connected")?;
    let err = chain(err);
    // Both CAs are named alike: the signature is what fails.
    assert!(err.contains("invalid peer certificate"), "{err}");
    Ok(())
}

#[test]
fn a_wrong_or_missing_password_is_refused_and_plaintext_takes_the_right_one() -> Result<()> {
    let pg = Postgres::start()?;
    let tls = tls(pg.ca_pem())?;

    let wrong = config(&pg, pg.port(), Some("not-the-password"))?;
    let err = wrong
        .connect(tls.clone())
        .err()
        .context("wrong password let in")?;
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err:#}");

    // The server asks for a password (SCRAM) that the client does not have.
    let missing = config(&pg, pg.port(), None)?;
    let err = missing.connect(tls).err().context("no password let in")?;
    let err = chain(err);
    assert!(err.contains("password missing"), "{err}");

    // Without TLS (`host` line): still by password, and seen as plaintext.
    let mut plain = config(&pg, pg.port(), Some(pg.password()))?;
    plain.ssl_mode(SslMode::Disable);
    let mut client = plain.connect(NoTls)?;
    assert!(!session_ssl(&mut client)?);
    let mut plain_wrong = config(&pg, pg.port(), Some("nope"))?;
    plain_wrong.ssl_mode(SslMode::Disable);
    let err = plain_wrong
        .connect(NoTls)
        .err()
        .context("wrong password let in")?;
    assert_eq!(err.code(), Some(&SqlState::INVALID_PASSWORD), "{err:#}");
    Ok(())
}

#[test]
fn restart_keeps_the_data_and_the_port() -> Result<()> {
    let pg = Postgres::start()?;
    let port = pg.port();
    let mut client = connect(&pg)?;
    client.batch_execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)")?;

    pg.restart()?;
    assert_eq!(pg.port(), port);
    assert!(pg.is_running());
    // The old session was ended by the shutdown.
    assert!(client.query_one("SELECT 1", &[]).is_err());
    let x: i32 = connect(&pg)?.query_one("SELECT x FROM kept", &[])?.get(0);
    assert_eq!(x, 7);

    pg.stop()?;
    assert!(!pg.is_running());
    assert!(connect(&pg).is_err());
    pg.restart()?;
    assert_eq!(pg.superuser_psql("SELECT x FROM kept")?, "7");
    Ok(())
}

#[test]
fn a_cut_proxy_ends_its_sessions_and_refuses_new_ones_until_restored() -> Result<()> {
    let pg = Postgres::start()?;
    let tls = tls(pg.ca_pem())?;
    let runtime = tokio::runtime::Runtime::new()?;
    let target = SocketAddr::from((Ipv4Addr::LOCALHOST, pg.port()));
    let proxy = runtime.block_on(CuttableProxy::start(target))?;
    let through = config(&pg, proxy.port(), Some(pg.password()))?;

    // TLS end to end: the proxy only moves bytes.
    let mut client = through.connect(tls.clone())?;
    assert!(session_ssl(&mut client)?);
    assert_eq!((proxy.accepted(), proxy.open()), (1, 1));
    let mut direct = connect(&pg)?;

    runtime.block_on(proxy.cut());
    assert!(proxy.is_cut());
    assert_eq!(proxy.open(), 0);
    assert!(client.query_one("SELECT 1", &[]).is_err());
    let err = through
        .connect(tls.clone())
        .err()
        .context("connected while cut")?;
    let err = chain(err);
    assert!(err.contains("Connection refused"), "{err}");
    // The server itself stays up for everyone else.
    let one: i32 = direct.query_one("SELECT 1", &[])?.get(0);
    assert_eq!(one, 1);

    runtime.block_on(proxy.restore())?;
    assert!(!proxy.is_cut());
    let mut again = through.connect(tls)?;
    assert!(session_ssl(&mut again)?);
    assert_eq!((proxy.accepted(), proxy.open()), (2, 1));
    Ok(())
}
