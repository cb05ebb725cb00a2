//! The ensemble's dynamic configuration, as ZooKeeper keeps it in `/zookeeper/config`:
//! `server.N=host:peerPort:electionPort:participant|observer[;[clientHost:]clientPort]` lines and a
//! last line `version=<hex zxid of the change>`. It is replicated state (changed only by log
//! entries), and the leader makes raft's membership follow it (`ensemble.rs`).

use keeper_proto::{ErrorCode, ReconfigRequest};
use std::collections::BTreeMap;

pub const CONFIG_NODE: &str = "/zookeeper/config";

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnsembleConfig {
    /// Server id -> its spec, as ZooKeeper prints it after `server.N=`.
    pub servers: BTreeMap<u64, String>,
    pub version: i64,
}

/// One server's spec, checked: `host:port:port[:type][;[host:]port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSpec {
    pub host: String,
    pub peer_port: u16,
    pub observer: bool,
    pub has_client: bool,
}

pub fn parse_spec(spec: &str) -> Option<ServerSpec> {
    let (addr, client) = match spec.split_once(';') {
        Some((a, c)) => (a, Some(c)),
        None => (spec, None),
    };
    let mut parts: Vec<&str> = addr.split(':').map(str::trim).collect();
    let kind = match parts.last() {
        Some(k @ (&"participant" | &"observer")) => {
            let k = *k;
            parts.pop();
            k
        }
        _ => "participant",
    };
    // host:peerPort:electionPort, or host:peerPort (herd's --peer has no election port).
    let (host, peer, election) = match parts.as_slice() {
        [h, p] => (*h, *p, None),
        [h, p, e] => (*h, *p, Some(*e)),
        _ => return None,
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return None;
    }
    let peer_port: u16 = peer.parse().ok()?;
    if let Some(e) = election {
        let _: u16 = e.parse().ok()?;
    }
    let observer = match kind {
        "participant" => false,
        "observer" => true,
        _ => return None,
    };
    if let Some(c) = client {
        let port = c.rsplit(':').next()?.trim();
        let _: u16 = port.parse().ok()?;
    }
    Some(ServerSpec { host: host.to_owned(), peer_port, observer, has_client: client.is_some() })
}

/// A spec as stored: the type made explicit, as ZooKeeper prints it.
fn normalized(spec: &str) -> String {
    let spec = spec.trim();
    let (addr, client) = match spec.split_once(';') {
        Some((a, c)) => (a, Some(c)),
        None => (spec, None),
    };
    let mut out = addr.to_owned();
    if !addr.ends_with(":participant") && !addr.ends_with(":observer") {
        out.push_str(":participant");
    }
    if let Some(c) = client {
        out.push(';');
        out.push_str(c);
    }
    out
}

impl EnsembleConfig {
    /// Reads the node's text; `None` for an empty node (not yet set).
    pub fn parse(text: &str) -> Option<EnsembleConfig> {
        let mut c = EnsembleConfig::default();
        let mut any = false;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let (k, v) = line.split_once('=')?;
            if k == "version" {
                c.version = i64::from_str_radix(v, 16).ok()?;
                any = true;
            } else if let Some(id) = k.strip_prefix("server.") {
                c.servers.insert(id.parse().ok()?, v.to_owned());
                any = true;
            }
        }
        any.then_some(c)
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        for (id, spec) in &self.servers {
            s.push_str(&format!("server.{id}={spec}\n"));
        }
        s.push_str(&format!("version={:x}", self.version));
        s
    }

    /// Voters and observers with their peer (replication) addresses.
    pub fn members(&self) -> (BTreeMap<u64, String>, BTreeMap<u64, String>) {
        let mut voters = BTreeMap::new();
        let mut observers = BTreeMap::new();
        for (id, spec) in &self.servers {
            if let Some(s) = parse_spec(spec) {
                let addr = format!("{}:{}", s.host, s.peer_port);
                if s.observer {
                    observers.insert(*id, addr);
                } else {
                    voters.insert(*id, addr);
                }
            }
        }
        (voters, observers)
    }

    /// The initial configuration from the static `server.N` lines.
    pub fn from_static(servers: &[(u64, String)]) -> EnsembleConfig {
        EnsembleConfig { servers: servers.iter().map(|(id, s)| (*id, normalized(s))).collect(), version: 0 }
    }

    /// ZooKeeper's reconfig (PrepRequestProcessor): a whole new member list, or servers joining
    /// and leaving; BadVersion when `cur_config_id` is given and stale, BadArguments for a
    /// malformed server or a result with fewer than two voters.
    pub fn next(&self, r: &ReconfigRequest) -> Result<EnsembleConfig, ErrorCode> {
        if r.cur_config_id != -1 && r.cur_config_id != self.version {
            return Err(ErrorCode::BadVersion);
        }
        let mut servers = if r.new_members.is_empty() { self.servers.clone() } else { BTreeMap::new() };
        let server_line = |line: &str| -> Result<(u64, String), ErrorCode> {
            let (k, v) = line.split_once('=').ok_or(ErrorCode::BadArguments)?;
            let id = k.trim().rsplit('.').next().and_then(|n| n.parse().ok()).ok_or(ErrorCode::BadArguments)?;
            let spec = parse_spec(v.trim()).ok_or(ErrorCode::BadArguments)?;
            if !spec.has_client {
                // "each server should have 3 ports specified"
                return Err(ErrorCode::BadArguments);
            }
            Ok((id, normalized(v)))
        };
        if !r.new_members.is_empty() {
            for line in r.new_members.split([',', '\n']).map(str::trim).filter(|l| !l.is_empty()) {
                if line.starts_with("version=") {
                    continue;
                }
                let (id, spec) = server_line(line)?;
                servers.insert(id, spec);
            }
        } else {
            for leaving in r.leaving_servers.split(',').map(str::trim).filter(|l| !l.is_empty()) {
                let id: u64 = leaving.parse().map_err(|_| ErrorCode::BadArguments)?;
                servers.remove(&id);
            }
            for joining in r.joining_servers.split(',').map(str::trim).filter(|l| !l.is_empty()) {
                let (id, spec) = server_line(joining)?;
                servers.insert(id, spec);
            }
        }
        let next = EnsembleConfig { servers, version: self.version };
        if next.members().0.len() < 2 {
            return Err(ErrorCode::BadArguments);
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(joining: &str, leaving: &str, new_members: &str, cur: i64) -> ReconfigRequest {
        ReconfigRequest {
            joining_servers: joining.into(),
            leaving_servers: leaving.into(),
            new_members: new_members.into(),
            cur_config_id: cur,
        }
    }

    #[test]
    fn join_leave_and_versions() {
        let c = EnsembleConfig::from_static(&[
            (1, "localhost:20001:20002".into()),
            (2, "localhost:20011:20012:participant".into()),
            (3, "localhost:20021:20022;20020".into()),
        ]);
        assert_eq!(c.servers[&1], "localhost:20001:20002:participant");
        assert_eq!(c.servers[&3], "localhost:20021:20022:participant;20020");
        let flags = EnsembleConfig::from_static(&[(1, "127.0.0.1:7001".into()), (2, "127.0.0.1:7002".into())]);
        assert_eq!(flags.servers[&1], "127.0.0.1:7001:participant");
        assert_eq!(flags.members().0[&2], "127.0.0.1:7002");
        let back = EnsembleConfig::parse(&c.render()).unwrap();
        assert_eq!(back, c);
        let joiner = "server.100=0.0.0.0:1:2:observer;0.0.0.0:3";
        let mut n = c.next(&req(joiner, "", "", -1)).unwrap();
        n.version = 0x1f;
        assert!(n.render().contains(joiner));
        assert!(n.render().ends_with("version=1f"));
        assert_eq!(n.members().1.keys().copied().collect::<Vec<_>>(), vec![100]);
        let n2 = n.next(&req("", "100", "", 0x1f)).unwrap();
        assert!(!n2.render().contains("server.100"));
        assert_eq!(n.next(&req(joiner, "", "", 0x20)), Err(ErrorCode::BadVersion));
        assert_eq!(c.next(&req("some thing", "", "", -1)), Err(ErrorCode::BadArguments));
        assert_eq!(c.next(&req("server.4=h:1:2", "", "", -1)), Err(ErrorCode::BadArguments), "no client port");
        assert_eq!(c.next(&req("", "1,2", "", -1)), Err(ErrorCode::BadArguments), "one voter left");
        let whole = c.next(&req("", "", "server.1=a:1:2;3,server.2=b:1:2;3", -1)).unwrap();
        assert_eq!(whole.servers.len(), 2);
    }
}
