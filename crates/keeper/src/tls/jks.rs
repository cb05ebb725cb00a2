//! Java KeyStore (JKS) files, as `keytool`, pyjks and ZooKeeper's tooling write them.
//!
//! Layout (all integers big-endian):
//!
//! ```text
//! u32 magic 0xFEEDFEED | u32 version (1 or 2) | u32 entry count | entries | 20-byte SHA-1
//! entry:  u32 tag | alias: u16 len + modified UTF-8 | u64 creation time (ms)
//!   tag 1 (private key):   u32 len + EncryptedPrivateKeyInfo | u32 chain length |
//!                          per certificate: [v2: u16 len + type "X.509"] u32 len + DER
//!   tag 2 (trusted cert):  [v2: u16 len + type "X.509"] u32 len + DER
//! ```
//!
//! The trailing hash is SHA-1(password as UTF-16BE ‖ "Mighty Aphrodite" ‖ everything before it).
//! A private key is sealed by Sun's key protector (OID 1.3.6.1.4.1.42.2.17.1.1): the
//! `EncryptedPrivateKeyInfo`'s data is salt (20) ‖ key XOR keystream ‖ check (20), where the
//! keystream is D1 ‖ D2 ‖ ... with D0 = salt, Di = SHA-1(password ‖ Di-1), and check =
//! SHA-1(password ‖ plain key). The plain key is a PKCS#8 `PrivateKeyInfo`.

use super::der::{self, Der, DerError};
use sha1::{Digest, Sha1};

const MAGIC: u32 = 0xfeed_feed;
const JCEKS_MAGIC: u32 = 0xcece_cece;
const TAG_PRIVATE_KEY: u32 = 1;
const TAG_TRUSTED_CERT: u32 = 2;
const DIGEST_LEN: usize = 20;
/// 1.3.6.1.4.1.42.2.17.1.1, Sun's JKS key protector, as DER OID contents.
const OID_KEY_PROTECTOR: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x2a, 0x02, 0x11, 0x01, 0x01];
const INTEGRITY_SALT: &[u8] = b"Mighty Aphrodite";

/// A parsed key store. Private keys stay sealed until [`Entry::private_key`] opens one.
#[derive(Debug)]
pub struct KeyStore {
    pub entries: Vec<Entry>,
}

#[derive(Debug)]
pub struct Entry {
    pub alias: String,
    pub kind: EntryKind,
}

#[derive(Debug)]
pub enum EntryKind {
    /// A sealed key (`EncryptedPrivateKeyInfo` DER) and its certificate chain, leaf first.
    PrivateKey { sealed: Vec<u8>, chain: Vec<Vec<u8>> },
    /// A certificate trusted as an issuer (DER).
    TrustedCert(Vec<u8>),
}

#[derive(Debug, thiserror::Error)]
pub enum JksError {
    #[error("not a JKS key store: PKCS#12 is not supported, convert it with `keytool -importkeystore -deststoretype JKS` or use PEM (ssl.*.type=PEM)")]
    Pkcs12,
    #[error(
        "not a JKS key store: JCEKS is not supported, convert it with `keytool -importkeystore -deststoretype JKS`"
    )]
    Jceks,
    #[error("not a JKS key store (magic 0x{0:08x}, expected 0xfeedfeed)")]
    NotJks(u32),
    #[error("corrupt key store: unsupported JKS version {0}")]
    Version(u32),
    #[error("corrupt key store: {what} at byte {offset} runs past the end of the file")]
    Truncated { what: &'static str, offset: usize },
    #[error("corrupt key store: unknown entry type {tag} at byte {offset}")]
    EntryType { tag: u32, offset: usize },
    #[error("corrupt key store: {0} bytes follow the integrity hash")]
    Trailing(usize),
    #[error("key store integrity check failed: the password is wrong, or the file was modified")]
    Integrity,
    #[error("key {alias:?}: sealed with an unsupported algorithm (OID contents {oid:02x?}), not JKS's key protector")]
    Protection { alias: String, oid: Vec<u8> },
    #[error("key {alias:?}: the password is wrong (its check digest does not match)")]
    KeyPassword { alias: String },
    #[error("key {alias:?}: {source}")]
    KeyEncoding { alias: String, source: DerError },
}

/// Java's `char[]` password as the bytes JKS hashes: UTF-16BE.
fn password_bytes(password: &str) -> Vec<u8> {
    password.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], JksError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or(JksError::Truncated { what, offset: self.pos })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, JksError> {
        Ok(u16::from_be_bytes(self.take(2, what)?.try_into().expect("2 bytes")))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, JksError> {
        Ok(u32::from_be_bytes(self.take(4, what)?.try_into().expect("4 bytes")))
    }

    /// `u32 length ‖ bytes`; the length is checked against what is left before anything is copied.
    fn blob(&mut self, what: &'static str) -> Result<Vec<u8>, JksError> {
        let n = self.u32(what)? as usize;
        Ok(self.take(n, what)?.to_vec())
    }

    /// Java's `DataOutput.writeUTF`: u16 length ‖ modified UTF-8.
    fn utf(&mut self, what: &'static str) -> Result<String, JksError> {
        let n = self.u16(what)? as usize;
        Ok(String::from_utf8_lossy(self.take(n, what)?).into_owned())
    }

    fn cert(&mut self, version: u32) -> Result<Vec<u8>, JksError> {
        if version == 2 {
            self.utf("certificate type")?; // always "X.509"
        }
        self.blob("certificate")
    }
}

impl KeyStore {
    /// Parses a JKS file. With a password the integrity hash is checked (as Java does); without
    /// one it is not, which is enough for a trust store that holds no secrets.
    pub fn parse(data: &[u8], password: Option<&str>) -> Result<KeyStore, JksError> {
        let mut c = Cursor { data, pos: 0 };
        if data.first() == Some(&der::SEQUENCE) {
            return Err(JksError::Pkcs12);
        }
        match c.u32("magic")? {
            MAGIC => {}
            JCEKS_MAGIC => return Err(JksError::Jceks),
            other => return Err(JksError::NotJks(other)),
        }
        let version = c.u32("version")?;
        if version != 1 && version != 2 {
            return Err(JksError::Version(version));
        }
        let count = c.u32("entry count")?;
        let mut entries = Vec::new();
        for _ in 0..count {
            let offset = c.pos;
            let tag = c.u32("entry type")?;
            let alias = c.utf("alias")?;
            c.take(8, "creation time")?;
            let kind = match tag {
                TAG_PRIVATE_KEY => {
                    let sealed = c.blob("sealed key")?;
                    let n = c.u32("chain length")?;
                    let mut chain = Vec::new();
                    for _ in 0..n {
                        chain.push(c.cert(version)?);
                    }
                    EntryKind::PrivateKey { sealed, chain }
                }
                TAG_TRUSTED_CERT => EntryKind::TrustedCert(c.cert(version)?),
                tag => return Err(JksError::EntryType { tag, offset }),
            };
            entries.push(Entry { alias, kind });
        }
        let body_len = c.pos;
        let digest = c.take(DIGEST_LEN, "integrity hash")?;
        if c.pos != data.len() {
            return Err(JksError::Trailing(data.len() - c.pos));
        }
        if let Some(pw) = password {
            let mut h = Sha1::new();
            h.update(password_bytes(pw));
            h.update(INTEGRITY_SALT);
            h.update(&data[..body_len]);
            if h.finalize().as_slice() != digest {
                return Err(JksError::Integrity);
            }
        }
        Ok(KeyStore { entries })
    }
}

impl Entry {
    /// Opens a private key entry's key with `password`: its PKCS#8 `PrivateKeyInfo` DER.
    /// `None` for a trusted-certificate entry.
    pub fn private_key(&self, password: &str) -> Option<Result<Vec<u8>, JksError>> {
        match &self.kind {
            EntryKind::PrivateKey { sealed, .. } => Some(unseal(&self.alias, sealed, password)),
            EntryKind::TrustedCert(_) => None,
        }
    }
}

fn unseal(alias: &str, sealed: &[u8], password: &str) -> Result<Vec<u8>, JksError> {
    let enc = |source| JksError::KeyEncoding { alias: alias.to_owned(), source };
    let mut d = Der::new(sealed);
    let info = d.expect(der::SEQUENCE, "EncryptedPrivateKeyInfo").map_err(enc)?;
    let mut info = Der::new(info.value);
    let mut alg = Der::new(info.expect(der::SEQUENCE, "encryptionAlgorithm").map_err(enc)?.value);
    let oid = alg.expect(der::OID, "encryptionAlgorithm OID").map_err(enc)?.value;
    if oid != OID_KEY_PROTECTOR {
        return Err(JksError::Protection { alias: alias.to_owned(), oid: oid.to_vec() });
    }
    let data = info.expect(der::OCTET_STRING, "encryptedData").map_err(enc)?.value;
    if data.len() < 2 * DIGEST_LEN {
        return Err(enc(DerError("sealed key shorter than its salt and check")));
    }
    let (salt, rest) = data.split_at(DIGEST_LEN);
    let (cipher, check) = rest.split_at(rest.len() - DIGEST_LEN);
    let pw = password_bytes(password);
    let mut plain = keystream(&pw, salt, cipher.len());
    for (p, c) in plain.iter_mut().zip(cipher) {
        *p ^= c;
    }
    let mut h = Sha1::new();
    h.update(&pw);
    h.update(&plain);
    if h.finalize().as_slice() != check {
        return Err(JksError::KeyPassword { alias: alias.to_owned() });
    }
    Ok(plain)
}

/// D1 ‖ D2 ‖ ... cut to `len`, where D0 = salt and Di = SHA-1(password ‖ Di-1).
fn keystream(password: &[u8], salt: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + DIGEST_LEN);
    let mut d = salt.to_vec();
    while out.len() < len {
        let mut h = Sha1::new();
        h.update(password);
        h.update(&d);
        d = h.finalize().to_vec();
        out.extend_from_slice(&d);
    }
    out.truncate(len);
    out
}

/// The inverse of [`unseal`] and [`KeyStore::parse`], for tests: a JKS writer small enough to
/// check by eye against the layout above.
#[cfg(test)]
pub(crate) mod write {
    use super::*;

    /// Seals a PKCS#8 key as JKS's key protector does, with a given salt.
    pub fn seal(key: &[u8], password: &str, salt: [u8; 20]) -> Vec<u8> {
        let pw = password_bytes(password);
        let mut data = salt.to_vec();
        data.extend(keystream(&pw, &salt, key.len()).iter().zip(key).map(|(k, p)| k ^ p));
        let mut h = Sha1::new();
        h.update(&pw);
        h.update(key);
        data.extend_from_slice(&h.finalize());
        let mut alg = tlv(der::OID, OID_KEY_PROTECTOR);
        alg.extend_from_slice(&[0x05, 0x00]);
        let mut info = tlv(der::SEQUENCE, &alg);
        info.extend(tlv(der::OCTET_STRING, &data));
        tlv(der::SEQUENCE, &info)
    }

    fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        let n = value.len();
        if n < 0x80 {
            v.push(n as u8);
        } else {
            let bytes: Vec<u8> = n.to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
            v.push(0x80 | bytes.len() as u8);
            v.extend(bytes);
        }
        v.extend_from_slice(value);
        v
    }

    /// A version-2 JKS file holding `entries`, hashed with `password`.
    pub fn store(entries: &[Entry], password: &str) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend(MAGIC.to_be_bytes());
        v.extend(2u32.to_be_bytes());
        v.extend((entries.len() as u32).to_be_bytes());
        let utf = |v: &mut Vec<u8>, s: &str| {
            v.extend((s.len() as u16).to_be_bytes());
            v.extend(s.as_bytes());
        };
        let cert = |v: &mut Vec<u8>, c: &[u8]| {
            utf(v, "X.509");
            v.extend((c.len() as u32).to_be_bytes());
            v.extend(c);
        };
        for e in entries {
            let tag = match e.kind {
                EntryKind::PrivateKey { .. } => TAG_PRIVATE_KEY,
                EntryKind::TrustedCert(_) => TAG_TRUSTED_CERT,
            };
            v.extend(tag.to_be_bytes());
            utf(&mut v, &e.alias);
            v.extend(1_700_000_000_000u64.to_be_bytes());
            match &e.kind {
                EntryKind::PrivateKey { sealed, chain } => {
                    v.extend((sealed.len() as u32).to_be_bytes());
                    v.extend(sealed);
                    v.extend((chain.len() as u32).to_be_bytes());
                    for c in chain {
                        cert(&mut v, c);
                    }
                }
                EntryKind::TrustedCert(c) => cert(&mut v, c),
            }
        }
        let mut h = Sha1::new();
        h.update(password_bytes(password));
        h.update(INTEGRITY_SALT);
        h.update(&v);
        v.extend_from_slice(&h.finalize());
        v
    }
}
