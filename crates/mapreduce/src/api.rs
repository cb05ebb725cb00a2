//! The user side of a task: what a mapper, a reducer and a combiner are given and give back.

use crate::error::Result;

/// Where a mapper, reducer or combiner sends its output records.
pub trait Emit {
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
}

impl<F: FnMut(&[u8], &[u8]) -> Result<()>> Emit for F {
    fn emit(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self(key, value)
    }
}

/// The values of one key's group, in merge order. A lending iterator: each value lives until
/// the next call, so a group of any size costs one value's memory.
pub trait Values {
    fn next_value(&mut self) -> Option<&[u8]>;
}

/// A map function over line records (`TextInputFormat`'s key and value).
pub trait Mapper {
    fn map(&mut self, offset: u64, line: &[u8], emit: &mut dyn Emit) -> Result<()>;
}

/// A reduce function, called once per key with all its values; also the combiner's shape (a
/// combiner must emit only its group's key: it runs inside a sorted spill).
pub trait Reducer {
    fn reduce(&mut self, key: &[u8], values: &mut dyn Values, emit: &mut dyn Emit) -> Result<()>;
}
