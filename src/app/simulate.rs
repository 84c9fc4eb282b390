//! The `simulate` command: its flags to a [`SimulatorConfig`], then the simulator on `--listen`.
//!
//! The simulator knows nothing of the command line; this glue reads the flags and the environment.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::SecretString;
use tokio::net::TcpListener;

use crate::cli::SimulateArgs;
use crate::config::{ConfigError, Credentials};
use crate::error::Error;
use crate::redact::mask_access_key;
use crate::simulator::{
    self, DEMO_ACCESS_KEY, DEMO_SECRET_KEY, Faults, FaultsError, SimulatorConfig,
};

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
    Credentials(#[from] ConfigError),
    #[error("--rate-limit and --distribution-rate-limit must be at least 1 request per second")]
    ZeroRateLimit,
}

/// Where the accepted key pair came from, for the start-up message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    CommandLine,
    Environment,
    Demo,
}

/// Builds the configuration of `simulate`'s flags. Keys: `--access-key`/`--secret-key`, else
/// `VOLC_ACCESSKEY`/`VOLC_SECRETKEY` or `VOLCENGINE_ACCESS_KEY`/`VOLCENGINE_SECRET_KEY` (as the
/// client reads them, so a shell set up for `sync` works unchanged), else the demo pair.
pub fn config_from_args(
    args: &SimulateArgs,
) -> Result<(SimulatorConfig, KeySource), SimulatorError> {
    config_from_args_with(args, Credentials::from_env()?)
}

/// As [`config_from_args`], with the environment's credentials passed in (tests).
pub fn config_from_args_with(
    args: &SimulateArgs,
    env: Option<Credentials>,
) -> Result<(SimulatorConfig, KeySource), SimulatorError> {
    let faults = Faults::parse(&args.faults)?;
    if args.rate_limit == 0 || args.distribution_rate_limit == 0 || args.room_list_rate_limit == 0 {
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
        distribution_rate_limit_per_sec: args.distribution_rate_limit,
        room_list_rate_limit_per_sec: args.room_list_rate_limit,
        ..SimulatorConfig::default()
    };
    Ok((config, source))
}

/// `rtc-quality-sync simulate`: binds `--listen` and serves until `shutdown` completes.
pub async fn run(
    args: &SimulateArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let (config, source) = config_from_args(args).map_err(Error::usage)?;
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
        distribution_rate_limit_per_sec = config.distribution_rate_limit_per_sec,
        room_list_rate_limit_per_sec = config.room_list_rate_limit_per_sec,
        "simulator listening; POST /?Action=ListQuality and ?Action=ListQualityDistribution, GET /?Action=ListRoomInfo (&Version=2020-12-01), log at GET /_simulator/requests"
    );
    simulator::serve(listener, config, shutdown)
        .await
        .context("the simulator stopped")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(faults: &str) -> SimulateArgs {
        SimulateArgs {
            config: None,
            database_url: None,
            listen: "127.0.0.1:0".into(),
            access_key: None,
            secret_key: None,
            apps: vec![],
            latency_ms: 5,
            faults: faults.into(),
            seed: 9,
            rate_limit: 2,
            distribution_rate_limit: 2,
            room_list_rate_limit: 10,
        }
    }

    #[test]
    fn keys_come_from_flags_then_environment_then_demo() {
        let (c, s) = config_from_args_with(&args(""), None).unwrap();
        assert_eq!(
            (c.access_key.as_str(), s),
            (DEMO_ACCESS_KEY, KeySource::Demo)
        );
        let env = Credentials::new("AKenv", "SKenv", None);
        let (c, s) = config_from_args_with(&args(""), Some(env.clone())).unwrap();
        assert_eq!(
            (c.access_key.as_str(), s),
            ("AKenv", KeySource::Environment)
        );
        let mut a = args("");
        a.access_key = Some("AKflag".into());
        a.secret_key = Some("SKflag".into());
        let (c, s) = config_from_args_with(&a, Some(env)).unwrap();
        assert_eq!(
            (c.access_key.as_str(), s),
            ("AKflag", KeySource::CommandLine)
        );
        assert_eq!(c.latency, Duration::from_millis(5));
        assert_eq!(c.seed, 9);
        a.secret_key = None;
        assert!(matches!(
            config_from_args_with(&a, None),
            Err(SimulatorError::HalfAKeyPair)
        ));
    }

    #[test]
    fn bad_faults_are_refused_with_the_bad_part() {
        let e = config_from_args_with(&args("500=0.1,boom=1"), None).unwrap_err();
        assert!(e.to_string().contains("\"boom\""), "{e}");
    }
}
