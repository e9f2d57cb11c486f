//! The gateway's configuration: typed, checked before anything binds, with
//! defaults for every limit.
use contactpoint_gateway::GatewayConfig;

const GOOD: &str = r#"
database_url = "postgres://postgres@127.0.0.1:5432/contactpoint_gateway"
policy = "policy.toml"

[tls]
ca = "ca.pem"
cert = "gateway.pem"
key = "gateway.key"

[[nodes]]
code = "E06000001"
name = "Hartlepool"
endpoint = "https://node-e06000001.example:7401"
"#;

fn load(text: &str) -> Result<GatewayConfig, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    GatewayConfig::load(Some(&path)).map_err(|e| e.to_string())
}

/// Defaults fill the limits; a node named twice, a plain-text endpoint, an
/// unknown field and a zero limit are each refused, naming the field.
#[test]
fn gateway_configuration_is_typed_and_checked() {
    let config = load(GOOD).expect("valid");
    assert_eq!(config.listen.to_string(), "127.0.0.1:7400");
    assert_eq!(config.limits.per_caller_in_flight, 32);
    assert_eq!(config.nodes[0].server_name(), "node-e06000001.example");

    let twice = format!(
        "{GOOD}\n[[nodes]]\ncode = \"E06000001\"\nname = \"Again\"\nendpoint = \"https://x:1\"\n"
    );
    assert!(load(&twice).unwrap_err().contains("nodes[1].code"));
    let plain = GOOD.replace("https://node-e06000001", "http://node-e06000001");
    assert!(load(&plain).unwrap_err().contains("nodes[0].endpoint"));
    assert!(load(&format!("{GOOD}\nsearch_deadline = 5\n"))
        .unwrap_err()
        .contains("search_deadline"));
    let zero = GOOD.replace(
        "policy = \"policy.toml\"",
        "policy = \"policy.toml\"\n[limits]\nper_caller_in_flight = 0",
    );
    assert!(load(&zero).unwrap_err().contains("limits"));
    let open_metrics = GOOD.replace(
        "policy = \"policy.toml\"",
        "policy = \"policy.toml\"\nmetrics_listen = \"0.0.0.0:9400\"",
    );
    let error = load(&open_metrics).unwrap_err();
    assert!(
        error.contains("metrics_listen") && error.contains("not a loopback address"),
        "{error}"
    );
}
