//! Every setting is documented: each key of the default configuration appears in docs/configuration.md.

#[test]
fn every_setting_is_in_the_reference() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/configuration.md"))
        .expect("docs/configuration.md");
    let value = toml::Value::try_from(config::Config::default()).expect("defaults serialise");
    let mut missing = Vec::new();
    walk(&value, "", &mut missing, &doc);
    assert!(missing.is_empty(), "settings missing from docs/configuration.md: {missing:?}");
}

fn walk(v: &toml::Value, prefix: &str, missing: &mut Vec<String>, doc: &str) {
    let Some(table) = v.as_table() else { return };
    for (k, child) in table {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match child {
            toml::Value::Table(_) => walk(child, &key, missing, doc),
            _ if !doc.contains(&format!("`{key}`")) => missing.push(key),
            _ => {}
        }
    }
}
