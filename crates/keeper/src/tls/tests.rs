//! JKS files as pyjks writes them (fixtures from `tests/fixtures/tls/generate.py`, made as
//! kazoo's harness makes its stores), the key protector against a writer of our own, bad
//! passwords and damaged files, client-certificate checks over real handshakes, and a keeper
//! serving its plain and TLS ports at once.

use super::*;
use crate::config::KeeperConfig;
use jks::{Entry, EntryKind, JksError, KeyStore};
use keeper_proto::{ConnectRequest, ConnectResponse, Jute, ReplyHeader, RequestHeader};
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::ServerName;
use std::io;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "apassword";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls").join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap()
}

fn pem_cert(name: &str) -> Vec<u8> {
    CertificateDer::pem_file_iter(fixture(name)).unwrap().next().unwrap().unwrap().to_vec()
}

#[test]
fn pyjks_key_store_opens() {
    let ks = KeyStore::parse(&read("keystore.jks"), Some(PASSWORD)).unwrap();
    assert_eq!(ks.entries.len(), 1);
    let e = &ks.entries[0];
    assert_eq!(e.alias, "server cert");
    let EntryKind::PrivateKey { chain, .. } = &e.kind else { panic!("not a key entry: {e:?}") };
    assert_eq!(chain, &vec![pem_cert("server.pem")]);
    let PrivateKeyDer::Pkcs8(want) = PrivateKeyDer::from_pem_file(fixture("server.pem")).unwrap() else {
        panic!("server.pem holds no PKCS#8 key")
    };
    assert_eq!(e.private_key(PASSWORD).unwrap().unwrap(), want.secret_pkcs8_der());
}

#[test]
fn pyjks_trust_store_opens_with_or_without_password() {
    for pw in [Some(PASSWORD), None] {
        let ks = KeyStore::parse(&read("truststore.jks"), pw).unwrap();
        assert_eq!(ks.entries.len(), 1);
        assert_eq!(ks.entries[0].alias, "kazoo ca");
        let EntryKind::TrustedCert(c) = &ks.entries[0].kind else { panic!("not a trusted cert") };
        assert_eq!(c, &pem_cert("ca.pem"));
        assert!(ks.entries[0].private_key(PASSWORD).is_none());
    }
}

#[test]
fn our_sealing_matches_pyjks_byte_for_byte() {
    let ks = KeyStore::parse(&read("keystore.jks"), Some(PASSWORD)).unwrap();
    let EntryKind::PrivateKey { sealed, .. } = &ks.entries[0].kind else { panic!() };
    let plain = ks.entries[0].private_key(PASSWORD).unwrap().unwrap();
    let mut d = der::Der::new(der::Der::new(sealed).read().unwrap().value);
    d.read().unwrap();
    let salt: [u8; 20] = d.read().unwrap().value[..20].try_into().unwrap();
    assert_eq!(&jks::write::seal(&plain, PASSWORD, salt), sealed);
}

#[test]
fn written_store_round_trips_with_a_non_ascii_password() {
    let pw = "pässwörd €";
    let key: Vec<u8> = (0..=255u8).cycle().take(1217).collect(); // not a multiple of 20
    let entries = [
        Entry {
            alias: "k".into(),
            kind: EntryKind::PrivateKey {
                sealed: jks::write::seal(&key, pw, [7; 20]),
                chain: vec![b"leaf".to_vec(), b"ca".to_vec()],
            },
        },
        Entry { alias: "trusted".into(), kind: EntryKind::TrustedCert(b"root".to_vec()) },
    ];
    let file = jks::write::store(&entries, pw);
    let ks = KeyStore::parse(&file, Some(pw)).unwrap();
    assert_eq!(ks.entries.len(), 2);
    assert_eq!(ks.entries[0].private_key(pw).unwrap().unwrap(), key);
    let EntryKind::PrivateKey { chain, .. } = &ks.entries[0].kind else { panic!() };
    assert_eq!(chain, &vec![b"leaf".to_vec(), b"ca".to_vec()]);
    assert!(matches!(&ks.entries[1].kind, EntryKind::TrustedCert(c) if c == b"root"));
    // Java hashes the password as UTF-16: the same letters as bytes would not open it.
    assert!(matches!(KeyStore::parse(&file, Some("passwort")), Err(JksError::Integrity)));
}

#[test]
fn wrong_passwords_are_named() {
    let data = read("keystore.jks");
    let err = KeyStore::parse(&data, Some("wrong")).unwrap_err();
    assert!(matches!(err, JksError::Integrity), "{err}");
    assert!(err.to_string().contains("password is wrong"), "{err}");
    // Read without checking the file's hash, the key's own check digest still catches it.
    let ks = KeyStore::parse(&data, None).unwrap();
    let err = ks.entries[0].private_key("wrong").unwrap().unwrap_err();
    assert!(matches!(err, JksError::KeyPassword { .. }), "{err}");
}

#[test]
fn damaged_files_are_refused_without_panicking() {
    let data = read("keystore.jks");
    for n in 0..data.len() {
        assert!(KeyStore::parse(&data[..n], Some(PASSWORD)).is_err(), "truncated to {n} bytes");
        assert!(KeyStore::parse(&data[..n], None).is_err(), "truncated to {n} bytes, no password");
    }
    for i in 0..data.len() {
        let mut d = data.clone();
        d[i] ^= 0x40;
        assert!(KeyStore::parse(&d, Some(PASSWORD)).is_err(), "byte {i} flipped");
        // Without the file hash, damage may go unnoticed by the parser, but never panics.
        if let Ok(ks) = KeyStore::parse(&d, None) {
            for e in &ks.entries {
                let _ = e.private_key(PASSWORD);
            }
        }
    }
    let mut trailing = data.clone();
    trailing.push(0);
    assert!(matches!(KeyStore::parse(&trailing, None), Err(JksError::Trailing(1))));
    let mut version = data.clone();
    version[7] = 3;
    assert!(matches!(KeyStore::parse(&version, None), Err(JksError::Version(3))));
    assert!(matches!(KeyStore::parse(&[0xce, 0xce, 0xce, 0xce, 0, 0, 0, 2], None), Err(JksError::Jceks)));
    assert!(matches!(KeyStore::parse(&[0x30, 0x82, 0x01, 0x00], None), Err(JksError::Pkcs12)));
    assert!(matches!(KeyStore::parse(b"-----BEGIN", None), Err(JksError::NotJks(_))));
    let err = KeyStore::parse(&data[..100], None).unwrap_err();
    assert!(err.to_string().contains("runs past the end"), "{err}");
}

fn store(location: &str) -> StoreConfig {
    StoreConfig { location: Some(fixture(location)), password: Some(PASSWORD.into()), ..Default::default() }
}

fn ssl(client_auth: ClientAuth) -> SslConfig {
    SslConfig {
        key_store: store("keystore.jks"),
        trust_store: store("truststore.jks"),
        client_auth,
        ..Default::default()
    }
}

/// A test client trusts any server: the fixture's server certificate is v1, which webpki (the
/// client side's verifier) refuses. Clients here test the server's checks, not their own.
#[derive(Debug)]
struct AnyServer;

impl ServerCertVerifier for AnyServer {
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
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider().signature_verification_algorithms.supported_schemes()
    }
}

/// A client presenting `cert` (fixture `NAME.pem` + `NAME.key`), or no certificate.
fn client(cert: Option<&str>, version: &'static rustls::SupportedProtocolVersion) -> tokio_rustls::TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[version])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer));
    let config = match cert {
        None => builder.with_no_client_auth(),
        Some(name) => {
            let chain = vec![CertificateDer::from(pem_cert(&format!("{name}.pem")))];
            let key = PrivateKeyDer::from_pem_file(fixture(&format!("{name}.key"))).unwrap();
            let signer = provider.key_provider.load_private_key(key).unwrap();
            builder.with_client_cert_resolver(Arc::new(SingleCertAndKey::from(CertifiedKey::new(chain, signer))))
        }
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// One connection: the server's handshake, then "ping" echoed back. Returns the server's error.
async fn exchange(acceptor: TlsAcceptor, connector: tokio_rustls::TlsConnector) -> Result<(), String> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut s = acceptor.accept(tcp).await.map_err(|e| e.to_string())?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        s.write_all(&buf).await.map_err(|e| e.to_string())?;
        s.flush().await.map_err(|e| e.to_string())
    });
    let tcp = TcpStream::connect(addr).await.unwrap();
    let client = async {
        let mut s = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
        s.write_all(b"ping").await?;
        s.flush().await?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await?;
        Ok::<_, io::Error>(buf)
    }
    .await;
    let server = server.await.unwrap();
    match &server {
        Ok(()) => assert_eq!(&client.unwrap(), b"ping"),
        Err(_) => assert!(client.is_err(), "the client got an answer from a server that refused it"),
    }
    server
}

#[tokio::test]
async fn client_certificates_are_checked_against_the_trust_store() {
    use rustls::version::{TLS12, TLS13};
    let need = acceptor(&ssl(ClientAuth::Need)).unwrap();
    for v in [&TLS13, &TLS12] {
        exchange(need.clone(), client(Some("client"), v)).await.unwrap();
    }
    let err = exchange(need.clone(), client(None, &TLS13)).await.unwrap_err();
    assert!(err.contains("no certificate"), "{err}");
    let err = exchange(need.clone(), client(Some("expired"), &TLS13)).await.unwrap_err();
    assert!(err.contains("Expired"), "{err}");
    // Same issuer name as the trusted CA, another key: the signature gives it away.
    let err = exchange(need.clone(), client(Some("stranger"), &TLS12)).await.unwrap_err();
    assert!(err.contains("BadSignature"), "{err}");

    let want = acceptor(&ssl(ClientAuth::Want)).unwrap();
    exchange(want.clone(), client(None, &TLS13)).await.unwrap();
    exchange(want.clone(), client(Some("client"), &TLS13)).await.unwrap();
    assert!(exchange(want, client(Some("stranger"), &TLS13)).await.is_err());

    let none = SslConfig { trust_store: StoreConfig::default(), ..ssl(ClientAuth::None) };
    exchange(acceptor(&none).unwrap(), client(None, &TLS13)).await.unwrap();
}

#[tokio::test]
async fn pem_stores_work_like_jks() {
    let pem = SslConfig { key_store: store("server.pem"), trust_store: store("ca.pem"), ..ssl(ClientAuth::Need) };
    let a = acceptor(&pem).unwrap();
    exchange(a.clone(), client(Some("client"), &rustls::version::TLS13)).await.unwrap();
    assert!(exchange(a, client(Some("stranger"), &rustls::version::TLS13)).await.is_err());
}

fn start_error(c: &SslConfig) -> String {
    match acceptor(c) {
        Ok(_) => panic!("accepted {c:?}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_settings_fail_at_start_naming_the_problem() {
    let mut c = ssl(ClientAuth::Need);
    c.key_store.password = Some("wrong".into());
    let err = start_error(&c);
    assert!(err.contains("keystore.jks") && err.contains("password is wrong"), "{err}");

    let mut c = ssl(ClientAuth::Need);
    c.trust_store = StoreConfig::default();
    assert!(matches!(acceptor(&c), Err(TlsError::Missing("ssl.trustStore.location"))));

    let mut c = ssl(ClientAuth::Need);
    c.key_store.password = None;
    assert!(matches!(acceptor(&c), Err(TlsError::Missing("ssl.keyStore.password"))));

    let dir = tempfile::tempdir().unwrap();
    let pw_file = dir.path().join("pw");
    std::fs::write(&pw_file, "apassword\n").unwrap();
    c.key_store.password_path = Some(pw_file);
    acceptor(&c).unwrap();

    let mut c = ssl(ClientAuth::Need);
    c.key_store.location = Some(dir.path().join("missing.jks"));
    assert!(matches!(acceptor(&c), Err(TlsError::Read { .. })));

    // A trust store is not a key store.
    let mut c = ssl(ClientAuth::Need);
    c.key_store = store("truststore.jks");
    assert!(start_error(&c).contains("no private key"));

    let p12 = dir.path().join("store.p12");
    std::fs::write(&p12, [0x30, 0x82, 0, 0]).unwrap();
    let mut c = ssl(ClientAuth::Need);
    c.key_store.location = Some(p12);
    assert!(start_error(&c).contains("PKCS#12 is not supported"));
}

async fn write_frame<S: AsyncWrite + Unpin>(s: &mut S, body: &[u8]) -> io::Result<()> {
    s.write_u32(body.len() as u32).await?;
    s.write_all(body).await?;
    s.flush().await
}

async fn read_frame<S: AsyncRead + Unpin>(s: &mut S) -> io::Result<Vec<u8>> {
    let n = s.read_u32().await?;
    let mut b = vec![0; n as usize];
    s.read_exact(&mut b).await?;
    Ok(b)
}

/// Opens a session and pings it: the ZooKeeper protocol, whatever carries it.
async fn session<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> io::Result<i64> {
    let req = ConnectRequest { timeout_ms: 10_000, passwd: vec![0; 16], ..Default::default() };
    write_frame(s, &req.to_bytes()).await?;
    let resp = ConnectResponse::from_bytes(&read_frame(s).await?).unwrap();
    assert!(resp.timeout_ms > 0 && resp.session_id != 0, "{resp:?}");
    write_frame(s, &RequestHeader { xid: -2, op: 11 }.to_bytes()).await?;
    let reply = ReplyHeader::from_bytes(&read_frame(s).await?).unwrap();
    assert_eq!((reply.xid, reply.err), (-2, 0));
    Ok(resp.session_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeper_serves_plain_and_tls_ports_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = KeeperConfig {
        data_dir: dir.path().to_owned(),
        client_addr: "127.0.0.1:0".parse().unwrap(),
        secure_client_port: Some(0),
        ssl: ssl(ClientAuth::Need),
        ..Default::default()
    };
    let shutdown = CancellationToken::new();
    let keeper = crate::server::Keeper::start(cfg, shutdown.clone()).await.unwrap();
    let tls_addr = keeper.secure_client_addr.unwrap();
    assert_eq!(tls_addr.ip(), keeper.client_addr.ip());

    // Not TLS at all, then TLS without a certificate: each closes only its own connection.
    let mut junk = TcpStream::connect(tls_addr).await.unwrap();
    junk.write_all(b"\x00\x00\x00\x2chello, this is not a TLS client hello\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), junk.read(&mut buf)).await.unwrap().unwrap_or(0);
    assert!(n == 0 || buf[0] == 0x15, "expected a close or a TLS alert, got {:?}", &buf[..n]);
    let tcp = TcpStream::connect(tls_addr).await.unwrap();
    let mut anonymous =
        client(None, &rustls::version::TLS13).connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    assert!(session(&mut anonymous).await.is_err());

    let tcp = TcpStream::connect(tls_addr).await.unwrap();
    let mut tls = client(Some("client"), &rustls::version::TLS13)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut plain = TcpStream::connect(keeper.client_addr).await.unwrap();
    let a = session(&mut tls).await.unwrap();
    let b = session(&mut plain).await.unwrap();
    assert_ne!(a, b);

    // Four-letter words answer over TLS too.
    let tcp = TcpStream::connect(tls_addr).await.unwrap();
    let mut s = client(Some("client"), &rustls::version::TLS13)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    s.write_all(b"ruok").await.unwrap();
    s.flush().await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    assert_eq!(answer, "imok");

    shutdown.cancel();
    keeper.wait().await.unwrap();
}
