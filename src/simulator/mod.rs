//! A faithful local emulation of the `ListQuality`, `ListQualityDistribution` and `ListRoomInfo` APIs,
//! served over real HTTP on loopback.
//!
//! It checks what the gateway checks (auth headers, clock skew, access key, signature, Action/Version,
//! rate limit) and what the RTC service checks (the body), answers with the documented envelope and
//! status, serves seeded data that does not depend on the window it is asked through, and injects
//! faults on request. The integration tests, the benchmarks, `simulate` and `demo` all run against it.
//!
//! Modules: `auth` (the gateway's signature check, with the secret of the account the access key
//! names), `request` (the body's validation), `limiter` (the quotas of each (account, action): a
//! sliding-window rate, fractional too, and a daily limit over any 24 hours), `data` (the seeded
//! data function),
//! `distribution` (its `ListQualityDistribution` counterpart: per-day values per dimension value),
//! `rooms` (each app's calls, drawn per 10-minute slot, and the `ListRoomInfo` page: both ends of a
//! range included, a range cut to 24 h, `HasMore` with an empty `RoomList` past
//! [`SimulatorConfig::room_list_max_matches`]; a `ListQuality` with `RoomId` follows that room's
//! calls), `faults` (injected misbehaviour), `envelope` (codes and JSON), `server` (the router and one
//! request's path).

mod auth;
pub mod data;
pub mod distribution;
mod envelope;
pub mod faults;
mod limiter;
mod request;
pub mod rooms;
mod server;

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::redact::mask_access_key;

pub use data::{
    BucketStage, Query, bucket_stage, bucket_starts, expand_indicator, expand_indicators,
    final_value, room_ran, served_value,
};
pub use distribution::{
    DistributionKey, DistributionQuery, dimension_values, distribution_days,
    distribution_final_value, distribution_served_value,
};
pub use faults::{FaultKind, Faults, FaultsError};
pub use rooms::{RoomQuery, SimCall, calls_created, list_page, room_calls, room_exists};

/// The access key the simulator accepts when none is configured: a documented, useless demo key.
pub const DEMO_ACCESS_KEY: &str = "AKLTsimulatordemokey";
/// The secret that goes with [`DEMO_ACCESS_KEY`]. Public on purpose: it only opens the simulator.
pub const DEMO_SECRET_KEY: &str = "c2ltdWxhdG9yLWRlbW8tc2VjcmV0";

/// How the simulator behaves. `Default` accepts the demo key pair, knows every app id, adds no
/// latency and no faults, and allows 2 requests per second of `ListQuality` and of
/// `ListQualityDistribution`, 10 of `ListRoomInfo`.
///
/// The key pair `access_key`/`secret_key` is one account, with the `*_rate_limit_per_sec` quotas and
/// no daily limit; [`SimulatorConfig::accounts`] adds more, each with quotas of its own.
#[derive(Clone)]
pub struct SimulatorConfig {
    /// The access key of the default account (`InvalidAccessKey` for a key no account has).
    pub access_key: String,
    /// The secret signatures of the default account are verified with; never printed.
    pub secret_key: SecretString,
    /// More accounts, each with its own quotas per action (one account's calls never count against
    /// another's). An entry with the default account's access key replaces the default account.
    pub accounts: Vec<SimAccount>,
    /// The app ids it knows (`InvalidParameter.NotExistAppId` for others); empty: every app id is known.
    pub apps: Vec<String>,
    /// Added before each response.
    pub latency: Duration,
    /// Per-request fault rates; all zero by default.
    pub faults: Faults,
    /// Seeds the data and the fault draws.
    pub seed: u64,
    /// Admitted requests in any one-second window; ListQuality allows 2. Tests may raise it.
    pub rate_limit_per_sec: u32,
    /// Admitted `ListQualityDistribution` requests in any one-second window, counted apart from
    /// `ListQuality`'s (each action has its own quota); 2 by default.
    pub distribution_rate_limit_per_sec: u32,
    /// Admitted `ListRoomInfo` requests in any one-second window, counted apart from the other
    /// actions'; 10 by default, as documented.
    pub room_list_rate_limit_per_sec: u32,
    /// A `ListRoomInfo` range holding more calls than this is answered `HasMore: true` with an empty
    /// `RoomList` ("too many matches, narrow the query"); 500 by default. Tests lower it.
    pub room_list_max_matches: usize,
    /// The clock `X-Date` is checked against (±15 minutes); `None`: the system clock.
    pub fixed_signing_time: Option<DateTime<Utc>>,
    /// The "now" that data, provisional values and the 30-day check follow; `None`: the system clock.
    /// A spawned simulator's handle can move it later.
    pub data_now: Option<DateTime<Utc>>,
    /// How long a `slow` fault takes to answer (or until shutdown).
    pub slow_delay: Duration,
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            access_key: DEMO_ACCESS_KEY.to_string(),
            secret_key: SecretString::from(DEMO_SECRET_KEY),
            accounts: Vec::new(),
            apps: Vec::new(),
            latency: Duration::ZERO,
            faults: Faults::none(),
            seed: 1,
            rate_limit_per_sec: 2,
            distribution_rate_limit_per_sec: 2,
            room_list_rate_limit_per_sec: 10,
            room_list_max_matches: 500,
            fixed_signing_time: None,
            data_now: None,
            slow_delay: Duration::from_secs(120),
        }
    }
}

// The secret stays out of Debug output, and the access key is masked.
impl fmt::Debug for SimulatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimulatorConfig")
            .field("access_key", &mask_access_key(&self.access_key))
            .field("secret_key", &"***")
            .field("accounts", &self.accounts)
            .field("apps", &self.apps)
            .field("latency", &self.latency)
            .field("faults", &self.faults)
            .field("seed", &self.seed)
            .field("rate_limit_per_sec", &self.rate_limit_per_sec)
            .field(
                "distribution_rate_limit_per_sec",
                &self.distribution_rate_limit_per_sec,
            )
            .field(
                "room_list_rate_limit_per_sec",
                &self.room_list_rate_limit_per_sec,
            )
            .field("room_list_max_matches", &self.room_list_max_matches)
            .field("fixed_signing_time", &self.fixed_signing_time)
            .field("data_now", &self.data_now)
            .field("slow_delay", &self.slow_delay)
            .finish()
    }
}

impl SimulatorConfig {
    /// The defaults with another key pair.
    pub fn with_keys(access_key: &str, secret_key: &str) -> Self {
        SimulatorConfig {
            access_key: access_key.to_string(),
            secret_key: SecretString::from(secret_key.to_string()),
            ..SimulatorConfig::default()
        }
    }
}

/// One more account of the simulator: a key pair and its quotas. `ListRoomInfo` keeps the
/// configuration's `room_list_rate_limit_per_sec` (10/s, as documented).
#[derive(Clone)]
pub struct SimAccount {
    pub access_key: String,
    /// Never printed.
    pub secret_key: SecretString,
    /// Admitted `ListQuality` requests per second, and as many `ListQualityDistribution` ones
    /// (counted apart). Fractional rates are allowed: 0.167 (10 a minute) admits one call in any
    /// 6 s (see `limiter`).
    pub per_second: f64,
    /// Accepted requests of each action (counted apart) in any 24 hours of the simulator's data clock;
    /// `None`: no daily limit.
    pub per_day: Option<u32>,
}

impl SimAccount {
    pub fn new(access_key: &str, secret_key: &str, per_second: f64, per_day: Option<u32>) -> Self {
        SimAccount {
            access_key: access_key.to_string(),
            secret_key: SecretString::from(secret_key.to_string()),
            per_second,
            per_day,
        }
    }
}

// The secret stays out of Debug output, and the access key is masked.
impl fmt::Debug for SimAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimAccount")
            .field("access_key", &mask_access_key(&self.access_key))
            .field("secret_key", &"***")
            .field("per_second", &self.per_second)
            .field("per_day", &self.per_day)
            .finish()
    }
}

/// One request as the simulator saw it: the log served at `GET /_simulator/requests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Arrival, millisecond precision.
    pub at: DateTime<Utc>,
    /// The body as received (lossy UTF-8); empty for a GET, whose parameters are in `query`.
    pub body: String,
    /// The query string as received, still percent-encoded (`Action=ListRoomInfo&AppId=...` for a
    /// GET; a POST's holds `Action` and `Version`): which range and page a `ListRoomInfo` asked.
    #[serde(default)]
    pub query: String,
    /// The HTTP status answered (200 for `slow`, `close` and `garbage` faults).
    pub status: u16,
    /// `ResponseMetadata.Error.Code`, if the answer carried one.
    pub code: Option<String>,
    pub request_id: String,
    /// The injected fault (`500`, `429`, `200error`, `slow`, `close`, `garbage`, `empty`, `noindicators`,
    /// `offgrid`, and for `ListRoomInfo` `shortpage`, `dupcall`, `emptypage`), if any.
    #[serde(default)]
    pub fault: Option<String>,
    /// The `Action` of the query (`ListQuality`, `ListQualityDistribution`, `ListRoomInfo`, or whatever
    /// was sent).
    #[serde(default)]
    pub action: String,
    /// The access key of the account the request named, when the simulator has that account (also
    /// when the signature then failed); `None` for an unknown key or no readable `Authorization`.
    #[serde(default)]
    pub account: Option<String>,
}

/// Serves until `shutdown` completes, then stops accepting, lets running requests finish (a `slow`
/// fault answers at once) and returns.
pub async fn serve(
    listener: TcpListener,
    config: SimulatorConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_shared(listener, Arc::new(server::Shared::new(config)), shutdown).await
}

async fn serve_shared(
    listener: TcpListener,
    shared: Arc<server::Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let token = shared.shutdown.clone();
    let app = server::router(shared);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            token.cancel();
        })
        .await
}

/// Binds `127.0.0.1:0` and serves in a tokio task until [`SimulatorHandle::shutdown`] (or the runtime ends).
pub async fn spawn(config: SimulatorConfig) -> std::io::Result<SimulatorHandle> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shared = Arc::new(server::Shared::new(config));
    let stop = shared.shutdown.clone();
    let task = tokio::spawn(serve_shared(listener, shared.clone(), async move {
        stop.cancelled().await
    }));
    Ok(SimulatorHandle { addr, shared, task })
}

/// A running in-process simulator.
pub struct SimulatorHandle {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    task: JoinHandle<std::io::Result<()>>,
}

impl SimulatorHandle {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL to put in `source.endpoint`: `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request so far, in the order they were answered.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared
            .log
            .lock()
            .expect("the log lock is never poisoned")
            .clone()
    }

    /// Moves the data clock: which buckets are partial, provisional or final, and the 30-day limit.
    pub fn set_data_now(&self, now: DateTime<Utc>) {
        *self
            .shared
            .data_now
            .lock()
            .expect("the data clock lock is never poisoned") = Some(now);
    }

    /// Back to the system clock.
    pub fn clear_data_now(&self) {
        *self
            .shared
            .data_now
            .lock()
            .expect("the data clock lock is never poisoned") = None;
    }

    /// The seed and the rest of the configuration it runs with.
    pub fn config(&self) -> &SimulatorConfig {
        &self.shared.config
    }

    /// Stops accepting, ends `slow` responses, waits for the server task.
    pub async fn shutdown(self) {
        self.shared.shutdown.cancel();
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "simulator stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "simulator task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_secret() {
        let mut c = SimulatorConfig::with_keys("AKLTsomeaccesskey1234", "the-very-secret");
        c.accounts.push(SimAccount::new(
            "AKLTanotheraccount99",
            "second-secret",
            0.5,
            Some(3),
        ));
        let d = format!("{c:?}");
        for secret in [
            "the-very-secret",
            "AKLTsomeaccesskey1234",
            "second-secret",
            "AKLTanotheraccount99",
        ] {
            assert!(!d.contains(secret), "{d}");
        }
        assert!(d.contains("per_day: Some(3)"), "{d}");
    }
}
