//! The STARTTLS certificate: the operator's, or a self-signed one made once and kept in the data directory.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read TLS file {path}: {why}")]
    Read { path: PathBuf, why: String },
    #[error("cannot write TLS file {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("TLS setup failed: {0}")]
    Setup(String),
}

/// Build the server TLS configuration. Without `cert`/`key`, use (or first create) a self-signed
/// certificate for `hostname` under `tls_dir`.
pub fn server_config(
    cert: &Path,
    key: &Path,
    tls_dir: &Path,
    hostname: &str,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let (cert, key) = if cert.as_os_str().is_empty() {
        ensure_self_signed(tls_dir, hostname)?
    } else {
        (cert.to_path_buf(), key.to_path_buf())
    };
    let read_err = |path: &Path| {
        let path = path.to_path_buf();
        move |e: rustls::pki_types::pem::Error| TlsError::Read { path, why: e.to_string() }
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
        .map_err(read_err(&cert))?
        .collect::<Result<_, _>>()
        .map_err(read_err(&cert))?;
    if certs.is_empty() {
        return Err(TlsError::Read { path: cert, why: "no certificate in file".into() });
    }
    let key = PrivateKeyDer::from_pem_file(&key).map_err(read_err(&key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Setup(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Setup(e.to_string()))?;
    Ok(Arc::new(config))
}

fn ensure_self_signed(dir: &Path, hostname: &str) -> Result<(PathBuf, PathBuf), TlsError> {
    let (cert, key) = (dir.join("self-signed.crt"), dir.join("self-signed.key"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| TlsError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    let made = rcgen::generate_simple_self_signed(vec![hostname.to_string()])
        .map_err(|e| TlsError::Setup(format!("generating a self-signed certificate: {e}")))?;
    write_private(&key, made.signing_key.serialize_pem().as_bytes()).map_err(write_err(&key))?;
    write_private(&cert, made.cert.pem().as_bytes()).map_err(write_err(&cert))?;
    tracing::info!(cert = %cert.display(), "created a self-signed STARTTLS certificate");
    Ok((cert, key))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}
