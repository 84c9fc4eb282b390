//! The simulator's `ListRoomInfo` over real HTTP, sent by the project's own client as a signed GET:
//! the GET signature, paging, both ends of a range, the 24 h cut, `HasMore`, running and finished
//! calls, its own 10/s quota, parameter checks; and per-room `ListQuality` following the rooms' calls.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use rtc_quality_sync::api::client::Client;
use rtc_quality_sync::api::error::ApiError;
use rtc_quality_sync::api::sign::{self, SignInput};
use rtc_quality_sync::api::wire::{
    Envelope, ListQualityRequest, ListRoomInfoResult, RoomInfo, SERVICE,
};
use rtc_quality_sync::api::{Action, Payload, Reply};
use rtc_quality_sync::config::{Credentials, SourceSettings};
use rtc_quality_sync::domain::{Granularity, SeriesKey};
use rtc_quality_sync::simulator::rooms::OCCASIONAL_ROOMS;
use rtc_quality_sync::simulator::{
    self, DEMO_ACCESS_KEY, DEMO_SECRET_KEY, SimCall, SimulatorConfig, SimulatorHandle,
    calls_created, room_calls, served_value,
};

use crate::sim_helpers::{Call, config, data_now, start};

const APP: &str = "app1";

/// A `ListRoomInfo` GET as the client sends it: its parameters in the query. Its answer is the
/// status and the body read as an envelope, whatever it holds, so a test sees refusals too.
struct RoomList {
    params: Vec<(String, String)>,
}

impl Action for RoomList {
    const NAME: &'static str = "ListRoomInfo";
    type Answer = (u16, Envelope<ListRoomInfoResult>);
    fn payload(&self) -> Result<Payload, ApiError> {
        Ok(Payload::Query(self.params.clone()))
    }
    fn requests_per_second(source: &SourceSettings) -> f64 {
        source.requests_per_second
    }
    fn app_id(&self) -> &str {
        APP
    }
    fn start_time(&self) -> &str {
        ""
    }
    fn answer(&self, r: &Reply<'_>) -> Result<Self::Answer, ApiError> {
        let env = serde_json::from_slice(r.body).unwrap_or_else(|e| {
            panic!("not an envelope ({e}): {}", String::from_utf8_lossy(r.body))
        });
        Ok((r.status, env))
    }
}

fn source(sim: &SimulatorHandle) -> SourceSettings {
    SourceSettings {
        endpoint: sim.endpoint().parse().unwrap(),
        region: "cn-north-1".into(),
        requests_per_second: 2.0,
        distribution_requests_per_second: 2.0,
        room_list_requests_per_second: 10.0,
        max_in_flight: 4,
        timeout: Duration::from_secs(10),
        max_retries: 0,
    }
}

fn client(sim: &SimulatorHandle) -> Client {
    Client::new(
        &source(sim),
        Credentials::new(DEMO_ACCESS_KEY, DEMO_SECRET_KEY, None),
    )
    .unwrap()
}

fn rfc(t: DateTime<Utc>, tz: FixedOffset) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(SecondsFormat::Secs, false)
}

fn tz(s: &str) -> FixedOffset {
    s.parse().unwrap()
}

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The query of one page of `[from, to]`, times in `tz`.
fn page_params(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tz: FixedOffset,
    page: i64,
    size: i64,
) -> Vec<(String, String)> {
    params(&[
        ("AppId", APP),
        ("StartTime", &rfc(from, tz)),
        ("EndTime", &rfc(to, tz)),
        ("PageNum", &page.to_string()),
        ("PageSize", &size.to_string()),
    ])
}

async fn list(c: &Client, params: Vec<(String, String)>) -> (u16, Envelope<ListRoomInfoResult>) {
    c.call(&RoomList { params }).await.unwrap()
}

/// A successful page.
async fn page(c: &Client, params: Vec<(String, String)>) -> ListRoomInfoResult {
    let (status, env) = list(c, params).await;
    assert_eq!(
        (status, &env.response_metadata.error),
        (200, &None),
        "{env:?}"
    );
    assert_eq!(env.response_metadata.action, "ListRoomInfo");
    env.result.expect("a result")
}

/// Every page of `[from, to]` at `size`, read until `PageNum × PageSize ≥ Total`; each page's length
/// checked against what `Total` implies.
async fn every_page(
    c: &Client,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    tz: FixedOffset,
    size: i64,
) -> (i64, Vec<RoomInfo>) {
    let mut all = Vec::new();
    let mut n = 1;
    loop {
        let p = page(c, page_params(from, to, tz, n, size)).await;
        assert!(!p.has_more, "{p:?}");
        assert_eq!((p.page_num, p.page_size), (Some(n), Some(size)));
        let total = p.total.unwrap();
        let expected_len = (total - (n - 1) * size).clamp(0, size);
        assert_eq!(p.room_list.len() as i64, expected_len, "page {n}");
        all.extend(p.room_list);
        if n * size >= total {
            return (total, all);
        }
        n += 1;
    }
}

fn wire(calls: &[SimCall], now: DateTime<Utc>, tz: FixedOffset) -> Vec<RoomInfo> {
    calls.iter().map(|c| c.to_wire(now, tz)).collect()
}

fn rooms_config() -> SimulatorConfig {
    SimulatorConfig {
        room_list_rate_limit_per_sec: 1000,
        ..config()
    }
}

fn error_code(env: &Envelope<ListRoomInfoResult>) -> &str {
    &env.response_metadata
        .error
        .as_ref()
        .unwrap_or_else(|| panic!("no error: {env:?}"))
        .code
}

/// 1. The client's GET (no content type signed) is accepted; a GET that signs a content type, or
/// whose signature is wrong, is `SignatureDoesNotMatch`; the log records each with its action.
#[tokio::test]
async fn simulator_rooms_a_signed_get_is_accepted_and_a_get_signed_otherwise_is_refused() {
    let sim = start(rooms_config()).await;
    let day = data_now() - chrono::Duration::days(1);
    let ok = page(
        &client(&sim),
        page_params(day, day + chrono::Duration::hours(2), tz("+08:00"), 1, 100),
    )
    .await;
    assert!(ok.total.unwrap() > 0, "{ok:?}");

    // Signed with a content type, as a POST would be, and sent with it.
    let mut query = params(&[("Action", "ListRoomInfo"), ("Version", "2020-12-01")]);
    query.extend(page_params(
        day,
        day + chrono::Duration::hours(2),
        tz("+08:00"),
        1,
        100,
    ));
    let host = sim.addr().to_string();
    let x_date = rtc_quality_sync::clock::now()
        .format("%Y%m%dT%H%M%SZ")
        .to_string();
    let s = sign::sign(
        &SignInput {
            method: "GET",
            host: &host,
            path: "/",
            query: &query,
            body: b"",
            content_type: Some("application/json"),
            x_date: &x_date,
            region: "cn-north-1",
            service: SERVICE,
            session_token: None,
        },
        DEMO_ACCESS_KEY,
        DEMO_SECRET_KEY,
    );
    assert!(s.authorization.contains("SignedHeaders=content-type;host;"));
    let resp = crate::sim_helpers::client()
        .get(format!(
            "{}/?{}",
            sim.endpoint(),
            sign::canonical_query(&query)
        ))
        .header("Content-Type", "application/json")
        .header("X-Date", &x_date)
        .header("X-Content-Sha256", &s.body_sha256)
        .header("Authorization", &s.authorization)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let env: Envelope<ListRoomInfoResult> =
        serde_json::from_str(&resp.text().await.unwrap()).unwrap();
    assert_eq!(error_code(&env), "SignatureDoesNotMatch");
    assert!(
        env.response_metadata.error.unwrap().message.contains("GET"),
        "the message says why"
    );

    // The client's own GET with the wrong secret.
    let wrong = Client::new(
        &source(&sim),
        Credentials::new(DEMO_ACCESS_KEY, "not-the-secret", None),
    )
    .unwrap();
    let (status, env) = list(
        &wrong,
        page_params(day, day + chrono::Duration::hours(2), tz("+08:00"), 1, 100),
    )
    .await;
    assert_eq!((status, error_code(&env)), (401, "SignatureDoesNotMatch"));

    // The request log, over HTTP too, has all three with their action.
    let text = crate::sim_helpers::client()
        .get(format!("{}/_simulator/requests", sim.endpoint()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let log: Vec<simulator::RequestRecord> = serde_json::from_str(&text).unwrap();
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|r| r.action == "ListRoomInfo"), "{log:?}");
    let codes: Vec<(u16, Option<&str>)> =
        log.iter().map(|r| (r.status, r.code.as_deref())).collect();
    assert_eq!(
        codes,
        [
            (200, None),
            (401, Some("SignatureDoesNotMatch")),
            (401, Some("SignatureDoesNotMatch"))
        ]
    );
    sim.shutdown().await;
}

/// 2. Paging a day returns exactly `room_calls` for it, in order, none lost or doubled; `Total` is
/// right and the last page short. Times come back in the offset asked.
#[tokio::test]
async fn simulator_rooms_paging_a_range_returns_exactly_its_calls() {
    let sim = start(rooms_config()).await;
    let c = client(&sim);
    let west = tz("-05:00");
    let from: DateTime<Utc> = "2026-03-08T05:00:00Z".parse().unwrap();
    let to = from + chrono::Duration::hours(24);
    let expected = room_calls(1, APP, from, to, data_now());
    assert!(expected.len() > 20, "{}", expected.len());
    // A page size that leaves a short last page.
    let size = [7, 9, 11, 13]
        .into_iter()
        .find(|s| !expected.len().is_multiple_of(*s))
        .unwrap();
    let (total, got) = every_page(&c, from, to, west, size as i64).await;
    assert_eq!(total as usize, expected.len());
    assert_eq!(got, wire(&expected, data_now(), west));
    assert!(got[0].created_time.ends_with("-05:00"), "{:?}", got[0]);
    let ids: std::collections::BTreeSet<&str> = got.iter().map(|r| r.call_id.as_str()).collect();
    assert_eq!(ids.len(), got.len(), "a call listed twice");

    // The same range in another offset and page size lists the same calls.
    let (_, again) = every_page(&c, from, to, tz("+08:00"), 100).await;
    let same: Vec<&str> = again.iter().map(|r| r.call_id.as_str()).collect();
    let first: Vec<&str> = got.iter().map(|r| r.call_id.as_str()).collect();
    assert_eq!(same, first);

    // A page past the end is empty and says the same total; PageSize defaults to 20.
    let past = page(&c, page_params(from, to, west, 1000, 20)).await;
    assert!(past.room_list.is_empty());
    assert_eq!(past.total, Some(total));
    let mut no_size = page_params(from, to, west, 1, 20);
    no_size.retain(|(k, _)| k != "PageSize");
    let default = page(&c, no_size).await;
    assert_eq!(default.page_size, Some(20));
    assert_eq!(default.room_list.len(), expected.len().min(20));
    sim.shutdown().await;
}

/// 3. A call created exactly at `StartTime` or at `EndTime` is listed; a range of 30 h covers its
/// first 24 h only.
#[tokio::test]
async fn simulator_rooms_both_ends_are_included_and_a_long_range_is_cut_to_24_hours() {
    let sim = start(rooms_config()).await;
    let c = client(&sim);
    let day: DateTime<Utc> = "2026-03-08T00:00:00Z".parse().unwrap();
    let calls = room_calls(1, APP, day, day + chrono::Duration::hours(24), data_now());
    let (first, last) = (&calls[3], &calls[12]);
    let (_, got) = every_page(&c, first.created, last.created, tz("+08:00"), 100).await;
    let ids: Vec<&str> = got.iter().map(|r| r.call_id.as_str()).collect();
    let want: Vec<&str> = calls[3..=12].iter().map(|c| c.call_id.as_str()).collect();
    assert_eq!(ids, want, "both ends included");
    // A second inside on each side leaves them out.
    let (_, inner) = every_page(
        &c,
        first.created + chrono::Duration::seconds(1),
        last.created - chrono::Duration::seconds(1),
        tz("+08:00"),
        100,
    )
    .await;
    assert_eq!(inner.len(), 8);
    assert!(
        !inner
            .iter()
            .any(|r| r.call_id == first.call_id || r.call_id == last.call_id)
    );

    let end = day + chrono::Duration::hours(30);
    let cut = room_calls(1, APP, day, day + chrono::Duration::hours(24), data_now());
    let uncut = room_calls(1, APP, day, end, data_now());
    assert!(uncut.len() > cut.len(), "the last 6 h hold calls");
    let (total, got) = every_page(&c, day, end, tz("+08:00"), 100).await;
    assert_eq!(total as usize, cut.len());
    assert_eq!(got, wire(&cut, data_now(), tz("+08:00")));
    sim.shutdown().await;
}

/// 4. A range holding more calls than `room_list_max_matches` is `HasMore: true` with an empty
/// `RoomList` and the right `Total`; one holding exactly that many is listed.
#[tokio::test]
async fn simulator_rooms_too_many_matches_say_has_more() {
    let sim = start(SimulatorConfig {
        room_list_max_matches: 10,
        ..rooms_config()
    })
    .await;
    let c = client(&sim);
    let day: DateTime<Utc> = "2026-03-08T00:00:00Z".parse().unwrap();
    let calls = room_calls(1, APP, day, day + chrono::Duration::hours(24), data_now());
    assert!(calls.len() > 10);
    let p = page(
        &c,
        page_params(day, day + chrono::Duration::hours(24), tz("+08:00"), 1, 100),
    )
    .await;
    assert!(p.has_more);
    assert!(p.room_list.is_empty(), "{p:?}");
    assert_eq!(p.total, Some(calls.len() as i64));

    let ten = page(
        &c,
        page_params(calls[0].created, calls[9].created, tz("+08:00"), 1, 100),
    )
    .await;
    assert!(!ten.has_more);
    assert_eq!(ten.room_list, wire(&calls[..10], data_now(), tz("+08:00")));
    let eleven = page(
        &c,
        page_params(calls[0].created, calls[10].created, tz("+08:00"), 1, 100),
    )
    .await;
    assert!(eleven.has_more && eleven.room_list.is_empty());
    sim.shutdown().await;
}

/// 5. A call running at the data-now is listed with `DestroyTime: ""` and `IsFinished: false`; once
/// the data-now passes its end it is finished. A call not yet created (or created less than 20 s
/// ago) is not listed.
#[tokio::test]
async fn simulator_rooms_a_running_call_finishes_later() {
    let sim = start(rooms_config()).await;
    let c = client(&sim);
    let now = data_now();
    let recent = room_calls(1, APP, now - chrono::Duration::hours(4), now, now);
    let running = recent
        .iter()
        .find(|x| x.destroyed > now)
        .expect("a call runs at the data-now")
        .clone();
    let from = now - chrono::Duration::hours(4);
    let to = now + chrono::Duration::hours(1);
    let (_, got) = every_page(&c, from, to, tz("+08:00"), 100).await;
    assert_eq!(got, wire(&recent, now, tz("+08:00")));
    let listed = got.iter().find(|r| r.call_id == running.call_id).unwrap();
    assert_eq!(listed.destroy_time, "");
    assert!(!listed.is_finished);
    // Not yet created (or too recent) calls of that range exist, and are not listed.
    let later = calls_created(1, APP, now - chrono::Duration::seconds(19), to);
    assert!(!later.is_empty());
    assert!(
        later
            .iter()
            .all(|l| !got.iter().any(|r| r.call_id == l.call_id))
    );

    let after = running.destroyed + chrono::Duration::seconds(1);
    sim.set_data_now(after);
    let (_, got) = every_page(&c, from, to, tz("+08:00"), 100).await;
    let listed = got.iter().find(|r| r.call_id == running.call_id).unwrap();
    assert!(listed.is_finished);
    assert_eq!(listed.destroy_time, rfc(running.destroyed, tz("+08:00")));
    assert_eq!(
        got,
        wire(&room_calls(1, APP, from, to, after), after, tz("+08:00"))
    );
    sim.shutdown().await;
}

/// 6. `ListRoomInfo` allows 10 requests in any second: the 11th is throttled like the others are
/// (429 `FlowLimitExceeded`), and `ListQuality`'s own quota is untouched.
#[tokio::test]
async fn simulator_rooms_the_eleventh_request_in_a_second_is_throttled_apart_from_list_quality() {
    let sim = start(SimulatorConfig {
        rate_limit_per_sec: 2,
        ..config()
    })
    .await;
    assert_eq!(sim.config().room_list_rate_limit_per_sec, 10);
    let day = data_now() - chrono::Duration::days(1);
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..11 {
        let c = client(&sim);
        let p = page_params(day, day + chrono::Duration::hours(1), tz("+08:00"), 1, 20);
        set.spawn(async move { list(&c, p).await });
    }
    let mut statuses = Vec::new();
    while let Some(r) = set.join_next().await {
        let (status, env) = r.unwrap();
        if status != 200 {
            assert_eq!((status, error_code(&env)), (429, "FlowLimitExceeded"));
        }
        statuses.push(status);
    }
    statuses.sort();
    assert_eq!(statuses, [&[200u16; 10][..], &[429]].concat());

    // ListQuality, right after, still has its 2.
    for _ in 0..2 {
        let a = Call::new(crate::sim_helpers::body(
            APP,
            "2026-03-08T00:00:00+08:00",
            "2026-03-09T00:00:00+08:00",
            &["stall_rate"],
            "1d",
        ))
        .send(&sim)
        .await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    let log = sim.requests();
    let throttled: Vec<&str> = log
        .iter()
        .filter(|r| r.status == 429)
        .map(|r| r.action.as_str())
        .collect();
    assert_eq!(throttled, ["ListRoomInfo"]);
    sim.shutdown().await;
}

fn room_key(room: &str, name: &str) -> SeriesKey {
    SeriesKey {
        app_id: APP.into(),
        room_id: room.into(),
        indicator: name.into(),
        granularity: Granularity::FiveMin,
        product_type: "native".into(),
        os: String::new(),
        access: String::new(),
        user_ids: String::new(),
        dimension: String::new(),
        dimension_value: String::new(),
        grid_timezone: String::new(),
    }
}

fn quality_body(room: Option<&str>) -> Vec<u8> {
    serde_json::to_vec(&ListQualityRequest {
        app_id: APP.into(),
        start_time: "2026-03-08T00:00:00+08:00".into(),
        end_time: "2026-03-09T00:00:00+08:00".into(),
        indicator: vec!["stall_rate".into()],
        aggregate_granularity: "5min".into(),
        product_type: None,
        os: vec![],
        access: vec![],
        room_id: room.map(str::to_string),
        user_id: vec![],
    })
    .unwrap()
}

/// 7. `ListQuality` with a `RoomId`: buckets in which none of the room's calls ran are `null`,
/// buckets a call overlaps carry the room's values; a room the app never had has no data at all;
/// without a `RoomId` nothing changes.
#[tokio::test]
async fn simulator_rooms_per_room_list_quality_follows_the_rooms_calls() {
    let sim = start(rooms_config()).await;
    let now = data_now();
    let day_start: DateTime<Utc> = "2026-03-07T16:00:00Z".parse().unwrap();
    let day_end = day_start + chrono::Duration::days(1);
    // An occasional room (one that needs escaping, as it happens) that had a call that day.
    let calls = calls_created(1, APP, day_start - chrono::Duration::hours(4), day_end);
    let room = OCCASIONAL_ROOMS
        .into_iter()
        .find(|r| {
            calls
                .iter()
                .any(|c| c.room_id == *r && c.created >= day_start)
        })
        .expect("a room with a call that day");
    let spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = calls
        .iter()
        .filter(|c| c.room_id == room)
        .map(|c| (c.created, c.destroyed))
        .collect();

    let r = Call::new(quality_body(Some(room)))
        .send(&sim)
        .await
        .result();
    assert_eq!(r.indicators.len(), 2);
    let (mut inside, mut outside) = (0, 0);
    for i in &r.indicators {
        // Every bucket of [StartTime, EndTime], the one at EndTime too.
        for n in 0..=288 {
            let t = day_start + chrono::Duration::minutes(5 * n);
            let stamp = t
                .with_timezone(&tz("+08:00"))
                .to_rfc3339_opts(SecondsFormat::Secs, false);
            let got = i.data.iter().find(|d| d.time_stamp == stamp);
            let end = t + chrono::Duration::minutes(5);
            let ran = spans.iter().any(|(c, x)| *c < end && *x > t);
            let want = served_value(1, &room_key(room, &i.name), t, now);
            assert_eq!(got.and_then(|d| d.value), want, "{} {stamp}", i.name);
            if ran {
                inside += 1;
            } else {
                assert!(got.is_some(), "{} {stamp}: no call ran: a null", i.name);
                assert_eq!(want, None, "{} {stamp}: no call ran", i.name);
                outside += 1;
            }
        }
    }
    assert!(
        inside > 0 && outside > 0,
        "{inside} inside, {outside} outside"
    );
    let valued = r
        .indicators
        .iter()
        .flat_map(|i| &i.data)
        .filter(|d| d.value.is_some())
        .count();
    assert!(
        valued * 10 >= inside * 9,
        "{valued} of {inside} buckets with calls have values"
    );

    // A permanent room always has a call running: its buckets are valued as the app's would be,
    // bar the few without traffic.
    let busy = Call::new(quality_body(Some("room-1")))
        .send(&sim)
        .await
        .result();
    for i in &busy.indicators {
        let nulls = i.data.iter().filter(|d| d.value.is_none()).count();
        assert!(
            i.data.len() > 270 && nulls < 15,
            "{}: {nulls} nulls",
            i.name
        );
    }

    // A room the app never had: every asked name, no data.
    let none = Call::new(quality_body(Some("no-such-room")))
        .send(&sim)
        .await
        .result();
    assert_eq!(none.indicators.len(), 2);
    assert!(
        none.indicators.iter().all(|i| i.data.is_empty()),
        "{none:?}"
    );

    // Without a room: the app's series, almost every bucket valued, as before.
    let app = Call::new(quality_body(None)).send(&sim).await.result();
    for i in &app.indicators {
        let nulls = i.data.iter().filter(|d| d.value.is_none()).count();
        assert!(
            i.data.len() > 270 && nulls < 15,
            "{}: {nulls} nulls",
            i.name
        );
        for d in &i.data {
            let t: DateTime<Utc> = DateTime::parse_from_rfc3339(&d.time_stamp).unwrap().into();
            assert_eq!(d.value, served_value(1, &room_key("", &i.name), t, now));
        }
    }
    sim.shutdown().await;
}

/// 8. Parameters the service refuses: `InvalidParameter` (400), each saying what is wrong.
#[tokio::test]
async fn simulator_rooms_bad_parameters_are_invalid_parameter() {
    let sim = start(SimulatorConfig {
        apps: vec![APP.into()],
        ..rooms_config()
    })
    .await;
    let c = client(&sim);
    let day: DateTime<Utc> = "2026-03-08T00:00:00Z".parse().unwrap();
    let good = page_params(day, day + chrono::Duration::hours(1), tz("+08:00"), 1, 100);
    let with = |key: &str, value: Option<&str>| {
        let mut p: Vec<(String, String)> = good.iter().filter(|(k, _)| k != key).cloned().collect();
        if let Some(v) = value {
            p.push((key.to_string(), v.to_string()));
        }
        p
    };
    let old = data_now() - chrono::Duration::days(14) - chrono::Duration::minutes(1);
    for (p, code) in [
        (with("PageSize", Some("101")), "InvalidParameter"),
        (with("PageSize", Some("0")), "InvalidParameter"),
        (with("PageNum", Some("0")), "InvalidParameter"),
        (with("PageNum", Some("one")), "InvalidParameter"),
        (with("AppId", None), "InvalidParameter"),
        (with("StartTime", None), "InvalidParameter"),
        (with("EndTime", Some("yesterday")), "InvalidParameter"),
        (
            with("StartTime", Some("2026-03-08T02:00:00Z")),
            "InvalidParameter.StartTimeAfterEndTime",
        ),
        (
            page_params(old, old + chrono::Duration::hours(1), tz("+08:00"), 1, 100),
            "InvalidParameter.OutofTimeRange",
        ),
        (
            with("AppId", Some("app9")),
            "InvalidParameter.NotExistAppId",
        ),
    ] {
        let (status, env) = list(&c, p.clone()).await;
        assert_eq!((status, error_code(&env)), (400, code), "{p:?}");
        assert!(env.result.is_none());
    }
    // PageSize 100 and a start just inside 14 days are fine.
    let edge = data_now() - chrono::Duration::days(14) + chrono::Duration::minutes(1);
    page(&c, with("PageSize", Some("100"))).await;
    page(
        &c,
        page_params(
            edge,
            edge + chrono::Duration::hours(1),
            tz("+08:00"),
            1,
            100,
        ),
    )
    .await;
    sim.shutdown().await;
}

/// The `ListRoomInfo` faults: `shortpage` lists fewer calls than `Total` implies, `dupcall` lists
/// one `CallId` twice; both are logged as faults, and other actions drawing them answer right.
#[tokio::test]
async fn simulator_rooms_short_page_and_duplicate_call_faults() {
    let day: DateTime<Utc> = "2026-03-08T00:00:00Z".parse().unwrap();
    let to = day + chrono::Duration::hours(24);
    let calls = room_calls(1, APP, day, to, data_now());
    assert!(calls.len() > 10);
    let right = wire(&calls[..10], data_now(), tz("+08:00"));

    let sim = start(SimulatorConfig {
        faults: simulator::Faults::only(simulator::FaultKind::ShortPage, 1.0),
        ..rooms_config()
    })
    .await;
    let p = page(&client(&sim), page_params(day, to, tz("+08:00"), 1, 10)).await;
    assert_eq!(p.total, Some(calls.len() as i64));
    assert_eq!(p.room_list, right[..9]);
    let q = Call::new(crate::sim_helpers::body(
        APP,
        "2026-03-08T00:00:00+08:00",
        "2026-03-09T00:00:00+08:00",
        &["stall_rate"],
        "1d",
    ))
    .send(&sim)
    .await
    .result();
    assert_eq!(q.indicators.len(), 2);
    let faults: Vec<Option<String>> = sim.requests().into_iter().map(|r| r.fault).collect();
    assert_eq!(
        faults,
        [Some("shortpage".to_string()), Some("shortpage".to_string())]
    );
    sim.shutdown().await;

    let sim = start(SimulatorConfig {
        faults: simulator::Faults::only(simulator::FaultKind::DuplicateCall, 1.0),
        ..rooms_config()
    })
    .await;
    let p = page(&client(&sim), page_params(day, to, tz("+08:00"), 1, 10)).await;
    assert_eq!(p.room_list.len(), 10);
    assert_eq!(p.room_list[..9], right[..9]);
    assert_eq!(p.room_list[9].call_id, p.room_list[0].call_id);
    assert_eq!(sim.requests()[0].fault.as_deref(), Some("dupcall"));
    sim.shutdown().await;
}
