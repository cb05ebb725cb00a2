//! The binary codec, from the `rpc` crate (where its byte layout is documented): re-exported
//! under its old path so that the file system's crates name it as before.

pub use ::rpc::codec::*;
