//! rustls client side of `SSL_GET`.
//!
//! Only the `ring` provider is used (no aws-lc, so no cmake/C toolchain beyond `cc`). Client
//! configs are built once and shared: building a verifier over the ~150 web PKI roots per
//! check would be wasted CPU, and a shared config also shares the TLS session cache, so
//! repeated checks of a real can resume instead of doing a full handshake.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::probe::TlsOptions;

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

fn builder() -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, String> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS config: {e}"))
}

fn finish(mut config: ClientConfig) -> Arc<ClientConfig> {
    // We only speak HTTP/1.1; advertising it helps servers that insist on ALPN.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn with_roots(roots: RootCertStore) -> Result<Arc<ClientConfig>, String> {
    Ok(finish(
        builder()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// Client config for `opts`: shared instances for the two static cases; a fresh one per call
/// when a CA file is given, so a rotated CA is picked up without a reload.
pub async fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, String> {
    static INSECURE: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    static WEBPKI: OnceLock<Result<Arc<ClientConfig>, String>> = OnceLock::new();
    if !opts.verify {
        return INSECURE
            .get_or_init(|| {
                let verifier = Arc::new(NoVerify(provider()));
                Ok(finish(
                    builder()?
                        .dangerous()
                        .with_custom_certificate_verifier(verifier)
                        .with_no_client_auth(),
                ))
            })
            .clone();
    }
    match &opts.ca_file {
        None => WEBPKI
            .get_or_init(|| {
                let mut roots = RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                with_roots(roots)
            })
            .clone(),
        Some(path) => {
            // File I/O runs on the blocking pool, never on a runtime worker.
            let owned = path.clone();
            let pem = tokio::task::spawn_blocking(move || std::fs::read(owned))
                .await
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("ca_file {}: no certificates found", path.display()));
            }
            with_roots(roots)
        }
    }
}

/// TLS server name for a check: the `virtualhost` (without any `:port`) if set, else the
/// real's address. An IP name makes rustls send no SNI (SNI cannot carry an address) and
/// verify the certificate against its IP SANs.
pub fn server_name(virtualhost: Option<&str>, addr: IpAddr) -> Result<ServerName<'static>, String> {
    let Some(vh) = virtualhost else {
        return Ok(ServerName::IpAddress(addr.into()));
    };
    let host = strip_port(vh);
    ServerName::try_from(host.to_owned())
        .map_err(|_| format!("virtualhost {vh:?} is not a valid TLS server name"))
}

/// `example.com:8443` → `example.com`, `[::1]:443` → `::1`, `::1` stays `::1`.
fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(host, |(h, _)| h);
    }
    match host.rsplit_once(':') {
        // Exactly one colon followed by digits: a port. More colons: a bare IPv6 address.
        Some((h, port)) if !h.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

/// Handshake over an already connected TCP stream. The error is the outcome reason.
pub async fn connect(
    opts: &TlsOptions,
    name: ServerName<'static>,
    tcp: TcpStream,
) -> Result<TlsStream<TcpStream>, String> {
    let config = client_config(opts).await?;
    TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))
}

/// `verify: false`: accept any certificate, but still check that the server signed the
/// handshake with the key of the certificate it sent, so a broken TLS stack on the real is
/// still detected.
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
        verify_tls12_signature(
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
        verify_tls13_signature(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_name_from_virtualhost_or_address() {
        let addr = IpAddr::from([127, 0, 0, 1]);
        let name = |vh| server_name(vh, addr).map(|n| n.to_str().into_owned());
        assert_eq!(name(None), Ok("127.0.0.1".into()));
        assert!(matches!(
            server_name(None, addr),
            Ok(ServerName::IpAddress(_))
        ));
        assert_eq!(
            name(Some("www.example.test")),
            Ok("www.example.test".into())
        );
        assert_eq!(
            name(Some("www.example.test:8443")),
            Ok("www.example.test".into())
        );
        assert!(matches!(
            server_name(Some("[::1]:443"), addr),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name(Some("::1"), addr),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name(Some("10.1.2.3:443"), addr),
            Ok(ServerName::IpAddress(_))
        ));
        assert!(name(Some("bad_name!")).is_err());
    }

    #[tokio::test]
    async fn configs_are_shared_for_static_cases() {
        let a = client_config(&TlsOptions {
            verify: false,
            ca_file: None,
        })
        .await
        .unwrap();
        let b = client_config(&TlsOptions {
            verify: false,
            ca_file: None,
        })
        .await
        .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = client_config(&TlsOptions::default()).await.unwrap();
        let d = client_config(&TlsOptions::default()).await.unwrap();
        assert!(Arc::ptr_eq(&c, &d));
        assert!(!Arc::ptr_eq(&a, &c));
    }

    #[tokio::test]
    async fn bad_ca_file_is_a_reason() {
        let missing = TlsOptions {
            verify: true,
            ca_file: Some("/nonexistent/ca.pem".into()),
        };
        let e = client_config(&missing).await.unwrap_err();
        assert!(e.starts_with("ca_file /nonexistent/ca.pem: "), "{e}");
        let empty = TlsOptions {
            verify: true,
            ca_file: Some("/dev/null".into()),
        };
        let e = client_config(&empty).await.unwrap_err();
        assert_eq!(e, "ca_file /dev/null: no certificates found");
    }
}
