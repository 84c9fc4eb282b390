//! An in-test stand-in for the `ListQuality` endpoint: it checks each request's signature as the gateway
//! does, records when it arrived, and answers from a script.
//!
//! It runs on its own thread and runtime, so the arrival times it records are not skewed by the client's
//! tasks sharing its executor.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use rtc_quality_sync::api::sign::{self, SignInput};
use rtc_quality_sync::config::{Credentials, SourceSettings};

pub const ACCESS_KEY: &str = "AKLTdGVzdGFjY2Vzc2tleQ";
pub const SECRET_KEY: &str = "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ==";
pub const SESSION_TOKEN: &str = "STS2.session-token-for-tests-only";
pub const REGION: &str = "cn-north-1";

/// The credentials the server accepts.
pub fn credentials() -> Credentials {
    Credentials::new(ACCESS_KEY, SECRET_KEY, None)
}

/// The marker the server replaces with this request's id (`req-<n>`, counting from 1).
pub const RID: &str = "$RID";

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// How long the server takes before answering.
    pub delay: Duration,
    /// Send the body as a stream of chunks without a `Content-Length`.
    pub chunked: bool,
}

impl Reply {
    /// A success as the seed page shows it: two returned names for one requested indicator, and a `null`
    /// bucket; and a series for `stall_rate` with no data (no traffic), so that the answer has every
    /// indicator the tests' request asks for.
    pub fn ok() -> Reply {
        Reply::json(
            200,
            serde_json::json!({
                "ResponseMetadata": {"RequestId": RID, "Action": "ListQuality", "Version": "2020-12-01",
                                     "Service": "rtc", "Region": REGION},
                "Result": {"AggregateGranularity": "1d", "Indicators": [
                    {"Name": "5s_join_room_success_rate", "Unit": "%", "Data": [
                        {"TimeStamp": "2021-07-24T00:00:00+08:00", "Value": 98.68},
                        {"TimeStamp": "2021-07-25T00:00:00+08:00", "Value": 98.20}]},
                    {"Name": "10s_join_room_success_rate", "Unit": "%", "Data": [
                        {"TimeStamp": "2021-07-24T00:00:00+08:00", "Value": 99.68},
                        {"TimeStamp": "2021-07-25T00:00:00+08:00", "Value": null}]},
                    {"Name": "80ms_audio_stall_rate", "Unit": "%", "Data": []}
                ]}
            }),
        )
    }

    /// An error envelope, as the gateway sends it.
    pub fn error(status: u16, code: &str, code_n: i64, message: &str) -> Reply {
        Reply::json(
            status,
            serde_json::json!({
                "ResponseMetadata": {"RequestId": RID, "Action": "ListQuality", "Version": "2020-12-01",
                                     "Service": "rtc", "Region": REGION,
                                     "Error": {"Code": code, "CodeN": code_n, "Message": message}},
                "Result": {}
            }),
        )
    }

    pub fn json(status: u16, value: serde_json::Value) -> Reply {
        Reply::raw(status, serde_json::to_vec(&value).unwrap())
            .header("Content-Type", "application/json")
    }

    pub fn raw(status: u16, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
            chunked: false,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn delay(mut self, d: Duration) -> Reply {
        self.delay = d;
        self
    }

    pub fn chunked(mut self) -> Reply {
        self.chunked = true;
        self
    }
}

/// A request as it arrived.
#[derive(Clone, Debug)]
pub struct Received {
    /// When the server had the whole request (server clock).
    pub at: Instant,
    /// The client's address: one per connection, so reuse shows as repeats.
    pub peer: SocketAddr,
    pub method: String,
    pub path: String,
    /// The raw query string, exactly as sent.
    pub query: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Whether the `Authorization` header is what `sign::sign` makes of what arrived.
    pub signature_ok: bool,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// How the server answers a request once the script is used up.
type Answer = dyn Fn(usize, &Received) -> Reply + Send + Sync;

struct Shared {
    script: Mutex<VecDeque<Reply>>,
    /// Answers once the script is used up; may pick by request number and by what arrived.
    fallback: Box<Answer>,
    received: Mutex<Vec<Received>>,
}

/// The running server. Dropping it stops it.
pub struct TestApi {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl TestApi {
    /// Answers from `script`, then with [`Reply::ok`].
    pub fn start(script: Vec<Reply>) -> TestApi {
        TestApi::start_with(script, |_| Reply::ok())
    }

    /// Answers from `script`, then with `fallback(request number)`, counting from 1.
    pub fn start_with(
        script: Vec<Reply>,
        fallback: impl Fn(usize) -> Reply + Send + Sync + 'static,
    ) -> TestApi {
        TestApi::answering(script, move |n, _| fallback(n))
    }

    /// Answers from `script`, then with `answer(request number, the request)`: for answers that
    /// follow what was asked (its window, its granularity).
    pub fn answering(
        script: Vec<Reply>,
        answer: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static,
    ) -> TestApi {
        let fallback = answer;
        let shared = Arc::new(Shared {
            script: Mutex::new(script.into()),
            fallback: Box::new(fallback),
            received: Mutex::new(Vec::new()),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<SocketAddr>(),
                )
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            });
        });
        TestApi {
            addr,
            shared,
            _stop: stop,
        }
    }

    pub fn endpoint(&self) -> url::Url {
        url::Url::parse(&format!("http://{}", self.addr)).unwrap()
    }

    /// Settings pointing at this server, at ListQuality's documented rate.
    pub fn source(&self) -> SourceSettings {
        SourceSettings {
            endpoint: self.endpoint(),
            region: REGION.into(),
            requests_per_second: 2.0,
            distribution_requests_per_second: 2.0,
            room_list_requests_per_second: 10.0,
            max_in_flight: 4,
            timeout: Duration::from_secs(5),
            max_retries: 3,
        }
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Arrival times, in order.
    pub fn arrivals(&self) -> Vec<Instant> {
        let mut t: Vec<Instant> = self.received().iter().map(|r| r.at).collect();
        t.sort();
        t
    }
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let at = Instant::now();
    let mut received = Received {
        at,
        peer,
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        headers,
        body,
        signature_ok: false,
    };
    received.signature_ok = verify_signature(&received, SECRET_KEY).is_ok();
    let n = {
        let mut all = shared.received.lock().unwrap();
        all.push(received.clone());
        all.len()
    };

    // Like the gateway: a request that is not signed with the known pair is refused.
    let known_key = received
        .header("authorization")
        .and_then(sign::parse_authorization)
        .is_some_and(|a| a.access_key == ACCESS_KEY);
    let reply = if !known_key {
        Reply::error(
            401,
            "InvalidAccessKey",
            100009,
            "The access key you provided does not exist.",
        )
    } else if !received.signature_ok {
        Reply::error(
            401,
            "SignatureDoesNotMatch",
            100010,
            "The request signature we calculated does not match the signature you provided.",
        )
    } else {
        let next = shared.script.lock().unwrap().pop_front();
        next.unwrap_or_else(|| (shared.fallback)(n, &received))
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }

    let rid = format!("req-{n}");
    let body = String::from_utf8_lossy(&reply.body)
        .replace(RID, &rid)
        .into_bytes();
    let mut response = Response::builder().status(StatusCode::from_u16(reply.status).unwrap());
    for (k, v) in &reply.headers {
        response = response.header(k, v);
    }
    let body = if reply.chunked {
        let chunks: Vec<Result<Bytes, std::io::Error>> = body
            .chunks(1024)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        Body::from_stream(futures::stream::iter(chunks))
    } else {
        Body::from(body)
    };
    response.body(body).unwrap()
}

/// Recomputes the signature from what arrived (method, Host, path, decoded query, body, headers) with the
/// server's copy of the secret, and compares it with the `Authorization` header.
pub fn verify_signature(r: &Received, secret_key: &str) -> Result<(), String> {
    let auth = r.header("authorization").ok_or("no Authorization")?;
    let parsed = sign::parse_authorization(auth).ok_or("malformed Authorization")?;
    let x_date = r.header("x-date").ok_or("no X-Date")?;
    let host = r.header("host").ok_or("no Host")?;
    let query: Vec<(String, String)> = url::form_urlencoded::parse(r.query.as_bytes())
        .into_owned()
        .collect();
    if sign::canonical_query(&query) != r.query {
        return Err(format!("query {:?} is not canonical", r.query));
    }
    if r.header("x-content-sha256") != Some(&sign::sha256_hex(&r.body)) {
        return Err("X-Content-Sha256 is not the hash of the body".into());
    }
    let expected = sign::sign(
        &SignInput {
            method: &r.method,
            host,
            path: &r.path,
            query: &query,
            body: &r.body,
            content_type: r.header("content-type"),
            x_date,
            region: REGION,
            service: "rtc",
            session_token: r.header("x-security-token"),
        },
        &parsed.access_key,
        secret_key,
    );
    if expected.authorization != auth {
        return Err(format!(
            "signature mismatch: got {:?}, expected signed headers {}",
            parsed.signed_headers, expected.signed_headers
        ));
    }
    Ok(())
}

/// At most `max` arrivals in any one-second window: checks every window that starts at an arrival,
/// which are the only ones that can hold a maximum.
pub fn max_in_any_second(arrivals: &[Instant]) -> usize {
    let mut best = 0;
    for (i, &start) in arrivals.iter().enumerate() {
        let n = arrivals[i..]
            .iter()
            .take_while(|&&t| t.duration_since(start) < Duration::from_secs(1))
            .count();
        best = best.max(n);
    }
    best
}

/// Fails the test if a secret shows in `text`.
#[track_caller]
pub fn assert_no_secrets(text: &str) {
    for secret in [SECRET_KEY, SESSION_TOKEN, "WRONG-secret"] {
        assert!(!text.contains(secret), "a secret leaked into {text:?}");
    }
}
