//! Guarantee: a malformed WebHDFS request — an unknown op, an op under the wrong HTTP method, a
//! negative offset, a missing parameter, a path with `..`, a number too big for a long, a bad
//! boolean, a head larger than 64 KiB — gets Hadoop's status and `RemoteException` (400
//! IllegalArgumentException / InvalidPathException / UnsupportedOperationException, 403
//! AccessControlException and FileAlreadyExistsException, 404 FileNotFoundException), at the
//! NameNode and at a DataNode, and the namespace and every file's bytes are as before.
//! Requests go over raw sockets, so that nothing (no client library, no URL normalization)
//! stands between the test and the server.

mod common;

use common::fs::FsCluster;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One HTTP/1.1 request; the status and the body.
fn request(addr: &str, method: &str, target: &str, extra_head: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n{extra_head}\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// The request must be refused with `status` and a RemoteException of `exception`.
fn refused(addr: &str, method: &str, target: &str, status: u16, exception: &str) -> String {
    let (got, body) = request(addr, method, target, "", b"");
    assert_eq!(got, status, "{method} {target}: {body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{target}: {e}: {body}"));
    assert_eq!(v["RemoteException"]["exception"], exception, "{method} {target}: {body}");
    assert!(v["RemoteException"]["javaClassName"].as_str().unwrap().ends_with(exception), "{body}");
    v["RemoteException"]["message"].as_str().unwrap().to_string()
}

/// Everything a client can see: every path with its type, length, owner and permission, and
/// every file's bytes.
fn snapshot(c: &FsCluster) -> String {
    let listing = c.fs_ok(&["ls", "-R", "/"]);
    let mut all = String::new();
    for line in listing.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let Some(path) = f.last() else { continue };
        // mode, owner, group, size, path (times change with reads: left out).
        all.push_str(&format!("{} {} {} {} {path}\n", f[0], f[2], f[3], f[4]));
        if f[0].starts_with('-') {
            let bytes = c.fs(&["cat", path]).stdout;
            all.push_str(&format!("  {} bytes, sum {}\n", bytes.len(), bytes.iter().map(|b| *b as u64).sum::<u64>()));
        }
    }
    all
}

#[test]
fn malformed_requests_get_hadoops_errors_and_change_nothing() {
    let c = FsCluster::start(3);
    let nn = c.http_addr("namenode", "1");
    let dn = c.http_addr("datanode", "2");
    let local = c.path().join("f.bin");
    std::fs::write(&local, common::dfs::bytes(300_000, 3)).unwrap();
    c.fs_ok(&["mkdir", "-p", "/d/sub"]);
    c.fs_ok(&["put", local.to_str().unwrap(), "/d/f.bin"]);
    c.fs_ok(&["chmod", "700", "/d/sub"]);
    let before = snapshot(&c);

    let v1 = "/webhdfs/v1";
    // Unknown op, known op under the wrong method, no op, an op herd does not serve.
    let m = refused(&nn, "GET", &format!("{v1}/d?op=FROBNICATE"), 400, "IllegalArgumentException");
    assert!(m.contains("GetOpParam.Op.FROBNICATE"), "{m}");
    refused(&nn, "GET", &format!("{v1}/d?op=MKDIRS"), 400, "IllegalArgumentException");
    refused(&nn, "DELETE", &format!("{v1}/d?op=MKDIRS&recursive=true"), 400, "IllegalArgumentException");
    refused(&nn, "GET", &format!("{v1}/d"), 400, "UnsupportedOperationException");
    refused(&nn, "PUT", &format!("{v1}/d?op=SETACL"), 400, "UnsupportedOperationException");
    // Bad numbers and booleans, for any op (Hadoop parses every parameter it declares).
    let m = refused(&nn, "GET", &format!("{v1}/d/f.bin?op=OPEN&offset=-1"), 400, "IllegalArgumentException");
    assert!(m.contains("\"offset\""), "{m}");
    refused(
        &nn,
        "GET",
        &format!("{v1}/d/f.bin?op=OPEN&length=99999999999999999999999"),
        400,
        "IllegalArgumentException",
    );
    refused(&nn, "GET", &format!("{v1}/d?op=GETFILESTATUS&length=-5"), 400, "IllegalArgumentException");
    refused(&nn, "DELETE", &format!("{v1}/d?op=DELETE&recursive=yes"), 400, "IllegalArgumentException");
    refused(&nn, "PUT", &format!("{v1}/d?op=SETREPLICATION&replication=0"), 400, "IllegalArgumentException");
    refused(&nn, "PUT", &format!("{v1}/d?op=SETPERMISSION&permission=999"), 400, "IllegalArgumentException");
    refused(&nn, "PUT", &format!("{v1}/d?op=MKDIRS&user.name=bad%20user"), 400, "IllegalArgumentException");
    // Missing parameters.
    let m = refused(&nn, "PUT", &format!("{v1}/d/f.bin?op=RENAME"), 400, "IllegalArgumentException");
    assert!(m.contains("destination"), "{m}");
    refused(&nn, "PUT", &format!("{v1}/d/f.bin?op=RENAME&destination=relative"), 400, "IllegalArgumentException");
    refused(&nn, "PUT", &format!("{v1}/d/f.bin?op=SETOWNER"), 400, "IllegalArgumentException");
    refused(&nn, "POST", &format!("{v1}/d/f.bin?op=TRUNCATE&user.name=herd"), 400, "IllegalArgumentException");
    refused(
        &nn,
        "POST",
        &format!("{v1}/d/f.bin?op=TRUNCATE&newlength=-1&user.name=herd"),
        400,
        "IllegalArgumentException",
    );
    refused(
        &nn,
        "POST",
        &format!("{v1}/d/f.bin?op=TRUNCATE&newlength=300001&user.name=herd"),
        400,
        "HadoopIllegalArgumentException",
    );
    refused(&nn, "POST", &format!("{v1}/d/f.bin?op=CONCAT&user.name=herd"), 400, "IllegalArgumentException");
    refused(
        &nn,
        "POST",
        &format!("{v1}/d/f.bin?op=CONCAT&sources=/d/sub&user.name=herd"),
        404,
        "FileNotFoundException",
    );
    refused(
        &nn,
        "POST",
        &format!("{v1}/d/f.bin?op=CONCAT&sources=/d/../d/f.bin&user.name=herd"),
        400,
        "InvalidPathException",
    );
    // Paths with `..` or `.` are refused, never resolved (even when they would stay inside).
    for p in ["/d/../d/f.bin", "/d/sub/..", "/d/./f.bin", "/d/%2E%2E/x", "/d/f.bin%2F..%2F..%2Fetc"] {
        refused(&nn, "GET", &format!("{v1}{p}?op=GETFILESTATUS"), 400, "InvalidPathException");
        refused(
            &nn,
            "DELETE",
            &format!("{v1}{p}?op=DELETE&recursive=true&user.name=herd"),
            400,
            "InvalidPathException",
        );
    }
    // What the namespace refuses: missing, not allowed, already there, not empty.
    refused(&nn, "GET", &format!("{v1}/nope?op=GETFILESTATUS"), 404, "FileNotFoundException");
    refused(&nn, "GET", &format!("{v1}/nope?op=OPEN"), 404, "FileNotFoundException");
    refused(&nn, "GET", &format!("{v1}/d?op=OPEN"), 404, "FileNotFoundException");
    refused(&nn, "GET", &format!("{v1}/d/sub?op=LISTSTATUS&user.name=alice"), 403, "AccessControlException");
    refused(&nn, "DELETE", &format!("{v1}/d?op=DELETE&recursive=true&user.name=alice"), 403, "AccessControlException");
    refused(&nn, "PUT", &format!("{v1}/d/x?op=MKDIRS&user.name=herd&doas=alice"), 403, "AccessControlException");
    refused(&nn, "DELETE", &format!("{v1}/d?op=DELETE&user.name=herd"), 403, "PathIsNotEmptyDirectoryException");
    // At a DataNode: creating over an existing file, opening past the end or a missing file.
    let (st, body) = request(&dn, "PUT", &format!("{v1}/d/f.bin?op=CREATE&user.name=herd"), "", b"new bytes");
    assert_eq!(st, 403, "{body}");
    assert!(body.contains("FileAlreadyExistsException"), "{body}");
    refused(&dn, "PUT", &format!("{v1}/d/new.bin?op=CREATE&user.name=alice"), 403, "AccessControlException");
    refused(&dn, "GET", &format!("{v1}/d/f.bin?op=OPEN&offset=300001"), 403, "IOException");
    refused(&dn, "GET", &format!("{v1}/d/gone?op=OPEN"), 404, "FileNotFoundException");
    refused(&dn, "GET", &format!("{v1}/d/f.bin?op=LISTSTATUS"), 400, "UnsupportedOperationException");
    refused(&dn, "GET", &format!("{v1}/d/../d/f.bin?op=OPEN"), 400, "InvalidPathException");
    // Other HTTP methods, unknown pages, an oversize head.
    let (st, _) = request(&nn, "PATCH", &format!("{v1}/d?op=MKDIRS"), "", b"");
    assert_eq!(st, 405);
    let (st, _) = request(&nn, "GET", "/nothing/here", "", b"");
    assert_eq!(st, 404);
    let huge = format!("X-Filler: {}\r\n", "a".repeat(1 << 20));
    let (st, _) = request(&nn, "GET", &format!("{v1}/d?op=LISTSTATUS"), &huge, b"");
    assert!(st == 431 || st == 400, "an oversize head got {st}");
    let (st, body) = request(&nn, "GET", &format!("{v1}/d?op=LISTSTATUS"), "", b"");
    assert_eq!(st, 200, "the server still answers: {body}");

    assert_eq!(snapshot(&c), before, "a refused request changed the file system");
}
