//! TLS client settings for STARTTLS towards next hops (rustls with the ring provider).
//!
//! Opportunistic TLS encrypts without verifying (RFC 7435: better than plain text, and a next hop
//! with a self-signed certificate must still get mail). Required TLS verifies against
//! `relay.tls_ca_file` when one is set, and only encrypts otherwise.

use crate::RelayError;
use config::OutboundTls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::path::Path;
use std::sync::Arc;

#[derive(Debug)]
pub(crate) struct TlsClients {
    unverified: Arc<ClientConfig>,
    verified: Option<Arc<ClientConfig>>,
}

impl TlsClients {
    /// Build both client settings; `ca_file` empty means nothing is verified.
    pub(crate) fn load(ca_file: &Path) -> Result<TlsClients, RelayError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = || {
            ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| RelayError::TlsSetup(e.to_string()))
        };
        let unverified = builder()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth();
        let verified = if ca_file.as_os_str().is_empty() {
            None
        } else {
            let roots = load_roots(ca_file)?;
            Some(Arc::new(builder()?.with_root_certificates(roots).with_no_client_auth()))
        };
        Ok(TlsClients { unverified: Arc::new(unverified), verified })
    }

    /// The client settings for a mode (`None` has none).
    pub(crate) fn for_mode(&self, mode: OutboundTls) -> Option<Arc<ClientConfig>> {
        match (mode, &self.verified) {
            (OutboundTls::None, _) => None,
            (OutboundTls::Required, Some(verified)) => Some(verified.clone()),
            _ => Some(self.unverified.clone()),
        }
    }
}

fn load_roots(ca_file: &Path) -> Result<RootCertStore, RelayError> {
    let err = |why: String| RelayError::TlsCaFile { path: ca_file.to_path_buf(), why };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| err(e.to_string()))?;
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certs);
    if added == 0 {
        return Err(err("no usable CA certificate in the file".into()));
    }
    Ok(roots)
}

/// Opportunistic TLS: any certificate is accepted, but the handshake signatures are still checked, so
/// the session keys really belong to whoever holds the presented certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}
