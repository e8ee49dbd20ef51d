//! The files in `examples/` parse and validate (no cluster needed).
#![allow(clippy::unwrap_used)]

use pipeline_service::{Config, pipeline};

fn example(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/../../examples/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn example_pipelines_validate() {
    for (file, ct) in [
        ("pipeline-mysql-metadata.yaml", Some("application/yaml")),
        ("pipeline-profiler-on-demand.json", None),
    ] {
        let mut def = pipeline::parse_definition(&example(file), ct).unwrap();
        def.validate(None, true)
            .unwrap_or_else(|e| unreachable!("{file}: {e}"));
        assert!(!def.credential_names.is_empty(), "{file}");
    }
}

#[test]
fn example_config_loads() {
    let text = String::from_utf8(example("pipeline-service-config.yaml")).unwrap();
    let c = Config::from_sources(Some(&text), Vec::new()).unwrap();
    assert_eq!(c.tolerations.len(), 1);
    assert_eq!(c.image_pull_secrets, ["registry-secret"]);
}
