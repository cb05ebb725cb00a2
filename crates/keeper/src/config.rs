//! Keeper configuration: one struct whose `Default` is the single source of defaults, filled
//! either from herd's own flags or from ZooKeeper's zoo.cfg plus Java system properties, so
//! that an operator migrates by swapping the binary.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

/// ZooKeeper's default `jute.maxbuffer` (0xfffff, just under 1 MiB).
pub const JUTE_MAX_BUFFER_DEFAULT: usize = 0xfffff;

/// Which four-letter words answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FourLetterWords {
    All,
    Only(BTreeSet<String>),
}

impl FourLetterWords {
    pub fn allows(&self, word: &str) -> bool {
        match self {
            FourLetterWords::All => true,
            FourLetterWords::Only(s) => s.contains(word),
        }
    }

    /// `4lw.commands.whitelist` syntax: comma-separated words, or `*`.
    pub fn parse(s: &str) -> Self {
        let words: BTreeSet<String> = s.split(',').map(|w| w.trim().to_owned()).filter(|w| !w.is_empty()).collect();
        if words.contains("*") {
            FourLetterWords::All
        } else {
            FourLetterWords::Only(words)
        }
    }
}

/// A `server.N=host:peerPort:electionPort[;clientPort]` line, kept for the ensemble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerSpec {
    pub id: u64,
    pub spec: String,
}

impl PeerSpec {
    /// `host:peerPort`, where this member's replication listens (ZooKeeper's quorum port).
    pub fn peer_addr(&self) -> Result<String, ConfigError> {
        let bad = || ConfigError::BadValue { what: format!("server.{}", self.id), value: self.spec.clone() };
        let addr = self.spec.split(';').next().unwrap_or_default();
        let mut parts = addr.split(':');
        let host = parts.next().filter(|h| !h.is_empty()).ok_or_else(bad)?;
        let port: u16 = parts.next().and_then(|p| p.trim().parse().ok()).ok_or_else(bad)?;
        Ok(format!("{}:{port}", host.trim()))
    }

    /// `server.N=...:observer`: a member that follows the log but does not vote.
    pub fn is_observer(&self) -> bool {
        self.spec.split(';').next().unwrap_or_default().split(':').any(|p| p.trim() == "observer")
    }
}

#[derive(Debug, Clone)]
pub struct KeeperConfig {
    /// This server's id (`myid`); the high byte of the session ids it issues.
    pub server_id: u64,
    /// Where the log, snapshots and myid live.
    pub data_dir: PathBuf,
    /// The client port's address (`clientPortAddress:clientPort`).
    pub client_addr: SocketAddr,
    /// The unit of session timeouts (`tickTime`), in milliseconds.
    pub tick_time_ms: u64,
    /// Smallest session timeout granted; default 2 x tickTime.
    pub min_session_timeout_ms: Option<u64>,
    /// Largest session timeout granted; default 20 x tickTime.
    pub max_session_timeout_ms: Option<u64>,
    /// Concurrent connections allowed from one client address (`maxClientCnxns`; 0 = no limit).
    pub max_client_cnxns: usize,
    /// Requests one connection may have in flight before the server stops reading from it.
    pub max_outstanding_per_conn: usize,
    /// Largest frame accepted (`jute.maxbuffer`); a larger one closes the connection.
    pub jute_max_buffer: usize,
    /// `zookeeper.DigestAuthenticationProvider.superDigest`: "super:<base64 sha1>".
    pub super_digest: Option<String>,
    /// `zookeeper.extendedTypesEnabled`: allow TTL nodes.
    pub extended_types: bool,
    /// `4lw.commands.whitelist`.
    pub four_letter_words: FourLetterWords,
    /// Log entries between snapshots (`snapCount`).
    pub snap_count: u64,
    /// How often container and TTL nodes are checked for reaping (`znode.container.checkIntervalMs`).
    pub container_check_interval_ms: u64,
    /// `server.N` lines; one or none means standalone.
    pub peers: Vec<PeerSpec>,
    /// `readonlymode.enabled`: without a quorum, accept clients that ask for read-only sessions.
    pub read_only_enabled: bool,
    /// `reconfigEnabled`: allow the reconfig op (by a super user, or whoever may write
    /// `/zookeeper/config`).
    pub reconfig_enabled: bool,
    /// `secureClientPort`: the TLS client port; none = no TLS port.
    pub secure_client_port: Option<u16>,
    /// `secureClientPortAddress`: where the TLS port listens; default the client port's address.
    pub secure_client_host: Option<IpAddr>,
    /// The TLS port's keys and rules (`ssl.*`).
    pub ssl: SslConfig,
    /// `herd.fastExpiryGraceMs`: the grace a session that opted in to socket-close fast expiry
    /// (`addAuth("herd", "fast-expiry")`) gets to reconnect after its connection broke.
    pub fast_expiry_grace_ms: u32,
    /// `herd.adaptiveSessionTimeout`: a session that was suspected (silent for half its
    /// timeout) and then heard from again gets a longer timeout (x1.5, up to 4x), decaying back
    /// with a 10-minute half-life. Off: ZooKeeper's fixed timeouts.
    pub adaptive_sessions: bool,
}

/// How a key or trust store file is encoded (`ssl.keyStore.type`, `ssl.trustStore.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreType {
    /// Java KeyStore (`keytool`'s format before Java 9).
    Jks,
    /// PEM: certificates, and for a key store an unencrypted private key.
    Pem,
    /// Recognised so that the error can say it is not supported.
    Pkcs12,
}

impl StoreType {
    fn parse(what: &str, v: &str) -> Result<Option<StoreType>, ConfigError> {
        match v.trim().to_ascii_uppercase().as_str() {
            "" => Ok(None),
            "JKS" => Ok(Some(StoreType::Jks)),
            "PEM" => Ok(Some(StoreType::Pem)),
            "PKCS12" => Ok(Some(StoreType::Pkcs12)),
            _ => Err(bad(what, v)),
        }
    }
}

/// A key or trust store (`ssl.keyStore.*`, `ssl.trustStore.*`). Its `Debug` hides the password.
#[derive(Clone, Default)]
pub struct StoreConfig {
    /// `location`: the file.
    pub location: Option<PathBuf>,
    /// `password`; for a key store it also opens the private key, as in ZooKeeper.
    pub password: Option<String>,
    /// `passwordPath`: a file holding the password (one trailing newline is not part of it).
    pub password_path: Option<PathBuf>,
    /// `type`; none = from the file name (`.jks`, `.pem`, `.p12`/`.pfx`), else from its content.
    pub store_type: Option<StoreType>,
}

impl std::fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreConfig")
            .field("location", &self.location)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("password_path", &self.password_path)
            .field("store_type", &self.store_type)
            .finish()
    }
}

/// `ssl.clientAuth`: whether TLS clients must present a certificate the trust store vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate is asked for.
    None,
    /// Asked for; a client without one is let in, one with a bad one is not.
    Want,
    /// Required (ZooKeeper's default).
    Need,
}

/// A TLS protocol version (`ssl.protocol`, `ssl.enabledProtocols`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsProtocol {
    V1_2,
    V1_3,
}

impl TlsProtocol {
    fn parse(what: &str, v: &str) -> Result<TlsProtocol, ConfigError> {
        match v.trim() {
            "TLSv1.2" => Ok(TlsProtocol::V1_2),
            "TLSv1.3" => Ok(TlsProtocol::V1_3),
            _ => Err(bad(what, v)),
        }
    }
}

/// The TLS client port's settings, named as ZooKeeper's `ssl.*` keys.
#[derive(Debug, Clone)]
pub struct SslConfig {
    /// This server's private key and certificate chain.
    pub key_store: StoreConfig,
    /// The issuers that client certificates must chain to.
    pub trust_store: StoreConfig,
    /// `ssl.clientAuth`: none, want or need (default need).
    pub client_auth: ClientAuth,
    /// `ssl.protocol` (default TLSv1.3): with no `ssl.enabledProtocols`, TLSv1.3 enables 1.3
    /// and 1.2, TLSv1.2 only 1.2, as in ZooKeeper.
    pub protocol: TlsProtocol,
    /// `ssl.enabledProtocols`: comma-separated, overrides `ssl.protocol`.
    pub enabled_protocols: Option<Vec<TlsProtocol>>,
}

impl Default for SslConfig {
    fn default() -> Self {
        SslConfig {
            key_store: StoreConfig::default(),
            trust_store: StoreConfig::default(),
            client_auth: ClientAuth::Need,
            protocol: TlsProtocol::V1_3,
            enabled_protocols: None,
        }
    }
}

impl SslConfig {
    /// The protocol versions the TLS port accepts.
    pub fn protocols(&self) -> Vec<TlsProtocol> {
        match (&self.enabled_protocols, self.protocol) {
            (Some(p), _) => p.clone(),
            (None, TlsProtocol::V1_3) => vec![TlsProtocol::V1_3, TlsProtocol::V1_2],
            (None, TlsProtocol::V1_2) => vec![TlsProtocol::V1_2],
        }
    }
}

impl Default for KeeperConfig {
    fn default() -> Self {
        KeeperConfig {
            server_id: 0,
            data_dir: PathBuf::from("herd-data/keeper"),
            client_addr: "127.0.0.1:2181".parse().expect("literal address"),
            tick_time_ms: 2000,
            min_session_timeout_ms: None,
            max_session_timeout_ms: None,
            max_client_cnxns: 60,
            max_outstanding_per_conn: 1000,
            jute_max_buffer: JUTE_MAX_BUFFER_DEFAULT,
            super_digest: None,
            extended_types: false,
            four_letter_words: FourLetterWords::All,
            snap_count: 100_000,
            container_check_interval_ms: 1000,
            peers: Vec::new(),
            read_only_enabled: false,
            reconfig_enabled: false,
            secure_client_port: None,
            secure_client_host: None,
            ssl: SslConfig::default(),
            fast_expiry_grace_ms: 1000,
            adaptive_sessions: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{what}: bad value {value:?}")]
    BadValue { what: String, value: String },
    #[error("line {line}: expected key=value, got {text:?}")]
    Syntax { line: usize, text: String },
}

fn bad(what: &str, value: &str) -> ConfigError {
    ConfigError::BadValue { what: what.to_owned(), value: value.to_owned() }
}

fn num<T: std::str::FromStr>(what: &str, v: &str) -> Result<T, ConfigError> {
    v.trim().parse().map_err(|_| bad(what, v))
}

fn boolean(what: &str, v: &str) -> Result<bool, ConfigError> {
    match v.trim() {
        "true" | "yes" => Ok(true),
        "false" | "no" => Ok(false),
        _ => Err(bad(what, v)),
    }
}

impl KeeperConfig {
    pub fn min_session_timeout(&self) -> u64 {
        self.min_session_timeout_ms.unwrap_or(2 * self.tick_time_ms)
    }

    pub fn max_session_timeout(&self) -> u64 {
        self.max_session_timeout_ms.unwrap_or(20 * self.tick_time_ms)
    }

    /// The TLS client port's address: `secureClientPortAddress`, else the client port's host.
    pub fn secure_client_addr(&self) -> Option<SocketAddr> {
        let port = self.secure_client_port?;
        Some(SocketAddr::new(self.secure_client_host.unwrap_or(self.client_addr.ip()), port))
    }

    /// Reads a zoo.cfg. Keys ZooKeeper would pass on as system properties are applied as such;
    /// unknown keys are returned as warnings and otherwise ignored. Absent a whitelist, only
    /// `srvr` answers, as in ZooKeeper 3.8.
    pub fn from_zoo_cfg(path: &Path) -> Result<(KeeperConfig, Vec<String>), ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let mut c = KeeperConfig { four_letter_words: FourLetterWords::parse("srvr"), ..Default::default() };
        let mut warnings = Vec::new();
        let mut port: Option<u16> = None;
        let mut host: Option<String> = None;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(ConfigError::Syntax { line: i + 1, text: line.to_owned() });
            };
            let (k, v) = (k.trim(), v.trim());
            match k {
                "dataDir" => c.data_dir = PathBuf::from(v),
                "clientPort" => port = Some(num(k, v)?),
                "clientPortAddress" => host = Some(v.to_owned()),
                _ if k.starts_with("server.") => {
                    let id = num(k, &k["server.".len()..])?;
                    c.peers.push(PeerSpec { id, spec: v.to_owned() });
                }
                _ => {
                    if !c.set_property(k, v)? {
                        warnings.push(format!("zoo.cfg: unknown key {k:?} ignored"));
                    }
                }
            }
        }
        let myid = c.data_dir.join("myid");
        if let Ok(s) = std::fs::read_to_string(&myid) {
            c.server_id = num("myid", &s)?;
        }
        let port = port.unwrap_or(2181);
        let host = host.unwrap_or_else(|| "0.0.0.0".to_owned());
        c.client_addr = format!("{host}:{port}").parse().map_err(|_| bad("clientPortAddress", &host))?;
        Ok((c, warnings))
    }

    /// Applies one ZooKeeper setting given either as a zoo.cfg key or as a Java system property
    /// (`zookeeper.` prefix optional). Returns false for a key it does not know.
    pub fn set_property(&mut self, key: &str, v: &str) -> Result<bool, ConfigError> {
        let k = key.strip_prefix("zookeeper.").unwrap_or(key);
        match k {
            "tickTime" => self.tick_time_ms = num(key, v)?,
            "minSessionTimeout" => self.min_session_timeout_ms = non_negative(num(key, v)?),
            "maxSessionTimeout" => self.max_session_timeout_ms = non_negative(num(key, v)?),
            "maxClientCnxns" => self.max_client_cnxns = num(key, v)?,
            "globalOutstandingLimit" => self.max_outstanding_per_conn = num::<usize>(key, v)?.max(1),
            "jute.maxbuffer" => self.jute_max_buffer = num(key, v)?,
            "DigestAuthenticationProvider.superDigest" => self.super_digest = Some(v.to_owned()),
            "extendedTypesEnabled" => self.extended_types = boolean(key, v)?,
            "4lw.commands.whitelist" => self.four_letter_words = FourLetterWords::parse(v),
            "reconfigEnabled" => self.reconfig_enabled = boolean(key, v)?,
            "herd.fastExpiryGraceMs" => self.fast_expiry_grace_ms = num::<u32>(key, v)?.max(1),
            "herd.adaptiveSessionTimeout" => self.adaptive_sessions = boolean(key, v)?,
            "readonlymode.enabled" => self.read_only_enabled = boolean(key, v)?,
            "snapCount" => self.snap_count = num::<u64>(key, v)?.max(2),
            "znode.container.checkIntervalMs" => self.container_check_interval_ms = num::<u64>(key, v)?.max(10),
            "secureClientPort" => self.secure_client_port = Some(num(key, v)?),
            "secureClientPortAddress" => self.secure_client_host = Some(num(key, v)?),
            "ssl.keyStore.location" => self.ssl.key_store.location = Some(PathBuf::from(v)),
            "ssl.keyStore.password" => self.ssl.key_store.password = Some(v.to_owned()),
            "ssl.keyStore.passwordPath" => self.ssl.key_store.password_path = Some(PathBuf::from(v)),
            "ssl.keyStore.type" => self.ssl.key_store.store_type = StoreType::parse(key, v)?,
            "ssl.trustStore.location" => self.ssl.trust_store.location = Some(PathBuf::from(v)),
            "ssl.trustStore.password" => self.ssl.trust_store.password = Some(v.to_owned()),
            "ssl.trustStore.passwordPath" => self.ssl.trust_store.password_path = Some(PathBuf::from(v)),
            "ssl.trustStore.type" => self.ssl.trust_store.store_type = StoreType::parse(key, v)?,
            "ssl.clientAuth" => {
                self.ssl.client_auth = match v.trim().to_ascii_lowercase().as_str() {
                    "" | "need" => ClientAuth::Need,
                    "want" => ClientAuth::Want,
                    "none" => ClientAuth::None,
                    _ => return Err(bad(key, v)),
                }
            }
            "ssl.protocol" => self.ssl.protocol = TlsProtocol::parse(key, v)?,
            "ssl.enabledProtocols" => {
                let p = v.split(',').filter(|p| !p.trim().is_empty()).map(|p| TlsProtocol::parse(key, p));
                self.ssl.enabled_protocols = Some(p.collect::<Result<_, _>>()?);
            }
            // ZooKeeper needs the Netty factory for TLS; herd has one connection path for both.
            "serverCnxnFactory" => {}
            // Accepted for compatibility; they tune parts of ZooKeeper that herd does not have
            // or does differently (the ensemble reads its own timing).
            "initLimit"
            | "syncLimit"
            | "dataLogDir"
            | "standaloneEnabled"
            | "admin.enableServer"
            | "admin.serverPort"
            | "autopurge.snapRetainCount"
            | "autopurge.purgeInterval"
            | "preAllocSize"
            | "electionAlg"
            | "quorumListenOnAllIPs"
            | "skipACL"
            | "syncEnabled"
            | "peerType"
            | "maxCnxns"
            | "clientPortListenBacklog"
            | "metricsProvider.className"
            | "fsync.warningthresholdms"
            | "authProvider.1"
            | "authProvider.sasl"
            | "requireClientAuthScheme"
            | "watchManagerName"
            | "forceSync"
            | "leaderServes"
            | "cnxTimeout"
            | "audit.enable" => {}
            _ => return Ok(false),
        }
        Ok(true)
    }
}

fn non_negative(v: i64) -> Option<u64> {
    (v >= 0).then_some(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zoo_cfg_with_properties_and_unknown_keys() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("myid"), "3\n").unwrap();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            format!(
                "# comment\ntickTime=500\ndataDir={}\nclientPort=21810\nclientPortAddress=127.0.0.1\n\
                 maxSessionTimeout=30000\nserver.3=127.0.0.1:2888:3888;21810\nwhatIsThis=1\n\
                 4lw.commands.whitelist=ruok, stat\n",
                dir.path().display()
            ),
        )
        .unwrap();
        let (mut c, warnings) = KeeperConfig::from_zoo_cfg(&cfg).unwrap();
        assert_eq!(c.server_id, 3);
        assert_eq!(c.client_addr.to_string(), "127.0.0.1:21810");
        assert_eq!(c.min_session_timeout(), 1000);
        assert_eq!(c.max_session_timeout(), 30000);
        assert_eq!(c.peers.len(), 1);
        assert!(c.four_letter_words.allows("stat") && !c.four_letter_words.allows("dump"));
        assert_eq!(warnings.len(), 1);
        assert!(c.set_property("zookeeper.extendedTypesEnabled", "true").unwrap());
        assert!(c.extended_types);
        assert!(c.set_property("zookeeper.extendedTypesEnabled", "maybe").is_err());
        assert!(!c.set_property("zookeeper.nonsense", "1").unwrap());
    }

    #[test]
    fn tls_keys_from_zoo_cfg_and_properties() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("zoo.cfg");
        std::fs::write(
            &cfg,
            "clientPort=21810\nclientPortAddress=127.0.0.1\nsecureClientPort=21814\n\
             serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory\n\
             ssl.keyStore.location=/k/keystore.jks\nssl.keyStore.password=apassword\n\
             ssl.trustStore.location=/k/truststore.jks\nssl.trustStore.password=apassword\n",
        )
        .unwrap();
        let (mut c, warnings) = KeeperConfig::from_zoo_cfg(&cfg).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(c.secure_client_addr(), Some("127.0.0.1:21814".parse().unwrap()));
        assert_eq!(c.ssl.key_store.location.as_deref(), Some(Path::new("/k/keystore.jks")));
        assert_eq!(c.ssl.trust_store.password.as_deref(), Some("apassword"));
        assert!(!format!("{c:?}").contains("apassword"));
        assert_eq!(c.ssl.client_auth, ClientAuth::Need);
        assert_eq!(c.ssl.protocols(), vec![TlsProtocol::V1_3, TlsProtocol::V1_2]);

        assert!(c.set_property("zookeeper.ssl.clientAuth", "want").unwrap());
        assert_eq!(c.ssl.client_auth, ClientAuth::Want);
        assert!(c.set_property("zookeeper.ssl.clientAuth", "sometimes").is_err());
        assert!(c.set_property("zookeeper.ssl.keyStore.type", "pem").unwrap());
        assert_eq!(c.ssl.key_store.store_type, Some(StoreType::Pem));
        assert!(c.set_property("zookeeper.ssl.trustStore.type", "BCFKS").is_err());
        assert!(c.set_property("zookeeper.ssl.protocol", "TLSv1.2").unwrap());
        assert_eq!(c.ssl.protocols(), vec![TlsProtocol::V1_2]);
        assert!(c.set_property("zookeeper.ssl.enabledProtocols", "TLSv1.3").unwrap());
        assert_eq!(c.ssl.protocols(), vec![TlsProtocol::V1_3]);
        assert!(c.set_property("zookeeper.ssl.enabledProtocols", "TLSv1.1").is_err());
        assert!(c.set_property("secureClientPortAddress", "::1").unwrap());
        assert_eq!(c.secure_client_addr(), Some("[::1]:21814".parse().unwrap()));
    }
}
