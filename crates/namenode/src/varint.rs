//! The byte-level encoding both of the NameNode's own formats use (the namespace checkpoint
//! and the journal record): LEB128 varints, one byte per bool, length-prefixed UTF-8 strings,
//! blocks as three varints. Decoding is total: every length is checked against the bytes left,
//! a varint has one spelling only, and nothing panics on bad bytes. Each format adds its own
//! records as further methods (`impl Writer` / `impl Reader` in its codec module) and turns
//! [`VarintError`] into its own error.

use crate::namespace::Block;

/// Why bytes did not decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintError {
    Truncated,
    BadValue(&'static str),
}

pub(crate) type VResult<T> = Result<T, VarintError>;

#[derive(Default)]
pub(crate) struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    pub fn u64(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    pub fn bool(&mut self, b: bool) {
        self.buf.push(u8::from(b));
    }

    pub fn str(&mut self, s: &str) {
        self.u64(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
    }

    pub fn block(&mut self, b: &Block) {
        self.u64(b.id);
        self.u64(b.gs);
        self.u64(b.len);
    }
}

pub(crate) struct Reader<'a> {
    pub b: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(b: &'a [u8]) -> Reader<'a> {
        Reader { b, pos: 0 }
    }

    pub fn left(&self) -> usize {
        self.b.len() - self.pos
    }

    pub fn bytes(&mut self, n: usize) -> VResult<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.b.len()).ok_or(VarintError::Truncated)?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub fn byte(&mut self) -> VResult<u8> {
        Ok(self.bytes(1)?[0])
    }

    pub fn u64(&mut self) -> VResult<u64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.byte()?;
            // The tenth byte may carry one bit only; a zero last byte after others would be a
            // second spelling of a shorter number.
            if i == 9 && b > 1 {
                return Err(VarintError::BadValue("varint"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                if i > 0 && b == 0 {
                    return Err(VarintError::BadValue("varint"));
                }
                return Ok(v);
            }
        }
        Err(VarintError::BadValue("varint"))
    }

    pub fn u16(&mut self, what: &'static str) -> VResult<u16> {
        u16::try_from(self.u64()?).map_err(|_| VarintError::BadValue(what))
    }

    pub fn bool(&mut self) -> VResult<bool> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(VarintError::BadValue("bool")),
        }
    }

    /// A count of items each at least `min_size` bytes long: never more than the bytes left
    /// could hold, so a corrupt count cannot make us allocate much.
    pub fn count(&mut self, min_size: usize) -> VResult<usize> {
        let n = self.u64()?;
        let left = self.left() / min_size.max(1);
        usize::try_from(n).ok().filter(|&n| n <= left).ok_or(VarintError::Truncated)
    }

    pub fn str(&mut self) -> VResult<String> {
        let n = self.count(1)?;
        let s = self.bytes(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| VarintError::BadValue("string"))
    }

    pub fn block(&mut self) -> VResult<Block> {
        Ok(Block { id: self.u64()?, gs: self.u64()?, len: self.u64()? })
    }
}
