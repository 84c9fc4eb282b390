//! `ListQualityDistribution` over real HTTP: the client against the simulator for every dimension,
//! the simulator's own checks of the body, and the two quotas paced and limited independently.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rtc_quality_sync::api::client::Client;
use rtc_quality_sync::api::distribution::{
    DistributionPoint, FetchedDistribution, ListQualityDistributionRequest,
};
use rtc_quality_sync::api::error::ApiError;
use rtc_quality_sync::api::wire::ListQualityRequest;
use rtc_quality_sync::config::{Credentials, SourceSettings};
use rtc_quality_sync::domain::Dimension;
use rtc_quality_sync::fetcher::Fetcher;
use rtc_quality_sync::simulator::{
    DEMO_ACCESS_KEY, DEMO_SECRET_KEY, DistributionKey, FaultKind, Faults, SimulatorConfig,
    SimulatorHandle, dimension_values, distribution_days, distribution_served_value,
};

use crate::sim_helpers::{Call, config, data_now, start};

const DISTRIBUTION: &str = "ListQualityDistribution";

fn source(sim: &SimulatorHandle, requests_per_second: f64) -> SourceSettings {
    SourceSettings {
        endpoint: url::Url::parse(&sim.endpoint()).unwrap(),
        region: "cn-north-1".into(),
        requests_per_second,
        distribution_requests_per_second: 2.0,
        room_list_requests_per_second: 10.0,
        max_in_flight: 4,
        timeout: Duration::from_secs(5),
        max_retries: 3,
    }
}

fn client(source: &SourceSettings) -> Client {
    Client::new(
        source,
        Credentials::new(DEMO_ACCESS_KEY, DEMO_SECRET_KEY, None),
    )
    .unwrap()
}

/// One local day (+08:00) of one indicator and one dimension.
fn request(day: &str, indicator: &str, dimension: Dimension) -> ListQualityDistributionRequest {
    let start = format!("{day}T00:00:00+08:00");
    let end = (DateTime::parse_from_rfc3339(&start).unwrap() + chrono::Duration::days(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false);
    ListQualityDistributionRequest {
        app_id: "app1".into(),
        start_time: start,
        end_time: end,
        indicator: indicator.into(),
        dimension,
        product_type: Some("native".into()),
        platform: None,
    }
}

/// What the simulator must have served for `req`: every (name, dimension value, ts, value) with traffic.
fn expected(
    seed: u64,
    req: &ListQualityDistributionRequest,
    names: &[&str],
) -> BTreeSet<(String, String, DateTime<Utc>, u64)> {
    let start = DateTime::parse_from_rfc3339(&req.start_time).unwrap();
    let end = DateTime::parse_from_rfc3339(&req.end_time).unwrap();
    let mut out = BTreeSet::new();
    for name in names {
        for value in dimension_values(req.dimension) {
            let key = DistributionKey {
                app_id: req.app_id.clone(),
                product_type: req.product_type.clone().unwrap_or_default(),
                platform: req.platform.clone().unwrap_or_default(),
                indicator: name.to_string(),
                dimension: req.dimension,
                dimension_value: value.to_string(),
            };
            for day in distribution_days(start, end) {
                let ts = day.with_timezone(&Utc);
                if let Some(v) = distribution_served_value(seed, &key, ts, data_now()) {
                    out.insert((name.to_string(), value.to_string(), ts, v.to_bits()));
                }
            }
        }
    }
    out
}

fn got(f: &FetchedDistribution) -> BTreeSet<(String, String, DateTime<Utc>, u64)> {
    f.series
        .iter()
        .flat_map(|s| {
            s.points.iter().map(|p: &DistributionPoint| {
                (
                    s.name.clone(),
                    p.dimension_value.clone(),
                    p.ts,
                    p.value.to_bits(),
                )
            })
        })
        .collect()
}

#[tokio::test]
async fn the_client_gets_exactly_the_per_day_points_of_every_dimension() {
    let sim = start(SimulatorConfig {
        distribution_rate_limit_per_sec: 1000,
        ..config()
    })
    .await;
    let source = source(&sim, 1000.0);
    let client = client(&source);
    let seed = sim.config().seed;
    // A settled day, and the newest day data-now has begun (partial values).
    for day in ["2026-03-05", "2026-03-10"] {
        for dimension in Dimension::ALL {
            let req = request(day, "stall_rate", dimension);
            let f = client.call(&req).await.unwrap();
            assert!(!f.request_id.is_empty());
            let names: Vec<&str> = f.series.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, ["audio_stall_rate", "video_stall_rate"]);
            let want = expected(seed, &req, &names);
            assert_eq!(got(&f), want, "{day} {dimension}");
            // One day: every point at its local midnight, and (almost) every value of the dimension.
            let midnight: DateTime<Utc> = DateTime::parse_from_rfc3339(&req.start_time)
                .unwrap()
                .with_timezone(&Utc);
            assert!(
                f.series
                    .iter()
                    .all(|s| s.points.iter().all(|p| p.ts == midnight))
            );
            assert!(
                want.len() >= dimension_values(dimension).len(),
                "{day} {dimension}: {}",
                want.len()
            );
        }
    }
    // Chinese province names arrive as they were sent.
    let f = client
        .call(&request(
            "2026-03-05",
            "join_room_success_rate",
            Dimension::Province,
        ))
        .await
        .unwrap();
    let provinces: BTreeSet<&str> = f
        .series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.dimension_value.as_str()))
        .collect();
    assert!(
        provinces.contains("广东") && provinces.contains("北京"),
        "{provinces:?}"
    );
    assert!(
        f.series
            .iter()
            .flat_map(|s| &s.points)
            .all(|p| (90.0..=100.0).contains(&p.value))
    );

    let log = sim.requests();
    assert_eq!(log.len(), 9);
    assert!(
        log.iter()
            .all(|r| r.action == DISTRIBUTION && r.status == 200)
    );
    assert!(
        log[0]
            .body
            .contains(r#""Indicator":"stall_rate","Dimension":"Province""#)
    );
    sim.shutdown().await;
}

fn distribution_call(body: &str) -> Call {
    let mut call = Call::new(body.as_bytes().to_vec());
    call.query = vec![
        ("Action".into(), DISTRIBUTION.into()),
        ("Version".into(), "2020-12-01".into()),
    ];
    call
}

#[tokio::test]
async fn an_array_indicator_or_an_unknown_dimension_is_an_invalid_parameter() {
    let sim = start(SimulatorConfig {
        distribution_rate_limit_per_sec: 1000,
        apps: vec!["app1".into()],
        ..config()
    })
    .await;
    let body = |indicator: &str, dimension: &str| {
        format!(
            r#"{{"AppId":"app1","StartTime":"2026-03-05T00:00:00+08:00","EndTime":"2026-03-06T00:00:00+08:00","Indicator":{indicator},"Dimension":{dimension},"ProductType":"native"}}"#
        )
    };
    let cases = [
        (
            body(r#"["stall_rate"]"#, r#""Province""#),
            400,
            "InvalidParameter",
        ),
        (
            body(r#""stall_rate""#, r#""City""#),
            400,
            "InvalidParameter",
        ),
        (body(r#""stall_rate""#, r#""os""#), 400, "InvalidParameter"),
        (body(r#""stall_rate""#, "null"), 400, "MissingParameter"),
        (
            body(r#""stall_rate""#, r#""OS""#).replace("app1", "app2"),
            400,
            "InvalidParameter.NotExistAppId",
        ),
        (
            body(r#""stall_rate""#, r#""OS""#).replace("03-06", "03-04"),
            400,
            "InvalidParameter.StartTimeAfterEndTime",
        ),
        (
            body(r#""stall_rate""#, r#""OS""#).replace("2026-03-05", "2026-01-05"),
            400,
            "InvalidParameter.OutofTimeRange",
        ),
    ];
    for (b, status, code) in &cases {
        let a = distribution_call(b).send(&sim).await;
        assert_eq!(a.status, *status, "{b}: {}", a.text);
        let env = a.envelope();
        let e = env.response_metadata.error.expect("an error");
        assert_eq!(e.code, *code, "{b}: {}", a.text);
        assert_eq!(env.response_metadata.action, DISTRIBUTION);
        assert!(env.result.is_none());
    }
    // The same body with one string and a known dimension is served.
    let ok = distribution_call(&body(r#""stall_rate""#, r#""OS""#))
        .send(&sim)
        .await;
    assert_eq!(ok.status, 200, "{}", ok.text);
    // A ListQuality body sent to ListQualityDistribution is refused, not misread.
    let quality = crate::sim_helpers::body(
        "app1",
        "2026-03-05T00:00:00+08:00",
        "2026-03-06T00:00:00+08:00",
        &["stall_rate"],
        "1d",
    );
    let a = distribution_call(std::str::from_utf8(&quality).unwrap())
        .send(&sim)
        .await;
    assert_eq!(a.status, 400, "{}", a.text);
    // A wrong signature is the gateway's business, before the body is read.
    let mut forged = distribution_call(&body(r#"["x"]"#, r#""City""#));
    forged.secret_key = "not-the-secret".into();
    let a = forged.send(&sim).await;
    assert_eq!(a.status, 401, "{}", a.text);
    assert!(a.text.contains("SignatureDoesNotMatch"), "{}", a.text);

    // Through the client: the error is permanent and says what the service said.
    let source = source(&sim, 1000.0);
    let e = client(&source)
        .call(&ListQualityDistributionRequest {
            app_id: "app2".into(),
            ..request("2026-03-05", "stall_rate", Dimension::Os)
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidParameter.NotExistAppId"), "{e}");
    assert!(!e.is_retryable());
    let log = sim.requests();
    assert!(log.iter().all(|r| r.action == DISTRIBUTION), "{log:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn each_action_has_its_own_limit_at_the_gateway() {
    let sim = start(SimulatorConfig {
        rate_limit_per_sec: 2,
        distribution_rate_limit_per_sec: 2,
        ..config()
    })
    .await;
    let quality = || {
        Call::new(crate::sim_helpers::body(
            "app1",
            "2026-03-05T00:00:00+08:00",
            "2026-03-06T00:00:00+08:00",
            &["stall_rate"],
            "1d",
        ))
    };
    let dist = || {
        distribution_call(
            r#"{"AppId":"app1","StartTime":"2026-03-05T00:00:00+08:00","EndTime":"2026-03-06T00:00:00+08:00","Indicator":"stall_rate","Dimension":"Country"}"#,
        )
    };
    let t0 = Instant::now();
    let statuses = [
        quality().send(&sim).await.status,
        dist().send(&sim).await.status,
        quality().send(&sim).await.status,
        dist().send(&sim).await.status,
        // The third of each kind within the second.
        dist().send(&sim).await.status,
        quality().send(&sim).await.status,
    ];
    // Two of each kind in well under a second: the other kind's calls took none of the quota.
    assert_eq!(statuses[..4], [200, 200, 200, 200]);
    // The third of each kind is refused, when the six fit in one second (they do but on a machine
    // too loaded to send six loopback calls in 900 ms).
    if t0.elapsed() < Duration::from_millis(900) {
        assert_eq!(statuses[4..], [429, 429]);
        let log = sim.requests();
        assert_eq!(log[4].action, DISTRIBUTION);
        assert_eq!(log[4].code.as_deref(), Some("FlowLimitExceeded"));
        assert_eq!(log[5].action, "ListQuality");
    }
    sim.shutdown().await;
}

/// Arrival times (ms) of one action's admitted requests, from the simulator's log.
fn arrivals(sim: &SimulatorHandle, action: &str) -> Vec<i64> {
    let mut t: Vec<i64> = sim
        .requests()
        .iter()
        .filter(|r| r.action == action)
        .map(|r| r.at.timestamp_millis())
        .collect();
    t.sort();
    t
}

#[tokio::test]
async fn both_fetchers_run_at_their_full_rate_at_once_and_none_is_throttled() {
    let sim = start(SimulatorConfig {
        rate_limit_per_sec: 2,
        distribution_rate_limit_per_sec: 2,
        ..config()
    })
    .await;
    let source = source(&sim, 2.0);
    let quality = Fetcher::new(client(&source), &source);
    let distribution = Fetcher::with_pace(
        client(&source),
        &source,
        2.0,
        quality.in_flight(),
        Duration::from_millis(10),
        Duration::from_millis(50),
    );
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..4u32 {
        let q = quality.clone();
        tasks.push(tokio::spawn(async move {
            let day = format!("2026-03-0{}", 2 + i);
            let req = ListQualityRequest {
                app_id: "app1".into(),
                start_time: format!("{day}T00:00:00+08:00"),
                end_time: format!("2026-03-0{}T00:00:00+08:00", 3 + i),
                indicator: vec!["stall_rate".into()],
                aggregate_granularity: "1d".into(),
                product_type: None,
                os: vec![],
                access: vec![],
                room_id: None,
                user_id: vec![],
            };
            let o = q.fetch(&req).await;
            (o.result.map(|f| f.point_count()), o.attempts, o.throttled)
        }));
        let d = distribution.clone();
        tasks.push(tokio::spawn(async move {
            let req = request(
                &format!("2026-03-0{}", 2 + i),
                "stall_rate",
                Dimension::ALL[i as usize],
            );
            let o = d.fetch(&req).await;
            (o.result.map(|f| f.point_count()), o.attempts, o.throttled)
        }));
    }
    for t in tasks {
        let (result, attempts, throttled) = t.await.unwrap();
        assert!(result.unwrap() > 0);
        assert_eq!((attempts, throttled), (1, 0));
    }
    let took = t0.elapsed();
    // Each kind: 4 calls 3 periods apart (1.56 s). One after the other, 8 calls would take 3.6 s.
    assert!(took < Duration::from_millis(2600), "{took:?}");
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert_eq!(quality.stats().requests, 4);
    assert_eq!(distribution.stats().requests, 4);
    assert_eq!(
        quality.stats().throttled + distribution.stats().throttled,
        0
    );
    for action in ["ListQuality", DISTRIBUTION] {
        let t = arrivals(&sim, action);
        assert_eq!(t.len(), 4, "{action}");
        for w in t.windows(3) {
            assert!(w[2] - w[0] >= 1000, "{action}: three in one second: {t:?}");
        }
    }
    // They overlapped: the two kinds' calls interleave in time.
    let (q, d) = (arrivals(&sim, "ListQuality"), arrivals(&sim, DISTRIBUTION));
    assert!(q[0] < d[3] && d[0] < q[3], "{q:?} {d:?}");
    sim.shutdown().await;
}

#[tokio::test]
async fn an_answer_without_the_indicator_is_retried_then_fails_and_faults_reach_distribution_calls()
{
    let sim = start(SimulatorConfig {
        distribution_rate_limit_per_sec: 1000,
        faults: Faults::only(FaultKind::NoIndicators, 1.0),
        ..config()
    })
    .await;
    let mut source = source(&sim, 1000.0);
    source.max_retries = 2;
    let f = Fetcher::with_pace(
        client(&source),
        &source,
        1000.0,
        rtc_quality_sync::fetcher::InFlight::new(2),
        Duration::from_millis(10),
        Duration::from_millis(50),
    );
    let o = f
        .fetch(&request("2026-03-05", "stall_rate", Dimension::Access))
        .await;
    assert_eq!(o.attempts, 3);
    let e = o.result.unwrap_err();
    assert!(matches!(e, ApiError::MissingIndicators { .. }), "{e:?}");
    let log = sim.requests();
    assert_eq!(log.len(), 3);
    assert!(
        log.iter()
            .all(|r| r.fault.as_deref() == Some("noindicators"))
    );
    sim.shutdown().await;

    // `offgrid`: the answer plus a point after the asked day, which the client hands on as returned.
    let sim = start(SimulatorConfig {
        distribution_rate_limit_per_sec: 1000,
        faults: Faults::only(FaultKind::OffGrid, 1.0),
        ..config()
    })
    .await;
    let source = self::source(&sim, 1000.0);
    let req = request("2026-03-05", "stall_rate", Dimension::Os);
    let f = client(&source).call(&req).await.unwrap();
    let after: DateTime<Utc> = "2026-03-05T16:00:17Z".parse().unwrap();
    for s in &f.series {
        let outside: Vec<_> = s.points.iter().filter(|p| p.ts == after).collect();
        assert_eq!(outside.len(), 1, "{}", s.name);
        assert_eq!(outside[0].dimension_value, "android");
    }
    sim.shutdown().await;
}
