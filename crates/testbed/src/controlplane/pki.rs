//! Certificates and keys of one control plane: a throwaway CA, the API server's and the simulated
//! kubelets' serving certificates, and the service-account signing key.
//!
//! Everything is generated per data directory, so two control planes never trust each other and a
//! leaked testbed key opens nothing but that testbed.

use std::{
    net::{IpAddr, Ipv4Addr},
    path::{Path, PathBuf},
};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// Errors while creating or writing key material.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused the parameters or failed to sign.
    #[error("failed to generate {what}")]
    Generate {
        /// The certificate or key being generated.
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    /// A PEM file could not be written.
    #[error("failed to write {path}")]
    Write {
        /// The file.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A PEM file could not be read back.
    #[error("failed to read {path}")]
    Read {
        /// The file.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Paths of the PEM files one control plane uses.
#[derive(Debug, Clone)]
pub struct Pki {
    /// CA certificate: trusted by clients (kubeconfig) and by the API server for kubelets.
    pub ca_cert: PathBuf,
    /// CA private key, kept so that simulated nodes started later can get serving certificates.
    pub ca_key: PathBuf,
    /// API server serving certificate (SANs: 127.0.0.1, localhost, kubernetes.default.svc...).
    pub apiserver_cert: PathBuf,
    /// API server serving key.
    pub apiserver_key: PathBuf,
    /// Service-account token signing key (private, PKCS#8).
    pub sa_key: PathBuf,
    /// Service-account token verification key (public).
    pub sa_pub: PathBuf,
}

/// A serving certificate and its key, both PEM.
#[derive(Debug, Clone)]
pub struct ServingCert {
    /// Certificate chain PEM (leaf only; clients trust the CA).
    pub cert_pem: String,
    /// PKCS#8 private key PEM.
    pub key_pem: String,
}

fn generate<T>(what: &'static str, r: Result<T, rcgen::Error>) -> Result<T, PkiError> {
    r.map_err(|source| PkiError::Generate { what, source })
}

fn write(path: &Path, contents: &str) -> Result<(), PkiError> {
    std::fs::write(path, contents).map_err(|source| PkiError::Write {
        path: path.to_owned(),
        source,
    })
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Read {
        path: path.to_owned(),
        source,
    })
}

fn ca_params() -> Result<CertificateParams, PkiError> {
    let mut params = generate("CA parameters", CertificateParams::new(Vec::<String>::new()))?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "omjob-testbed-ca");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

impl Pki {
    /// Creates the CA, the API server certificate and the service-account key under `dir`.
    ///
    /// # Errors
    /// Fails when generation fails or a file cannot be written.
    pub fn create(dir: &Path) -> Result<Self, PkiError> {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Write {
            path: dir.to_owned(),
            source,
        })?;
        let pki = Self {
            ca_cert: dir.join("ca.crt"),
            ca_key: dir.join("ca.key"),
            apiserver_cert: dir.join("apiserver.crt"),
            apiserver_key: dir.join("apiserver.key"),
            sa_key: dir.join("sa.key"),
            sa_pub: dir.join("sa.pub"),
        };
        let ca_key = generate("CA key", KeyPair::generate())?;
        let ca = generate(
            "CA certificate",
            CertifiedIssuer::self_signed(ca_params()?, &ca_key),
        )?;
        write(&pki.ca_cert, &ca.pem())?;
        write(&pki.ca_key, &ca_key.serialize_pem())?;

        let serving = pki.serving_cert(
            "kube-apiserver",
            &[
                "localhost",
                "kubernetes",
                "kubernetes.default",
                "kubernetes.default.svc",
            ],
            &[
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            ],
        )?;
        write(&pki.apiserver_cert, &serving.cert_pem)?;
        write(&pki.apiserver_key, &serving.key_pem)?;

        let sa = generate("service-account key", KeyPair::generate())?;
        write(&pki.sa_key, &sa.serialize_pem())?;
        write(&pki.sa_pub, &sa.public_key_pem())?;
        Ok(pki)
    }

    /// Issues a serving certificate signed by this control plane's CA.
    ///
    /// # Errors
    /// Fails when the CA cannot be read or signing fails.
    pub fn serving_cert(&self, cn: &str, dns: &[&str], ips: &[IpAddr]) -> Result<ServingCert, PkiError> {
        let ca_key = generate("CA key parse", KeyPair::from_pem(&read(&self.ca_key)?))?;
        // Re-deriving the issuer from parameters is enough: rcgen only needs the issuer's subject
        // and key, and the CA certificate on disk was made from the same parameters.
        let issuer = rcgen::Issuer::new(ca_params()?, &ca_key);
        let mut names: Vec<String> = dns.iter().map(|d| (*d).to_owned()).collect();
        names.extend(ips.iter().map(ToString::to_string));
        let mut params = generate("serving certificate parameters", CertificateParams::new(names))?;
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = generate("serving key", KeyPair::generate())?;
        let cert = generate("serving certificate", params.signed_by(&key, &issuer))?;
        Ok(ServingCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}
