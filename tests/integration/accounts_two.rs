//! Issue 21 with two accounts against one simulator, through the binary as a user runs it: each
//! account at its own pace while both run at once, the data of both exact, the lock per account on
//! PostgreSQL (three processes started at once, twenty times), and a daily budget that a kill
//! neither refunds nor counts twice and that frees as its oldest call leaves the 24 hours.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use chrono::{DateTime, Utc};
use rtc_quality_sync::config::Credentials;
use rtc_quality_sync::domain::PgSchema;
use rtc_quality_sync::simulator::{self, SimAccount, SimulatorConfig, SimulatorHandle};
use rtc_quality_sync::store::Store;
use rtc_quality_sync::store::postgres::account_lock_key;
use sqlx::Connection;

use crate::cli::cmd;
use crate::pipeline::{dump, expected, now, settings, values};

/// Account two's keys, known to the simulator beside its demo pair (account one).
const TWO_AK: &str = "AKLTtwoaccount00000000000002";
const TWO_SK: &str = "secret-of-account-two";

/// A simulator with both accounts, generous enough that only the client's pace is measured.
async fn two_account_simulator() -> SimulatorHandle {
    let sim = simulator::spawn(SimulatorConfig {
        rate_limit_per_sec: 60,
        accounts: vec![SimAccount::new(TWO_AK, TWO_SK, 60.0, None)],
        ..Default::default()
    })
    .await
    .unwrap();
    sim.set_data_now(now());
    sim
}

/// Account `one` (the demo pair) paced at `one_rate`, `two` at `two_rate`; one job each, on its own
/// app, in `granularity`.
fn two_account_text(endpoint: &str, one_rate: f64, two_rate: f64, granularity: &str) -> String {
    format!(
        r#"
[source]
endpoint = "{endpoint}"
max_in_flight = 4
timeout_secs = 5
max_retries = 4

[[accounts]]
name = "one"
access_key_env = "ONE_AK"
secret_key_env = "ONE_SK"
[accounts.limits]
ListQuality = {{ per_second = {one_rate} }}

[[accounts]]
name = "two"
access_key_env = "TWO_AK"
secret_key_env = "TWO_SK"
[accounts.limits]
ListQuality = {{ per_second = {two_rate} }}

[[jobs]]
name = "a"
account = "one"
app_id = "app_a"
indicators = ["join_room_success_rate", "stall_rate"]
granularity = {granularity}

[[jobs]]
name = "b"
account = "two"
app_id = "app_b"
indicators = ["stall_rate"]
granularity = {granularity}
"#
    )
}

/// `COMMAND ARGS` on `config` and `url` with both accounts' keys in the environment; started.
fn command(dir: &Path, config: &Path, url: &str, args: &[&str]) -> tokio::process::Child {
    let mut c = cmd(dir);
    c.env("ONE_AK", simulator::DEMO_ACCESS_KEY)
        .env("ONE_SK", simulator::DEMO_SECRET_KEY)
        .env("TWO_AK", TWO_AK)
        .env("TWO_SK", TWO_SK)
        .arg("--config")
        .arg(config)
        .args(args)
        .args(["--database-url", url])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c.spawn().expect("the binary starts")
}

/// `sync --json` of `accounts` (all when empty) at the tests' fixed instant, with both accounts'
/// keys in the environment; started, not awaited.
fn spawn_sync(dir: &Path, config: &Path, url: &str, accounts: &[&str]) -> tokio::process::Child {
    let now = now().to_rfc3339();
    let mut args = vec!["sync", "--json", "--now", &now];
    for a in accounts {
        args.extend(["--account", a]);
    }
    command(dir, config, url, &args)
}

async fn finish(child: tokio::process::Child) -> (i32, String, String) {
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The send times of each account's `ListQuality` calls, by access key, in order.
fn sends_by_account(sim: &SimulatorHandle) -> BTreeMap<String, Vec<DateTime<Utc>>> {
    let mut out: BTreeMap<String, Vec<DateTime<Utc>>> = BTreeMap::new();
    for r in sim.requests().iter().filter(|r| r.action == "ListQuality") {
        let account = r
            .account
            .clone()
            .expect("every request named a known account");
        out.entry(account).or_default().push(r.at);
    }
    for sends in out.values_mut() {
        sends.sort();
    }
    out
}

/// The most sends in any sliding interval of `secs` seconds.
fn most_in(sends: &[DateTime<Utc>], secs: i64) -> usize {
    (0..sends.len())
        .map(|i| {
            sends[i..]
                .iter()
                .take_while(|u| **u - sends[i] < chrono::Duration::seconds(secs))
                .count()
        })
        .max()
        .unwrap_or(0)
}

async fn each_account_at_its_own_pace_both_at_once_and_both_exact(url: &str) {
    let sim = two_account_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let text = two_account_text(&sim.endpoint(), 2.0, 3.0, r#"["1d", "5min"]"#);
    let config = dir.path().join("two.toml");
    std::fs::write(&config, &text).unwrap();

    // `plan` gives each account's share at its own rate; the run takes the longest.
    let (code, plan, err) = finish(command(dir.path(), &config, url, &["plan"])).await;
    assert_eq!(code, 0, "{err}");
    let line = plan.lines().last().unwrap();
    assert!(
        line.contains("from 2 accounts at once")
            && line.contains("at 2 requests/s)")
            && line.contains("at 3 requests/s)"),
        "{plan}"
    );

    let (code, out, err) = finish(spawn_sync(dir.path(), &config, url, &[])).await;
    assert_eq!(code, 0, "{out}{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    let names: Vec<&str> = summary["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["one", "two"], "{out}");
    assert_eq!(summary["throttled"], 0, "{out}");

    let sends = sends_by_account(&sim);
    let one = &sends[simulator::DEMO_ACCESS_KEY];
    let two = &sends[TWO_AK];
    // Four windows per 1d stream at least, more for 5min: enough calls to measure a pace.
    assert!(one.len() >= 8 && two.len() >= 8, "{one:?} {two:?}");
    // PRODUCT.md: in any sliding T seconds an account sends at most max(1, ⌊per_second × T⌋).
    for (sends, rate) in [(one, 2.0), (two, 3.0)] {
        for secs in [1, 2, 3] {
            let most = most_in(sends, secs);
            let allowed = (rate * secs as f64).floor().max(1.0) as usize;
            assert!(most <= allowed, "{most} calls in {secs} s at {rate}/s");
        }
    }
    // Both at once: each account's calls began before the other's ended.
    assert!(
        one[0] < two[two.len() - 1] && two[0] < one[one.len() - 1],
        "the accounts ran one after the other: {one:?} {two:?}"
    );
    // Together faster than either alone would allow: more calls in some second than one quota.
    let mut all: Vec<DateTime<Utc>> = one.iter().chain(two).copied().collect();
    all.sort();
    assert!(
        most_in(&all, 1) > 3,
        "the two quotas were never used at once"
    );

    let store = Store::connect(url).await.unwrap();
    let got = values(&dump(&store).await);
    let want = expected(&settings(&text), &sim, now()).await;
    assert!(
        got.keys().any(|k| k.starts_with("app_a|")) && got.keys().any(|k| k.starts_with("app_b|"))
    );
    assert_eq!(got, want, "both accounts' points exactly as served");
    // Each account's calls were recorded under its own id, and only as many as were sent.
    let mut recorded = BTreeMap::new();
    for (account, action, n) in store
        .calls_24h(rtc_quality_sync::clock::now())
        .await
        .unwrap()
    {
        recorded.insert((account, action), n);
    }
    for (key, sent) in [(simulator::DEMO_ACCESS_KEY, one), (TWO_AK, two)] {
        let id = Credentials::new(key, "unused", None).account_id();
        assert_eq!(
            recorded.get(&(id, "ListQuality".to_string())),
            Some(&(sent.len() as u64)),
            "{recorded:?}"
        );
    }
    store.close().await;
    // Each account's part is a run of its own: `status` shows both.
    let (code, status, err) = finish(command(dir.path(), &config, url, &["status"])).await;
    assert_eq!(code, 0, "{err}");
    for account in ["one", "two"] {
        let run = format!("last run of account {account}: #");
        assert!(
            status
                .lines()
                .any(|l| l.starts_with(&run) && l.contains(" ok: ")),
            "{run} in:\n{status}"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn each_account_at_its_own_pace_both_at_once_and_both_exact_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("q.db").display());
    each_account_at_its_own_pace_both_at_once_and_both_exact(&url).await;
}

#[tokio::test]
async fn each_account_at_its_own_pace_both_at_once_and_both_exact_postgres() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    each_account_at_its_own_pace_both_at_once_and_both_exact(&db.url()).await;
}

/// PostgreSQL, twenty times: a sync of account one, one of account two and a second one of account
/// one, started at once into a new database. Exactly one of the two on account one exits 3 and
/// names the holder; every other exits 0; the points of both accounts are exactly the served ones.
#[tokio::test]
async fn three_processes_on_two_accounts_started_at_once_twenty_times() {
    if crate::helpers::pg_empty_db().await.is_none() {
        return;
    }
    let sim = two_account_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    // 1d only, two calls a second: each run holds its lock a couple of seconds, far longer than
    // the three processes take to start.
    let text = two_account_text(&sim.endpoint(), 2.0, 2.0, r#"["1d"]"#);
    let config = dir.path().join("two.toml");
    std::fs::write(&config, &text).unwrap();
    let want = expected(&settings(&text), &sim, now()).await;
    assert!(!want.is_empty());
    for round in 0..20 {
        let db = crate::helpers::pg_empty_db().await.unwrap();
        let url = db.url();
        let children = [
            spawn_sync(dir.path(), &config, &url, &["one"]),
            spawn_sync(dir.path(), &config, &url, &["two"]),
            spawn_sync(dir.path(), &config, &url, &["one"]),
        ];
        let mut ends = Vec::new();
        for child in children {
            ends.push(finish(child).await);
        }
        let codes: Vec<i32> = ends.iter().map(|e| e.0).collect();
        let said = || format!("round {round}: {ends:#?}");
        assert_eq!(codes[1], 0, "{}", said());
        let mut one = [codes[0], codes[2]];
        one.sort();
        assert_eq!(one, [0, 3], "{}", said());
        let loser = if codes[0] == 3 { &ends[0] } else { &ends[2] };
        assert!(loser.2.contains("another run holds the lock"), "{}", said());
        let store = Store::connect(&url).await.unwrap();
        assert_eq!(values(&dump(&store).await), want, "{}", said());
        store.close().await;
    }
    sim.shutdown().await;
}

/// PostgreSQL: account one's lock session ends mid-run and another session takes that lock. Account
/// one's part stops (nothing of its committed after the loss), account two's part finishes exact,
/// and the run, partial, exits 2 naming the holder (PRODUCT.md: a lost lock stops that account's
/// part of the run).
#[tokio::test]
async fn a_lost_lock_stops_only_its_accounts_part_and_the_run_exits_2() {
    let Some(db) = crate::helpers::pg_empty_db().await else {
        return;
    };
    let url = db.url();
    let sim = simulator::spawn(SimulatorConfig {
        rate_limit_per_sec: 60,
        latency: std::time::Duration::from_millis(300),
        accounts: vec![SimAccount::new(TWO_AK, TWO_SK, 60.0, None)],
        ..Default::default()
    })
    .await
    .unwrap();
    sim.set_data_now(now());
    let dir = tempfile::tempdir().unwrap();
    let text = two_account_text(&sim.endpoint(), 2.0, 2.0, r#"["1d", "5min"]"#);
    let config = dir.path().join("two.toml");
    std::fs::write(&config, &text).unwrap();
    let want: BTreeMap<String, f64> = expected(&settings(&text), &sim, now())
        .await
        .into_iter()
        .filter(|(k, _)| k.starts_with("app_b|"))
        .collect();

    let mut child = spawn_sync(dir.path(), &config, &url, &[]);
    // Account one's windows, committed so far (its job is `a`).
    let committed_of_one = async || -> i64 {
        let Ok(mut c) = sqlx::PgConnection::connect(&url).await else {
            return 0;
        };
        let n = sqlx::query_scalar(
            "SELECT count(*) FROM sync_ledger l JOIN sync_streams s ON s.stream = l.stream \
             WHERE l.state <> 'failed' AND s.label LIKE 'a/%'",
        )
        .fetch_one(&mut c)
        .await
        .unwrap_or(0);
        let _ = c.close().await;
        n
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while committed_of_one().await < 1 {
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        assert!(std::time::Instant::now() < deadline, "no commit in 30 s");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut outsider = sqlx::PgConnection::connect(&url).await.unwrap();
    let me: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut outsider)
        .await
        .unwrap();
    let one = Credentials::new(simulator::DEMO_ACCESS_KEY, "unused", None).account_id();
    let key = account_lock_key(&PgSchema::public(), &one);
    let pid = crate::accounts_store::lock_session(&mut outsider, key).await;
    // One statement: the lock request queues before the run can take its lock again.
    sqlx::query("SELECT pg_terminate_backend($1), pg_advisory_lock($2)")
        .bind(pid)
        .bind(key)
        .execute(&mut outsider)
        .await
        .unwrap();
    // A commit that passed its check just before the loss may still be landing.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let at_loss = committed_of_one().await;

    let (code, out, err) = finish(child).await;
    assert_eq!(code, 2, "{out}{err}");
    let summary: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(summary["status"], "partial", "{out}");
    assert!(
        err.contains("another run holds the lock") && err.contains(&format!("backend pid {me}")),
        "the holder is named: {err}"
    );
    assert_eq!(
        committed_of_one().await,
        at_loss,
        "nothing of one's after the loss"
    );
    let store = Store::connect(&url).await.unwrap();
    let two: BTreeMap<String, f64> = values(&dump(&store).await)
        .into_iter()
        .filter(|(k, _)| k.starts_with("app_b|"))
        .collect();
    assert_eq!(two, want, "account two's part is whole");
    store.close().await;
    let _ = outsider.close().await;
    sim.shutdown().await;
}

/// `source.max_in_flight` bounds each account apart: with one slot each and answers that take
/// 400 ms, an account's next call arrives only after its previous one was answered, while the two
/// accounts' calls overlap.
#[tokio::test]
async fn max_in_flight_bounds_each_account_and_the_two_overlap() {
    let sim = simulator::spawn(SimulatorConfig {
        rate_limit_per_sec: 60,
        latency: std::time::Duration::from_millis(400),
        accounts: vec![SimAccount::new(TWO_AK, TWO_SK, 60.0, None)],
        ..Default::default()
    })
    .await
    .unwrap();
    sim.set_data_now(now());
    let dir = tempfile::tempdir().unwrap();
    let text = two_account_text(&sim.endpoint(), 20.0, 20.0, r#"["1d", "5min"]"#)
        .replace("max_in_flight = 4", "max_in_flight = 1");
    let config = dir.path().join("two.toml");
    std::fs::write(&config, &text).unwrap();
    let url = format!("sqlite://{}", dir.path().join("q.db").display());
    let (code, out, err) = finish(spawn_sync(dir.path(), &config, &url, &[])).await;
    assert_eq!(code, 0, "{out}{err}");
    let sends = sends_by_account(&sim);
    let (one, two) = (&sends[simulator::DEMO_ACCESS_KEY], &sends[TWO_AK]);
    for sends in [one, two] {
        for pair in sends.windows(2) {
            assert!(
                pair[1] - pair[0] >= chrono::Duration::milliseconds(395),
                "two calls of one account in flight at once: {pair:?}"
            );
        }
    }
    let overlap = one.iter().any(|a| {
        two.iter()
            .any(|b| (*a - *b).abs() < chrono::Duration::milliseconds(400))
    });
    assert!(overlap, "each account has its own slot: {one:?} {two:?}");
    sim.shutdown().await;
}

/// A fractional rate holds across consecutive runs: at 0.5 calls/s (one in any 2 s) a second run
/// started right after the first sends its first call at least 2 s after the first run's last.
#[tokio::test]
async fn a_fractional_rate_holds_across_consecutive_runs() {
    let sim = two_account_simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}\n[window]\nmax_lookback_days = 2\n",
        two_account_text(&sim.endpoint(), 0.5, 0.5, r#"["5min"]"#)
    );
    let config = dir.path().join("two.toml");
    std::fs::write(&config, &text).unwrap();
    let url = format!("sqlite://{}", dir.path().join("q.db").display());
    let (code, out, err) = finish(spawn_sync(dir.path(), &config, &url, &["one"])).await;
    assert_eq!(code, 0, "{out}{err}");
    let first = sends_by_account(&sim)[simulator::DEMO_ACCESS_KEY].clone();
    let (code, out, err) = finish(spawn_sync(dir.path(), &config, &url, &["one"])).await;
    assert_eq!(code, 0, "{out}{err}");
    let all = sends_by_account(&sim)[simulator::DEMO_ACCESS_KEY].clone();
    assert!(
        all.len() > first.len(),
        "the second run asked its provisional day again"
    );
    for pair in all.windows(2) {
        assert!(
            pair[1] - pair[0] >= chrono::Duration::seconds(2),
            "two calls within 2 s at 0.5 calls/s: {pair:?}"
        );
    }
    sim.shutdown().await;
}
