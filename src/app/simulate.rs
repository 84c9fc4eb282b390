//! The `simulate` command: its flags to a [`SimulatorConfig`], then the simulator on `--listen`.
//!
//! The simulator knows nothing of the command line; this glue reads the flags and the environment.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::SecretString;
use tokio::net::TcpListener;

use crate::cli::{AccountArg, SimulateArgs};
use crate::config::{ConfigError, Credentials};
use crate::error::Error;
use crate::redact::mask_access_key;
use crate::simulator::{
    self, DEMO_ACCESS_KEY, DEMO_SECRET_KEY, Faults, FaultsError, SimAccount, SimulatorConfig,
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
    /// `which` names the `--account` by its place and masked access key, never its secret.
    #[error(
        "{which}: {problem}; write AK:SK[:PER_SECOND[:PER_DAY]], e.g. AKLTexample:c2VjcmV0:0.167:60"
    )]
    BadAccount {
        which: String,
        problem: &'static str,
    },
    #[error("{which} has the access key of {other}; each account needs an access key of its own")]
    DuplicateAccount { which: String, other: String },
}

/// `--account AK:SK[:PER_SECOND[:PER_DAY]]`, the `n`th (from 1): PER_SECOND left out is
/// `default_per_second`, PER_DAY left out or 0 no daily limit. Errors never repeat the secret key,
/// nor a part that might be a piece of it.
fn parse_account(
    n: usize,
    arg: &AccountArg,
    default_per_second: f64,
) -> Result<SimAccount, SimulatorError> {
    let parts: Vec<&str> = arg.0.split(':').collect();
    let which = format!("--account #{n} ({})", mask_access_key(parts[0]));
    let bad = |problem| SimulatorError::BadAccount {
        which: which.clone(),
        problem,
    };
    let (ak, sk, per_second, per_day) = match parts[..] {
        [ak, sk] => (ak, sk, "", ""),
        [ak, sk, r] => (ak, sk, r, ""),
        [ak, sk, r, d] => (ak, sk, r, d),
        [_] => return Err(bad("the secret key is missing")),
        _ => return Err(bad("it has more than four parts")),
    };
    if ak.trim().is_empty() {
        return Err(bad("the access key is empty"));
    }
    if sk.trim().is_empty() {
        return Err(bad("the secret key is empty"));
    }
    let per_second = match per_second {
        "" => default_per_second,
        r => r
            .parse::<f64>()
            .ok()
            .filter(|r| r.is_finite() && *r > 0.0)
            .ok_or_else(|| {
                bad("PER_SECOND is not a positive number of requests per second, such as 2 or 0.167")
            })?,
    };
    let per_day = match per_day {
        "" | "0" => None,
        d => Some(d.parse::<u32>().map_err(|_| {
            bad("PER_DAY is not a whole number of requests per day, such as 60 (0: no daily limit)")
        })?),
    };
    Ok(SimAccount::new(ak, sk, per_second, per_day))
}

/// Every `--account`, checked: each well formed, no access key twice, none the `--access-key` flag's.
fn accounts_from_args(args: &SimulateArgs) -> Result<Vec<SimAccount>, SimulatorError> {
    let mut accounts: Vec<SimAccount> = Vec::new();
    for (i, arg) in args.accounts.iter().enumerate() {
        let a = parse_account(i + 1, arg, f64::from(args.rate_limit))?;
        let which = || format!("--account #{} ({})", i + 1, mask_access_key(&a.access_key));
        if let Some(j) = accounts.iter().position(|b| b.access_key == a.access_key) {
            return Err(SimulatorError::DuplicateAccount {
                which: which(),
                other: format!("--account #{}", j + 1),
            });
        }
        if args.access_key.as_deref() == Some(a.access_key.as_str()) {
            return Err(SimulatorError::DuplicateAccount {
                which: which(),
                other: "--access-key".to_string(),
            });
        }
        accounts.push(a);
    }
    Ok(accounts)
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
        accounts: accounts_from_args(args)?,
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
        accounts = %accounts_line(&config),
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

/// The `--account`s for the start-up line: masked access key, rate and daily limit of each;
/// `none` without any.
fn accounts_line(config: &SimulatorConfig) -> String {
    if config.accounts.is_empty() {
        return "none".to_string();
    }
    let one = |a: &SimAccount| {
        let day = a.per_day.map(|d| format!(" {d}/day")).unwrap_or_default();
        format!("{} {}/s{day}", mask_access_key(&a.access_key), a.per_second)
    };
    config
        .accounts
        .iter()
        .map(one)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

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
            accounts: vec![],
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

    fn with_accounts(accounts: &[&str]) -> SimulateArgs {
        SimulateArgs {
            accounts: accounts.iter().map(|a| AccountArg(a.to_string())).collect(),
            ..args("")
        }
    }

    #[test]
    fn accounts_are_parsed_with_their_limits() {
        let a = with_accounts(&[
            "AKLTfirstaccount:secret-one",
            "AKLTsecondaccount:secret-two:0.167:60",
            "AKLTthirdaccount:secret-three::7",
            "AKLTfourthaccount:secret-four:5:0",
        ]);
        let (c, _) = config_from_args_with(&a, None).unwrap();
        let got: Vec<(&str, &str, f64, Option<u32>)> = c
            .accounts
            .iter()
            .map(|a| {
                (
                    a.access_key.as_str(),
                    a.secret_key.expose_secret(),
                    a.per_second,
                    a.per_day,
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("AKLTfirstaccount", "secret-one", 2.0, None),
                ("AKLTsecondaccount", "secret-two", 0.167, Some(60)),
                ("AKLTthirdaccount", "secret-three", 2.0, Some(7)),
                ("AKLTfourthaccount", "secret-four", 5.0, None),
            ]
        );
        // The default pair is still served beside them.
        assert_eq!(c.access_key, DEMO_ACCESS_KEY);
        assert_eq!(
            accounts_line(&c),
            "AKLT…ount 2/s, AKLT…ount 0.167/s 60/day, AKLT…ount 2/s 7/day, AKLT…ount 5/s"
        );
    }

    #[test]
    fn bad_accounts_are_refused_without_their_secret() {
        for (arg, needle) in [
            ("AKLTfirstaccount", "the secret key is missing"),
            ("AKLTfirstaccount:", "the secret key is empty"),
            (":s3cr3t-value", "the access key is empty"),
            ("AKLTfirstaccount:s3cr3t-value:fast", "PER_SECOND"),
            ("AKLTfirstaccount:s3cr3t-value:0", "PER_SECOND"),
            ("AKLTfirstaccount:s3cr3t-value:-1", "PER_SECOND"),
            ("AKLTfirstaccount:s3cr3t-value:NaN", "PER_SECOND"),
            ("AKLTfirstaccount:s3cr3t-value:1:1.5", "PER_DAY"),
            ("AKLTfirstaccount:s3cr3t-value:1:-3", "PER_DAY"),
            ("AKLTfirstaccount:s3cr3t:value:1:2", "more than four parts"),
        ] {
            let e = config_from_args_with(&with_accounts(&["AKLTokaccount:ok", arg]), None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{arg}: {e}");
            assert!(e.starts_with("--account #2 "), "{arg}: {e}");
            assert!(e.contains("AK:SK[:PER_SECOND[:PER_DAY]]"), "{arg}: {e}");
            assert!(!e.contains("s3cr3t"), "{arg}: {e}");
            assert!(!e.contains("AKLTfirstaccount"), "{arg}: {e}");
        }
    }

    #[test]
    fn an_access_key_is_one_account_only() {
        let e = config_from_args_with(
            &with_accounts(&[
                "AKLTsameaccount:one",
                "AKLTother1:x",
                "AKLTsameaccount:two:1",
            ]),
            None,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "--account #3 (AKLT…ount) has the access key of --account #1; each account needs an access key of its own"
        );
        let mut a = with_accounts(&["AKLTsameaccount:one"]);
        a.access_key = Some("AKLTsameaccount".into());
        a.secret_key = Some("two".into());
        let e = config_from_args_with(&a, None).unwrap_err().to_string();
        assert!(e.contains("of --access-key"), "{e}");
        // The environment's pair with an --account's key: the --account is that account.
        let env = Credentials::new("AKLTsameaccount", "env-secret", None);
        let (c, s) =
            config_from_args_with(&with_accounts(&["AKLTsameaccount:one:0.5"]), Some(env)).unwrap();
        assert_eq!(
            (c.access_key.as_str(), s),
            ("AKLTsameaccount", KeySource::Environment)
        );
        assert_eq!(c.accounts[0].per_second, 0.5);
    }

    #[test]
    fn bad_faults_are_refused_with_the_bad_part() {
        let e = config_from_args_with(&args("500=0.1,boom=1"), None).unwrap_err();
        assert!(e.to_string().contains("\"boom\""), "{e}");
    }
}
