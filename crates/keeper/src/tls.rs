//! TLS for the secure client port (`secureClientPort`): ZooKeeper's `ssl.*` settings turned into a
//! rustls acceptor. The connection code behind it is the plain port's (see `server.rs`).
//!
//! Stores are read as ZooKeeper reads them: JKS (parsed here, [`jks`]) or PEM; the key store's
//! first private key and its chain are this server's identity, and the trust store's certificates
//! are the issuers client certificates must chain to (`ssl.clientAuth=need`, the default, or
//! `want`).
//!
//! Client certificates are checked by [`TrustStoreVerifier`], not by webpki: webpki refuses
//! X.509 v1 certificates, which Java (and so ZooKeeper) and OpenSSL accept, and which tools still
//! issue (kazoo's own test client certificate is one). The verifier checks what Java's PKIX
//! trust manager checks for a client: each certificate's validity period, each signature up to
//! a trust-store certificate (by issuer name, with rustls's signature algorithms), intermediates
//! that say they are CAs, and an extended key usage, if present, that allows client auth. It
//! checks no revocation (ZooKeeper's `ssl.crl` and `ssl.ocsp` are off by default).

mod der;
pub mod jks;

use crate::config::{ClientAuth, SslConfig, StoreConfig, StoreType, TlsProtocol};
use der::Certificate;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, SubjectPublicKeyInfoDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, PeerMisbehaved, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// Longest chain of intermediates followed from a client certificate to a trust anchor.
const CHAIN_DEPTH_MAX: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{0} is not set; the TLS client port (secureClientPort) needs it")]
    Missing(&'static str),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Jks { path: PathBuf, source: jks::JksError },
    #[error("{path}: {reason}")]
    Store { path: PathBuf, reason: String },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

fn store_error(path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Store { path: path.to_owned(), reason: reason.into() }
}

/// Builds the TLS acceptor for the secure client port from `ssl.*`. Every problem with the
/// stores is reported here, at start-up, naming the file.
pub fn acceptor(ssl: &SslConfig) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (path, chain, key) = load_identity(&ssl.key_store)?;
    let signer = provider.key_provider.load_private_key(key)?;
    let leaf = Certificate::parse(&chain[0]).map_err(|e| store_error(&path, format!("its certificate: {e}")))?;
    if let Some(spki) = signer.public_key() {
        if spki.as_ref() != leaf.spki {
            return Err(store_error(&path, "the private key does not belong to the first certificate of its chain"));
        }
    }
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = ssl
        .protocols()
        .into_iter()
        .map(|p| match p {
            TlsProtocol::V1_2 => &rustls::version::TLS12,
            TlsProtocol::V1_3 => &rustls::version::TLS13,
        })
        .collect();
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&versions)?;
    let builder = match ssl.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        auth => {
            let verifier = TrustStoreVerifier::new(
                &load_trust(&ssl.trust_store)?,
                auth == ClientAuth::Need,
                provider.signature_verification_algorithms,
            );
            builder.with_client_cert_verifier(Arc::new(verifier))
        }
    };
    // Not `with_single_cert`: it checks the key against the certificate with webpki, which
    // refuses v1 certificates (checked above instead).
    let certified = CertifiedKey::new(chain, signer);
    let config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A store's file, its contents and its type (given, else from the name, else from the bytes).
fn read_store(s: &StoreConfig, key: &'static str) -> Result<(PathBuf, Vec<u8>, StoreType), TlsError> {
    let path = s.location.clone().ok_or(TlsError::Missing(key))?;
    let data = std::fs::read(&path).map_err(|source| TlsError::Read { path: path.clone(), source })?;
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let kind = s.store_type.unwrap_or(match ext.as_deref() {
        Some("jks") => StoreType::Jks,
        Some("pem" | "crt" | "cer" | "key") => StoreType::Pem,
        Some("p12" | "pfx") => StoreType::Pkcs12,
        _ if data.starts_with(b"-----") => StoreType::Pem,
        _ => StoreType::Jks,
    });
    if kind == StoreType::Pkcs12 {
        return Err(TlsError::Jks { path, source: jks::JksError::Pkcs12 });
    }
    Ok((path, data, kind))
}

/// `password`, else the contents of `passwordPath` less one trailing line break (as ZooKeeper
/// reads it).
fn password(s: &StoreConfig) -> Result<Option<String>, TlsError> {
    if let Some(p) = &s.password {
        return Ok(Some(p.clone()));
    }
    let Some(path) = &s.password_path else { return Ok(None) };
    let text = std::fs::read_to_string(path).map_err(|source| TlsError::Read { path: path.clone(), source })?;
    let text = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
    Ok(Some(text.to_owned()))
}

type Identity = (PathBuf, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The key store's private key and certificate chain (leaf first).
fn load_identity(s: &StoreConfig) -> Result<Identity, TlsError> {
    let (path, data, kind) = read_store(s, "ssl.keyStore.location")?;
    let (chain, key) = match kind {
        StoreType::Jks => {
            let pw = password(s)?.ok_or(TlsError::Missing("ssl.keyStore.password"))?;
            let jks_err = |source| TlsError::Jks { path: path.clone(), source };
            let store = jks::KeyStore::parse(&data, Some(&pw)).map_err(jks_err)?;
            let mut keys = store.entries.iter().filter_map(|e| match &e.kind {
                jks::EntryKind::PrivateKey { chain, .. } => Some((e, chain)),
                jks::EntryKind::TrustedCert(_) => None,
            });
            let (entry, chain) = keys.next().ok_or_else(|| store_error(&path, "holds no private key entry"))?;
            if keys.next().is_some() {
                tracing::warn!("{}: more than one private key; using {:?}", path.display(), entry.alias);
            }
            let key = entry.private_key(&pw).expect("a private key entry").map_err(jks_err)?;
            let chain = chain.iter().map(|c| CertificateDer::from(c.clone())).collect();
            (chain, PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key)))
        }
        StoreType::Pem => {
            if data.windows(23).any(|w| w == b"ENCRYPTED PRIVATE KEY--") {
                return Err(store_error(&path, "encrypted PEM private keys are not supported; store it unencrypted"));
            }
            let key = PrivateKeyDer::from_pem_slice(&data)
                .map_err(|e| store_error(&path, format!("no usable private key: {e}")))?;
            let chain = CertificateDer::pem_slice_iter(&data)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| store_error(&path, format!("bad certificate: {e}")))?;
            (chain, key)
        }
        StoreType::Pkcs12 => unreachable!("refused by read_store"),
    };
    if chain.is_empty() {
        return Err(store_error(&path, "the private key has no certificate"));
    }
    Ok((path, chain, key))
}

/// The trust store's certificates (DER). As in Java, a JKS trust store's key entries vouch for
/// their own certificates too.
fn load_trust(s: &StoreConfig) -> Result<Vec<Vec<u8>>, TlsError> {
    let (path, data, kind) = read_store(s, "ssl.trustStore.location")?;
    let certs = match kind {
        StoreType::Jks => {
            let store = jks::KeyStore::parse(&data, password(s)?.as_deref())
                .map_err(|source| TlsError::Jks { path: path.clone(), source })?;
            store
                .entries
                .into_iter()
                .filter_map(|e| match e.kind {
                    jks::EntryKind::TrustedCert(c) => Some(c),
                    jks::EntryKind::PrivateKey { chain, .. } => chain.into_iter().next(),
                })
                .collect()
        }
        StoreType::Pem => CertificateDer::pem_slice_iter(&data)
            .map(|c| c.map(|c| c.to_vec()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| store_error(&path, format!("bad certificate: {e}")))?,
        StoreType::Pkcs12 => unreachable!("refused by read_store"),
    };
    if certs.is_empty() {
        return Err(store_error(&path, "holds no certificates"));
    }
    for c in &certs {
        Certificate::parse(c).map_err(|e| store_error(&path, format!("a certificate: {e}")))?;
    }
    Ok(certs)
}

/// A trust-store certificate, as much of it as checking a signature by it needs.
#[derive(Debug)]
struct Anchor {
    subject: Vec<u8>,
    key_alg: Vec<u8>,
    public_key: Vec<u8>,
}

/// Checks client certificates against the trust store (see the module comment for why this is
/// not webpki's verifier).
#[derive(Debug)]
pub struct TrustStoreVerifier {
    anchors: Vec<Anchor>,
    hints: Vec<DistinguishedName>,
    mandatory: bool,
    algs: WebPkiSupportedAlgorithms,
}

impl TrustStoreVerifier {
    /// `roots` must each parse as a certificate (`load_trust` checks).
    fn new(roots: &[Vec<u8>], mandatory: bool, algs: WebPkiSupportedAlgorithms) -> Self {
        let mut anchors = Vec::new();
        let mut hints = Vec::new();
        for c in roots.iter().filter_map(|r| Certificate::parse(r).ok()) {
            hints.push(DistinguishedName::in_sequence(c.subject.value));
            anchors.push(Anchor {
                subject: c.subject.raw.to_vec(),
                key_alg: c.key_alg.to_vec(),
                public_key: c.public_key.to_vec(),
            });
        }
        TrustStoreVerifier { anchors, hints, mandatory, algs }
    }

    /// Whether `cert`'s signature verifies with the issuer key `(key_alg, key)`.
    fn signed_by(&self, cert: &Certificate<'_>, key_alg: &[u8], key: &[u8]) -> bool {
        self.algs.all.iter().any(|a| {
            a.signature_alg_id().as_ref() == cert.signature_alg
                && a.public_key_alg_id().as_ref() == key_alg
                && a.verify_signature(key, cert.tbs, cert.signature).is_ok()
        })
    }
}

fn parse_cert<'a>(c: &'a CertificateDer<'_>) -> Result<Certificate<'a>, rustls::Error> {
    Certificate::parse(c.as_ref()).map_err(|_| CertificateError::BadEncoding.into())
}

fn check_validity(c: &Certificate<'_>, now: i64) -> Result<(), rustls::Error> {
    if now < c.not_before {
        return Err(CertificateError::NotValidYet.into());
    }
    if now > c.not_after {
        return Err(CertificateError::Expired.into());
    }
    Ok(())
}

impl ClientCertVerifier for TrustStoreVerifier {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let now = now.as_secs() as i64;
        let leaf = parse_cert(end_entity)?;
        check_validity(&leaf, now)?;
        if let Some(purposes) = &leaf.ext_key_usage {
            if !purposes.iter().any(|p| *p == der::OID_CLIENT_AUTH || *p == der::OID_ANY_EKU) {
                return Err(CertificateError::InvalidPurpose.into());
            }
        }
        let intermediates = intermediates.iter().map(parse_cert).collect::<Result<Vec<_>, _>>()?;
        let mut cert = &leaf;
        for _ in 0..=CHAIN_DEPTH_MAX {
            let mut bad_signature = false;
            for a in self.anchors.iter().filter(|a| a.subject == cert.issuer.raw) {
                if self.signed_by(cert, &a.key_alg, &a.public_key) {
                    return Ok(ClientCertVerified::assertion());
                }
                bad_signature = true;
            }
            let issuer = intermediates.iter().find(|i| {
                i.subject.raw == cert.issuer.raw
                    && i.is_ca == Some(true)
                    && self.signed_by(cert, i.key_alg, i.public_key)
            });
            match issuer {
                Some(i) => {
                    check_validity(i, now)?;
                    cert = i;
                }
                None if bad_signature => return Err(CertificateError::BadSignature.into()),
                None => break,
            }
        }
        Err(CertificateError::UnknownIssuer.into())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let cert = parse_cert(cert)?;
        let algs = self
            .algs
            .mapping
            .iter()
            .find(|(scheme, _)| *scheme == dss.scheme)
            .ok_or(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?
            .1;
        // As webpki does for TLS 1.2: the scheme's algorithm that fits the key.
        let alg = algs
            .iter()
            .find(|a| a.public_key_alg_id().as_ref() == cert.key_alg)
            .ok_or(PeerMisbehaved::SignedHandshakeWithUnadvertisedSigScheme)?;
        alg.verify_signature(cert.public_key, message, dss.signature())
            .map(|()| HandshakeSignatureValid::assertion())
            .map_err(|_| CertificateError::BadSignature.into())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let cert = parse_cert(cert)?;
        let spki = SubjectPublicKeyInfoDer::from(cert.spki);
        rustls::crypto::verify_tls13_signature_with_raw_key(message, &spki, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
