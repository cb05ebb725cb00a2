//! Jute, ZooKeeper's serialization: big-endian ints and longs, one-byte booleans, and
//! length-prefixed buffers, strings and vectors where a length of -1 means null.

use thiserror::Error;

/// Why bytes did not decode. Every variant is the peer's fault, never ours.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("record truncated: needed {needed} more bytes, {left} left")]
    Truncated { needed: usize, left: usize },
    #[error("negative length {0}")]
    NegativeLength(i32),
    #[error("string is not UTF-8")]
    BadUtf8,
    #[error("unknown opcode {0}")]
    UnknownOpCode(i32),
    #[error("bad value {value} for {what}")]
    BadValue { what: &'static str, value: i64 },
    #[error("{0} trailing bytes after record")]
    Trailing(usize),
}

/// A cursor over a received frame. All reads are bounds-checked.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let left = self.remaining();
        if n > left {
            return Err(DecodeError::Truncated { needed: n, left });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_be_bytes(a))
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        Ok(self.take(1)?[0] != 0)
    }

    /// A length prefix; `None` for null (-1). The length is checked against the bytes left,
    /// so a hostile length never causes a large allocation.
    fn len(&mut self, elem_min: usize) -> Result<Option<usize>, DecodeError> {
        let n = self.i32()?;
        if n == -1 {
            return Ok(None);
        }
        if n < 0 {
            return Err(DecodeError::NegativeLength(n));
        }
        let n = n as usize;
        let needed = n.saturating_mul(elem_min);
        if needed > self.remaining() {
            return Err(DecodeError::Truncated { needed, left: self.remaining() });
        }
        Ok(Some(n))
    }

    pub fn buffer(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        match self.len(1)? {
            None => Ok(None),
            Some(n) => Ok(Some(self.take(n)?.to_vec())),
        }
    }

    pub fn ustring(&mut self) -> Result<Option<String>, DecodeError> {
        match self.len(1)? {
            None => Ok(None),
            Some(n) => {
                let b = self.take(n)?;
                std::str::from_utf8(b).map(|s| Some(s.to_owned())).map_err(|_| DecodeError::BadUtf8)
            }
        }
    }

    /// A vector length; each element takes at least `elem_min` bytes on the wire.
    pub fn vec_len(&mut self, elem_min: usize) -> Result<Option<usize>, DecodeError> {
        self.len(elem_min.max(1))
    }
}

/// An encoder into a growable buffer.
#[derive(Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer { buf: Vec::with_capacity(64) }
    }

    /// A writer whose first four bytes are reserved for the frame length; see [`Writer::into_frame`].
    pub fn framed() -> Self {
        let mut w = Writer { buf: Vec::with_capacity(64) };
        w.buf.extend_from_slice(&[0, 0, 0, 0]);
        w
    }

    /// Fills in the length reserved by [`Writer::framed`].
    pub fn into_frame(mut self) -> Vec<u8> {
        assert!(self.buf.len() >= 4, "into_frame on a writer not made by framed()");
        let n = (self.buf.len() - 4) as u32;
        self.buf[..4].copy_from_slice(&n.to_be_bytes());
        self.buf
    }

    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn bool(&mut self, v: bool) {
        self.buf.push(v as u8);
    }
    pub fn buffer(&mut self, v: Option<&[u8]>) {
        match v {
            None => self.i32(-1),
            Some(b) => {
                self.i32(b.len() as i32);
                self.buf.extend_from_slice(b);
            }
        }
    }
    pub fn ustring(&mut self, v: &str) {
        self.i32(v.len() as i32);
        self.buf.extend_from_slice(v.as_bytes());
    }
}

/// A value with a jute encoding.
pub trait Jute: Sized {
    /// The fewest bytes one value takes on the wire (bounds vector lengths before allocating).
    const MIN_WIRE: usize;
    fn encode(&self, w: &mut Writer);
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError>;

    /// Encodes into a fresh buffer.
    fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.encode(&mut w);
        w.buf
    }

    /// Decodes a whole buffer; trailing bytes are an error.
    fn from_bytes(b: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(b);
        let v = Self::decode(&mut r)?;
        r.finish()?;
        Ok(v)
    }
}

impl Jute for i32 {
    const MIN_WIRE: usize = 4;
    fn encode(&self, w: &mut Writer) {
        w.i32(*self)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.i32()
    }
}

impl Jute for i64 {
    const MIN_WIRE: usize = 8;
    fn encode(&self, w: &mut Writer) {
        w.i64(*self)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.i64()
    }
}

impl Jute for bool {
    const MIN_WIRE: usize = 1;
    fn encode(&self, w: &mut Writer) {
        w.bool(*self)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.bool()
    }
}

/// `ustring`: null decodes as the empty string (ZooKeeper treats them alike for paths).
impl Jute for String {
    const MIN_WIRE: usize = 4;
    fn encode(&self, w: &mut Writer) {
        w.ustring(self)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(r.ustring()?.unwrap_or_default())
    }
}

/// `buffer`, nullable: znode data keeps the difference between null and empty.
impl Jute for Option<Vec<u8>> {
    const MIN_WIRE: usize = 4;
    fn encode(&self, w: &mut Writer) {
        w.buffer(self.as_deref())
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.buffer()
    }
}

/// `vector<T>`: null decodes as empty.
impl<T: Jute> Jute for Vec<T> {
    const MIN_WIRE: usize = 4;
    fn encode(&self, w: &mut Writer) {
        w.i32(self.len() as i32);
        for v in self {
            v.encode(w);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.vec_len(T::MIN_WIRE)?.unwrap_or(0);
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::decode(r)?);
        }
        Ok(v)
    }
}

/// Declares a jute record: a struct whose fields encode in order.
#[macro_export]
macro_rules! record {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Default)]
        pub struct $name { $($(#[$fm])* pub $f: $t),* }
        impl $crate::jute::Jute for $name {
            const MIN_WIRE: usize = 0 $(+ <$t as $crate::jute::Jute>::MIN_WIRE)*;
            fn encode(&self, _w: &mut $crate::jute::Writer) {
                $( $crate::jute::Jute::encode(&self.$f, _w); )*
            }
            fn decode(_r: &mut $crate::jute::Reader<'_>) -> Result<Self, $crate::jute::DecodeError> {
                Ok($name { $($f: <$t as $crate::jute::Jute>::decode(_r)?),* })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_lengths_are_refused_without_allocating() {
        let mut w = Writer::new();
        w.i32(i32::MAX);
        let mut r = Reader::new(&w.buf);
        assert!(matches!(r.buffer(), Err(DecodeError::Truncated { .. })));
        let mut r = Reader::new(&w.buf);
        assert!(matches!(Vec::<String>::decode(&mut r), Err(DecodeError::Truncated { .. })));
        let mut w = Writer::new();
        w.i32(-7);
        assert_eq!(Reader::new(&w.buf).buffer(), Err(DecodeError::NegativeLength(-7)));
    }

    #[test]
    fn null_and_empty_buffers_differ() {
        for v in [None, Some(vec![]), Some(b"abc".to_vec())] {
            let b = v.to_bytes();
            assert_eq!(Option::<Vec<u8>>::from_bytes(&b).unwrap(), v);
        }
    }

    #[test]
    fn frames_carry_their_length() {
        let mut w = Writer::framed();
        w.i32(7);
        w.ustring("ab");
        let f = w.into_frame();
        assert_eq!(&f[..4], &10u32.to_be_bytes());
    }
}
