//! A faithful local emulation of the `ListQuality` API, served over real HTTP on loopback.
//!
//! It checks what the gateway checks (auth headers, clock skew, access key, signature, Action/Version,
//! rate limit) and what the RTC service checks (the body), answers with the documented envelope and
//! status, serves seeded data that does not depend on the window it is asked through, and injects
//! faults on request. The integration tests, the benchmarks, `simulate` and `demo` all run against it.
//!
//! Modules: `auth` (the gateway's signature check), `request` (the body's validation), `limiter` (the
//! sliding one-second rate limit), `data` (the seeded data function), `faults` (injected
//! misbehaviour), `envelope` (codes and JSON), `server` (the router and one request's path).

mod auth;
pub mod data;
mod envelope;
pub mod faults;
mod limiter;
mod request;
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

use crate::cli::SimulateArgs;
use crate::config::{Credentials, mask_access_key};

pub use data::{
    BucketStage, Query, bucket_stage, bucket_starts, expand_indicator, expand_indicators,
    final_value, served_value,
};
pub use faults::{FaultKind, Faults, FaultsError};

/// The access key the simulator accepts when none is configured: a documented, useless demo key.
pub const DEMO_ACCESS_KEY: &str = "AKLTsimulatordemokey";
/// The secret that goes with [`DEMO_ACCESS_KEY`]. Public on purpose: it only opens the simulator.
pub const DEMO_SECRET_KEY: &str = "c2ltdWxhdG9yLWRlbW8tc2VjcmV0";

/// How the simulator behaves. `Default` accepts the demo key pair, knows every app id, adds no
/// latency and no faults, and allows ListQuality's 2 requests per second.
#[derive(Clone)]
pub struct SimulatorConfig {
    /// The one access key it accepts (`InvalidAccessKey` for any other).
    pub access_key: String,
    /// The secret signatures are verified with; never printed.
    pub secret_key: SecretString,
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
            apps: Vec::new(),
            latency: Duration::ZERO,
            faults: Faults::none(),
            seed: 1,
            rate_limit_per_sec: 2,
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
            .field("apps", &self.apps)
            .field("latency", &self.latency)
            .field("faults", &self.faults)
            .field("seed", &self.seed)
            .field("rate_limit_per_sec", &self.rate_limit_per_sec)
            .field("fixed_signing_time", &self.fixed_signing_time)
            .field("data_now", &self.data_now)
            .field("slow_delay", &self.slow_delay)
            .finish()
    }
}

/// A `simulate` command line that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    #[error(transparent)]
    Faults(#[from] FaultsError),
    #[error(
        "--access-key and --secret-key go together; pass both, or neither to use the environment or the demo pair"
    )]
    HalfAKeyPair,
    #[error("{0}")]
    Credentials(#[from] crate::config::ConfigError),
    #[error("--rate-limit must be at least 1 request per second")]
    ZeroRateLimit,
}

/// Where the accepted key pair came from, for the start-up message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    CommandLine,
    Environment,
    Demo,
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

    /// Builds the configuration of `simulate`'s flags. Keys: `--access-key`/`--secret-key`, else
    /// `VOLC_ACCESSKEY`/`VOLC_SECRETKEY` or `VOLCENGINE_ACCESS_KEY`/`VOLCENGINE_SECRET_KEY` (as the
    /// client reads them, so a shell set up for `sync` works unchanged), else the demo pair.
    pub fn from_args(args: &SimulateArgs) -> Result<(Self, KeySource), SimulatorError> {
        Self::from_args_with(args, Credentials::from_env()?)
    }

    /// As [`SimulatorConfig::from_args`], with the environment's credentials passed in (tests).
    pub fn from_args_with(
        args: &SimulateArgs,
        env: Option<Credentials>,
    ) -> Result<(Self, KeySource), SimulatorError> {
        let faults = Faults::parse(&args.faults)?;
        if args.rate_limit == 0 {
            return Err(SimulatorError::ZeroRateLimit);
        }
        let (access_key, secret_key, source) = match (&args.access_key, &args.secret_key, env) {
            (Some(ak), Some(sk), _) => (ak.clone(), sk.clone(), KeySource::CommandLine),
            (Some(_), None, _) | (None, Some(_), _) => return Err(SimulatorError::HalfAKeyPair),
            (None, None, Some(c)) => (
                c.access_key_id.clone(),
                c.secret().to_string(),
                KeySource::Environment,
            ),
            (None, None, None) => (
                DEMO_ACCESS_KEY.to_string(),
                DEMO_SECRET_KEY.to_string(),
                KeySource::Demo,
            ),
        };
        let config = SimulatorConfig {
            access_key,
            secret_key: SecretString::from(secret_key),
            apps: args.apps.clone(),
            latency: Duration::from_millis(args.latency_ms),
            faults,
            seed: args.seed,
            rate_limit_per_sec: args.rate_limit,
            ..SimulatorConfig::default()
        };
        Ok((config, source))
    }
}

/// One request as the simulator saw it: the log served at `GET /_simulator/requests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestRecord {
    /// Arrival, millisecond precision.
    pub at: DateTime<Utc>,
    /// The body as received (lossy UTF-8).
    pub body: String,
    /// The HTTP status answered (200 for `slow`, `close` and `garbage` faults).
    pub status: u16,
    /// `ResponseMetadata.Error.Code`, if the answer carried one.
    pub code: Option<String>,
    pub request_id: String,
    /// The injected fault (`500`, `429`, `200error`, `slow`, `close`, `garbage`), if any.
    #[serde(default)]
    pub fault: Option<String>,
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

/// `rtc-quality-sync simulate`: binds `--listen` and serves until `shutdown` completes.
pub async fn run(
    args: &SimulateArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let (config, source) = SimulatorConfig::from_args(args)?;
    let listener = TcpListener::bind(&args.listen).await.with_context(|| {
        format!(
            "cannot listen on {}; pick a free address with --listen, e.g. 127.0.0.1:0",
            args.listen
        )
    })?;
    let addr = listener.local_addr()?;
    let keys = match source {
        KeySource::CommandLine => "--access-key/--secret-key",
        KeySource::Environment => "the environment",
        KeySource::Demo => "the demo pair (see README)",
    };
    tracing::info!(
        endpoint = %format!("http://{addr}"),
        access_key = %mask_access_key(&config.access_key),
        keys,
        apps = %if config.apps.is_empty() { "any".to_string() } else { config.apps.join(",") },
        seed = config.seed,
        faults = %config.faults,
        latency_ms = config.latency.as_millis() as u64,
        rate_limit_per_sec = config.rate_limit_per_sec,
        "simulator listening; POST /?Action=ListQuality&Version=2020-12-01, log at GET /_simulator/requests"
    );
    serve(listener, config, shutdown)
        .await
        .context("the simulator stopped")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(faults: &str) -> SimulateArgs {
        SimulateArgs {
            listen: "127.0.0.1:0".into(),
            access_key: None,
            secret_key: None,
            apps: vec![],
            latency_ms: 5,
            faults: faults.into(),
            seed: 9,
            rate_limit: 2,
        }
    }

    #[test]
    fn keys_come_from_flags_then_environment_then_demo() {
        let (c, s) = SimulatorConfig::from_args_with(&args(""), None).unwrap();
        assert_eq!(
            (c.access_key.as_str(), s),
            (DEMO_ACCESS_KEY, KeySource::Demo)
        );
        let env = Credentials::new("AKenv", "SKenv", None);
        let (c, s) = SimulatorConfig::from_args_with(&args(""), Some(env.clone())).unwrap();
        assert_eq!(
            (c.access_key.as_str(), s),
            ("AKenv", KeySource::Environment)
        );
        let mut a = args("");
        a.access_key = Some("AKflag".into());
        a.secret_key = Some("SKflag".into());
        let (c, s) = SimulatorConfig::from_args_with(&a, Some(env)).unwrap();
        assert_eq!(
            (c.access_key.as_str(), s),
            ("AKflag", KeySource::CommandLine)
        );
        assert_eq!(c.latency, Duration::from_millis(5));
        assert_eq!(c.seed, 9);
        a.secret_key = None;
        assert!(matches!(
            SimulatorConfig::from_args_with(&a, None),
            Err(SimulatorError::HalfAKeyPair)
        ));
    }

    #[test]
    fn bad_faults_are_refused_with_the_bad_part() {
        let e = SimulatorConfig::from_args_with(&args("500=0.1,boom=1"), None).unwrap_err();
        assert!(e.to_string().contains("\"boom\""), "{e}");
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let c = SimulatorConfig::with_keys("AKLTsomeaccesskey1234", "the-very-secret");
        let d = format!("{c:?}");
        assert!(!d.contains("the-very-secret"), "{d}");
        assert!(!d.contains("AKLTsomeaccesskey1234"), "{d}");
    }
}
