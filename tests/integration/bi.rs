//! The BI starter queries of `sql/`: every file run on its backend against a real backfill, each
//! checked for what a dashboard user would see.
//!
//! The queries use the database's own clock (`now()`), so the data is loaded at that clock's current
//! time, and every expectation that depends on the hour is derived from it. They are run through the simple query protocol, as `psql` and `sqlite3` run them, and their
//! rows are compared with what the store holds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};
use rtc_quality_sync::config::Settings;
use rtc_quality_sync::domain::{LedgerEntry, RunStatus, WindowState};
use rtc_quality_sync::planner;
use rtc_quality_sync::store::{DistributionRow, MetricRow, Store};
use serde_json::Value;
use sqlx::{Column, Connection, Row, TypeInfo, ValueRef};

use crate::helpers::{pg_store, sqlite_store};
use crate::pipeline::{config_text, settings, simulator, sync_at};

/// One result row: column name to value. Numbers are JSON numbers, booleans JSON booleans (SQLite's
/// 0/1 stay numbers), times RFC 3339 text.
pub(crate) type ResultRow = BTreeMap<String, Value>;

/// The nine files, in order; a new file must get a check here (09's is in `bi_rooms`).
const QUERIES: [&str; 9] = [
    "01_daily_trend.sql",
    "02_worst_rooms_this_week.sql",
    "03_five_minute_drilldown.sql",
    "04_coverage_and_freshness.sql",
    "05_still_provisional.sql",
    "06_stall_rate_by_province.sql",
    "07_worst_network_types.sql",
    "08_join_success_by_country.sql",
    crate::bi_rooms::WORST_ROOMS,
];

/// Rooms for "worst rooms this week", beside `room-b` (app_b/room-1) of the shared test config.
const EXTRA_JOBS: &str = r#"
[[jobs]]
name = "room-c"
app_id = "app_b"
room_id = "room-2"
indicators = ["stall_rate"]
granularity = "1d"

[[jobs]]
name = "room-d"
app_id = "app_c"
room_id = "room-3"
indicators = ["stall_rate"]
granularity = "1d"

[[jobs]]
name = "app-c-android"
app_id = "app_c"
os = ["android"]
indicators = ["stall_rate"]
granularity = "1d"
"#;

/// What a backfill left for the queries to read, and the instant it ran at.
struct Loaded {
    settings: Settings,
    points: Vec<MetricRow>,
    /// The `quality_distribution` rows.
    distribution: Vec<DistributionRow>,
    ledger: Vec<LedgerEntry>,
    now: DateTime<Utc>,
}

/// Backfills the horizon at the database's current time; returns what it stored.
async fn load(store: &Store) -> Loaded {
    let now = database_now(store).await;
    let sim = simulator(60, "", now).await;
    let settings = settings(&config_text(&sim.endpoint(), 50.0, EXTRA_JOBS));
    let report = sync_at(&settings, store, now).await;
    assert_eq!(report.status, RunStatus::Ok, "{report:?}");
    let points = store.metrics(None).await.unwrap();
    assert!(!points.is_empty());
    load_distribution(&settings, store, now).await;
    let distribution = store.distribution(None).await.unwrap();
    assert!(!distribution.is_empty());
    let ledger = crate::helpers::windows(store).await;
    sim.shutdown().await;
    Loaded {
        settings,
        points,
        distribution,
        ledger,
        now,
    }
}

/// The last 9 local days of app_a's distributions (stall rate by province and by network type, join
/// success by country), one call per day, indicator and dimension, fetched from the simulator over
/// HTTP and committed as `sync` commits a window.
async fn load_distribution(settings: &Settings, store: &Store, now: DateTime<Utc>) {
    use rtc_quality_sync::api::client::Client;
    use rtc_quality_sync::api::distribution::ListQualityDistributionRequest;
    use rtc_quality_sync::api::{Fetch, distribution::distribution_batch};
    use rtc_quality_sync::domain::{Dimension, Granularity, ProductType};

    let client = Client::new(&settings.source, crate::pipeline::demo_credentials()).unwrap();
    let tz = settings.window.timezone;
    let end = planner::horizon(&settings.window, Granularity::Day, now).end;
    for (indicator, dimension) in [
        ("stall_rate", Dimension::Province),
        ("stall_rate", Dimension::Access),
        ("join_room_success_rate", Dimension::Country),
    ] {
        for d in 1..=9 {
            let day = rtc_quality_sync::domain::Window::new(
                end - Duration::days(d),
                end - Duration::days(d - 1),
            );
            let req = ListQualityDistributionRequest::for_window(
                "app_a",
                day,
                tz,
                indicator,
                dimension,
                ProductType::Native,
                None,
            );
            let fetched = loop {
                match client.call(&req).await {
                    Ok(f) => break f,
                    Err(e) if e.is_retryable() => {
                        tokio::time::sleep(std::time::Duration::from_millis(300)).await
                    }
                    Err(e) => panic!("{e}"),
                }
            };
            let stream = rtc_quality_sync::domain::DistributionJob {
                name: "bi-distribution".into(),
                app_id: "app_a".into(),
                indicators: vec![indicator.to_string()],
                dimensions: vec![dimension],
                product_type: ProductType::Native,
                platform: String::new(),
            }
            .streams(tz)
            .remove(0);
            let batch = distribution_batch(
                &Fetch {
                    stream: &stream,
                    window: day,
                    indicators: &stream.job.indicators,
                    attempts: 1,
                    fetched_at: now,
                    timezone: tz,
                },
                &fetched,
                planner::settled_until(&settings.window, Granularity::Day, now),
            );
            store.commit_window(&batch).await.unwrap();
        }
    }
}

/// What a distribution query over the last 7 days should answer: per (app, product type, indicator,
/// dimension value) of `dimension` whose indicator ends with `suffix`, the mean rounded to 2 places
/// and the day count, as `(app, product type, indicator, value, mean, days)`.
fn distribution_means(
    loaded: &Loaded,
    dimension: &str,
    suffix: &str,
) -> Vec<(String, String, String, String, f64, i64)> {
    let days = last_settled_days(
        loaded
            .distribution
            .iter()
            .filter(|r| r.settled)
            .filter_map(|r| r.local_date.as_deref()),
    );
    let mut groups: BTreeMap<(String, String, String, String), Vec<f64>> = BTreeMap::new();
    for r in &loaded.distribution {
        let in_week = r.local_date.as_deref().is_some_and(|d| days.contains(d));
        if r.dimension == dimension && r.indicator.ends_with(suffix) && r.settled && in_week {
            groups
                .entry((
                    r.app_id.clone(),
                    r.product_type.clone(),
                    r.indicator.clone(),
                    r.dimension_value.clone(),
                ))
                .or_default()
                .push(r.value);
        }
    }
    groups
        .into_iter()
        .map(|((app, product, indicator, value), values)| {
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            (
                app,
                product,
                indicator,
                value,
                (mean * 100.0).round() / 100.0,
                values.len() as i64,
            )
        })
        .collect()
}

/// "The last 7 settled local days": the newest settled `local_date` and the 6 before it, as text.
fn last_settled_days<'a>(settled_days: impl Iterator<Item = &'a str>) -> BTreeSet<String> {
    let newest = settled_days.max().expect("a settled day");
    let newest = NaiveDate::parse_from_str(newest, "%Y-%m-%d").unwrap();
    (0..7)
        .map(|i| (newest - Duration::days(i)).to_string())
        .collect()
}

/// The rows of a distribution query as `distribution_means` gives them, in the query's order.
fn distribution_rows(
    rows: &[ResultRow],
    value_column: &str,
) -> Vec<(String, String, String, String, f64, i64)> {
    rows.iter()
        .map(|r| {
            (
                text(r, "app_id").to_string(),
                text(r, "product_type").to_string(),
                text(r, "indicator").to_string(),
                text(r, value_column).to_string(),
                num(r, "avg_value"),
                num(r, "days") as i64,
            )
        })
        .collect()
}

/// The clock the queries read (`now()`): PostgreSQL's server clock, or for SQLite this process's.
/// The backfill runs at that instant, so "the last 7 days" and "hours since the last fetch" agree
/// with it, also when libfaketime shifts this process's clock and not the server's (`.ci/at-hour`).
async fn database_now(store: &Store) -> DateTime<Utc> {
    match store {
        Store::Postgres(pg) => sqlx::query_scalar("SELECT now()")
            .fetch_one(pg.pool())
            .await
            .unwrap(),
        Store::Sqlite(_) => rtc_quality_sync::clock::now(),
    }
}

/// Every `.sql` file of `sql/<backend>`, checked to be exactly the known ones.
fn query_files(backend: &str) -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("sql")
        .join(backend);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".sql"))
        .collect();
    names.sort();
    assert_eq!(
        names, QUERIES,
        "sql/{backend} holds other files than the ones checked here"
    );
    names
        .into_iter()
        .map(|n| {
            let text = std::fs::read_to_string(dir.join(&n)).unwrap();
            (n, text)
        })
        .collect()
}

/// The files of `sql/sqlite` whose names `only` lists (all when it is `None`), run on the file at `path`.
pub(crate) async fn run_sqlite(
    path: &Path,
    only: Option<&[&str]>,
) -> BTreeMap<String, Vec<ResultRow>> {
    let url = format!("sqlite://{}", path.display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let mut out = BTreeMap::new();
    for (name, sql) in selected(query_files("sqlite"), only) {
        let rows = sqlx::raw_sql(&sql)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("sql/sqlite/{name}: {e}"));
        let rows = rows
            .iter()
            .map(|row| {
                row.columns()
                    .iter()
                    .map(|c| {
                        let raw = row.try_get_raw(c.ordinal()).unwrap();
                        let v = if raw.is_null() {
                            Value::Null
                        } else {
                            match raw.type_info().name() {
                                "INTEGER" | "BOOLEAN" => {
                                    Value::from(row.get::<i64, _>(c.ordinal()))
                                }
                                "REAL" => Value::from(row.get::<f64, _>(c.ordinal())),
                                _ => Value::from(row.get::<String, _>(c.ordinal())),
                            }
                        };
                        (c.name().to_string(), v)
                    })
                    .collect()
            })
            .collect();
        out.insert(name, rows);
    }
    conn.close().await.unwrap();
    out
}

/// The files of `sql/postgres` whose names `only` lists (all when it is `None`), run on `url`.
pub(crate) async fn run_postgres(
    url: &str,
    only: Option<&[&str]>,
) -> BTreeMap<String, Vec<ResultRow>> {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let mut out = BTreeMap::new();
    for (name, sql) in selected(query_files("postgres"), only) {
        // The simple query protocol answers in text, as psql sees it.
        let rows = sqlx::raw_sql(&sql)
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("sql/postgres/{name}: {e}"));
        let rows = rows
            .iter()
            .map(|row| {
                row.columns()
                    .iter()
                    .map(|c| {
                        let raw = row.try_get_raw(c.ordinal()).unwrap();
                        let v = if raw.is_null() {
                            Value::Null
                        } else {
                            let text = raw.as_str().unwrap().to_string();
                            match c.type_info().name() {
                                "INT2" | "INT4" | "INT8" | "FLOAT4" | "FLOAT8" | "NUMERIC" => {
                                    Value::from(text.parse::<f64>().unwrap())
                                }
                                "BOOL" => Value::from(text == "t"),
                                "TIMESTAMPTZ" => Value::from(
                                    DateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f%#z")
                                        .unwrap_or_else(|e| panic!("{text}: {e}"))
                                        .to_rfc3339(),
                                ),
                                _ => Value::from(text),
                            }
                        };
                        (c.name().to_string(), v)
                    })
                    .collect()
            })
            .collect();
        out.insert(name, rows);
    }
    conn.close().await.unwrap();
    out
}

/// The files `only` names, or all of them.
fn selected(files: Vec<(String, String)>, only: Option<&[&str]>) -> Vec<(String, String)> {
    files
        .into_iter()
        .filter(|(name, _)| only.is_none_or(|o| o.contains(&name.as_str())))
        .collect()
}

pub(crate) fn text<'a>(r: &'a ResultRow, col: &str) -> &'a str {
    r.get(col)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("column {col} is not text in {r:?}"))
}

pub(crate) fn num(r: &ResultRow, col: &str) -> f64 {
    r.get(col)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("column {col} is not a number in {r:?}"))
}

fn time(r: &ResultRow, col: &str) -> DateTime<Utc> {
    let t = text(r, col);
    DateTime::parse_from_rfc3339(t)
        .unwrap_or_else(|e| panic!("column {col} = {t:?} is not a time: {e}"))
        .with_timezone(&Utc)
}

fn parse_ts(t: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(t).unwrap().with_timezone(&Utc)
}

/// The simulator's range for a returned indicator name.
fn in_range(indicator: &str, v: f64) -> bool {
    if indicator.ends_with("success_rate") {
        (90.0..=100.0).contains(&v)
    } else if indicator.ends_with("stall_rate") {
        (0.0..=10.0).contains(&v)
    } else {
        panic!("unexpected indicator {indicator}")
    }
}

/// A boolean column as SQLite (0/1) or PostgreSQL (true/false) answers it.
fn truthy(v: &Value) -> bool {
    v.as_bool().unwrap_or_else(|| v.as_i64() == Some(1))
}

fn local_day(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&FixedOffset::east_opt(8 * 3600).unwrap())
        .date_naive()
}

/// A query's `(app, product type, indicator, value, mean, days)` rows against the expected ones:
/// the same groups and day counts, means equal to 0.01 (the database rounds an exact mean, the test a
/// float one), `limit` rows at most (the highest means, `desc`), in the query's order by mean.
fn assert_means(
    name: &str,
    got: &[(String, String, String, String, f64, i64)],
    expected: &[(String, String, String, String, f64, i64)],
    desc: bool,
    limit: Option<usize>,
) {
    type Key = (String, String, String, String);
    let key = |r: &(String, String, String, String, f64, i64)| -> Key {
        (r.0.clone(), r.1.clone(), r.2.clone(), r.3.clone())
    };
    let want: BTreeMap<Key, (f64, i64)> = expected.iter().map(|r| (key(r), (r.4, r.5))).collect();
    assert_eq!(
        got.len(),
        limit.map_or(want.len(), |l| l.min(want.len())),
        "{name}: {got:?}"
    );
    for r in got {
        let (mean, days) = want
            .get(&key(r))
            .unwrap_or_else(|| panic!("{name}: unexpected row {r:?}"));
        assert!(
            (r.4 - mean).abs() <= 0.0101,
            "{name}: {r:?}, expected {mean}"
        );
        assert_eq!(r.5, *days, "{name}: {r:?}");
        assert!((1..=7).contains(&r.5), "{name}: at most 7 days: {r:?}");
    }
    // Ordered by mean within each series (06, 08) or overall (07, with `limit`).
    let series = |r: &(String, String, String, String, f64, i64)| {
        if limit.is_some() {
            (String::new(), String::new(), String::new())
        } else {
            (r.0.clone(), r.1.clone(), r.2.clone())
        }
    };
    for w in got.windows(2) {
        if series(&w[0]) == series(&w[1]) {
            let ordered = if desc {
                w[0].4 >= w[1].4
            } else {
                w[0].4 <= w[1].4
            };
            assert!(ordered, "{name}: order: {:?} then {:?}", w[0], w[1]);
        }
    }
    if let (Some(_), Some(last)) = (limit, got.last()) {
        // Nothing left out ranks above what was shown.
        let shown: BTreeSet<Key> = got.iter().map(key).collect();
        for r in expected.iter().filter(|r| !shown.contains(&key(r))) {
            assert!(r.4 <= last.4 + 0.0101, "{name}: {r:?} ranks above {last:?}");
        }
    }
}

/// 06 to 08: where quality is bad, from the distribution streams.
fn check_distribution(results: &BTreeMap<String, Vec<ResultRow>>, loaded: &Loaded) {
    // 06: every province, per series, its mean over the last 7 days; the worst first per series.
    let got = distribution_rows(&results["06_stall_rate_by_province.sql"], "province");
    assert!(got.iter().any(|r| r.3 == "广东"), "06: {got:?}");
    let expected = distribution_means(loaded, "Province", "stall_rate");
    assert_means("06", &got, &expected, true, None);
    // "The last 7 days" are 7 whole settled local days: a province with traffic every day has 7.
    assert_eq!(got.iter().map(|r| r.5).max(), Some(7), "06: {got:?}");

    // 07: the ten highest (series, network type) means.
    let got = distribution_rows(&results["07_worst_network_types.sql"], "access");
    let expected = distribution_means(loaded, "Access", "stall_rate");
    assert_means("07", &got, &expected, true, Some(10));

    // 08: every country, per series, the weakest join success first.
    let got = distribution_rows(&results["08_join_success_by_country.sql"], "country");
    let expected = distribution_means(loaded, "Country", "join_room_success_rate");
    assert_means("08", &got, &expected, false, None);
    assert_eq!(got.iter().map(|r| r.5).max(), Some(7), "08: {got:?}");
}

fn check(results: &BTreeMap<String, Vec<ResultRow>>, loaded: &Loaded, backend: &str) {
    check_distribution(results, loaded);
    let Loaded {
        settings,
        points,
        ledger,
        now,
        ..
    } = loaded;
    let now = *now;
    for (name, rows) in results {
        if name != crate::bi_rooms::WORST_ROOMS {
            assert!(!rows.is_empty(), "sql/{backend}/{name} returned no rows");
        }
    }
    // 09: the rooms here are asked by jobs alone, of apps no `[[rooms]]` block lists: `rtc_rooms`
    // has no call of theirs, so they are 02's, not 09's (which `bi_rooms` checks on listed rooms).
    assert!(
        points
            .iter()
            .any(|p| p.granularity == "1d" && p.settled && !p.room_id.is_empty()),
        "09: settled room days are stored"
    );
    assert_eq!(
        results[crate::bi_rooms::WORST_ROOMS],
        Vec::<ResultRow>::new(),
        "09: no listed call, no row"
    );

    // 01: one row per whole-app series (app, filters, indicator) and day, each the stored daily
    // value: two apps' values (app_a, and app_c on android) are never averaged together.
    let trend = &results["01_daily_trend.sql"];
    type SeriesDay = (String, String, String, String, String, String, String);
    let key = |app: &str,
               pt: &str,
               os: &str,
               access: &str,
               users: &str,
               ind: &str,
               ts: &str|
     -> SeriesDay {
        let owned = |t: &str| t.to_string();
        (
            owned(app),
            owned(pt),
            owned(os),
            owned(access),
            owned(users),
            owned(ind),
            owned(ts),
        )
    };
    let daily: BTreeMap<SeriesDay, (f64, bool)> = points
        .iter()
        .filter(|p| p.granularity == "1d" && p.room_id.is_empty())
        .map(|p| {
            let k = key(
                &p.app_id,
                &p.product_type,
                &p.os,
                &p.access,
                &p.user_ids,
                &p.indicator,
                p.local_date.as_deref().unwrap(),
            );
            (k, (p.value, p.settled))
        })
        .collect();
    let mut seen = BTreeSet::new();
    let mut days_per_series: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in trend {
        // The day is the local date a chart groups by, the series' own (+08:00) day.
        let (ind, day) = (text(r, "indicator"), text(r, "day"));
        let k = key(
            text(r, "app_id"),
            text(r, "product_type"),
            text(r, "os"),
            text(r, "access"),
            text(r, "user_ids"),
            ind,
            day,
        );
        assert!(seen.insert(k.clone()), "01: two rows for {k:?}: {trend:?}");
        let date = NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
        assert!(
            date > local_day(now) - Duration::days(31),
            "01: {day} is older than 30 days"
        );
        let v = num(r, "value");
        assert!(in_range(ind, v), "01: {ind} = {v} is out of range");
        let (stored, settled) = daily[&k];
        assert!(
            (v - stored).abs() < 0.005,
            "01: {k:?}: {v} but stored {stored}"
        );
        assert_eq!(truthy(&r["settled"]), settled, "01: {k:?}");
        assert_eq!(text(r, "unit"), "%");
        *days_per_series
            .entry((
                format!("{}/{}", text(r, "app_id"), text(r, "os")),
                ind.to_string(),
            ))
            .or_default() += 1;
    }
    let series: Vec<(&str, &str)> = days_per_series
        .keys()
        .map(|(a, i)| (a.as_str(), i.as_str()))
        .collect();
    assert_eq!(
        series,
        [
            ("app_a/", "10s_join_room_success_rate"),
            ("app_a/", "5s_join_room_success_rate"),
            ("app_a/", "audio_stall_rate"),
            ("app_a/", "video_stall_rate"),
            ("app_c/android", "audio_stall_rate"),
            ("app_c/android", "video_stall_rate"),
        ],
        "01: each whole-app series apart"
    );
    for (s, n) in &days_per_series {
        assert!(
            (25..=30).contains(n),
            "01: {s:?} has {n} days, expected about 29"
        );
    }
    let order = |r: &ResultRow| {
        (
            text(r, "app_id").to_string(),
            text(r, "os").to_string(),
            text(r, "indicator").to_string(),
            text(r, "day").to_string(),
        )
    };
    assert!(
        trend.windows(2).all(|w| order(&w[0]) < order(&w[1])),
        "01: ordered by series, day"
    );

    // 02: the configured rooms' stall rates, worst first, over at most 7 days.
    let worst = &results["02_worst_rooms_this_week.sql"];
    let rooms: BTreeSet<&str> = worst.iter().map(|r| text(r, "room_id")).collect();
    assert_eq!(
        rooms,
        BTreeSet::from(["room-1", "room-2", "room-3"]),
        "02: {worst:?}"
    );
    assert_eq!(worst.len(), 6, "02: two stall rates per room: {worst:?}");
    // "This week" is the last 7 settled local days: each room's mean over exactly those days.
    let week = last_settled_days(
        points
            .iter()
            .filter(|p| p.granularity == "1d" && p.settled)
            .filter_map(|p| p.local_date.as_deref()),
    );
    for r in worst {
        assert!(text(r, "indicator").ends_with("stall_rate"));
        assert!(in_range("stall_rate", num(r, "avg_value")), "02: {r:?}");
        let values: Vec<f64> = points
            .iter()
            .filter(|p| {
                p.granularity == "1d"
                    && p.settled
                    && p.app_id == text(r, "app_id")
                    && p.room_id == text(r, "room_id")
                    && p.indicator == text(r, "indicator")
                    && p.local_date.as_deref().is_some_and(|d| week.contains(d))
            })
            .map(|p| p.value)
            .collect();
        assert_eq!(num(r, "days") as usize, values.len(), "02: {r:?}");
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        assert!(
            (num(r, "avg_value") - mean).abs() <= 0.0101,
            "02: {r:?}, expected {mean}"
        );
    }
    assert_eq!(
        worst.iter().map(|r| num(r, "days") as i64).max(),
        Some(7),
        "02: a week of 7 whole days: {worst:?}"
    );
    assert!(
        worst
            .windows(2)
            .all(|w| num(&w[0], "avg_value") >= num(&w[1], "avg_value")),
        "02: not worst first: {worst:?}"
    );

    // 03: one complete +08:00 day of five-minute points, the day before the newest bucket's day.
    let drill = &results["03_five_minute_drilldown.sql"];
    let newest = points
        .iter()
        .filter(|p| p.granularity == "5min")
        .map(|p| parse_ts(&p.ts))
        .max()
        .unwrap();
    let expected_day = local_day(newest).pred_opt().unwrap();
    assert!(
        drill
            .iter()
            .all(|r| text(r, "local_date") == expected_day.to_string()),
        "03: every row of the local day {expected_day}"
    );
    let mut per_series: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for r in drill {
        let ts = time(r, "ts");
        assert_eq!(
            local_day(ts),
            expected_day,
            "03: {ts} is outside the +08:00 day {expected_day}"
        );
        assert_eq!(
            ts.timestamp() % 300,
            0,
            "03: {ts} is not a five-minute bucket"
        );
        assert!(in_range(text(r, "indicator"), num(r, "value")), "03: {r:?}");
        *per_series
            .entry((text(r, "app_id"), text(r, "indicator")))
            .or_default() += 1;
    }
    assert_eq!(
        per_series
            .keys()
            .map(|(a, i)| format!("{a}/{i}"))
            .collect::<Vec<_>>(),
        [
            "app_a/10s_join_room_success_rate",
            "app_a/5s_join_room_success_rate",
            "app_a/audio_stall_rate",
            "app_a/video_stall_rate",
            "app_b/audio_stall_rate",
            "app_b/video_stall_rate",
        ],
        "03: the five-minute series"
    );
    for (series, n) in &per_series {
        // 288 buckets a day; the simulator leaves about 3 % without traffic.
        assert!(
            (250..=288).contains(n),
            "03: {series:?} has {n} rows for one day"
        );
    }
    assert!(
        drill.windows(2).all(|w| (
            text(&w[0], "app_id"),
            text(&w[0], "indicator"),
            time(&w[0], "ts")
        ) < (
            text(&w[1], "app_id"),
            text(&w[1], "indicator"),
            time(&w[1], "ts")
        )),
        "03: ordered by app, indicator, time"
    );

    // 04: one row per configured stream, just fetched, nothing failed, every stored point counted,
    // provisional windows as the ledger holds them.
    let coverage = &results["04_coverage_and_freshness.sql"];
    let streams: Vec<String> = coverage
        .iter()
        .map(|r| text(r, "stream").to_string())
        .collect();
    let mut configured: Vec<String> = settings.streams().into_iter().map(|s| s.name).collect();
    configured.sort();
    assert_eq!(streams, configured, "04: one row per stream");
    let mut total = 0.0;
    for r in coverage {
        assert_eq!(num(r, "failed_windows"), 0.0, "04: {r:?}");
        let stream = settings
            .streams()
            .into_iter()
            .find(|s| s.name == text(r, "stream"))
            .unwrap();
        let provisional = ledger
            .iter()
            .filter(|e| *e.stream == *stream.name && e.state == WindowState::Provisional)
            .count();
        assert_eq!(
            num(r, "provisional_windows"),
            provisional as f64,
            "04: the ledger's provisional windows: {r:?}"
        );
        assert_eq!(
            num(r, "missing_buckets"),
            0.0,
            "04: a complete backfill misses nothing: {r:?}"
        );
        // Whether the newest window is still provisional depends on the hour: a `1d` stream's newest
        // day ends at +08:00 midnight, and from 16:00 to 24:00 UTC it ended more than
        // `settle_hours` before it was fetched. `5min` streams always have a provisional tail.
        let g = stream.granularity;
        let newest = ledger
            .iter()
            .filter(|e| *e.stream == *stream.name)
            .max_by_key(|e| e.window.end)
            .unwrap();
        assert_eq!(
            newest.window.end,
            planner::horizon(&settings.window, g, now).end,
            "04: the backfill reached the available end"
        );
        let settled_until = planner::settled_until(&settings.window, g, newest.fetched_at);
        assert_eq!(
            provisional >= 1,
            newest.window.end > settled_until,
            "04: fetched at {}, the newest window of {} is provisional iff it ends after {settled_until}: {r:?}",
            newest.fetched_at,
            stream.name,
        );
        assert!(num(r, "points") > 0.0, "04: {r:?}");
        let hours = num(r, "hours_since_last_fetch");
        assert!(
            (0.0..=0.2).contains(&hours),
            "04: fetched {hours} h ago: {r:?}"
        );
        assert!(time(r, "settled_through") < now, "04: {r:?}");
        total += num(r, "points");
    }
    assert_eq!(
        total as usize,
        points.len(),
        "04: points per stream add up to what is stored"
    );

    // 05: only provisional values, newest first, as many as are stored (up to the limit).
    let provisional = &results["05_still_provisional.sql"];
    let settled: BTreeMap<(&str, &str, &str, &str, &str), bool> = points
        .iter()
        .map(|p| {
            (
                (
                    p.app_id.as_str(),
                    p.room_id.as_str(),
                    p.indicator.as_str(),
                    p.granularity.as_str(),
                    p.ts.as_str(),
                ),
                p.settled,
            )
        })
        .collect();
    let unsettled = points.iter().filter(|p| !p.settled).count();
    assert!(
        unsettled < points.len(),
        "05: some values must be settled for this to mean anything"
    );
    assert_eq!(
        provisional.len(),
        unsettled.min(200),
        "05: the provisional rows"
    );
    for r in provisional {
        let ts = time(r, "ts").format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let key = (
            text(r, "app_id"),
            text(r, "room_id"),
            text(r, "indicator"),
            text(r, "granularity"),
            ts.as_str(),
        );
        assert_eq!(
            settled.get(&key),
            Some(&false),
            "05: {r:?} is not a provisional point"
        );
    }
    assert!(
        provisional
            .windows(2)
            .all(|w| time(&w[0], "ts") >= time(&w[1], "ts")),
        "05: newest first"
    );
}

#[tokio::test]
async fn sqlite_bi_queries_answer_what_a_dashboard_needs() {
    let (dir, store) = sqlite_store().await;
    let loaded = load(&store).await;
    let results = run_sqlite(&dir.path().join("test.db"), None).await;
    check(&results, &loaded, "sqlite");
}

#[tokio::test]
async fn postgres_bi_queries_answer_what_a_dashboard_needs() {
    let Some((db, store)) = pg_store().await else {
        return;
    };
    let loaded = load(&store).await;
    let results = run_postgres(&db.url(), None).await;
    check(&results, &loaded, "postgres");
    store.close().await;
}
