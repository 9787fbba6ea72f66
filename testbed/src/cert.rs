//! A throw-away CA and a server certificate signed by it, made at start.
//!
//! A separate CA (rather than one self-signed leaf) is what real private
//! deployments look like, and it is what the bridge's `ca_file` expects.

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// PEM texts of a fresh CA and of a leaf for `127.0.0.1` and `localhost`.
#[derive(Clone, Debug)]
pub struct TestCert {
    /// The CA certificate: what clients trust (`ca_file`).
    pub ca_pem: String,
    /// The server certificate, signed by the CA.
    pub cert_pem: String,
    /// The server's private key (PKCS#8).
    pub key_pem: String,
}

impl TestCert {
    /// Makes a CA and a server certificate valid for `127.0.0.1` and `localhost`.
    pub fn generate() -> Result<TestCert> {
        TestCert::generate_for(&["localhost", "127.0.0.1"])
    }

    /// Makes a CA and a server certificate valid for `names` only (its CN is the first).
    pub fn generate_for(names: &[&str]) -> Result<TestCert> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).context("CA params")?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "testbed CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().context("CA key")?;
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).context("CA cert")?;

        let mut leaf_params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .context("leaf params")?;
        leaf_params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("localhost"),
        );
        let leaf_key = KeyPair::generate().context("leaf key")?;
        let leaf = leaf_params.signed_by(&leaf_key, &ca).context("leaf cert")?;

        Ok(TestCert {
            ca_pem: ca.pem(),
            cert_pem: leaf.pem(),
            key_pem: leaf_key.serialize_pem(),
        })
    }
}
