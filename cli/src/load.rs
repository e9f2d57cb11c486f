//! `cpctl load`: an authority's records from CSV or JSON lines, each record
//! created in its own transaction at the node (a row is loaded whole or not
//! at all), with a progress bar, a count of rows loaded and rejected, a file
//! of the rejected rows with the reason for each, and a file of the
//! identifiers given to the loaded ones.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use contactpoint_proto::v1 as pb;
use serde::Deserialize;
use tonic::transport::Channel;

use crate::Partial;

/// One CSV row: the columns a load file has, header first.
#[derive(Debug, Deserialize)]
struct Row {
    given_names: String,
    family_name: String,
    /// female, male, other or not_specified.
    gender: String,
    /// YYYY-MM-DD.
    date_of_birth: String,
    /// First line(s) of the current address, lines separated by "; ".
    address: String,
    town: String,
    postcode: String,
}

/// A row of the file: where it was, what it said, and the request it makes
/// (or why it makes none).
struct Line {
    number: usize,
    text: String,
    request: Result<pb::CreateRecordRequest, String>,
}

fn gender(value: &str) -> Result<pb::Gender, String> {
    Ok(match value.trim().to_ascii_lowercase().as_str() {
        "female" | "f" => pb::Gender::Female,
        "male" | "m" => pb::Gender::Male,
        "other" => pb::Gender::Other,
        "not_specified" | "" => pb::Gender::NotSpecified,
        other => {
            return Err(format!(
                "gender: {other:?} is not female, male, other or not_specified"
            ))
        }
    })
}

fn row_request(row: Row) -> Result<pb::CreateRecordRequest, String> {
    let born =
        chrono::NaiveDate::parse_from_str(row.date_of_birth.trim(), "%Y-%m-%d").map_err(|_| {
            format!(
                "date_of_birth: {:?} is not a date YYYY-MM-DD",
                row.date_of_birth
            )
        })?;
    let address = pb::PostalAddress {
        lines: row
            .address
            .split(';')
            .map(|line| line.trim().to_owned())
            .filter(|line| !line.is_empty())
            .collect(),
        town: row.town.trim().to_owned(),
        postcode: row.postcode.trim().to_owned(),
    };
    Ok(pb::CreateRecordRequest {
        details: Some(pb::RecordDetails {
            category: pb::PersonCategory::Child as i32,
            name: Some(pb::PersonName {
                given_names: row.given_names,
                family_name: row.family_name,
            }),
            whereabouts: Some(pb::Whereabouts {
                state: Some(pb::whereabouts::State::CurrentAddress(address)),
            }),
            gender: gender(&row.gender)? as i32,
            date_of_birth: Some(crate::wire_date(born)),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn read_lines(path: &Path) -> Result<Vec<Line>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let is_csv = path.extension().is_some_and(|ext| ext == "csv");
    if !is_csv {
        // JSON lines: each a CreateRecordRequest in the protobuf JSON mapping.
        return Ok(text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(index, line)| Line {
                number: index + 1,
                text: line.to_owned(),
                request: serde_json::from_str(line)
                    .map_err(|error| format!("not a record: {error}")),
            })
            .collect());
    }
    // A row with too few or too many fields is rejected on its own.
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .context("the CSV has no header row")?
        .clone();
    let raw: Vec<&str> = text.lines().collect();
    let mut lines = Vec::new();
    for record in reader.records() {
        let record = record.context("the CSV does not read")?;
        let number = record.position().map_or(0, |p| p.line() as usize);
        let request = record
            .deserialize::<Row>(Some(&headers))
            .map_err(|error| format!("row: {error}"))
            .and_then(row_request);
        lines.push(Line {
            number,
            text: raw
                .get(number.saturating_sub(1))
                .copied()
                .unwrap_or_default()
                .to_owned(),
            request,
        });
    }
    Ok(lines)
}

/// Loads `path` at the node behind `channel`, `concurrency` rows at a time.
pub async fn load(
    channel: Channel,
    path: &Path,
    rejected_path: Option<PathBuf>,
    concurrency: usize,
    json: bool,
) -> Result<()> {
    let lines = read_lines(path)?;
    if lines.is_empty() {
        bail!("{} holds no rows", path.display());
    }
    let progress = if json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(lines.len() as u64)
    };
    progress.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} rows {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    // Both files are written as results arrive, so an interrupted load
    // still says what it created.
    let open = |path: &Path, header: &[&str]| -> Result<csv::Writer<std::fs::File>> {
        let mut writer = csv::Writer::from_path(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        writer.write_record(header)?;
        writer.flush()?;
        Ok(writer)
    };
    let loaded_path = path.with_extension("loaded.csv");
    let rejected_path = rejected_path.unwrap_or_else(|| path.with_extension("rejected.csv"));
    let mut loaded_file = open(&loaded_path, &["line", "id"])?;
    let mut rejected_file = open(&rejected_path, &["line", "reason", "row"])?;
    let (mut loaded, mut rejected, mut denied) = (0usize, 0usize, None::<tonic::Status>);
    let mut reject = |number: usize, text: &str, reason: &str| -> Result<()> {
        rejected_file.write_record([number.to_string().as_str(), reason, text])?;
        rejected_file.flush()?;
        Ok(())
    };
    let mut pending = lines.into_iter();
    let mut calls = tokio::task::JoinSet::new();
    loop {
        while calls.len() < concurrency.max(1) {
            let Some(line) = pending.next() else { break };
            match line.request {
                Err(reason) => {
                    reject(line.number, &line.text, &reason)?;
                    rejected += 1;
                    progress.inc(1);
                }
                Ok(request) => {
                    let mut client =
                        pb::authority_node_client::AuthorityNodeClient::new(channel.clone());
                    calls.spawn(async move {
                        let answer = client.create_record(request).await;
                        (line.number, line.text, answer)
                    });
                }
            }
        }
        let Some(joined) = calls.join_next().await else {
            break;
        };
        let (number, text, answer) = joined.context("a load task failed")?;
        match answer {
            Ok(record) => {
                loaded_file.write_record([number.to_string(), record.into_inner().id])?;
                loaded_file.flush()?;
                loaded += 1;
            }
            Err(status) => {
                use tonic::Code;
                let reason = match status.code() {
                    // The node may have created it before the answer was lost.
                    Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => format!(
                        "outcome unknown ({:?}: {}): check whether it was created before loading it again",
                        status.code(),
                        status.message()
                    ),
                    _ => status.message().to_owned(),
                };
                reject(number, &text, &reason)?;
                rejected += 1;
                if status.code() == Code::PermissionDenied {
                    denied = Some(status);
                }
            }
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    if json {
        println!(
            "{}",
            serde_json::json!({
                "loaded": loaded,
                "rejected": rejected,
                "loaded_file": loaded_path,
                "rejected_file": rejected_path,
            })
        );
    } else {
        println!(
            "loaded {} rows, rejected {} (identifiers in {}, rejected rows and why in {})",
            loaded,
            rejected,
            loaded_path.display(),
            rejected_path.display()
        );
    }
    match (loaded, rejected, denied) {
        (_, 0, _) => Ok(()),
        // Refused outright (the certificate may not create records): exit 5.
        (0, _, Some(status)) => Err(status.into()),
        _ => Err(Partial(format!("{rejected} rows were rejected")).into()),
    }
}
