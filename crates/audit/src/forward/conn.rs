//! The connection to the collector: TCP, or TLS over TCP (rustls with ring, the CA file from the
//! settings, no client certificate).

use crate::AuditError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

pub(crate) struct Connector {
    host: String,
    port: u16,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
}

impl Connector {
    pub fn new(settings: &config::AuditConfig) -> Result<Connector, AuditError> {
        let (host, port) = settings
            .syslog_host_port()
            .ok_or_else(|| AuditError::Forward("audit.syslog_address must be host:port".into()))?;
        let tls = if settings.syslog_tls { Some(tls_connector(settings, host)?) } else { None };
        Ok(Connector { host: host.to_string(), port, tls })
    }

    pub async fn connect(&self) -> Result<Box<dyn Stream>, String> {
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((self.host.as_str(), self.port)))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let Some((connector, name)) = &self.tls else { return Ok(Box::new(tcp)) };
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name.clone(), tcp))
            .await
            .map_err(|_| "TLS handshake timed out".to_string())?
            .map_err(|e| format!("TLS handshake: {e}"))?;
        Ok(Box::new(tls))
    }
}

fn tls_connector(
    settings: &config::AuditConfig,
    host: &str,
) -> Result<(tokio_rustls::TlsConnector, ServerName<'static>), AuditError> {
    let ca = &settings.syslog_tls_ca_file;
    let bad = |why: String| AuditError::Forward(format!("audit.syslog_tls_ca_file {}: {why}", ca.display()));
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad(e.to_string()))? {
        roots.add(cert.map_err(|e| bad(e.to_string()))?).map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no certificate in the file".into()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| AuditError::Forward(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name =
        if settings.syslog_tls_server_name.is_empty() { host } else { &settings.syslog_tls_server_name };
    let name = ServerName::try_from(name.to_string())
        .map_err(|e| AuditError::Forward(format!("audit.syslog_tls_server_name `{name}`: {e}")))?;
    Ok((tokio_rustls::TlsConnector::from(Arc::new(config)), name))
}

/// Whether the collector still has the connection open (collectors never send: a readable end of
/// stream means it closed). Polls once, never waits.
pub(crate) async fn alive(stream: &mut Box<dyn Stream>) -> bool {
    let mut buf = [0u8; 256];
    match tokio::time::timeout(Duration::ZERO, stream.read(&mut buf)).await {
        Err(_) => true,
        Ok(Ok(n)) => n > 0,
        Ok(Err(_)) => false,
    }
}
