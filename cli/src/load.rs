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

/// Loads `path` at the node behind `channel` with one LoadRecords stream.
pub async fn load(
    channel: Channel,
    path: &Path,
    rejected_path: Option<PathBuf>,
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
    // Rows that read go to the node in one stream (LoadRecords: batches of
    // up to 1000, each one transaction); the node answers batch by batch.
    let mut sent: Vec<(usize, String)> = Vec::new();
    let mut requests = Vec::new();
    for line in lines {
        match line.request {
            Err(reason) => {
                reject(line.number, &line.text, &reason)?;
                rejected += 1;
                progress.inc(1);
            }
            Ok(request) => {
                sent.push((line.number, line.text));
                requests.push(request);
            }
        }
    }
    let (feed, stream) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        for request in requests {
            if feed.send(request).await.is_err() {
                return;
            }
        }
    });
    let mut client = pb::authority_node_client::AuthorityNodeClient::new(channel);
    let mut answered = vec![false; sent.len()];
    let outcome = async {
        let mut answers = client
            .load_records(tokio_stream::wrappers::ReceiverStream::new(stream))
            .await?
            .into_inner();
        while let Some(batch) = answers.message().await? {
            for made in batch.loaded {
                let Some((number, _)) = sent.get(made.index as usize) else {
                    continue;
                };
                loaded_file.write_record([number.to_string(), made.id])?;
                answered[made.index as usize] = true;
                loaded += 1;
                progress.inc(1);
            }
            loaded_file.flush()?;
            for refused in batch.rejected {
                let Some((number, text)) = sent.get(refused.index as usize) else {
                    continue;
                };
                reject(*number, text, &refused.reason)?;
                answered[refused.index as usize] = true;
                rejected += 1;
                progress.inc(1);
            }
        }
        anyhow::Ok(())
    }
    .await;
    if let Err(error) = outcome {
        let status = error.downcast_ref::<tonic::Status>().cloned();
        // Refused outright (the certificate may not create records): exit 5.
        if loaded == 0
            && status
                .as_ref()
                .is_some_and(|s| s.code() == tonic::Code::PermissionDenied)
        {
            denied = status;
        }
        for (index, (number, text)) in sent.iter().enumerate() {
            if !answered[index] {
                reject(*number, text, &format!("outcome unknown ({error}): check whether it was created before loading it again"))?;
                rejected += 1;
            }
        }
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
