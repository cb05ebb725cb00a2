//! Random histories: checkpointing (serialize, deserialize, go on applying) changes nothing,
//! and the invariants hold after every entry. A failure prints its seed; rerun one seed with
//! `NAMENODE_SEED=<seed>`.

use super::*;

use crate::test_rng::Rng;

const USERS: [&str; 4] = [SUPERUSER, "alice", "bob", "admin"];
const CLIENTS: [&str; 3] = ["c1", "c2", "c3"];
const NAMES: [&str; 3] = ["a", "b", "c"];
const PERMS: [u16; 6] = [0o755, 0o777, 0o1777, 0o700, 0o644, 0o500];

fn groups_of(user: &str) -> Vec<String> {
    match user {
        "admin" => vec![SUPERGROUP.into()],
        SUPERUSER => vec![],
        _ => vec!["users".into()],
    }
}

fn random_path(r: &mut Rng) -> String {
    let depth = 1 + r.below(3) as usize;
    let comps: Vec<&str> = (0..depth).map(|_| *r.pick(&NAMES)).collect();
    path::join(&comps)
}

/// The last block of the file at `p` as the state knows it, sometimes with a new length.
fn last_block(r: &mut Rng, ns: &Namespace, p: &str) -> Option<Block> {
    let b = ns.lookup(p)?.file()?.blocks.last().copied()?;
    Some(Block { len: b.len + r.below(3) * 1000, ..b })
}

/// Mostly the lease holder of the file at `p` (so that files get written and closed), else
/// `client`.
fn writer(r: &mut Rng, ns: &Namespace, p: &str, client: String) -> String {
    let holder = ns.lookup(p).and_then(|i| i.file()?.uc.as_ref()).map(|u| u.holder.clone());
    holder.filter(|h| h != RECOVERY_HOLDER && r.chance(60)).unwrap_or(client)
}

/// Every file's path, in name order: ops on files pick among them half the time, so that
/// files get written, closed, truncated and concatenated at all.
fn file_paths(ns: &Namespace) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec!["/".to_string()];
    while let Some(d) = stack.pop() {
        let Some(children) = ns.lookup(&d).and_then(Inode::children) else { continue };
        for (name, id) in children {
            let p = if d == "/" { format!("/{name}") } else { format!("{d}/{name}") };
            match ns.inode(*id).is_some_and(Inode::is_dir) {
                true => stack.push(p),
                false => out.push(p),
            }
        }
    }
    out
}

fn random_op(r: &mut Rng, ns: &Namespace, index: u64) -> (String, Op) {
    let mut p = random_path(r);
    let kind = r.below(21);
    if matches!(kind, 5..=7 | 18..) && r.chance(50) {
        let files = file_paths(ns);
        if !files.is_empty() {
            p = r.pick(&files).clone();
        }
    }
    let user = if r.chance(30) { SUPERUSER } else { r.pick(&USERS[1..]) }.to_string();
    let client = r.pick(&CLIENTS).to_string();
    let op = match kind {
        0 | 1 => Op::Mkdirs { path: p, perm: *r.pick(&PERMS), create_parent: r.chance(80) },
        2..=4 => Op::Create {
            path: p,
            perm: *r.pick(&PERMS),
            overwrite: r.chance(30),
            create_parent: r.chance(80),
            replication: *r.pick(&[0, 1, 3]),
            block_size: *r.pick(&[1 << 20, 1 << 27]),
            client_name: client,
            client_machine: "m".into(),
        },
        5 | 6 => {
            let previous = if r.chance(80) { last_block(r, ns, &p) } else { None };
            Op::AddBlock { path: p.clone(), client_name: writer(r, ns, &p, client), previous }
        }
        7 => {
            let last = if r.chance(80) { last_block(r, ns, &p) } else { None };
            Op::Complete { path: p.clone(), client_name: writer(r, ns, &p, client), last }
        }
        8 => {
            let block_id = last_block(r, ns, &p).map_or(1, |b| b.id);
            Op::AbandonBlock { path: p, client_name: client, block_id }
        }
        9 => Op::Append { path: p, client_name: client, client_machine: "m".into(), new_block: r.chance(20) },
        10 => {
            let b = last_block(r, ns, &p).unwrap_or(Block { id: 1, gs: 1, len: 0 });
            Op::UpdateBlock { block_id: b.id, client_name: client, new_gs: index, new_len: b.len }
        }
        11 => Op::Rename { src: p, dst: random_path(r), overwrite: r.chance(50) },
        12 => Op::Delete { path: p, recursive: r.chance(50) },
        13 => Op::SetPermission { path: p, perm: *r.pick(&PERMS) },
        14 => Op::SetOwner {
            path: p,
            owner: r.chance(50).then(|| r.pick(&USERS).to_string()),
            group: r.chance(50).then(|| r.pick(&["users", "supergroup", "x"]).to_string()),
        },
        15 => Op::SetReplication { path: p, replication: *r.pick(&[1, 2, 600]) },
        16 => {
            if r.chance(50) {
                Op::RenewLease { client_name: client }
            } else {
                Op::SetTimes { path: p, mtime_ms: Some(r.below(1000)), atime_ms: None }
            }
        }
        17 => {
            if r.chance(50) {
                Op::BeginRecovery { path: p }
            } else {
                // A truncate's recovery commits the truncate's length.
                let target = ns.lookup(&p).and_then(|i| i.file()?.uc.as_ref()?.truncate_to);
                let last = last_block(r, ns, &p).filter(|_| r.chance(70)).map(|b| Block {
                    gs: index,
                    len: target.unwrap_or(b.len),
                    ..b
                });
                return (SUPERUSER.into(), Op::RecoverLease { path: p, last });
            }
        }
        18 | 19 => {
            let len = ns.lookup(&p).and_then(|i| i.file()).map_or(0, FileInfo::len);
            let new_length = *r.pick(&[0, len / 2, len.saturating_sub(1), len, len + 1]);
            Op::Truncate { path: p, new_length, client_name: client, client_machine: "m".into() }
        }
        _ => {
            // Mostly among the target's siblings, as concat wants, and closed files with
            // blocks when there are two: random paths hardly ever meet its rules.
            let parent = p.rsplit_once('/').map_or("", |(d, _)| d).to_string();
            let lookup = ns.lookup(if parent.is_empty() { "/" } else { &parent });
            let siblings: Vec<&String> =
                lookup.and_then(Inode::children).map(|c| c.keys().collect()).unwrap_or_default();
            let closed: Vec<&String> = siblings
                .iter()
                .copied()
                .filter(|n| {
                    let f = ns.lookup(&format!("{parent}/{n}")).and_then(Inode::file);
                    f.is_some_and(|f| f.uc.is_none() && !f.blocks.is_empty())
                })
                .collect();
            let names = if closed.len() >= 2 && r.chance(70) { closed } else { siblings };
            let (p, srcs) = if names.is_empty() {
                (p, vec![random_path(r)])
            } else {
                let target = format!("{parent}/{}", r.pick(&names));
                (target, (0..1 + r.below(2)).map(|_| format!("{parent}/{}", r.pick(&names))).collect())
            };
            Op::Concat { target: p, srcs }
        }
    };
    (user, op)
}

/// Returns how many entries the retry cache answered.
fn run_seed(seed: u64, steps: u64) -> usize {
    let mut r = Rng(seed);
    let limits = Limits { retry_ttl_ms: 200_000, retry_max: 40, ..Limits::default() };
    let mut plain = Namespace::new(limits);
    let mut checkpointed = Namespace::new(limits);
    let mut time = 0u64;
    let mut index = 0u64;
    let (mut oks, mut retried) = (0, 0);
    for step in 0..steps {
        index += 1 + r.below(3);
        time += if r.chance(5) { 70_000 } else { r.below(2_000) };
        let (user, op) = random_op(&mut r, &plain, index);
        let client_id = if r.chance(20) { NO_CLIENT } else { [r.below(3) as u8 + 1; 16] };
        let e =
            Entry { time_ms: time, user: user.clone(), groups: groups_of(&user), client_id, call_id: r.below(30), op };
        let a = plain.apply(index, &e);
        let b = checkpointed.apply(index, &e);
        assert_eq!(a, b, "seed {seed} step {step}: outcomes differ for {e:?}");
        oks += usize::from(a.result.is_ok());
        retried += usize::from(a.retried);
        if let Err(err) = plain.check_invariants() {
            panic!("seed {seed} step {step}: {err} after {e:?}");
        }
        if r.chance(10) {
            let bytes = checkpointed.serialize();
            checkpointed =
                Namespace::deserialize(&bytes).unwrap_or_else(|err| panic!("seed {seed} step {step}: {err}"));
            assert_eq!(checkpointed, plain, "seed {seed} step {step}: checkpoint changed the state");
        }
    }
    assert_eq!(checkpointed, plain, "seed {seed}");
    assert_eq!(checkpointed.serialize(), plain.serialize(), "seed {seed}");
    // The history did something: most ops cannot all have failed.
    assert!(oks as u64 > steps / 10, "seed {seed}: only {oks} of {steps} ops succeeded");
    retried
}

#[test]
fn checkpoint_then_continue_equals_never_checkpointing() {
    if let Some(seed) = std::env::var("NAMENODE_SEED").ok().and_then(|s| s.parse().ok()) {
        run_seed(seed, 2_000);
        return;
    }
    let retried: usize = (0..40).map(|seed| run_seed(seed, 600)).sum();
    assert!(retried > 40, "the retry cache answered only {retried} entries");
}

#[test]
fn random_histories_reach_interesting_states() {
    // Guards the generator: histories that never open, rename, recover, truncate inside a
    // block or concatenate test little.
    let (mut max_inodes, mut recoveries, mut removed, mut truncating, mut concats) = (0, 0, 0, 0, 0);
    for seed in 12345..12350 {
        let mut r = Rng(seed);
        let mut ns = Namespace::default();
        let mut time = 0;
        for index in 1..=3_000 {
            time += if r.chance(5) { 70_000 } else { r.below(2_000) };
            let (user, op) = random_op(&mut r, &ns, index);
            let (is_truncate, is_concat) = (matches!(op, Op::Truncate { .. }), matches!(op, Op::Concat { .. }));
            let groups = groups_of(&user);
            let e = Entry { time_ms: time, user, groups, client_id: NO_CLIENT, call_id: 0, op };
            let out = ns.apply(index, &e);
            truncating += usize::from(is_truncate && out.result == Ok(Reply::Bool(false)));
            concats += usize::from(is_concat && out.result.is_ok());
            recoveries += usize::from(out.recovery.is_some());
            removed += out.removed_blocks.len();
            max_inodes = max_inodes.max(ns.inode_count());
        }
    }
    assert!(max_inodes > 8, "{max_inodes}");
    assert!(recoveries > 0 && removed > 0, "recoveries {recoveries}, removed blocks {removed}");
    assert!(truncating > 0 && concats > 0, "truncates waiting for recovery {truncating}, concats {concats}");
}
