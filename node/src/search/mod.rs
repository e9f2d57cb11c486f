//! Search (regulation 9; Schedules 2 and 3): a practitioner or national
//! partner finding a child whose identifier they do not know, from a surname
//! (current or former) and a date of birth, narrowed by forename, postcode
//! and gender, ranked best first. The gateway asks the nodes and merges.
//!
//! Two modes. EXACT (the default) finds the surname's key and the date of
//! birth or postcode exactly as asked. TOLERANT finds a child despite what a
//! telephone call garbles (a surname misheard or misspelt, a nickname, a day
//! and month swapped, only the year known): PostgreSQL's fuzzystrmatch and
//! pg_trgm find the candidates through indexes (`store`), and
//! `contactpoint_matching` scores each by how its fields agree, the
//! Fellegi–Sunter match weight, with the agreements that explain it.
//!
//! Invariants: a search states a reason and is audited with its parameters
//! and the records it returned; a search too vague to find one child is
//! refused, saying what to add; it never matches a shielded record on a
//! hidden field (its postcode) nor shows one, except to the responsible
//! authority's management team, who also see archived records; records
//! staged by a transfer in are not found; results are capped (`limit`, at
//! most 100).

pub mod keys;
mod store;

use chrono::{Datelike, NaiveDate};
use contactpoint_matching::Agreement;
use contactpoint_policy::Right;
use contactpoint_proto::v1 as pb;
use tonic::Request;
use tonic::Response;
use tonic::Status;

use crate::error::Invalid;
use crate::identifier::RecordId;
use crate::model::*;
use crate::records::wire::{encode_authority, encode_name};
use crate::search::keys::{canonical_postcode, forenames_key, surname_key};
use crate::service::{Method, NodeService};
use crate::wire::WireEnum;
use crate::wire::{encode_date, optional_date};
use contactpoint_matching::keys::search_postcode;

/// Default and largest number of search matches.
const DEFAULT_SEARCH_LIMIT: u32 = 20;
const MAX_SEARCH_LIMIT: u32 = 100;

/// How closely a record must agree with the search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchMode {
    /// The surname's key and the date of birth or postcode, exactly.
    Exact,
    /// Despite errors, scored (see the module's doc).
    Tolerant,
}

/// A local search: surname plus a date of birth, postcode or (tolerant) a
/// year of birth or forename.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    pub mode: MatchMode,
    /// The surname as asked.
    pub surname: String,
    /// Search key of the surname (see `keys::surname_key`).
    pub surname_key: String,
    /// Search key of a forename prefix.
    pub forename_key: Option<String>,
    /// Records of this gender, or recorded as not specified.
    pub gender: Option<Gender>,
    pub date_of_birth: Option<NaiveDate>,
    /// Only the year of birth is known (tolerant only).
    pub year_of_birth: Option<i32>,
    /// Canonical postcode (a tolerant search: or its sector or district).
    pub postcode: Option<String>,
    pub limit: u32,
    /// The reader may see shielded records' hidden fields (the responsible
    /// authority's management team): only then may a postcode match one.
    pub reveal_shielded: bool,
    /// The reader may find archived records (data managers in their first year).
    pub include_archived: bool,
}

/// One search result.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchMatch {
    pub id: RecordId,
    pub name: PersonName,
    pub gender: Gender,
    pub date_of_birth: NaiveDate,
    pub postcode: Option<String>,
    pub responsible_authority: ResponsibleAuthority,
    /// Shielded: the postcode is withheld from this reader.
    pub shielded: bool,
    pub score: u32,
    /// The Fellegi–Sunter match weight, in bits.
    pub match_weight: f64,
    /// How each field asked agreed.
    pub agreements: Vec<Agreement>,
}

pub(crate) async fn search_records(
    node: &NodeService,
    request: Request<pb::SearchRecordsRequest>,
) -> Result<Response<pb::SearchRecordsResponse>, Status> {
    let mut caller = node.caller(&request)?;
    let reason_stated = caller.state_reason(&request.get_ref().reason);
    caller.query = Some(contactpoint_proto::search_parameters(request.get_ref()));
    let result = async {
        let role = node.require(&caller, Right::Search)?;
        let mut query = decode_search(request.get_ref())?;
        reason_stated?;
        query.reveal_shielded = role.is_management_of(&node.store.authority().code);
        query.include_archived = query.reveal_shielded;
        node.store.search(&query).await
    }
    .await;
    let ids = result
        .as_ref()
        .map(|found| found.iter().map(|m| m.id.to_string()).collect())
        .unwrap_or_default();
    let response = result.map(|found| pb::SearchRecordsResponse {
        matches: found.iter().map(encode_match).collect(),
    });
    node.finish(&caller, Method::SearchRecords, ids, response)
        .await
}

pub fn decode_search(request: &pb::SearchRecordsRequest) -> Result<SearchQuery, Invalid> {
    contactpoint_proto::limits::check_search(request)
        .map_err(|(field, reason)| Invalid::new(field, reason))?;
    let mode = match pb::MatchMode::try_from(request.mode) {
        Ok(pb::MatchMode::Unspecified | pb::MatchMode::Exact) => MatchMode::Exact,
        Ok(pb::MatchMode::Tolerant) => MatchMode::Tolerant,
        Err(_) => {
            return Err(Invalid::new(
                "mode",
                "is not a match mode: EXACT or TOLERANT",
            ))
        }
    };
    let surname_key = surname_key(&request.surname);
    if surname_key.is_empty() {
        return Err(Invalid::new(
            "surname",
            "is required: a search names the child's surname",
        ));
    }
    let date_of_birth = optional_date(request.date_of_birth.as_ref(), "date_of_birth")?;
    let year_of_birth = match request.year_of_birth {
        0 => None,
        _ if mode == MatchMode::Exact => {
            return Err(Invalid::new(
                "year_of_birth",
                "is for a TOLERANT search: an exact search needs the whole date of birth",
            ))
        }
        _ if date_of_birth.is_some() => {
            return Err(Invalid::new(
                "year_of_birth",
                "is for when the date of birth is not known: give one or the other",
            ))
        }
        year => Some(
            i32::try_from(year)
                .ok()
                .filter(|year| (1900..=chrono::Utc::now().year()).contains(year))
                .ok_or_else(|| {
                    Invalid::new(
                        "year_of_birth",
                        "is not a year a child now living was born in",
                    )
                })?,
        ),
    };
    let postcode = match (request.postcode.trim(), mode) {
        ("", _) => None,
        (typed, MatchMode::Exact) => Some(canonical_postcode(typed).ok_or_else(|| {
            Invalid::new("postcode", "is not a UK postcode (for example SW1A 1AA)")
        })?),
        (typed, MatchMode::Tolerant) => Some(search_postcode(typed).ok_or_else(|| {
            Invalid::new("postcode", "is not a UK postcode, nor its district or sector (for example SW1A 1AA, SW1A 1 or SW1A)")
        })?),
    };
    let forename_key = Some(forenames_key(&request.forename)).filter(|key| !key.is_empty());
    match mode {
        MatchMode::Exact if date_of_birth.is_none() && postcode.is_none() => {
            return Err(Invalid::new("date_of_birth", "a search needs a date of birth or a postcode beside the surname, to find a child rather than list children"));
        }
        MatchMode::Tolerant if surname_key.chars().count() < 2 => {
            return Err(Invalid::new("surname", "needs two letters or more: a tolerant search on one letter would list children rather than find one"));
        }
        MatchMode::Tolerant
            if date_of_birth.is_none()
                && year_of_birth.is_none()
                && postcode.is_none()
                && forename_key
                    .as_ref()
                    .is_none_or(|key| key.chars().count() < 2) =>
        {
            return Err(Invalid::new("date_of_birth", "a tolerant search needs a date of birth, a year of birth, a postcode or a forename (two letters or more) beside the surname, to find a child rather than list children"));
        }
        _ => {}
    }
    let limit = match request.limit {
        0 => DEFAULT_SEARCH_LIMIT,
        n => n.min(MAX_SEARCH_LIMIT),
    };
    let gender = match request.gender {
        0 => None,
        value => Some(Gender::decode(value, "gender")?),
    };
    Ok(SearchQuery {
        mode,
        surname: request.surname.trim().to_owned(),
        surname_key,
        forename_key,
        gender,
        date_of_birth,
        year_of_birth,
        postcode,
        limit,
        reveal_shielded: false,
        include_archived: false,
    })
}

pub fn encode_match(found: &SearchMatch) -> pb::SearchMatch {
    pb::SearchMatch {
        id: found.id.to_string(),
        name: Some(encode_name(&found.name)),
        gender: found.gender.encode(),
        date_of_birth: Some(encode_date(found.date_of_birth)),
        postcode: found.postcode.clone().unwrap_or_default(),
        responsible_authority: Some(encode_authority(&found.responsible_authority)),
        score: found.score,
        shielded: found.shielded,
        match_weight: found.match_weight,
        agreements: found
            .agreements
            .iter()
            .map(|agreement| pb::FieldAgreement {
                field: agreement.field.as_str().to_owned(),
                level: agreement.level.to_owned(),
                weight: agreement.weight,
                description: agreement.field.describe(agreement.level).to_owned(),
            })
            .collect(),
    }
}
