//! A seeded text corpus for `cargo xtask bench mr`: lines of 5–15 words drawn with a Zipf
//! distribution (exponent 1, as in English text) over a vocabulary of [`VOCAB`] made-up words,
//! shortest words most frequent, separated by single spaces. The generator counts every word it
//! writes, so the benchmark checks each system's word counts against counts it did not take
//! from any of them.

use anyhow::{Context, Result};
use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Distinct words in the vocabulary (a large English vocabulary's size).
pub const VOCAB: usize = 100_000;
/// The seed every corpus is drawn from: the same size gives the same bytes on every run.
pub const SEED: u64 = 0x6865_7264_2d6d_7262; // "herd-mrb"
/// Lines go to the file 1 MiB at a time.
const CHUNK: usize = 1 << 20;
/// The Zipf sampler's guide table has 2^GUIDE_BITS buckets on the top bits of a draw.
const GUIDE_BITS: u32 = 16;

/// A written corpus: its size and what it holds.
pub struct Corpus {
    pub bytes: u64,
    pub lines: u64,
    pub words: u64,
    /// The vocabulary, by rank (rank 0 is the most frequent).
    pub vocab: Vec<String>,
    /// Occurrences of each rank's word in the file.
    pub counts: Vec<u64>,
}

/// splitmix64: small, fast and good enough to draw text from.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (the modulo bias is far below anything the corpus depends on).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// `n` distinct lowercase words that alternate consonants and vowels (so they read like words),
/// 2 to 10 letters, ordered roughly shortest first: by length plus a random 0–3, so the most
/// frequent words are mostly 2–5 letters long, as in English, where running text averages
/// about 4.7 letters a word.
fn vocabulary(rng: &mut Rng, n: usize) -> Vec<String> {
    const CONSONANTS: &[u8] = b"bcdfghjklmnprstvwyz";
    const VOWELS: &[u8] = b"aeiou";
    let mut seen = std::collections::HashSet::with_capacity(n);
    let mut words = Vec::with_capacity(n);
    while words.len() < n {
        // Two dice: lengths near 6 most often, 2 and 10 rarely.
        let len = rng.range(1, 5) + rng.range(1, 5);
        let mut vowel = rng.next().is_multiple_of(3);
        let w: String = (0..len)
            .map(|_| {
                let set = if vowel { VOWELS } else { CONSONANTS };
                vowel = !vowel;
                set[(rng.next() % set.len() as u64) as usize] as char
            })
            .collect();
        if seen.insert(w.clone()) {
            words.push((len + rng.range(0, 3), w));
        }
    }
    words.sort_by_key(|(key, _)| *key);
    words.into_iter().map(|(_, w)| w).collect()
}

/// Draws ranks with P(rank r) proportional to 1 / (r + 1): the cumulative weights as u64
/// thresholds (a draw `u` picks the first rank whose threshold exceeds it), and a guide table
/// on the draw's top bits that narrows the search to a few ranks.
struct Zipf {
    upper: Vec<u64>,
    guide: Vec<u32>,
}

impl Zipf {
    fn new(n: usize) -> Zipf {
        let total: f64 = (1..=n).map(|r| 1.0 / r as f64).sum();
        let mut acc = 0.0;
        let mut upper: Vec<u64> = (1..=n)
            .map(|r| {
                acc += 1.0 / r as f64;
                // 2^64 * fraction; the f64 -> u64 cast saturates.
                (acc / total * 18_446_744_073_709_551_616.0) as u64
            })
            .collect();
        *upper.last_mut().expect("a vocabulary") = u64::MAX;
        let guide = (0..=1u64 << GUIDE_BITS)
            .map(|b| {
                // Bucket b starts at b << (64 - GUIDE_BITS); the end of the last one is 2^64.
                let start = if b == 1 << GUIDE_BITS { u64::MAX } else { b << (64 - GUIDE_BITS) };
                upper.partition_point(|&t| t <= start).min(n - 1) as u32
            })
            .collect();
        Zipf { upper, guide }
    }

    fn sample(&self, u: u64) -> usize {
        let b = (u >> (64 - GUIDE_BITS)) as usize;
        let (lo, hi) = (self.guide[b] as usize, self.guide[b + 1] as usize);
        // min: u64::MAX itself is not below the last threshold, but is the last rank's.
        (lo + self.upper[lo..=hi].partition_point(|&t| t <= u)).min(hi)
    }
}

/// Writes about `size` bytes of text to `path` (whole lines: it stops at the last line that
/// fits) and fsyncs it, so that its write-back does not spill into the first measurement.
pub fn write(path: &Path, size: u64) -> Result<Corpus> {
    let mut rng = Rng(SEED);
    let vocab = vocabulary(&mut rng, VOCAB);
    let zipf = Zipf::new(VOCAB);
    let mut counts = vec![0u64; VOCAB];
    let mut f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 256);
    let (mut written, mut lines, mut words) = (0u64, 0u64, 0u64);
    let mut line = [0usize; 15];
    'file: loop {
        while buf.len() < CHUNK {
            let n = rng.range(5, 15) as usize;
            let mut len = 0;
            for r in line.iter_mut().take(n) {
                *r = zipf.sample(rng.next());
                len += vocab[*r].len() + 1;
            }
            if written + (buf.len() + len) as u64 > size {
                f.write_all(&buf)?;
                written += buf.len() as u64;
                break 'file;
            }
            for (i, &r) in line[..n].iter().enumerate() {
                if i > 0 {
                    buf.push(b' ');
                }
                buf.extend_from_slice(vocab[r].as_bytes());
                counts[r] += 1;
            }
            buf.push(b'\n');
            lines += 1;
            words += n as u64;
        }
        f.write_all(&buf).with_context(|| format!("writing {}", path.display()))?;
        written += buf.len() as u64;
        buf.clear();
    }
    f.sync_all().with_context(|| format!("fsync of {}", path.display()))?;
    Ok(Corpus { bytes: written, lines, words, vocab, counts })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_samples_follow_one_over_rank() {
        let z = Zipf::new(1000);
        let mut rng = Rng(7);
        let mut hits = vec![0u64; 1000];
        for _ in 0..1_000_000 {
            hits[z.sample(rng.next())] += 1;
        }
        // P(rank 0) = 1 / H(1000) = 0.1336; rank 1 half of that, rank 9 a tenth.
        let p0 = hits[0] as f64 / 1e6;
        assert!((p0 - 0.1336).abs() < 0.003, "{p0}");
        let ratio = hits[0] as f64 / hits[9] as f64;
        assert!((ratio - 10.0).abs() < 0.6, "{ratio}");
        assert!(hits[999] > 0, "the last rank is drawn too");
        // Every draw lands in range, at the edges too.
        assert_eq!(z.sample(0), 0);
        assert_eq!(z.sample(u64::MAX), 999);
    }

    #[test]
    fn corpus_is_seeded_and_counted() {
        let dir = std::env::temp_dir().join(format!("xtask-corpus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (a, b) = (dir.join("a"), dir.join("b"));
        let ca = write(&a, 200_000).unwrap();
        write(&b, 200_000).unwrap();
        let text = std::fs::read_to_string(&a).unwrap();
        assert_eq!(text, std::fs::read_to_string(&b).unwrap(), "same seed, same bytes");
        assert!(ca.bytes <= 200_000 && ca.bytes > 199_000, "{}", ca.bytes);
        assert_eq!(text.len() as u64, ca.bytes);
        assert_eq!(text.lines().count() as u64, ca.lines);
        let mut counted = std::collections::HashMap::new();
        for l in text.lines() {
            let n = l.split(' ').count();
            assert!((5..=15).contains(&n), "{l:?}");
            for w in l.split(' ') {
                *counted.entry(w).or_insert(0u64) += 1;
            }
        }
        let words: u64 = counted.values().sum();
        assert_eq!(words, ca.words);
        for (r, w) in ca.vocab.iter().enumerate().take(50) {
            assert_eq!(counted.get(w.as_str()).copied().unwrap_or(0), ca.counts[r], "{w}");
        }
        assert_eq!(ca.vocab.iter().collect::<std::collections::HashSet<_>>().len(), VOCAB);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
