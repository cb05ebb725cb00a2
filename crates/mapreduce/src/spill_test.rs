use super::*;
use crate::test_util::Rng;

fn records_of(mut source: impl RecordSource) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let (mut key, mut value) = (Vec::new(), Vec::new());
    let mut out = Vec::new();
    while source.next_record(&mut key, &mut value)? {
        out.push((key.clone(), value.clone()));
    }
    Ok(out)
}

fn write_two_segments() -> (Vec<u8>, Vec<IndexEntry>) {
    let mut writer = SegmentWriter::new(Vec::new());
    writer.append(b"a", b"1").unwrap();
    writer.append(&[b'k'; 200], b"").unwrap();
    writer.end_segment();
    writer.end_segment();
    writer.append(b"", b"empty key").unwrap();
    writer.end_segment();
    writer.finish().unwrap()
}

#[test]
fn segments_round_trip_through_memory_and_files() {
    let (data, index) = write_two_segments();
    assert_eq!(index.len(), 3);
    assert_eq!(index[1].raw_length, 0);
    assert_eq!(index[0].raw_length, record_len(b"a", b"1") + record_len(&[b'k'; 200], b""));
    assert_eq!(decode_index(&encode_index(&index), "t").unwrap(), index);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.out");
    std::fs::write(&path, &data).unwrap();
    let first = records_of(SegmentReader::open_file(&path, index[0]).unwrap()).unwrap();
    assert_eq!(first, vec![(b"a".to_vec(), b"1".to_vec()), (vec![b'k'; 200], vec![])]);
    assert!(records_of(SegmentReader::open_file(&path, index[1]).unwrap()).unwrap().is_empty());
    let third = &data[index[2].offset as usize..];
    let third = SegmentReader::from_bytes("mem", third.to_vec(), index[2].crc32c).unwrap();
    assert_eq!(records_of(third).unwrap(), vec![(vec![], b"empty key".to_vec())]);
}

#[test]
fn a_flipped_bit_or_a_short_file_is_caught_before_any_record() {
    let (mut data, index) = write_two_segments();
    data[3] ^= 0x01;
    assert!(matches!(
        SegmentReader::from_bytes("mem", data[..index[0].raw_length as usize].to_vec(), index[0].crc32c),
        Err(Error::ChecksumMismatch { .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.out");
    std::fs::write(&path, &data).unwrap();
    match SegmentReader::open_file(&path, index[0]) {
        Err(e @ Error::ChecksumMismatch { .. }) => {
            assert!(e.to_string().contains("file.out [0+"), "{e}")
        }
        other => panic!("expected a checksum mismatch, got {:?}", other.err()),
    }
    std::fs::write(&path, &data[..10]).unwrap();
    assert!(matches!(SegmentReader::open_file(&path, index[0]), Err(Error::Truncated { .. })));
}

#[test]
fn bad_bytes_with_a_good_checksum_are_errors_not_panics() {
    // A writer bug or a forged index: the CRC matches, the records do not decode.
    for bytes in [
        vec![0x80, 0x80, 0x80, 0x80, 0x80, 0x01], // a 6-byte varint
        vec![0x05, 0x00, b'a'],                   // a key longer than the segment
        vec![0xff, 0xff, 0xff, 0xff, 0x0f, 0xff, 0xff, 0xff, 0xff, 0x0f], // 4 GiB + 4 GiB
        vec![0x01],                               // a header cut short
        vec![0x01, 0x01, b'k', b'v', 0x00],       // a record, then a partial one
    ] {
        let crc = crc32c::crc32c(&bytes);
        let reader = SegmentReader::from_bytes("forged", bytes.clone(), crc).unwrap();
        let result = records_of(reader);
        assert!(matches!(result, Err(Error::Corrupt { .. } | Error::Truncated { .. })), "{bytes:?}: {result:?}");
    }
    // Random bytes: whatever happens, no panic.
    let mut rng = Rng(7);
    for _ in 0..2000 {
        let len = rng.below(24) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let crc = crc32c::crc32c(&bytes);
        let _ = records_of(SegmentReader::from_bytes("random", bytes, crc).unwrap());
    }
}

#[test]
fn index_checks() {
    let (_, index) = write_two_segments();
    let good = encode_index(&index);
    assert!(matches!(decode_index(&good[..8], "i"), Err(Error::Truncated { .. })));
    let mut flipped = good.clone();
    flipped[12] ^= 1;
    assert!(matches!(decode_index(&flipped, "i"), Err(Error::ChecksumMismatch { .. })));
    // Segments that do not tile the file, with a valid CRC.
    let gap = [IndexEntry { offset: 0, raw_length: 4, crc32c: 0 }, IndexEntry { offset: 5, raw_length: 1, crc32c: 0 }];
    let mut bytes = encode_index(&gap[..1]);
    bytes.truncate(bytes.len() - 4);
    bytes[5..9].copy_from_slice(&2u32.to_be_bytes());
    bytes.extend_from_slice(&5u64.to_be_bytes());
    bytes.extend_from_slice(&1u64.to_be_bytes());
    bytes.extend_from_slice(&0u32.to_be_bytes());
    let crc = crc32c::crc32c(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    assert!(matches!(decode_index(&bytes, "i"), Err(Error::Corrupt { .. })));

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("file.out.index");
    write_index(&path, &index).unwrap();
    assert_eq!(read_index(&path).unwrap(), index);
}
