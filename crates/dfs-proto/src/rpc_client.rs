//! The blocking control-RPC client, from the `rpc` crate: re-exported under its old path.
//! [`RpcClient::new`] takes this crate's [`crate::rpc::Protocol`] (or the `rpc` crate's).

pub use ::rpc::client::*;
