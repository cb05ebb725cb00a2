#!/usr/bin/env python3
"""HdfsCLI (PyPI `hdfs`) and fsspec's WebHDFS filesystem, unmodified, against a running
`herd up` cluster (crates/herd/tests/webhdfs_clients.rs starts one and runs this).

    python tests/webhdfs/clients.py --cluster DIR [--only NAME]

Each check prints `ok NAME` or raises; the exit status is 0 only when all passed. The last
check kills one DataNode with SIGKILL (its pid from DIR/cluster.json, a process the calling
test started) and goes on through the survivors.
"""

import argparse
import json
import os
import random
import signal
import sys
import time

import fsspec
import requests
from fsspec.implementations.webhdfs import WebHDFS
from hdfs import InsecureClient
from hdfs.util import HdfsError

MiB = 1 << 20


def cluster(dir_):
    with open(os.path.join(dir_, "cluster.json")) as f:
        procs = json.load(f)["processes"]
    nn = next(p for p in procs if p["role"] == "namenode")
    dns = [p for p in procs if p["role"] == "datanode"]
    return nn["addrs"]["http"], dns


def expect_error(exception, fn, *args, **kwargs):
    """fn must fail with the HdfsError of this Hadoop exception."""
    try:
        fn(*args, **kwargs)
    except HdfsError as e:
        assert e.exception == exception, "wanted %s, got %s: %s" % (exception, e.exception, e)
        return e
    raise AssertionError("wanted %s, got success" % exception)


def retrying(what, fn, attempts=40):
    """What a client does against a cluster that just lost a DataNode: try again."""
    for i in range(attempts):
        try:
            return fn()
        except (requests.exceptions.ConnectionError, HdfsError) as e:
            last = e
            time.sleep(0.5)
    raise AssertionError("%s: still failing after %d attempts: %s" % (what, attempts, last))


class Checks:
    def __init__(self, dir_):
        self.dir = dir_
        self.http, self.dns = cluster(dir_)
        self.url = "http://" + self.http
        self.admin = InsecureClient(self.url, user="herd")
        self.alice = InsecureClient(self.url, user="alice")
        self.bob = InsecureClient(self.url, user="bob")
        host, port = self.http.rsplit(":", 1)
        self.host, self.port = host, int(port)
        self.fs = WebHDFS(host=host, port=self.port, user="alice", skip_instance_cache=True)
        self.rng = random.Random(7)
        self.data = self.rng.randbytes(3 * MiB + 12345)

    # -------------------------------------------------------------- HdfsCLI --

    def setup_home(self):
        self.admin.makedirs("/user/alice")
        self.admin.set_owner("/user/alice", owner="alice", group="users")
        self.admin.makedirs("/tmp", permission="1777")
        self.admin.set_permission("/tmp", "1777")
        assert self.alice.status("/user/alice")["owner"] == "alice"
        # Relative paths resolve against GETHOMEDIRECTORY.
        assert self.alice.resolve("x") == "/user/alice/x"

    def upload_and_read(self):
        self.alice.write("a.bin", self.data, blocksize=MiB, replication=3)
        st = self.alice.status("a.bin")
        assert st["length"] == len(self.data) and st["type"] == "FILE", st
        assert st["blockSize"] == MiB and st["replication"] == 3 and st["permission"] == "644", st
        with self.alice.read("a.bin") as r:
            assert r.read() == self.data
        # Ranged reads, across block boundaries and at the end.
        for off, n in [(0, 10), (MiB - 5, 10), (2 * MiB + 77, MiB), (len(self.data) - 3, 100)]:
            with self.alice.read("a.bin", offset=off, length=n) as r:
                assert r.read() == self.data[off : off + n], (off, n)
        with self.alice.read("a.bin", offset=len(self.data)) as r:
            assert r.read() == b""
        # Streaming writes from a generator (chunked transfer encoding).
        chunks = [self.rng.randbytes(100_000) for _ in range(7)]
        self.alice.write("gen.bin", data=iter(chunks))
        with self.alice.read("gen.bin", chunk_size=65536) as r:
            assert b"".join(r) == b"".join(chunks)

    def list_and_status(self):
        names = self.alice.list("/user/alice")
        assert names == ["a.bin", "gen.bin"], names
        entries = dict(self.alice.list("/user/alice", status=True))
        for field in ("accessTime", "blockSize", "childrenNum", "fileId", "group", "length",
                      "modificationTime", "owner", "pathSuffix", "permission", "replication", "type"):
            assert field in entries["a.bin"], field
        assert self.alice.status("/user")["type"] == "DIRECTORY"
        assert self.alice.status("/user")["childrenNum"] == 1
        assert self.alice.status("nothing", strict=False) is None
        walked = [d for d, _, _ in self.alice.walk("/user")]
        assert walked == ["/user", "/user/alice"], walked

    def append(self):
        more = b"appended bytes\n" * 1000
        self.alice.write("a.bin", more, append=True)
        with self.alice.read("a.bin") as r:
            assert r.read() == self.data + more
        self.data += more

    def rename(self):
        self.alice.rename("a.bin", "b.bin")
        assert self.alice.status("a.bin", strict=False) is None
        self.alice.makedirs("dir")
        # Old-style rename: into an existing directory.
        self.alice.rename("b.bin", "dir")
        with self.alice.read("dir/b.bin") as r:
            assert r.read() == self.data
        # Old-style rename answers {"boolean": false} for a missing source; HdfsCLI raises.
        try:
            self.alice.rename("no-such-file", "elsewhere")
        except HdfsError as e:
            assert "Unable to rename" in str(e), e
        else:
            raise AssertionError("renaming a missing file succeeded")

    def permissions(self):
        self.alice.set_permission("dir/b.bin", "600")
        assert self.alice.status("dir/b.bin")["permission"] == "600"
        e = expect_error("AccessControlException", lambda: self.bob.read("/user/alice/dir/b.bin").__enter__())
        assert "user=bob" in str(e), e
        expect_error("AccessControlException", self.bob.set_permission, "/user/alice/dir/b.bin", "777")
        expect_error("AccessControlException", self.bob.write, "/user/alice/bob.txt", b"x")
        # Only the superuser changes an owner.
        expect_error("AccessControlException", self.alice.set_owner, "dir/b.bin", owner="bob")
        self.admin.set_owner("/user/alice/dir/b.bin", group="staff")
        assert self.alice.status("dir/b.bin")["group"] == "staff"
        self.alice.set_replication("dir/b.bin", 2)
        assert self.alice.status("dir/b.bin")["replication"] == 2
        self.alice.set_times("dir/b.bin", access_time=1_000_000, modification_time=2_000_000)
        st = self.alice.status("dir/b.bin")
        assert (st["accessTime"], st["modificationTime"]) == (1_000_000, 2_000_000), st

    def checksum(self):
        # HDFS's MD5-of-MD5-of-CRC32C: 512 bytes per CRC, 2048 CRCs per 1 MiB block, 28 bytes
        # (tests/fs_checksum.rs checks the digest against an independent computation).
        c = self.alice.checksum("dir/b.bin")
        assert c["algorithm"] == "MD5-of-2048MD5-of-512CRC32C", c
        assert c["length"] == 28 and c["bytes"].startswith("00000200" "0000000000000800"), c
        assert len(c["bytes"]) == 56, c
        assert self.fs.ukey("/user/alice/dir/b.bin") == c
        expect_error("FileNotFoundException", self.alice.checksum, "nothing-here")

    def truncate_and_concat(self):
        # Neither client wraps these two: plain requests, as Hadoop's REST docs show them.
        base = self.url + "/webhdfs/v1/user/alice/"
        parts = [self.rng.randbytes(n) for n in (MiB + 100, 5000, 77)]
        for i, p in enumerate(parts):
            self.alice.write("part%d" % i, p, blocksize=MiB)
        r = requests.post(base + "part0", params={"op": "CONCAT", "sources": "/user/alice/part1,/user/alice/part2",
                                                   "user.name": "alice"})
        assert r.status_code == 200, r.text
        with self.alice.read("part0") as f:
            assert f.read() == b"".join(parts)
        assert self.alice.status("part1", strict=False) is None
        # On a block boundary: done at once. Inside a block: false, then a block recovery
        # closes the file at the new length.
        r = requests.post(base + "part0", params={"op": "TRUNCATE", "newlength": MiB, "user.name": "alice"})
        assert r.json() == {"boolean": True}, r.text
        r = requests.post(base + "part0", params={"op": "TRUNCATE", "newlength": 1000, "user.name": "alice"})
        assert r.json() == {"boolean": False}, r.text
        deadline = time.time() + 30
        while self.alice.status("part0")["length"] != 1000:
            assert time.time() < deadline, "the truncate's recovery did not close the file"
            time.sleep(0.2)
        with self.alice.read("part0") as f:
            assert f.read() == parts[0][:1000]
        r = requests.post(base + "part0", params={"op": "TRUNCATE", "newlength": 5000, "user.name": "alice"})
        assert r.status_code == 400 and "HadoopIllegalArgumentException" in r.text, r.text
        self.alice.delete("part0")

    def raw_ops(self):
        """The ops neither client wraps, as Hadoop's REST docs show them."""
        api = self.url + "/webhdfs/v1"
        as_alice = {"user.name": "alice"}
        assert requests.get(api + "/", params={"op": "GETTRASHROOT", **as_alice}).json() == {
            "Path": "/user/alice/.Trash"}
        # LISTSTATUS_BATCH pages by 1000 (dfs.ls.limit) and resumes after startAfter.
        self.alice.makedirs("many")
        for i in range(1003):
            r = requests.put(api + "/user/alice/many/d%04d" % i, params={"op": "MKDIRS", **as_alice})
            assert r.json() == {"boolean": True}, r.text
        page = requests.get(api + "/user/alice/many", params={"op": "LISTSTATUS_BATCH"}).json()["DirectoryListing"]
        names = [e["pathSuffix"] for e in page["partialListing"]["FileStatuses"]["FileStatus"]]
        assert len(names) == 1000 and page["remainingEntries"] == 3 and names[-1] == "d0999", page["remainingEntries"]
        page = requests.get(api + "/user/alice/many", params={"op": "LISTSTATUS_BATCH", "startAfter": names[-1]}).json()
        rest = [e["pathSuffix"] for e in page["DirectoryListing"]["partialListing"]["FileStatuses"]["FileStatus"]]
        assert rest == ["d1000", "d1001", "d1002"] and page["DirectoryListing"]["remainingEntries"] == 0, page
        assert self.alice.delete("many", recursive=True)
        # Block locations: one entry per block, Hadoop's fields.
        locs = requests.get(api + "/user/alice/dir/b.bin", params={"op": "GETFILEBLOCKLOCATIONS", **as_alice})
        blocks = locs.json()["BlockLocations"]["BlockLocation"]
        assert [b["offset"] for b in blocks] == [0, MiB, 2 * MiB, 3 * MiB], blocks
        assert all(len(b["names"]) == 2 and len(b["hosts"]) == 2 and not b["corrupt"] for b in blocks), blocks
        assert sum(b["length"] for b in blocks) == len(self.data)
        # rename2 with OVERWRITE replaces a file; booleans in any case.
        self.alice.write("old.txt", b"old")
        self.alice.write("new.txt", b"new")
        r = requests.put(api + "/user/alice/new.txt", params={
            "op": "RENAME", "destination": "/user/alice/old.txt", "renameoptions": "OVERWRITE", **as_alice})
        assert r.json() == {"boolean": True}, r.text
        with self.alice.read("old.txt") as f:
            assert f.read() == b"new"
        r = requests.put(api + "/user/alice/old.txt", params={
            "op": "RENAME", "destination": "/user/alice/dir/b.bin", "renameoptions": "NONE", **as_alice})
        assert r.status_code == 403 and "FileAlreadyExistsException" in r.text, r.text
        r = requests.get(api + "/user/alice/old.txt", params={"op": "OPEN", "noredirect": "True", **as_alice})
        assert r.status_code == 200 and "/webhdfs/v1/user/alice/old.txt?op=OPEN" in r.json()["Location"], r.text
        assert requests.delete(api + "/user/alice/old.txt", params={"op": "delete", "recursive": "FALSE",
                                                                     **as_alice}).json() == {"boolean": True}

    def content_summary(self):
        c = self.alice.content("/user/alice")
        assert c["length"] == len(self.data) + 700_000, c
        assert (c["fileCount"], c["directoryCount"]) == (2, 2), c
        assert c["spaceConsumed"] == 2 * len(self.data) + 3 * 700_000, c
        assert c["quota"] == -1 and c["spaceQuota"] == -1

    def errors(self):
        expect_error("FileNotFoundException", self.alice.status, "/no/such/path")
        expect_error("FileNotFoundException", self.alice.list, "/no/such/path")
        expect_error("FileAlreadyExistsException", self.alice.write, "gen.bin", b"again")
        expect_error("PathIsNotEmptyDirectoryException", self.alice.delete, "dir")
        expect_error("FileNotFoundException", lambda: self.alice.read("dir").__enter__())
        # Nothing of the refused writes is left behind.
        with self.alice.read("gen.bin") as r:
            assert len(r.read()) == 700_000

    def delete(self):
        assert self.alice.delete("gen.bin") is True
        assert self.alice.delete("gen.bin") is False
        assert self.alice.delete("dir", recursive=True) is True
        assert self.alice.list("/user/alice") == []

    # --------------------------------------------------------------- fsspec --

    def fsspec_roundtrip(self):
        fs = self.fs
        assert fs.home_directory() == "/user/alice"
        payload = self.rng.randbytes(2 * MiB + 999)
        # Written in 256 KiB pieces: CREATE, then an APPEND per piece.
        with fs.open("/user/alice/f/data.bin", "wb", block_size=256 * 1024) as f:
            for i in range(0, len(payload), 100_000):
                f.write(payload[i : i + 100_000])
        assert fs.info("/user/alice/f/data.bin")["size"] == len(payload)
        assert fs.cat_file("/user/alice/f/data.bin") == payload
        assert fs.cat_file("/user/alice/f/data.bin", start=1000, end=300_000) == payload[1000:300_000]
        with fs.open("/user/alice/f/data.bin", "rb", block_size=64 * 1024) as f:
            f.seek(MiB + 3)
            assert f.read(5000) == payload[MiB + 3 : MiB + 5003]
        fs.pipe_file("/user/alice/f/small.txt", b"hello webhdfs\n")
        assert sorted(fs.ls("/user/alice/f")) == ["/user/alice/f/data.bin", "/user/alice/f/small.txt"]
        fs.mv("/user/alice/f/small.txt", "/user/alice/f/moved.txt")
        assert fs.cat_file("/user/alice/f/moved.txt") == b"hello webhdfs\n"
        fs.chmod("/user/alice/f/moved.txt", "640")  # an int would go out in decimal
        assert fs.info("/user/alice/f/moved.txt")["permission"] == "640"
        s = fs.content_summary("/user/alice/f")
        assert s["length"] == len(payload) + 14 and s["fileCount"] == 2, s
        try:
            fs.info("/user/alice/f/missing")
        except FileNotFoundError:
            pass
        else:
            raise AssertionError("info of a missing file succeeded")
        other = WebHDFS(host=self.host, port=self.port, user="bob", skip_instance_cache=True)
        fs.chmod("/user/alice/f/data.bin", "600")
        try:
            other.cat_file("/user/alice/f/data.bin")
        except PermissionError:
            pass
        else:
            raise AssertionError("bob read a 600 file of alice's")
        fs.rm("/user/alice/f", recursive=True)
        assert not fs.exists("/user/alice/f")
        # Through fsspec's URL interface too.
        with fsspec.open("webhdfs://%s/tmp/url.txt" % self.http, "wb", user="alice") as f:
            f.write(b"via url\n")
        with fsspec.open("webhdfs://%s/tmp/url.txt" % self.http, "rb", user="alice") as f:
            assert f.read() == b"via url\n"

    # ------------------------------------------------------ DataNode kill -9 --

    def datanode_killed(self):
        self.alice.write("survivor.bin", self.data, blocksize=MiB, overwrite=True)
        victim = self.dns[0]
        dead_http = victim["addrs"]["http"]
        os.kill(victim["pid"], signal.SIGKILL)
        # A request straight to the dead DataNode fails plainly.
        try:
            requests.get("http://%s/webhdfs/v1/user/alice/survivor.bin?op=OPEN" % dead_http, timeout=5)
        except requests.exceptions.ConnectionError:
            pass
        else:
            raise AssertionError("the killed DataNode still answered")

        def read_all():
            with self.alice.read("survivor.bin") as r:
                return r.read()

        assert retrying("read after the kill", read_all) == self.data
        fresh = self.rng.randbytes(MiB + 5)
        retrying("write after the kill", lambda: self.alice.write("after.bin", fresh, overwrite=True))
        with self.alice.read("after.bin") as r:
            assert r.read() == fresh

        # Once the view has dropped it, the NameNode never sends anyone there.
        def steered_away():
            for _ in range(12):
                loc = requests.put(
                    self.url + "/webhdfs/v1/user/alice/x?op=CREATE&noredirect=true&user.name=alice"
                ).json()["Location"]
                if dead_http in loc:
                    return False
            return True

        deadline = time.time() + 30
        while not steered_away():
            assert time.time() < deadline, "CREATE still redirected to the killed DataNode after 30 s"
            time.sleep(0.5)
        # excludedatanodes: a client that saw a DataNode fail names it, and is sent elsewhere.
        live = [d for d in self.dns if d is not victim]
        for d in live:
            loc = requests.put(
                self.url + "/webhdfs/v1/user/alice/x",
                params={"op": "CREATE", "noredirect": "true", "user.name": "alice",
                        "excludedatanodes": d["addrs"]["data"]},
            ).json()["Location"]
            assert d["addrs"]["http"] not in loc and dead_http not in loc, loc
        with self.alice.read("survivor.bin", offset=MiB - 1, length=MiB + 2) as r:
            assert r.read() == self.data[MiB - 1 : 2 * MiB + 1]
        self.fs.rm("/user/alice/survivor.bin")
        assert self.fs.cat_file("/user/alice/after.bin") == fresh


ORDER = [
    "setup_home", "upload_and_read", "list_and_status", "append", "rename", "permissions",
    "checksum", "truncate_and_concat", "raw_ops", "content_summary", "errors", "delete", "fsspec_roundtrip", "datanode_killed",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cluster", required=True)
    ap.add_argument("--only", help="run the checks up to and including this one")
    args = ap.parse_args()
    c = Checks(args.cluster)
    for name in ORDER:
        t0 = time.time()
        getattr(c, name)()
        print("ok %s (%.1fs)" % (name, time.time() - t0), flush=True)
        if name == args.only:
            break
    print("all WebHDFS client checks passed")


if __name__ == "__main__":
    sys.exit(main())
