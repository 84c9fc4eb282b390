//! What can go wrong with one `ListQuality` call, classified once: retry it, or tell a person what to fix.
//!
//! **Invariant:** the retry decision lives in [`classify`] (and [`ApiError::class`], which feeds it),
//! exactly as `volc-openapi.md` section 2 lists it; the fetcher and the pipeline only ask. No variant
//! ever holds a secret, a signature or a raw response body, and no `Display` prints a control
//! character: text from the API (codes, messages, request ids, names) is escaped with
//! [`escape_controls`] where the error is built and again where it is shown, so it can neither forge a
//! log line nor move the terminal.

use std::time::{Duration, SystemTime};

use crate::text::escape_controls;

/// The longest `Retry-After` a run honours (PRODUCT.md, the planner's rule 8). A server that asks for
/// more (a confused proxy, a long outage) must not park a nightly run for hours: that call fails its
/// window at once, counted as throttled, and the next run retries the window.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Whether trying the same call again can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Transient: network, timeouts, throttling, server faults. Retried with backoff.
    Retryable,
    /// Not worth another try in this run: it needs a person (credentials, permissions, parameters),
    /// or the server asked for a longer wait than a run gives (the next run retries the window).
    Permanent,
}

/// How much of the run an error condemns, so the pipeline can stop a job or every job with one message
/// instead of failing each window alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorScope {
    /// Only this window: record it and go on.
    Window,
    /// Every window of this job will fail the same way (unknown app, no permission, wrong endpoint).
    Job,
    /// Every call with these credentials will fail (bad key, bad signature, clock skew).
    Credentials,
    /// Every call will fail: the endpoint cannot be reached (refused, no such host, no route).
    Endpoint,
}

/// A failed `ListQuality` call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// The API answered with `ResponseMetadata.Error`, whatever the HTTP status.
    #[error("{}", api_message(.code, .code_n, .message, .status, .request_id, .retry_after))]
    Api {
        /// HTTP status of the response (a 200 can carry an error).
        status: u16,
        /// `Error.Code`, e.g. `SignatureDoesNotMatch`.
        code: String,
        /// `Error.CodeN`, e.g. 100010.
        code_n: Option<i64>,
        /// `Error.Message` as the server wrote it.
        message: String,
        request_id: Option<String>,
        /// From the `Retry-After` header, when the server sent one.
        retry_after: Option<Duration>,
    },
    /// The endpoint answered with a redirect (HTTP 3xx). Never followed: the signed headers and a
    /// session token go to the configured endpoint only, and every call would be redirected alike.
    #[error("{}", redirect_message(.status, .location))]
    Redirect {
        status: u16,
        /// The `Location` it named, absolute, with any password redacted and control characters
        /// escaped; `None` when it named none.
        location: Option<String>,
    },
    /// A non-2xx status whose body is not an error envelope (a proxy's HTML page, an empty body).
    #[error("http status {status} from the api without an error envelope{}{}", rid(.request_id), status_hint(.status, .retry_after))]
    Status {
        status: u16,
        request_id: Option<String>,
        retry_after: Option<Duration>,
    },
    /// Connecting, sending or receiving failed below HTTP.
    #[error(
        "network error calling the api: {}; check source.endpoint and this machine's network",
        escape_controls(.message)
    )]
    Network { message: String },
    /// No connection could be made (refused, no such host, no route): still retried, since a network
    /// can come back, but once retries are exhausted every call would fail alike.
    #[error(
        "cannot reach the api at source.endpoint: {}; check source.endpoint, and this machine's network, proxy and DNS",
        escape_controls(.message)
    )]
    Unreachable { message: String },
    /// No complete response within `source.timeout_secs`.
    #[error("the api did not answer within {} s; raise source.timeout_secs if this persists", .after.as_secs_f64())]
    Timeout { after: Duration },
    /// The response is not what the API documents. `path` names the field, e.g. `Result.Indicators[0].Data[3].Value`.
    #[error(
        "invalid response: {}: {}{}",
        escape_controls(.path),
        escape_controls(.what),
        rid(.request_id)
    )]
    InvalidResponse {
        path: String,
        what: String,
        request_id: Option<String>,
        /// Whether the body was not JSON at all (truncated or garbled in transit: worth another try),
        /// as opposed to JSON of the wrong shape (the same answer would come again).
        not_json: bool,
    },
    /// A successful answer that lacks a requested indicator: `Result` `{}`, no or empty `Indicators`, or
    /// no returned `Name` that contains it. Retried, since the next answer may be complete; a window
    /// that never gets one fails, rather than being recorded as fetched with no points.
    #[error(
        "incomplete answer: the answer has no {} (returned: {}){}; transient, retried, and the next run tries again",
        backquoted(.missing),
        returned_names(.returned),
        rid(.request_id)
    )]
    MissingIndicators {
        /// The requested indicators no returned `Name` contains, in the request's order.
        missing: Vec<String>,
        /// The `Name`s the answer returned, in its order.
        returned: Vec<String>,
        request_id: Option<String>,
    },
    /// A `ListRoomInfo` page that lists fewer calls than its `Total` implies (an empty `RoomList`
    /// while `Total` says more, say). Retried, since the next answer may be whole; it never ends a
    /// listing, so no call is lost to it.
    #[error(
        "incomplete answer: page {page_num} lists {rows} distinct call(s) where Total ({total}) implies {expected}{}; transient, retried, and the next run lists the range again",
        rid(.request_id)
    )]
    ShortPage {
        page_num: i64,
        rows: usize,
        expected: i64,
        total: i64,
        request_id: Option<String>,
    },
    /// The body grew past the cap; the rest was not read.
    #[error("invalid response: body is larger than the {} cap{}; narrow the job (fewer indicators or a shorter window) or report it", human_bytes(.limit), rid(.request_id))]
    TooLarge {
        limit: usize,
        request_id: Option<String>,
    },
    /// The HTTP client could not be built from the settings.
    #[error("cannot set up the http client: {}", escape_controls(.message))]
    Setup { message: String },
    /// Not sent: a daily budget (or the API's own daily limit) says no more calls today. Not a
    /// failure: the window is planned again by the next run.
    #[error("deferred: {reason}")]
    Deferred { reason: String },
    /// Not sent: a call is recorded in the database before it is sent (so a crash cannot
    /// under-count a daily budget), and that write failed.
    #[error("not sent: the call could not be recorded in the database first: {message}")]
    NotRecorded { message: String },
}

fn human_bytes(n: &usize) -> String {
    const MIB: usize = 1024 * 1024;
    if *n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else {
        format!("{n} byte")
    }
}

/// `` `a`, `b` ``: indicator names as a person reads them in a message.
fn backquoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{}`", escape_controls(n)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn returned_names(names: &[String]) -> String {
    if names.is_empty() {
        "no indicator at all".to_string()
    } else {
        names
            .iter()
            .map(|n| escape_controls(n))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn rid(request_id: &Option<String>) -> String {
    match request_id.as_deref() {
        Some(id) if !id.is_empty() => format!(" (RequestId {})", escape_controls(id)),
        _ => String::new(),
    }
}

fn redirect_message(status: &u16, location: &Option<String>) -> String {
    match location {
        Some(location) => format!(
            "http status {status} from the api: a redirect to {} was not followed, so no credentials leave source.endpoint; if you trust that address, set source.endpoint to it",
            escape_controls(location)
        ),
        None => format!(
            "http status {status} from the api: a redirect without a Location was not followed; check source.endpoint"
        ),
    }
}

fn status_hint(status: &u16, retry_after: &Option<Duration>) -> String {
    if let Some(wait) = too_long(retry_after) {
        return format!("; {}", long_wait(wait));
    }
    match classify(Some(*status), None) {
        ErrorClass::Retryable => "; transient, retried, and the next run tries again".into(),
        ErrorClass::Permanent => {
            "; check source.endpoint: it does not look like the Volcengine OpenAPI".into()
        }
    }
}

/// A `Retry-After` longer than a run waits, if this is one.
fn too_long(retry_after: &Option<Duration>) -> Option<Duration> {
    retry_after.filter(|d| *d > MAX_RETRY_AFTER)
}

/// What a `Retry-After` past [`MAX_RETRY_AFTER`] means for the user.
fn long_wait(wait: Duration) -> String {
    format!(
        "the api asked to wait {} s (Retry-After), more than the {} s a run waits: this window fails now, and the next run retries it",
        wait.as_secs(),
        MAX_RETRY_AFTER.as_secs()
    )
}

fn api_message(
    code: &str,
    code_n: &Option<i64>,
    message: &str,
    status: &u16,
    request_id: &Option<String>,
    retry_after: &Option<Duration>,
) -> String {
    let code_n = code_n.map(|n| format!(" {n}")).unwrap_or_default();
    let rid = request_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .map(|id| format!(", RequestId {}", escape_controls(id)))
        .unwrap_or_default();
    let message = if message.is_empty() {
        String::new()
    } else {
        format!(": {}", escape_controls(message))
    };
    let hint = match too_long(retry_after) {
        Some(wait) => long_wait(wait),
        None => hint(code).to_string(),
    };
    format!(
        "api error {}{code_n} (http {status}{rid}){message}; {hint}",
        escape_controls(code)
    )
}

/// What the user should do about an error code.
fn hint(code: &str) -> &'static str {
    match code {
        "SignatureDoesNotMatch" => {
            "check VOLC_SECRETKEY (or VOLCENGINE_SECRET_KEY) and that this machine's clock is right"
        }
        "InvalidAccessKey" => "check VOLC_ACCESSKEY (or VOLCENGINE_ACCESS_KEY)",
        "InvalidTimestamp" => {
            "this machine's clock differs too much from the server's; set it right (e.g. enable NTP)"
        }
        "MissingRequestInfo" => {
            "the signing headers did not arrive; check that source.endpoint is not a proxy that strips headers"
        }
        "MissingParameter" => "a required parameter is missing; check the job in the config",
        "ServiceNotFound" | "InvalidActionOrVersion" => {
            "check source.endpoint and source.region: they do not serve rtc ListQuality 2020-12-01"
        }
        "InvalidParameter.NotExistAppId" | "InvalidParameter.IllegalAppId" => {
            "check app_id in the config: the API does not know it for this account"
        }
        "InvalidParameter.OutofTimeRange" => {
            "the window is older than 30 days or longer than 7 days; check window.max_lookback_days, window.max_span_days and this machine's clock"
        }
        "InvalidParameter.StartTimeAfterEndTime" => {
            "the window's start is after its end; this is a bug, please report it"
        }
        "InvalidParameter.IllegalRoomID" => "check room_id in the config",
        "AccessDenied.NoPermissionForApp" => {
            "the access key may not read this app; grant it RTC access or check app_id"
        }
        "AccessDenied.ServiceNotEnabled" => "enable the RTC service for this account",
        "InternalServiceTimeout" => {
            "the server timed out: transient, retried, and the next run tries again"
        }
        c if c.starts_with("InvalidParameter") => {
            "check the job's indicators and filters in the config"
        }
        c if c.starts_with("AccessDenied") => {
            "the access key lacks permission for rtc ListQuality; grant it in the IAM console"
        }
        c if c.starts_with("FlowLimitExceeded") => {
            "the api throttled the call: retried; lower source.requests_per_second if this persists, or check for another client using the same key"
        }
        c if c.starts_with("InternalError") => {
            "the server failed: transient, retried, and the next run tries again"
        }
        _ => "see the message above",
    }
}

/// Retry or not, from the HTTP status (`None`: no response at all) and `ResponseMetadata.Error.Code`.
///
/// A known code decides on its own, because a 200 can carry an error and the status of throttling is not
/// documented. An unknown code falls back to the status: 429 and 5xx are transient, anything else needs a
/// person. No response at all (network error, timeout) is transient.
pub fn classify(http_status: Option<u16>, code: Option<&str>) -> ErrorClass {
    use ErrorClass::*;
    if let Some(code) = code.filter(|c| !c.is_empty()) {
        let retryable = code.starts_with("FlowLimitExceeded")
            || code.starts_with("InternalError")
            || code == "InternalServiceTimeout";
        let permanent = matches!(
            code,
            "SignatureDoesNotMatch"
                | "InvalidAccessKey"
                | "MissingParameter"
                | "MissingRequestInfo"
                | "InvalidTimestamp"
                | "ServiceNotFound"
                | "InvalidActionOrVersion"
        ) || code.starts_with("AccessDenied")
            || code.starts_with("InvalidParameter");
        if retryable {
            return Retryable;
        }
        if permanent {
            return Permanent;
        }
    }
    match http_status {
        None => Retryable,
        // 408 is the server's own timeout, which section 2 retries like ours.
        Some(429) | Some(408) | Some(500..=599) => Retryable,
        Some(_) => Permanent,
    }
}

impl ApiError {
    /// Retry or not; see [`classify`]. A server that asks for a longer wait than
    /// [`MAX_RETRY_AFTER`] is not tried again in this run, whatever it said.
    pub fn class(&self) -> ErrorClass {
        // Retrying before tomorrow only spends refused calls.
        if self.waits_too_long().is_some() || self.is_daily_limit() {
            return ErrorClass::Permanent;
        }
        match self {
            ApiError::Api { status, code, .. } => classify(Some(*status), Some(code)),
            ApiError::Status { status, .. } => classify(Some(*status), None),
            ApiError::Network { .. } | ApiError::Unreachable { .. } | ApiError::Timeout { .. } => {
                classify(None, None)
            }
            // A body that is not JSON was probably cut or garbled on the way; the wrong shape would come again.
            ApiError::InvalidResponse { not_json, .. } => {
                if *not_json {
                    ErrorClass::Retryable
                } else {
                    ErrorClass::Permanent
                }
            }
            // The service answered without a requested series; another try may bring it.
            ApiError::MissingIndicators { .. } | ApiError::ShortPage { .. } => {
                ErrorClass::Retryable
            }
            // Every call would be redirected alike; following it would send the credentials away.
            ApiError::Redirect { .. }
            | ApiError::TooLarge { .. }
            | ApiError::Setup { .. }
            | ApiError::Deferred { .. }
            | ApiError::NotRecorded { .. } => ErrorClass::Permanent,
        }
    }

    /// The API's own daily limit: a `FlowLimitExceeded*` whose message speaks of the day (BytePlus
    /// allows 60 calls a day). Not retried; the rest of the action waits for the next run.
    pub fn is_daily_limit(&self) -> bool {
        match self {
            ApiError::Api { code, message, .. } => {
                let m = message.to_ascii_lowercase();
                code.starts_with("FlowLimitExceeded")
                    && (m.contains("daily") || m.contains("per day") || m.contains("a day"))
            }
            _ => false,
        }
    }

    /// A call that was not made because a budget said so: not a failure.
    pub fn is_deferred(&self) -> bool {
        matches!(self, ApiError::Deferred { .. }) || self.is_daily_limit()
    }

    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retryable
    }

    /// HTTP 429, a `FlowLimitExceeded*` code, or a `Retry-After` longer than a run waits: the
    /// server's rate limit, counted apart in the run summary.
    pub fn is_throttled(&self) -> bool {
        match self {
            ApiError::Api { status, code, .. } => {
                *status == 429
                    || code.starts_with("FlowLimitExceeded")
                    || self.waits_too_long().is_some()
            }
            ApiError::Status { status, .. } => *status == 429 || self.waits_too_long().is_some(),
            _ => false,
        }
    }

    /// How long the server asked us to wait (`Retry-After`) when a run honours it: at most
    /// [`MAX_RETRY_AFTER`]. A longer wait is `None` here, and [`ApiError::waits_too_long`]: the
    /// call is not tried again in this run.
    pub fn retry_after(&self) -> Option<Duration> {
        self.asked_wait().filter(|d| *d <= MAX_RETRY_AFTER)
    }

    /// The server's `Retry-After`, when it is longer than a run waits ([`MAX_RETRY_AFTER`]).
    pub fn waits_too_long(&self) -> Option<Duration> {
        too_long(&self.asked_wait())
    }

    /// The server's `Retry-After` as sent, when it sent one.
    fn asked_wait(&self) -> Option<Duration> {
        match self {
            ApiError::Api { retry_after, .. } | ApiError::Status { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// The API's RequestId, for the ledger and for support tickets.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            ApiError::Api { request_id, .. }
            | ApiError::Status { request_id, .. }
            | ApiError::InvalidResponse { request_id, .. }
            | ApiError::MissingIndicators { request_id, .. }
            | ApiError::ShortPage { request_id, .. }
            | ApiError::TooLarge { request_id, .. } => {
                request_id.as_deref().filter(|id| !id.is_empty())
            }
            _ => None,
        }
    }

    /// `ResponseMetadata.Error.Code`, when the API sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Api { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The HTTP status, when a response arrived.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            ApiError::Api { status, .. }
            | ApiError::Status { status, .. }
            | ApiError::Redirect { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How much of the run this error condemns.
    pub fn scope(&self) -> ErrorScope {
        match self.code() {
            Some(
                "SignatureDoesNotMatch"
                | "InvalidAccessKey"
                | "InvalidTimestamp"
                | "MissingRequestInfo",
            ) => ErrorScope::Credentials,
            Some(
                "InvalidParameter.NotExistAppId"
                | "InvalidParameter.IllegalAppId"
                | "ServiceNotFound"
                | "InvalidActionOrVersion",
            ) => ErrorScope::Job,
            Some(c) if c.starts_with("AccessDenied") => ErrorScope::Job,
            _ if matches!(
                self,
                ApiError::Unreachable { .. } | ApiError::Redirect { .. }
            ) =>
            {
                ErrorScope::Endpoint
            }
            _ => ErrorScope::Window,
        }
    }

    /// A short label for logs and metrics: the code, `http <status>`, or the kind.
    pub fn label(&self) -> String {
        match self {
            ApiError::Api { code, .. } => escape_controls(code).into_owned(),
            ApiError::Status { status, .. } => format!("http {status}"),
            ApiError::Redirect { .. } => "redirect".into(),
            ApiError::Network { .. } => "network".into(),
            ApiError::Unreachable { .. } => "unreachable".into(),
            ApiError::Timeout { .. } => "timeout".into(),
            ApiError::InvalidResponse { .. } => "invalid_response".into(),
            ApiError::MissingIndicators { .. } => "missing_indicators".into(),
            ApiError::ShortPage { .. } => "short_page".into(),
            ApiError::TooLarge { .. } => "too_large".into(),
            ApiError::Setup { .. } => "setup".into(),
            ApiError::Deferred { .. } => "deferred".into(),
            ApiError::NotRecorded { .. } => "not_recorded".into(),
        }
    }
}

/// Parses a `Retry-After` value: delay seconds, or an HTTP date (a date in the past means now).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorClass::*;
    use ErrorScope::*;

    fn api(status: u16, code: &str) -> ApiError {
        ApiError::Api {
            status,
            code: code.into(),
            code_n: None,
            message: "m".into(),
            request_id: Some("rid-1".into()),
            retry_after: None,
        }
    }

    /// Every code of volc-openapi.md section 2, with its documented status, plus the status-only cases.
    #[test]
    fn classification_follows_the_documented_table() {
        let table: &[(ApiError, ErrorClass, ErrorScope, bool)] = &[
            // (error, class, scope, throttled)
            (api(400, "MissingParameter"), Permanent, Window, false),
            (
                api(400, "MissingRequestInfo"),
                Permanent,
                Credentials,
                false,
            ),
            (api(400, "InvalidTimestamp"), Permanent, Credentials, false),
            (api(404, "ServiceNotFound"), Permanent, Job, false),
            (api(404, "InvalidActionOrVersion"), Permanent, Job, false),
            (api(401, "InvalidAccessKey"), Permanent, Credentials, false),
            (
                api(401, "SignatureDoesNotMatch"),
                Permanent,
                Credentials,
                false,
            ),
            (api(403, "AccessDenied"), Permanent, Job, false),
            (api(500, "InternalError"), Retryable, Window, false),
            (api(200, "InternalServiceTimeout"), Retryable, Window, false),
            (api(504, "InternalServiceTimeout"), Retryable, Window, false),
            (api(429, "FlowLimitExceeded"), Retryable, Window, true),
            (api(200, "FlowLimitExceeded"), Retryable, Window, true),
            (
                api(429, "FlowLimitExceeded.QPSOverLimit"),
                Retryable,
                Window,
                true,
            ),
            (
                api(400, "InvalidParameter.StartTimeAfterEndTime"),
                Permanent,
                Window,
                false,
            ),
            (
                api(400, "InvalidParameter.OutofTimeRange"),
                Permanent,
                Window,
                false,
            ),
            (
                api(400, "InvalidParameter.NotExistAppId"),
                Permanent,
                Job,
                false,
            ),
            (
                api(400, "InvalidParameter.IllegalAppId"),
                Permanent,
                Job,
                false,
            ),
            (
                api(400, "InvalidParameter.IllegalRoomID"),
                Permanent,
                Window,
                false,
            ),
            (
                api(400, "InvalidParameter.Unmarshal"),
                Permanent,
                Window,
                false,
            ),
            (
                api(400, "InvalidParameter.BodyIsEmpty"),
                Permanent,
                Window,
                false,
            ),
            (
                api(403, "AccessDenied.NoPermissionForApp"),
                Permanent,
                Job,
                false,
            ),
            (
                api(403, "AccessDenied.ServiceNotEnabled"),
                Permanent,
                Job,
                false,
            ),
            (api(500, "InternalError.Unknown"), Retryable, Window, false),
            // A 200 with an error is an error, and a permanent code is not retried whatever the status.
            (
                api(200, "InvalidParameter.Unmarshal"),
                Permanent,
                Window,
                false,
            ),
            (
                api(503, "SignatureDoesNotMatch"),
                Permanent,
                Credentials,
                false,
            ),
            // A 200 that lacks a requested indicator: retried, and only its window fails.
            (
                ApiError::MissingIndicators {
                    missing: vec!["stall_rate".into()],
                    returned: vec![],
                    request_id: Some("rid-1".into()),
                },
                Retryable,
                Window,
                false,
            ),
            // Unknown codes fall back to the status.
            (api(503, "SomethingNew"), Retryable, Window, false),
            (api(400, "SomethingNew"), Permanent, Window, false),
            (api(200, "SomethingNew"), Permanent, Window, false),
            // No envelope: the status alone.
            (
                ApiError::Status {
                    status: 429,
                    request_id: None,
                    retry_after: None,
                },
                Retryable,
                Window,
                true,
            ),
            (
                ApiError::Status {
                    status: 502,
                    request_id: None,
                    retry_after: None,
                },
                Retryable,
                Window,
                false,
            ),
            (
                ApiError::Status {
                    status: 500,
                    request_id: None,
                    retry_after: None,
                },
                Retryable,
                Window,
                false,
            ),
            (
                ApiError::Status {
                    status: 404,
                    request_id: None,
                    retry_after: None,
                },
                Permanent,
                Window,
                false,
            ),
            (
                ApiError::Network {
                    message: "connection refused".into(),
                },
                Retryable,
                Window,
                false,
            ),
            (
                ApiError::Timeout {
                    after: Duration::from_secs(30),
                },
                Retryable,
                Window,
                false,
            ),
            // A body that is not JSON is retried; JSON of the wrong shape is not.
            (
                ApiError::InvalidResponse {
                    path: "body".into(),
                    what: "not JSON".into(),
                    request_id: None,
                    not_json: true,
                },
                Retryable,
                Window,
                false,
            ),
            (
                ApiError::InvalidResponse {
                    path: "Result.Indicators[0].Data[0].Value".into(),
                    what: "wrong type".into(),
                    request_id: None,
                    not_json: false,
                },
                Permanent,
                Window,
                false,
            ),
            (
                ApiError::TooLarge {
                    limit: 10,
                    request_id: None,
                },
                Permanent,
                Window,
                false,
            ),
            // A redirect is never followed, and every call would meet it.
            (
                ApiError::Redirect {
                    status: 307,
                    location: Some("https://elsewhere.example/".into()),
                },
                Permanent,
                Endpoint,
                false,
            ),
            (
                ApiError::Redirect {
                    status: 301,
                    location: None,
                },
                Permanent,
                Endpoint,
                false,
            ),
        ];
        for (err, class, scope, throttled) in table {
            assert_eq!(err.class(), *class, "class of {err:?}");
            assert_eq!(err.is_retryable(), *class == Retryable, "{err:?}");
            assert_eq!(err.scope(), *scope, "scope of {err:?}");
            assert_eq!(err.is_throttled(), *throttled, "throttled {err:?}");
            let text = err.to_string();
            assert!(
                text.chars().next().unwrap().is_lowercase() && !text.ends_with('.'),
                "{text}"
            );
        }
    }

    #[test]
    fn the_pure_function_covers_status_alone() {
        assert_eq!(classify(None, None), Retryable);
        assert_eq!(classify(Some(429), None), Retryable);
        assert_eq!(classify(Some(500), None), Retryable);
        assert_eq!(classify(Some(599), None), Retryable);
        assert_eq!(classify(Some(401), None), Permanent);
        assert_eq!(classify(Some(404), Some("")), Permanent);
        assert_eq!(
            classify(Some(200), Some("InternalServiceTimeout")),
            Retryable
        );
        assert_eq!(classify(Some(500), Some("InvalidAccessKey")), Permanent);
    }

    #[test]
    fn permanent_errors_say_what_to_fix() {
        let cases = [
            ("SignatureDoesNotMatch", &["VOLC_SECRETKEY", "clock"][..]),
            ("InvalidAccessKey", &["VOLC_ACCESSKEY"]),
            ("InvalidTimestamp", &["clock"]),
            ("InvalidParameter.NotExistAppId", &["app_id", "config"]),
            ("InvalidParameter.IllegalAppId", &["app_id"]),
            ("InvalidParameter.OutofTimeRange", &["30 days", "7 days"]),
            ("ServiceNotFound", &["source.endpoint"]),
            ("AccessDenied", &["permission"]),
        ];
        for (code, words) in cases {
            let text = api(400, code).to_string();
            for w in words {
                assert!(text.contains(w), "{code}: {text:?} lacks {w:?}");
            }
            assert!(
                text.contains(code) && text.contains("rid-1"),
                "{code}: {text}"
            );
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:40 GMT", now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    /// Issue 18 item 12: a 429 with `Retry-After: 600` was honoured, and a night's run took hours.
    /// Up to 60 s is waited for; a longer wait fails the call at once, counted as throttled, and
    /// says that the next run retries it.
    #[test]
    fn item_12_a_retry_after_over_60_s_is_not_waited_for() {
        let status = |status: u16, secs: u64| ApiError::Status {
            status,
            request_id: None,
            retry_after: Some(Duration::from_secs(secs)),
        };
        let flow = |secs: u64| ApiError::Api {
            status: 429,
            code: "FlowLimitExceeded".into(),
            code_n: Some(100018),
            message: "slow down".into(),
            request_id: Some("rid-2".into()),
            retry_after: Some(Duration::from_secs(secs)),
        };
        assert_eq!(MAX_RETRY_AFTER, Duration::from_secs(60));
        for e in [status(429, 60), flow(60), status(503, 2)] {
            assert!(e.is_retryable(), "{e}");
            assert!(e.retry_after().is_some() && e.waits_too_long().is_none());
            assert!(!e.to_string().contains("Retry-After"), "{e}");
        }
        for (e, wait) in [
            (status(429, 600), 600),
            (flow(61), 61),
            (status(503, 3600), 3600),
        ] {
            assert!(!e.is_retryable(), "{e}");
            assert!(e.is_throttled(), "counted as throttled: {e}");
            assert_eq!(e.retry_after(), None, "no hold for {e}");
            assert_eq!(e.waits_too_long(), Some(Duration::from_secs(wait)));
            assert_eq!(e.scope(), Window);
            let text = e.to_string();
            let want = format!(
                "the api asked to wait {wait} s (Retry-After), more than the 60 s a run waits: this window fails now, and the next run retries it"
            );
            assert!(text.contains(&want), "{text}");
            assert!(!text.contains("transient, retried"), "{text}");
            assert!(
                !text.contains("the api throttled the call: retried"),
                "{text}"
            );
        }
    }
}
