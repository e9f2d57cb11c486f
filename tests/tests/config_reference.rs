//! docs/CONFIGURATION.md is checked against the configuration structs: every
//! field of the node's and the gateway's configuration is documented, and
//! nothing documented is not a field. The example federation in
//! deploy/examples/ loads.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every field path of a serialized configuration: `listen`, `tls.ca`, `nodes.code`...
fn fields(value: &serde_json::Value, prefix: &str, into: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                if inner.is_object()
                    || inner
                        .as_array()
                        .is_some_and(|a| a.iter().any(|v| v.is_object()))
                {
                    fields(inner, &path, into);
                } else {
                    into.insert(path);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|item| fields(item, prefix, into)),
        _ => {}
    }
}

/// The fields the reference documents under `## {section}`.
fn documented(section: &str) -> anyhow::Result<BTreeSet<String>> {
    let text = std::fs::read_to_string(repository().join("docs/CONFIGURATION.md"))?;
    let start = text
        .find(&format!("## {section}\n"))
        .ok_or_else(|| anyhow::anyhow!("no section {section}"))?;
    let body = &text[start + section.len() + 4..];
    let body = &body[..body.find("\n## ").unwrap_or(body.len())];
    Ok(body
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|line| line.split_once('`'))
        .map(|(field, _)| field.to_owned())
        .collect())
}

#[test]
fn the_reference_documents_every_field_and_only_fields() -> anyhow::Result<()> {
    let examples = repository().join("deploy/examples");
    let mut node_fields = BTreeSet::new();
    for code in ["E06000001", "E06000002", "E06000003"] {
        let config =
            contactpoint_node::NodeConfig::load(Some(&examples.join(format!("node-{code}.toml"))))?;
        assert_eq!(config.authority_code, code);
        fields(&serde_json::to_value(&config)?, "", &mut node_fields);
    }
    assert_eq!(
        node_fields,
        documented("Node")?,
        "node fields vs docs/CONFIGURATION.md"
    );

    let gateway = contactpoint_gateway::GatewayConfig::load(Some(&examples.join("gateway.toml")))?;
    assert_eq!(gateway.nodes.len(), 3);
    let mut gateway_fields = BTreeSet::new();
    fields(&serde_json::to_value(&gateway)?, "", &mut gateway_fields);
    assert_eq!(
        gateway_fields,
        documented("Gateway")?,
        "gateway fields vs docs/CONFIGURATION.md"
    );
    Ok(())
}
