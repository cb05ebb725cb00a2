//! The compute engine's wire types: the five protocols between the client, the
//! ResourceManager, NodeManagers, ApplicationMasters and tasks, the ids they name things by,
//! and the container tokens that let a NodeManager trust an allocation, as bytes. Names are
//! YARN's and MapReduce's where they have one.
//!
//! What it promises:
//! - **Total decoding**, canonical encoding and frame limits, as the `rpc` crate whose codec
//!   and framing every message here uses: bytes from the network decode to a value or a
//!   `DecodeError`, never a panic. Values with limits (a container id's 24-bit epoch and
//!   40-bit number, a progress of at most 1) are refused on decode past them.
//! - **Ids print as Hadoop's** (`application_<ts>_<seq:04>`, `container_e<epoch>_...`,
//!   `attempt_<ts>_<seq:04>_m_<index:06>_<n>`) and parse back.
//! - **Tokens**: HMAC-SHA256 over a canonical encoding, checked in constant time.
//! - **Light**: std, `thiserror`, `sha2` and herd's `rpc`; clients and tasks link it alone.
//!
//! Layout: [`ids`] and [`records`] (resources, states, statuses, reports, launch contexts) are
//! shared; [`token`] the container token; one module per protocol, each one request enum and
//! one response enum, with the preamble id `rpc::Protocol` gives it: [`client_rm`]
//! (`ApplicationClientProtocol`, 3), [`am_rm`] (`ApplicationMasterProtocol`, 4), [`nm_rm`]
//! (`ResourceTracker`, 5), [`am_nm`] (`ContainerManagementProtocol`, 6), [`umbilical`]
//! (`TaskUmbilicalProtocol`, 7); [`errors`] the exception class names. Each module's doc says
//! which response answers which request.

pub mod am_nm;
pub mod am_rm;
pub mod client_rm;
pub mod errors;
pub mod ids;
pub mod nm_rm;
pub mod records;
pub mod token;
pub mod umbilical;

pub use am_nm::{ContainerManagementRequest, ContainerManagementResponse};
pub use am_rm::{ApplicationMasterRequest, ApplicationMasterResponse};
pub use client_rm::{ApplicationClientRequest, ApplicationClientResponse};
pub use ids::{
    ApplicationAttemptId, ApplicationId, ContainerId, NodeId, ParseIdError, TaskAttemptId, TaskId, TaskType,
};
pub use nm_rm::{ResourceTrackerRequest, ResourceTrackerResponse};
pub use records::{exit_status, Container, ContainerStatus, Progress, Resource};
pub use token::ContainerToken;
pub use umbilical::{UmbilicalRequest, UmbilicalResponse};

#[cfg(test)]
mod ids_test;
#[cfg(test)]
mod wire_test;
