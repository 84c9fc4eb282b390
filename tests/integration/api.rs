//! The client and the fetcher against a real HTTP server on loopback: signing, retries, pacing, bad answers.

use std::time::Duration;

use rtc_quality_sync::api::client::{Client, USER_AGENT};
use rtc_quality_sync::api::error::{ApiError, ErrorScope};
use rtc_quality_sync::api::wire::ListQualityRequest;
use rtc_quality_sync::config::{Credentials, SourceSettings};
use rtc_quality_sync::domain::{RunStatus, WindowState};
use rtc_quality_sync::fetcher::{Fetcher, Quotas};
use rtc_quality_sync::store::Store;

use crate::api_helpers::{
    ACCESS_KEY, RID, Received, Reply, SECRET_KEY, SESSION_TOKEN, TestApi, assert_no_secrets,
    credentials, max_in_any_second,
};

fn request() -> ListQualityRequest {
    ListQualityRequest {
        app_id: "Your_AppId".into(),
        start_time: "2021-07-24T00:00:00+08:00".into(),
        end_time: "2021-07-26T00:00:00+08:00".into(),
        indicator: vec!["join_room_success_rate".into(), "stall_rate".into()],
        aggregate_granularity: "1d".into(),
        product_type: Some("native".into()),
        os: vec!["iOS".into()],
        access: vec![],
        room_id: Some("room 1/ü".into()),
        user_id: vec!["u1".into()],
    }
}

fn fetcher(source: &SourceSettings, credentials: Credentials) -> Fetcher {
    Fetcher::new(Client::new(source, credentials).unwrap(), source)
}

/// Backoff so short that only the server's `Retry-After` or the rate limiter can explain a long gap.
fn fast_fetcher(source: &SourceSettings) -> Fetcher {
    Fetcher::with_backoff(
        Client::new(source, credentials()).unwrap(),
        source,
        Duration::from_millis(10),
        Duration::from_millis(50),
    )
}

fn assert_error_is_clean(e: &ApiError) {
    assert_no_secrets(&e.to_string());
    assert_no_secrets(&format!("{e:?}"));
}

/// A GET action, as `ListRoomInfo` is: its parameters in the query, no body.
struct Listing {
    params: Vec<(String, String)>,
}

impl rtc_quality_sync::api::Action for Listing {
    const NAME: &'static str = "ListRoomInfo";
    type Answer = Vec<u8>;
    fn payload(&self) -> Result<rtc_quality_sync::api::Payload, ApiError> {
        Ok(rtc_quality_sync::api::Payload::Query(self.params.clone()))
    }
    fn requests_per_second(source: &SourceSettings) -> f64 {
        source.requests_per_second
    }
    fn app_id(&self) -> &str {
        &self.params[0].1
    }
    fn start_time(&self) -> &str {
        &self.params[1].1
    }
    fn answer(&self, r: &rtc_quality_sync::api::Reply<'_>) -> Result<Vec<u8>, ApiError> {
        Ok(r.body.to_vec())
    }
}

/// Issue 20: a GET signs no content type and carries its query canonicalised, whatever its values
/// hold (spaces, `+`, `/`, `%`, non-ASCII: a room id may hold any of them), and sends no body.
#[tokio::test]
async fn a_get_action_travels_as_its_signed_canonical_query_without_a_body() {
    let api = TestApi::start(vec![]);
    let creds = Credentials::new(ACCESS_KEY, SECRET_KEY, Some(SESSION_TOKEN));
    let client = Client::new(&api.source(), creds).unwrap();
    let params: Vec<(String, String)> = [
        ("AppId", "app 1"),
        ("StartTime", "2024-01-15T00:00:00+08:00"),
        ("RoomId", "a+b/c%d 房间~"),
        ("PageNum", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    client
        .call(&Listing {
            params: params.clone(),
        })
        .await
        .unwrap();

    let got = api.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.method, "GET");
    assert!(r.body.is_empty(), "a GET sends no body");
    assert_eq!(
        r.header("content-type"),
        None,
        "a GET sends no content type"
    );
    let auth = r.header("authorization").unwrap();
    assert!(
        auth.contains("SignedHeaders=host;x-content-sha256;x-date;x-security-token,"),
        "{auth}"
    );
    assert!(r.signature_ok, "the server could not verify the signature");
    crate::api_helpers::verify_signature(r, SECRET_KEY).unwrap();
    // The query as sent is the canonical one, and decodes to exactly what was asked.
    assert_eq!(
        r.query,
        "Action=ListRoomInfo&AppId=app%201&PageNum=1&RoomId=a%2Bb%2Fc%25d%20%E6%88%BF%E9%97%B4~\
         &StartTime=2024-01-15T00%3A00%3A00%2B08%3A00&Version=2020-12-01"
    );
    let mut decoded: Vec<(String, String)> = url::form_urlencoded::parse(r.query.as_bytes())
        .into_owned()
        .collect();
    let mut want = params;
    want.push(("Action".into(), "ListRoomInfo".into()));
    want.push(("Version".into(), "2020-12-01".into()));
    decoded.sort();
    want.sort();
    assert_eq!(decoded, want);
}

#[tokio::test]
async fn the_request_is_signed_and_sent_as_documented() {
    let api = TestApi::start(vec![]);
    let creds = Credentials::new(ACCESS_KEY, SECRET_KEY, Some(SESSION_TOKEN));
    let client = Client::new(&api.source(), creds).unwrap();
    let fetched = client.call(&request()).await.unwrap();

    let got = api.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert!(r.signature_ok, "the server could not verify the signature");
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/");
    assert_eq!(r.query, "Action=ListQuality&Version=2020-12-01");
    assert_eq!(r.body.as_ref(), serde_json::to_vec(&request()).unwrap());
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("user-agent"), Some(USER_AGENT));
    assert!(USER_AGENT.starts_with("rtc-quality-sync/"));
    assert_eq!(r.header("x-security-token"), Some(SESSION_TOKEN));
    assert!(
        r.header("authorization")
            .unwrap()
            .contains("SignedHeaders=content-type;host;x-content-sha256;x-date;x-security-token"),
        "{:?}",
        r.header("authorization")
    );
    let x_date = r.header("x-date").unwrap();
    let sent = chrono::NaiveDateTime::parse_from_str(x_date, "%Y%m%dT%H%M%SZ")
        .unwrap()
        .and_utc();
    assert!(
        (rtc_quality_sync::clock::now() - sent).num_seconds().abs() < 5,
        "{x_date}"
    );

    // The answer: names as returned, the null bucket dropped, times in UTC.
    assert_eq!(fetched.request_id, "req-1");
    let names: Vec<&str> = fetched.indicators.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "5s_join_room_success_rate",
            "10s_join_room_success_rate",
            "80ms_audio_stall_rate"
        ]
    );
    assert_eq!(fetched.indicators[0].points.len(), 2);
    assert_eq!(fetched.indicators[1].points.len(), 1);
    assert!(fetched.indicators[2].points.is_empty(), "no traffic");
    assert_eq!(
        fetched.indicators[0].points[0].ts.to_rfc3339(),
        "2021-07-23T16:00:00+00:00"
    );
    assert_eq!(fetched.indicators[0].points[1].value, 98.20);

    assert_no_secrets(&format!("{client:?}"));
    assert!(!format!("{client:?}").contains(ACCESS_KEY));
}

#[tokio::test]
async fn a_429_then_success_is_retried_and_counted() {
    let api = TestApi::start(vec![Reply::error(
        429,
        "FlowLimitExceeded.QPSOverLimit",
        100018,
        "qps over limit",
    )]);
    let f = fetcher(&api.source(), credentials());
    let out = f.fetch(&request()).await;
    let fetched = out.result.unwrap();
    assert_eq!(out.attempts, 2);
    assert_eq!(fetched.request_id, "req-2");
    let stats = f.stats();
    assert_eq!(
        (stats.requests, stats.retries, stats.throttled),
        (2, 1, 1),
        "{stats:?}"
    );
    assert_eq!(api.received().len(), 2);
}

#[tokio::test]
async fn an_error_inside_a_200_is_an_error_and_a_transient_one_is_retried() {
    let api = TestApi::start(vec![Reply::error(
        200,
        "InternalServiceTimeout",
        100016,
        "service timeout",
    )]);
    let f = fetcher(&api.source(), credentials());
    let out = f.fetch(&request()).await;
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(out.attempts, 2);
    assert_eq!(f.stats().throttled, 0);
}

#[tokio::test]
async fn a_wrong_secret_key_is_not_retried_and_says_what_to_fix() {
    let api = TestApi::start(vec![]);
    let wrong = Credentials::new(ACCESS_KEY, "WRONG-secret", Some(SESSION_TOKEN));
    let f = fetcher(&api.source(), wrong);
    let out = f.fetch(&request()).await;
    let e = out.result.unwrap_err();
    assert_eq!(out.attempts, 1);
    assert_eq!(api.received().len(), 1, "a permanent error was retried");
    assert_eq!(e.code(), Some("SignatureDoesNotMatch"));
    assert_eq!(e.http_status(), Some(401));
    assert_eq!(e.request_id(), Some("req-1"));
    assert_eq!(e.scope(), ErrorScope::Credentials);
    let text = e.to_string();
    assert!(
        text.contains("VOLC_SECRETKEY") && text.contains("clock") && text.contains("req-1"),
        "{text}"
    );
    assert_error_is_clean(&e);
    assert_no_secrets(&format!("{f:?}"));
}

#[tokio::test]
async fn an_unknown_access_key_is_not_retried() {
    let api = TestApi::start(vec![]);
    let f = fetcher(
        &api.source(),
        Credentials::new("AKLTsomeoneelse", SECRET_KEY, None),
    );
    let out = f.fetch(&request()).await;
    let e = out.result.unwrap_err();
    assert_eq!(out.attempts, 1);
    assert!(e.to_string().contains("VOLC_ACCESSKEY"), "{e}");
    assert_error_is_clean(&e);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let api = TestApi::start(vec![
        Reply::raw(429, "slow down").header("Retry-After", "2"),
    ]);
    let f = fast_fetcher(&api.source());
    let out = f.fetch(&request()).await;
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(out.attempts, 2);
    assert_eq!(f.stats().throttled, 1);
    let t = api.arrivals();
    let gap = t[1] - t[0];
    assert!(gap >= Duration::from_millis(1950), "{gap:?}");
    assert!(gap < Duration::from_secs(4), "{gap:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_calls_never_put_three_into_one_second() {
    // Answers take 0 to 300 ms, so calls overlap and finish out of order.
    let api = TestApi::start_with(vec![], |n| {
        Reply::ok().delay(Duration::from_millis((n as u64 * 137) % 300))
    });
    let f = fetcher(&api.source(), credentials());
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut attempts = 0;
            for _ in 0..4 {
                let out = f.fetch(&request()).await;
                out.result.unwrap();
                attempts += out.attempts;
            }
            attempts
        }));
    }
    let mut attempts = 0;
    for t in tasks {
        attempts += t.await.unwrap();
    }
    assert_eq!(attempts, 20);

    let got = api.received();
    assert_eq!(got.len(), 20);
    assert!(got.iter().all(|r| r.signature_ok));
    // Connections are reused: at most one per call in flight, not one per call.
    let peers: std::collections::HashSet<_> = got.iter().map(|r| r.peer).collect();
    assert!(peers.len() <= 4, "{} connections for 20 calls", peers.len());
    let t = api.arrivals();
    assert!(max_in_any_second(&t) <= 2, "{:?}", gaps(&t));
    // Close to the documented rate: 19 intervals at 2/s would take 9.5 s.
    let rate = 19.0 / (t[19] - t[0]).as_secs_f64();
    assert!(rate >= 0.95 * 2.0, "{rate:.3}/s; gaps {:?}", gaps(&t));
    assert!(rate <= 2.0, "{rate:.3}/s");
    let stats = f.stats();
    assert_eq!(stats.requests, 20);
    assert!(stats.rate_wait_ms > 5_000, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_go_through_the_rate_limiter_too() {
    // Every third answer is throttled; retries come quickly and must still be paced.
    let api = TestApi::start_with(vec![], |n| {
        if n % 3 == 0 {
            Reply::error(429, "FlowLimitExceeded", 100018, "flow limit")
        } else {
            Reply::ok()
        }
    });
    let f = fast_fetcher(&api.source());
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..2 {
                f.fetch(&request()).await.result.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = f.stats();
    let t = api.arrivals();
    assert_eq!(stats.requests as usize, t.len());
    assert_eq!(stats.retries, stats.throttled);
    assert!(stats.retries >= 3, "{stats:?}");
    assert!(max_in_any_second(&t) <= 2, "{:?}", gaps(&t));
}

#[tokio::test]
async fn a_timeout_is_retried_then_reported() {
    let api = TestApi::start_with(vec![], |_| Reply::ok().delay(Duration::from_secs(2)));
    let mut source = api.source();
    source.timeout = Duration::from_millis(300);
    source.max_retries = 1;
    let f = fast_fetcher(&source);
    let out = f.fetch(&request()).await;
    let e = out.result.unwrap_err();
    assert!(matches!(e, ApiError::Timeout { .. }), "{e:?}");
    assert_eq!(out.attempts, 2);
    assert!(e.to_string().contains("source.timeout_secs"), "{e}");
}

#[tokio::test]
async fn network_errors_are_retried_then_reported() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let source = SourceSettings {
        endpoint: url::Url::parse(&format!("http://127.0.0.1:{port}")).unwrap(),
        region: "cn-north-1".into(),
        requests_per_second: 50.0,
        distribution_requests_per_second: 2.0,
        room_list_requests_per_second: 10.0,
        max_in_flight: 1,
        timeout: Duration::from_secs(2),
        max_retries: 2,
    };
    let f = fast_fetcher(&source);
    let out = f.fetch(&request()).await;
    let e = out.result.unwrap_err();
    // Refused: unreachable, retried like any network error, then it stops every job.
    assert!(matches!(e, ApiError::Unreachable { .. }), "{e:?}");
    assert_eq!(e.scope(), ErrorScope::Endpoint);
    assert_eq!(out.attempts, 3);
    assert_error_is_clean(&e);
}

#[tokio::test]
async fn a_proxy_error_page_is_retried_only_when_transient() {
    let api = TestApi::start(vec![
        Reply::raw(502, "<html>bad gateway</html>"),
        Reply::ok(),
        Reply::raw(404, "<html>not found</html>"),
    ]);
    let f = fast_fetcher(&api.source());
    let out = f.fetch(&request()).await;
    assert!(out.result.is_ok(), "{:?}", out.result);
    assert_eq!(out.attempts, 2);

    let out = f.fetch(&request()).await;
    let e = out.result.unwrap_err();
    assert_eq!(out.attempts, 1);
    assert!(matches!(e, ApiError::Status { status: 404, .. }), "{e:?}");
    assert!(e.to_string().contains("source.endpoint"), "{e}");
}

/// A 200 that lacks a requested indicator (`Result` `{}`, or no name containing `stall_rate`) is retried
/// like a transient failure; when it never comes right, the error says what was missing and names the
/// RequestId of the last answer.
#[tokio::test]
async fn an_answer_without_a_requested_indicator_is_retried_then_fails() {
    let empty = Reply::json(
        200,
        serde_json::json!({"ResponseMetadata": {"RequestId": RID}, "Result": {}}),
    );
    let no_stall = Reply::json(
        200,
        serde_json::json!({
            "ResponseMetadata": {"RequestId": RID},
            "Result": {"Indicators": [
                {"Name": "5s_join_room_success_rate", "Unit": "%", "Data": []}]}
        }),
    );
    let api = TestApi::start(vec![empty, no_stall.clone()]);
    let f = fast_fetcher(&api.source());
    let out = f.fetch(&request()).await;
    let fetched = out.result.unwrap();
    assert_eq!(out.attempts, 3);
    assert_eq!(fetched.request_id, "req-3");
    assert_eq!(f.stats().retries, 2);

    let api = TestApi::start(vec![no_stall; 10]);
    let source = api.source();
    let f = fast_fetcher(&source);
    let out = f.fetch(&request()).await;
    let e = out.result.unwrap_err();
    assert_eq!(out.attempts, 1 + source.max_retries);
    assert!(matches!(e, ApiError::MissingIndicators { .. }), "{e:?}");
    let text = e.to_string();
    assert!(
        text.contains("the answer has no `stall_rate` (returned: 5s_join_room_success_rate)"),
        "{text}"
    );
    let last = format!("req-{}", out.attempts);
    assert_eq!(e.request_id(), Some(last.as_str()));
    assert!(text.contains(&format!("RequestId {last}")), "{text}");
}

/// What a broken server can send, through the real client: an `invalid response` naming the field, never a panic.
#[tokio::test]
async fn invalid_responses_name_the_field_and_the_request_id() {
    let ok_with_data = |data: serde_json::Value| {
        Reply::json(
            200,
            serde_json::json!({
                "ResponseMetadata": {"RequestId": RID},
                "Result": {"Indicators": [{"Name": "stall_rate", "Unit": "%", "Data": data}]}
            }),
        )
    };
    let cases: Vec<(Reply, &str, Option<&str>)> = vec![
        (
            Reply::raw(200, "this is not json"),
            "invalid response: body: not JSON",
            None,
        ),
        (
            ok_with_data(
                serde_json::json!([{"TimeStamp": "2021-07-24T00:00:00+08:00", "Value": "NaN"}]),
            ),
            "invalid response: Result.Indicators[0].Data[0].Value: invalid type: string \"NaN\"",
            Some("req-2"),
        ),
        (
            ok_with_data(
                serde_json::json!([{"TimeStamp": "2021-07-24T00:00:00+08:00", "Value": 1.0},
                                            {"TimeStamp": "24/07/2021", "Value": 2.0}]),
            ),
            "invalid response: Result.Indicators[0].Data[1].TimeStamp: \"24/07/2021\" is not an RFC 3339 time",
            Some("req-3"),
        ),
        (
            ok_with_data(serde_json::json!("many")),
            "invalid response: Result.Indicators[0].Data: invalid type: string",
            Some("req-4"),
        ),
    ];
    let n = cases.len();
    let (replies, expected): (Vec<_>, Vec<_>) =
        cases.into_iter().map(|(r, w, id)| (r, (w, id))).unzip();
    let api = TestApi::start(replies);
    let client = Client::new(&api.source(), credentials()).unwrap();
    for (want, request_id) in expected {
        let e = client.call(&request()).await.unwrap_err();
        let text = e.to_string();
        assert!(text.contains(want), "{text:?} lacks {want:?}");
        assert_eq!(e.request_id(), request_id, "{text}");
        if let Some(id) = request_id {
            assert!(text.contains(id), "{text}");
        }
        assert_error_is_clean(&e);
    }
    assert_eq!(api.received().len(), n);
}

#[tokio::test]
async fn a_body_over_the_cap_is_refused_and_said_so() {
    let big = Reply::ok(); // about 600 bytes
    let api = TestApi::start(vec![big.clone(), big.chunked(), Reply::ok()]);
    let client = Client::new(&api.source(), credentials())
        .unwrap()
        .with_body_limit(200);
    for how in ["with Content-Length", "streamed"] {
        let e = client.call(&request()).await.unwrap_err();
        assert!(
            matches!(e, ApiError::TooLarge { limit: 200, .. }),
            "{how}: {e:?}"
        );
        assert!(e.to_string().contains("200 byte cap"), "{how}: {e}");
        assert!(!e.is_retryable());
    }
    // The same answer under the default cap is fine.
    let client = Client::new(&api.source(), credentials()).unwrap();
    client.call(&request()).await.unwrap();
}

fn gaps(t: &[std::time::Instant]) -> Vec<u128> {
    t.windows(2).map(|w| (w[1] - w[0]).as_millis()).collect()
}

/// Issue 18 item 5, through the real client: a `5min` request answered with daily buckets is an
/// invalid answer naming the field, what was asked and what came; it is not retried in the run.
#[tokio::test]
async fn item_05_a_5min_request_answered_with_daily_buckets_is_invalid() {
    let daily = |granularity: serde_json::Value| {
        Reply::json(
            200,
            serde_json::json!({
                "ResponseMetadata": {"RequestId": RID},
                "Result": {"AggregateGranularity": granularity, "Indicators": [
                    {"Name": "5s_join_room_success_rate", "Unit": "%", "Data": [
                        {"TimeStamp": "2021-07-24T00:00:00+08:00", "Value": 98.5}]},
                    {"Name": "80ms_audio_stall_rate", "Unit": "%", "Data": []}]}
            }),
        )
    };
    let api = TestApi::start(vec![
        daily("1d".into()),
        daily(serde_json::Value::Null),
        daily("5min".into()),
    ]);
    let f = fast_fetcher(&api.source());
    let five_min = ListQualityRequest {
        aggregate_granularity: "5min".into(),
        ..request()
    };
    let out = f.fetch(&five_min).await;
    let e = out.result.unwrap_err();
    assert_eq!(out.attempts, 1, "the same answer would come again");
    let text = e.to_string();
    assert!(
        text.contains(
            "invalid response: Result.AggregateGranularity: expected \"5min\", got \"1d\""
        ),
        "{text}"
    );
    assert!(text.contains("RequestId req-1"), "{text}");
    assert_eq!(e.scope(), ErrorScope::Window);
    // No granularity in the answer, or the one asked: accepted.
    for _ in 0..2 {
        let fetched = f.fetch(&five_min).await.result.unwrap();
        assert_eq!(fetched.point_count(), 1);
    }
}

/// A fixed instant for the pipeline tests below, so nothing depends on the hour.
fn fixed_now() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2026-11-20T02:17:00+08:00")
        .unwrap()
        .to_utc()
}

/// An answer to what arrived: one series per requested indicator, one point at the window's start
/// (on the grid, inside the window), in the granularity asked; `name` renames the first series.
fn answer_to(r: &Received, name: Option<&str>) -> Reply {
    let req: ListQualityRequest = serde_json::from_slice(&r.body).expect("a ListQuality body");
    let series: Vec<serde_json::Value> = req
        .indicator
        .iter()
        .enumerate()
        .map(|(i, indicator)| {
            let returned = match (i, name) {
                (0, Some(name)) => name.to_string(),
                _ => format!("5s_{indicator}"),
            };
            serde_json::json!({"Name": returned, "Unit": "%", "Data": [
                {"TimeStamp": req.start_time, "Value": 97.5}]})
        })
        .collect();
    Reply::json(
        200,
        serde_json::json!({
            "ResponseMetadata": {"RequestId": RID},
            "Result": {"AggregateGranularity": req.aggregate_granularity, "Indicators": series}
        }),
    )
}

/// Issue 18 item 11: a NUL in a returned Name, or a Name over 8 KB, reached PostgreSQL, which
/// refused it and aborted the run (exit 1, on every later run). At the answer boundary, on both
/// backends alike, such an answer fails its window (exit 2) and every other window commits.
async fn item_11_a_bad_name_fails_only_its_window(store: Store) {
    let long = "stall_rate_".repeat(800);
    let api = TestApi::answering(vec![], move |n, r| match n {
        1 => answer_to(r, Some("5s_join_room_success_rate\u{0}")),
        2 => answer_to(r, Some(&long)),
        _ => answer_to(r, None),
    });
    let text = crate::pipeline::config_text(api.endpoint().as_str(), 50.0, "");
    let settings = crate::pipeline::settings(&text);
    let fetcher = Quotas::new(fast_fetcher(&settings.source), &settings.source);
    let report = rtc_quality_sync::pipeline::run(
        &settings,
        &store,
        &fetcher,
        &rtc_quality_sync::pipeline::RunOptions {
            mode: "sync".into(),
            ..Default::default()
        },
        fixed_now(),
        tokio_util::sync::CancellationToken::new(),
        &rtc_quality_sync::progress::Progress::hidden(),
    )
    .await
    .expect("the run completes");

    assert_eq!(report.exit_code(), 2, "{report:?}");
    assert_eq!(report.status, RunStatus::Partial);
    assert!(report.store_error.is_none(), "{report:?}");
    assert!(report.credentials_error.is_none(), "{report:?}");
    let planned: u64 = report.streams.iter().map(|s| s.windows_planned).sum();
    let ok: u64 = report.streams.iter().map(|s| s.windows_ok).sum();
    let failed: u64 = report.streams.iter().map(|s| s.windows_failed).sum();
    assert_eq!((ok, failed), (planned - 2, 2), "{report:?}");
    assert_eq!(api.received().len() as u64, planned, "nothing retried");

    let ledger = crate::helpers::windows(&store).await;
    let mut errors: Vec<String> = ledger
        .iter()
        .filter(|e| e.state == WindowState::Failed)
        .map(|e| e.last_error.clone().unwrap_or_default())
        .collect();
    errors.sort();
    errors.dedup();
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(
            e.starts_with("invalid response: Result.Indicators[0].Name: "),
            "{e}"
        );
        assert!(!e.chars().any(char::is_control), "{e:?}");
        assert!(e.len() < 400, "the value is cut: {e}");
    }
    assert!(
        errors
            .iter()
            .any(|e| e.contains("\"5s_join_room_success_rate\\u{0}\" holds a control character")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("is 8800 bytes long")),
        "{errors:?}"
    );
    // Every other window's points are stored, and nothing of the bad ones.
    let stored = store.metrics(None).await.unwrap();
    assert!(!stored.is_empty());
    assert!(
        stored
            .iter()
            .all(|r| r.indicator.starts_with("5s_") && r.indicator.len() < 64),
        "{stored:?}"
    );
}

#[tokio::test]
async fn item_11_a_bad_name_fails_only_its_window_sqlite() {
    let (_dir, store) = crate::helpers::sqlite_store().await;
    item_11_a_bad_name_fails_only_its_window(store).await;
}

#[tokio::test]
async fn item_11_a_bad_name_fails_only_its_window_postgres() {
    let Some((_db, store)) = crate::helpers::pg_store().await else {
        return;
    };
    item_11_a_bad_name_fails_only_its_window(store).await;
}

/// Issue 18 item 9: a 307 to another origin was followed, and reqwest forwarded `X-Security-Token`
/// there (and stored that origin's answers). A 3xx is an error naming its `Location`, never
/// followed, never retried, and it stops every job: every call would meet it.
#[tokio::test]
async fn item_09_redirects_are_never_followed() {
    // The origin a redirect points to: it must never hear from the client.
    let elsewhere = TestApi::start(vec![]);
    let target = format!(
        "http://user:hunter2@{}/?Action=ListQuality&Version=2020-12-01",
        elsewhere.addr
    );
    let statuses = [307, 301, 302, 303, 308];
    let api = TestApi::start(
        statuses
            .iter()
            .map(|&s| Reply::raw(s, "moved").header("Location", &target))
            .chain([Reply::raw(302, "").header("Location", "/v2/\tnext")])
            .collect(),
    );
    let creds = Credentials::new(ACCESS_KEY, SECRET_KEY, Some(SESSION_TOKEN));
    let f = Fetcher::with_backoff(
        Client::new(&api.source(), creds).unwrap(),
        &api.source(),
        Duration::from_millis(10),
        Duration::from_millis(50),
    );
    for status in statuses {
        let out = f.fetch(&request()).await;
        let e = out.result.unwrap_err();
        assert_eq!(out.attempts, 1, "{status}: a redirect was retried");
        assert!(
            matches!(e, ApiError::Redirect { status: s, .. } if s == status),
            "{e:?}"
        );
        assert!(!e.is_retryable());
        assert_eq!(e.scope(), ErrorScope::Endpoint);
        assert_eq!(e.http_status(), Some(status));
        let text = e.to_string();
        let shown = format!(
            "a redirect to http://user:***@{}/?Action=ListQuality&Version=2020-12-01 was not followed",
            elsewhere.addr
        );
        assert!(text.contains(&shown), "{text}");
        assert!(
            text.contains("if you trust that address, set source.endpoint to it"),
            "{text}"
        );
        assert!(!text.contains("hunter2"), "{text}");
        assert_error_is_clean(&e);
    }
    // A relative Location is shown absolute (resolving it drops the tab, as URLs do).
    let e = f.fetch(&request()).await.result.unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!(
            "a redirect to http://{}/v2/next was not",
            api.addr
        )),
        "{text}"
    );
    assert!(!text.chars().any(char::is_control), "{text:?}");

    assert_eq!(api.received().len(), statuses.len() + 1);
    assert!(
        api.received()
            .iter()
            .all(|r| r.header("x-security-token") == Some(SESSION_TOKEN))
    );
    assert!(
        elsewhere.received().is_empty(),
        "credentials left the endpoint: {:?}",
        elsewhere.received()
    );
}

/// Issue 18 item 12: a 429 with `Retry-After: 600` was honoured, so a run took hours. Beyond 60 s
/// the call fails at once, counted as throttled and not retried in this run (the next run retries
/// the window), and it holds no other call back.
#[tokio::test]
async fn item_12_a_retry_after_over_60_s_fails_the_window_at_once_as_throttled() {
    // An HTTP date an hour ahead: about 3600 s.
    let later =
        httpdate::fmt_http_date(rtc_quality_sync::clock::system_now() + Duration::from_secs(3600));
    let api = TestApi::start(vec![
        Reply::raw(429, "slow down").header("Retry-After", "600"),
        Reply::error(429, "FlowLimitExceeded", 100018, "flow limit").header("Retry-After", "600"),
        Reply::raw(503, "maintenance").header("Retry-After", &later),
    ]);
    let f = fast_fetcher(&api.source());
    let started = std::time::Instant::now();
    for want in [
        "http status 429 from the api without an error envelope; the api asked to wait 600 s",
        "api error FlowLimitExceeded 100018 (http 429, RequestId req-2): flow limit; the api asked to wait 600 s",
        "http status 503 from the api without an error envelope; the api asked to wait 3",
    ] {
        let out = f.fetch(&request()).await;
        let e = out.result.unwrap_err();
        assert_eq!(out.attempts, 1, "not retried in this run: {e}");
        assert_eq!(out.throttled, 1, "counted as throttled: {e}");
        let text = e.to_string();
        assert!(text.contains(want), "{text:?} lacks {want:?}");
        assert!(
            text.contains(
                "more than the 60 s a run waits: this window fails now, and the next run retries it"
            ),
            "{text}"
        );
    }
    // No hold was set: the next call goes out at once and succeeds.
    f.fetch(&request()).await.result.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let stats = f.stats();
    assert_eq!((stats.requests, stats.retries, stats.throttled), (4, 0, 3));
}
