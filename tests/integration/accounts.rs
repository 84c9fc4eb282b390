//! Issue 21, accounts and daily budgets: `[[accounts]]` against the simulator, through the binary
//! as a user runs it (each run a new process).

use std::path::Path;

use rtc_quality_sync::simulator::{self, SimulatorConfig, SimulatorHandle};

use crate::cli::{cmd, run};

async fn simulator() -> SimulatorHandle {
    simulator::spawn(SimulatorConfig {
        rate_limit_per_sec: 60,
        ..Default::default()
    })
    .await
    .unwrap()
}

/// One named account with a `ListQuality` budget of `per_day`, its keys in `SIM_AK`/`SIM_SK`.
fn budget_config(dir: &Path, endpoint: &str, per_day: u32) -> std::path::PathBuf {
    let config = dir.join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[source]
endpoint = "{endpoint}"
requests_per_second = 20
max_retries = 0

[storage]
database_url = "sqlite://{}"

[[accounts]]
name = "tight"
access_key_env = "SIM_AK"
secret_key_env = "SIM_SK"
[accounts.limits]
ListQuality = {{ per_second = 20, per_day = {per_day} }}

[[jobs]]
name = "lobby"
app_id = "app_a"
indicators = ["stall_rate"]
granularity = ["1d", "5min"]
"#,
            dir.join("q.db").display()
        ),
    )
    .unwrap();
    config
}

fn keyed(c: &mut tokio::process::Command) -> &mut tokio::process::Command {
    c.env("SIM_AK", simulator::DEMO_ACCESS_KEY)
        .env("SIM_SK", simulator::DEMO_SECRET_KEY)
}

/// The `EndTime`s of the `ListQuality` calls the simulator received.
fn asked_ends(sim: &SimulatorHandle) -> Vec<String> {
    sim.requests()
        .iter()
        .filter(|r| r.action == "ListQuality")
        .map(|r| {
            let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            body["EndTime"].as_str().unwrap().to_string()
        })
        .collect()
}

#[tokio::test]
async fn a_budget_of_n_makes_n_calls_newest_first_and_the_next_process_none() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let config = budget_config(dir.path(), &sim.endpoint(), 3);
    let arg = config.to_str().unwrap();

    // What a run needs: every window's end, from `plan --json`.
    let (code, out, err) =
        run(keyed(&mut cmd(dir.path())).args(["--config", arg, "plan", "--json"])).await;
    assert_eq!(code, 0, "{err}");
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut ends: Vec<chrono::DateTime<chrono::Utc>> = plan["streams"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["windows"].as_array().unwrap().clone())
        .map(|w| w["end"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(ends.len() > 3, "{out}");
    let budget = &plan["budgets"][0];
    assert_eq!(budget["account"], "tight");
    assert_eq!(budget["planned"], ends.len());
    assert_eq!(
        (budget["fit"].as_u64(), budget["budget_left"].as_u64()),
        (Some(3), Some(3))
    );
    assert!(budget["done_by"].is_string(), "{budget}");
    ends.sort();
    ends.reverse();

    let (code, out, err) =
        run(keyed(&mut cmd(dir.path())).args(["--config", arg, "sync", "--json"])).await;
    assert_eq!(code, 0, "a budget defers, never fails: {err}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["calls"], 3);
    assert_eq!(summary["windows_deferred"], ends.len() - 3, "{out}");
    let account = &summary["accounts"][0];
    assert_eq!(account["name"], "tight");
    assert_eq!(account["windows_deferred"], ends.len() - 3);
    let use_ = &account["actions"][0];
    assert_eq!(
        (
            use_["action"].as_str(),
            use_["calls_24h"].as_u64(),
            use_["budget_remaining"].as_u64()
        ),
        (Some("ListQuality"), Some(3), Some(0)),
        "{account}"
    );
    // Exactly three calls, and they asked the three newest windows.
    let asked: Vec<chrono::DateTime<chrono::Utc>> = asked_ends(&sim)
        .iter()
        .map(|e| chrono::DateTime::parse_from_rfc3339(e).unwrap().to_utc())
        .collect();
    assert_eq!(asked.len(), 3);
    let mut sorted = asked.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(sorted, ends[..3].to_vec());
    assert!(err.contains("daily budget of account tight"), "{err}");

    // A new process: the budget is spent for 24 hours, so no call at all.
    let (code, out, err) =
        run(keyed(&mut cmd(dir.path())).args(["--config", arg, "sync", "--json"])).await;
    assert_eq!(code, 0, "{err}");
    let again: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(again["calls"], 0, "{out}");
    // Every window it planned is deferred: the six left, and a provisional one fetched again.
    let deferred = again["windows_deferred"].as_u64().unwrap() as usize;
    assert!(deferred >= ends.len() - 3, "{out}");
    assert!(
        again["streams"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["windows_ok"] == 0 && s["windows_failed"] == 0),
        "{out}"
    );
    assert_eq!(asked_ends(&sim).len(), 3);

    // status and the metrics say what is spent and what is left.
    let metrics = dir.path().join("m.prom");
    let (code, out, err) = run(keyed(&mut cmd(dir.path())).args([
        "--config",
        arg,
        "status",
        "--metrics-file",
        metrics.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("account tight: ListQuality 3 calls in the last 24 h, 0 of 3 left today"),
        "{out}"
    );
    let prom = std::fs::read_to_string(&metrics).unwrap();
    for line in [
        "rtc_quality_sync_account_calls_24h{account=\"tight\",action=\"ListQuality\"} 3",
        "rtc_quality_sync_account_budget_remaining{account=\"tight\",action=\"ListQuality\"} 0",
    ] {
        assert!(prom.lines().any(|l| l == line), "{line} in:\n{prom}");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unset_variable_names_the_account_and_another_account_can_run_alone() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[source]
endpoint = "{}"
requests_per_second = 20

[storage]
database_url = "sqlite://{}"

[[accounts]]
name = "one"
access_key_env = "SIM_AK"
secret_key_env = "SIM_SK"

[[accounts]]
name = "two"
access_key_env = "TWO_AK"
secret_key_env = "TWO_SK"

[[jobs]]
name = "a"
account = "one"
app_id = "app_a"
indicators = ["stall_rate"]

[[jobs]]
name = "b"
account = "two"
app_id = "app_b"
indicators = ["stall_rate"]
"#,
            sim.endpoint(),
            dir.path().join("q.db").display()
        ),
    )
    .unwrap();
    let arg = config.to_str().unwrap();
    // All accounts: two's variables are unset, and the error says which.
    let (code, _, err) = run(keyed(&mut cmd(dir.path())).args(["--config", arg, "sync"])).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("account \"two\"")
            && err.contains("TWO_AK")
            && err.contains("accounts[1].access_key_env"),
        "{err}"
    );
    // A machine with only account one's keys runs its part of the shared configuration.
    let (code, out, err) = run(keyed(&mut cmd(dir.path())).args([
        "--config",
        arg,
        "sync",
        "--account",
        "one",
        "--json",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    let streams: Vec<&str> = summary["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stream"].as_str().unwrap())
        .collect();
    assert_eq!(streams, ["a/1d"]);
    assert!(sim.requests().iter().all(|r| r.body.contains("app_a")));
    // An unknown account is refused by name.
    let (code, _, err) =
        run(keyed(&mut cmd(dir.path())).args(["--config", arg, "sync", "--account", "eu"])).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("--account \"eu\"") && err.contains("one, two"),
        "{err}"
    );
    // Two accounts on one access key: refused, the key masked.
    let (code, _, err) = run(keyed(&mut cmd(dir.path()))
        .env("TWO_AK", simulator::DEMO_ACCESS_KEY)
        .env("TWO_SK", "other")
        .args(["--config", arg, "sync"]))
    .await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the same access key") && !err.contains(simulator::DEMO_ACCESS_KEY),
        "{err}"
    );
    sim.shutdown().await;
}
