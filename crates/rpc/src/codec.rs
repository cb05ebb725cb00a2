//! The binary codec every herd RPC message uses: big-endian integers, one-byte booleans
//! (0 or 1, nothing else), `u32` length prefixes, and `u8` tags.
//!
//! ```text
//! u8 u16 u32 i32 u64 i64  big-endian, fixed width
//! bool                 u8: 0 = false, 1 = true (any other byte is an error)
//! string               u32 byte length | UTF-8 bytes
//! vec<T>               u32 element count | T ...
//! option<T>            u8: 0 = none | 1 = some, then T
//! [u8; N]              N raw bytes
//! struct               its fields in declaration order, nothing between them
//! enum                 u8 tag | the variant's fields in declaration order
//! ```
//!
//! Decoding is total: any byte string decodes to a value or a [`DecodeError`], never a panic;
//! every length is checked against the bytes present (times the fewest bytes one element can
//! take, [`Message::MIN_WIRE`]) before anything is allocated. The encoding is canonical: a value
//! has exactly one encoding, so decoding then encoding gives back the same bytes.
//!
//! Protocol crates declare their types with [`wire_struct!`](crate::wire_struct) and
//! [`wire_enum!`](crate::wire_enum), which write the [`Message`] impl from the declaration.

use thiserror::Error;

/// Why bytes did not decode. Every variant is the sender's fault.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("truncated: needed {needed} more bytes, {left} left")]
    Truncated { needed: usize, left: usize },
    #[error("string is not UTF-8")]
    BadUtf8,
    #[error("unknown tag {tag} for {what}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("bad value {value} for {what}")]
    BadValue { what: &'static str, value: u64 },
    #[error("{what} of {len} exceeds the limit {limit}")]
    TooLarge { what: &'static str, len: u64, limit: u64 },
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}

/// A cursor over received bytes. Every read is bounds-checked.
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

    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(DecodeError::Trailing(n)),
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let left = self.remaining();
        if n > left {
            return Err(DecodeError::Truncated { needed: n, left });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DecodeError::BadValue { what: "bool", value: v.into() }),
        }
    }

    /// A `u32` count of elements that take at least `elem_min` bytes each, checked against the
    /// bytes left, so a hostile count never causes a large allocation.
    pub fn len(&mut self, elem_min: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        let needed = n.saturating_mul(elem_min.max(1));
        let left = self.remaining();
        if needed > left {
            return Err(DecodeError::Truncated { needed, left });
        }
        Ok(n)
    }

    /// Length-prefixed raw bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.len(1)?;
        self.take(n)
    }

    pub fn string(&mut self) -> Result<String, DecodeError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map(str::to_owned).map_err(|_| DecodeError::BadUtf8)
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

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i32(&mut self, v: i32) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_be_bytes());
    }
    pub fn bool(&mut self, v: bool) {
        self.buf.push(v as u8);
    }

    /// A `u32` element count. Our own values never hold 4 Gi elements; a frame limit refuses
    /// anything near that long before.
    pub fn len(&mut self, n: usize) {
        let n = u32::try_from(n).expect("length fits in u32");
        self.u32(n);
    }

    pub fn bytes(&mut self, v: &[u8]) {
        self.len(v.len());
        self.buf.extend_from_slice(v);
    }

    pub fn string(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
}

/// A value with a wire encoding.
pub trait Message: Sized {
    /// The fewest bytes one value takes on the wire (bounds vector counts before allocating).
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

macro_rules! primitive {
    ($($t:ty => $n:literal, $f:ident;)*) => {$(
        impl Message for $t {
            const MIN_WIRE: usize = $n;
            fn encode(&self, w: &mut Writer) {
                w.$f(*self)
            }
            fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
                r.$f()
            }
        }
    )*};
}

primitive! {
    u8 => 1, u8;
    u16 => 2, u16;
    u32 => 4, u32;
    i32 => 4, i32;
    u64 => 8, u64;
    i64 => 8, i64;
    bool => 1, bool;
}

impl Message for String {
    const MIN_WIRE: usize = 4;
    fn encode(&self, w: &mut Writer) {
        w.string(self)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.string()
    }
}

impl<const N: usize> Message for [u8; N] {
    const MIN_WIRE: usize = N;
    fn encode(&self, w: &mut Writer) {
        w.buf.extend_from_slice(self)
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.array()
    }
}

impl<T: Message> Message for Vec<T> {
    const MIN_WIRE: usize = 4;
    fn encode(&self, w: &mut Writer) {
        w.len(self.len());
        for v in self {
            v.encode(w);
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let n = r.len(T::MIN_WIRE)?;
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::decode(r)?);
        }
        Ok(v)
    }
}

impl<T: Message> Message for Option<T> {
    const MIN_WIRE: usize = 1;
    fn encode(&self, w: &mut Writer) {
        match self {
            None => w.u8(0),
            Some(v) => {
                w.u8(1);
                v.encode(w);
            }
        }
    }
    fn decode(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            0 => Ok(None),
            1 => Ok(Some(T::decode(r)?)),
            tag => Err(DecodeError::UnknownTag { what: "option", tag }),
        }
    }
}

/// Declares a struct whose encoding is its fields in order, deriving `Debug`, `Clone`,
/// `PartialEq` and `Eq` and implementing [`Message`]. Usable from any crate: every path in
/// the expansion is absolute (`$crate::codec::...`, `::core::...`).
///
/// ```
/// rpc::wire_struct! {
///     /// A point.
///     pub struct Point { pub x: u32, pub y: u32 }
/// }
/// use rpc::Message;
/// let p = Point { x: 1, y: 2 };
/// assert_eq!(p.to_bytes(), [0, 0, 0, 1, 0, 0, 0, 2]);
/// assert_eq!(Point::from_bytes(&p.to_bytes()).unwrap(), p);
/// ```
#[macro_export]
macro_rules! wire_struct {
    (
        $(#[$m:meta])*
        pub struct $name:ident {
            $( $(#[$fm:meta])* pub $f:ident : $t:ty ),* $(,)?
        }
    ) => {
        $(#[$m])*
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq, ::core::cmp::Eq)]
        pub struct $name {
            $( $(#[$fm])* pub $f: $t ),*
        }

        impl $crate::codec::Message for $name {
            const MIN_WIRE: usize = 0 $( + <$t as $crate::codec::Message>::MIN_WIRE )*;
            fn encode(&self, w: &mut $crate::codec::Writer) {
                $( $crate::codec::Message::encode(&self.$f, w); )*
            }
            fn decode(
                r: &mut $crate::codec::Reader<'_>,
            ) -> ::core::result::Result<Self, $crate::codec::DecodeError> {
                ::core::result::Result::Ok($name { $( $f: $crate::codec::Message::decode(r)? ),* })
            }
        }
    };
}

/// Declares an enum whose encoding is a `u8` tag, then the variant's fields in order. Variants
/// are unit-like or struct-like; each names its tag, which never changes once released. Like
/// [`wire_struct!`], usable from any crate.
///
/// ```
/// rpc::wire_enum! {
///     pub enum Shape {
///         Empty = 0,
///         Square { side: u32 } = 1,
///     }
/// }
/// use rpc::Message;
/// assert_eq!(Shape::Square { side: 3 }.to_bytes(), [1, 0, 0, 0, 3]);
/// assert_eq!(Shape::WIRE_TAGS, &[0, 1]);
/// assert!(Shape::from_bytes(&[2]).is_err());
/// ```
#[macro_export]
macro_rules! wire_enum {
    (
        $(#[$m:meta])*
        pub enum $name:ident {
            $(
                $(#[$vm:meta])*
                $v:ident $( { $( $(#[$fm:meta])* $f:ident : $t:ty ),* $(,)? } )? = $tag:literal
            ),* $(,)?
        }
    ) => {
        $(#[$m])*
        #[derive(::core::fmt::Debug, ::core::clone::Clone, ::core::cmp::PartialEq, ::core::cmp::Eq)]
        pub enum $name {
            $( $(#[$vm])* $v $( { $( $(#[$fm])* $f: $t ),* } )? ),*
        }

        impl $name {
            /// Every variant's tag, in declaration order.
            pub const WIRE_TAGS: &'static [u8] = &[$($tag),*];

            /// The variant's tag on the wire.
            pub fn wire_tag(&self) -> u8 {
                match self {
                    $( $name::$v { .. } => $tag ),*
                }
            }
        }

        impl $crate::codec::Message for $name {
            const MIN_WIRE: usize = 1;
            #[allow(unused_variables)]
            fn encode(&self, w: &mut $crate::codec::Writer) {
                match self {
                    $( $name::$v $( { $($f),* } )? => {
                        $crate::codec::Writer::u8(w, $tag);
                        $( $( $crate::codec::Message::encode($f, w); )* )?
                    } )*
                }
            }
            fn decode(
                r: &mut $crate::codec::Reader<'_>,
            ) -> ::core::result::Result<Self, $crate::codec::DecodeError> {
                match $crate::codec::Reader::u8(r)? {
                    $( $tag => ::core::result::Result::Ok(
                        $name::$v $( { $( $f: $crate::codec::Message::decode(r)? ),* } )?
                    ), )*
                    tag => ::core::result::Result::Err($crate::codec::DecodeError::UnknownTag {
                        what: ::core::stringify!($name),
                        tag,
                    }),
                }
            }
        }
    };
}

// The macros live at the crate root (`rpc::wire_enum!`, as `#[macro_export]` puts them); they
// are also named here so that `use rpc::codec::*` brings them with the rest of the codec.
pub use crate::{wire_enum, wire_struct};
