//! The search's SQL at a node, and its ranking of what it finds.

use chrono::NaiveDate;
use tokio_postgres::Row;

use crate::error::NodeError;
use crate::identifier::RecordId;
use crate::model::*;
use crate::search::{SearchMatch, SearchQuery};
use crate::store::{from_db, Result, Store};

impl Store {
    /// Local search; see `SearchQuery`. Ranked best first.
    pub async fn search(&self, query: &SearchQuery) -> Result<Vec<SearchMatch>> {
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
        let mut matches = rows
            .iter()
            .map(|row| search_match(row, query))
            .collect::<Result<Vec<_>>>()?;
        matches.sort_by(|a, b| {
            b.score
                .cmp(&a.score)
                .then_with(|| a.id.as_str().cmp(b.id.as_str()))
        });
        matches.truncate(query.limit as usize);
        Ok(matches)
    }
}

fn search_match(row: &Row, query: &SearchQuery) -> Result<SearchMatch> {
    let id: &str = row.get("id");
    let id = RecordId::parse(id)
        .map_err(|_| NodeError::Corrupt("stored identifier does not parse".into()))?;
    let given_key: &str = row.get("given_names_key");
    let family_key: &str = row.get("family_name_key");
    let date_of_birth: NaiveDate = row.get("date_of_birth");
    let shielded = row.get::<_, Option<&str>>("shield_reason").is_some();
    // A shielded record's address is hidden: its postcode neither matches
    // (see the query) nor is shown, but to the responsible authority's managers.
    let postcode: Option<String> = row
        .get::<_, Option<String>>("postcode")
        .filter(|_| !shielded || query.reveal_shielded);
    // Current surname outranks a former one; each further field that agrees adds.
    let mut score = if family_key == query.surname_key {
        50
    } else {
        40
    };
    if query.date_of_birth == Some(date_of_birth) {
        score += 30;
    }
    if query.postcode.is_some() && query.postcode == postcode {
        score += 20;
    }
    let gender = from_db(Gender::from_db, row.get("gender"))?;
    if query.gender == Some(gender) {
        score += 10;
    }
    if let Some(forename) = &query.forename_key {
        score += if given_key.split(' ').any(|name| name == forename) {
            20
        } else {
            10
        };
    }
    Ok(SearchMatch {
        id,
        name: PersonName {
            given_names: row.get("given_names"),
            family_name: row.get("family_name"),
        },
        gender,
        date_of_birth,
        postcode,
        responsible_authority: ResponsibleAuthority {
            code: row.get("responsible_authority_code"),
            name: row.get("responsible_authority_name"),
        },
        shielded,
        score,
    })
}
