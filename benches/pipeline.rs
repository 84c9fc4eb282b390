//! Pipeline benchmark: a 30-day 5-minute backfill of 20 streams against the simulator at the
//! documented 2 calls/s with 300 ms latency, run as the real binary.
//!
//! Prints calls made vs the plan's minimum, achieved calls/s vs the limit, throttled responses and
//! the sync process's peak memory, then one summary line:
//! `pipeline calls=100 min_calls=100 rate_ratio=0.97 throttled=0 peak_rss_mib=41`.
//!
//! Then both APIs at once: 12 five-minute ListQuality streams and 2 distribution streams (one local
//! day per call), each API paced at its own 2 calls/s, in one run:
//! `distribution calls=… min_calls=… rate_ratio=… quality_rate_ratio=… throttled=… time_ratio=…`,
//! where each rate ratio is that API's calls/s over its own quota, and `time_ratio` the run's
//! duration over the longer of the two APIs' own spans (1.0: the slower one alone sets the pace).
//!
//! Then a `[[rooms]]` block (issue 20): its app's calls listed with ListRoomInfo (10 calls/s), then
//! the rooms' quality with ListQuality (2 calls/s), over 7 days:
//! `rooms calls=… min_calls=… rate_ratio=… list_rate_ratio=…`, where `calls` are the room streams'
//! ListQuality calls, `min_calls` the fewest windows that cover the listed calls' buckets (the
//! planner's own count, from what `rtc_rooms` holds after the run), and each ratio that action's
//! calls/s over its quota while its calls ran.
//!
//! Then two accounts at once (issue 21): 8 five-minute ListQuality streams on each, each account
//! paced at its own 2 calls/s, in one run:
//! `accounts n=2 calls=… min_calls=… rate_ratio_each=… combined_ratio=… throttled=…`, where
//! `rate_ratio_each` is the lower of the two accounts' calls/s over their own quota, and
//! `combined_ratio` both accounts' calls/s over the sum of their quotas (1.0: two accounts take the
//! time of one).

mod common;
use common::vm_hwm_kib;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rtc_quality_sync::config::Settings;
use rtc_quality_sync::planner;
use rtc_quality_sync::simulator::{self, SimulatorConfig};

const STREAMS: usize = 20;

fn config_text(endpoint: &str) -> String {
    let mut text = format!(
        "[source]\nendpoint = \"{endpoint}\"\nrequests_per_second = 2.0\nmax_in_flight = 4\n"
    );
    for i in 0..STREAMS {
        text.push_str(&format!(
            "[[jobs]]\nname = \"bench-{i}\"\napp_id = \"bench_app_{i}\"\n\
             indicators = [\"join_room_success_rate\", \"stall_rate\", \"first_frame_send_success_rate\"]\n\
             granularity = \"5min\"\n"
        ));
    }
    text
}

/// 12 five-minute jobs and one distribution job of 2 streams: about 60 calls of each API.
fn both_config_text(endpoint: &str) -> String {
    let mut text = format!(
        "[source]\nendpoint = \"{endpoint}\"\nrequests_per_second = 2.0\n\
         distribution_requests_per_second = 2.0\nmax_in_flight = 4\n"
    );
    for i in 0..12 {
        text.push_str(&format!(
            "[[jobs]]\nname = \"bench-{i}\"\napp_id = \"bench_app_{i}\"\n\
             indicators = [\"stall_rate\"]\ngranularity = \"5min\"\n"
        ));
    }
    text.push_str(
        "[[distributions]]\nname = \"where\"\napp_id = \"bench_app_0\"\n\
         indicators = [\"stall_rate\", \"join_room_success_rate\"]\ndimensions = [\"Province\"]\n",
    );
    text
}

/// Calls per second over a request log's span.
fn rate_of(log: &[&simulator::RequestRecord]) -> f64 {
    let span =
        (log.last().unwrap().at - log.first().unwrap().at).num_milliseconds() as f64 / 1000.0;
    (log.len() - 1) as f64 / span
}

/// Runs the binary's `sync --quiet` on `config` into `url` at `now`, with `env` (the keys); returns
/// its wall time in seconds once it succeeded.
fn sync_binary(config: &Path, url: &str, now: DateTime<Utc>, env: &[(&str, &str)]) -> f64 {
    let started = Instant::now();
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_rtc-quality-sync"))
        .args(["sync", "--quiet", "--config"])
        .arg(config)
        .args(["--database-url", url, "--now", &now.to_rfc3339()])
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .status()
        .expect("the binary runs");
    assert!(status.success(), "sync failed: {status}");
    started.elapsed().as_secs_f64()
}

/// The simulator's demo pair, as `VOLC_ACCESSKEY`/`VOLC_SECRETKEY`.
const DEMO_KEYS: [(&str, &str); 2] = [
    ("VOLC_ACCESSKEY", simulator::DEMO_ACCESS_KEY),
    ("VOLC_SECRETKEY", simulator::DEMO_SECRET_KEY),
];

/// A simulator on `sim` following `now`, and a temp dir with the config `text_of` writes for its
/// endpoint, parsed.
async fn setup(
    sim: SimulatorConfig,
    now: DateTime<Utc>,
    text_of: impl Fn(&str) -> String,
) -> (
    simulator::SimulatorHandle,
    tempfile::TempDir,
    std::path::PathBuf,
    Settings,
) {
    let sim = simulator::spawn(sim).await.expect("the simulator starts");
    sim.set_data_now(now);
    let dir = tempfile::tempdir().expect("a temp dir");
    let config = dir.path().join("bench.toml");
    let text = text_of(&sim.endpoint());
    std::fs::write(&config, &text).unwrap();
    let settings = Settings::parse(&text, Path::new("bench.toml")).unwrap();
    (sim, dir, config, settings)
}

async fn both_apis_at_once(now: DateTime<Utc>) {
    let (sim, dir, config, settings) = setup(
        SimulatorConfig {
            latency: Duration::from_millis(300),
            rate_limit_per_sec: 2,
            distribution_rate_limit_per_sec: 2,
            ..Default::default()
        },
        now,
        both_config_text,
    )
    .await;
    let plan = planner::plan(
        &settings.window,
        &settings.streams(),
        &[],
        now,
        Default::default(),
    )
    .unwrap();
    let min_calls: usize = plan
        .streams
        .iter()
        .filter(|s| s.stream.starts_with("where/"))
        .map(|s| s.windows.len())
        .sum();
    let db = dir.path().join("bench.db");
    let url = format!("sqlite://{}", db.display());
    let elapsed = sync_binary(&config, &url, now, &DEMO_KEYS);
    let log = sim.requests();
    let dist: Vec<_> = log
        .iter()
        .filter(|r| r.action == "ListQualityDistribution")
        .collect();
    let quality: Vec<_> = log
        .iter()
        .filter(|r| r.action != "ListQualityDistribution")
        .collect();
    let throttled = log.iter().filter(|r| r.status == 429).count();
    // Each API alone would take its calls' span at its own rate; together the run is as long as the
    // longer of the two.
    let longer = ((dist.len() - 1) as f64 / 2.0).max((quality.len() - 1) as f64 / 2.0);
    let span =
        (log.last().unwrap().at - log.first().unwrap().at).num_milliseconds() as f64 / 1000.0;
    println!(
        "both APIs at once: {} ListQuality and {} ListQualityDistribution calls in {elapsed:.1} s \
         (calls spanning {span:.1} s; each API alone at its 2 calls/s: {longer:.1} s), {throttled} throttled",
        quality.len(),
        dist.len()
    );
    println!(
        "distribution calls={} min_calls={min_calls} rate_ratio={:.3} quality_rate_ratio={:.3} throttled={throttled} time_ratio={:.3}",
        dist.len(),
        rate_of(&dist) / 2.0,
        rate_of(&quality) / 2.0,
        span / longer
    );
    sim.shutdown().await;
}

/// One `[[rooms]]` block over 7 days, 5-minute buckets.
fn rooms_config_text(endpoint: &str) -> String {
    format!(
        "[source]\nendpoint = \"{endpoint}\"\nrequests_per_second = 2.0\n\
         room_list_requests_per_second = 10.0\nmax_in_flight = 4\n[window]\nmax_lookback_days = 7\n\
         [[rooms]]\nname = \"rooms\"\napp_id = \"bench_rooms\"\nindicators = [\"stall_rate\"]\n\
         granularity = \"5min\"\n"
    )
}

async fn rooms_block(now: DateTime<Utc>) {
    let (sim, dir, config, settings) = setup(
        SimulatorConfig {
            latency: Duration::from_millis(300),
            rate_limit_per_sec: 2,
            room_list_rate_limit_per_sec: 10,
            ..Default::default()
        },
        now,
        rooms_config_text,
    )
    .await;
    let db = dir.path().join("bench.db");
    let url = format!("sqlite://{}", db.display());
    let elapsed = sync_binary(&config, &url, now, &DEMO_KEYS);
    // The fewest windows: the planner's, over the calls the run listed, from an empty ledger.
    let store = rtc_quality_sync::store::Store::connect(&url).await.unwrap();
    let calls: Vec<_> = store
        .room_calls("bench_rooms")
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.call)
        .collect();
    store.close().await;
    let block = &settings.rooms[0];
    let streams = planner::room_streams(block, &calls, settings.window.timezone, now);
    let min_calls = planner::plan(&settings.window, &streams, &[], now, Default::default())
        .unwrap()
        .request_count();
    let log = sim.requests();
    let quality: Vec<_> = log.iter().filter(|r| r.action == "ListQuality").collect();
    let list: Vec<_> = log.iter().filter(|r| r.action == "ListRoomInfo").collect();
    let throttled = log.iter().filter(|r| r.status == 429).count();
    println!(
        "rooms: {} calls of {} rooms listed in {} ListRoomInfo calls, then {} ListQuality calls for \
         {} room streams (plan minimum {min_calls}) in {elapsed:.1} s, {throttled} throttled",
        calls.len(),
        calls
            .iter()
            .map(|c| c.room_id.as_str())
            .collect::<std::collections::BTreeSet<_>>()
            .len(),
        list.len(),
        quality.len(),
        streams.len()
    );
    println!(
        "rooms calls={} min_calls={min_calls} rate_ratio={:.3} list_rate_ratio={:.3} throttled={throttled}",
        quality.len(),
        rate_of(&quality) / 2.0,
        rate_of(&list) / 10.0
    );
    sim.shutdown().await;
}

/// Account two's keys, beside the simulator's demo pair (account one).
const TWO_AK: &str = "AKLTbenchaccount0000000002";
const TWO_SK: &str = "bench-secret-two";

/// Two accounts, 8 five-minute jobs each (one app per job).
fn accounts_config_text(endpoint: &str) -> String {
    let mut text = format!("[source]\nendpoint = \"{endpoint}\"\nmax_in_flight = 4\n");
    for (name, var) in [("one", "ONE"), ("two", "TWO")] {
        text.push_str(&format!(
            "[[accounts]]\nname = \"{name}\"\naccess_key_env = \"{var}_AK\"\n\
             secret_key_env = \"{var}_SK\"\n[accounts.limits]\n\
             ListQuality = {{ per_second = 2.0 }}\n"
        ));
    }
    for (account, app) in [("one", "a"), ("two", "b")] {
        for i in 0..8 {
            text.push_str(&format!(
                "[[jobs]]\nname = \"{account}-{i}\"\naccount = \"{account}\"\n\
                 app_id = \"bench_{app}_{i}\"\nindicators = [\"stall_rate\"]\ngranularity = \"5min\"\n"
            ));
        }
    }
    text
}

async fn two_accounts_at_once(now: DateTime<Utc>) {
    let (sim, dir, config, settings) = setup(
        SimulatorConfig {
            latency: Duration::from_millis(300),
            rate_limit_per_sec: 2,
            accounts: vec![simulator::SimAccount::new(TWO_AK, TWO_SK, 2.0, None)],
            ..Default::default()
        },
        now,
        accounts_config_text,
    )
    .await;
    let min_calls = planner::plan(
        &settings.window,
        &settings.streams(),
        &[],
        now,
        Default::default(),
    )
    .unwrap()
    .request_count();
    let db = dir.path().join("bench.db");
    let elapsed = sync_binary(
        &config,
        &format!("sqlite://{}", db.display()),
        now,
        &[
            ("ONE_AK", simulator::DEMO_ACCESS_KEY),
            ("ONE_SK", simulator::DEMO_SECRET_KEY),
            ("TWO_AK", TWO_AK),
            ("TWO_SK", TWO_SK),
        ],
    );
    let log = sim.requests();
    let of = |key: &str| -> Vec<_> {
        log.iter()
            .filter(|r| r.account.as_deref() == Some(key))
            .collect()
    };
    let (one, two) = (of(simulator::DEMO_ACCESS_KEY), of(TWO_AK));
    let all: Vec<_> = log.iter().collect();
    let throttled = log.iter().filter(|r| r.status == 429).count();
    let (one_ratio, two_ratio) = (rate_of(&one) / 2.0, rate_of(&two) / 2.0);
    println!(
        "two accounts at once: {} and {} ListQuality calls in {elapsed:.1} s, {:.3} and {:.3} of \
         each account's 2 calls/s, {:.3} calls/s together (quotas 4), {throttled} throttled",
        one.len(),
        two.len(),
        one_ratio,
        two_ratio,
        rate_of(&all)
    );
    println!(
        "accounts n=2 calls={} min_calls={min_calls} rate_ratio_each={:.3} combined_ratio={:.3} throttled={throttled}",
        log.len(),
        one_ratio.min(two_ratio),
        rate_of(&all) / 4.0
    );
    sim.shutdown().await;
}

fn main() {
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    rt.block_on(async {
        let now: DateTime<Utc> = rtc_quality_sync::clock::now();
        let sim = simulator::spawn(SimulatorConfig {
            latency: Duration::from_millis(300),
            rate_limit_per_sec: 2,
            ..Default::default()
        })
        .await
        .expect("the simulator starts");
        sim.set_data_now(now);

        let dir = tempfile::tempdir().expect("a temp dir");
        let config = dir.path().join("bench.toml");
        let text = config_text(&sim.endpoint());
        std::fs::write(&config, &text).unwrap();
        let settings = Settings::parse(&text, Path::new("bench.toml")).unwrap();
        let min_calls = planner::plan(&settings.window, &settings.streams(), &[], now, Default::default())
            .unwrap()
            .request_count();

        let db = dir.path().join("bench.db");
        let started = Instant::now();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rtc-quality-sync"))
            .args(["sync", "--quiet", "--config"])
            .arg(&config)
            .arg("--database-url")
            .arg(format!("sqlite://{}", db.display()))
            .args(["--now", &now.to_rfc3339()])
            .env("VOLC_ACCESSKEY", simulator::DEMO_ACCESS_KEY)
            .env("VOLC_SECRETKEY", simulator::DEMO_SECRET_KEY)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let pid = child.id();
        let mut peak_kib = 0;
        let status = loop {
            if let Some(k) = vm_hwm_kib(&pid.to_string()) {
                peak_kib = peak_kib.max(k);
            }
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let elapsed = started.elapsed();
        let out = child.wait_with_output().unwrap();
        assert!(status.success(), "sync failed: {status}");
        print!("{}", String::from_utf8_lossy(&out.stdout));

        let log = sim.requests();
        let calls = log.len();
        let throttled = log.iter().filter(|r| r.status == 429).count();
        let span = (log.last().unwrap().at - log.first().unwrap().at).num_milliseconds() as f64 / 1000.0;
        let rate = (calls - 1) as f64 / span;
        let rate_ratio = rate / 2.0;
        let mut max_in_second = 0;
        for (i, r) in log.iter().enumerate() {
            let n = log[i..]
                .iter()
                .take_while(|u| u.at - r.at < chrono::Duration::seconds(1))
                .count();
            max_in_second = max_in_second.max(n);
        }
        println!(
            "{STREAMS} streams, 5-minute backfill of 30 days: {calls} calls (plan minimum {min_calls}) in {:.1} s, \
             {rate:.3} calls/s (limit 2), at most {max_in_second} calls in any second, {throttled} throttled, \
             peak RSS of the sync process {:.1} MiB",
            elapsed.as_secs_f64(),
            peak_kib as f64 / 1024.0
        );
        println!(
            "pipeline calls={calls} min_calls={min_calls} rate_ratio={rate_ratio:.3} throttled={throttled} peak_rss_mib={}",
            (peak_kib as f64 / 1024.0).round() as u64
        );
        sim.shutdown().await;
        both_apis_at_once(now).await;
        rooms_block(now).await;
        two_accounts_at_once(now).await;
    });
}
