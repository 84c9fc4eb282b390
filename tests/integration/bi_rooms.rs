//! Issue 20, "which rooms were bad": the starter query `09_worst_rooms_yesterday.sql` on both
//! backends after a real sync of a `[[rooms]]` block against the simulator, and `demo`'s line naming
//! the worst room; each checked against the worst rooms computed here, apart from SQL, from the
//! stored points and the calls the simulator lists.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rtc_quality_sync::config::Settings;
use rtc_quality_sync::discovery;
use rtc_quality_sync::domain::{Granularity, RunStatus, WindowState};
use rtc_quality_sync::planner;
use rtc_quality_sync::simulator::{self, SimulatorConfig};
use rtc_quality_sync::store::{MetricRow, Store};

use crate::bi::{ResultRow, num, run_postgres, run_sqlite, text};
use crate::cli::{cmd, run};
use crate::pipeline::{settings, sync_at};

/// The starter query's file name, the same in `sql/sqlite` and `sql/postgres`.
pub const WORST_ROOMS: &str = "09_worst_rooms_yesterday.sql";

const SEED: u64 = 11;
/// The app whose rooms the block lists.
const APP: &str = "app_r";
/// An app whose room only a `[[jobs]]` entry asks: none of its calls is listed.
const JOB_APP: &str = "app_j";

/// A call as the query counts it: its app, room, span and active users.
#[derive(Debug, Clone)]
pub struct Call {
    pub app_id: String,
    pub room_id: String,
    pub created: DateTime<Utc>,
    /// `None` while the call runs.
    pub destroyed: Option<DateTime<Utc>>,
    pub users: i64,
}

/// One expected row: app, room, returned name, day, value (2 places), calls, peak users.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    pub app_id: String,
    pub room_id: String,
    pub indicator: String,
    pub day: String,
    pub value: f64,
    pub calls: i64,
    pub peak: i64,
}

/// What the query should answer, computed apart from SQL: the newest local date with a settled
/// `1d` room stall point; on it, each room series' stall value, with the calls of `calls` that ran
/// during its day (`[ts, ts + 24 h)`) and their highest user count; rooms without such a call left
/// out; worst first (ties by app, room, name in byte order); at most 10.
pub fn expected_worst_rooms(points: &[MetricRow], calls: &[Call]) -> Vec<Expected> {
    let room_days: Vec<&MetricRow> = points
        .iter()
        .filter(|p| {
            p.granularity == "1d"
                && p.settled
                && !p.room_id.is_empty()
                && p.indicator.ends_with("stall_rate")
        })
        .collect();
    let Some(day) = room_days.iter().filter_map(|p| p.local_date.clone()).max() else {
        return Vec::new();
    };
    let mut rows: Vec<(f64, Expected)> = room_days
        .iter()
        .filter(|p| p.local_date.as_deref() == Some(day.as_str()))
        .filter_map(|p| {
            let start: DateTime<Utc> = p.ts.parse().unwrap();
            let end = start + Duration::hours(24);
            let ran: Vec<&Call> = calls
                .iter()
                .filter(|c| c.app_id == p.app_id && c.room_id == p.room_id)
                .filter(|c| c.created < end && c.destroyed.is_none_or(|d| d > start))
                .collect();
            let peak = ran.iter().map(|c| c.users).max()?;
            let row = Expected {
                app_id: p.app_id.clone(),
                room_id: p.room_id.clone(),
                indicator: p.indicator.clone(),
                day: day.clone(),
                value: (p.value * 100.0).round() / 100.0,
                calls: ran.len() as i64,
                peak,
            };
            Some((p.value, row))
        })
        .collect();
    rows.sort_by(|(a, x), (b, y)| {
        b.total_cmp(a).then_with(|| {
            (&x.app_id, &x.room_id, &x.indicator).cmp(&(&y.app_id, &y.room_id, &y.indicator))
        })
    });
    rows.into_iter().take(10).map(|(_, r)| r).collect()
}

/// The query's rows as [`Expected`] rows.
fn rows_of(rows: &[ResultRow]) -> Vec<Expected> {
    rows.iter()
        .map(|r| Expected {
            app_id: text(r, "app_id").into(),
            room_id: text(r, "room_id").into(),
            indicator: text(r, "indicator").into(),
            day: text(r, "day").into(),
            value: num(r, "value"),
            calls: num(r, "calls") as i64,
            peak: num(r, "peak_users") as i64,
        })
        .collect()
}

fn rooms_config(endpoint: &str) -> Settings {
    settings(&format!(
        r#"
[source]
endpoint = "{endpoint}"
requests_per_second = 50
room_list_requests_per_second = 100
max_in_flight = 4
timeout_secs = 2
max_retries = 8

[window]
max_lookback_days = 4

[[rooms]]
name = "bi-rooms"
app_id = "{APP}"
indicators = ["stall_rate"]
granularity = ["1d", "5min"]

[[jobs]]
name = "room-job"
app_id = "{JOB_APP}"
room_id = "room-1"
indicators = ["stall_rate"]
granularity = "1d"
"#
    ))
}

/// Syncs the block and the job at `now` into `store`; returns the settings, the stored points and
/// the calls a complete listing at `now` returns, as the simulator computes them.
async fn load(store: &Store, now: DateTime<Utc>) -> (Settings, Vec<MetricRow>, Vec<Call>) {
    let sim = simulator::spawn(SimulatorConfig {
        seed: SEED,
        data_now: Some(now),
        rate_limit_per_sec: 60,
        room_list_rate_limit_per_sec: 200,
        latency: std::time::Duration::ZERO,
        ..Default::default()
    })
    .await
    .unwrap();
    let cfg = rooms_config(&sim.endpoint());
    let report = sync_at(&cfg, store, now).await;
    assert_eq!(report.status, RunStatus::Ok, "{report:?}");
    sim.shutdown().await;
    let l = discovery::listing_start(&cfg.window, &cfg.rooms[0].granularities, now);
    let calls = simulator::rooms::room_calls(SEED, APP, l, now, now)
        .into_iter()
        .map(|c| Call {
            app_id: APP.into(),
            destroyed: c.finished_at(now).then_some(c.destroyed),
            room_id: c.room_id,
            created: c.created,
            users: c.active_user_num,
        })
        .collect();
    (cfg, store.metrics(None).await.unwrap(), calls)
}

/// 09 after a real sync: the rooms, values, calls, peak users and order computed apart, on the day
/// the ledger says is the last settled one; the job's room, with no listed call, left out.
async fn worst_rooms_query_names_the_listed_rooms_of_the_last_settled_day(url: &str) {
    let store = Store::connect(url).await.unwrap();
    let now = rtc_quality_sync::clock::now();
    let (cfg, points, calls) = load(&store, now).await;
    let got = if let Some(path) = url.strip_prefix("sqlite://") {
        run_sqlite(std::path::Path::new(path), Some(&[WORST_ROOMS])).await
    } else {
        run_postgres(url, Some(&[WORST_ROOMS])).await
    };
    let got = rows_of(&got[WORST_ROOMS]);
    let expected = expected_worst_rooms(&points, &calls);
    assert_eq!(got.len(), 10, "30 rooms, two stall rates each: {got:#?}");
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        // Rooms, names, days, calls and peak users exactly, in this order; values to rounding.
        assert!((g.value - e.value).abs() < 0.001, "{g:?} != {e:?}");
        let same = Expected {
            value: e.value,
            ..g.clone()
        };
        assert_eq!(&same, e, "in the order of {expected:#?}");
        assert!(g.calls >= 1 && (1..=50).contains(&g.peak), "{g:?}");
    }
    // The store holds what the simulator lists, so the query's counts are the simulator's.
    let stored = stored_calls(&store, APP).await;
    assert_eq!(expected_worst_rooms(&points, &stored), expected);

    // The day: the end of the room streams' newest settled `1d` ledger row is where the settle
    // rule cut the window fetched last, and it is the day's end.
    let ledger = crate::helpers::windows(&store).await;
    let settled = ledger
        .iter()
        .filter(|e| e.stream.starts_with("bi-rooms/") && e.stream.ends_with("/1d"))
        .filter(|e| e.state == WindowState::Settled)
        .max_by_key(|e| e.window.end)
        .expect("a settled room day");
    assert_eq!(
        settled.window.end,
        planner::settled_until(&cfg.window, Granularity::Day, settled.fetched_at)
    );
    let tz = cfg.window.timezone;
    let day: NaiveDate = (settled.window.end - Duration::days(1))
        .with_timezone(&tz)
        .date_naive();
    assert!(
        got.iter().all(|g| g.day == day.to_string()),
        "{day}: {got:?}"
    );

    // The job's room had a settled day too, but no listed call: not shown.
    assert!(points.iter().any(|p| p.app_id == JOB_APP
        && p.granularity == "1d"
        && p.settled
        && p.local_date.as_deref() == Some(&day.to_string())));
    assert!(got.iter().all(|g| g.app_id == APP), "{got:?}");
    // The ten shown are the worst of more: the permanent rooms alone have 20 stall series a day.
    let ranked = points
        .iter()
        .filter(|p| p.app_id == APP && p.granularity == "1d" && p.settled)
        .filter(|p| p.local_date.as_deref() == Some(&day.to_string()))
        .count();
    assert!(ranked >= 20, "{ranked} room series on {day}");
    store.close().await;
}

/// The calls `rtc_rooms` holds for `app_id`.
async fn stored_calls(store: &Store, app_id: &str) -> Vec<Call> {
    store
        .room_calls(app_id)
        .await
        .unwrap()
        .into_iter()
        .map(|s| Call {
            app_id: s.app_id,
            room_id: s.call.room_id,
            created: s.call.created_at,
            destroyed: s.call.destroyed_at,
            users: s.call.active_user_num,
        })
        .collect()
}

/// `1 call`, `2 calls`: as the demo counts.
fn count(n: i64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// `demo` lists the rooms of its first app and names the worst room of the last settled day: the
/// first row of the starter query, as computed here from what the demo stored.
async fn demo_names_the_worst_room_of_the_last_settled_day(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) =
        run(cmd(dir.path()).args(["demo", "--quiet", "--streams", "1", "--database-url", url]))
            .await;
    assert_eq!(code, 0, "{out}{err}");
    let store = Store::connect(url).await.unwrap();
    let points = store.metrics(None).await.unwrap();
    let calls = stored_calls(&store, "demo_app_0").await;
    assert!(
        calls.len() > 100,
        "two weeks of calls listed: {}",
        calls.len()
    );
    let worst = expected_worst_rooms(&points, &calls);
    let w = worst.first().expect("a room with a settled day");
    let line = format!(
        "worst room on {}: {} / {}, {} {}%, {}, peak {}",
        w.day,
        w.app_id,
        w.room_id,
        w.indicator,
        w.value,
        count(w.calls, "call", "calls"),
        count(w.peak, "user", "users")
    );
    assert!(
        out.lines().any(|l| l == line),
        "expected {line:?} in:\n{out}"
    );
    let file = if url.starts_with("sqlite://") {
        "sql/sqlite/09_worst_rooms_yesterday.sql"
    } else {
        "sql/postgres/09_worst_rooms_yesterday.sql"
    };
    assert!(out.contains(file), "how to run the query: {out}");
    // Its status shows the rooms block as one line, with its room streams counted there.
    assert!(
        !out.lines().any(|l| l.starts_with("demo-rooms/")
            && !l.starts_with("demo-rooms/rooms ")
            && !l.contains("windows ok")),
        "a line per room stream in:\n{out}"
    );
    let block = out
        .lines()
        .rfind(|l| l.starts_with("demo-rooms/rooms "))
        .unwrap_or_else(|| panic!("the block's line in:\n{out}"));
    assert!(
        block.contains("calls in") && !block.contains(" 0 room streams"),
        "{block}"
    );
    store.close().await;
}

crate::helpers::on_both_urls!(
    worst_rooms_query_names_the_listed_rooms_of_the_last_settled_day,
    demo_names_the_worst_room_of_the_last_settled_day,
);
