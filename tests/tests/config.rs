//! The node's configuration: a typed TOML file with environment overrides,
//! checked before anything binds. One test, so the environment it sets is
//! not shared with another test running at the same time.
use contactpoint_node::NodeConfig;

const GOOD: &str = r#"
authority_code = "E06000001"
authority_name = "Hartlepool"
database_url = "postgres://postgres@127.0.0.1:5432/contactpoint_e06000001"
policy = "policy.toml"
audit_key = "audit.key"

[tls]
ca = "ca.pem"
cert = "node.pem"
key = "node.key"
"#;

fn load(text: &str) -> Result<NodeConfig, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("node.toml");
    std::fs::write(&path, text).map_err(|e| e.to_string())?;
    NodeConfig::load(Some(&path)).map_err(|e| e.to_string())
}

/// Defaults fill what the file leaves out; unknown fields and bad values are
/// refused with a message naming them; the environment overrides the file.
#[test]
fn configuration_is_typed_checked_and_overridable() {
    let config = load(GOOD).expect("the sample configuration is valid");
    assert_eq!(config.listen.to_string(), "127.0.0.1:7401");
    assert_eq!(config.pool_size, 16);
    assert!(config.tls.crls.is_empty());

    let error = load(&format!("{GOOD}\npool_sise = 3\n")).unwrap_err();
    assert!(error.contains("pool_sise"), "{error}");

    let error = load(&GOOD.replace("E06000001\"\nauthority_name", "W06000001\"\nauthority_name"))
        .unwrap_err();
    assert!(error.contains("authority_code"), "{error}");

    let error = load(&GOOD.replace("database_url", "# database_url")).unwrap_err();
    assert!(error.contains("database_url"), "{error}");

    // Metrics, plain HTTP without authentication, only on this host.
    let error =
        load(&GOOD.replace("[tls]", "metrics_listen = \"0.0.0.0:9401\"\n[tls]")).unwrap_err();
    assert!(
        error.contains("metrics_listen") && error.contains("not a loopback address"),
        "{error}"
    );
    assert!(load(&GOOD.replace("[tls]", "metrics_listen = \"127.0.0.1:9401\"\n[tls]")).is_ok());

    // The audit is signed with a key of its own, never the TLS key.
    let error = load(&GOOD.replace("audit_key", "# audit_key")).unwrap_err();
    assert!(error.contains("audit_key"), "{error}");
    let error = load(&GOOD.replace("\"audit.key\"", "\"node.key\"")).unwrap_err();
    assert!(
        error.contains("audit_key") && error.contains("TLS key"),
        "{error}"
    );

    std::env::set_var("CONTACTPOINT_NODE_POOL_SIZE", "3");
    std::env::set_var("CONTACTPOINT_NODE_TLS__CA", "/etc/contactpoint/ca.pem");
    let config = load(GOOD).expect("valid with overrides");
    std::env::remove_var("CONTACTPOINT_NODE_POOL_SIZE");
    std::env::remove_var("CONTACTPOINT_NODE_TLS__CA");
    assert_eq!(config.pool_size, 3);
    assert_eq!(config.tls.ca.to_str(), Some("/etc/contactpoint/ca.pem"));
}
