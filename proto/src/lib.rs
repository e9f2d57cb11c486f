//! The wire contract, `contactpoint.v1`: the Schedule 1 record and the node's
//! service, generated from `proto/contactpoint/v1/*.proto`. Proto types stop
//! at the servers' handlers; nothing below them sees these types.

pub mod identifier;

/// Version 1 of the contract.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("contactpoint.v1");

    /// The encoded descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("contactpoint_descriptor");
}

#[cfg(feature = "sample")]
pub mod sample;
