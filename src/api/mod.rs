//! The Volcengine OpenAPI: request signing, wire types, the transport (`client`), and one module per
//! action (`quality`: `ListQuality`, `distribution`: `ListQualityDistribution`), each an [`Action`].
//!
//! **Invariant:** an action is one module: its request, how that request travels ([`Payload`]), the
//! quota it draws on, and what its answer becomes ([`Action`]); for an action whose windows the
//! pipeline plans, also the call for a planned window and the batch the store commits
//! ([`WindowApi`]). The client signs, sends and caps any of them the same way; the fetcher paces and
//! retries any of them the same way; the pipeline schedules any of them the same way.

/// What every [`Action`] impl of a JSON POST request shares: its body is the request itself,
/// serialized once; its `app_id` and `start_time` fields are what the logs show.
macro_rules! json_request {
    () => {
        fn payload(&self) -> Result<crate::api::Payload, crate::api::error::ApiError> {
            crate::api::json(self)
        }
        fn app_id(&self) -> &str {
            &self.app_id
        }
        fn start_time(&self) -> &str {
            &self.start_time
        }
    };
}
pub(crate) use json_request;

pub mod answer;
pub mod client;
pub mod distribution;
pub mod error;
pub mod quality;
pub mod rooms;
pub mod sign;
pub mod wire;

use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};

use crate::config::SourceSettings;
use crate::domain::{Stream, Window, WindowBatch};
use error::ApiError;

/// How a request travels (volc-openapi.md sections 3 and 6): a POST carries a JSON body and signs it
/// with its content type; a GET carries its parameters in the query and signs no content type.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// The body, serialized once: these bytes are hashed, signed and sent.
    Json(Vec<u8>),
    /// The action's own query parameters (`Action` and `Version` are added by the client), decoded.
    Query(Vec<(String, String)>),
}

/// One API action the tool calls: what a request is and how it travels, which quota it draws on,
/// and what its answer becomes. Adding an action is adding one module with one impl of this trait.
pub trait Action: Sync {
    /// The action's name: in the query, the logs, and the quota key.
    const NAME: &'static str;
    /// What a checked answer becomes.
    type Answer: Send;
    /// The request as it travels.
    fn payload(&self) -> Result<Payload, ApiError>;
    /// The quota this action draws on: its calls per second, from `[source]`.
    fn requests_per_second(source: &SourceSettings) -> f64;
    /// The app asked, for the logs.
    fn app_id(&self) -> &str;
    /// The start of the time asked, as sent (RFC 3339), for the logs.
    fn start_time(&self) -> &str;
    /// What the server sent, as the checked answer to this request. Pure, so every malformed
    /// answer is tested without a server.
    fn answer(&self, reply: &Reply<'_>) -> Result<Self::Answer, ApiError>;
}

/// What the server sent back for one request.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    pub status: u16,
    /// The server's `Retry-After`, read.
    pub retry_after: Option<Duration>,
    /// The body, read under the cap.
    pub body: &'a [u8],
}

/// A time as every action is asked it: RFC 3339 in the configured offset, to the second.
pub fn asked_time(t: DateTime<Utc>, tz: FixedOffset) -> String {
    t.with_timezone(&tz)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

/// A request body serialized once, as a [`Payload::Json`].
pub fn json<T: serde::Serialize>(req: &T) -> Result<Payload, ApiError> {
    serde_json::to_vec(req)
        .map(Payload::Json)
        .map_err(|e| ApiError::Setup {
            message: format!("cannot serialize the request: {e}"),
        })
}

/// An action whose answers the pipeline commits window by window: the call it sends for a planned
/// window of a stream, and the batch its answer becomes. Pure: no IO, no clock.
///
/// A batch keeps the points whose bucket starts inside the window (and, for a grid the API
/// documents, on the stream's grid), one series per name the API returned, and marks where the
/// window's settled part ends and its provisional tail begins: the store commits both, each with its
/// own ledger row, in one transaction. The settle instant comes in as data.
///
/// A point outside the window (such as the bucket at `EndTime`) is dropped silently: asking for
/// `[start, end]` returns it by design. A point inside the window but off the grid (`22:32:17Z` in a
/// `5min` stream) is not a bucket the stream has: storing it would leave a row beside the right one,
/// so it is dropped and counted ([`OffGrid`]), for the pipeline to report. An answer with two
/// different values for one bucket never gets here: the answer boundary refuses it
/// (`api::answer`). The store still merges a bucket listed twice (`store::diff::NormBatch`).
pub trait WindowApi: Action + Sized {
    /// The call for `window` of `stream`, asking `indicators`, its times in `tz`.
    fn for_window(stream: &Stream, window: Window, indicators: &[String], tz: FixedOffset) -> Self;
    /// What an answer to that call becomes, settled before `settled_until`.
    fn batch(answer: &Self::Answer, window: &Fetch<'_>, settled_until: DateTime<Utc>) -> Split;
}

/// What the pipeline knows of a window it fetched, beside the answer.
#[derive(Debug, Clone, Copy)]
pub struct Fetch<'a> {
    pub stream: &'a Stream,
    pub window: Window,
    /// The indicators the call asked.
    pub indicators: &'a [String],
    /// Calls this window has cost, counting every run.
    pub attempts: i64,
    pub fetched_at: DateTime<Utc>,
    /// `window.timezone`: the offset the stream's grid is drawn in (1d buckets start at its midnight).
    pub timezone: FixedOffset,
}

/// What a window's answer became ([`WindowApi::batch`]).
#[derive(Debug, Clone)]
pub struct Split {
    /// The window's points and ledger rows, committed in one transaction.
    pub batch: WindowBatch,
    /// The points inside the window that were not on the stream's grid, and not stored.
    pub off_grid: OffGrid,
}

/// Points dropped because their `TimeStamp` is not a bucket start of the stream's granularity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OffGrid {
    pub count: u64,
    /// The earliest of them, for the warning.
    pub example: Option<DateTime<Utc>>,
}
