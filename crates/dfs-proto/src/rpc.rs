//! Control RPC framing, from the `rpc` crate (where its byte layout is documented),
//! re-exported under its old path, and the file system's own [`Protocol`]: the two protocols a
//! NameNode speaks.
//!
//! The `rpc` crate's [`::rpc::Protocol`] lists every herd protocol, the compute ones too; a
//! NameNode that matched on it would have to answer those. This narrower enum keeps the
//! NameNode's `match` exhaustive over what it serves, and refuses a preamble naming another
//! protocol as it refuses an unknown one.

pub use ::rpc::frame::{
    encode_frame, frame_len, read_frame, read_message, split_frame, write_message, FrameError, RemoteError, Request,
    RequestHeader, Response, MAGIC, MAX_FRAME_LEN, VERSION,
};

use crate::codec::DecodeError;

/// Which file system protocol a connection speaks, named by its preamble (ids as
/// [`::rpc::Protocol`]'s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    ClientNamenode,
    DatanodeNamenode,
}

impl From<Protocol> for ::rpc::Protocol {
    fn from(p: Protocol) -> ::rpc::Protocol {
        match p {
            Protocol::ClientNamenode => ::rpc::Protocol::ClientNamenode,
            Protocol::DatanodeNamenode => ::rpc::Protocol::DatanodeNamenode,
        }
    }
}

impl TryFrom<::rpc::Protocol> for Protocol {
    type Error = DecodeError;

    fn try_from(p: ::rpc::Protocol) -> Result<Protocol, DecodeError> {
        match p {
            ::rpc::Protocol::ClientNamenode => Ok(Protocol::ClientNamenode),
            ::rpc::Protocol::DatanodeNamenode => Ok(Protocol::DatanodeNamenode),
            other => Err(DecodeError::UnknownTag { what: "file system protocol", tag: other.id() }),
        }
    }
}

impl Protocol {
    /// The six bytes a connection starts with.
    pub fn preamble(self) -> [u8; 6] {
        ::rpc::Protocol::from(self).preamble()
    }

    /// Checks a received preamble; a herd protocol other than the file system's is refused.
    pub fn from_preamble(b: [u8; 6]) -> Result<Protocol, DecodeError> {
        ::rpc::Protocol::from_preamble(b)?.try_into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_system_preambles_round_trip_and_compute_ones_are_refused() {
        for p in [Protocol::ClientNamenode, Protocol::DatanodeNamenode] {
            assert_eq!(Protocol::from_preamble(p.preamble()).unwrap(), p);
            assert_eq!(::rpc::Protocol::from_preamble(p.preamble()).unwrap(), p.into());
        }
        assert_eq!(Protocol::ClientNamenode.preamble(), *b"HERD\x01\x01");
        assert_eq!(Protocol::DatanodeNamenode.preamble(), *b"HERD\x01\x02");
        for p in ::rpc::Protocol::ALL {
            let narrowed = Protocol::from_preamble(p.preamble());
            let fs = matches!(p, ::rpc::Protocol::ClientNamenode | ::rpc::Protocol::DatanodeNamenode);
            assert_eq!(narrowed.is_ok(), fs, "{p:?}");
        }
        assert!(Protocol::from_preamble(*b"GET / ").is_err());
    }
}
