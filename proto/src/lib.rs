//! The wire contract, `contactpoint.v1`: the Schedule 1 record and the node's
//! service, generated from `proto/contactpoint/v1/*.proto`. Proto types stop
//! at the servers' handlers; nothing below them sees these types.

pub mod audit;
pub mod identifier;
pub mod limits;

/// A search's parameters as the node and the gateway audit them (RULES.md:
/// every access is audited with the query's parameters): JSON, with what
/// was asked as it was typed.
pub fn search_parameters(request: &v1::SearchRecordsRequest) -> String {
    let date_of_birth = request
        .date_of_birth
        .as_ref()
        .map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day));
    let gender = v1::Gender::try_from(request.gender)
        .map(|gender| gender.as_str_name().to_owned())
        .unwrap_or_else(|_| request.gender.to_string());
    serde_json::json!({
        "surname": request.surname,
        "forename": request.forename,
        "date_of_birth": date_of_birth,
        "postcode": request.postcode,
        "gender": gender,
        "limit": request.limit,
        "mode": v1::MatchMode::try_from(request.mode)
            .map(|mode| mode.as_str_name().to_owned())
            .unwrap_or_else(|_| request.mode.to_string()),
        "year_of_birth": request.year_of_birth,
    })
    .to_string()
}

/// Version 1 of the contract.
pub mod v1 {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("contactpoint.v1");
    include!(concat!(env!("OUT_DIR"), "/contactpoint.v1.serde.rs"));

    /// The encoded descriptor set, for server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("contactpoint_descriptor");
}

#[cfg(feature = "sample")]
pub mod sample;
