//! The report: one table per question, as text or Markdown, and the
//! formatting of its figures.
/// One table of the report.
pub struct Section {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Section {
    pub(super) fn new(title: impl Into<String>, header: &[&str]) -> Self {
        Self {
            title: title.into(),
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub(super) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut table = comfy_table::Table::new();
        table
            .load_preset(comfy_table::presets::ASCII_MARKDOWN)
            .set_header(&self.header);
        for row in &self.rows {
            table.add_row(row);
        }
        format!("### {}\n\n{table}\n", self.title)
    }
}

pub(super) fn f(value: f64, decimals: usize) -> String {
    format!("{value:.decimals$}")
}

pub(super) fn ratio(numerator: f64, denominator: f64) -> f64 {
    numerator / denominator.max(1e-12)
}

pub(super) fn mib(kib: u64) -> String {
    f(kib as f64 / 1024.0, 1)
}
