//! Guarantee: `herd fs` against a real cluster (`herd up --datanodes 3`) does what Hadoop's
//! shell does, prints what it prints, and fails as it fails: put/get/cat round-trip bytes,
//! ls/stat/du report them, mv/chmod/rm change the namespace, globs expand, fsck is HEALTHY,
//! and a missing path is `No such file or directory` with exit 1.

mod common;

use common::fs::FsCluster;

#[test]
fn the_shell_round_trips_files_and_reports_like_hadoop() {
    let c = FsCluster::start(3);
    let local = c.path().join("local.bin");
    let bytes = common::dfs::bytes(5 << 20, 1);
    std::fs::write(&local, &bytes).unwrap();

    c.fs_ok(&["mkdir", "-p", "/d/sub"]);
    c.fs_ok(&["put", "-b", "1m", local.to_str().unwrap(), "/d/a.bin"]);
    c.fs_ok(&["put", "-r", "2", local.to_str().unwrap(), "/d/b.bin"]);
    // put into an existing directory keeps the local name.
    c.fs_ok(&["put", local.to_str().unwrap(), "/d/sub"]);

    let ls = c.fs_ok(&["ls", "/d"]);
    let lines: Vec<&str> = ls.lines().collect();
    assert_eq!(lines[0], "Found 3 items", "{ls}");
    assert!(lines[1].starts_with("-rw-r--r--   3 herd "), "{ls}");
    assert!(lines[1].ends_with(" /d/a.bin") && lines[1].contains(" 5242880 "), "{ls}");
    assert!(lines[2].starts_with("-rw-r--r--   2 herd "), "{ls}");
    assert!(lines[3].starts_with("drwxr-xr-x   - herd ") && lines[3].ends_with(" /d/sub"), "{ls}");
    let stat = c.fs_ok(&["stat", "%b %F %n %o %r %u", "/d/a.bin", "/d/sub"]);
    assert_eq!(stat, "5242880 regular file a.bin 1048576 3 herd\n0 directory sub 0 0 herd\n");

    // cat and get give back the bytes; a glob picks files.
    let out = c.fs(&["cat", "/d/a.*"]);
    assert!(out.status.success());
    assert!(out.stdout == bytes, "cat returns the bytes put");
    let back = c.path().join("back.bin");
    c.fs_ok(&["get", "/d/sub/local.bin", back.to_str().unwrap()]);
    assert!(std::fs::read(&back).unwrap() == bytes, "get returns the bytes put");
    let both = c.fs_ok(&["ls", "-d", "/d/{a,b}.bin"]);
    assert_eq!(both.lines().count(), 2, "{both}");

    let du = c.fs_ok(&["du", "-s", "/d"]);
    assert_eq!(du.split_whitespace().collect::<Vec<_>>(), ["15728640", "41943040", "/d"], "{du}");

    c.fs_ok(&["mv", "/d/b.bin", "/d/sub"]);
    c.fs_ok(&["chmod", "go-r", "/d/sub/b.bin"]);
    let st = c.fs_ok(&["stat", "%A", "/d/sub/b.bin"]);
    assert_eq!(st, "rw-------\n");

    let fsck = c.fs_ok(&["fsck", "/"]);
    assert_eq!(fsck.lines().last(), Some("The filesystem under path '/' is HEALTHY"), "{fsck}");

    // Errors as Hadoop words them, exit 1.
    let out = c.fs(&["ls", "/nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end(), "ls: `/nope': No such file or directory");
    let out = c.fs(&["mkdir", "/d"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end(), "mkdir: `/d': File exists");
    let out = c.fs(&["rm", "/d"]);
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end(), "rm: `/d': Is a directory");
    let out = c.fs(&["put", local.to_str().unwrap(), "/d/a.bin"]);
    assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end(), "put: `/d/a.bin': File exists");

    let rm = c.fs_ok(&["rm", "-r", "/d"]);
    assert_eq!(rm, "Deleted /d\n");
    assert_eq!(c.fs(&["ls", "/d"]).status.code(), Some(1));

    // cluster.json names the NameNode's HTTP port, which answers GET /status with the
    // DataNodes it has and the health of its blocks.
    let json = c.cluster_json().expect("cluster.json");
    let nn =
        json["processes"].as_array().unwrap().iter().find(|p| p["role"] == "namenode").expect("a namenode").clone();
    let http = nn["addrs"]["http"].as_str().expect("an http address").to_string();
    let mut s = std::net::TcpStream::connect(&http).expect("connect to the http port");
    std::io::Write::write_all(&mut s, b"GET /status HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut resp = String::new();
    std::io::Read::read_to_string(&mut s, &mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200 OK\r\n"), "{resp}");
    let body: serde_json::Value = serde_json::from_str(resp.split("\r\n\r\n").nth(1).unwrap()).expect("JSON");
    assert_eq!(body["datanodes"].as_array().map(Vec::len), Some(3), "{body}");
    assert_eq!(body["blocks"]["missing"], 0, "{body}");
}
