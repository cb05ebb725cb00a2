//! Just enough DER to read what a key store holds: the JKS key protector's
//! `EncryptedPrivateKeyInfo`, and the fields of an X.509 certificate that checking a client's
//! certificate needs (names, validity, public key, signature, two extensions).
//!
//! Every length is checked against the bytes present; nothing here panics on bad input.

/// Why a DER structure could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad DER: {0}")]
pub struct DerError(pub &'static str);

pub const BOOLEAN: u8 = 0x01;
pub const INTEGER: u8 = 0x02;
pub const BIT_STRING: u8 = 0x03;
pub const OCTET_STRING: u8 = 0x04;
pub const OID: u8 = 0x06;
pub const UTC_TIME: u8 = 0x17;
pub const GENERALIZED_TIME: u8 = 0x18;
pub const SEQUENCE: u8 = 0x30;
/// `[0]` constructed, context-specific (a certificate's version).
pub const CONTEXT_0: u8 = 0xa0;
/// `[3]` constructed, context-specific (a certificate's extensions).
pub const CONTEXT_3: u8 = 0xa3;

/// One tag-length-value.
#[derive(Debug, Clone, Copy)]
pub struct Tlv<'a> {
    pub tag: u8,
    /// The value's bytes.
    pub value: &'a [u8],
    /// Tag, length and value: what a signature covers and what names are compared by.
    pub raw: &'a [u8],
}

/// Reads consecutive TLVs from a slice.
pub struct Der<'a> {
    data: &'a [u8],
}

impl<'a> Der<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Der { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn peek_tag(&self) -> Option<u8> {
        self.data.first().copied()
    }

    pub fn read(&mut self) -> Result<Tlv<'a>, DerError> {
        let d = self.data;
        let (&tag, rest) = d.split_first().ok_or(DerError("truncated: missing tag"))?;
        if tag & 0x1f == 0x1f {
            return Err(DerError("multi-byte tags are not used here"));
        }
        let (&first, rest) = rest.split_first().ok_or(DerError("truncated: missing length"))?;
        let (len, rest) = if first < 0x80 {
            (first as usize, rest)
        } else {
            let n = (first & 0x7f) as usize;
            if n == 0 || n > 4 {
                return Err(DerError("indefinite or oversized length"));
            }
            if rest.len() < n {
                return Err(DerError("truncated length"));
            }
            let len = rest[..n].iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
            (len, &rest[n..])
        };
        if rest.len() < len {
            return Err(DerError("length runs past the end"));
        }
        let header = d.len() - rest.len();
        let raw = &d[..header + len];
        self.data = &rest[len..];
        Ok(Tlv { tag, value: &rest[..len], raw })
    }

    /// Reads a TLV that must carry `tag`.
    pub fn expect(&mut self, tag: u8, what: &'static str) -> Result<Tlv<'a>, DerError> {
        let t = self.read().map_err(|_| DerError(what))?;
        if t.tag != tag {
            return Err(DerError(what));
        }
        Ok(t)
    }

    /// Reads a TLV with `tag` if the next one has it.
    pub fn optional(&mut self, tag: u8) -> Result<Option<Tlv<'a>>, DerError> {
        if self.peek_tag() == Some(tag) {
            self.read().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// A BIT STRING's bits, which must fill whole bytes (keys and signatures do).
pub fn bit_string_bytes<'a>(t: &Tlv<'a>) -> Result<&'a [u8], DerError> {
    match t.value.split_first() {
        Some((0, bits)) => Ok(bits),
        _ => Err(DerError("bit string with unused bits")),
    }
}

/// `1.3.6.1.5.5.7.3.2`, id-kp-clientAuth, as DER OID contents.
pub const OID_CLIENT_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02];
/// `2.5.29.37.0`, anyExtendedKeyUsage.
pub const OID_ANY_EKU: &[u8] = &[0x55, 0x1d, 0x25, 0x00];
const OID_BASIC_CONSTRAINTS: &[u8] = &[0x55, 0x1d, 0x13];
const OID_EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];

/// The parts of an X.509 certificate that path checking uses. Names are compared as DER bytes.
#[derive(Debug)]
pub struct Certificate<'a> {
    /// `tbsCertificate` with its tag: what the issuer signed.
    pub tbs: &'a [u8],
    /// The signature algorithm's `AlgorithmIdentifier` contents (OID and parameters).
    pub signature_alg: &'a [u8],
    pub signature: &'a [u8],
    pub issuer: Tlv<'a>,
    pub subject: Tlv<'a>,
    /// Seconds since the Unix epoch.
    pub not_before: i64,
    pub not_after: i64,
    /// `SubjectPublicKeyInfo` with its tag.
    pub spki: &'a [u8],
    /// The key's `AlgorithmIdentifier` contents.
    pub key_alg: &'a [u8],
    /// The subjectPublicKey bits.
    pub public_key: &'a [u8],
    /// basicConstraints' cA flag, if the extension is present.
    pub is_ca: Option<bool>,
    /// extKeyUsage's purposes (OID contents), if the extension is present.
    pub ext_key_usage: Option<Vec<&'a [u8]>>,
}

impl<'a> Certificate<'a> {
    pub fn parse(der: &'a [u8]) -> Result<Certificate<'a>, DerError> {
        let mut outer = Der::new(der);
        let cert = outer.expect(SEQUENCE, "certificate is not a SEQUENCE")?;
        if !outer.is_empty() {
            return Err(DerError("bytes after the certificate"));
        }
        let mut c = Der::new(cert.value);
        let tbs = c.expect(SEQUENCE, "tbsCertificate")?;
        let signature_alg = c.expect(SEQUENCE, "signatureAlgorithm")?.value;
        let signature = bit_string_bytes(&c.expect(BIT_STRING, "signatureValue")?)?;

        let mut t = Der::new(tbs.value);
        // v1 certificates (no version field) are accepted, as Java and OpenSSL accept them.
        if let Some(v) = t.optional(CONTEXT_0)? {
            if !matches!(Der::new(v.value).expect(INTEGER, "version")?.value, [0..=2]) {
                return Err(DerError("unknown certificate version"));
            }
        }
        t.expect(INTEGER, "serialNumber")?;
        let inner_alg = t.expect(SEQUENCE, "signature")?.value;
        if inner_alg != signature_alg {
            return Err(DerError("the two signature algorithms differ"));
        }
        let issuer = t.expect(SEQUENCE, "issuer")?;
        let mut validity = Der::new(t.expect(SEQUENCE, "validity")?.value);
        let not_before = time(&validity.read()?)?;
        let not_after = time(&validity.read()?)?;
        let subject = t.expect(SEQUENCE, "subject")?;
        let spki = t.expect(SEQUENCE, "subjectPublicKeyInfo")?;
        let mut k = Der::new(spki.value);
        let key_alg = k.expect(SEQUENCE, "subjectPublicKeyInfo algorithm")?.value;
        let public_key = bit_string_bytes(&k.expect(BIT_STRING, "subjectPublicKey")?)?;

        let (mut is_ca, mut ext_key_usage) = (None, None);
        while !t.is_empty() {
            let field = t.read()?;
            if field.tag != CONTEXT_3 {
                continue; // issuerUniqueID, subjectUniqueID
            }
            let mut exts = Der::new(Der::new(field.value).expect(SEQUENCE, "extensions")?.value);
            while !exts.is_empty() {
                let mut e = Der::new(exts.expect(SEQUENCE, "extension")?.value);
                let id = e.expect(OID, "extnID")?.value;
                e.optional(BOOLEAN)?;
                let value = e.expect(OCTET_STRING, "extnValue")?.value;
                if id == OID_BASIC_CONSTRAINTS {
                    let mut bc = Der::new(Der::new(value).expect(SEQUENCE, "basicConstraints")?.value);
                    is_ca = Some(bc.optional(BOOLEAN)?.is_some_and(|b| b.value.first().is_some_and(|&v| v != 0)));
                } else if id == OID_EXT_KEY_USAGE {
                    let mut purposes = Der::new(Der::new(value).expect(SEQUENCE, "extKeyUsage")?.value);
                    let mut v = Vec::new();
                    while !purposes.is_empty() {
                        v.push(purposes.expect(OID, "key purpose")?.value);
                    }
                    ext_key_usage = Some(v);
                }
            }
        }
        Ok(Certificate {
            tbs: tbs.raw,
            signature_alg,
            signature,
            issuer,
            subject,
            not_before,
            not_after,
            spki: spki.raw,
            key_alg,
            public_key,
            is_ca,
            ext_key_usage,
        })
    }
}

/// UTCTime (`YYMMDDHHMMSSZ`, 19YY from 50) or GeneralizedTime (`YYYYMMDDHHMMSSZ`), as Unix seconds.
fn time(t: &Tlv<'_>) -> Result<i64, DerError> {
    let bad = DerError("bad certificate time");
    let digits = |s: &[u8]| -> Result<i64, DerError> {
        s.iter().try_fold(
            0i64,
            |acc, &b| if b.is_ascii_digit() { Ok(acc * 10 + (b - b'0') as i64) } else { Err(bad.clone()) },
        )
    };
    let (year, rest) = match (t.tag, t.value.len()) {
        (UTC_TIME, 13) => {
            let yy = digits(&t.value[..2])?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &t.value[2..])
        }
        (GENERALIZED_TIME, 15) => (digits(&t.value[..4])?, &t.value[4..]),
        _ => return Err(bad),
    };
    if rest[10] != b'Z' {
        return Err(bad);
    }
    let (month, day) = (digits(&rest[0..2])?, digits(&rest[2..4])?);
    let (h, m, s) = (digits(&rest[4..6])?, digits(&rest[6..8])?, digits(&rest[8..10])?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return Err(bad);
    }
    Ok(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        let utc = |s: &str| time(&Tlv { tag: UTC_TIME, value: s.as_bytes(), raw: &[] });
        let gen = |s: &str| time(&Tlv { tag: GENERALIZED_TIME, value: s.as_bytes(), raw: &[] });
        assert_eq!(utc("700101000000Z"), Ok(0));
        assert_eq!(utc("000301000000Z"), Ok(951_868_800));
        assert_eq!(gen("21260101000000Z"), Ok(4_922_899_200));
        assert!(utc("7001010000Z").is_err());
        assert!(utc("701301000000Z").is_err());
        assert!(gen("2126010100000+0").is_err());
    }

    #[test]
    fn lengths_are_checked() {
        assert!(Der::new(&[0x30, 0x05, 0x01]).read().is_err());
        assert!(Der::new(&[0x30, 0x80]).read().is_err());
        assert!(Der::new(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).read().is_err());
        let mut d = Der::new(&[0x04, 0x81, 0x01, 0xaa, 0x05, 0x00]);
        let t = d.read().unwrap();
        assert_eq!((t.tag, t.value, t.raw.len()), (OCTET_STRING, &[0xaa][..], 4));
        assert_eq!(d.read().unwrap().tag, 0x05);
        assert!(d.is_empty());
    }
}
