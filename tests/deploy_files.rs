//! The deployment files we cannot run here (no Docker engine) are still checked: they parse, and
//! they set only variables the service reads, with values the service accepts.

use serde_yaml::Value;
use session_service::config::{Config, variable};

fn compose() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
        .expect("docker-compose.yml exists");
    serde_yaml::from_str(&text).expect("docker-compose.yml is valid YAML")
}

fn environment(service: &str) -> Vec<(String, String)> {
    let env = &compose()["services"][service]["environment"];
    env.as_mapping()
        .unwrap_or_else(|| panic!("service {service} has an environment map"))
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => panic!("{k:?} has a non-scalar value {other:?}"),
            };
            (k.as_str().expect("string key").to_owned(), value)
        })
        .collect()
}

#[test]
fn compose_sets_only_variables_the_service_reads_and_they_parse() {
    let env = environment("session-service");
    for (name, _) in &env {
        assert!(
            variable(name).is_some(),
            "compose sets {name}, which the service does not read"
        );
    }
    let config =
        Config::from_lookup(|name| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
            .expect("the compose environment is a valid configuration");
    assert_eq!(config.host.to_string(), "0.0.0.0");
    assert!(
        config
            .database
            .redacted()
            .starts_with("mongodb (mongodb://mongo:27017")
    );
}

#[test]
fn compose_runs_mongo_8_with_a_healthcheck_and_a_named_volume() {
    let c = compose();
    let mongo = &c["services"]["mongo"];
    assert!(mongo["image"].as_str().unwrap().starts_with("mongo:8"));
    assert!(mongo["healthcheck"]["test"].is_sequence());
    let volume = mongo["volumes"][0].as_str().unwrap();
    let name = volume.split(':').next().unwrap();
    assert!(
        c["volumes"].as_mapping().unwrap().contains_key(name),
        "{name} is a named volume"
    );
    assert_eq!(
        c["services"]["session-service"]["depends_on"]["mongo"]["condition"],
        "service_healthy"
    );
}

#[test]
fn the_compose_test_service_points_the_suite_at_the_compose_mongodb() {
    let env = environment("tests");
    let uri = env
        .iter()
        .find(|(k, _)| k == "MONGODB_URI")
        .map(|(_, v)| v.as_str());
    assert_eq!(uri, Some("mongodb://mongo:27017/?replicaSet=rs0"));
    assert_eq!(
        compose()["services"]["tests"]["command"][0],
        "./run-tests.sh"
    );
}

#[test]
fn the_dockerfile_builds_in_stages_and_runs_as_a_non_root_user_on_all_interfaces() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    assert!(text.matches("FROM ").count() >= 2, "multi-stage");
    assert!(text.contains("USER app"));
    assert!(text.contains("HOST=0.0.0.0"));
    for line in text
        .lines()
        .filter(|l| l.trim_start().starts_with("ENV") || l.starts_with("    "))
    {
        for var in line
            .split_whitespace()
            .filter_map(|w| w.split_once('=').map(|(k, _)| k))
        {
            assert!(
                variable(var).is_some(),
                "Dockerfile sets {var}, which the service does not read"
            );
        }
    }
}
