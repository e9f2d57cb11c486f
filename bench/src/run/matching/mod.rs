//! Part f (`--matching`): finding the right child. Children are drawn from
//! the population, a twin recorded beside each (the same surname, date of
//! birth and address, another forename), and each child searched for
//! through the gateway as a practitioner might have been told of them:
//! with one error of each kind (`errors`), two at once, and a mix as the
//! FEBRL generator makes them. Reported: recall@1 and recall@10 per kind,
//! how often the twin ranks first, how many authorities each search asked,
//! and the latency of a tolerant search routed by the blind index against
//! the same search asking every authority and against a search at the one
//! node holding the child, interleaved search by search.
mod errors;
mod weights;

use std::time::Instant;

use anyhow::{Context as _, Result};
use chrono::NaiveDate;
use contactpoint_proto::v1 as pb;
use pb::authority_node_client::AuthorityNodeClient;
use pb::gateway_client::GatewayClient;
use tonic::transport::Channel;

use super::federation::Federation;
use super::report::{f, Section};
use super::RunArgs;
use crate::fleet::channel;
use crate::load;
use crate::population::rng::Rng;
use errors::{Field, Held, Kind, Told};

const TWO: &str = "two errors at once (in two fields)";
const MIX: &str = "the mix (FEBRL's rates)";

fn single(kind: Kind) -> String {
    format!("one error: {}", kind.describe())
}

/// One child searched for, and the searches made for it.
struct Child {
    authority: usize,
    given_names: String,
    family_name: String,
    date_of_birth: NaiveDate,
    twin_given_names: String,
    told: Told,
    held_former: Vec<String>,
    held_postcode: Option<String>,
}

/// A search and what it was meant to find.
struct Query {
    label: String,
    child: usize,
    request: pb::SearchRecordsRequest,
}

#[derive(Default)]
struct Recall {
    queries: u64,
    first: u64,
    top_ten: u64,
    /// In the top ten when every authority was asked: what the blind index
    /// cost, set against `top_ten`.
    top_ten_all: u64,
    twin_first: u64,
    asked: Vec<u32>,
}

pub(super) async fn measure(
    args: &RunArgs,
    federation: &Federation,
    report: &mut Vec<Section>,
) -> Result<()> {
    let n = federation.largest_n;
    let reader = federation.work.files("reader");
    eprintln!("cpbench: f. finding the right child across {n} nodes");
    let (_, mut gateway) = federation.start_gateway(n, &reader).await?;
    let children = draw_children(args, federation).await?;
    wait_indexed(federation, n).await?;
    let gateway_client = GatewayClient::new(channel(gateway.address, &reader).await?);
    let mut node_clients = Vec::new();
    for node in &federation.nodes {
        node_clients.push(AuthorityNodeClient::new(
            channel(node.address, &reader).await?,
        ));
    }

    let queries = make_queries(args, &children);
    let mut recalls: Vec<(String, Recall)> = Vec::new();
    let (mut routed, mut everyone, mut one_node) =
        (load::histogram(), load::histogram(), load::histogram());
    for (number, query) in queries.iter().enumerate() {
        let child = &children[query.child];
        // The three paths in turn, starting from a different one each time.
        let (mut found, mut found_all) = (None, None);
        for turn in 0..3 {
            match (number + turn) % 3 {
                0 => {
                    let started = Instant::now();
                    let answer = gateway_client
                        .clone()
                        .search_records(query.request.clone())
                        .await
                        .with_context(|| format!("{}: the search was refused", query.label))?
                        .into_inner();
                    routed.saturating_record(started.elapsed().as_micros() as u64);
                    found = Some(answer);
                }
                1 => {
                    let started = Instant::now();
                    let answer = gateway_client
                        .clone()
                        .search_records(pb::SearchRecordsRequest {
                            all_authorities: true,
                            ..query.request.clone()
                        })
                        .await?
                        .into_inner();
                    everyone.saturating_record(started.elapsed().as_micros() as u64);
                    found_all = Some(answer);
                }
                _ => {
                    let started = Instant::now();
                    node_clients[child.authority]
                        .clone()
                        .search_records(query.request.clone())
                        .await?;
                    one_node.saturating_record(started.elapsed().as_micros() as u64);
                }
            }
        }
        let (found, found_all) = (
            found.context("the routed search ran")?,
            found_all.context("the search of all ran")?,
        );
        let code = &federation.authorities[child.authority].code;
        let is = |m: &pb::SearchMatch, given: &str| {
            m.name.as_ref().is_some_and(|name| {
                name.given_names == given && name.family_name == child.family_name
            }) && m
                .responsible_authority
                .as_ref()
                .is_some_and(|a| &a.code == code)
                && m.date_of_birth
                    == Some(pb::Date {
                        year: chrono::Datelike::year(&child.date_of_birth),
                        month: chrono::Datelike::month(&child.date_of_birth),
                        day: chrono::Datelike::day(&child.date_of_birth),
                    })
        };
        let rank = found.matches.iter().position(|m| is(m, &child.given_names));
        let entry = match recalls.iter().position(|(label, _)| *label == query.label) {
            Some(at) => &mut recalls[at].1,
            None => {
                recalls.push((query.label.clone(), Recall::default()));
                &mut recalls.last_mut().expect("just pushed").1
            }
        };
        entry.queries += 1;
        entry.first += u64::from(rank == Some(0));
        entry.top_ten += u64::from(rank.is_some_and(|rank| rank < 10));
        entry.top_ten_all += u64::from(
            found_all
                .matches
                .iter()
                .take(10)
                .any(|m| is(m, &child.given_names)),
        );
        entry.twin_first += u64::from(
            found
                .matches
                .first()
                .is_some_and(|m| is(m, &child.twin_given_names)),
        );
        entry.asked.push(found.authorities_asked);
    }
    gateway.check_running()?;

    let mut section = Section::new(
        format!("f. Finding the right child: {} children of the population, each with a twin beside them, searched for through the gateway across {n} authorities (tolerant, forename given)", children.len()),
        &["told", "searches", "recall@1", "recall@10", "recall@10 asking all", "twin first", "authorities asked p50", "p90", "max"],
    );
    let order: Vec<String> = std::iter::once("as recorded".to_owned())
        .chain(Kind::ALL.iter().map(|kind| single(*kind)))
        .chain([TWO.to_owned(), MIX.to_owned()])
        .collect();
    recalls.sort_by_key(|(label, _)| order.iter().position(|known| known == label));
    for (label, recall) in &mut recalls {
        recall.asked.sort_unstable();
        let share = |count: u64| f(count as f64 / recall.queries.max(1) as f64, 3);
        let at = |q: f64| {
            recall
                .asked
                .get(((recall.asked.len() as f64 - 1.0) * q).round() as usize)
                .map_or(String::new(), u32::to_string)
        };
        section.row(vec![
            label.clone(),
            recall.queries.to_string(),
            share(recall.first),
            share(recall.top_ten),
            share(recall.top_ten_all),
            share(recall.twin_first),
            at(0.5),
            at(0.9),
            at(1.0),
        ]);
    }
    report.push(section);

    let mut section = Section::new(
        format!(
            "f. Tolerant search latency, the same {} searches by each path, interleaved",
            queries.len()
        ),
        &["path", "p50 ms", "p99 ms", "p50 / one node"],
    );
    let one = one_node.value_at_quantile(0.5) as f64 / 1000.0;
    for (path, histogram) in [
        (
            "at the one node holding the child, directly".to_owned(),
            &one_node,
        ),
        (
            format!("through the gateway, the blind index routing (of {n})"),
            &routed,
        ),
        (format!("through the gateway, asking all {n}"), &everyone),
    ] {
        let p50 = histogram.value_at_quantile(0.5) as f64 / 1000.0;
        section.row(vec![
            path,
            f(p50, 3),
            f(histogram.value_at_quantile(0.99) as f64 / 1000.0, 3),
            f(p50 / one.max(1e-9), 2),
        ]);
    }
    report.push(section);
    if let Some(path) = &args.write_weights {
        report.push(estimate_weights(args, federation, args.matching_children * 25, path).await?);
    }
    Ok(())
}

/// Draws the children, spread over the authorities as the population is,
/// and records a twin beside each.
async fn draw_children(args: &RunArgs, federation: &Federation) -> Result<Vec<Child>> {
    let population = &federation.population;
    let sizes = population.sizes();
    let total: u64 = sizes.iter().sum();
    let mut rng = Rng(args.seed ^ 0x6d61_7463_6869_6e67);
    let mut children = Vec::new();
    let mut writers: Vec<Option<AuthorityNodeClient<Channel>>> = vec![None; sizes.len()];
    for number in 0..args.matching_children {
        let mut point = rng.below(total.max(1));
        let authority = sizes
            .iter()
            .position(|size| {
                if point < *size {
                    true
                } else {
                    point -= size;
                    false
                }
            })
            .unwrap_or(0);
        let record = population.record(authority, point);
        let twin = population.twin(&record, number);
        let writer = match &mut writers[authority] {
            Some(writer) => writer,
            slot => {
                let files = federation.work.files(&format!(
                    "loader-{}",
                    federation.authorities[authority].code
                ));
                slot.insert(AuthorityNodeClient::new(
                    channel(federation.nodes[authority].address, &files).await?,
                ))
            }
        };
        writer.create_record(twin.clone()).await?;
        let (compared, told) = compared(&record)?;
        let twin_name = twin
            .details
            .as_ref()
            .and_then(|d| d.name.as_ref())
            .map(|n| n.given_names.clone())
            .unwrap_or_default();
        children.push(Child {
            authority,
            told,
            given_names: compared.given_names,
            family_name: compared.family_name,
            date_of_birth: compared.date_of_birth,
            twin_given_names: twin_name,
            held_former: compared.former_family_names,
            held_postcode: compared.postcode,
        });
    }
    Ok(children)
}

/// A record as compared, and as a practitioner would be told of it (the
/// surname, the first forename, the date of birth).
fn compared(record: &pb::CreateRecordRequest) -> Result<(weights::Compared, Told)> {
    let details = record.details.as_ref().context("a record has details")?;
    let name = details.name.clone().unwrap_or_default();
    let born = details.date_of_birth.context("a date of birth")?;
    let date_of_birth =
        NaiveDate::from_ymd_opt(born.year, born.month, born.day).context("a valid date")?;
    let postcode = match details.whereabouts.as_ref().and_then(|w| w.state.as_ref()) {
        Some(pb::whereabouts::State::CurrentAddress(address))
        | Some(pb::whereabouts::State::LastKnownAddress(address)) => Some(address.postcode.clone()),
        _ => None,
    };
    let told = Told {
        surname: name.family_name.clone(),
        forename: name.given_names.split(' ').next().unwrap_or("").to_owned(),
        date_of_birth: Some(date_of_birth),
        year_of_birth: None,
        postcode: String::new(),
    };
    let gender = pb::Gender::try_from(details.gender).unwrap_or(pb::Gender::NotSpecified);
    let gender = match gender {
        pb::Gender::Female => "female",
        pb::Gender::Male => "male",
        pb::Gender::Other => "other",
        _ => "not_specified",
    };
    Ok((
        weights::Compared {
            family_name: name.family_name,
            former_family_names: details
                .former_names
                .iter()
                .filter_map(|former| former.name.as_ref().map(|n| n.family_name.clone()))
                .collect(),
            given_names: name.given_names,
            date_of_birth,
            postcode,
            gender: gender.to_owned(),
        },
        told,
    ))
}

/// The error mix: each field wrong now and then, as FEBRL's defaults have
/// it (a surname one time in five, a forename in seven, a date in ten), by
/// a kind that applies to it.
fn mixed(told: &mut Told, held: &Held<'_>, rng: &mut Rng) {
    for (field, chance) in [
        (Field::Surname, 0.2),
        (Field::Forename, 0.15),
        (Field::Date, 0.1),
    ] {
        if !rng.chance(chance) {
            continue;
        }
        let kinds: Vec<Kind> = Kind::ALL
            .iter()
            .copied()
            .filter(|kind| kind.field() == field && *kind != Kind::YearAndDistrict)
            .collect();
        // The first of the kinds, from a random start, that applies.
        let start = rng.below(kinds.len() as u64) as usize;
        for k in 0..kinds.len() {
            if kinds[(start + k) % kinds.len()].apply(told, held, rng) {
                break;
            }
        }
    }
}

/// Children drawn at random for u, for each told of for m.
const OTHERS_PER_CHILD: usize = 40;

/// Estimates m and u from `samples` children of the population; writes
/// them to `path` in `data/match-weights.csv`'s form; returns the table.
async fn estimate_weights(
    args: &RunArgs,
    federation: &Federation,
    samples: u64,
    path: &std::path::Path,
) -> Result<Section> {
    let population = &federation.population;
    let sizes = population.sizes();
    let mut rng = Rng(args.seed ^ 0x0077_6569_6768_7473);
    let as_of = chrono::Utc::now().date_naive();
    let draw = |rng: &mut Rng| {
        let authority = rng.below(sizes.len() as u64) as usize;
        population.record(authority, rng.below(sizes[authority].max(1)))
    };
    let mut pairs = Vec::new();
    let mut names = std::collections::HashSet::new();
    for _ in 0..samples {
        let (own, mut told) = compared(&draw(&mut rng))?;
        // u needs many more comparisons than m: its levels but "disagrees"
        // are rare among other children.
        let others = (0..OTHERS_PER_CHILD)
            .map(|_| compared(&draw(&mut rng)).map(|(other, _)| other))
            .collect::<Result<Vec<_>>>()?;
        let held = Held {
            former_surnames: &own.former_family_names,
            other_surname: Some(&others[0].family_name),
            postcode: own.postcode.as_deref(),
            as_of,
        };
        mixed(&mut told, &held, &mut rng);
        for record in std::iter::once(&own).chain(&others) {
            names.insert(record.family_name.clone());
            names.insert(record.given_names.clone());
            names.extend(record.former_family_names.iter().cloned());
        }
        names.insert(told.surname.clone());
        names.insert(told.forename.clone());
        pairs.push((told, own, others));
    }
    let url = federation.databases.url(&federation.code().to_lowercase());
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let codes = weights::Codes::fetch(&client, names).await?;
    let mut counts = weights::Counts::default();
    for (told, own, others) in &pairs {
        counts.add(told, own, &codes, true);
        for other in others {
            counts.add(told, other, &codes, false);
        }
    }
    let text = counts.to_csv(&format!(
        "seed {}, {} records over {} authorities",
        args.seed, args.records, federation.largest_n
    ));
    std::fs::write(path, &text)?;
    let mut section = Section::new(
        format!("f. Fellegi–Sunter m and u estimated from {samples} children of the population under the error mix (written to {})", path.display()),
        &["field", "level", "m", "u", "weight (bits)"],
    );
    for (field, level, m, u) in counts.estimate() {
        section.row(vec![
            field.as_str().to_owned(),
            level.to_owned(),
            f(m, 4),
            f(u, 4),
            f((m / u).log2(), 2),
        ]);
    }
    Ok(section)
}

/// Until the gateway has read every node's outbox to its end, keyed.
async fn wait_indexed(federation: &Federation, n: usize) -> Result<()> {
    let url = federation.databases.url(&format!("gateway_{n}"));
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    let started = Instant::now();
    loop {
        let complete: i64 = client
            .query_one(
                "SELECT count(*) FROM feed_cursor WHERE keyed AND caught_up",
                &[],
            )
            .await?
            .get(0);
        if complete as usize >= n {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed().as_secs() < 600,
            "the blind index was not complete after ten minutes ({complete} of {n} authorities)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Every child's searches: as recorded, one error of each kind that
/// applies, two errors at once (from two fields), and the FEBRL-like mix.
fn make_queries(args: &RunArgs, children: &[Child]) -> Vec<Query> {
    let mut rng = Rng(args.seed ^ 0x6572_726f_7273);
    let as_of = chrono::Utc::now().date_naive();
    let mut queries = Vec::new();
    let request = |told: &Told| pb::SearchRecordsRequest {
        surname: told.surname.clone(),
        forename: told.forename.clone(),
        date_of_birth: told.date_of_birth.map(|d| pb::Date {
            year: chrono::Datelike::year(&d),
            month: chrono::Datelike::month(&d),
            day: chrono::Datelike::day(&d),
        }),
        year_of_birth: told.year_of_birth.map_or(0, |year| year as u32),
        postcode: told.postcode.clone(),
        mode: pb::MatchMode::Tolerant as i32,
        reason: "benchmark: finding the right child".into(),
        ..Default::default()
    };
    for (index, child) in children.iter().enumerate() {
        let held = Held {
            former_surnames: &child.held_former,
            other_surname: Some(&children[(index + 1) % children.len()].family_name),
            postcode: child.held_postcode.as_deref(),
            as_of,
        };
        queries.push(Query {
            label: "as recorded".into(),
            child: index,
            request: request(&child.told),
        });
        let mut applicable = Vec::new();
        for kind in Kind::ALL {
            let mut told = child.told.clone();
            if kind.apply(&mut told, &held, &mut rng) {
                applicable.push(kind);
                queries.push(Query {
                    label: single(kind),
                    child: index,
                    request: request(&told),
                });
            }
        }
        // Two at once, from two fields.
        let first = applicable.get(rng.below(applicable.len().max(1) as u64) as usize);
        let others: Vec<Kind> = applicable
            .iter()
            .copied()
            .filter(|kind| first.is_some_and(|first| kind.field() != first.field()))
            .collect();
        if let (Some(first), Some(second)) = (
            first,
            others.get(rng.below(others.len().max(1) as u64) as usize),
        ) {
            let mut told = child.told.clone();
            first.apply(&mut told, &held, &mut rng);
            second.apply(&mut told, &held, &mut rng);
            queries.push(Query {
                label: TWO.into(),
                child: index,
                request: request(&told),
            });
        }
        let mut told = child.told.clone();
        mixed(&mut told, &held, &mut rng);
        queries.push(Query {
            label: MIX.into(),
            child: index,
            request: request(&told),
        });
    }
    queries
}
