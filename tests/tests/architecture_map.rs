//! ARCHITECTURE.md cannot rot: every file it names exists, every test its
//! table of rules names is a test in the file it names, and each section of
//! RULES.md has at least as many rows in that table as it has rules.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The workspace's top-level directories: a backticked name starting with one
/// of them is a path from the repository root.
const ROOTS: [&str; 13] = [
    "proto/", "mtls/", "policy/", "ops/", "node/", "gateway/", "cli/", "bench/", "tests/",
    "scripts/", "deploy/", "docs/", "data/",
];

/// The sections of RULES.md, by the words each row of the table starts with.
const SECTIONS: [(&str, &str); 6] = [
    ("## Who and what", "Who and what"),
    ("## Contributing information", "Contributing"),
    ("## Reading", "Reading"),
    ("## Archiving and destruction", "Archiving"),
    ("## Audit", "Audit"),
    ("## Anchors worth knowing", "Anchors"),
];

fn backticked(text: &str) -> impl Iterator<Item = &str> {
    text.split('`').skip(1).step_by(2)
}

fn architecture() -> String {
    std::fs::read_to_string(repository().join("ARCHITECTURE.md")).expect("ARCHITECTURE.md")
}

/// The rows of the table between the `rules-table` markers, as cells.
fn rule_rows(architecture: &str) -> Vec<Vec<String>> {
    let begin = architecture
        .find("<!-- rules-table: begin -->")
        .expect("ARCHITECTURE.md has the rules table's begin marker");
    let end = architecture
        .find("<!-- rules-table: end -->")
        .expect("ARCHITECTURE.md has the rules table's end marker");
    architecture[begin..end]
        .lines()
        .filter(|line| line.starts_with('|'))
        .skip(2) // the header and its rule
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_string())
                .collect()
        })
        .collect()
}

/// Whether `source` defines `function` as a test: `fn function(` with
/// `#[test]` or `#[tokio::test]` among the attributes and comments just above.
fn is_test(source: &str, function: &str) -> bool {
    let lines: Vec<&str> = source.lines().map(str::trim).collect();
    let defines = format!("fn {function}(");
    let Some(at) = lines.iter().position(|line| line.contains(&defines)) else {
        return false;
    };
    lines[..at]
        .iter()
        .rev()
        .take_while(|line| line.starts_with("#[") || line.starts_with("//"))
        .any(|line| line.starts_with("#[test]") || line.starts_with("#[tokio::test"))
}

#[test]
fn every_file_the_architecture_names_exists() {
    let architecture = architecture();
    let mut missing = Vec::new();
    let mut named = 0;
    for name in backticked(&architecture) {
        let path = name.split("::").next().unwrap_or(name);
        if ROOTS.iter().any(|root| path.starts_with(root)) && !path.contains([' ', '*']) {
            named += 1;
            if !repository().join(path).exists() {
                missing.push(path.to_string());
            }
        }
    }
    assert!(
        named > 50,
        "only {named} paths found: is the code map there?"
    );
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names missing files: {missing:?}"
    );
}

#[test]
fn every_rule_has_a_module_and_a_test_that_exist() {
    let rows = rule_rows(&architecture());
    assert!(
        rows.len() >= 20,
        "the rules table has only {} rows",
        rows.len()
    );
    let mut problems = Vec::new();
    for row in &rows {
        assert_eq!(
            row.len(),
            4,
            "a row of the rules table has four cells: {row:?}"
        );
        let (rule, modules, tests) = (&row[0], format!("{} {}", row[1], row[2]), &row[3]);
        if backticked(&modules).next().is_none() {
            problems.push(format!("{rule}: no module"));
        }
        let mut tested = 0;
        for test in backticked(tests) {
            let Some((file, function)) = test.split_once("::") else {
                problems.push(format!("{rule}: `{test}` is not file::test"));
                continue;
            };
            tested += 1;
            let source = std::fs::read_to_string(repository().join(file)).unwrap_or_default();
            if !is_test(&source, function) {
                problems.push(format!("{rule}: no test `{function}` in {file}"));
            }
        }
        if tested == 0 {
            problems.push(format!("{rule}: no test"));
        }
    }
    assert!(
        problems.is_empty(),
        "the rules table is wrong: {problems:#?}"
    );
}

/// Each section of RULES.md has as many rows as it has rules (its bullets).
/// RULES.md lives beside the repository, in `../shared/regulations/`; the
/// sections the table's rows start with are checked whether or not it is there.
#[test]
fn every_section_of_the_rules_is_in_the_table() {
    let rows = rule_rows(&architecture());
    let mut rows_per_section: BTreeMap<&str, usize> = BTreeMap::new();
    for row in &rows {
        let section = SECTIONS
            .iter()
            .find(|(_, short)| row[0].starts_with(short))
            .unwrap_or_else(|| panic!("a row names no section of RULES.md: {}", row[0]));
        *rows_per_section.entry(section.1).or_default() += 1;
    }
    for (_, short) in SECTIONS {
        assert!(rows_per_section.contains_key(short), "no row for {short}");
    }
    let rules = repository().join("../shared/regulations/RULES.md");
    let Ok(rules) = std::fs::read_to_string(&rules) else {
        return;
    };
    for (heading, short) in SECTIONS {
        let start = rules
            .find(heading)
            .unwrap_or_else(|| panic!("RULES.md has no section {heading}"));
        let body = &rules[start + heading.len()..];
        let body = &body[..body.find("\n## ").unwrap_or(body.len())];
        let bullets = body.lines().filter(|line| line.starts_with("- ")).count();
        assert!(
            rows_per_section[short] >= bullets,
            "{short}: RULES.md has {bullets} rules, the table {} rows",
            rows_per_section[short]
        );
    }
}
