//! Packets: chunking at the block's chunk boundaries, verification, limits; acks.

use crate::codec::Message;
use crate::rpc::FrameError;
use crate::transfer::*;

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 + 7) as u8).collect()
}

#[test]
fn pieces_follow_the_block_chunk_boundaries() {
    let lens = |offset, len| chunk_pieces(offset, len).map(|r| r.len()).collect::<Vec<_>>();
    assert_eq!(lens(700, 1000), [324, 512, 164]);
    assert_eq!(lens(0, 1024), [512, 512]);
    assert_eq!(lens(0, 1025), [512, 512, 1]);
    assert_eq!(lens(511, 1), [1]);
    assert_eq!(lens(511, 2), [1, 1]);
    assert_eq!(lens(100, 50), [50]);
    assert_eq!(lens(1024, 0), Vec::<usize>::new());
    for offset in [0u64, 1, 300, 511, 512, 700, 1 << 30] {
        for len in [0usize, 1, 211, 512, 513, 4000, 64 << 10] {
            let pieces: Vec<_> = chunk_pieces(offset, len).collect();
            assert_eq!(pieces.len(), piece_count(offset, len), "offset {offset} len {len}");
            // Contiguous, covering the data, every piece ending on a chunk boundary but the last.
            let mut at = 0;
            for (i, p) in pieces.iter().enumerate() {
                assert_eq!(p.start, at);
                assert!(!p.is_empty());
                if i + 1 < pieces.len() {
                    assert_eq!((offset + p.end as u64) % CHUNK_LEN as u64, 0);
                }
                at = p.end;
            }
            assert_eq!(at, len);
        }
    }
}

#[test]
fn build_computes_crc32c_over_the_pieces() {
    let d = data(1000);
    let p = Packet::build(5, 700, d.clone(), false, false);
    let expect = [crc32c::crc32c(&d[..324]), crc32c::crc32c(&d[324..836]), crc32c::crc32c(&d[836..])];
    assert_eq!(p.crcs, expect);
    assert_eq!(p.header.crc_count(), 3);
    assert_eq!(p.header.body_len(), 12 + 1000);
    assert_eq!(p.verify(), None);
    // The layout: 21-byte header, the CRCs big-endian, then the data.
    let b = p.to_bytes();
    assert_eq!(b.len(), PacketHeader::LEN + 12 + 1000);
    assert_eq!(&b[..8], &5u64.to_be_bytes());
    assert_eq!(&b[8..16], &700u64.to_be_bytes());
    assert_eq!(b[16], 0);
    assert_eq!(&b[17..21], &1000u32.to_be_bytes());
    assert_eq!(&b[21..25], &expect[0].to_be_bytes());
    assert_eq!(&b[33..], &d[..]);
    let flags = |last, sync| Packet::build(0, 0, vec![], last, sync).to_bytes()[16];
    assert_eq!((flags(true, false), flags(false, true), flags(true, true)), (1, 2, 3));
}

#[test]
fn a_flipped_byte_is_found_at_its_piece() {
    let d = data(1000);
    // Piece starts in the block: 700, 1024, 1536.
    for (i, bad_at) in [(0, 700), (323, 700), (324, 1024), (835, 1024), (836, 1536), (999, 1536)] {
        let mut p = Packet::build(1, 700, d.clone(), false, false);
        p.data[i] ^= 0x10;
        assert_eq!(p.verify(), Some(bad_at), "byte {i}");
        // Also after the trip over the wire.
        assert_eq!(Packet::from_bytes(&p.to_bytes()).unwrap().verify(), Some(bad_at));
    }
    let mut p = Packet::build(1, 700, d, false, false);
    p.crcs[2] ^= 1;
    assert_eq!(p.verify(), Some(1536));
    p.crcs.pop();
    assert_eq!(p.verify(), Some(1536));
}

#[test]
fn oversize_packets_are_refused_from_the_header() {
    // A header announcing the limit + 1 and nothing after it: read_from must refuse it before
    // allocating or reading the body (which would be an UnexpectedEof).
    let mut h = Vec::new();
    h.extend_from_slice(&1u64.to_be_bytes());
    h.extend_from_slice(&0u64.to_be_bytes());
    h.push(0);
    h.extend_from_slice(&((MAX_PACKET_DATA_LEN as u32) + 1).to_be_bytes());
    let err = Packet::read_from(&mut &h[..]).unwrap_err();
    assert!(matches!(err, FrameError::Decode(crate::DecodeError::TooLarge { .. })), "{err:?}");
    // Past the block limit.
    h[8..16].copy_from_slice(&MAX_BLOCK_LEN.to_be_bytes());
    h[17..21].copy_from_slice(&1u32.to_be_bytes());
    assert!(PacketHeader::from_bytes(&h).is_err());
    // Unknown flags.
    h[8..16].copy_from_slice(&0u64.to_be_bytes());
    h[16] = 4;
    assert!(PacketHeader::from_bytes(&h).is_err());
    // Exactly the limit is fine.
    let p = Packet::build(2, 0, data(MAX_PACKET_DATA_LEN), true, true);
    assert_eq!(Packet::read_from(&mut &p.to_bytes()[..]).unwrap(), p);
}

#[test]
#[should_panic(expected = "packet of 262145 bytes")]
fn build_refuses_oversize_data() {
    Packet::build(0, 0, vec![0; MAX_PACKET_DATA_LEN + 1], false, false);
}

#[test]
fn packets_and_acks_stream() {
    let packets: Vec<Packet> = (0..4u64)
        .map(|i| {
            let off = 700 + i * 3000;
            Packet::build(i, off, if i == 3 { vec![] } else { data(3000) }, i == 3, false)
        })
        .collect();
    let acks: Vec<PipelineAck> = (0..4u64)
        .map(|i| PipelineAck { seqno: i, statuses: vec![Status::Success, Status::ErrorChecksum, Status::Success] })
        .collect();
    let mut wire = Vec::new();
    for (p, a) in packets.iter().zip(&acks) {
        p.write_to(&mut wire).unwrap();
        a.write_to(&mut wire).unwrap();
    }
    let mut r = &wire[..];
    for (p, a) in packets.iter().zip(&acks) {
        assert_eq!(&Packet::read_from(&mut r).unwrap(), p);
        let got = PipelineAck::read_from(&mut r).unwrap();
        assert_eq!(&got, a);
        assert!(!got.is_success());
        assert_eq!(got.first_failed(), Some(1));
    }
    assert!(r.is_empty());
    assert!(PipelineAck { seqno: 0, statuses: vec![Status::Success; 3] }.is_success());
}

#[test]
fn op_frames_check_their_version_and_size() {
    let op = Op::CopyBlock { block: crate::ExtendedBlock { id: 1, gs: 2, len: 3 } };
    let mut frame = op.to_frame().unwrap();
    assert_eq!(&frame[4..6], &DATA_TRANSFER_VERSION.to_be_bytes());
    frame[5] = 2;
    assert!(Op::from_body(&frame[4..]).is_err());
    let huge = ((MAX_OP_FRAME_LEN + 1) as u32).to_be_bytes();
    assert!(matches!(Op::read_from(&mut &huge[..]), Err(FrameError::TooLarge { .. })));
    let resp = OpResponse { status: Status::Success, message: String::new(), first_chunk_offset: 512 };
    assert_eq!(OpResponse::read_from(&mut &resp.to_frame().unwrap()[..]).unwrap(), resp);
}

#[test]
fn block_checksum_response_layout() {
    let r = BlockChecksumResponse { bytes_per_crc: 512, crc_per_block: 0x0102_0304_0506, md5: [0xee; 16] };
    let frame = r.to_frame().unwrap();
    // len | bytes_per_crc u32 BE | crc_per_block u64 BE | md5 raw.
    assert_eq!(&frame[..4], &28u32.to_be_bytes());
    assert_eq!(&frame[4..8], &512u32.to_be_bytes());
    assert_eq!(&frame[8..16], &0x0102_0304_0506u64.to_be_bytes());
    assert_eq!(&frame[16..], &[0xee; 16]);
    assert_eq!(BlockChecksumResponse::read_from(&mut &frame[..]).unwrap(), r);
    // A digest one byte short, or a byte too many, is refused.
    let mut short = frame[..frame.len() - 1].to_vec();
    short[..4].copy_from_slice(&27u32.to_be_bytes());
    assert!(BlockChecksumResponse::read_from(&mut &short[..]).is_err());
    let mut long = frame.clone();
    long.push(0);
    long[..4].copy_from_slice(&29u32.to_be_bytes());
    assert!(BlockChecksumResponse::read_from(&mut &long[..]).is_err());
    let op = Op::BlockChecksum { block: crate::ExtendedBlock { id: 7, gs: 8, len: 9 } };
    let frame = op.to_frame().unwrap();
    assert_eq!(frame[6], 5, "BlockChecksum is op 5");
    assert_eq!(Op::from_body(&frame[4..]).unwrap(), op);
}
