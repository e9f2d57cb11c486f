//! The search's SQL at a node, and its ranking of what it finds.
//!
//! EXACT: the surname's key (current or former) with the date of birth or
//! postcode, through btree indexes, ranked as before tolerant matching was
//! added. TOLERANT: candidates are any record whose surname (current or
//! former, whole or a part) has the asked key, shares a part, sounds alike
//! (Double Metaphone codes overlap, `name_codes`) or is trigram-similar
//! (pg_trgm's `%`), each through its own GIN index, and any record born on
//! the date asked (or with day and month swapped) when a forename is given,
//! for a surname that changed or was misheard past recognition; a candidate
//! must then agree with something else asked well enough to count (two of
//! the date's year, month and day, or day and month swapped; the year when
//! only that is asked; a forename sounding alike, a nickname or within one
//! letter; the postcode's district), and is scored in
//! `contactpoint_matching`.

use chrono::{Datelike, NaiveDate};
use contactpoint_matching::{nicknames::Nicknames, score, Asked, Candidate, Weights};
use tokio_postgres::types::Type;
use tokio_postgres::Row;

use crate::error::NodeError;
use crate::identifier::RecordId;
use crate::model::*;
use crate::search::{MatchMode, SearchMatch, SearchQuery};
use crate::store::{from_db, Result, Store};

/// Most candidates a tolerant search scores: a search asking for so much
/// (a common surname and a forename's initial at a large authority) that it
/// finds more is capped here before scoring.
const MAX_CANDIDATES: i64 = 5000;

/// A tolerant match is shown only with at least this weight, in bits (odds
/// 16 times better than for a child drawn at random): what agrees must
/// outweigh what disagrees, so a search does not list children it did not
/// find.
pub const MIN_TOLERANT_WEIGHT: f64 = 4.0;

/// A tolerant search's candidates; see the module's doc. $1 the surname
/// asked, $2 its key, $3 dates of birth on which any surname is a candidate,
/// $4 the date of birth asked, $5 the year, $6 the first forename's key, $7
/// its nicknames and variants, $8 the postcode, $9 archived records too, $10
/// shielded records' postcodes too, $11 at most so many.
const TOLERANT_SEARCH: &str =
    "SELECT r.id, r.given_names, r.family_name, r.given_names_key, r.family_name_key,
        r.gender, r.date_of_birth, r.postcode, r.shield_reason,
        r.responsible_authority_code, r.responsible_authority_name,
        coalesce(former.names, '{}') AS former_family_names,
        r.family_name_codes && name_codes($1) OR coalesce(former.sounds_alike, false)
            AS surname_sounds_alike,
        coalesce(r.given_names_codes && name_codes($6), false) AS forename_sounds_alike
 FROM child_record r
 LEFT JOIN LATERAL (
     SELECT array_agg(f.family_name ORDER BY f.position) AS names,
            bool_or(f.family_name_codes && name_codes($1)) AS sounds_alike
     FROM former_name f WHERE f.record_id = r.id) former ON true
 -- Each way in through its own index, in one bitmap: no
 -- candidate is read twice.
 WHERE (r.family_name_key = $2
        OR r.family_name_parts && name_parts($1)
        OR r.family_name_codes && name_codes($1)
        OR r.family_name_key % $2
        OR r.id = ANY (ARRAY(
               SELECT f.record_id FROM former_name f
               WHERE f.family_name_key = $2 OR f.family_name_parts && name_parts($1)
                  OR f.family_name_codes && name_codes($1) OR f.family_name_key % $2))
        OR r.date_of_birth = ANY ($3))
   AND r.status <> 'arriving'
   AND (r.archived_on IS NULL OR $9)
   -- Something else must agree well enough to count for the
   -- child: two of the date's year, month and day (so also
   -- one digit wrong), or day and month swapped; the year
   -- when only that is asked; a forename that sounds alike,
   -- is a nickname or is within one letter; the postcode's
   -- district.
   AND (($4::date IS NOT NULL
         AND ((date_part('year', r.date_of_birth) = date_part('year', $4))::int
              + (date_part('month', r.date_of_birth) = date_part('month', $4))::int
              + (date_part('day', r.date_of_birth) = date_part('day', $4))::int >= 2
              OR r.date_of_birth = ANY ($3)))
        OR ($5::int IS NOT NULL AND date_part('year', r.date_of_birth) = $5)
        OR ($6::text IS NOT NULL
            AND (r.given_names_codes && name_codes($6)
                 OR string_to_array(r.given_names_key, ' ') && $7
                 OR levenshtein_less_equal(split_part(r.given_names_key, ' ', 1), $6, 1) <= 1))
        OR ($8::text IS NOT NULL AND r.postcode IS NOT NULL
            AND split_part(r.postcode, ' ', 1) = split_part($8, ' ', 1)
            AND (r.shield_reason IS NULL OR $10)))
 LIMIT $11";

impl Store {
    /// Local search; see `SearchQuery`. Ranked best first.
    pub async fn search(&self, query: &SearchQuery) -> Result<Vec<SearchMatch>> {
        let mut matches = match query.mode {
            MatchMode::Exact => self.search_exact(query).await?,
            MatchMode::Tolerant => self.search_tolerant(query).await?,
        };
        matches.sort_by(|a, b| {
            b.score
                .cmp(&a.score)
                .then_with(|| b.match_weight.total_cmp(&a.match_weight))
                .then_with(|| a.id.as_str().cmp(b.id.as_str()))
        });
        matches.truncate(query.limit as usize);
        Ok(matches)
    }

    async fn search_exact(&self, query: &SearchQuery) -> Result<Vec<SearchMatch>> {
        let client = self.pool.get().await?;
        let rows = client
            .query(
                &client.prepare_cached("SELECT r.id, r.given_names, r.family_name, r.given_names_key, r.family_name_key,
                        r.gender, r.date_of_birth, r.postcode, r.shield_reason,
                        r.responsible_authority_code, r.responsible_authority_name
                 FROM child_record r
                 WHERE (r.family_name_key = $1
                        OR r.id IN (SELECT f.record_id FROM former_name f WHERE f.family_name_key = $1))
                   AND ($2::date IS NULL OR r.date_of_birth = $2)
                   AND ($3::text IS NULL OR (r.postcode = $3 AND (r.shield_reason IS NULL OR $6)))
                   AND ($4::text IS NULL OR (' ' || r.given_names_key) LIKE ('% ' || $4 || '%'))
                   AND ($5::text IS NULL OR r.gender = $5 OR r.gender = 'not_specified')
                   AND r.status <> 'arriving'
                   AND (r.archived_on IS NULL OR $7)
                 ORDER BY r.id
                 LIMIT 1000").await?,
                &[
                    &query.surname_key,
                    &query.date_of_birth,
                    &query.postcode,
                    &query.forename_key,
                    &query.gender.map(Gender::as_db),
                    &query.reveal_shielded,
                    &query.include_archived,
                ],
            )
            .await?;
        rows.iter()
            .map(|row| {
                // Found on the key of the current surname or of a former one.
                let current: &str = row.get("family_name_key");
                let former = if current == query.surname_key {
                    vec![]
                } else {
                    vec![query.surname.clone()]
                };
                let mut found = search_match(row, query, &former, (false, false))?;
                found.score = exact_score(&found, row, query);
                Ok(found)
            })
            .collect()
    }

    async fn search_tolerant(&self, query: &SearchQuery) -> Result<Vec<SearchMatch>> {
        let forename = query
            .forename_key
            .as_deref()
            .and_then(|key| key.split(' ').next());
        let variants = forename.map_or_else(Vec::new, |name| Nicknames::shipped().variants(name));
        // Children born on the day asked (or with day and month swapped)
        // are candidates whatever their surname, when a forename is given.
        let dates: Vec<NaiveDate> = query
            .date_of_birth
            .filter(|_| forename.is_some())
            .into_iter()
            .flat_map(|born| {
                [
                    Some(born),
                    NaiveDate::from_ymd_opt(born.year(), born.day(), born.month()),
                ]
            })
            .flatten()
            .collect();
        let client = self.pool.get().await?;
        // Planned for these values each time (the unnamed statement): a
        // plan cached for any surname would read a common one's rows badly.
        let rows = client
            .query_typed(
                TOLERANT_SEARCH,
                &[
                    (&query.surname, Type::TEXT),
                    (&query.surname_key, Type::TEXT),
                    (&dates, Type::DATE_ARRAY),
                    (&query.date_of_birth, Type::DATE),
                    (&query.year_of_birth, Type::INT4),
                    (&forename, Type::TEXT),
                    (&variants, Type::TEXT_ARRAY),
                    (&query.postcode, Type::TEXT),
                    (&query.include_archived, Type::BOOL),
                    (&query.reveal_shielded, Type::BOOL),
                    (&MAX_CANDIDATES, Type::INT8),
                ],
            )
            .await?;
        let mut matches = Vec::with_capacity(rows.len());
        for row in &rows {
            let former: Vec<String> = row.get("former_family_names");
            let sounds_alike = (
                row.get("surname_sounds_alike"),
                row.get("forename_sounds_alike"),
            );
            let mut found = search_match(row, query, &former, sounds_alike)?;
            if found.match_weight >= MIN_TOLERANT_WEIGHT {
                found.score = (found.match_weight * 10.0).round() as u32;
                matches.push(found);
            }
        }
        Ok(matches)
    }
}

/// A row as a match, scored by how its fields agree with the query.
fn search_match(
    row: &Row,
    query: &SearchQuery,
    former_family_names: &[String],
    (surname_sounds_alike, forename_sounds_alike): (bool, bool),
) -> Result<SearchMatch> {
    let id: &str = row.get("id");
    let id = RecordId::parse(id)
        .map_err(|_| NodeError::Corrupt("stored identifier does not parse".into()))?;
    let date_of_birth: NaiveDate = row.get("date_of_birth");
    let shielded = row.get::<_, Option<&str>>("shield_reason").is_some();
    // A shielded record's address is hidden: its postcode neither matches
    // (see the queries) nor is shown, but to the responsible authority's managers.
    let postcode: Option<String> = row
        .get::<_, Option<String>>("postcode")
        .filter(|_| !shielded || query.reveal_shielded);
    let gender = from_db(Gender::from_db, row.get("gender"))?;
    let name = PersonName {
        given_names: row.get("given_names"),
        family_name: row.get("family_name"),
    };
    let scored = score(
        &Asked {
            surname: &query.surname,
            forename: query
                .forename_key
                .as_deref()
                .and_then(|key| key.split(' ').next()),
            date_of_birth: query.date_of_birth,
            year_of_birth: query.year_of_birth,
            postcode: query.postcode.as_deref(),
            gender: query.gender.map(Gender::as_db),
        },
        &Candidate {
            family_name: &name.family_name,
            former_family_names,
            given_names: &name.given_names,
            date_of_birth: Some(date_of_birth),
            postcode: postcode.as_deref(),
            gender: gender.as_db(),
            surname_sounds_alike,
            forename_sounds_alike,
        },
        Weights::shipped(),
    );
    // Set by the caller: `exact_score`, or the tolerant weight.
    let score = 0;
    Ok(SearchMatch {
        id,
        name,
        gender,
        date_of_birth,
        postcode,
        responsible_authority: ResponsibleAuthority {
            code: row.get("responsible_authority_code"),
            name: row.get("responsible_authority_name"),
        },
        shielded,
        score,
        match_weight: scored.weight,
        agreements: scored.agreements,
    })
}

/// An exact search's ranking: a current surname outranks a former one; each
/// further field that agrees adds.
fn exact_score(found: &SearchMatch, row: &Row, query: &SearchQuery) -> u32 {
    let family_key: &str = row.get("family_name_key");
    let given_key: &str = row.get("given_names_key");
    let mut score = if family_key == query.surname_key {
        50
    } else {
        40
    };
    if query.date_of_birth == Some(found.date_of_birth) {
        score += 30;
    }
    if query.postcode.is_some() && query.postcode == found.postcode {
        score += 20;
    }
    if query.gender == Some(found.gender) {
        score += 10;
    }
    if let Some(forename) = &query.forename_key {
        score += if given_key.split(' ').any(|name| name == forename) {
            20
        } else {
            10
        };
    }
    score
}
