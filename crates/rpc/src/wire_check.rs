//! Test support for protocol crates (feature `wire-check`): the checks every message type must
//! pass, run over a corpus of encodings, one value of each variant, each with its decoder.
//!
//! - [`round_trip`]: each value encodes to at least `MIN_WIRE` bytes and decodes to itself.
//! - [`every_strict_prefix_fails`] and [`trailing_bytes_are_refused`].
//! - [`mutations_never_panic_and_decode_canonically`]: random and mutated bytes decode to an
//!   error or to a value that re-encodes to the same bytes, under every decoder.

use crate::codec::Message;
use std::collections::BTreeSet;
use std::fmt::Debug;

/// Decodes bytes and re-encodes them, or `None` if they do not decode.
pub type Decoder = fn(&[u8]) -> Option<Vec<u8>>;

/// Encodings with the decoder of their type.
pub type Corpus = Vec<(Vec<u8>, Decoder)>;

fn reencode<M: Message>(b: &[u8]) -> Option<Vec<u8>> {
    M::from_bytes(b).ok().map(|m| m.to_bytes())
}

/// Asserts that the samples' tags cover every tag of their enum.
pub fn covers(tags: impl IntoIterator<Item = u8>, all: &[u8], what: &str) {
    let seen: BTreeSet<u8> = tags.into_iter().collect();
    let all: BTreeSet<u8> = all.iter().copied().collect();
    assert_eq!(seen, all, "samples of {what} miss variants");
}

/// Asserts that every sample round-trips, and adds its encoding to `out`.
pub fn round_trip<M: Message + PartialEq + Debug>(samples: &[M], out: &mut Corpus) {
    for m in samples {
        let b = m.to_bytes();
        assert!(b.len() >= M::MIN_WIRE, "{m:?} is shorter than MIN_WIRE");
        assert_eq!(&M::from_bytes(&b).unwrap(), m);
        out.push((b, reencode::<M>));
    }
}

/// Asserts that each encoding decodes and re-encodes to itself.
pub fn every_sample_round_trips(corpus: &Corpus) {
    for (bytes, decode) in corpus {
        assert_eq!(decode(bytes).as_ref(), Some(bytes));
    }
}

/// Asserts that no strict prefix of an encoding decodes.
pub fn every_strict_prefix_fails(corpus: &Corpus) {
    for (bytes, decode) in corpus {
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), None, "prefix of {cut} of {} bytes decoded", bytes.len());
        }
    }
}

/// Asserts that an encoding with a byte appended does not decode.
pub fn trailing_bytes_are_refused(corpus: &Corpus) {
    for (bytes, decode) in corpus {
        let mut b = bytes.clone();
        b.push(0);
        assert_eq!(decode(&b), None);
    }
}

/// xorshift64*: deterministic, so a failing seed can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// For `seeds` seeds: random bytes, short ones often starting with a valid tag, and valid
/// encodings with a few bytes changed, cut or extended, under every decoder of the corpus.
/// Nothing may panic; whatever decodes must re-encode to the same bytes; and more than 100
/// inputs must decode, or the canonical check checked nothing. A failure names its seed.
pub fn mutations_never_panic_and_decode_canonically(corpus: &Corpus, seeds: u64) {
    let decoders: Vec<Decoder> = corpus.iter().map(|(_, d)| *d).collect();
    let mut decoded = 0;
    for seed in 1..=seeds {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let (base, _) = &corpus[rng.below(corpus.len())];
        let input: Vec<u8> = match seed % 3 {
            0 => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
            1 => (0..rng.below(64)).map(|_| if rng.below(2) == 0 { rng.below(4) as u8 } else { 0 }).collect(),
            _ => {
                let mut b = base.clone();
                for _ in 0..1 + rng.below(3) {
                    let i = rng.below(b.len());
                    b[i] = match rng.below(3) {
                        0 => rng.next() as u8,
                        1 => b[i] ^ (1 << rng.below(8)),
                        _ => 0xff,
                    };
                }
                if rng.below(4) == 0 {
                    b.truncate(rng.below(b.len() + 1));
                }
                b
            }
        };
        for decode in &decoders {
            if let Some(again) = decode(&input) {
                assert_eq!(again, input, "seed {seed}: decoded but re-encoded differently");
                decoded += 1;
            }
        }
    }
    assert!(decoded > 100, "only {decoded} mutated inputs decoded");
}
