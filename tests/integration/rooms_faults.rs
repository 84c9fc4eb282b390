//! Issue 20, the faults: a `[[rooms]]` block's listing and its rooms' `ListQuality` calls under
//! 500, 429, connections closed mid-body, empty and short pages, SIGKILL while the rooms are
//! fetched, a room id with `%`, and calls the API lists broken; each end state checked against a
//! fault-free run at the same instant, on both backends.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Utc};
use rtc_quality_sync::discovery;
use rtc_quality_sync::domain::{RoomCall, RunStatus, Window, WindowState};
use rtc_quality_sync::pipeline::RunOptions;
use rtc_quality_sync::simulator::{self, FaultKind, Faults, RoomQuery, SimulatorConfig};
use rtc_quality_sync::store::Store;

use crate::api_helpers::{REGION, RID, Reply, TestApi};
use crate::discovery::{
    APP, SEED, calls, expected, now, room_requests, rooms_config, rooms_text, sim_config,
};
use crate::pipeline::{dump, settings, sync_as, sync_at};

/// `rtc_rooms` and the rooms' points as a user compares them: every call with all its columns but
/// when it was written; every point with its key, value, unit and settled flag.
#[derive(Debug, PartialEq)]
struct Tables {
    calls: Vec<RoomCall>,
    points: BTreeMap<String, String>,
}

async fn tables(store: &Store) -> Tables {
    Tables {
        calls: calls(store).await,
        points: dump(store).await,
    }
}

/// The tables of one fault-free run over `lookback_days` at `now()`, into a SQLite file of its own.
async fn fault_free(lookback_days: u32) -> Tables {
    let sim = simulator::spawn(sim_config(500)).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::connect(&format!("sqlite://{}", dir.path().join("ref.db").display()))
        .await
        .unwrap();
    let report = sync_at(&rooms_config(&sim, lookback_days), &store, now()).await;
    assert_eq!(report.status, RunStatus::Ok, "{report:?}");
    let t = tables(&store).await;
    assert!(
        t.calls.len() > 200 && t.points.len() > 1000,
        "{} calls, {} points",
        t.calls.len(),
        t.points.len()
    );
    store.close().await;
    sim.shutdown().await;
    t
}

/// Faults in the listing and in the rooms' `ListQuality` calls (500, 429, a connection closed
/// mid-body, and for `ListRoomInfo` a page with no call while `Total` says more): a first run with
/// one retry fails listing ranges and room windows; the runs after it, with more retries, until
/// one is `ok`, end with exactly the `rtc_rooms` and the per-room points (values and settled flags)
/// of a fault-free run.
async fn faults_in_discovery_and_room_fetches_end_in_the_fault_free_tables(url: &str) {
    let want = fault_free(3).await;
    let sim = simulator::spawn(SimulatorConfig {
        faults: Faults::parse("500=0.12,429=0.12,close=0.12,emptypage=0.15").unwrap(),
        ..sim_config(500)
    })
    .await
    .unwrap();
    let mut cfg = rooms_config(&sim, 3);
    cfg.source.max_retries = 1;
    let store = Store::connect(url).await.unwrap();

    let first = sync_at(&cfg, &store, now()).await;
    assert_eq!(first.status, RunStatus::Partial, "{first:?}");
    let failed: BTreeSet<&str> = store
        .ledger(None)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.state == WindowState::Failed)
        .map(|e| {
            if e.indicator == "calls" {
                "listing"
            } else {
                "room"
            }
        })
        .collect();
    assert_eq!(
        failed,
        BTreeSet::from(["listing", "room"]),
        "both kinds failed in the first run"
    );
    // The next runs retry more, as a user would: every failure heals, while each run re-asks the
    // provisional windows through the faults too.
    cfg.source.max_retries = 5;
    let mut runs = 1;
    loop {
        let r = sync_at(&cfg, &store, now()).await;
        runs += 1;
        if r.status == RunStatus::Ok {
            break;
        }
        assert!(runs < 10, "still not ok after {runs} runs: {r:?}");
    }
    // Every kind hit each action it applies to.
    let injected: BTreeSet<(String, String)> = sim
        .requests()
        .into_iter()
        .filter_map(|r| Some((r.action, r.fault?)))
        .collect();
    for (action, kinds) in [
        ("ListRoomInfo", &["500", "429", "close", "emptypage"][..]),
        ("ListQuality", &["500", "429", "close"][..]),
    ] {
        for kind in kinds {
            assert!(
                injected.contains(&(action.to_string(), kind.to_string())),
                "no {kind} for {action}: {injected:?}"
            );
        }
    }
    let got = tables(&store).await;
    assert_eq!(got.calls, want.calls, "rtc_rooms after {runs} runs");
    assert_eq!(
        got.points, want.points,
        "the rooms' points after {runs} runs"
    );
    store.close().await;
}

/// A page short of its `Total` (one call missing, none at all, or a call listed twice in place of
/// another) is asked again as often as `max_retries` allows, then fails its range with an error
/// that says so; nothing of the range is stored. A run against a healthy API then lists every call.
async fn a_short_page_is_retried_then_fails_its_range(url: &str) {
    let store = Store::connect(url).await.unwrap();
    for kind in [
        FaultKind::ShortPage,
        FaultKind::EmptyPage,
        FaultKind::DuplicateCall,
    ] {
        let sim = simulator::spawn(SimulatorConfig {
            faults: Faults::only(kind, 1.0),
            ..sim_config(500)
        })
        .await
        .unwrap();
        let cfg = rooms_config(&sim, 3);
        let ranges = discovery::ranges_to_list(
            discovery::listing_start(&cfg.window, &cfg.rooms[0].granularities, now()),
            now(),
            cfg.window.timezone,
            Vec::new(),
        );
        let report = sync_at(&cfg, &store, now()).await;
        assert_eq!(report.status, RunStatus::Partial, "{kind}: {report:?}");
        let r = &report.rooms[0];
        assert_eq!(
            (r.windows_ok, r.windows_failed, r.calls),
            (0, ranges.len() as u64, 0),
            "{kind}: {r:?}"
        );
        let error = r.error.as_deref().unwrap();
        assert!(error.contains("Total"), "{kind}: {error}");
        // Each range's first page, asked 1 + max_retries times and never a second page.
        let mut asked: BTreeMap<String, u32> = BTreeMap::new();
        for q in sim.requests().iter().filter(|q| q.action == "ListRoomInfo") {
            assert_eq!(q.fault.as_deref(), Some(kind.as_str()), "{q:?}");
            *asked.entry(q.query.clone()).or_default() += 1;
        }
        let tries = cfg.source.max_retries + 1;
        assert_eq!(asked.len(), ranges.len(), "{kind}: {asked:?}");
        for (query, n) in &asked {
            assert!(query.contains("PageNum=1&"), "{query}");
            assert_eq!(*n, tries, "{kind}: {query}");
        }
        assert!(calls(&store).await.is_empty(), "{kind}: nothing stored");
        sim.shutdown().await;
    }
    let sim = simulator::spawn(sim_config(500)).await.unwrap();
    let cfg = rooms_config(&sim, 3);
    let report = sync_at(&cfg, &store, now()).await;
    assert_eq!(report.status, RunStatus::Ok, "{report:?}");
    let want: Vec<RoomCall> = expected(&cfg).into_values().collect();
    let mut got = calls(&store).await;
    got.sort_by(|a, b| a.call_id.cmp(&b.call_id));
    assert_eq!(got, want);
    store.close().await;
}

/// A room whose id holds `%` (`50%off`, beside `lobby 2`, `a+b`, `team/alpha` and `房间-1`): its
/// calls are listed, its `ListQuality` calls carry that `RoomId` to the letter (the simulator checks
/// each signature) and its points are exactly what the simulator serves over its calls.
async fn a_room_id_with_percent_is_listed_and_fetched_exactly(url: &str) {
    const ROOM: &str = "50%off";
    let sim = simulator::spawn(sim_config(500)).await.unwrap();
    let cfg = rooms_config(&sim, 5);
    let store = Store::connect(url).await.unwrap();
    let report = sync_at(&cfg, &store, now()).await;
    assert_eq!(report.status, RunStatus::Ok, "{report:?}");

    let in_room = |calls: Vec<RoomCall>| -> BTreeMap<String, RoomCall> {
        calls
            .into_iter()
            .filter(|c| c.room_id == ROOM)
            .map(|c| (c.call_id.clone(), c))
            .collect()
    };
    let listed = in_room(calls(&store).await);
    assert!(listed.len() >= 2, "{listed:?}");
    assert_eq!(listed, in_room(expected(&cfg).into_values().collect()));
    let asked = room_requests(&sim, 0)
        .into_iter()
        .filter(|(room, _, _)| room == ROOM)
        .count();
    assert!(asked >= 1, "{ROOM} was asked");

    // What the simulator serves for a job on that room, over the buckets its calls overlap.
    let job = settings(&format!(
        "[source]\nendpoint = \"{}\"\nrequests_per_second = 50\n[window]\nmax_lookback_days = 5\n\
         [[jobs]]\nname = \"off\"\napp_id = \"{APP}\"\nroom_id = \"{ROOM}\"\n\
         indicators = [\"stall_rate\"]\ngranularity = \"5min\"\n",
        sim.endpoint()
    ));
    let ran = |ts: DateTime<Utc>| {
        listed.values().any(|c| {
            c.created_at < ts + chrono::Duration::minutes(5) && c.destroyed_at.unwrap_or(now()) > ts
        })
    };
    let want: BTreeMap<String, f64> = crate::pipeline::expected(&job, &sim, now())
        .await
        .into_iter()
        .filter(|(k, _)| ran(k.split('|').nth(8).unwrap().parse().unwrap()))
        .collect();
    let got: BTreeMap<String, f64> = crate::pipeline::values(&dump(&store).await)
        .into_iter()
        .filter(|(k, _)| k.split('|').nth(1) == Some(ROOM))
        .collect();
    assert!(want.len() > 10, "{want:?}");
    assert_eq!(got, want);

    // `status --json` names the room as it is.
    let status = rtc_quality_sync::report::Status::load(&store, Some(&cfg))
        .await
        .unwrap();
    let json = serde_json::to_value(&status).unwrap();
    let detail = json["rooms"][0]["rooms"].as_array().unwrap();
    let room = detail.iter().find(|d| d["room_id"] == ROOM).unwrap();
    assert_eq!(room["calls"].as_u64(), Some(listed.len() as u64));
    store.close().await;
}

/// What a scripted `ListRoomInfo` breaks in one range's first page.
#[derive(Clone, Copy, Debug)]
enum Broken {
    /// A finished call's `CreatedTime` an hour after its `DestroyTime`.
    CreatedAfterDestroyed,
    /// `ActiveUserNum: -3`.
    NegativeUsers,
    /// No `ActiveUserNum`.
    NoUsers,
}

impl Broken {
    /// The words the range's error must hold.
    fn said(self) -> [&'static str; 2] {
        match self {
            Broken::CreatedAfterDestroyed => ["].DestroyTime", "before the call's CreatedTime"],
            Broken::NegativeUsers => ["].ActiveUserNum", "-3 is negative"],
            Broken::NoUsers => ["].ActiveUserNum", "missing"],
        }
    }

    fn apply(self, page: &mut serde_json::Value) {
        let list = page["RoomList"].as_array_mut().unwrap();
        let call = match self {
            Broken::CreatedAfterDestroyed => list
                .iter_mut()
                .find(|c| c["DestroyTime"] != "")
                .expect("a finished call"),
            _ => list.first_mut().expect("a call"),
        };
        match self {
            Broken::CreatedAfterDestroyed => {
                let end =
                    DateTime::parse_from_rfc3339(call["DestroyTime"].as_str().unwrap()).unwrap();
                call["CreatedTime"] = (end + chrono::Duration::hours(1)).to_rfc3339().into();
            }
            Broken::NegativeUsers => call["ActiveUserNum"] = (-3).into(),
            Broken::NoUsers => {
                call.as_object_mut().unwrap().remove("ActiveUserNum");
            }
        }
    }
}

/// The simulator's own page for a `ListRoomInfo` query, as JSON.
fn simulated_page(query: &str) -> serde_json::Value {
    let p: BTreeMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let q = RoomQuery {
        app_id: p["AppId"].clone(),
        start: DateTime::parse_from_rfc3339(&p["StartTime"]).unwrap(),
        end: DateTime::parse_from_rfc3339(&p["EndTime"]).unwrap(),
        page_num: p["PageNum"].parse().unwrap(),
        page_size: p["PageSize"].parse().unwrap(),
    };
    serde_json::to_value(simulator::list_page(SEED, &q, now(), 500)).unwrap()
}

/// Three ranges whose first page lists one broken call (`CreatedTime` after `DestroyTime`, a
/// negative `ActiveUserNum`, none): each fails alone, with an error naming the field and the cause,
/// without a retry in the run; the other ranges are listed and committed with exactly their calls. When the
/// API answers right again, the next run lists the three and ends with every call.
async fn a_broken_call_fails_its_range_and_spares_the_others(url: &str) {
    let lookback = 5;
    let text = rooms_text("http://unused", lookback);
    let probe = settings(&text);
    let l = discovery::listing_start(&probe.window, &probe.rooms[0].granularities, now());
    let ranges = discovery::ranges_to_list(l, now(), probe.window.timezone, Vec::new());
    assert_eq!(ranges.len(), 6, "{ranges:?}");
    // Newest first: today, then three whole days broken, then the rest.
    let broken: Vec<(Window, Broken)> = ranges[1..4]
        .iter()
        .copied()
        .zip([
            Broken::CreatedAfterDestroyed,
            Broken::NegativeUsers,
            Broken::NoUsers,
        ])
        .collect();
    let healed = Arc::new(AtomicBool::new(false));
    let api = {
        let (broken, healed) = (broken.clone(), healed.clone());
        TestApi::answering(vec![], move |_, r| {
            if r.method != "GET" {
                return Reply::error(500, "InternalError", 100014, "no ListQuality here");
            }
            let mut page = simulated_page(&r.query);
            if !healed.load(Ordering::SeqCst)
                && r.query.contains("PageNum=1&")
                && let Some((_, how)) = broken
                    .iter()
                    .find(|(w, _)| w.start == asked_start(&r.query))
            {
                how.apply(&mut page);
            }
            Reply::json(
                200,
                serde_json::json!({
                    "ResponseMetadata": {"RequestId": RID, "Action": "ListRoomInfo",
                                         "Version": "2020-12-01", "Service": "rtc", "Region": REGION},
                    "Result": page
                }),
            )
        })
    };
    // Rooms whose calls all have fewer users than that are never fetched: this is about the listing.
    let cfg = settings(&format!(
        "{}min_active_users = 51\n",
        rooms_text(api.endpoint().as_str().trim_end_matches('/'), lookback)
    ));
    let store = Store::connect(url).await.unwrap();
    let options = RunOptions {
        mode: "sync".into(),
        ..Default::default()
    };
    let credentials = crate::api_helpers::credentials;
    let report = sync_as(&cfg, &store, now(), &options, credentials()).await;
    assert_eq!(report.status, RunStatus::Partial, "{report:?}");
    let r = &report.rooms[0];
    assert_eq!((r.windows_ok, r.windows_failed), (3, 3), "{r:?}");

    let ledger: Vec<_> = store
        .ledger(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.indicator == "calls")
        .collect();
    for (w, how) in &broken {
        let row = ledger
            .iter()
            .find(|e| e.window == *w)
            .unwrap_or_else(|| panic!("no row for {w}: {ledger:?}"));
        assert_eq!(row.state, WindowState::Failed, "{row:?}");
        let error = row.last_error.as_deref().unwrap();
        for words in how.said() {
            assert!(error.contains(words), "{how:?}: {error}");
        }
        // Its first page, asked once: the same broken shape would come again, so the range fails
        // at once, and the next run asks again.
        let asked = api
            .received()
            .iter()
            .filter(|q| q.query.contains("PageNum=1&") && asked_start(&q.query) == w.start)
            .count() as u32;
        assert_eq!(asked, 1, "{how:?}");
    }
    let good: Vec<Window> = ranges
        .iter()
        .filter(|w| !broken.iter().any(|(b, _)| b == *w))
        .copied()
        .collect();
    assert_eq!(
        ledger
            .iter()
            .filter(|e| e.state != WindowState::Failed)
            .count(),
        good.len(),
        "{ledger:?}"
    );
    // Exactly the calls of the other ranges (both ends of a range included, as the API lists).
    let want: BTreeMap<String, RoomCall> = expected(&cfg)
        .into_iter()
        .filter(|(_, c)| {
            good.iter()
                .any(|w| w.start <= c.created_at && c.created_at <= w.end)
        })
        .collect();
    assert!(want.len() > 100, "{}", want.len());
    let by_id = |calls: Vec<RoomCall>| -> BTreeMap<String, RoomCall> {
        calls.into_iter().map(|c| (c.call_id.clone(), c)).collect()
    };
    assert_eq!(by_id(calls(&store).await), want);

    healed.store(true, Ordering::SeqCst);
    let again = sync_as(&cfg, &store, now(), &options, credentials()).await;
    assert_eq!(again.status, RunStatus::Ok, "{again:?}");
    assert_eq!(by_id(calls(&store).await), expected(&cfg));
    assert!(
        api.received().iter().all(|q| q.method == "GET"),
        "no room was fetched"
    );
    store.close().await;
}

/// The `StartTime` a `ListRoomInfo` query asks.
fn asked_start(query: &str) -> DateTime<Utc> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "StartTime")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap()
}

crate::helpers::on_both_urls!(
    faults_in_discovery_and_room_fetches_end_in_the_fault_free_tables,
    a_short_page_is_retried_then_fails_its_range,
    a_room_id_with_percent_is_listed_and_fetched_exactly,
    a_broken_call_fails_its_range_and_spares_the_others,
    sigkill_while_fetching_rooms_loses_nothing_and_rerun_converges
);

/// Every room point lies in a committed window of its room stream, and every committed window of a
/// room stream holds exactly the points its ledger row says: none is half-written.
async fn assert_room_windows_whole(store: &Store) {
    let points = dump(store).await;
    let ledger: Vec<_> = crate::helpers::windows(store)
        .await
        .into_iter()
        .filter(|e| e.state != WindowState::Failed)
        .filter(|e| e.stream.starts_with("rooms/") && &*e.stream != "rooms/rooms")
        .collect();
    let mut counted = vec![0i64; ledger.len()];
    for key in points.keys() {
        let f: Vec<&str> = key.split('|').collect();
        let label = format!("rooms/{}/{}", f[1], f[3]);
        let ts: DateTime<Utc> = f[8].parse().unwrap();
        let i = ledger
            .iter()
            .position(|e| *e.stream == *label && e.window.contains(ts))
            .unwrap_or_else(|| panic!("point {key} has no committed window"));
        counted[i] += 1;
    }
    for (e, n) in ledger.iter().zip(counted) {
        assert_eq!(n, e.points, "{e:?} does not hold its points");
    }
}

/// The binary killed with SIGKILL while it fetches the rooms' quality (after a few of its
/// `ListQuality` calls, run after run): every committed window is whole, and a re-run ends with
/// exactly the `rtc_rooms` and per-room points of an uninterrupted run.
async fn sigkill_while_fetching_rooms_loses_nothing_and_rerun_converges(url: &str) {
    let want = fault_free(3).await;
    let sim = simulator::spawn(SimulatorConfig {
        latency: StdDuration::from_millis(30),
        ..sim_config(500)
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rooms.toml");
    std::fs::write(
        &config,
        rooms_text(&sim.endpoint(), 3).replace("max_in_flight = 4", "max_in_flight = 2"),
    )
    .unwrap();
    let sync = || crate::helpers::spawn_sync(&config, url, now());
    let room_calls_since = |from: usize| {
        sim.requests()[from..]
            .iter()
            .filter(|r| r.action == "ListQuality")
            .count()
    };
    let mut kills = 0;
    for after in [3, 8, 12, 16] {
        let from = sim.requests().len();
        let mut child = sync();
        // Killed once it has sent `after` room calls: in the middle of fetching the rooms.
        while child.try_wait().unwrap().is_none() {
            if room_calls_since(from) >= after {
                child.start_kill().unwrap(); // SIGKILL
                kills += 1;
                break;
            }
            tokio::time::sleep(StdDuration::from_millis(2)).await;
        }
        let _ = child.wait().await;
        let store = Store::connect(url).await.unwrap();
        assert_room_windows_whole(&store).await;
        store.close().await;
    }
    assert!(kills >= 3, "killed while it fetched rooms {kills} times");

    let out = sync().wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let store = Store::connect(url).await.unwrap();
    assert_room_windows_whole(&store).await;
    let got = tables(&store).await;
    assert_eq!(got.calls, want.calls);
    assert_eq!(got.points, want.points);
    store.close().await;
    sim.shutdown().await;
}
