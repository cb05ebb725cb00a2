//! `herd zk ...`: client commands over the ZooKeeper protocol.

use anyhow::Context;
use clap::{Args, Subcommand};
use keeper_proto::client::{four_letter_word, SyncClient};
use std::net::{SocketAddr, ToSocketAddrs};

#[derive(Args)]
pub struct ZkArgs {
    /// Server address, host:port.
    #[arg(long, short = 's', default_value = "127.0.0.1:2181", env = "HERD_ZK_SERVER")]
    server: String,
    /// Authenticate first: SCHEME:CREDENTIALS, e.g. `digest:super:secret`.
    #[arg(long, env = "HERD_ZK_AUTH")]
    auth: Option<String>,
    #[command(subcommand)]
    cmd: ZkCmd,
}

#[derive(Subcommand)]
enum ZkCmd {
    /// Create a znode; prints the created path.
    Create {
        path: String,
        #[arg(default_value = "")]
        data: String,
        #[arg(long, short = 'e')]
        ephemeral: bool,
        #[arg(long, short = 's')]
        sequential: bool,
    },
    /// Print a znode's data.
    Get { path: String },
    /// Replace a znode's data.
    Set {
        path: String,
        data: String,
        #[arg(long, default_value_t = -1)]
        version: i32,
    },
    /// Delete a znode.
    Delete {
        path: String,
        #[arg(long, default_value_t = -1)]
        version: i32,
    },
    /// List a znode's children.
    Ls { path: String },
    /// Print a znode's stat.
    Stat { path: String },
    /// Send a four-letter word (ruok, srvr, stat, mntr, ...).
    Word { word: String },
    /// Change the ensemble's members (ZooKeeper's reconfig; needs reconfigEnabled and a super
    /// user, see --auth); prints the new configuration.
    Reconfig {
        /// Servers joining, e.g. `server.4=127.0.0.1:2891:3891:participant;2184` (repeatable).
        #[arg(long)]
        add: Vec<String>,
        /// Ids of servers leaving (repeatable).
        #[arg(long)]
        remove: Vec<String>,
        /// Only if the configuration's version is still this (hex, as printed after `version=`).
        #[arg(long)]
        from_config: Option<String>,
    },
}

pub fn run(a: ZkArgs) -> anyhow::Result<()> {
    let addr: SocketAddr = a
        .server
        .to_socket_addrs()
        .with_context(|| format!("resolving {}", a.server))?
        .next()
        .with_context(|| format!("{} has no address", a.server))?;
    if let ZkCmd::Word { word } = &a.cmd {
        print!("{}", four_letter_word(addr, word)?);
        return Ok(());
    }
    let mut c = SyncClient::connect(addr, 10_000, None).with_context(|| format!("connecting to {addr}"))?;
    let r: anyhow::Result<()> = (|| {
        if let Some(auth) = &a.auth {
            let (scheme, cred) = auth.split_once(':').context("--auth: expected SCHEME:CREDENTIALS")?;
            c.add_auth(scheme, cred.as_bytes())?;
        }
        match a.cmd {
            ZkCmd::Create { path, data, ephemeral, sequential } => {
                let flags = (ephemeral as i32) | ((sequential as i32) << 1);
                println!("{}", c.create(&path, data.as_bytes(), flags)?);
            }
            ZkCmd::Get { path } => println!("{}", String::from_utf8_lossy(&c.get(&path, false)?.0)),
            ZkCmd::Set { path, data, version } => {
                c.set(&path, data.as_bytes(), version)?;
            }
            ZkCmd::Delete { path, version } => c.delete(&path, version)?,
            ZkCmd::Ls { path } => {
                for child in c.children(&path, false)? {
                    println!("{child}");
                }
            }
            ZkCmd::Stat { path } => match c.exists(&path, false)? {
                Some(s) => println!("{s:#?}"),
                None => anyhow::bail!("{path}: no node"),
            },
            ZkCmd::Reconfig { add, remove, from_config } => {
                let from = match from_config {
                    Some(v) => i64::from_str_radix(v.trim_start_matches("0x"), 16)
                        .with_context(|| format!("--from-config {v}: not a hex version"))?,
                    None => -1,
                };
                let (data, _) = c.reconfig(&add.join(","), &remove.join(","), "", from)?;
                println!("{}", String::from_utf8_lossy(&data));
            }
            ZkCmd::Word { .. } => unreachable!(),
        }
        Ok(())
    })();
    let _ = c.close();
    r
}
