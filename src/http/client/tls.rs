//! TLS for `https://` URLs: rustls on the ring provider, the system's root certificates (or
//! `--cacert`), `-k` to skip verification, and failures explained.

use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_rustls::TlsConnector;

use super::Error;

/// How the server's certificate is checked.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Trust only the CA certificates in this PEM file (instead of the system's).
    pub cacert: Option<std::path::PathBuf>,
    /// Do not verify the certificate at all (`-k`).
    pub insecure: bool,
}

/// Builds the connector: ring provider, TLS 1.2 and 1.3, ALPN `http/1.1`.
pub fn connector(opts: &TlsOptions) -> Result<TlsConnector, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(format!("cannot set up TLS: {e}")))?;
    let mut config = if opts.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else if let Some(path) = &opts.cacert {
        let (roots, pinned) = roots_from_file(path)?;
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| Error::Usage(format!("--cacert {}: {e}", path.display())))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(CaFileVerifier { inner, pinned }))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(system_roots()?)
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The trust anchors in a PEM file, and the certificates themselves.
fn roots_from_file(path: &Path) -> Result<(RootCertStore, Vec<CertificateDer<'static>>), Error> {
    let usage = |why: String| Error::Usage(format!("--cacert {}: {why}", path.display()));
    let mut roots = RootCertStore::empty();
    let mut certs = Vec::new();
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| usage(e.to_string()))?;
    for cert in iter {
        let cert = cert.map_err(|e| usage(e.to_string()))?;
        roots
            .add(cert.clone())
            .map_err(|e| usage(format!("not a usable CA certificate: {e}")))?;
        certs.push(cert);
    }
    if roots.is_empty() {
        return Err(usage("no PEM certificates in the file".into()));
    }
    Ok((roots, certs))
}

fn system_roots() -> Result<RootCertStore, Error> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!("loading the system's CA certificates: {e}");
    }
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    tracing::debug!("system CA certificates: {added} loaded, {ignored} unusable");
    if roots.is_empty() {
        return Err(Error::Tls(
            "no system CA certificates found (is the ca-certificates package installed?); \
             pass --cacert FILE or -k"
                .into(),
        ));
    }
    Ok(roots)
}

/// The server name for SNI and verification: a DNS name, or an IP address (no SNI then).
pub fn server_name(host: &url::Host<&str>) -> Result<ServerName<'static>, Error> {
    let name = match host {
        url::Host::Domain(d) => ServerName::try_from(d.to_string())
            .map_err(|_| Error::Usage(format!("{d:?} is not a valid TLS server name")))?,
        url::Host::Ipv4(ip) => ServerName::IpAddress(std::net::IpAddr::V4(*ip).into()),
        url::Host::Ipv6(ip) => ServerName::IpAddress(std::net::IpAddr::V6(*ip).into()),
    };
    Ok(name)
}

/// Explains a failed handshake in words a person can act on.
pub fn describe(host: &str, err: &std::io::Error) -> String {
    let Some(tls) = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    else {
        return match err.kind() {
            std::io::ErrorKind::UnexpectedEof => format!(
                "TLS handshake with {host} failed: the server closed the connection \
                 (is it speaking TLS on this port?)"
            ),
            _ => format!("TLS handshake with {host} failed: {err}"),
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "certificate for {host} is not trusted (unknown issuer); pass --cacert FILE or -k"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => format!(
            "certificate is not valid for {host} (the name is not among its subject names); \
             pass -k to skip the check"
        ),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => format!("certificate for {host} has expired; pass -k to skip the check"),
        rustls::Error::InvalidCertificate(other)
            if format!("{other:?}").contains("CaUsedAsEndEntity") =>
        {
            format!(
                "certificate for {host} is self-signed with CA:TRUE and not trusted; pass that \
                 certificate with --cacert FILE, or -k"
            )
        }
        rustls::Error::InvalidCertificate(other) => {
            format!("certificate for {host} rejected ({other:?}); pass -k to skip the check")
        }
        rustls::Error::InvalidMessage(_) => format!(
            "TLS handshake with {host} failed: {tls} (is the server speaking TLS on this port?)"
        ),
        other => format!("TLS handshake with {host} failed: {other}"),
    }
}

/// `--cacert`: the usual WebPKI checks against the file's certificates, with one exception.
/// `openssl req -x509` makes self-signed certificates marked `CA:TRUE`, which WebPKI refuses
/// as a server's own certificate (`CaUsedAsEndEntity`); curl accepts them. When the server
/// shows exactly a certificate from the `--cacert` file, the user has pinned it: it is
/// accepted if it names the host.
#[derive(Debug)]
struct CaFileVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for CaFileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(other)))
                if format!("{other:?}").contains("CaUsedAsEndEntity")
                    && self
                        .pinned
                        .iter()
                        .any(|c| c.as_ref() == end_entity.as_ref()) =>
            {
                let parsed = ParsedCertificate::try_from(end_entity)?;
                rustls::client::verify_server_name(&parsed, server_name)?;
                Ok(ServerCertVerified::assertion())
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `-k`: accepts any certificate, but still checks the handshake signatures, so the session
/// is at least bound to the key the server showed.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
