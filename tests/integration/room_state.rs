//! Issue 20, what room streams keep and show: the windows a cap deferred, their missing buckets
//! measured over their needed buckets, a job that asks a block's room, and the calls a run reads.
//! Against the simulator over real HTTP, on both backends.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration};
use rtc_quality_sync::config::Settings;
use rtc_quality_sync::domain::{Granularity, RunStatus, Window, WindowState};
use rtc_quality_sync::health::Problem;
use rtc_quality_sync::planner;
use rtc_quality_sync::report::Status;
use rtc_quality_sync::store::Store;

use crate::discovery::{APP, calls, now, room_requests, simulator};
use crate::pipeline::{dump, settings, sync_at, values};

crate::helpers::on_both_urls!(
    deferred_windows_and_missing_buckets_are_kept_and_shown,
    a_job_on_a_blocks_room_asks_the_blocks_indicators_in_its_calls,
);

fn capped(endpoint: &str, cap: u32) -> Settings {
    settings(&format!(
        "[source]\nendpoint = \"{endpoint}\"\nrequests_per_second = 50\nroom_list_requests_per_second = 100\n\
         [window]\nmax_lookback_days = 5\n\
         [[rooms]]\nname = \"rooms\"\napp_id = \"{APP}\"\nindicators = [\"stall_rate\"]\n\
         granularity = \"5min\"\nmax_room_calls_per_run = {cap}\n"
    ))
}

/// `status` as the binary builds it, judged at the runs' `now`.
async fn status(cfg: &Settings, store: &Store) -> Status {
    let mut status = Status::load(store, Some(cfg)).await.unwrap();
    status.judge(cfg, now(), Duration::hours(36));
    status
}

/// Buckets in `ws`.
fn buckets(ws: &[Window]) -> i64 {
    ws.iter().map(|w| w.duration().num_seconds()).sum::<i64>() / 300
}

/// A capped run stores what it deferred, per room stream and for the block: the metric, `status`
/// in plain words on the block's line and `status --json` show it, and each room stream's missing
/// buckets are exactly the needed buckets of its deferred windows (a pending window counts, its
/// quiet stretch does not). An uncapped run then fetches the rest: nothing deferred any more, and
/// every room stream misses nothing, though rooms were quiet for days.
async fn deferred_windows_and_missing_buckets_are_kept_and_shown(url: &str) {
    let sim = simulator(500).await;
    let store = Store::connect(url).await.unwrap();
    let cfg = capped(&sim.endpoint(), 7);
    let first = sync_at(&cfg, &store, now()).await;
    assert_eq!((first.status, first.exit_code()), (RunStatus::Ok, 0));
    let deferred = first.rooms[0].windows_deferred;
    assert!(deferred > 7, "{:?}", first.rooms[0]);

    // What the cap left: the windows planned from the calls at `now`, less those fetched.
    let streams = planner::room_streams(
        &cfg.rooms[0],
        &calls(&store).await,
        cfg.window.timezone,
        now(),
    );
    let plan = planner::plan(&cfg.window, &streams, &[], now(), Default::default()).unwrap();
    let ledger = store.ledger(None).await.unwrap();
    let h = planner::horizon(&cfg.window, Granularity::FiveMin, now());
    let mut left = 0;
    let mut missing = 0;
    let mut quiet_for_days = 0;
    // What `status --check` must call overdue: the deferred buckets that ended 36 h (its default
    // `--max-age`) or more before the available end, and the room streams they belong to.
    let due = h.end - Duration::hours(36);
    let (mut overdue, mut overdue_streams) = (0, 0);
    for (s, sp) in streams.iter().zip(&plan.streams) {
        let needs = planner::intersect(&[h], &s.room.as_ref().unwrap().needs);
        quiet_for_days += usize::from(
            needs
                .windows(2)
                .any(|p| p[1].start - p[0].end >= Duration::days(2)),
        );
        let mut stream_overdue = 0;
        for w in &sp.windows {
            // A fetched window may be kept as a settled part and a provisional tail.
            let fetched = ledger.iter().any(|e| {
                *e.stream == *s.key
                    && e.window.start < w.window.end
                    && w.window.start < e.window.end
            });
            if !fetched {
                left += 1;
                missing += buckets(&planner::intersect(&[w.window], &needs));
                if w.window.start < due {
                    let old = Window::new(w.window.start, w.window.end.min(due));
                    stream_overdue += buckets(&planner::intersect(&[old], &needs));
                }
            }
        }
        overdue += stream_overdue;
        overdue_streams += usize::from(stream_overdue > 0);
    }
    assert_eq!(left, deferred, "the deferred windows are those not fetched");
    assert!(quiet_for_days > 0, "some room was quiet for days");

    let st = status(&cfg, &store).await;
    let block = &st.rooms[0];
    assert_eq!(block.deferred.windows, deferred);
    assert_eq!(
        block.deferred.reason.as_deref(),
        Some("max_room_calls_per_run")
    );
    assert_eq!(block.missing_buckets as i64, missing);
    // `status --check`: the overdue buckets as one problem of the block, never one per room.
    assert!(overdue > 0, "some deferred bucket is older than 36 h");
    let pending: Vec<_> = st
        .problems
        .as_ref()
        .unwrap()
        .iter()
        .filter_map(|p| match &p.problem {
            Problem::PendingRoomBuckets {
                streams, buckets, ..
            } => Some((p.stream.clone(), *streams, *buckets)),
            _ => None,
        })
        .collect();
    assert_eq!(
        pending,
        [("rooms/rooms".to_string(), overdue_streams, overdue)],
        "{:?}",
        st.problems
    );
    let check = st.check_text();
    assert!(
        check.contains(&format!(
            "rooms/rooms: {overdue} bucket(s) of {overdue_streams} room stream(s) not fetched since"
        )),
        "{check}"
    );
    let text = st.text();
    let line = text
        .lines()
        .find(|l| l.starts_with("rooms/rooms "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains(&format!(
            "{deferred} windows deferred (max_room_calls_per_run)"
        )) && line.contains(&format!("{missing} missing buckets")),
        "{line}"
    );
    let json = serde_json::to_value(&st).unwrap();
    assert_eq!(json["rooms"][0]["deferred"]["windows"], deferred);
    assert_eq!(json["rooms"][0]["missing_buckets"], missing);
    let metrics = rtc_quality_sync::metrics::render(&st.metrics_snapshot(None));
    assert!(
        metrics.contains(&format!(
            "rtc_quality_sync_rooms_deferred_windows{{rooms=\"rooms\"}} {deferred}\n"
        )),
        "{metrics}"
    );
    // Each room stream's own numbers, also of one nothing was fetched of yet.
    let assessed = store.assessed().await.unwrap();
    for s in streams
        .iter()
        .filter(|s| !planner::intersect(&[h], &s.room.as_ref().unwrap().needs).is_empty())
    {
        let a = assessed.iter().find(|a| a.label == s.name).unwrap();
        assert!(a.missing_buckets.is_some(), "{} assessed: {a:?}", s.name);
    }
    let per_stream: u64 = assessed
        .iter()
        .filter(|a| a.label.starts_with("rooms/"))
        .map(|a| a.deferred.windows)
        .sum();
    assert_eq!(per_stream, deferred);

    // Uncapped: the rest is fetched, nothing is deferred or missing, and status says so.
    let all = sync_at(&capped(&sim.endpoint(), 0), &store, now()).await;
    assert_eq!(
        (all.status, all.rooms[0].windows_deferred),
        (RunStatus::Ok, 0)
    );
    let st = status(&cfg, &store).await;
    assert_eq!(st.rooms[0].deferred.windows, 0);
    assert_eq!(st.rooms[0].missing_buckets, 0);
    let text = st.text();
    assert!(!text.contains("deferred"), "{text}");
    for c in store.coverage(&[]).await.unwrap() {
        if c.stream.starts_with("rooms/") && c.stream != "rooms/rooms" {
            assert_eq!(c.missing_buckets, Some(0), "{c:?}");
            assert!(c.settled_through.is_some(), "{c:?}");
        }
    }
    assert!(st.healthy(), "{:?}", st.problems);
    store.close().await;
}

/// Rule 6: a `[[jobs]]` entry on `room-3` asking `stall_rate` and a block asking `stall_rate` and
/// `join_room_success_rate` are one stream, the job's: room-3 gets both indicators over the whole
/// horizon, equal to the simulator's, each window asked once with both, counted under the job; an
/// immediate re-run asks again only windows still provisional.
async fn a_job_on_a_blocks_room_asks_the_blocks_indicators_in_its_calls(url: &str) {
    let sim = simulator(500).await;
    let cfg = settings(&format!(
        "[source]\nendpoint = \"{}\"\nrequests_per_second = 50\nroom_list_requests_per_second = 100\n\
         [window]\nmax_lookback_days = 5\n\
         [[jobs]]\nname = \"lobby\"\napp_id = \"{APP}\"\nroom_id = \"room-3\"\nindicators = [\"stall_rate\"]\n\
         granularity = \"5min\"\n\
         [[rooms]]\nname = \"rooms\"\napp_id = \"{APP}\"\n\
         indicators = [\"stall_rate\", \"join_room_success_rate\"]\ngranularity = \"5min\"\n",
        sim.endpoint()
    ));
    let store = Store::connect(url).await.unwrap();
    let report = sync_at(&cfg, &store, now()).await;
    assert_eq!(report.status, RunStatus::Ok, "{report:?}");
    // The run's requests, before the reference below asks its own.
    let log = sim.requests();
    let synced = room_requests(&sim, 0);

    // room-3's points, both indicators, over the whole horizon: the simulator's.
    let room_3 = |k: &String| k.split('|').nth(1) == Some("room-3");
    let want: BTreeMap<String, f64> = crate::pipeline::expected(&cfg, &sim, now())
        .await
        .into_iter()
        .filter(|(k, _)| room_3(k))
        .collect();
    let got: BTreeMap<String, f64> = values(&dump(&store).await)
        .into_iter()
        .filter(|(k, _)| room_3(k))
        .collect();
    let names: BTreeSet<&str> = got.keys().filter_map(|k| k.split('|').nth(2)).collect();
    assert!(
        names.iter().any(|n| n.contains("join_room_success_rate"))
            && names.iter().any(|n| n.contains("stall_rate")),
        "{names:?}"
    );
    assert_eq!(got, want, "room-3's points are the simulator's");

    // Each of room-3's windows asked once, with both indicators, none overlapping another.
    let asked: Vec<(String, String, String)> = synced
        .iter()
        .filter(|&(room, _, _)| room == "room-3")
        .cloned()
        .collect();
    let bodies: Vec<serde_json::Value> = log
        .iter()
        .filter(|r| r.action == "ListQuality" && r.status == 200)
        .map(|r| serde_json::from_str(&r.body).unwrap())
        .filter(|b: &serde_json::Value| b["RoomId"] == "room-3")
        .collect();
    for b in &bodies {
        let text = b.to_string();
        assert!(
            text.contains("\"stall_rate\"") && text.contains("\"join_room_success_rate\""),
            "one call carries both: {text}"
        );
    }
    let mut spans: Vec<(DateTime<chrono::FixedOffset>, DateTime<chrono::FixedOffset>)> = asked
        .iter()
        .map(|(_, s, e)| {
            (
                DateTime::parse_from_rfc3339(s).unwrap(),
                DateTime::parse_from_rfc3339(e).unwrap(),
            )
        })
        .collect();
    spans.sort();
    assert!(
        spans.windows(2).all(|p| p[0].1 <= p[1].0),
        "no bucket of room-3 asked twice: {spans:?}"
    );
    let h = planner::horizon(&cfg.window, Granularity::FiveMin, now());
    let week = 7 * 86_400;
    assert_eq!(
        asked.len() as i64,
        ((h.end - h.start).num_seconds() + week - 1) / week,
        "the job's windows over the horizon"
    );
    // Counted once, under the job (first in configuration order), never under the block.
    let lobby = report
        .streams
        .iter()
        .find(|s| s.stream == "lobby/5min")
        .unwrap();
    assert_eq!(lobby.calls as usize, asked.len());
    assert_eq!(report.rooms[0].calls as usize, synced.len() - asked.len());

    // At once again: room-3's provisional windows only, nothing settled.
    let provisional: BTreeSet<Window> = store
        .ledger(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.state == WindowState::Provisional && e.window.start >= h.start)
        .filter(|e| e.stream.contains("\"room-3\""))
        .map(|e| e.window)
        .collect();
    let from = sim.requests().len();
    let again = sync_at(&cfg, &store, now()).await;
    assert_eq!(again.status, RunStatus::Ok);
    for (_, s, e) in room_requests(&sim, from)
        .into_iter()
        .filter(|(room, _, _)| room == "room-3")
    {
        let w = Window::new(
            DateTime::parse_from_rfc3339(&s).unwrap().to_utc(),
            DateTime::parse_from_rfc3339(&e).unwrap().to_utc(),
        );
        assert!(provisional.contains(&w), "{w} was settled: {provisional:?}");
    }
    store.close().await;
}
