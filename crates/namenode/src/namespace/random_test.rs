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

fn random_op(r: &mut Rng, ns: &Namespace, index: u64) -> (String, Op) {
    let p = random_path(r);
    let user = if r.chance(30) { SUPERUSER } else { r.pick(&USERS[1..]) }.to_string();
    let client = r.pick(&CLIENTS).to_string();
    let op = match r.below(18) {
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
            Op::AddBlock { path: p, client_name: client, previous }
        }
        7 => {
            let last = if r.chance(80) { last_block(r, ns, &p) } else { None };
            Op::Complete { path: p, client_name: client, last }
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
        _ => {
            if r.chance(50) {
                Op::BeginRecovery { path: p }
            } else {
                let last = last_block(r, ns, &p).filter(|_| r.chance(70)).map(|b| Block { gs: index, ..b });
                return (SUPERUSER.into(), Op::RecoverLease { path: p, last });
            }
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
    // Guards the generator: a history that never opens, renames or recovers tests little.
    let mut r = Rng(12345);
    let mut ns = Namespace::default();
    let (mut time, mut max_inodes, mut recoveries, mut removed) = (0, 0, 0, 0);
    for index in 1..=3_000 {
        time += if r.chance(5) { 70_000 } else { r.below(2_000) };
        let (user, op) = random_op(&mut r, &ns, index);
        let e =
            Entry { time_ms: time, user: user.clone(), groups: groups_of(&user), client_id: NO_CLIENT, call_id: 0, op };
        let out = ns.apply(index, &e);
        recoveries += usize::from(out.recovery.is_some());
        removed += out.removed_blocks.len();
        max_inodes = max_inodes.max(ns.inode_count());
    }
    assert!(max_inodes > 8, "{max_inodes}");
    assert!(recoveries > 0 && removed > 0, "recoveries {recoveries}, removed blocks {removed}");
}
