//! ACL schemes (world, auth, digest, ip, and the super user) as ZooKeeper 3.8 checks them.

use base64::Engine;
use keeper_proto::{Acl, ErrorCode, Id};
use sha1::{Digest, Sha1};
use std::net::IpAddr;

/// `digest` scheme id for "user:password": "user:" + base64(sha1("user:password")).
pub fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    format!("{user}:{}", base64::engine::general_purpose::STANDARD.encode(hash))
}

/// The id a super user is recognised by, added beside its digest id.
pub fn super_id() -> Id {
    Id { scheme: "super".into(), id: String::new() }
}

pub fn world_anyone() -> Id {
    Id { scheme: "world".into(), id: "anyone".into() }
}

/// Whether `ids` (a session's authenticated identities) may do `perm` on a node with `acl`.
pub fn allowed(acl: &[Acl], ids: &[Id], perm: i32) -> bool {
    if acl.is_empty() || ids.iter().any(|i| i.scheme == "super") {
        return true;
    }
    acl.iter().filter(|a| a.perms & perm != 0).any(|a| {
        if a.id.scheme == "world" && a.id.id == "anyone" {
            return true;
        }
        ids.iter().filter(|i| i.scheme == a.id.scheme).any(|i| match a.id.scheme.as_str() {
            "ip" => ip_matches(&i.id, &a.id.id),
            _ => i.id == a.id.id,
        })
    })
}

/// ZooKeeper's `fixupACL`: drops duplicates, expands `auth` to the session's authenticated ids,
/// and refuses an empty list or an invalid id with `InvalidAcl`.
pub fn fixup(acl: &[Acl], ids: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    if acl.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out: Vec<Acl> = Vec::new();
    let mut push = |a: Acl| {
        if !out.contains(&a) {
            out.push(a);
        }
    };
    for a in acl {
        match a.id.scheme.as_str() {
            "auth" => {
                let mut any = false;
                for i in ids.iter().filter(|i| i.scheme == "digest" || i.scheme == "super") {
                    if i.scheme == "super" {
                        continue;
                    }
                    any = true;
                    push(Acl { perms: a.perms, id: i.clone() });
                }
                if !any {
                    return Err(ErrorCode::InvalidAcl);
                }
            }
            "world" if a.id.id == "anyone" => push(a.clone()),
            "digest" if digest_id_valid(&a.id.id) => push(a.clone()),
            "ip" if ip_valid(&a.id.id) => push(a.clone()),
            _ => return Err(ErrorCode::InvalidAcl),
        }
    }
    Ok(out)
}

/// Java's `id.split(":").length == 2`: trailing empty parts do not count.
fn digest_id_valid(id: &str) -> bool {
    let mut parts: Vec<&str> = id.split(':').collect();
    while parts.last() == Some(&"") {
        parts.pop();
    }
    parts.len() == 2
}

fn parse_cidr(spec: &str) -> Option<(IpAddr, u32)> {
    let (addr, bits) = match spec.split_once('/') {
        Some((a, b)) => (a, Some(b.parse::<u32>().ok()?)),
        None => (spec, None),
    };
    let ip: IpAddr = addr.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(max);
    (bits <= max).then_some((ip, bits))
}

fn ip_valid(spec: &str) -> bool {
    parse_cidr(spec).is_some()
}

/// An `ip` ACL id is an address or address/bits; the client's id is its address.
fn ip_matches(client: &str, spec: &str) -> bool {
    let (Ok(c), Some((net, bits))) = (client.parse::<IpAddr>(), parse_cidr(spec)) else {
        return false;
    };
    match (c, net) {
        (IpAddr::V4(c), IpAddr::V4(n)) => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(c) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(c), IpAddr::V6(n)) => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(c) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keeper_proto::Perms;

    fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl { perms, id: Id { scheme: scheme.into(), id: id.into() } }
    }

    #[test]
    fn digest_matches_zookeeper() {
        // The value ZooKeeper's DigestAuthenticationProvider.generateDigest gives for super:test.
        assert_eq!(digest_id("super:test"), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
    }

    #[test]
    fn checks() {
        let ip = Id { scheme: "ip".into(), id: "127.0.0.1".into() };
        let me = Id { scheme: "digest".into(), id: digest_id("u:p") };
        let a = vec![acl(Perms::READ, "digest", &digest_id("u:p")), acl(Perms::ALL, "ip", "10.0.0.0/8")];
        assert!(allowed(&a, &[ip.clone(), me.clone()], Perms::READ));
        assert!(!allowed(&a, &[ip.clone(), me.clone()], Perms::WRITE));
        assert!(!allowed(&a, &[ip], Perms::READ));
        let ten = Id { scheme: "ip".into(), id: "10.1.2.3".into() };
        assert!(allowed(&a, &[ten], Perms::DELETE));
        assert!(allowed(&a, &[super_id()], Perms::ADMIN));
    }

    #[test]
    fn fixup_expands_auth_and_refuses_bad_ids() {
        let me = Id { scheme: "digest".into(), id: digest_id("u:p") };
        let out = fixup(&[acl(Perms::ALL, "auth", "")], std::slice::from_ref(&me)).unwrap();
        assert_eq!(out, vec![Acl { perms: Perms::ALL, id: me }]);
        assert_eq!(fixup(&[acl(Perms::ALL, "auth", "")], &[]), Err(ErrorCode::InvalidAcl));
        assert_eq!(fixup(&[], &[]), Err(ErrorCode::InvalidAcl));
        assert_eq!(fixup(&[acl(1, "world", "everyone")], &[]), Err(ErrorCode::InvalidAcl));
        assert_eq!(fixup(&[acl(1, "ip", "1.2.3.4/40")], &[]), Err(ErrorCode::InvalidAcl));
        assert_eq!(fixup(&[acl(1, "nope", "x")], &[]), Err(ErrorCode::InvalidAcl));
        assert_eq!(fixup(&[acl(1, "super", "")], &[]), Err(ErrorCode::InvalidAcl));
        assert_eq!(fixup(&[acl(1, "digest", "user:")], &[]), Err(ErrorCode::InvalidAcl));
        assert_eq!(fixup(&[acl(1, "digest", "a:b:c")], &[]), Err(ErrorCode::InvalidAcl));
        let twice = [acl(1, "world", "anyone"), acl(1, "world", "anyone")];
        assert_eq!(fixup(&twice, &[]).unwrap().len(), 1);
    }
}
