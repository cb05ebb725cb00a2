use std::io::Cursor;

use super::*;
use crate::test_util::Rng;

fn read_split(text: &[u8], start: u64, length: u64) -> Vec<(u64, Vec<u8>)> {
    let mut reader = LineRecordReader::new(Cursor::new(text), start, length, MAX_LINE_LEN_DEFAULT).unwrap();
    let mut records = Vec::new();
    while let Some((offset, line)) = reader.next_record().unwrap() {
        records.push((offset, line.to_vec()));
    }
    records
}

/// The file's lines as a reference: split at `\n`, `\r` stripped before it, no record after a
/// final `\n`.
fn reference_lines(text: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut lines = Vec::new();
    let mut start = 0usize;
    while start < text.len() {
        let end = text[start..].iter().position(|&b| b == b'\n').map(|i| start + i);
        let (content_end, next) = match end {
            Some(i) => (i, i + 1),
            None => (text.len(), text.len()),
        };
        let mut line = &text[start..content_end];
        if end.is_some() {
            line = line.strip_suffix(b"\r").unwrap_or(line);
        }
        lines.push((start as u64, line.to_vec()));
        start = next;
    }
    lines
}

#[test]
fn every_line_exactly_once_for_random_texts_and_boundaries() {
    for seed in 0..400u64 {
        let mut rng = Rng(seed);
        let len = rng.below(300) as usize;
        // Few distinct bytes, many line ends, so boundaries land on every kind of position.
        let alphabet = b"ab\n\r\n x";
        let text: Vec<u8> = (0..len).map(|_| alphabet[rng.below(alphabet.len() as u64) as usize]).collect();
        let mut cuts: Vec<u64> = (0..rng.below(8)).map(|_| rng.below(len as u64 + 1)).collect();
        cuts.push(0);
        cuts.push(len as u64);
        cuts.sort_unstable();
        cuts.dedup();
        let mut got = Vec::new();
        for pair in cuts.windows(2) {
            got.extend(read_split(&text, pair[0], pair[1] - pair[0]));
        }
        assert_eq!(got, reference_lines(&text), "seed {seed}: text {:?} cuts {cuts:?}", String::from_utf8_lossy(&text));
    }
}

#[test]
fn boundary_rules_on_a_known_text() {
    let text = b"one\ntwo\r\nthree\nfour";
    // A split starting exactly at a line start keeps that line.
    assert_eq!(
        read_split(text, 4, 5),
        vec![(4, b"two".to_vec())],
        "starts at `two`, ends inside `three`'s line? no: 9 is three's start"
    );
    // A split starting inside a line leaves it to the earlier split, and reads past its end.
    assert_eq!(read_split(text, 1, 5), vec![(4, b"two".to_vec())], "starts inside `one`");
    assert_eq!(read_split(text, 0, 1), vec![(0, b"one".to_vec())], "reads past its end");
    // Between `\r` and `\n`: the line containing them is the earlier split's.
    assert_eq!(read_split(text, 8, 3), vec![(9, b"three".to_vec())]);
    assert_eq!(read_split(text, 15, 4), vec![(15, b"four".to_vec())]);
    assert_eq!(read_split(text, 16, 3), vec![]);
    assert_eq!(read_split(text, 0, 0), vec![]);
}

#[test]
fn byte_order_mark_dropped_at_offset_zero_only() {
    let text = b"\xEF\xBB\xBFhead\n\xEF\xBB\xBFbody\n";
    assert_eq!(read_split(text, 0, text.len() as u64), vec![(0, b"head".to_vec()), (8, b"\xEF\xBB\xBFbody".to_vec())]);
}

#[test]
fn a_line_over_the_limit_is_an_error_not_a_growing_buffer() {
    let text = b"short\nmuch too long for the limit\nok\n";
    let mut reader = LineRecordReader::new(Cursor::new(&text[..]), 0, 36, 8).unwrap();
    assert_eq!(reader.next_record().unwrap(), Some((0, &b"short"[..])));
    match reader.next_record() {
        Err(Error::LineTooLong { offset: 6, max_len: 8 }) => {}
        other => panic!("expected LineTooLong at 6, got {other:?}"),
    }
    // Exactly at the limit, with `\r\n` or at the end of the file, is fine.
    let text = b"12345678\r\n12345678";
    let mut reader = LineRecordReader::new(Cursor::new(&text[..]), 0, 18, 8).unwrap();
    assert_eq!(reader.next_record().unwrap(), Some((0, &b"12345678"[..])));
    assert_eq!(reader.next_record().unwrap(), Some((10, &b"12345678"[..])));
    assert_eq!(reader.next_record().unwrap(), None);
    let mut reader = LineRecordReader::new(Cursor::new(&b"123456789"[..]), 0, 9, 8).unwrap();
    assert!(matches!(reader.next_record(), Err(Error::LineTooLong { offset: 0, .. })));
}

#[test]
fn splits_follow_blocks() {
    let block = |offset, length, host: &str| BlockLocation { offset, length, hosts: vec![host.to_string()] };
    let splits = splits_for_file("/in/a", 250, &[block(0, 128, "h1"), block(128, 122, "h2")]).unwrap();
    assert_eq!(splits.len(), 2);
    assert_eq!((splits[1].start, splits[1].length, splits[1].end()), (128, 122, 250));
    assert_eq!(splits[1].hosts, vec!["h2".to_string()]);
    let empty = splits_for_file("/in/empty", 0, &[]).unwrap();
    assert_eq!(empty.len(), 1, "an empty file still gets one (empty) split");
    assert_eq!(empty[0].length, 0);
    assert!(matches!(
        splits_for_file("/in/a", 250, &[block(0, 128, "h1"), block(129, 121, "h2")]),
        Err(Error::InvalidBlocks { .. })
    ));
    assert!(matches!(splits_for_file("/in/a", 300, &[block(0, 128, "h1")]), Err(Error::InvalidBlocks { .. })));
}
