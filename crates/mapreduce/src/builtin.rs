//! The built-in jobs' map and reduce functions.
//!
//! - `wordcount`: [`WordCountMapper`] splits a line at ASCII white space (space, `\t`, `\n`,
//!   `\r`, form feed: exactly the delimiters of Java's `StringTokenizer`, which Hadoop's
//!   WordCount uses) and emits `(word, "1")`; [`SumReducer`] adds decimal values and emits
//!   `(word, total)`, so the output line is `word\tcount`. The same reducer is the combiner,
//!   as Hadoop's `IntSumReducer` is.
//! - `grep`: [`GrepMapper`] emits `(pattern, count)` for each line holding the pattern, with
//!   the count of its non-overlapping occurrences; summed by [`SumReducer`]. Hadoop's Grep
//!   takes a Java regex; this one takes a plain byte substring (no regex engine is linked), so
//!   its output is Hadoop's for a pattern without metacharacters, before Hadoop's second,
//!   sort-by-count job.
//! - `sort`: [`IdentityMapper`] emits `(line, "")` and [`IdentityReducer`] emits every value
//!   of every key, so the output is the input's lines in byte order.

use crate::api::{Emit, Mapper, Reducer, Values};
use crate::error::{Error, Result};

pub struct WordCountMapper;

impl Mapper for WordCountMapper {
    fn map(&mut self, _offset: u64, line: &[u8], emit: &mut dyn Emit) -> Result<()> {
        for word in line.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty()) {
            emit.emit(word, b"1")?;
        }
        Ok(())
    }
}

/// Sums values written as decimal integers; the wordcount and grep reducer and combiner.
pub struct SumReducer;

impl Reducer for SumReducer {
    fn reduce(&mut self, key: &[u8], values: &mut dyn Values, emit: &mut dyn Emit) -> Result<()> {
        let mut total = 0i64;
        while let Some(value) = values.next_value() {
            let n = std::str::from_utf8(value).ok().and_then(|text| text.parse::<i64>().ok()).ok_or_else(|| {
                Error::User(format!(
                    "key {:?}: value {:?} is not a decimal integer",
                    String::from_utf8_lossy(key),
                    String::from_utf8_lossy(value)
                ))
            })?;
            total = total.saturating_add(n);
        }
        emit.emit(key, total.to_string().as_bytes())
    }
}

pub struct GrepMapper {
    pattern: Vec<u8>,
}

impl GrepMapper {
    /// `pattern` must not be empty.
    pub fn new(pattern: &[u8]) -> Result<GrepMapper> {
        if pattern.is_empty() {
            return Err(Error::User("grep: an empty pattern".into()));
        }
        Ok(GrepMapper { pattern: pattern.to_vec() })
    }
}

impl Mapper for GrepMapper {
    fn map(&mut self, _offset: u64, line: &[u8], emit: &mut dyn Emit) -> Result<()> {
        let (mut count, mut rest) = (0u64, line);
        while let Some(i) = find(rest, &self.pattern) {
            count += 1;
            rest = &rest[i + self.pattern.len()..];
        }
        if count > 0 {
            emit.emit(&self.pattern, count.to_string().as_bytes())?;
        }
        Ok(())
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

pub struct IdentityMapper;

impl Mapper for IdentityMapper {
    fn map(&mut self, _offset: u64, line: &[u8], emit: &mut dyn Emit) -> Result<()> {
        emit.emit(line, b"")
    }
}

pub struct IdentityReducer;

impl Reducer for IdentityReducer {
    fn reduce(&mut self, key: &[u8], values: &mut dyn Values, emit: &mut dyn Emit) -> Result<()> {
        while let Some(value) = values.next_value() {
            emit.emit(key, value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map_all(mapper: &mut dyn Mapper, line: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut emit = |k: &[u8], v: &[u8]| {
            out.push((String::from_utf8_lossy(k).into_owned(), String::from_utf8_lossy(v).into_owned()));
            Ok(())
        };
        mapper.map(0, line.as_bytes(), &mut emit).unwrap();
        out
    }

    struct List(Vec<&'static str>);

    impl Values for List {
        fn next_value(&mut self) -> Option<&[u8]> {
            if self.0.is_empty() {
                None
            } else {
                Some(self.0.remove(0).as_bytes())
            }
        }
    }

    fn reduce_all(reducer: &mut dyn Reducer, values: Vec<&'static str>) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut emit = |k: &[u8], v: &[u8]| {
            out.push(format!("{}\t{}", String::from_utf8_lossy(k), String::from_utf8_lossy(v)));
            Ok(())
        };
        reducer.reduce(b"k", &mut List(values), &mut emit)?;
        Ok(out)
    }

    #[test]
    fn wordcount_splits_like_string_tokenizer_and_sums() {
        let words: Vec<String> = map_all(&mut WordCountMapper, " a\tb\x0cc\rd  a\x0be ")
            .into_iter()
            .map(|(k, v)| {
                assert_eq!(v, "1");
                k
            })
            .collect();
        // Vertical tab is not a StringTokenizer delimiter.
        assert_eq!(words, ["a", "b", "c", "d", "a\x0be"]);
        assert_eq!(reduce_all(&mut SumReducer, vec!["1", "2", "39"]).unwrap(), ["k\t42"]);
        assert!(matches!(reduce_all(&mut SumReducer, vec!["1", "one"]), Err(Error::User(_))));
    }

    #[test]
    fn grep_counts_non_overlapping_occurrences() {
        let mut grep = GrepMapper::new(b"aa").unwrap();
        assert_eq!(map_all(&mut grep, "aaa baa"), [("aa".to_string(), "2".to_string())]);
        assert!(map_all(&mut grep, "a b a").is_empty());
        assert!(GrepMapper::new(b"").is_err());
    }

    #[test]
    fn sort_is_identity() {
        assert_eq!(map_all(&mut IdentityMapper, "b\tline"), [("b\tline".to_string(), String::new())]);
        assert_eq!(reduce_all(&mut IdentityReducer, vec!["x", "y"]).unwrap(), ["k\tx", "k\ty"]);
    }
}
