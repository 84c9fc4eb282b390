//! Issue 21, accounts and daily budgets: `[[accounts]]` against the simulator, through the binary
//! as a user runs it (each run a new process).

use std::path::Path;

use rtc_quality_sync::config::Credentials;
use rtc_quality_sync::simulator::{self, SimulatorConfig, SimulatorHandle};
use rtc_quality_sync::store::Store;

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
    // Each stream says in plain words why its windows wait (PRODUCT.md).
    let lines: Vec<&str> = out.lines().collect();
    for stream in ["lobby/1d", "lobby/5min"] {
        let at = lines.iter().position(|l| l.starts_with(stream)).unwrap();
        assert!(
            lines[at + 1].contains("windows deferred (daily budget of account tight)"),
            "under {stream}:\n{out}"
        );
    }
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

/// The calls `account`'s key has recorded in `db`'s call log in the last 24 hours (real time).
async fn recorded(db: &Path) -> u64 {
    let store = Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let id = Credentials::new(simulator::DEMO_ACCESS_KEY, "unused", None).account_id();
    let n = store
        .calls_24h(rtc_quality_sync::clock::now())
        .await
        .unwrap()
        .into_iter()
        .filter(|(a, action, _)| *a == id && action == "ListQuality")
        .map(|(_, _, n)| n)
        .sum();
    store.close().await;
    n
}

/// A `per_day` smaller than one night's calls, and a sync killed (SIGKILL) after its first calls
/// were recorded: the call log keeps every call the killed process recorded (at least every call
/// it sent, at most one per slot more), and the next process spends exactly what is left. Across
/// both, no more calls than `per_day` reach the API, and the log ends at exactly `per_day`.
#[tokio::test]
async fn a_killed_sync_neither_refunds_nor_double_counts_its_budget() {
    let sim = simulator::spawn(SimulatorConfig {
        rate_limit_per_sec: 60,
        latency: std::time::Duration::from_millis(150),
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = budget_config(dir.path(), &sim.endpoint(), 6);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("per_second = 20", "per_second = 2")
        .replace("max_retries = 0", "max_retries = 0\nmax_in_flight = 2");
    std::fs::write(&config, text).unwrap();
    let arg = config.to_str().unwrap();

    let mut child = keyed(&mut cmd(dir.path()))
        .args(["--config", arg, "sync", "--quiet"])
        .spawn()
        .unwrap();
    while asked_ends(&sim).len() < 2 {
        assert!(child.try_wait().unwrap().is_none(), "it ran to its end");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    child.start_kill().unwrap(); // SIGKILL
    let _ = child.wait().await;
    // A request in flight when the process died still reaches the simulator.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let sent = asked_ends(&sim).len() as u64;
    let kept = recorded(&dir.path().join("q.db")).await;
    assert!((2..6).contains(&sent), "killed after {sent} calls");
    assert!(
        kept >= sent && kept <= sent + 2,
        "recorded {kept} for {sent} sent: none given back, none invented"
    );

    let (code, out, err) =
        run(keyed(&mut cmd(dir.path())).args(["--config", arg, "sync", "--json"])).await;
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["calls"], 6 - kept, "what was left, exactly: {out}");
    assert!(summary["windows_deferred"].as_u64().unwrap() > 0, "{out}");
    assert_eq!(recorded(&dir.path().join("q.db")).await, 6);
    assert!(asked_ends(&sim).len() <= 6);
    sim.shutdown().await;
}

/// The budget is spent by calls recorded just under 24 hours ago: the run waits for each to leave
/// the 24 hours (the clock crosses the boundary during the run), then sends one call per call that
/// left, never before it left.
#[tokio::test]
async fn a_budget_frees_as_the_clock_crosses_24_hours_during_the_run() {
    let sim = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let config = budget_config(dir.path(), &sim.endpoint(), 3);
    let db = dir.path().join("q.db");
    let store = Store::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let id = Credentials::new(simulator::DEMO_ACCESS_KEY, "unused", None).account_id();
    let day_ago = rtc_quality_sync::clock::now() - chrono::Duration::hours(24);
    let seeds: Vec<_> = (2..5)
        .map(|s| day_ago + chrono::Duration::seconds(s))
        .collect();
    for &at in &seeds {
        store.record_call(&id, "ListQuality", at).await.unwrap();
    }
    store.close().await;

    let (code, out, err) = run(keyed(&mut cmd(dir.path())).args([
        "--config",
        config.to_str().unwrap(),
        "sync",
        "--json",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["calls"], 3, "{out}");
    let sends: Vec<_> = sim
        .requests()
        .iter()
        .filter(|r| r.action == "ListQuality")
        .map(|r| r.at)
        .collect();
    assert_eq!(sends.len(), 3);
    for (sent, seed) in sends.iter().zip(&seeds) {
        assert!(
            *sent >= *seed + chrono::Duration::hours(24),
            "a call at {sent} while {seed}'s call was still in the 24 hours"
        );
    }
    assert_eq!(
        recorded(&db).await,
        3,
        "the seeds left, the run's three stay"
    );
    sim.shutdown().await;
}

/// The API's own daily limit (no `per_day` configured): its 429 `FlowLimitExceeded` that names the
/// daily limit is not retried, defers the rest of the action for the run (exit 0, nothing failed),
/// and a WARN says to set `per_day`.
#[tokio::test]
async fn the_apis_daily_limit_defers_the_rest_and_suggests_per_day() {
    let sim = simulator::spawn(SimulatorConfig {
        accounts: vec![simulator::SimAccount::new(
            simulator::DEMO_ACCESS_KEY,
            simulator::DEMO_SECRET_KEY,
            60.0,
            Some(3),
        )],
        ..Default::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = budget_config(dir.path(), &sim.endpoint(), 0);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("max_retries = 0", "max_retries = 4");
    std::fs::write(&config, text).unwrap();
    let (code, out, err) = run(keyed(&mut cmd(dir.path())).args([
        "--config",
        config.to_str().unwrap(),
        "sync",
        "--json",
    ]))
    .await;
    assert_eq!(code, 0, "a daily limit defers, never fails: {err}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    let refused = sim
        .requests()
        .iter()
        .filter(|r| r.action == "ListQuality" && r.status == 429)
        .count();
    // Calls already on their way when the first refusal came back are refused too (at most one
    // per slot); none is retried, and none is sent after the action closed.
    assert!((1..=4).contains(&refused), "{refused} refused");
    let asked = asked_ends(&sim);
    let once: std::collections::BTreeSet<&String> = asked.iter().collect();
    assert_eq!(once.len(), asked.len(), "no window asked twice: {asked:?}");
    assert_eq!(asked.len(), 3 + refused, "three accepted, the rest refused");
    assert_eq!(
        summary["calls"],
        asked.len(),
        "every request sent counts: {out}"
    );
    assert!(summary["windows_deferred"].as_u64().unwrap() > 0, "{out}");
    assert!(
        summary["streams"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["windows_failed"] == 0),
        "{out}"
    );
    assert!(
        err.contains("daily limit") && err.contains("per_day"),
        "the WARN suggests per_day: {err}"
    );
    sim.shutdown().await;
}
