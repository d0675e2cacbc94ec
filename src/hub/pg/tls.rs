//! TLS to the database: the URL's `sslmode` as libpq means it, over the rustls the hub
//! already serves with (no second TLS stack), and `[store] ca_file` for a private CA.
//!
//! tokio-postgres knows only disable/prefer/require and verifies nothing itself, so the
//! mode is taken out of the URL here and becomes the connector's verifier:
//! - `disable`: clear text;
//! - `prefer`, `require`: encrypted; the certificate is checked against `ca_file` when
//!   one is given (libpq does so with a root certificate file), else not at all;
//! - `verify-ca`: the chain must lead to `ca_file` (else the public roots), any name;
//! - `verify-full`: that, and the certificate must name the host in the URL.
//!
//! Without `sslmode`: `prefer` to a loopback or unix-socket database; to another host
//! `require` when the hub's own `[tls]` is on (member data must not cross a network in
//! clear text), else `prefer`, and the hub warns if the server then spoke clear text.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};
use tokio_postgres::Socket;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Mode {
    fn parse(s: &str) -> Result<Mode, String> {
        Ok(match s {
            "disable" => Mode::Disable,
            "prefer" => Mode::Prefer,
            "require" => Mode::Require,
            "verify-ca" => Mode::VerifyCa,
            "verify-full" => Mode::VerifyFull,
            // `allow` tries clear text first: not offered.
            _ => {
                return Err(format!(
                    "sslmode {s:?}: use disable, prefer, require, verify-ca or verify-full"
                ))
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Disable => "disable",
            Mode::Prefer => "prefer",
            Mode::Require => "require",
            Mode::VerifyCa => "verify-ca",
            Mode::VerifyFull => "verify-full",
        }
    }
}

/// A database URL taken apart: the client config without `sslmode`, the mode, and the
/// connector that carries it out.
pub struct Target {
    pub config: tokio_postgres::Config,
    pub mode: Mode,
    /// Every host is loopback or a unix socket.
    pub loopback: bool,
    pub connector: Connector,
}

/// `url` without its `sslmode`, and the mode given (URL or key=value form).
fn take_mode(url: &str) -> Result<(String, Option<Mode>), String> {
    let mut mode = None;
    let mut pick = |kv: &str| -> Result<bool, String> {
        match kv.split_once('=') {
            Some(("sslmode", v)) => {
                mode = Some(Mode::parse(v.trim_matches('\''))?);
                Ok(false)
            }
            _ => Ok(true),
        }
    };
    let rest = if url.contains("://") {
        match url.split_once('?') {
            Some((base, query)) => {
                let mut kept = Vec::new();
                for kv in query.split('&') {
                    if pick(kv)? {
                        kept.push(kv);
                    }
                }
                if kept.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
            None => url.to_string(),
        }
    } else {
        let mut kept = Vec::new();
        for kv in url.split_whitespace() {
            if pick(kv)? {
                kept.push(kv);
            }
        }
        kept.join(" ")
    };
    Ok((rest, mode))
}

fn is_loopback(host: &Host) -> bool {
    match host {
        Host::Unix(_) => true,
        Host::Tcp(h) => h == "localhost" || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()),
    }
}

/// The target of `url`; `hub_tls` = the hub serves HTTPS (its `[tls]` is on).
pub fn target(url: &str, ca_file: Option<&Path>, hub_tls: bool) -> Result<Target, String> {
    let (rest, given) = take_mode(url)?;
    let mut config: tokio_postgres::Config = rest.parse().map_err(|e: tokio_postgres::Error| e.to_string())?;
    let loopback = config.get_hosts().iter().all(is_loopback) && config.get_hostaddrs().iter().all(|a| a.is_loopback());
    let mode = given.unwrap_or(if loopback || !hub_tls {
        Mode::Prefer
    } else {
        Mode::Require
    });
    config.ssl_mode(match mode {
        Mode::Disable => SslMode::Disable,
        Mode::Prefer => SslMode::Prefer,
        _ => SslMode::Require,
    });
    let roots = match ca_file {
        Some(path) => Some(load_roots(path)?),
        None => None,
    };
    let connector = if mode == Mode::Disable {
        Connector(None)
    } else {
        Connector(Some(client_config(mode, roots)?))
    };
    Ok(Target {
        config,
        mode,
        loopback,
        connector,
    })
}

fn load_roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    use rustls::pki_types::pem::PemObject;
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("store.ca_file {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("store.ca_file {}: no PEM certificate in it", path.display()));
    }
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots
            .add(c)
            .map_err(|e| format!("store.ca_file {}: {e}", path.display()))?;
    }
    Ok(roots)
}

fn client_config(mode: Mode, roots: Option<rustls::RootCertStore>) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let verify = |roots: rustls::RootCertStore| {
        WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("TLS: {e}"))
    };
    let public = || rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, roots) {
        (Mode::VerifyFull, roots) => verify(roots.unwrap_or_else(public))?,
        (Mode::VerifyCa, roots) => Arc::new(AnyName(verify(roots.unwrap_or_else(public))?)),
        (_, Some(roots)) => Arc::new(AnyName(verify(roots)?)),
        (_, None) => Arc::new(Unchecked(provider)),
    };
    Ok(Arc::new(
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

/// verify-ca: the chain is checked, the name is not (webpki checks the name last, so a
/// wrong name means the chain was good).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// prefer/require without a CA (libpq's meaning): encrypted, the certificate unchecked,
/// but the handshake's signatures still verified.
#[derive(Debug)]
struct Unchecked(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Whether a connection failed on TLS itself (a certificate refused, a server without
/// TLS under `require`): final, retrying will not change it.
pub fn refused(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.downcast_ref::<rustls::Error>().is_some() || e.to_string() == "server does not support TLS" {
            return true;
        }
        cur = e.source();
    }
    false
}

/// `e` and its causes, each once (tokio-postgres leaves the TLS cause out of its message).
pub fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let said = c.to_string();
        if !out.contains(&said) {
            out = format!("{out}: {said}");
        }
        cur = c.source();
    }
    out
}

/// The `MakeTlsConnect` glue over tokio-rustls; `None` under `sslmode=disable`.
#[derive(Clone)]
pub struct Connector(Option<Arc<rustls::ClientConfig>>);

pub struct Connect {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl MakeTlsConnect<Socket> for Connector {
    type Stream = Stream;
    type TlsConnect = Connect;
    type Error = BoxError;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Connect, BoxError> {
        let config = self.0.clone().ok_or("TLS is off (sslmode=disable)")?;
        let name = ServerName::try_from(domain.to_string()).map_err(|e| format!("host {domain:?}: {e}"))?;
        Ok(Connect { config, name })
    }
}

impl TlsConnect<Socket> for Connect {
    type Stream = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn connect(self, socket: Socket) -> Self::Future {
        Box::pin(async move {
            let tls = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, socket)
                .await
                .map_err(|e| -> BoxError {
                    // The rustls error itself, so that `refused` finds it and the message is its own.
                    match e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                        Some(r) => Box::new(r.clone()),
                        None => Box::new(e),
                    }
                })?;
            Ok(Stream(tls))
        })
    }
}

/// A TLS connection to the database.
pub struct Stream(tokio_rustls::client::TlsStream<Socket>);

impl tokio_postgres::tls::TlsStream for Stream {
    // No channel binding: SCRAM without -PLUS, as over a connector that offers none.
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl AsyncRead for Stream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Stream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_taken_out_of_the_url() {
        let (rest, m) = take_mode("postgres://h@db/x?sslmode=verify-full&application_name=a").unwrap();
        assert_eq!(
            (rest.as_str(), m),
            ("postgres://h@db/x?application_name=a", Some(Mode::VerifyFull))
        );
        let (rest, m) = take_mode("postgres://h@db/x?sslmode=disable").unwrap();
        assert_eq!((rest.as_str(), m), ("postgres://h@db/x", Some(Mode::Disable)));
        let (rest, m) = take_mode("host=db sslmode=verify-ca user=h").unwrap();
        assert_eq!((rest.as_str(), m), ("host=db user=h", Some(Mode::VerifyCa)));
        assert!(take_mode("postgres://db/x?sslmode=allow")
            .unwrap_err()
            .contains("sslmode \"allow\""));
    }

    #[test]
    fn the_default_mode_refuses_clear_text_off_the_host_when_the_hub_serves_tls() {
        let mode = |url: &str, hub_tls| target(url, None, hub_tls).unwrap().mode;
        assert_eq!(mode("postgres://h@127.0.0.1/x", true), Mode::Prefer);
        assert_eq!(mode("postgres://h@localhost/x", true), Mode::Prefer);
        assert_eq!(mode("postgres://h@db.example/x", true), Mode::Require);
        assert_eq!(mode("postgres://h@db.example/x", false), Mode::Prefer);
        assert_eq!(mode("postgres://h@db.example/x?sslmode=disable", true), Mode::Disable);
    }
}
