//! herd's keeper: a coordination server that speaks the ZooKeeper 3.8 client protocol.
//!
//! The keeper promises ZooKeeper's guarantees to unmodified ZooKeeper clients: a write is
//! acknowledged only after its log entry is fsynced, replies come in request order, a client sees
//! a watch event before the data that follows it, and restarting from the log and snapshots gives
//! back exactly the acknowledged state.
//!
//! Layout: [`tree`] is the deterministic state machine and [`txn`] its log entries; [`wal`] and
//! [`snapshot`] make it durable; [`core`] is the actor that owns the tree, sessions and watches;
//! [`server`] runs the client ports (connections, framing, four-letter words); [`tls`] sets up
//! the TLS one (key stores, client certificates); [`config`] reads herd's flags and ZooKeeper's
//! zoo.cfg.

pub mod acl;
pub mod config;
pub mod core;
pub mod ensemble;
pub mod fourlw;
pub mod path;
pub mod reconfig;
pub mod server;
pub mod snapshot;
pub mod tls;
pub mod tree;
pub mod txn;
pub mod wal;
pub mod watch;
