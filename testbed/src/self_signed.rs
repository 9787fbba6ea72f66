//! Server certificates as admins make them, not as a CA would: what the bridge must
//! accept once told to trust exactly that certificate (`ca_file` or `tls_fingerprint`).
//!
//! "The way most guides say" is `openssl req -x509 -newkey rsa:2048 -nodes -subj
//! "/CN=host"`: self-signed, `CA:TRUE` (openssl's default config adds its `v3_ca`
//! extensions), only the CN names the host, no subjectAltName. The openssl binary
//! makes it when there is one; otherwise rcgen makes one of the same shape (with an
//! ECDSA key).

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};

use crate::cert::TestCert;

/// Who made a [`TestCert::like_the_guides`] certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MadeBy {
    Openssl,
    Rcgen,
}

impl TestCert {
    /// A self-signed `CA:TRUE` certificate naming `cn` in its CN only, made by
    /// `openssl req -x509` when openssl is installed. It is its own `ca_pem`.
    pub fn like_the_guides(cn: &str) -> Result<(TestCert, MadeBy)> {
        match openssl_req_x509(cn) {
            Ok(Some(cert)) => Ok((cert, MadeBy::Openssl)),
            Ok(None) => Ok((guide_shaped(cn, Validity::Current)?, MadeBy::Rcgen)),
            Err(e) => Err(e),
        }
    }

    /// The same shape as [`like_the_guides`](Self::like_the_guides), but valid only
    /// from 2020-01-01 to 2021-01-01: expired (made by rcgen, since openssl 3.0's `req`
    /// cannot back-date).
    pub fn expired_like_the_guides(cn: &str) -> Result<TestCert> {
        guide_shaped(cn, Validity::Expired)
    }
}

/// When a [`guide_shaped`] certificate is valid.
enum Validity {
    /// rcgen's default (1975 to 4096): valid now.
    Current,
    /// 2020-01-01 to 2021-01-01.
    Expired,
}

/// `None` when there is no openssl binary.
fn openssl_req_x509(cn: &str) -> Result<Option<TestCert>> {
    let dir = tempfile::tempdir()?;
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let run = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
        ])
        .arg("-subj")
        .arg(format!("/CN={cn}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdin(Stdio::null())
        .output();
    let out = match run {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("run openssl"),
    };
    if !out.status.success() {
        bail!(
            "openssl req -x509 failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let read =
        |p: &Path| std::fs::read_to_string(p).with_context(|| format!("read {}", p.display()));
    let cert_pem = read(&cert)?;
    Ok(Some(TestCert {
        ca_pem: cert_pem.clone(),
        cert_pem,
        key_pem: read(&key)?,
    }))
}

/// rcgen's copy of openssl's shape.
fn guide_shaped(cn: &str, validity: Validity) -> Result<TestCert> {
    let mut params = CertificateParams::new(Vec::<String>::new()).context("params")?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    if let Validity::Expired = validity {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
    }
    let key = KeyPair::generate().context("key")?;
    let cert = params.self_signed(&key).context("self-sign")?;
    Ok(TestCert {
        ca_pem: cert.pem(),
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}
