//! The HTTP side: the router, the request log, and the path one request takes through the checks,
//! the fault draw and the data function.
//!
//! **Invariant:** checks run in the gateway's order (auth headers, timestamp, access key, signature,
//! Action/Version and method, quotas, then the service's body validation), and faults are drawn
//! only for requests that passed every check, so a fault never hides a real error. `ListQuality`,
//! `ListQualityDistribution` and `ListRoomInfo` share every check but the method (`ListRoomInfo` is a
//! GET, the others POSTs), the quotas (each (account, action) has its own) and the validation (a
//! body, or for `ListRoomInfo` the query).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use super::auth::{self, Arrived};
use super::data::{self, mix};
use super::distribution::{self, DistributionQuery};
use super::envelope::{ApiError, Meta};
use super::faults::FaultKind;
use super::limiter::{Quota, Refusal};
use super::request;
use super::rooms::{self, RoomQuery};
use super::{RequestRecord, SimAccount, SimulatorConfig};
use crate::api::distribution::ACTION as DISTRIBUTION_ACTION;
use crate::api::wire::{ACTION, ListQualityResult, ROOM_LIST_ACTION, VERSION};

/// Everything the handlers share; the handle keeps a reference so tests can read the log and move time.
pub(crate) struct Shared {
    pub(crate) config: SimulatorConfig,
    pub(crate) log: Mutex<Vec<RequestRecord>>,
    pub(crate) data_now: Mutex<Option<DateTime<Utc>>>,
    /// Every account: the configuration's `accounts`, then its default key pair unless one of them
    /// has its access key.
    accounts: Vec<Account>,
    /// What the quotas measure arrival instants from.
    epoch: Instant,
    /// How often each body (by hash) passed every check: the fault draw's key, so a retry draws anew.
    seen: Mutex<HashMap<u64, u64>>,
    sequence: AtomicU64,
    /// Cancelled when the server stops, so that a `slow` response does not hold up the shutdown.
    pub(crate) shutdown: CancellationToken,
}

impl Shared {
    pub(crate) fn new(config: SimulatorConfig) -> Self {
        let room_list = f64::from(config.room_list_rate_limit_per_sec);
        let mut accounts: Vec<Account> = config
            .accounts
            .iter()
            .map(|a| Account::new(a, [a.per_second, a.per_second, room_list]))
            .collect();
        if !accounts.iter().any(|a| a.access_key == config.access_key) {
            let default = SimAccount {
                access_key: config.access_key.clone(),
                secret_key: config.secret_key.clone(),
                per_second: f64::from(config.rate_limit_per_sec),
                per_day: None,
            };
            let distribution = f64::from(config.distribution_rate_limit_per_sec);
            accounts.push(Account::new(
                &default,
                [default.per_second, distribution, room_list],
            ));
        }
        Shared {
            accounts,
            epoch: Instant::now(),
            data_now: Mutex::new(config.data_now),
            config,
            log: Mutex::new(Vec::new()),
            seen: Mutex::new(HashMap::new()),
            sequence: AtomicU64::new(0),
            shutdown: CancellationToken::new(),
        }
    }

    /// The "now" that data, provisional values and the 30-day check follow.
    pub(crate) fn data_now(&self) -> DateTime<Utc> {
        self.data_now
            .lock()
            .expect("the data clock lock is never poisoned")
            .unwrap_or_else(crate::clock::now)
    }

    /// The account of this access key (the first listed, should two share it).
    fn account(&self, access_key: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.access_key == access_key)
    }

    fn signing_clock(&self) -> DateTime<Utc> {
        self.config
            .fixed_signing_time
            .unwrap_or_else(crate::clock::now)
    }
}

/// One account as the gateway knows it: its key pair and a quota per action.
struct Account {
    access_key: String,
    secret_key: SecretString,
    /// Indexed by [`Kind::index`].
    quotas: [Mutex<Quota>; 3],
}

impl Account {
    /// `a`'s keys and daily limit, with these rates per action (in [`Kind::index`] order).
    fn new(a: &SimAccount, per_second: [f64; 3]) -> Self {
        Account {
            access_key: a.access_key.clone(),
            secret_key: a.secret_key.clone(),
            quotas: per_second.map(|r| Mutex::new(Quota::new(r, a.per_day))),
        }
    }
}

impl auth::Secret for Account {
    fn secret_key(&self) -> &str {
        self.secret_key.expose_secret()
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/", any(list_quality))
        .route("/_simulator/requests", get(request_log))
        .fallback(unknown_path)
        .with_state(shared)
}

async fn request_log(State(s): State<Arc<Shared>>) -> Response {
    let log = s
        .log
        .lock()
        .expect("the log lock is never poisoned")
        .clone();
    axum::Json(log).into_response()
}

async fn unknown_path(uri: Uri) -> Response {
    let meta = Meta {
        request_id: String::new(),
        action: String::new(),
        version: String::new(),
        region: auth::DEFAULT_REGION.to_string(),
    };
    let e = ApiError::invalid_action_or_version(format!(
        "no API at path {}; call POST /?Action=ListQuality&Version=2020-12-01 (or Action=ListQualityDistribution), or GET /?Action=ListRoomInfo&Version=2020-12-01&...",
        uri.path()
    ));
    json_response(e.status, meta.error_body(&e))
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// What happened to one request, for the log.
struct Outcome {
    status: StatusCode,
    code: Option<String>,
    fault: Option<FaultKind>,
}

async fn list_quality(
    State(s): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Arrival is when the handler starts: the gateway counts requests as they arrive.
    let arrived = Instant::now();
    let at = now_ms();
    let seq = s.sequence.fetch_add(1, Ordering::Relaxed);
    let request_id = format!(
        "{}{:016X}",
        at.format("%Y%m%d%H%M%S"),
        mix(&[s.config.seed, seq])
    );

    let raw_query = uri.query().unwrap_or("");
    let query: Vec<(String, String)> = url::form_urlencoded::parse(raw_query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let meta = Meta {
        request_id: request_id.clone(),
        action: param("Action").unwrap_or_default(),
        version: param("Version").unwrap_or_default(),
        region: auth::region_of(&headers),
    };

    let data_now = s.data_now();
    // Named for the log only when it is one of ours: a stranger's key is none of its business.
    let account = auth::access_key_of(&headers).filter(|k| s.account(k).is_some());
    let checked = check(
        &s, &method, &uri, raw_query, &meta, &headers, &body, arrived, data_now,
    );

    let (response, outcome) = match checked {
        Err(e) => (
            json_response(e.status, meta.error_body(&e)),
            Outcome {
                status: e.status,
                code: Some(e.code.to_string()),
                fault: None,
            },
        ),
        Ok(q) => {
            // A GET carries its parameters in the query: that is what the fault draw is keyed by.
            let key = if method == Method::GET {
                raw_query.as_bytes()
            } else {
                &body[..]
            };
            respond(&s, &meta, key, q, data_now)
        }
    };

    tracing::debug!(
        request_id = %request_id,
        status = outcome.status.as_u16(),
        code = outcome.code.as_deref().unwrap_or(""),
        fault = outcome.fault.map(FaultKind::as_str).unwrap_or(""),
        "simulator answered"
    );
    s.log
        .lock()
        .expect("the log lock is never poisoned")
        .push(RequestRecord {
            at,
            body: String::from_utf8_lossy(&body).into_owned(),
            query: raw_query.to_string(),
            status: outcome.status.as_u16(),
            code: outcome.code,
            request_id,
            fault: outcome.fault.map(|f| f.as_str().to_string()),
            action: meta.action.clone(),
            account,
        });

    // Logged before waiting, so that a test sees a slow request while the client is still waiting.
    if outcome.fault == Some(FaultKind::Slow) {
        // Longer than any sane client timeout, but never longer than the server lives.
        tokio::select! {
            _ = tokio::time::sleep(s.config.slow_delay) => {}
            _ = s.shutdown.cancelled() => {}
        }
    }
    if !s.config.latency.is_zero() {
        tokio::time::sleep(s.config.latency).await;
    }
    response
}

/// The checks, in the gateway's order, then the service's.
#[allow(clippy::too_many_arguments)]
fn check(
    s: &Shared,
    method: &Method,
    uri: &Uri,
    raw_query: &str,
    meta: &Meta,
    headers: &HeaderMap,
    body: &[u8],
    arrived: Instant,
    data_now: DateTime<Utc>,
) -> Result<Checked, ApiError> {
    let req = Arrived {
        method: method.as_str(),
        path: uri.path(),
        raw_query,
        headers,
        body,
    };
    let account = auth::verify(&req, |k| s.account(k), s.signing_clock())?;
    let kind = match meta.action.as_str() {
        ACTION if meta.version == VERSION => Kind::Quality,
        DISTRIBUTION_ACTION if meta.version == VERSION => Kind::Distribution,
        ROOM_LIST_ACTION if meta.version == VERSION => Kind::RoomList,
        _ => {
            return Err(ApiError::invalid_action_or_version(format!(
                "Action {:?} Version {:?} is not an API here; call Action=ListQuality, ListQualityDistribution or ListRoomInfo with Version=2020-12-01",
                meta.action, meta.version
            )));
        }
    };
    let wanted = if kind == Kind::RoomList {
        Method::GET
    } else {
        Method::POST
    };
    if *method != wanted {
        return Err(ApiError::invalid_action_or_version(format!(
            "{} is called with {wanted}, not {method}",
            meta.action
        )));
    }
    // Counted only now, for validly signed calls, at the instant each one arrived (the daily limit at
    // the data clock's); each (account, action) against its own quota.
    let arrived_ns = i64::try_from(arrived.duration_since(s.epoch).as_nanos()).unwrap_or(i64::MAX);
    account.quotas[kind.index()]
        .lock()
        .expect("the quota lock is never poisoned")
        .try_admit(arrived_ns, data_now)
        .map_err(|r| refused(&r, &meta.action))?;
    match kind {
        Kind::Quality => request::validate(body, &s.config.apps, data_now).map(Checked::Quality),
        Kind::Distribution => request::validate_distribution(body, &s.config.apps, data_now)
            .map(Checked::Distribution),
        Kind::RoomList => {
            let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw_query.as_bytes())
                .into_owned()
                .collect();
            request::validate_room_list(&pairs, &s.config.apps, data_now).map(Checked::RoomList)
        }
    }
}

/// A quota's refusal as the gateway answers it: HTTP 429 `FlowLimitExceeded`, its message saying
/// which limit (the daily one names itself, so a client can tell it from the rate).
fn refused(r: &Refusal, action: &str) -> ApiError {
    ApiError::flow_limit_exceeded(match r {
        Refusal::Rate {
            capacity,
            window,
            per_second,
        } => {
            let window = if *window == std::time::Duration::from_secs(1) {
                "one second".to_string()
            } else {
                format!("{:.3} seconds", window.as_secs_f64())
            };
            format!(
                "more than {capacity} {action} requests in {window}; send at most {per_second} per second and retry later"
            )
        }
        Refusal::Daily { limit, retry_at } => format!(
            "the daily limit of {limit} {action} requests is reached: {limit} were accepted in the last 24 hours; retry after {}",
            retry_at.format("%Y-%m-%dT%H:%M:%SZ")
        ),
    })
}

/// The actions served here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Quality,
    Distribution,
    RoomList,
}

impl Kind {
    /// Its quota's place in [`Account::quotas`].
    fn index(self) -> usize {
        match self {
            Kind::Quality => 0,
            Kind::Distribution => 1,
            Kind::RoomList => 2,
        }
    }
}

/// A request that passed every check, by action.
enum Checked {
    Quality(data::Query),
    Distribution(DistributionQuery),
    RoomList(RoomQuery),
}

impl Checked {
    /// The body of the right answer at `data_now`.
    fn answer(&self, s: &Shared, meta: &Meta, data_now: DateTime<Utc>) -> Vec<u8> {
        match self {
            Checked::Quality(q) => meta.result_body(data::generate(s.config.seed, q, data_now)),
            Checked::Distribution(q) => meta.result_body(distribution::generate_distribution(
                s.config.seed,
                q,
                data_now,
            )),
            Checked::RoomList(q) => meta.result_body(rooms::list_page(
                s.config.seed,
                q,
                data_now,
                s.config.room_list_max_matches,
            )),
        }
    }

    /// The `noindicators` fault: a `Result` with `"Indicators": []`. `ListRoomInfo` has no
    /// indicators: it gets its right page.
    fn no_indicators(&self, s: &Shared, meta: &Meta, data_now: DateTime<Utc>) -> Vec<u8> {
        match self {
            Checked::RoomList(_) => self.answer(s, meta, data_now),
            Checked::Quality(q) => meta.result_body(ListQualityResult {
                aggregate_granularity: q.granularity.as_str().to_string(),
                indicators: Vec::new(),
            }),
            Checked::Distribution(_) => {
                meta.result_body(crate::api::wire::ListQualityDistributionResult {
                    indicators: Vec::new(),
                })
            }
        }
    }

    /// The `offgrid` fault: the right answer plus points a client must drop. `ListRoomInfo` has no
    /// grid: it gets its right page.
    fn off_grid(&self, s: &Shared, meta: &Meta, data_now: DateTime<Utc>) -> Vec<u8> {
        match self {
            Checked::RoomList(_) => self.answer(s, meta, data_now),
            Checked::Quality(q) => {
                let mut result = data::generate(s.config.seed, q, data_now);
                data::add_off_grid_points(&mut result, q);
                meta.result_body(result)
            }
            Checked::Distribution(q) => {
                let mut result = distribution::generate_distribution(s.config.seed, q, data_now);
                distribution::add_outside_points(&mut result, q);
                meta.result_body(result)
            }
        }
    }
}

impl Checked {
    /// The `shortpage`, `dupcall` and `emptypage` faults: a `ListRoomInfo` page with its last call
    /// left out, with its first call in place of its last, or with no call at all (`Total` and
    /// `HasMore` as they are); any other action's right answer.
    fn bad_page(
        &self,
        s: &Shared,
        meta: &Meta,
        data_now: DateTime<Utc>,
        kind: FaultKind,
    ) -> Vec<u8> {
        let Checked::RoomList(q) = self else {
            return self.answer(s, meta, data_now);
        };
        let mut page = rooms::list_page(s.config.seed, q, data_now, s.config.room_list_max_matches);
        if kind == FaultKind::ShortPage {
            page.room_list.pop();
        } else if kind == FaultKind::EmptyPage {
            page.room_list.clear();
        } else if let Some(first) = page.room_list.first().cloned() {
            if page.room_list.len() > 1 {
                page.room_list.pop();
            }
            page.room_list.push(first);
        }
        meta.result_body(page)
    }
}

/// A request that passed every check: a drawn fault, or the data. A `slow` fault's wait is the caller's.
/// `fault_key` is what the draw is keyed by: the body, or a GET's query.
fn respond(
    s: &Shared,
    meta: &Meta,
    fault_key: &[u8],
    q: Checked,
    data_now: DateTime<Utc>,
) -> (Response, Outcome) {
    let fault = if s.config.faults.is_none() {
        None
    } else {
        let digest = Sha256::digest(fault_key);
        let body_hash = u64::from_le_bytes(digest[..8].try_into().expect("8 bytes"));
        let occurrence = {
            let mut seen = s.seen.lock().expect("the fault lock is never poisoned");
            let n = seen.entry(body_hash).or_insert(0);
            *n += 1;
            *n - 1
        };
        s.config.faults.draw(s.config.seed, body_hash, occurrence)
    };

    let injected = |e: ApiError| {
        (
            json_response(e.status, meta.error_body(&e)),
            Outcome {
                status: e.status,
                code: Some(e.code.to_string()),
                fault,
            },
        )
    };
    let ok = |status: StatusCode| Outcome {
        status,
        code: None,
        fault,
    };

    match fault {
        Some(FaultKind::Http500) => injected(ApiError::internal_error(
            "internal error (injected fault); retry later",
        )),
        Some(FaultKind::Http429) => injected(ApiError::flow_limit_exceeded(
            "flow limit exceeded (injected fault); retry later",
        )),
        Some(FaultKind::Error200) => injected(ApiError::internal_service_timeout(
            "the service timed out (injected fault); retry later",
        )),
        Some(FaultKind::Garbage) => {
            let page = "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n";
            (
                json_response(StatusCode::OK, page.as_bytes().to_vec()),
                ok(StatusCode::OK),
            )
        }
        Some(FaultKind::Empty) => (
            json_response(StatusCode::OK, meta.empty_result_body()),
            ok(StatusCode::OK),
        ),
        Some(FaultKind::NoIndicators) => (
            json_response(StatusCode::OK, q.no_indicators(s, meta, data_now)),
            ok(StatusCode::OK),
        ),
        Some(FaultKind::OffGrid) => (
            json_response(StatusCode::OK, q.off_grid(s, meta, data_now)),
            ok(StatusCode::OK),
        ),
        Some(kind @ (FaultKind::ShortPage | FaultKind::DuplicateCall | FaultKind::EmptyPage)) => (
            json_response(StatusCode::OK, q.bad_page(s, meta, data_now, kind)),
            ok(StatusCode::OK),
        ),
        Some(FaultKind::Close) => (
            close_mid_body(q.answer(s, meta, data_now)),
            ok(StatusCode::OK),
        ),
        Some(FaultKind::Slow) | None => (
            json_response(StatusCode::OK, q.answer(s, meta, data_now)),
            ok(StatusCode::OK),
        ),
    }
}

/// A 200 whose body stops halfway: the status line, the headers and the first half are sent, then the
/// body fails, and hyper drops the connection without the chunked terminator.
fn close_mid_body(full: Vec<u8>) -> Response {
    let full = Bytes::from(full);
    let first = full.slice(..full.len() / 2);
    let chunks = futures::stream::unfold(0u8, move |step| {
        let first = first.clone();
        async move {
            match step {
                0 => Some((Ok::<Bytes, std::io::Error>(first), 1)),
                1 => {
                    // Give hyper time to flush the first half, so the client sees a body that started.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    Some((
                        Err(std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "connection closed mid-body (injected fault)",
                        )),
                        2,
                    ))
                }
                _ => None,
            }
        }
    });
    let mut response = Response::new(Body::from_stream(chunks));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

fn now_ms() -> DateTime<Utc> {
    let now = crate::clock::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}
