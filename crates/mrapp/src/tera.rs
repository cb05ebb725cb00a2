//! TeraGen, TeraSort's total order and TeraValidate, on text rows.
//!
//! Rows are gensort's ASCII format (`gensort -a`), 100 bytes each: a 10-byte key of printable
//! characters (' ' to '~'), two blanks, the row number as 32 hex digits, two blanks, 52 filler
//! characters, `\r\n`. So they are lines, and herd's line-based `sort` sorts them by key.
//! Hadoop's TeraGen writes the same layout with binary keys; the printable keys keep every row
//! one line. The keys come from splitmix64 of the row number (any map can make any row).
//!
//! A sort with more than one reduce is a *total order* sort (Hadoop's TotalOrderPartitioner):
//! the AM samples lines of the input and cuts the key space into `reduces` ranges, so
//! part-r-00000 holds the smallest lines, and the parts' concatenation is sorted.
//!
//! TeraValidate: one map per split of the (sorted) input reports its first and last line, its
//! row count, the sum of its rows' CRC32Cs (order-independent, so the same before and after a
//! sort) and the rows out of order inside it; one reduce checks the splits follow each other
//! in order (by file name, then offset) and writes `rows`, `checksum` and any `error` lines.

use std::fmt::Write as _;

pub const ROW_LEN: usize = 100;
const KEY_LEN: usize = 10;
/// Lines sampled per split for the partition cut points, and splits sampled at most.
pub const SAMPLE_LINES_PER_SPLIT: usize = 1000;
pub const SAMPLE_SPLITS_MAX: usize = 100;
/// Error lines TeraValidate writes at most.
const ERRORS_MAX: usize = 100;

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Row `row`, with its `\r\n`.
pub fn row(row: u64) -> [u8; ROW_LEN] {
    let mut out = [b' '; ROW_LEN];
    let (mut a, mut b) = (splitmix64(row), splitmix64(row ^ 0x5555_5555_5555_5555));
    for (i, byte) in out[..KEY_LEN].iter_mut().enumerate() {
        let r = if i < 5 { &mut a } else { &mut b };
        *byte = b' ' + (*r % 95) as u8;
        *r /= 95;
    }
    let id = format!("{:032X}", u128::from(row));
    out[12..44].copy_from_slice(id.as_bytes());
    for (i, byte) in out[46..98].iter_mut().enumerate() {
        *byte = b'A' + ((row as usize / 4 + i / 4) % 26) as u8;
    }
    out[98] = b'\r';
    out[99] = b'\n';
    out
}

/// The generator splits: `maps` ranges of rows, as (first row, rows).
pub fn gen_ranges(rows: u64, maps: u32) -> Vec<(u64, u64)> {
    let maps = u64::from(maps.max(1));
    (0..maps).map(|i| (rows * i / maps, rows * (i + 1) / maps - rows * i / maps)).collect()
}

/// `reduces - 1` cut points from sampled lines: reduce `i` gets the lines `l` with
/// `cuts[i-1] <= l < cuts[i]`.
pub fn cut_points(mut samples: Vec<Vec<u8>>, reduces: u32) -> Vec<Vec<u8>> {
    samples.sort();
    let r = reduces.max(1) as usize;
    if samples.is_empty() {
        return Vec::new();
    }
    (1..r).map(|i| samples[i * samples.len() / r].clone()).collect()
}

/// The reduce a line goes to under `cuts`.
pub fn range_partition(cuts: &[Vec<u8>], line: &[u8]) -> u32 {
    cuts.partition_point(|c| c.as_slice() <= line) as u32
}

/// What one TeraValidate map learns of its split.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SplitSummary {
    pub rows: u64,
    pub checksum: u64,
    pub unordered: u64,
    pub first: Vec<u8>,
    pub last: Vec<u8>,
}

impl SplitSummary {
    pub fn add(&mut self, line: &[u8]) {
        if self.rows == 0 {
            self.first = line.to_vec();
        } else if line < self.last.as_slice() {
            self.unordered += 1;
        }
        self.rows += 1;
        self.checksum = self.checksum.wrapping_add(u64::from(crc32c::crc32c(line)));
        self.last.clear();
        self.last.extend_from_slice(line);
    }

    /// The map output value: `rows \t checksum \t unordered \t hex(first) \t hex(last)`.
    pub fn encode(&self) -> Vec<u8> {
        format!("{}\t{:016x}\t{}\t{}\t{}", self.rows, self.checksum, self.unordered, hex(&self.first), hex(&self.last))
            .into_bytes()
    }

    pub fn decode(v: &[u8]) -> Option<SplitSummary> {
        let s = std::str::from_utf8(v).ok()?;
        let f: Vec<&str> = s.split('\t').collect();
        let [rows, checksum, unordered, first, last] = f.as_slice() else { return None };
        Some(SplitSummary {
            rows: rows.parse().ok()?,
            checksum: u64::from_str_radix(checksum, 16).ok()?,
            unordered: unordered.parse().ok()?,
            first: unhex(first)?,
            last: unhex(last)?,
        })
    }
}

/// The map output key of a split: its file and offset, sorting in file order.
pub fn split_key(path: &str, start: u64) -> Vec<u8> {
    format!("{path}\t{start:020}").into_bytes()
}

/// The reduce: the splits' summaries in key order -> the output lines.
pub fn validate(splits: &[(Vec<u8>, SplitSummary)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let (mut rows, mut checksum, mut errors) = (0u64, 0u64, Vec::new());
    let mut prev: Option<&(Vec<u8>, SplitSummary)> = None;
    for s in splits {
        let name = String::from_utf8_lossy(&s.0).replace('\t', "@");
        if s.1.unordered > 0 {
            errors.push(format!("{} rows out of order inside {name}", s.1.unordered));
        }
        if let Some(p) = prev {
            if s.1.rows > 0 && p.1.rows > 0 && s.1.first < p.1.last {
                errors
                    .push(format!("misorder between {} and {name}", String::from_utf8_lossy(&p.0).replace('\t', "@")));
            }
        }
        if s.1.rows > 0 {
            prev = Some(s);
        }
        rows += s.1.rows;
        checksum = checksum.wrapping_add(s.1.checksum);
    }
    out.push(("rows".to_string(), rows.to_string()));
    out.push(("checksum".to_string(), format!("{checksum:016x}")));
    for e in errors.into_iter().take(ERRORS_MAX) {
        out.push(("error".to_string(), e));
    }
    out
}

fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_printable_lines_of_100_bytes() {
        for r in [0, 1, 2, 999_999, u64::MAX / 3] {
            let row = row(r);
            assert_eq!(&row[98..], b"\r\n");
            assert!(row[..98].iter().all(|b| (b' '..=b'~').contains(b)), "{:?}", String::from_utf8_lossy(&row));
            assert_eq!(&row[12..44], format!("{:032X}", r).as_bytes());
        }
        assert_ne!(row(1)[..10], row(2)[..10]);
    }

    #[test]
    fn gen_ranges_cover_every_row_once() {
        let r = gen_ranges(1003, 4);
        assert_eq!(r.iter().map(|x| x.1).sum::<u64>(), 1003);
        assert!(r.windows(2).all(|w| w[0].0 + w[0].1 == w[1].0));
    }

    #[test]
    fn cut_points_partition_in_order() {
        let samples: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i]).collect();
        let cuts = cut_points(samples, 4);
        assert_eq!(cuts, vec![vec![25], vec![50], vec![75]]);
        assert_eq!(range_partition(&cuts, &[0]), 0);
        assert_eq!(range_partition(&cuts, &[25]), 1);
        assert_eq!(range_partition(&cuts, &[99]), 3);
        assert!(cut_points(Vec::new(), 4).is_empty());
    }

    #[test]
    fn validate_finds_misorders_and_sums_checksums() {
        let summary = |lines: &[&[u8]]| {
            let mut s = SplitSummary::default();
            for l in lines {
                s.add(l);
            }
            s
        };
        let a = summary(&[b"a", b"b"]);
        assert_eq!(SplitSummary::decode(&a.encode()), Some(a.clone()));
        let ok = validate(&[(split_key("/p0", 0), a.clone()), (split_key("/p1", 0), summary(&[b"c", b"d"]))]);
        assert_eq!(ok[0], ("rows".into(), "4".into()));
        assert_eq!(ok.len(), 2, "{ok:?}");
        let bad = validate(&[(split_key("/p0", 0), summary(&[b"c", b"b"])), (split_key("/p1", 0), a)]);
        assert_eq!(bad.iter().filter(|(k, _)| k == "error").count(), 2, "{bad:?}");
        // The checksum does not depend on the order.
        let x = validate(&[(split_key("/p", 0), summary(&[b"x", b"y"]))]);
        let y = validate(&[(split_key("/p", 0), summary(&[b"y", b"x"]))]);
        assert_eq!(x[1], y[1]);
    }
}
