//! `cpctl load`: an authority's records from CSV or JSON lines, each record
//! created in its own transaction at the node (a row is loaded whole or not
//! at all), with a progress bar, a count of rows loaded and rejected, a file
//! of the rejected rows with the reason for each, and a file of the
//! identifiers given to the loaded ones.
//!
//! The rejected file of a CSV load is itself a load file: each rejected
//! row's own fields under the input's header, after its line in the input and
//! the reason, so that once corrected it loads as it is (the extra `line` and
//! `reason` columns are ignored). A row's line is the input line it starts
//! on, counted from the CSV reader's byte offsets, so a quoted field holding
//! a newline moves neither its own number nor its neighbours'.
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
    /// First line(s) of the current address, lines separated by "; " or
    /// by newlines within the quoted field.
    address: String,
    town: String,
    postcode: String,
}

/// A row of the file: the line it starts on, what it said (a CSV row's
/// fields, or a JSON line whole), and the request it makes (or why it makes
/// none).
struct Line {
    number: usize,
    row: Vec<String>,
    request: Result<pb::CreateRecordRequest, String>,
}

/// What a load file holds: the header its rejected file is written under,
/// and its rows.
struct LoadFile {
    rejected_header: Vec<String>,
    lines: Vec<Line>,
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
            .split([';', '\n', '\r'])
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

fn read_file(path: &Path) -> Result<LoadFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    parse(&text, path.extension().is_some_and(|ext| ext == "csv"))
}

fn parse(text: &str, is_csv: bool) -> Result<LoadFile> {
    let mut rejected_header = vec!["line".to_owned(), "reason".to_owned()];
    if !is_csv {
        // JSON lines: each a CreateRecordRequest in the protobuf JSON mapping.
        rejected_header.push("row".to_owned());
        let lines = text
            .lines()
            .enumerate()
            .filter(|(_, line)| !line.trim().is_empty())
            .map(|(index, line)| Line {
                number: index + 1,
                row: vec![line.to_owned()],
                request: serde_json::from_str(line)
                    .map_err(|error| format!("not a record: {error}")),
            })
            .collect();
        return Ok(LoadFile {
            rejected_header,
            lines,
        });
    }
    // A row with too few or too many fields is rejected on its own.
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .context("the CSV has no header row")?
        .clone();
    rejected_header.extend(headers.iter().map(str::to_owned));
    // Lines are counted from each record's byte offset, walking forward.
    let (mut number, mut counted_to) = (1usize, 0usize);
    let mut lines = Vec::new();
    for record in reader.records() {
        let record = record.context("the CSV does not read")?;
        // The reader's position is where it began reading, before any
        // blank lines it skipped: the row starts after them.
        let mut start = record
            .position()
            .map_or(counted_to, |p| p.byte() as usize)
            .clamp(counted_to, text.len());
        while matches!(text.as_bytes().get(start), Some(b'\n' | b'\r')) {
            start += 1;
        }
        number += text.as_bytes()[counted_to..start]
            .iter()
            .filter(|&&byte| byte == b'\n')
            .count();
        counted_to = start;
        let request = record
            .deserialize::<Row>(Some(&headers))
            .map_err(|error| format!("row: {error}"))
            .and_then(row_request);
        lines.push(Line {
            number,
            row: record.iter().map(str::to_owned).collect(),
            request,
        });
    }
    Ok(LoadFile {
        rejected_header,
        lines,
    })
}

/// Loads `path` at the node behind `channel` with one LoadRecords stream.
pub async fn load(
    channel: Channel,
    path: &Path,
    rejected_path: Option<PathBuf>,
    json: bool,
) -> Result<()> {
    let LoadFile {
        rejected_header,
        lines,
    } = read_file(path)?;
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
    // Flexible: a rejected row may have more or fewer fields than the header.
    let open = |path: &Path, header: &[String]| -> Result<csv::Writer<std::fs::File>> {
        let mut writer = csv::WriterBuilder::new()
            .flexible(true)
            .from_path(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        writer.write_record(header)?;
        writer.flush()?;
        Ok(writer)
    };
    let loaded_path = path.with_extension("loaded.csv");
    let rejected_path = rejected_path.unwrap_or_else(|| path.with_extension("rejected.csv"));
    let mut loaded_file = open(&loaded_path, &["line".to_owned(), "id".to_owned()])?;
    let mut rejected_file = open(&rejected_path, &rejected_header)?;
    let (mut loaded, mut rejected, mut denied) = (0usize, 0usize, None::<tonic::Status>);
    let mut reject = |number: usize, row: &[String], reason: &str| -> Result<()> {
        let number = number.to_string();
        let fields = [number.as_str(), reason]
            .into_iter()
            .chain(row.iter().map(String::as_str));
        rejected_file.write_record(fields)?;
        rejected_file.flush()?;
        Ok(())
    };
    // Rows that read go to the node in one stream (LoadRecords: batches of
    // up to 1000, each one transaction); the node answers batch by batch.
    let mut sent: Vec<(usize, Vec<String>)> = Vec::new();
    let mut requests = Vec::new();
    for line in lines {
        match line.request {
            Err(reason) => {
                reject(line.number, &line.row, &reason)?;
                rejected += 1;
                progress.inc(1);
            }
            Ok(request) => {
                sent.push((line.number, line.row));
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
                let Some((number, row)) = sent.get(refused.index as usize) else {
                    continue;
                };
                reject(*number, row, &refused.reason)?;
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
        for (index, (number, row)) in sent.iter().enumerate() {
            if !answered[index] {
                reject(*number, row, &format!("outcome unknown ({error}): check whether it was created before loading it again"))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "given_names,family_name,gender,date_of_birth,address,town,postcode";

    #[test]
    fn each_row_keeps_its_own_line_and_fields_past_a_quoted_newline() -> Result<()> {
        let text = format!(
            "{HEADER}\n\
             Ava,Cliff,female,2017-02-29,1 High Street,Hartlepool,TS24 8AH\n\
             Ben,Cliff,male,2020-01-02,\"Flat 2\n3 High Street\",Hartlepool,TS24 8AH\n\
             \n\
             Cara,Cliff,other,2019-13-01,3 High Street,Hartlepool,TS24 8AH\r\n\
             Dan,Cliff,male,2020-01-02,4 High Street\n"
        );
        let file = parse(&text, true)?;
        let seen: Vec<(usize, &str, bool)> = file
            .lines
            .iter()
            .map(|line| (line.number, line.row[0].as_str(), line.request.is_ok()))
            .collect();
        assert_eq!(
            seen,
            [
                (2, "Ava", false),
                (3, "Ben", true),
                (6, "Cara", false),
                (7, "Dan", false)
            ]
        );
        assert_eq!(file.lines[1].row[4], "Flat 2\n3 High Street");
        assert_eq!(file.lines[3].row.len(), 5, "a short row keeps what it has");
        assert_eq!(file.rejected_header[..3], ["line", "reason", "given_names"]);
        Ok(())
    }
}
