//! Guarantee: the shuffle port serves each partition of a map's output byte for byte, with the
//! CRC32C its index gives, and answers a map it does not hold, a map of another app, a bad
//! user name or a partition past the map's with a clear refusal instead of bytes.

use std::time::Duration;

use compute_proto::ids::{ApplicationId, TaskAttemptId, TaskId, TaskType};
use mapreduce::collector::{CollectorConfig, MapOutputCollector};
use nodemanager::shuffle::{self, ShuffleRequest, ShuffleServer, ShuffleStatus};

const PARTITIONS: u32 = 4;

fn map(app: ApplicationId, index: u32) -> TaskAttemptId {
    TaskAttemptId { task: TaskId { app, kind: TaskType::Map, index }, attempt: 0 }
}

#[test]
fn partitions_come_back_byte_for_byte_and_bad_asks_are_refused() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let local = tempfile::tempdir().unwrap();
    let app = ApplicationId { cluster_ts: 1_700_000_000_000, seq: 1 };
    let maps = [map(app, 0), map(app, 1)];
    // Two maps' outputs, written by MapReduce's own collector where a map task leaves them.
    let mut outputs = Vec::new();
    for (n, m) in maps.iter().enumerate() {
        let dir = shuffle::map_output_dir(local.path(), "ann", m);
        std::fs::create_dir_all(&dir).unwrap();
        let mut c = MapOutputCollector::new(CollectorConfig::new(&dir, PARTITIONS, 1 << 20), None);
        for i in 0..500u32 {
            let key = format!("key{:05}-{n}", i * 7 % 500);
            c.collect(i % PARTITIONS, key.as_bytes(), format!("v{i}").as_bytes()).unwrap();
        }
        let (out, _) = c.close().unwrap();
        outputs.push((std::fs::read(&out.data).unwrap(), mapreduce::spill::read_index(&out.index_path).unwrap()));
    }

    let server =
        rt.block_on(ShuffleServer::start("127.0.0.1:0".parse().unwrap(), vec![local.path().into()], 8)).unwrap();
    let addr = server.local_addr().to_string();
    let t = Duration::from_secs(20);
    for p in 0..PARTITIONS {
        let req = ShuffleRequest { app, user: "ann".into(), maps: maps.to_vec(), partition: p };
        let got = shuffle::fetch(&addr, &req, t, 1 << 30).unwrap();
        assert_eq!(got.len(), 2);
        for (i, (h, bytes)) in got.iter().enumerate() {
            let (data, index) = &outputs[i];
            let e = index[p as usize];
            assert_eq!(h.status, ShuffleStatus::Ok, "{}", h.message);
            assert_eq!(h.map, maps[i]);
            assert!(e.raw_length > 0);
            assert_eq!(bytes.as_slice(), &data[e.offset as usize..(e.offset + e.raw_length) as usize]);
            assert_eq!(h.crc32c, e.crc32c);
            assert_eq!(crc32c::crc32c(bytes), h.crc32c);
        }
    }

    let other_app = ApplicationId { cluster_ts: 1_700_000_000_000, seq: 2 };
    let req =
        ShuffleRequest { app, user: "ann".into(), maps: vec![map(app, 9), map(other_app, 0), maps[0]], partition: 0 };
    let got = shuffle::fetch(&addr, &req, t, 1 << 30).unwrap();
    assert_eq!(got[0].0.status, ShuffleStatus::NotFound);
    assert!(got[0].0.message.contains("no output of attempt_1700000000000_0001_m_000009_0"), "{}", got[0].0.message);
    assert_eq!(got[1].0.status, ShuffleStatus::BadRequest);
    assert!(got[1].0.message.contains("is not a map of application_1700000000000_0001"), "{}", got[1].0.message);
    // The good map after two refusals still comes whole: refusals do not desynchronize.
    assert_eq!(got[2].0.status, ShuffleStatus::Ok);
    assert_eq!(got[2].1.len() as u64, outputs[0].1[0].raw_length);

    for user in ["..", "../ann", "a/b", "", ".hidden"] {
        let req = ShuffleRequest { app, user: user.into(), maps: vec![maps[0]], partition: 0 };
        let got = shuffle::fetch(&addr, &req, t, 1 << 30).unwrap();
        assert_eq!(got[0].0.status, ShuffleStatus::BadRequest, "user {user:?}");
        assert!(got[0].1.is_empty());
    }
    let req = ShuffleRequest { app, user: "ann".into(), maps: vec![maps[0]], partition: PARTITIONS };
    let got = shuffle::fetch(&addr, &req, t, 1 << 30).unwrap();
    assert_eq!(got[0].0.status, ShuffleStatus::BadRequest);
    assert!(got[0].0.message.contains("has 4 partitions"), "{}", got[0].0.message);

    // Garbage instead of a request closes the connection; the server keeps serving.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(t)).unwrap();
        s.write_all(b"HSHF\x01\xff\xff\xff\xff").unwrap();
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        assert!(buf.is_empty());
    }
    let req = ShuffleRequest { app, user: "ann".into(), maps: vec![maps[1]], partition: 1 };
    assert_eq!(shuffle::fetch(&addr, &req, t, 1 << 30).unwrap()[0].0.status, ShuffleStatus::Ok);
    rt.block_on(server.shutdown());
}
