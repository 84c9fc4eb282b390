//! The simulator over real HTTP: every check with its code and status, the official SDK's signature
//! accepted, data that is deterministic and window-independent, provisional and partial values,
//! the rate limit, each fault, latency and the request log.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rtc_quality_sync::api::wire::ListQualityResult;
use rtc_quality_sync::domain::{Granularity, SeriesKey};
use rtc_quality_sync::simulator::{
    self, BucketStage, FaultKind, Faults, RequestRecord, SimulatorConfig, bucket_stage,
    final_value, served_value,
};

use crate::sim_helpers::{Answer, Call, body, config, points, send_raw, start};

const WEEK_START: &str = "2026-03-01T00:00:00+08:00";
const WEEK_END: &str = "2026-03-08T00:00:00+08:00";

fn good_body() -> Vec<u8> {
    body(
        "app1",
        "2026-03-02T00:00:00+08:00",
        "2026-03-04T00:00:00+08:00",
        &["stall_rate"],
        "1d",
    )
}

fn assert_refused(a: &Answer, code: &str, code_n: Option<i64>, status: u16) {
    assert_eq!(a.status, status, "{code}: {}", a.text);
    let env = a.envelope();
    let m = &env.response_metadata;
    let e = m
        .error
        .as_ref()
        .unwrap_or_else(|| panic!("{code}: no error in {}", a.text));
    assert_eq!(e.code, code, "{}", a.text);
    assert_eq!(e.code_n, code_n, "{}", a.text);
    assert!(!e.message.is_empty());
    assert!(!m.request_id.is_empty(), "{}", a.text);
    assert_eq!(m.service, "rtc");
    assert_eq!(m.region, "cn-north-1");
    assert_eq!(env.result, None, "{}", a.text);
}

#[tokio::test]
async fn gateway_checks_answer_with_the_documented_codes() {
    let sim = start(config()).await;

    let ok = Call::new(good_body()).send(&sim).await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    let env = ok.envelope();
    assert_eq!(env.response_metadata.action, "ListQuality");
    assert_eq!(env.response_metadata.version, "2020-12-01");
    assert_eq!(env.response_metadata.service, "rtc");

    // No auth headers at all.
    let q = Call::new(good_body()).query;
    let a = send_raw(&sim, &q, vec![], good_body()).await;
    assert_refused(&a, "MissingRequestInfo", Some(100004), 400);

    // Signed, but X-Date dropped.
    let call = Call::new(good_body());
    let headers: Vec<_> = call
        .signed_headers(&sim.addr().to_string())
        .into_iter()
        .filter(|(k, _)| k != "X-Date")
        .collect();
    let a = send_raw(&sim, &q, headers, good_body()).await;
    assert_refused(&a, "MissingRequestInfo", Some(100004), 400);

    let mut late = Call::new(good_body());
    late.x_date = rtc_quality_sync::clock::now() - chrono::Duration::minutes(16);
    assert_refused(
        &late.send(&sim).await,
        "InvalidTimestamp",
        Some(100006),
        400,
    );
    let mut early = Call::new(good_body());
    early.x_date = rtc_quality_sync::clock::now() + chrono::Duration::minutes(16);
    assert_refused(
        &early.send(&sim).await,
        "InvalidTimestamp",
        Some(100006),
        400,
    );

    let mut stranger = Call::new(good_body());
    stranger.access_key = "AKLTsomeoneelse".into();
    assert_refused(
        &stranger.send(&sim).await,
        "InvalidAccessKey",
        Some(100009),
        401,
    );

    let mut wrong_secret = Call::new(good_body());
    wrong_secret.secret_key = "not-the-secret".into();
    assert_refused(
        &wrong_secret.send(&sim).await,
        "SignatureDoesNotMatch",
        Some(100010),
        401,
    );

    // The body that arrives is not the one signed.
    let mut other = good_body();
    other.push(b' ');
    let a = Call::new(good_body()).send_with_body(&sim, other).await;
    assert_refused(&a, "SignatureDoesNotMatch", Some(100010), 401);

    // Signed for another port than the one it arrived at.
    let call = Call::new(good_body());
    let a = send_raw(
        &sim,
        &call.query,
        call.signed_headers("127.0.0.1:1"),
        good_body(),
    )
    .await;
    assert_refused(&a, "SignatureDoesNotMatch", Some(100010), 401);

    let mut other_action = Call::new(good_body());
    other_action.query[0].1 = "ListRoomInfo".into();
    assert_refused(
        &other_action.send(&sim).await,
        "InvalidActionOrVersion",
        Some(100008),
        404,
    );
    let mut other_version = Call::new(good_body());
    other_version.query[1].1 = "2023-11-01".into();
    assert_refused(
        &other_version.send(&sim).await,
        "InvalidActionOrVersion",
        Some(100008),
        404,
    );

    // Signed with a session token: accepted, whatever the token.
    let mut sts = Call::new(good_body());
    sts.session_token = Some("STS2eyJhbnkiOiJ0b2tlbiJ9".into());
    let a = sts.send(&sim).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(!a.result().indicators.is_empty());

    sim.shutdown().await;
}

#[tokio::test]
async fn body_checks_answer_with_the_documented_codes() {
    let sim = start(SimulatorConfig {
        apps: vec!["app1".into()],
        ..config()
    })
    .await;
    let send = |b: Vec<u8>| {
        let sim = &sim;
        async move { Call::new(b).send(sim).await }
    };
    let with = |start: &str, end: &str, g: &str| body("app1", start, end, &["stall_rate"], g);

    assert_eq!(send(good_body()).await.status, 200);
    assert_refused(
        &send(b"{\"AppId\": \"app1\",".to_vec()).await,
        "InvalidParameter.Unmarshal",
        None,
        400,
    );
    assert_refused(
        &send(br#"{"AppId":"app1","Indicator":["stall_rate"]}"#.to_vec()).await,
        "MissingParameter",
        Some(100002),
        400,
    );
    assert_refused(
        &send(body(
            "app2",
            "2026-03-02T00:00:00+08:00",
            "2026-03-03T00:00:00+08:00",
            &["stall_rate"],
            "1d",
        ))
        .await,
        "InvalidParameter.NotExistAppId",
        None,
        400,
    );
    assert_refused(
        &send(with(
            "2026-03-03T00:00:00+08:00",
            "2026-03-02T00:00:00+08:00",
            "1d",
        ))
        .await,
        "InvalidParameter.StartTimeAfterEndTime",
        None,
        400,
    );
    assert_refused(
        &send(with(
            "2026-03-01T00:00:00+08:00",
            "2026-03-08T00:05:00+08:00",
            "5min",
        ))
        .await,
        "InvalidParameter.OutofTimeRange",
        None,
        400,
    );
    // data-now is 2026-03-10T12:00Z: 30 days back is 2026-02-08T12:00Z.
    assert_refused(
        &send(with("2026-02-08T11:55:00Z", "2026-02-09T00:00:00Z", "5min")).await,
        "InvalidParameter.OutofTimeRange",
        None,
        400,
    );
    assert_eq!(
        send(with("2026-02-08T12:00:00Z", "2026-02-09T00:00:00Z", "5min"))
            .await
            .status,
        200
    );
    assert_refused(
        &send(with(
            "2026-03-02T00:00:00+08:00",
            "2026-03-03T00:00:00+08:00",
            "1h",
        ))
        .await,
        "InvalidParameter",
        None,
        400,
    );
    let users: Vec<String> = (0..21).map(|i| format!("\"u{i}\"")).collect();
    let many = format!(
        r#"{{"AppId":"app1","RoomId":"r1","UserId":[{}],"StartTime":"2026-03-02T00:00:00+08:00","EndTime":"2026-03-03T00:00:00+08:00","Indicator":["stall_rate"],"AggregateGranularity":"1d"}}"#,
        users.join(",")
    );
    assert_refused(
        &send(many.into_bytes()).await,
        "InvalidParameter",
        None,
        400,
    );

    // The log has every one, with its outcome.
    let log = sim.requests();
    assert_eq!(log.len(), 10);
    assert_eq!(log[1].status, 400);
    assert_eq!(log[1].code.as_deref(), Some("InvalidParameter.Unmarshal"));
    assert_eq!(log[0].code, None);
    sim.shutdown().await;
}

/// The official SDK's request, replayed with its headers exactly as sent (Host 127.0.0.1:18080 arrives
/// at another port): the simulator verifies what arrived and agrees with the SDK.
#[tokio::test]
async fn the_official_sdk_signature_is_accepted() {
    let vectors: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("../data/sign-vectors.json")).unwrap();
    let v = vectors
        .iter()
        .find(|v| v["name"] == "loopback_host_with_port")
        .unwrap();
    let s = |k: &str| v[k].as_str().unwrap().to_string();
    let signed_at: DateTime<Utc> = "2024-01-15T08:30:00Z".parse().unwrap();
    assert_eq!(signed_at.format("%Y%m%dT%H%M%SZ").to_string(), s("x_date"));
    let sim = start(SimulatorConfig {
        fixed_signing_time: Some(signed_at),
        data_now: Some("2024-01-16T00:00:00Z".parse().unwrap()),
        ..SimulatorConfig::with_keys(&s("access_key_id"), &s("secret_access_key"))
    })
    .await;

    let url = url::Url::parse(&s("url_as_sent_by_sdk")).unwrap();
    let target = format!("{}/?{}", sim.endpoint(), url.query().unwrap());
    let mut req = reqwest::Client::new().post(target);
    for (k, x) in v["headers_sent"].as_object().unwrap() {
        req = req.header(k.as_str(), x.as_str().unwrap());
    }
    let resp = req.body(s("body")).send().await.unwrap();
    let a = Answer {
        status: resp.status().as_u16(),
        text: resp.text().await.unwrap(),
    };
    // The SDK's bytes ask for `audio_stall_rate` and `video_stall_rate`, names the API returns
    // rather than documented request names: the answer is the body check's `InvalidParameter`
    // (HTTP 400), which comes only after every signature check passed (a bad signature is 401).
    let error = a.envelope().response_metadata.error.expect("an error");
    assert_eq!(
        (a.status, error.code.as_str()),
        (400, "InvalidParameter"),
        "{}",
        a.text
    );
    assert!(error.message.contains("\"audio_stall_rate\""), "{}", a.text);

    // The same bytes with one header changed are refused: the acceptance is not vacuous.
    let mut req =
        reqwest::Client::new().post(format!("{}/?{}", sim.endpoint(), url.query().unwrap()));
    for (k, x) in v["headers_sent"].as_object().unwrap() {
        let x = if k == "Host" {
            "127.0.0.1:18081"
        } else {
            x.as_str().unwrap()
        };
        req = req.header(k.as_str(), x);
    }
    let resp = req.body(s("body")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    sim.shutdown().await;
}

#[tokio::test]
async fn the_same_request_gives_the_same_data() {
    let sim = start(config()).await;
    let b = body(
        "app1",
        WEEK_START,
        "2026-03-02T00:00:00+08:00",
        &["join_room_success_rate"],
        "5min",
    );
    let first = Call::new(b.clone()).send(&sim).await;
    let second = Call::new(b).send(&sim).await;
    assert_eq!(first.result(), second.result());
    assert_ne!(
        first.envelope().response_metadata.request_id,
        second.envelope().response_metadata.request_id
    );
    // Another seed, other data.
    let other = start(SimulatorConfig {
        seed: 2,
        ..config()
    })
    .await;
    let third = Call::new(body(
        "app1",
        WEEK_START,
        "2026-03-02T00:00:00+08:00",
        &["join_room_success_rate"],
        "5min",
    ))
    .send(&other)
    .await;
    assert_ne!(first.result(), third.result());
    sim.shutdown().await;
    other.shutdown().await;
}

/// Drops the bucket that starts at `end`, as a client must.
fn inside(r: &ListQualityResult, end: &str) -> Vec<(String, String, Option<f64>)> {
    let end: DateTime<Utc> = DateTime::parse_from_rfc3339(end).unwrap().into();
    points(r)
        .into_iter()
        .filter(|(_, ts, _)| DateTime::parse_from_rfc3339(ts).unwrap() < end)
        .collect()
}

#[tokio::test]
async fn a_week_in_one_call_equals_seven_daily_calls() {
    let sim = start(config()).await;
    let indicators = ["join_room_success_rate", "stall_rate"];
    let week = Call::new(body("app1", WEEK_START, WEEK_END, &indicators, "5min"))
        .send(&sim)
        .await
        .result();
    assert_eq!(week.aggregate_granularity, "5min");
    let names: Vec<&str> = week.indicators.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "5s_join_room_success_rate",
            "10s_join_room_success_rate",
            "audio_stall_rate",
            "video_stall_rate"
        ]
    );
    assert!(week.indicators.iter().all(|i| i.unit == "%"));
    // The bucket at EndTime is returned too (for the names with traffic then).
    assert!(points(&week).iter().any(|(_, ts, _)| ts == WEEK_END));

    let mut daily = Vec::new();
    for d in 1..=7 {
        let s = format!("2026-03-{d:02}T00:00:00+08:00");
        let e = format!("2026-03-{:02}T00:00:00+08:00", d + 1);
        let r = Call::new(body("app1", &s, &e, &indicators, "5min"))
            .send(&sim)
            .await
            .result();
        daily.extend(inside(&r, &e));
    }
    daily.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let week = inside(&week, WEEK_END);
    assert_eq!(week, daily);

    // Realistic, two decimals, some buckets without traffic in each of the two forms.
    let nulls = week.iter().filter(|p| p.2.is_none()).count();
    let missing = 4 * 7 * 288 - week.len();
    assert!(nulls > 0 && missing > 0, "nulls {nulls}, missing {missing}");
    assert!(nulls + missing < 4 * 7 * 288 / 10);
    for (name, ts, v) in &week {
        let Some(v) = v else { continue };
        let (lo, hi) = if name.contains("success") {
            (90.0, 100.0)
        } else {
            (0.0, 10.0)
        };
        assert!((lo..=hi).contains(v), "{name} {ts}: {v}");
        assert_eq!((v * 100.0).round() / 100.0, *v);
    }
    assert!(week[0].1.ends_with("+08:00"), "{}", week[0].1);
    sim.shutdown().await;
}

fn key(name: &str, g: Granularity) -> SeriesKey {
    SeriesKey {
        app_id: "app1".into(),
        room_id: String::new(),
        indicator: name.into(),
        granularity: g,
        product_type: "native".into(),
        os: String::new(),
        access: String::new(),
        user_ids: String::new(),
        dimension: String::new(),
        dimension_value: String::new(),
        grid_timezone: String::new(),
    }
}

/// What the simulator serves agrees with the public data functions, so pipeline tests can compute
/// what a backfill must store; a null or missing point is one without traffic.
fn check_against_data_functions(
    r: &ListQualityResult,
    seed: u64,
    now: DateTime<Utc>,
    g: Granularity,
) {
    for i in &r.indicators {
        for d in &i.data {
            let ts: DateTime<Utc> = DateTime::parse_from_rfc3339(&d.time_stamp).unwrap().into();
            assert_eq!(
                d.value,
                served_value(seed, &key(&i.name, g), ts, now),
                "{} {}",
                i.name,
                d.time_stamp
            );
        }
    }
}

#[tokio::test]
async fn provisional_values_change_until_final_and_incomplete_buckets_are_partial() {
    // 1d buckets in +08:00. At 2026-03-10T06:00Z, the day of 03-08 is final, the day of 03-09 (ended
    // 03-09T16:00Z, 14 h ago) is provisional, and the day of 03-10 (ends after now - 8 h) is partial.
    let early: DateTime<Utc> = "2026-03-10T06:00:00Z".parse().unwrap();
    let sim = start(SimulatorConfig {
        data_now: Some(early),
        ..config()
    })
    .await;
    let g = Granularity::Day;
    let day = |s: &str| -> DateTime<Utc> { DateTime::parse_from_rfc3339(s).unwrap().into() };
    let (d8, d9, d10) = (
        day("2026-03-08T00:00:00+08:00"),
        day("2026-03-09T00:00:00+08:00"),
        day("2026-03-10T00:00:00+08:00"),
    );
    assert_eq!(bucket_stage(d8, g, early), BucketStage::Final);
    assert_eq!(bucket_stage(d9, g, early), BucketStage::Provisional);
    assert_eq!(bucket_stage(d10, g, early), BucketStage::Partial);

    let indicators = [
        "join_room_success_rate",
        "stall_rate",
        "first_frame_send_success_rate",
    ];
    let b = body(
        "app1",
        "2026-03-08T00:00:00+08:00",
        "2026-03-10T00:00:00+08:00",
        &indicators,
        "1d",
    );
    let before = Call::new(b.clone()).send(&sim).await.result();
    check_against_data_functions(&before, 1, early, g);

    // Past 20 h after the end of 03-09 (and past 8 h after the end of 03-10).
    let later: DateTime<Utc> = "2026-03-11T01:00:00Z".parse().unwrap();
    sim.set_data_now(later);
    let after = Call::new(b).send(&sim).await.result();
    check_against_data_functions(&after, 1, later, g);

    let value = |r: &ListQualityResult, name: &str, ts: DateTime<Utc>| {
        r.indicators
            .iter()
            .find(|i| i.name == name)
            .and_then(|i| {
                i.data
                    .iter()
                    .find(|d| DateTime::parse_from_rfc3339(&d.time_stamp).unwrap() == ts)
            })
            .and_then(|d| d.value)
    };
    let mut compared = 0;
    for i in &before.indicators {
        let k = key(&i.name, g);
        let (Some(f8), Some(f9), Some(f10)) = (
            final_value(1, &k, d8),
            final_value(1, &k, d9),
            final_value(1, &k, d10),
        ) else {
            continue;
        };
        compared += 1;
        // Final stays final.
        assert_eq!(value(&before, &i.name, d8), Some(f8));
        assert_eq!(value(&after, &i.name, d8), Some(f8));
        // Provisional differs from final, and changes to it once data-now is 20 h past its end.
        let p9 = value(&before, &i.name, d9).expect("a provisional value");
        assert_ne!(p9, f9, "{}", i.name);
        assert_eq!(value(&after, &i.name, d9), Some(f9), "{}", i.name);
        // Partial differs from final, and later becomes provisional (still not final).
        let p10 = value(&before, &i.name, d10).expect("a partial value");
        assert_ne!(p10, f10, "{}", i.name);
        let q10 = value(&after, &i.name, d10).expect("a provisional value");
        assert_ne!(q10, f10, "{}", i.name);
        assert_ne!(q10, p10, "{}", i.name);
    }
    assert!(
        compared >= 3,
        "only {compared} series had traffic on all three days"
    );

    sim.clear_data_now();
    sim.shutdown().await;
}

#[tokio::test]
async fn a_third_request_within_one_second_is_throttled() {
    let sim = start(SimulatorConfig {
        rate_limit_per_sec: 2,
        ..config()
    })
    .await;
    let call = Call::new(good_body());
    let (a, b, c) = tokio::join!(call.send(&sim), call.send(&sim), call.send(&sim));
    let mut statuses = vec![a.status, b.status, c.status];
    statuses.sort();
    assert_eq!(
        statuses,
        [200, 200, 429],
        "{} {} {}",
        a.text,
        b.text,
        c.text
    );
    let throttled = [a, b, c].into_iter().find(|x| x.status == 429).unwrap();
    assert_refused(&throttled, "FlowLimitExceeded", Some(100018), 429);

    // Refused requests do not count: after a second there is room again.
    tokio::time::sleep(Duration::from_millis(1050)).await;
    assert_eq!(Call::new(good_body()).send(&sim).await.status, 200);

    // A request refused before the limit (a bad signature) is not counted either.
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let mut bad = Call::new(good_body());
    bad.secret_key = "nope".into();
    for _ in 0..3 {
        assert_eq!(bad.send(&sim).await.status, 401);
    }
    assert_eq!(Call::new(good_body()).send(&sim).await.status, 200);
    sim.shutdown().await;
}

async fn with_fault(kind: FaultKind) -> simulator::SimulatorHandle {
    start(SimulatorConfig {
        faults: Faults::only(kind, 1.0),
        ..config()
    })
    .await
}

#[tokio::test]
async fn enveloped_faults_come_with_their_codes() {
    for (kind, code, code_n, status) in [
        (FaultKind::Http500, "InternalError", Some(100014), 500),
        (FaultKind::Http429, "FlowLimitExceeded", Some(100018), 429),
        (
            FaultKind::Error200,
            "InternalServiceTimeout",
            Some(100016),
            200,
        ),
    ] {
        let sim = with_fault(kind).await;
        let a = Call::new(good_body()).send(&sim).await;
        assert_refused(&a, code, code_n, status);
        // Faults only hit requests that passed every check.
        let mut bad = Call::new(good_body());
        bad.secret_key = "nope".into();
        assert_refused(
            &bad.send(&sim).await,
            "SignatureDoesNotMatch",
            Some(100010),
            401,
        );
        let log = sim.requests();
        assert_eq!(log[0].fault.as_deref(), Some(kind.as_str()));
        assert_eq!(log[1].fault, None);
        sim.shutdown().await;
    }
}

#[tokio::test]
async fn a_garbage_body_is_not_json() {
    let sim = with_fault(FaultKind::Garbage).await;
    let a = Call::new(good_body()).send(&sim).await;
    assert_eq!(a.status, 200);
    assert!(
        serde_json::from_str::<serde_json::Value>(&a.text).is_err(),
        "{}",
        a.text
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_connection_closed_mid_body_is_an_error_at_the_client() {
    let sim = with_fault(FaultKind::Close).await;
    let call = Call::new(good_body());
    let url = format!(
        "{}/?{}",
        sim.endpoint(),
        rtc_quality_sync::api::sign::canonical_query(&call.query)
    );
    let mut req = reqwest::Client::new().post(url);
    for (k, v) in call.signed_headers(&sim.addr().to_string()) {
        req = req.header(k, v);
    }
    let resp = req
        .body(call.body.clone())
        .send()
        .await
        .expect("the headers arrive");
    assert_eq!(resp.status().as_u16(), 200);
    let err = resp.bytes().await.expect_err("the body is cut off");
    assert!(
        err.is_body() || err.is_decode() || err.is_request(),
        "{err:?}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn a_slow_response_outlasts_the_client_timeout_and_not_the_server() {
    let sim = with_fault(FaultKind::Slow).await;
    let call = Call::new(good_body());
    let url = format!(
        "{}/?{}",
        sim.endpoint(),
        rtc_quality_sync::api::sign::canonical_query(&call.query)
    );
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let mut req = client.post(url);
    for (k, v) in call.signed_headers(&sim.addr().to_string()) {
        req = req.header(k, v);
    }
    let err = req
        .body(call.body.clone())
        .send()
        .await
        .expect_err("too slow");
    assert!(err.is_timeout(), "{err:?}");
    let log = sim.requests();
    assert_eq!(log.len(), 1, "the slow request is logged while it waits");
    assert_eq!(log[0].fault.as_deref(), Some("slow"));
    // Shutdown does not wait for the 120 s.
    let stopped = tokio::time::timeout(Duration::from_secs(5), sim.shutdown()).await;
    assert!(stopped.is_ok(), "shutdown waited for the slow response");
}

#[tokio::test]
async fn latency_is_added_to_each_response() {
    let sim = start(SimulatorConfig {
        latency: Duration::from_millis(300),
        ..config()
    })
    .await;
    let t = Instant::now();
    assert_eq!(Call::new(good_body()).send(&sim).await.status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "{:?}",
        t.elapsed()
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn the_request_log_is_served_as_json() {
    let sim = start(config()).await;
    let before = rtc_quality_sync::clock::now() - chrono::Duration::milliseconds(1);
    let b = good_body();
    let ok = Call::new(b.clone()).send(&sim).await;
    let mut bad = Call::new(b.clone());
    bad.access_key = "AKLTnobody".into();
    bad.send(&sim).await;

    let text = reqwest::get(format!("{}/_simulator/requests", sim.endpoint()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let served: Vec<RequestRecord> = serde_json::from_str(&text).unwrap();
    assert_eq!(served, sim.requests());
    assert_eq!(served.len(), 2);
    assert_eq!(served[0].body, String::from_utf8(b).unwrap());
    assert_eq!(served[0].status, 200);
    assert_eq!(
        served[0].request_id,
        ok.envelope().response_metadata.request_id
    );
    assert_eq!(served[1].status, 401);
    assert_eq!(served[1].code.as_deref(), Some("InvalidAccessKey"));
    assert!(served[0].at >= before && served[0].at <= served[1].at);
    assert_eq!(served[0].at.timestamp_subsec_nanos() % 1_000_000, 0);
    sim.shutdown().await;
}
