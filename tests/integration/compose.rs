//! No Docker engine runs here, so the compose file and the Dockerfile are checked by reading them:
//! the properties the README promises must hold.

use serde_norway::Value;

fn compose() -> Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docker-compose.yml"))
        .expect("docker-compose.yml exists");
    serde_norway::from_str(&text).expect("docker-compose.yml is valid YAML")
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn postgres_has_a_health_check_a_named_volume_and_loopback_ports() {
    let c = compose();
    let pg = &c["services"]["postgres"];
    let test = strings(&pg["healthcheck"]["test"]).join(" ");
    assert!(test.contains("pg_isready"), "health check: {test}");
    let volumes = strings(&pg["volumes"]);
    let named = volumes[0].split(':').next().unwrap();
    assert!(
        c["volumes"].get(named).is_some(),
        "{named} is declared as a named volume"
    );
    for s in c["services"].as_mapping().unwrap().values() {
        for p in strings(&s["ports"]) {
            assert!(
                p.starts_with("127.0.0.1:"),
                "port {p} must be bound to 127.0.0.1"
            );
        }
    }
}

#[test]
fn the_sync_job_waits_for_a_healthy_database_and_the_simulator_is_optional() {
    let c = compose();
    let sync = &c["services"]["sync"];
    assert_eq!(sync["build"].as_str(), Some("."));
    assert_eq!(
        sync["depends_on"]["postgres"]["condition"].as_str(),
        Some("service_healthy")
    );
    assert!(sync["profiles"].is_null(), "sync runs by default");
    let sim = &c["services"]["simulator"];
    assert_eq!(strings(&sim["profiles"]), vec!["demo"]);
    assert_eq!(strings(&sim["command"])[0], "simulate");
    assert_eq!(strings(&c["services"]["demo"]["profiles"]), vec!["demo"]);
}

#[test]
fn the_image_is_multi_stage_small_and_not_root() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let froms: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(froms.len(), 2, "a build stage and a runtime stage");
    assert!(
        froms[1].contains("slim"),
        "a small runtime image: {}",
        froms[1]
    );
    let user = text
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(!user.contains("root") && user != "USER 0", "{user}");
    assert!(text.contains("--locked"), "reproducible build");
    // The binary embeds the starter query `sql/<backend>/09_worst_rooms_yesterday.sql` (demo's
    // worst room): the build stage must have it, as it has the migrations.
    for dir in ["src", "migrations", "sql"] {
        assert!(
            text.lines().any(|l| l == format!("COPY {dir} ./{dir}")),
            "the build stage copies {dir}/"
        );
    }
}
