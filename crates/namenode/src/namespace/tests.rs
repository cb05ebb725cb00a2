use super::*;

const MB: u64 = 1 << 20;

/// A namespace with a log: each op gets the next index, and time advances 1 ms per entry
/// unless a test moves it.
struct Log {
    ns: Namespace,
    index: u64,
    time: u64,
}

fn groups_of(user: &str) -> Vec<String> {
    match user {
        SUPERUSER => vec![],
        "admin" => vec![SUPERGROUP.into()],
        "alice" => vec!["users".into(), "research".into()],
        _ => vec!["users".into()],
    }
}

impl Log {
    fn new() -> Self {
        Log { ns: Namespace::default(), index: 0, time: 1_000 }
    }

    fn call(&mut self, user: &str, client_id: [u8; 16], call_id: u64, op: Op) -> Outcome {
        self.index += 1;
        self.time += 1;
        let e = Entry { time_ms: self.time, user: user.into(), groups: groups_of(user), client_id, call_id, op };
        let out = self.ns.apply(self.index, &e);
        self.ns.check_invariants().unwrap();
        out
    }

    fn run(&mut self, user: &str, op: Op) -> Result<Reply, Error> {
        self.call(user, NO_CLIENT, 0, op).result
    }

    fn su(&mut self, op: Op) -> Reply {
        let r = self.run(SUPERUSER, op.clone());
        r.unwrap_or_else(|e| panic!("{op:?}: {e}"))
    }

    fn info(&self, p: &str) -> Option<FileStatus> {
        let g = vec![];
        self.ns.get_file_info(p, &Caller::new(SUPERUSER, &g)).unwrap()
    }

    /// Creates a file as `user` and writes `lens` blocks to it, then closes it.
    fn write(&mut self, user: &str, p: &str, lens: &[u64]) {
        self.run(user, create(p, "w")).unwrap();
        let mut prev = None;
        for len in lens {
            let Ok(Reply::Block(b)) = self.run(user, add_block(p, "w", prev)) else { panic!("addBlock {p}") };
            prev = Some(Block { len: *len, ..b });
        }
        assert_eq!(self.run(user, complete(p, "w", prev)), Ok(Reply::Bool(true)));
    }
}

fn mkdirs(p: &str, perm: u16) -> Op {
    Op::Mkdirs { path: p.into(), perm, create_parent: true }
}

fn create(p: &str, client: &str) -> Op {
    Op::Create {
        path: p.into(),
        perm: 0o644,
        overwrite: false,
        create_parent: true,
        replication: 3,
        block_size: 128 * MB,
        client_name: client.into(),
        client_machine: format!("{client}-host"),
    }
}

fn create_over(p: &str, client: &str) -> Op {
    match create(p, client) {
        Op::Create { path, perm, create_parent, replication, block_size, client_name, client_machine, .. } => {
            Op::Create {
                path,
                perm,
                overwrite: true,
                create_parent,
                replication,
                block_size,
                client_name,
                client_machine,
            }
        }
        _ => unreachable!(),
    }
}

fn add_block(p: &str, client: &str, previous: Option<Block>) -> Op {
    Op::AddBlock { path: p.into(), client_name: client.into(), previous }
}

fn complete(p: &str, client: &str, last: Option<Block>) -> Op {
    Op::Complete { path: p.into(), client_name: client.into(), last }
}

fn append(p: &str, client: &str) -> Op {
    Op::Append { path: p.into(), client_name: client.into(), client_machine: "m".into(), new_block: false }
}

fn rename(src: &str, dst: &str, overwrite: bool) -> Op {
    Op::Rename { src: src.into(), dst: dst.into(), overwrite }
}

fn delete(p: &str, recursive: bool) -> Op {
    Op::Delete { path: p.into(), recursive }
}

fn chmod(p: &str, perm: u16) -> Op {
    Op::SetPermission { path: p.into(), perm }
}

fn chown(p: &str, owner: Option<&str>, group: Option<&str>) -> Op {
    Op::SetOwner { path: p.into(), owner: owner.map(Into::into), group: group.map(Into::into) }
}

fn kind(r: Result<Reply, Error>) -> &'static str {
    match r {
        Ok(_) => "ok",
        Err(e) => e.exception_name(),
    }
}

/// /tmp (1777), /user/alice (alice, 755), /user/bob (bob, 755).
fn homes() -> Log {
    let mut l = Log::new();
    l.su(mkdirs("/tmp", 0o1777));
    l.su(chmod("/tmp", 0o1777));
    for u in ["alice", "bob"] {
        let home = format!("/user/{u}");
        l.su(mkdirs(&home, 0o755));
        l.su(chown(&home, Some(u), Some("users")));
    }
    l
}

#[test]
fn root_belongs_to_the_superuser() {
    let l = Log::new();
    let root = l.info("/").unwrap();
    assert!(root.is_dir);
    assert_eq!((root.owner.as_str(), root.group.as_str(), root.perm, root.id), (SUPERUSER, SUPERGROUP, 0o755, ROOT_ID));
}

#[test]
fn mkdirs_creates_parents_with_ids_from_the_index() {
    let mut l = Log::new();
    assert_eq!(l.su(mkdirs("/a/b/c", 0o750)), Reply::Bool(true));
    let (a, b, c) = (l.info("/a").unwrap(), l.info("/a/b").unwrap(), l.info("/a/b/c").unwrap());
    assert_eq!((a.id, b.id, c.id), (1 << 10, 1 << 10 | 1, 1 << 10 | 2));
    assert_eq!(c.perm, 0o750);
    // Implicit parents get the new directory's permission plus u+wx.
    assert_eq!(l.su(mkdirs("/x/y", 0o500)), Reply::Bool(true));
    assert_eq!(l.info("/x").unwrap().perm, 0o700);
    assert_eq!(l.info("/x/y").unwrap().perm, 0o500);
    assert_eq!(l.info("/a").unwrap().group, SUPERGROUP);
    assert_eq!(l.info("/a").unwrap().mtime_ms, 1_001);
    // An existing directory is fine and changes nothing.
    let before = l.ns.clone();
    assert_eq!(l.su(mkdirs("/a/b", 0o700)), Reply::Bool(true));
    assert_eq!(l.info("/a/b"), before.lookup("/a/b").map(Inode::status));
}

#[test]
fn mkdirs_errors_in_hdfs_order() {
    let mut l = homes();
    l.write("alice", "/user/alice/f", &[]);
    let no_parent = Op::Mkdirs { path: "/user/alice/p/q".into(), perm: 0o755, create_parent: false };
    assert_eq!(kind(l.run("alice", no_parent)), "FileNotFoundException");
    assert_eq!(kind(l.run("alice", mkdirs("/user/alice/f", 0o755))), "FileAlreadyExistsException");
    assert_eq!(kind(l.run("alice", mkdirs("/user/alice/f/g", 0o755))), "ParentNotDirectoryException");
    assert_eq!(kind(l.run("alice", mkdirs("/user/alice/../bob", 0o755))), "InvalidPathException");
    assert_eq!(kind(l.run("alice", mkdirs("/user/alice/a:b", 0o755))), "InvalidPathException");
    assert_eq!(kind(l.run("alice", mkdirs("relative", 0o755))), "InvalidPathException");
    // No WRITE on the deepest existing ancestor.
    assert_eq!(kind(l.run("alice", mkdirs("/user/bob/x/y", 0o755))), "AccessControlException");
    assert_eq!(kind(l.run("alice", mkdirs("/top", 0o755))), "AccessControlException");
    assert_eq!(kind(l.run("alice", mkdirs("/user/alice/x/y", 0o755))), "ok");
    // Members of supergroup are superusers.
    assert_eq!(kind(l.run("admin", mkdirs("/top", 0o755))), "ok");
}

#[test]
fn traverse_needs_execute_on_every_ancestor() {
    let mut l = homes();
    l.run("alice", mkdirs("/user/alice/private/sub", 0o755)).unwrap();
    l.run("alice", chmod("/user/alice/private", 0o700)).unwrap();
    let bob = groups_of("bob");
    let bob = Caller::new("bob", &bob);
    assert!(matches!(l.ns.get_file_info("/user/alice/private/sub", &bob), Err(Error::AccessControl(_))));
    assert!(matches!(l.ns.get_file_info("/user/alice/private/nothing/x", &bob), Err(Error::AccessControl(_))));
    // The directory itself needs no EXECUTE to be stat'ed.
    assert!(l.ns.get_file_info("/user/alice/private", &bob).unwrap().is_some());
    assert_eq!(kind(l.run("bob", mkdirs("/user/alice/private/sub/x", 0o755))), "AccessControlException");
    // A file in the middle of a path is ParentNotDirectory, even for the superuser.
    l.write("alice", "/user/alice/f", &[]);
    let su = Caller::new(SUPERUSER, &[]);
    assert!(matches!(l.ns.get_file_info("/user/alice/f/x", &su), Err(Error::ParentNotDirectory(_))));
    assert_eq!(l.ns.get_file_info("/user/alice/none/x", &su), Ok(None));
}

#[test]
fn create_checks_and_errors() {
    let mut l = homes();
    let out = l.run("alice", create("/user/alice/d/f", "c1")).unwrap();
    let Reply::Status(st) = out else { panic!("{out:?}") };
    assert!(st.under_construction && !st.is_dir && st.owner == "alice" && st.group == "users");
    assert_eq!((st.replication, st.block_size, st.perm), (3, 128 * MB, 0o644));
    assert_eq!(l.info("/user/alice/d").unwrap().perm, 0o744);
    assert_eq!(l.ns.leases()["c1"].files.len(), 1);

    let mut bad = create("/user/alice/g", "c1");
    if let Op::Create { replication, .. } = &mut bad {
        *replication = 0;
    }
    assert_eq!(kind(l.run("alice", bad)), "IOException");
    let mut bad = create("/user/alice/g", "c1");
    if let Op::Create { block_size, .. } = &mut bad {
        *block_size = 4096;
    }
    assert_eq!(kind(l.run("alice", bad)), "IOException");
    let mut no_parent = create("/user/alice/none/g", "c1");
    if let Op::Create { create_parent, .. } = &mut no_parent {
        *create_parent = false;
    }
    assert_eq!(kind(l.run("alice", no_parent)), "FileNotFoundException");
    assert_eq!(kind(l.run("alice", create("/user/alice/d", "c1"))), "FileAlreadyExistsException");
    assert_eq!(kind(l.run("alice", create("/", "c1"))), "FileAlreadyExistsException");
    assert_eq!(kind(l.run("bob", create("/user/alice/h", "c2"))), "AccessControlException");
    // bob may not even traverse d (0o744); alice hits the file in the middle of the path.
    assert_eq!(kind(l.run("bob", create("/user/alice/d/f/x", "c2"))), "AccessControlException");
    assert_eq!(kind(l.run("alice", create("/user/alice/d/f/x", "c2"))), "ParentNotDirectoryException");
    // Open by the same client: AlreadyBeingCreated; by another within the soft limit: too.
    assert_eq!(kind(l.run("alice", create("/user/alice/d/f", "c1"))), "AlreadyBeingCreatedException");
    assert_eq!(kind(l.run("alice", create("/user/alice/d/f", "c9"))), "AlreadyBeingCreatedException");
    // A closed file without overwrite.
    l.write("alice", "/user/alice/done", &[5]);
    assert_eq!(kind(l.run("alice", create("/user/alice/done", "c1"))), "FileAlreadyExistsException");
    // Overwrite needs WRITE on the file itself.
    l.run("alice", chmod("/user/alice/done", 0o444)).unwrap();
    l.run("alice", chmod("/user/alice", 0o777)).unwrap();
    assert_eq!(kind(l.run("bob", create_over("/user/alice/done", "c2"))), "AccessControlException");
}

#[test]
fn overwrite_replaces_the_file_and_frees_its_blocks() {
    let mut l = homes();
    l.write("alice", "/user/alice/f", &[10, 20]);
    let old = l.ns.lookup("/user/alice/f").unwrap().clone();
    let out = l.call("alice", NO_CLIENT, 0, create_over("/user/alice/f", "c2"));
    assert!(matches!(out.result, Ok(Reply::Status(_))));
    assert_eq!(out.removed_blocks, old.file().unwrap().blocks);
    let new = l.ns.lookup("/user/alice/f").unwrap();
    assert_ne!(new.id, old.id);
    assert_eq!(new.file().unwrap().len(), 0);
    assert!(l.ns.file_of_block(old.file().unwrap().blocks[0].id).is_none());
    // Overwriting a file another client has open takes it (HDFS does not recover first).
    l.run("alice", create("/user/alice/g", "c3")).unwrap();
    assert_eq!(kind(l.run("alice", create_over("/user/alice/g", "c4"))), "ok");
    assert!(!l.ns.leases().contains_key("c3"));
}

#[test]
fn write_path_add_block_complete_abandon() {
    let mut l = homes();
    let f = "/user/alice/f";
    l.run("alice", create(f, "c1")).unwrap();
    assert_eq!(kind(l.run("alice", add_block("/user/alice/none", "c1", None))), "FileNotFoundException");
    assert_eq!(kind(l.run("alice", add_block(f, "c2", None))), "LeaseExpiredException");
    let idx = l.index + 1;
    let Ok(Reply::Block(b1)) = l.run("alice", add_block(f, "c1", None)) else { panic!() };
    assert_eq!(b1, Block { id: idx, gs: idx, len: 0 });
    assert_eq!(l.ns.file_of_block(b1.id).unwrap().1, b1);
    // previous must be the file's last block.
    assert_eq!(kind(l.run("alice", add_block(f, "c1", None))), "IOException");
    let stale = Block { gs: b1.gs + 1, ..b1 };
    assert_eq!(kind(l.run("alice", add_block(f, "c1", Some(stale)))), "IOException");
    let Ok(Reply::Block(b2)) = l.run("alice", add_block(f, "c1", Some(Block { len: 100, ..b1 }))) else { panic!() };
    // Abandon the block being written: it goes away, the previous one stays.
    let out =
        l.call("alice", NO_CLIENT, 0, Op::AbandonBlock { path: f.into(), client_name: "c1".into(), block_id: b2.id });
    assert_eq!((out.result, out.removed_blocks), (Ok(Reply::Done), vec![b2]));
    let Ok(Reply::Block(b3)) = l.run("alice", add_block(f, "c1", Some(Block { len: 100, ..b1 }))) else { panic!() };
    assert_eq!(kind(l.run("alice", complete(f, "c1", Some(b1)))), "IOException");
    assert_eq!(kind(l.run("alice", complete(f, "c2", Some(b3)))), "LeaseExpiredException");
    let last = Block { len: 7, ..b3 };
    assert_eq!(l.run("alice", complete(f, "c1", Some(last))), Ok(Reply::Bool(true)));
    let st = l.info(f).unwrap();
    assert!(!st.under_construction);
    assert_eq!(st.length, 107);
    assert!(l.ns.leases().is_empty());
    // A retried complete of the closed file succeeds; a wrong last block does not.
    assert_eq!(l.run("alice", complete(f, "c1", Some(last))), Ok(Reply::Bool(true)));
    assert_eq!(kind(l.run("alice", complete(f, "c1", Some(b1)))), "LeaseExpiredException");
    assert_eq!(kind(l.run("alice", add_block(f, "c1", Some(last)))), "LeaseExpiredException");
    assert_eq!(kind(l.run("alice", add_block("/user/alice", "c1", None))), "LeaseExpiredException");
}

#[test]
fn update_block_for_pipeline_recovery() {
    let mut l = homes();
    let f = "/user/alice/f";
    l.run("alice", create(f, "c1")).unwrap();
    let Ok(Reply::Block(b)) = l.run("alice", add_block(f, "c1", None)) else { panic!() };
    let upd = |gs, len, client: &str| Op::UpdateBlock {
        block_id: b.id,
        client_name: client.into(),
        new_gs: gs,
        new_len: len,
    };
    assert_eq!(kind(l.run("alice", upd(b.gs, 10, "c1"))), "IOException");
    assert_eq!(kind(l.run("alice", upd(u64::MAX, 10, "c1"))), "IOException");
    assert_eq!(kind(l.run("alice", upd(b.gs + 1, 10, "c2"))), "LeaseExpiredException");
    assert_eq!(
        kind(l.run("alice", Op::UpdateBlock { block_id: 999_999, client_name: "c1".into(), new_gs: 5, new_len: 0 })),
        "IOException"
    );
    let gs = l.index + 1;
    assert_eq!(l.run("alice", upd(gs, 10, "c1")), Ok(Reply::Done));
    assert_eq!(l.ns.file_of_block(b.id).unwrap().1, Block { id: b.id, gs, len: 10 });
    assert_eq!(kind(l.run("alice", upd(gs + 5, 5, "c1"))), "IOException"); // shrinks
                                                                           // The client then completes with the new stamp; the old one no longer matches.
    assert_eq!(kind(l.run("alice", complete(f, "c1", Some(b)))), "IOException");
    assert_eq!(l.run("alice", complete(f, "c1", Some(Block { id: b.id, gs, len: 12 }))), Ok(Reply::Bool(true)));
}

#[test]
fn append_reopens_a_partial_last_block() {
    let mut l = homes();
    let f = "/user/alice/f";
    l.write("alice", f, &[128 * MB, 5]);
    let last = l.ns.lookup(f).unwrap().file().unwrap().blocks[1];
    let Ok(Reply::Appended { status, last: reopened }) = l.run("alice", append(f, "c2")) else { panic!() };
    assert!(status.under_construction);
    assert_eq!(reopened, Some(last));
    assert_eq!(kind(l.run("alice", append(f, "c3"))), "AlreadyBeingCreatedException");
    assert_eq!(kind(l.run("alice", append(f, "c2"))), "AlreadyBeingCreatedException");
    assert_eq!(l.run("alice", complete(f, "c2", Some(Block { len: 9, ..last }))), Ok(Reply::Bool(true)));
    assert_eq!(l.info(f).unwrap().length, 128 * MB + 9);

    // A full last block is not reopened: the next addBlock starts a new one.
    let g = "/user/alice/g";
    l.write("alice", g, &[128 * MB]);
    let full = l.ns.lookup(g).unwrap().file().unwrap().blocks[0];
    let Ok(Reply::Appended { last: None, .. }) = l.run("alice", append(g, "c2")) else { panic!() };
    let Ok(Reply::Block(nb)) = l.run("alice", add_block(g, "c2", Some(full))) else { panic!() };
    assert_eq!(l.run("alice", complete(g, "c2", Some(Block { len: 1, ..nb }))), Ok(Reply::Bool(true)));
    assert_eq!(l.info(g).unwrap().length, 128 * MB + 1);
    // NEW_BLOCK leaves a partial last block as it is.
    let h = "/user/alice/h";
    l.write("alice", h, &[3]);
    let op = Op::Append { path: h.into(), client_name: "c2".into(), client_machine: "m".into(), new_block: true };
    let Ok(Reply::Appended { last: None, .. }) = l.run("alice", op) else { panic!() };

    assert_eq!(kind(l.run("alice", append("/user/alice", "c2"))), "FileAlreadyExistsException");
    assert_eq!(kind(l.run("alice", append("/user/alice/none", "c2"))), "FileNotFoundException");
    l.write("alice", "/user/alice/ro", &[1]);
    l.run("alice", chmod("/user/alice/ro", 0o644)).unwrap();
    assert_eq!(kind(l.run("bob", append("/user/alice/ro", "c5"))), "AccessControlException");
}

#[test]
fn rename_moves_subtrees_and_open_files() {
    let mut l = homes();
    l.run("alice", mkdirs("/user/alice/a/b", 0o755)).unwrap();
    l.run("alice", create("/user/alice/a/b/open", "c1")).unwrap();
    let id = l.ns.lookup("/user/alice/a").unwrap().id;
    assert_eq!(l.run("alice", rename("/user/alice/a", "/user/alice/z", false)), Ok(Reply::Done));
    assert!(l.info("/user/alice/a").is_none());
    assert_eq!(l.info("/user/alice/z").unwrap().id, id);
    assert!(l.info("/user/alice/z/b/open").unwrap().under_construction);
    let open_id = l.ns.lookup("/user/alice/z/b/open").unwrap().id;
    assert_eq!(l.ns.path_of(open_id).unwrap(), "/user/alice/z/b/open");
    assert_eq!(l.info("/user/alice").unwrap().mtime_ms, l.time);
    // The writer goes on under the new name.
    assert_eq!(kind(l.run("alice", add_block("/user/alice/z/b/open", "c1", None))), "ok");
    assert_eq!(l.run("alice", rename("/user/alice/z/b/open", "/user/alice/f", false)), Ok(Reply::Done));
}

#[test]
fn rename_errors_in_hdfs_order() {
    let mut l = homes();
    let h = "/user/alice";
    l.run("alice", mkdirs(&format!("{h}/d/sub"), 0o755)).unwrap();
    l.run("alice", mkdirs(&format!("{h}/empty"), 0o755)).unwrap();
    l.run("alice", mkdirs(&format!("{h}/full/x"), 0o755)).unwrap();
    l.write("alice", &format!("{h}/f"), &[1]);
    l.write("alice", &format!("{h}/g"), &[2]);
    let r =
        |l: &mut Log, s: &str, d: &str, o| kind(l.run("alice", rename(&format!("{h}/{s}"), &format!("{h}/{d}"), o)));
    assert_eq!(kind(l.run("alice", rename(&format!("{h}/f"), "/a:b", false))), "InvalidPathException");
    assert_eq!(r(&mut l, "none", "x", false), "FileNotFoundException");
    assert_eq!(r(&mut l, "f", "f", true), "FileAlreadyExistsException");
    assert_eq!(r(&mut l, "d", "d/sub/in", false), "IOException");
    assert_eq!(r(&mut l, "d", "d/new", false), "IOException");
    assert_eq!(kind(l.run("alice", rename("/", "/x", false))), "AccessControlException");
    assert_eq!(kind(l.run(SUPERUSER, rename("/", "/x", false))), "IOException");
    assert_eq!(kind(l.run(SUPERUSER, rename("/tmp", "/", true))), "IOException");
    assert_eq!(r(&mut l, "f", "g", false), "FileAlreadyExistsException");
    assert_eq!(r(&mut l, "f", "d", true), "IOException");
    assert_eq!(r(&mut l, "d", "f", true), "IOException");
    assert_eq!(r(&mut l, "d", "full", true), "IOException");
    assert_eq!(r(&mut l, "f", "none/x", false), "FileNotFoundException");
    assert_eq!(r(&mut l, "f", "g/x", false), "ParentNotDirectoryException");
    // Permissions: WRITE on the source's parent and the destination's ancestor.
    assert_eq!(kind(l.run("bob", rename(&format!("{h}/f"), "/user/bob/f", false))), "AccessControlException");
    assert_eq!(kind(l.run("alice", rename(&format!("{h}/f"), "/user/bob/f", false))), "AccessControlException");
    assert_eq!(kind(l.run("alice", rename(&format!("{h}/f"), "/tmp/f", false))), "ok");
    // Overwrite: a file replaces a file (its blocks are freed), a directory an empty one.
    let g_blocks = l.ns.lookup(&format!("{h}/g")).unwrap().file().unwrap().blocks.clone();
    let out = l.call("alice", NO_CLIENT, 0, rename("/tmp/f", &format!("{h}/g"), true));
    assert_eq!((out.result, out.removed_blocks), (Ok(Reply::Done), g_blocks));
    assert_eq!(l.info(&format!("{h}/g")).unwrap().length, 1);
    assert_eq!(r(&mut l, "d", "empty", true), "ok");
    assert!(l.info(&format!("{h}/empty/sub")).is_some());
}

#[test]
fn sticky_bit_limits_delete_and_rename() {
    let mut l = homes();
    l.write("alice", "/tmp/a", &[1]);
    l.write("bob", "/tmp/b", &[1]);
    assert_eq!(kind(l.run("bob", delete("/tmp/a", false))), "AccessControlException");
    assert_eq!(kind(l.run("bob", rename("/tmp/a", "/tmp/mine", false))), "AccessControlException");
    assert_eq!(kind(l.run("bob", rename("/tmp/b", "/tmp/a", true))), "AccessControlException");
    assert_eq!(kind(l.run("carol", delete("/tmp/a", false))), "AccessControlException");
    assert_eq!(kind(l.run("admin", rename("/tmp/a", "/tmp/a2", false))), "ok");
    assert_eq!(kind(l.run("alice", rename("/tmp/a2", "/tmp/a", false))), "ok");
    assert_eq!(kind(l.run("bob", rename("/tmp/b", "/tmp/b2", false))), "ok");
    // The directory's owner may remove anything in it.
    l.run("alice", mkdirs("/user/alice/shared", 0o1777)).unwrap();
    l.run("alice", chmod("/user/alice/shared", 0o1777)).unwrap();
    l.write("bob", "/user/alice/shared/x", &[1]);
    assert_eq!(kind(l.run("carol", delete("/user/alice/shared/x", false))), "AccessControlException");
    assert_eq!(kind(l.run("alice", delete("/user/alice/shared/x", false))), "ok");
    // Recursive delete applies it inside the subtree too.
    l.run("alice", mkdirs("/user/alice/t", 0o777)).unwrap();
    l.run("alice", chmod("/user/alice/t", 0o777)).unwrap();
    l.run("carol", mkdirs("/user/alice/t/s", 0o777)).unwrap();
    l.run("carol", chmod("/user/alice/t/s", 0o1777)).unwrap();
    l.write("bob", "/user/alice/t/s/b", &[1]);
    l.run("carol", mkdirs("/tmp/c/d", 0o777)).unwrap();
    l.run("carol", chmod("/tmp/c", 0o1777)).unwrap();
    l.run("carol", chmod("/tmp/c/d", 0o777)).unwrap();
    l.write("bob", "/tmp/c/d/f", &[1]);
    assert_eq!(kind(l.run("alice", delete("/user/alice/t", true))), "AccessControlException");
    assert_eq!(kind(l.run("carol", delete("/tmp/c", true))), "ok");
    assert_eq!(kind(l.run(SUPERUSER, delete("/user/alice/t", true))), "ok");
}

#[test]
fn delete_recursive_and_not() {
    let mut l = homes();
    l.run("alice", mkdirs("/user/alice/d/e", 0o755)).unwrap();
    l.write("alice", "/user/alice/d/e/f", &[3, 4]);
    l.run("alice", create("/user/alice/d/open", "c1")).unwrap();
    let Ok(Reply::Block(ob)) = l.run("alice", add_block("/user/alice/d/open", "c1", None)) else { panic!() };
    assert_eq!(kind(l.run("alice", delete("/user/alice/d", false))), "PathIsNotEmptyDirectoryException");
    // Non-empty beats missing permission, as in HDFS.
    assert_eq!(kind(l.run("bob", delete("/user/alice/d", false))), "PathIsNotEmptyDirectoryException");
    assert_eq!(kind(l.run("bob", delete("/user/alice/d", true))), "AccessControlException");
    assert_eq!(l.run("alice", delete("/user/alice/none", false)), Ok(Reply::Bool(false)));
    assert_eq!(l.run(SUPERUSER, delete("/", true)), Ok(Reply::Bool(false)));
    let n = l.ns.inode_count();
    let out = l.call("alice", NO_CLIENT, 0, delete("/user/alice/d", true));
    assert_eq!(out.result, Ok(Reply::Bool(true)));
    let mut removed = out.removed_blocks;
    removed.sort();
    assert_eq!(removed.len(), 3);
    assert!(removed.contains(&ob));
    assert_eq!(l.ns.inode_count(), n - 4);
    assert!(l.ns.leases().is_empty());
    assert_eq!(kind(l.run("alice", add_block("/user/alice/d/open", "c1", Some(ob)))), "FileNotFoundException");
    l.run("alice", mkdirs("/user/alice/e", 0o755)).unwrap();
    assert_eq!(l.run("alice", delete("/user/alice/e", false)), Ok(Reply::Bool(true)));
    // A recursive delete needs ALL on every non-empty directory below.
    l.run("alice", mkdirs("/user/alice/r/locked", 0o755)).unwrap();
    l.write("alice", "/user/alice/r/locked/f", &[1]);
    l.run("alice", chmod("/user/alice/r/locked", 0o555)).unwrap();
    assert_eq!(kind(l.run("alice", delete("/user/alice/r", true))), "AccessControlException");
    l.run("alice", chmod("/user/alice/r/locked", 0o755)).unwrap();
    assert_eq!(kind(l.run("alice", delete("/user/alice/r", true))), "ok");
}

#[test]
fn set_permission_owner_replication_times() {
    let mut l = homes();
    l.write("alice", "/user/alice/f", &[10]);
    let f = "/user/alice/f";
    assert_eq!(kind(l.run("bob", chmod(f, 0o777))), "AccessControlException");
    assert_eq!(kind(l.run("alice", chmod("/user/alice/none", 0o777))), "FileNotFoundException");
    assert_eq!(kind(l.run("alice", chmod(f, 0o17777))), "ok");
    assert_eq!(l.info(f).unwrap().perm, 0o1777);
    // Owner: superuser only; group: the owner, to one of its own groups.
    assert_eq!(kind(l.run("alice", chown(f, Some("bob"), None))), "AccessControlException");
    assert_eq!(kind(l.run("alice", chown(f, Some("alice"), None))), "ok");
    assert_eq!(kind(l.run("alice", chown(f, None, Some("wheel")))), "AccessControlException");
    assert_eq!(kind(l.run("alice", chown(f, None, Some("research")))), "ok");
    assert_eq!(kind(l.run("bob", chown(f, None, Some("users")))), "AccessControlException");
    assert_eq!(kind(l.run("alice", chown(f, None, None))), "IOException");
    assert_eq!(kind(l.run("admin", chown(f, Some("bob"), Some("wheel")))), "ok");
    let st = l.info(f).unwrap();
    assert_eq!((st.owner.as_str(), st.group.as_str()), ("bob", "wheel"));

    let rep = |p: &str, r| Op::SetReplication { path: p.into(), replication: r };
    assert_eq!(l.run("bob", rep(f, 2)), Ok(Reply::Bool(true)));
    assert_eq!(l.info(f).unwrap().replication, 2);
    assert_eq!(l.run("bob", rep("/user/bob", 2)), Ok(Reply::Bool(false)));
    assert_eq!(kind(l.run("bob", rep("/user/alice", 2))), "AccessControlException");
    assert_eq!(l.run("bob", rep("/user/alice/none", 2)), Ok(Reply::Bool(false)));
    assert_eq!(kind(l.run("bob", rep(f, 0))), "IOException");
    assert_eq!(kind(l.run("bob", rep(f, 513))), "IOException");
    l.run("admin", chmod(f, 0o644)).unwrap();
    assert_eq!(kind(l.run("alice", rep(f, 1))), "AccessControlException");

    let times = |p: &str| Op::SetTimes { path: p.into(), mtime_ms: Some(5), atime_ms: None };
    assert_eq!(kind(l.run("alice", times(f))), "AccessControlException");
    assert_eq!(kind(l.run("bob", times("/user/bob/none"))), "FileNotFoundException");
    let atime = l.info(f).unwrap().atime_ms;
    assert_eq!(kind(l.run("bob", times(f))), "ok");
    assert_eq!((l.info(f).unwrap().mtime_ms, l.info(f).unwrap().atime_ms), (5, atime));
}

#[test]
fn reads_list_summary_blocks() {
    let mut l = homes();
    for n in ["c", "a", "b", "d"] {
        l.write("alice", &format!("/user/alice/{n}"), &[10, 5]);
    }
    l.run("alice", mkdirs("/user/alice/sub/x", 0o755)).unwrap();
    let alice = groups_of("alice");
    let alice = Caller::new("alice", &alice);
    let page = l.ns.list("/user/alice", &alice, "", 3).unwrap();
    let names: Vec<&str> = page.entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!((names, page.remaining), (vec!["a", "b", "c"], 2));
    let page = l.ns.list("/user/alice", &alice, "c", 10).unwrap();
    let names: Vec<&str> = page.entries.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!((names, page.remaining), (vec!["d", "sub"], 0));
    let file = l.ns.list("/user/alice/a", &alice, "", 10).unwrap();
    assert_eq!(file.entries.len(), 1);
    assert_eq!(file.entries[0].0, "");
    assert!(matches!(l.ns.list("/user/alice/none", &alice, "", 10), Err(Error::FileNotFound(_))));
    l.run("alice", chmod("/user/alice/sub", 0o711)).unwrap();
    let bob = groups_of("bob");
    let bob = Caller::new("bob", &bob);
    assert!(matches!(l.ns.list("/user/alice/sub", &bob, "", 10), Err(Error::AccessControl(_))));

    let s = l.ns.content_summary("/user/alice", &alice).unwrap();
    assert_eq!(s, ContentSummary { length: 60, files: 4, dirs: 3, space_consumed: 180 });
    l.run(SUPERUSER, Op::SetReplication { path: "/user/alice/a".into(), replication: 1 }).unwrap();
    assert_eq!(l.ns.content_summary("/user/alice/a", &alice).unwrap().space_consumed, 15);
    assert!(matches!(l.ns.content_summary("/user/alice", &bob), Err(Error::AccessControl(_))));

    let fb = l.ns.block_locations_of("/user/alice/a", &bob).unwrap();
    assert_eq!((fb.length, fb.blocks.len(), fb.under_construction), (15, 2, false));
    l.run("alice", chmod("/user/alice/a", 0o600)).unwrap();
    assert!(matches!(l.ns.block_locations_of("/user/alice/a", &bob), Err(Error::AccessControl(_))));
    assert!(matches!(l.ns.block_locations_of("/user/alice", &alice), Err(Error::FileNotFound(_))));
}

#[test]
fn retry_cache_applies_once() {
    let mut l = homes();
    let cid = [7; 16];
    let first = l.call("alice", cid, 1, create_over("/user/alice/f", "c1"));
    let id = l.info("/user/alice/f").unwrap().id;
    let again = l.call("alice", cid, 1, create_over("/user/alice/f", "c1"));
    assert!(again.retried);
    assert_eq!(again.result, first.result);
    assert_eq!(l.info("/user/alice/f").unwrap().id, id, "the retried overwrite replaced nothing");
    // Another call id is a new call.
    let other = l.call("alice", cid, 2, create_over("/user/alice/f", "c1"));
    assert!(!other.retried);
    assert_ne!(l.info("/user/alice/f").unwrap().id, id);

    let r1 = l.call("alice", cid, 3, rename("/user/alice/f", "/user/alice/g", false));
    let r2 = l.call("alice", cid, 3, rename("/user/alice/f", "/user/alice/g", false));
    assert_eq!((r1.result.clone(), r2.result, r2.retried), (Ok(Reply::Done), Ok(Reply::Done), true));
    let d1 = l.call("alice", cid, 4, delete("/user/alice/g", false));
    let d2 = l.call("alice", cid, 4, delete("/user/alice/g", false));
    assert_eq!((d1.result, d2.result), (Ok(Reply::Bool(true)), Ok(Reply::Bool(true))));
    assert_eq!(l.call("alice", cid, 5, delete("/user/alice/g", false)).result, Ok(Reply::Bool(false)));

    // Failures are not remembered: the retry runs again.
    let f1 = l.call("bob", cid, 6, create("/user/alice/h", "c2"));
    assert_eq!(kind(f1.result), "AccessControlException");
    let f2 = l.call("alice", cid, 6, create("/user/alice/h", "c2"));
    assert!(!f2.retried && f2.result.is_ok());
    // Entries that are not client calls, and idempotent ops, are not remembered.
    let n = l.ns.retry_cache_len();
    l.call("alice", NO_CLIENT, 7, create("/user/alice/i", "c2"));
    l.call("alice", cid, 8, mkdirs("/user/alice/j", 0o755));
    assert_eq!(l.ns.retry_cache_len(), n);

    // After the TTL (entry time) the entry is gone, on every replica alike.
    l.time += l.ns.limits().retry_ttl_ms + 1;
    let late = l.call("alice", cid, 4, delete("/user/alice/g", false));
    assert!(!late.retried);
    assert_eq!(late.result, Ok(Reply::Bool(false)));
    assert_eq!(l.ns.retry_cache_len(), 1);
}

#[test]
fn retry_cache_is_bounded() {
    let mut l = Log::new();
    l.ns = Namespace::new(Limits { retry_max: 3, ..Limits::default() });
    for call in 0..10 {
        l.call(SUPERUSER, [1; 16], call, delete("/none", false));
    }
    assert_eq!(l.ns.retry_cache_len(), 3);
    assert!(l.call(SUPERUSER, [1; 16], 9, delete("/none", false)).retried);
    assert!(!l.call(SUPERUSER, [1; 16], 0, delete("/none", false)).retried);
}

#[test]
fn leases_soft_limit_lets_another_writer_recover() {
    let mut l = homes();
    let f = "/user/alice/f";
    l.run("alice", create(f, "c1")).unwrap();
    let Ok(Reply::Block(b)) = l.run("alice", add_block(f, "c1", None)) else { panic!() };
    l.time += 30_000;
    l.run("alice", Op::RenewLease { client_name: "c1".into() }).unwrap();
    assert_eq!(l.ns.leases()["c1"].last_renewed_ms, l.time);
    l.time += 59_999; // the entry comes 1 ms later: exactly at the soft limit
    assert_eq!(kind(l.run("alice", append(f, "c2"))), "AlreadyBeingCreatedException");
    // Past the soft limit: recovery starts (the lease goes to the NameNode), the caller retries.
    let out = l.call("alice", NO_CLIENT, 0, append(f, "c2"));
    assert_eq!(kind(out.result), "RecoveryInProgressException");
    let order = out.recovery.expect("a recovery order");
    assert_eq!((order.path.as_str(), order.block, order.recovery_id), (f, b, l.index));
    assert!(l.ns.leases().contains_key(RECOVERY_HOLDER) && !l.ns.leases().contains_key("c1"));
    // Nobody can pass for the NameNode's recovery holder.
    assert_eq!(kind(l.run("alice", Op::RenewLease { client_name: RECOVERY_HOLDER.into() })), "IOException");
    assert_eq!(kind(l.run("alice", add_block(f, RECOVERY_HOLDER, Some(b)))), "IOException");
    assert_eq!(kind(l.run("alice", append(f, "c2"))), "RecoveryInProgressException");
    // The old writer is fenced.
    assert_eq!(kind(l.run("alice", add_block(f, "c1", Some(b)))), "LeaseExpiredException");
    assert_eq!(kind(l.run("alice", complete(f, "c1", Some(b)))), "LeaseExpiredException");
    // The NameNode commits the recovered length (superuser only).
    let rec = Op::RecoverLease { path: f.into(), last: Some(Block { id: b.id, gs: order.recovery_id, len: 42 }) };
    assert_eq!(kind(l.run("alice", rec.clone())), "AccessControlException");
    assert_eq!(l.su(rec.clone()), Reply::Done);
    assert!(l.ns.leases().is_empty());
    assert_eq!(l.info(f).unwrap().length, 42);
    assert_eq!(l.su(rec), Reply::Done, "recovering a closed file is a no-op");
    let Ok(Reply::Appended { last: Some(last), .. }) = l.run("alice", append(f, "c2")) else { panic!() };
    assert_eq!(last.len, 42);

    // A file with no block being written is closed at once, and the create still fails.
    l.run("alice", create("/user/alice/g", "c3")).unwrap();
    l.time += 60_001;
    let out = l.call("alice", NO_CLIENT, 0, create("/user/alice/g", "c4"));
    assert_eq!((kind(out.result), out.recovery), ("FileAlreadyExistsException", None));
    assert!(!l.info("/user/alice/g").unwrap().under_construction);
}

#[test]
fn expired_leases_and_forced_recovery() {
    let mut l = homes();
    l.run("alice", create("/user/alice/f", "c1")).unwrap();
    let Ok(Reply::Block(b)) = l.run("alice", add_block("/user/alice/f", "c1", None)) else { panic!() };
    l.run("alice", create("/user/alice/empty", "c1")).unwrap();
    l.run("bob", create("/user/bob/g", "c2")).unwrap();
    let t0 = l.ns.leases()["c1"].last_renewed_ms;
    assert!(l.ns.expired_leases(t0 + 60_000, 60_000, 1_200_000).is_empty());
    let soft = l.ns.expired_leases(t0 + 60_001, 60_000, 1_200_000);
    assert_eq!(soft.iter().map(|e| (e.holder.as_str(), e.past_hard)).collect::<Vec<_>>(), vec![("c1", false)]);
    let hard = l.ns.expired_leases(t0 + 1_200_001, 60_000, 1_200_000);
    assert_eq!(hard[0].paths, vec!["/user/alice/f".to_string(), "/user/alice/empty".to_string()]);
    assert!(hard[0].past_hard && hard.len() == 2 && !hard[1].past_hard);

    // The NameNode (or a client, with WRITE) starts recovery at once.
    assert_eq!(kind(l.run("bob", Op::BeginRecovery { path: "/user/alice/f".into() })), "AccessControlException");
    assert_eq!(l.su(Op::BeginRecovery { path: "/user/alice/empty".into() }), Reply::Bool(true));
    let out = l.call(SUPERUSER, NO_CLIENT, 0, Op::BeginRecovery { path: "/user/alice/f".into() });
    assert_eq!(out.result, Ok(Reply::Bool(false)));
    assert_eq!(out.recovery.unwrap().block, b);
    // No replica had data: the block is dropped.
    let out = l.call(SUPERUSER, NO_CLIENT, 0, Op::RecoverLease { path: "/user/alice/f".into(), last: None });
    assert_eq!((out.result, out.removed_blocks), (Ok(Reply::Done), vec![b]));
    assert_eq!(l.info("/user/alice/f").unwrap().length, 0);
    assert_eq!(l.su(Op::BeginRecovery { path: "/user/alice/f".into() }), Reply::Bool(true));
    assert_eq!(kind(l.run(SUPERUSER, Op::BeginRecovery { path: "/user/alice".into() })), "FileNotFoundException");
}

fn truncate(p: &str, new_length: u64, client: &str) -> Op {
    Op::Truncate { path: p.into(), new_length, client_name: client.into(), client_machine: format!("{client}-host") }
}

fn concat(target: &str, srcs: &[&str]) -> Op {
    Op::Concat { target: target.into(), srcs: srcs.iter().map(|s| s.to_string()).collect() }
}

fn blocks_of(l: &Log, p: &str) -> Vec<Block> {
    l.ns.lookup(p).unwrap().file().unwrap().blocks.clone()
}

/// Alice's closed file /user/alice/f of blocks of 100, 100 and 50 bytes, and its blocks.
fn file_of_250_bytes() -> (Log, &'static str, Vec<Block>) {
    let mut l = homes();
    let f = "/user/alice/f";
    l.write("alice", f, &[100, 100, 50]);
    let b = blocks_of(&l, f);
    (l, f, b)
}

#[test]
fn truncate_checks_in_hdfs_order() {
    let (mut l, f, _) = file_of_250_bytes();
    assert_eq!(kind(l.run("bob", truncate(f, 10, "c9"))), "AccessControlException");
    assert_eq!(kind(l.run("alice", truncate("/user/alice/none", 0, "c9"))), "FileNotFoundException");
    assert_eq!(kind(l.run("alice", truncate("/user/alice", 0, "c9"))), "FileNotFoundException");
    let Err(e) = l.run("alice", truncate(f, 251, "c9")) else { panic!("truncate to a larger size") };
    assert_eq!(e.exception_name(), "HadoopIllegalArgumentException");
    assert_eq!(e.to_string(), "Cannot truncate to a larger file size. Current size: 250, truncate size: 251.");
    assert_eq!(kind(l.run("alice", truncate(f, 10, RECOVERY_HOLDER))), "IOException");
    // The same length: true, and nothing changes.
    let before = l.info(f).unwrap();
    assert_eq!(l.run("alice", truncate(f, 250, "c9")), Ok(Reply::Bool(true)));
    assert_eq!(l.info(f).unwrap(), before);
    // A file open for writing is refused, to its writer too.
    l.run("alice", create("/user/alice/open", "c1")).unwrap();
    assert_eq!(kind(l.run("alice", truncate("/user/alice/open", 0, "c1"))), "AlreadyBeingCreatedException");
    assert_eq!(kind(l.run("alice", truncate("/user/alice/open", 0, "c2"))), "AlreadyBeingCreatedException");
}

#[test]
fn truncate_on_a_block_boundary_is_done_at_once() {
    let (mut l, f, b) = file_of_250_bytes();
    let out = l.call("alice", NO_CLIENT, 0, truncate(f, 200, "c9"));
    assert_eq!((out.result, out.removed_blocks, out.recovery), (Ok(Reply::Bool(true)), vec![b[2]], None));
    let st = l.info(f).unwrap();
    assert_eq!((st.length, st.under_construction, st.mtime_ms), (200, false, l.time));
    assert!(l.ns.leases().is_empty() && l.ns.file_of_block(b[2].id).is_none());
    let out = l.call("alice", NO_CLIENT, 0, truncate(f, 0, "c9"));
    assert_eq!((out.result, out.removed_blocks), (Ok(Reply::Bool(true)), vec![b[0], b[1]]));
    assert_eq!(l.info(f).unwrap().length, 0);
}

#[test]
fn truncate_inside_a_block_waits_for_its_recovery() {
    let (mut l, f, b) = file_of_250_bytes();
    let out = l.call("alice", [3; 16], 1, truncate(f, 150, "c9"));
    assert_eq!((out.result, out.removed_blocks), (Ok(Reply::Bool(false)), vec![b[2]]));
    let order = out.recovery.expect("a recovery order");
    let want = RecoveryOrder {
        path: f.into(),
        file_id: l.info(f).unwrap().id,
        block: b[1],
        recovery_id: l.index,
        truncate_to: Some(50),
    };
    assert_eq!(order, want);
    // Open under the truncating client's lease; the last block keeps its length until the
    // recovery commits the cut (HDFS reports the old length meanwhile).
    let st = l.info(f).unwrap();
    assert_eq!((st.length, st.under_construction), (200, true));
    assert!(l.ns.leases()["c9"].files.contains(&st.id));
    let fb = l.ns.block_locations_of(f, &Caller::new(SUPERUSER, &[])).unwrap();
    assert!(fb.last_open);
    // The retried call is answered from the retry cache; the same truncate again waits too;
    // another length is refused.
    assert!(l.call("alice", [3; 16], 1, truncate(f, 150, "c9")).retried);
    let again = l.call("bob", NO_CLIENT, 0, truncate(f, 150, "c2"));
    assert_eq!((kind(again.result), again.recovery), ("AccessControlException", None));
    let again = l.call("alice", NO_CLIENT, 0, truncate(f, 150, "c2"));
    assert_eq!((again.result, again.recovery), (Ok(Reply::Bool(false)), None));
    assert_eq!(kind(l.run("alice", truncate(f, 120, "c9"))), "AlreadyBeingCreatedException");
    // Writers wait for the recovery; the truncating client cannot write the block either.
    assert_eq!(kind(l.run("alice", append(f, "c2"))), "RecoveryInProgressException");
    assert_eq!(kind(l.run("alice", append(f, "c9"))), "AlreadyBeingCreatedException");
    assert_eq!(kind(l.run("alice", add_block(f, "c9", Some(b[1])))), "RecoveryInProgressException");
    assert_eq!(kind(l.run("alice", complete(f, "c9", Some(b[1])))), "RecoveryInProgressException");
    // The commit may not be longer than the truncate's target.
    let long = Block { id: b[1].id, gs: order.recovery_id, len: 51 };
    assert_eq!(kind(l.run(SUPERUSER, Op::RecoverLease { path: f.into(), last: Some(long) })), "IOException");
    let cut = Block { len: 50, ..long };
    assert_eq!(l.su(Op::RecoverLease { path: f.into(), last: Some(cut) }), Reply::Done);
    let st = l.info(f).unwrap();
    assert_eq!((st.length, st.under_construction), (150, false));
    assert_eq!(blocks_of(&l, f), vec![b[0], cut]);
    assert!(l.ns.leases().is_empty());
}

#[test]
fn a_stalled_truncate_is_taken_over_like_a_lease() {
    let mut l = homes();
    let f = "/user/alice/f";
    l.write("alice", f, &[100]);
    let first = l.call("alice", NO_CLIENT, 0, truncate(f, 30, "c9")).recovery.unwrap();
    // The NameNode restarts the recovery (a new stamp, the same target) under its own lease.
    let out = l.call(SUPERUSER, NO_CLIENT, 0, Op::BeginRecovery { path: f.into() });
    assert_eq!(out.result, Ok(Reply::Bool(false)));
    let order = out.recovery.unwrap();
    assert_eq!((order.block, order.truncate_to), (first.block, Some(30)));
    assert!(order.recovery_id > first.recovery_id);
    assert!(l.ns.leases().contains_key(RECOVERY_HOLDER) && !l.ns.leases().contains_key("c9"));
    // Past the soft limit another client's truncate or append does the same, and is told to
    // wait; the checkpoint keeps the target.
    let ns = Namespace::deserialize(&l.ns.serialize()).unwrap();
    assert_eq!(ns, l.ns);
    let uc = ns.lookup(f).unwrap().file().unwrap().uc.clone().unwrap();
    assert_eq!(uc.truncate_to, Some(30));
    l.time += 60_001;
    assert_eq!(kind(l.run("alice", append(f, "c2"))), "RecoveryInProgressException");
}

/// Alice's closed files t (10 bytes), a (20 + 5) and b (7), in her home.
fn concat_files() -> (Log, [&'static str; 3]) {
    let mut l = homes();
    let files = ["/user/alice/t", "/user/alice/a", "/user/alice/b"];
    for (p, lens) in files.iter().zip([&[10][..], &[20, 5], &[7]]) {
        l.write("alice", p, lens);
    }
    (l, files)
}

#[test]
fn concat_checks_in_hdfs_order() {
    let (mut l, [t, a, b]) = concat_files();
    l.write("alice", "/tmp/x", &[3]);
    l.write("alice", "/user/alice/empty", &[]);
    l.run("alice", create("/user/alice/open", "c1")).unwrap();
    let mut big = create("/user/alice/big", "c1");
    if let Op::Create { block_size, .. } = &mut big {
        *block_size = 256 * MB;
    }
    l.run("alice", big).unwrap();
    l.run("alice", complete("/user/alice/big", "c1", None)).unwrap();
    l.run("alice", mkdirs("/user/alice/dir", 0o755)).unwrap();
    let cases: [(&str, &[&str], &str); 14] = [
        ("", &[a], "IllegalArgumentException"),
        (t, &[], "IllegalArgumentException"),
        ("/user/alice/none", &[a], "FileNotFoundException"),
        ("/user/alice/dir", &[a], "FileNotFoundException"),
        ("/user/alice/open", &[a], "HadoopIllegalArgumentException"),
        (t, &["/user/alice/none"], "FileNotFoundException"),
        (t, &["/user/alice/dir"], "FileNotFoundException"),
        (t, &["/tmp/x"], "HadoopIllegalArgumentException"),
        (t, &[t], "HadoopIllegalArgumentException"),
        (t, &["/user/alice/open"], "HadoopIllegalArgumentException"),
        (t, &["/user/alice/empty"], "HadoopIllegalArgumentException"),
        (t, &["/user/alice/big"], "HadoopIllegalArgumentException"),
        (t, &[a, b, a], "HadoopIllegalArgumentException"),
        (t, &[a, "/user/alice/big"], "HadoopIllegalArgumentException"),
    ];
    for (target, srcs, class) in cases {
        assert_eq!(kind(l.run("alice", concat(target, srcs))), class, "concat {target} {srcs:?}");
    }
    // WRITE on the target; READ on each source and WRITE on its directory.
    assert_eq!(kind(l.run("bob", concat(t, &[a]))), "AccessControlException");
    l.run("alice", chmod(a, 0o200)).unwrap();
    assert_eq!(kind(l.run("alice", concat(t, &[a]))), "AccessControlException");
    l.run("alice", chmod(a, 0o644)).unwrap();
    l.su(mkdirs("/shared", 0o755));
    l.write(SUPERUSER, "/shared/t", &[1]);
    l.write(SUPERUSER, "/shared/s", &[1]);
    l.run(SUPERUSER, chmod("/shared/t", 0o666)).unwrap();
    assert_eq!(kind(l.run("alice", concat("/shared/t", &["/shared/s"]))), "AccessControlException");
    assert_eq!(blocks_of(&l, a).len(), 2, "a refused concat changed nothing");
}

#[test]
fn concat_moves_the_blocks_and_removes_the_sources() {
    let (mut l, [t, a, b]) = concat_files();
    l.run("alice", Op::SetReplication { path: a.into(), replication: 1 }).unwrap();
    let want: Vec<Block> = [t, a, b].iter().flat_map(|p| blocks_of(&l, p)).collect();
    let tid = l.info(t).unwrap().id;
    let out = l.call("alice", [4; 16], 1, concat(t, &[a, b]));
    assert_eq!((out.result, out.removed_blocks, out.recovery), (Ok(Reply::Done), vec![], None));
    assert_eq!(blocks_of(&l, t), want);
    let st = l.info(t).unwrap();
    assert_eq!((st.length, st.replication, st.mtime_ms), (42, 3, l.time));
    assert!(l.info(a).is_none() && l.info(b).is_none());
    assert_eq!(l.info("/user/alice").unwrap().mtime_ms, l.time);
    for blk in &want {
        assert_eq!(l.ns.file_of_block(blk.id), Some((tid, *blk)));
    }
    let again = l.call("alice", [4; 16], 1, concat(t, &[a, b]));
    assert_eq!((again.result, again.retried), (Ok(Reply::Done), true));
    assert_eq!(kind(l.run("alice", concat(t, &[a, b]))), "FileNotFoundException");
}

/// A fixed history touching every op.
fn history() -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut t = 1_000;
    let mut push = |user: &str, cid: [u8; 16], call: u64, op: Op| {
        t += 7;
        entries.push(Entry {
            time_ms: t,
            user: user.into(),
            groups: groups_of(user),
            client_id: cid,
            call_id: call,
            op,
        });
    };
    push(SUPERUSER, NO_CLIENT, 0, mkdirs("/tmp", 0o1777));
    push(SUPERUSER, NO_CLIENT, 0, chmod("/tmp", 0o1777));
    push(SUPERUSER, NO_CLIENT, 0, mkdirs("/user/alice", 0o755));
    push(SUPERUSER, NO_CLIENT, 0, chown("/user/alice", Some("alice"), Some("users")));
    push("alice", [1; 16], 1, create("/user/alice/f", "c1"));
    push("alice", [1; 16], 2, add_block("/user/alice/f", "c1", None));
    push("alice", [1; 16], 2, add_block("/user/alice/f", "c1", None));
    push("alice", [1; 16], 3, complete("/user/alice/f", "c1", Some(Block { id: 6, gs: 6, len: 9 })));
    push("alice", [1; 16], 4, append("/user/alice/f", "c2"));
    push("alice", [1; 16], 5, create("/tmp/open", "c3"));
    push("alice", [1; 16], 6, add_block("/tmp/open", "c3", None));
    push("alice", [1; 16], 7, rename("/user/alice/f", "/user/alice/g", false));
    push("alice", [1; 16], 7, rename("/user/alice/f", "/user/alice/g", false));
    push("alice", NO_CLIENT, 0, Op::RenewLease { client_name: "c3".into() });
    push("alice", [1; 16], 8, delete("/user/alice/none", true));
    push("bob", [2; 16], 1, create("/tmp/b", "c4"));
    // /user/alice/g (block 6, 9 bytes) cut inside its block, and a concat.
    push("alice", [1; 16], 9, complete("/user/alice/g", "c2", Some(Block { id: 6, gs: 6, len: 9 })));
    push("alice", [1; 16], 10, truncate("/user/alice/g", 4, "c5"));
    push(SUPERUSER, NO_CLIENT, 0, mkdirs("/c", 0o777));
    push(SUPERUSER, NO_CLIENT, 0, create("/c/x", "c6"));
    push(SUPERUSER, NO_CLIENT, 0, add_block("/c/x", "c6", None));
    push(SUPERUSER, NO_CLIENT, 0, complete("/c/x", "c6", Some(Block { id: 21, gs: 21, len: 3 })));
    push(SUPERUSER, NO_CLIENT, 0, create("/c/y", "c6"));
    push(SUPERUSER, NO_CLIENT, 0, complete("/c/y", "c6", None));
    push(SUPERUSER, [5; 16], 1, concat("/c/y", &["/c/x"]));
    entries
}

#[test]
fn same_entries_same_state_and_checkpoints_round_trip() {
    let mut a = Namespace::default();
    let mut b = Namespace::default();
    for (i, e) in history().iter().enumerate() {
        let (oa, ob) = (a.apply(i as u64 + 1, e), b.apply(i as u64 + 1, e));
        assert_eq!(oa, ob);
    }
    assert_eq!(a, b);
    assert!(a.inode_count() > 5 && !a.leases().is_empty() && a.retry_cache_len() > 0);
    let g = a.lookup("/user/alice/g").unwrap().file().unwrap();
    assert_eq!(g.uc.as_ref().and_then(|u| u.truncate_to), Some(4), "the history left a truncate waiting");
    assert_eq!(a.lookup("/c/y").unwrap().file().unwrap().len(), 3, "the history concatenated");
    let bytes = a.serialize();
    assert_eq!(bytes, b.serialize());
    let c = Namespace::deserialize(&bytes).unwrap();
    assert_eq!(c, a);
    assert_eq!(c.serialize(), bytes);
}

#[test]
#[should_panic(expected = "out of order")]
fn apply_asserts_index_order() {
    let mut ns = Namespace::default();
    let e = &history()[0];
    ns.apply(2, e);
    ns.apply(2, e);
}

#[test]
fn bad_checkpoints_are_refused_without_panic() {
    let mut ns = Namespace::default();
    for (i, e) in history().iter().enumerate() {
        ns.apply(i as u64 + 1, e);
    }
    let bytes = ns.serialize();
    for n in 0..bytes.len() {
        assert!(Namespace::deserialize(&bytes[..n]).is_err(), "truncated at {n}");
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(Namespace::deserialize(&longer), Err(CheckpointError::BadValue("trailing bytes")));
    let mut v3 = bytes.clone();
    v3[4] = 3;
    assert_eq!(Namespace::deserialize(&v3), Err(CheckpointError::Version(3)));
    assert_eq!(Namespace::deserialize(b"nope"), Err(CheckpointError::BadMagic));
    // Every single-byte corruption either loads a valid namespace or is refused.
    for i in 6..bytes.len() {
        for x in [0x01, 0x80, 0xFF] {
            let mut b = bytes.clone();
            b[i] ^= x;
            if let Ok(ns) = Namespace::deserialize(&b) {
                ns.check_invariants().unwrap();
            }
        }
    }
}

#[test]
fn checkpoint_shape_is_checked() {
    // Hand-made checkpoints: a root, then a child whose parent is missing or a file.
    fn ckpt(second_parent: u64, first_is_file: bool) -> Vec<u8> {
        let mut w = codec_writer();
        let limits = Limits::default();
        for v in [limits.lease_soft_ms, limits.retry_ttl_ms, limits.retry_max, limits.min_block_size, 512] {
            leb(&mut w, v);
        }
        leb(&mut w, 10); // last index
        leb(&mut w, 3);
        inode(&mut w, ROOT_ID, 0, "", false);
        inode(&mut w, 1024, ROOT_ID, "a", first_is_file);
        inode(&mut w, 1025, second_parent, "b", false);
        leb(&mut w, 0);
        leb(&mut w, 0);
        w
    }
    fn codec_writer() -> Vec<u8> {
        let mut w = b"HNNS".to_vec();
        w.extend_from_slice(&1u16.to_le_bytes());
        w
    }
    fn leb(w: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            w.push(v as u8 | 0x80);
            v >>= 7;
        }
        w.push(v as u8);
    }
    fn s(w: &mut Vec<u8>, x: &str) {
        leb(w, x.len() as u64);
        w.extend_from_slice(x.as_bytes());
    }
    fn inode(w: &mut Vec<u8>, id: u64, parent: u64, name: &str, file: bool) {
        leb(w, id);
        leb(w, parent);
        s(w, name);
        s(w, "herd");
        s(w, "supergroup");
        leb(w, 0o755);
        leb(w, 0);
        leb(w, 0);
        if file {
            w.extend_from_slice(&[1, 3, 0x80, 0x80, 0x40, 0, 0]);
        } else {
            leb(w, 0);
        }
    }
    let ok = Namespace::deserialize(&ckpt(1024, false)).unwrap();
    assert_eq!(ok.path_of(1025).unwrap(), "/a/b");
    assert!(matches!(Namespace::deserialize(&ckpt(77, false)), Err(CheckpointError::Shape(_))));
    assert!(matches!(Namespace::deserialize(&ckpt(1024, true)), Err(CheckpointError::Shape(_))));
    assert!(matches!(Namespace::deserialize(&ckpt(1025, false)), Err(CheckpointError::Shape(_))));
}

#[test]
fn errors_name_hadoop_exceptions() {
    let cases = [
        (Error::FileNotFound(String::new()), "java.io.FileNotFoundException"),
        (Error::FileAlreadyExists(String::new()), "org.apache.hadoop.fs.FileAlreadyExistsException"),
        (Error::ParentNotDirectory(String::new()), "org.apache.hadoop.fs.ParentNotDirectoryException"),
        (Error::AccessControl(String::new()), "org.apache.hadoop.security.AccessControlException"),
        (Error::PathIsNotEmptyDirectory(String::new()), "org.apache.hadoop.fs.PathIsNotEmptyDirectoryException"),
        (Error::InvalidPath(String::new()), "org.apache.hadoop.fs.InvalidPathException"),
        (Error::LeaseExpired(String::new()), "org.apache.hadoop.hdfs.server.namenode.LeaseExpiredException"),
        (Error::InvalidRename(String::new()), "java.io.IOException"),
    ];
    for (e, class) in cases {
        assert_eq!(e.java_class(), class);
    }
    assert_eq!(Error::FileNotFound(String::new()).exception_name(), "FileNotFoundException");
    assert_eq!(perm::mode_string(true, 0o1777), "drwxrwxrwt");
    assert_eq!(perm::mode_string(false, 0o1644), "-rw-r--r-T");
}
