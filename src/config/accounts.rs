//! `[[accounts]]`: the Volcengine accounts one configuration syncs. Each names the environment
//! variables that hold its keys (never the keys), its endpoint and region, and its quotas per
//! action; without `[[accounts]]` there is one implicit account, `default`, on `[source]` and the
//! standard variables (PRODUCT.md, "Accounts and daily budgets").

use std::collections::BTreeMap;
use std::fmt;

use super::credentials::Credentials;
use super::file::RawAccount;
use super::{ConfigError, SourceSettings};

/// The implicit account's name.
pub const IMPLICIT: &str = "default";

/// The actions `[accounts.limits]` may name, each with the `[source]` key that is its default rate.
pub const ACTIONS: [(&str, &str); 3] = [
    ("ListQuality", "requests_per_second"),
    (
        "ListQualityDistribution",
        "distribution_requests_per_second",
    ),
    ("ListRoomInfo", "room_list_requests_per_second"),
];

/// The names of the environment variables that hold an account's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyVariables {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

/// One account: where its calls go, at which rates, within which daily budgets. It holds no key:
/// [`Account::credentials`] reads them from the environment when a run needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct Account {
    pub name: String,
    /// `None`: the implicit account, whose keys are the standard variables
    /// ([`Credentials::from_env`]).
    pub env: Option<KeyVariables>,
    /// `[source]` with this account's endpoint, region and per-action rates: a run of this account
    /// uses it as its source.
    pub source: SourceSettings,
    /// Per action, the calls allowed in any 24 hours; an action without an entry has no budget.
    pub per_day: BTreeMap<String, u32>,
    /// Its index in `[[accounts]]`, for messages (`None` for the implicit account).
    pub index: Option<usize>,
}

impl Account {
    /// The implicit account: `[source]` and the standard variables, no budget.
    pub fn implicit(source: &SourceSettings) -> Account {
        Account {
            name: IMPLICIT.to_string(),
            env: None,
            source: source.clone(),
            per_day: BTreeMap::new(),
            index: None,
        }
    }

    /// Its daily budget for `action`, if it has one.
    pub fn budget(&self, action: &str) -> Option<u32> {
        self.per_day.get(action).copied()
    }

    /// Its keys as this machine's environment holds them; `None` when they are not set here (an
    /// account that another machine syncs): what `plan` and `status` read its calls by.
    pub fn credentials_here(&self, path: &str) -> Option<Credentials> {
        self.credentials(path, |k| {
            std::env::var(k).ok().filter(|v| !v.trim().is_empty())
        })
        .ok()
    }

    /// Its keys, read through `get` (the environment, or a map in tests). An unset variable is an
    /// error naming the account, its key in the file and the variable.
    pub fn credentials(
        &self,
        path: &str,
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Credentials, ConfigError> {
        let Some(env) = &self.env else {
            return Credentials::from_lookup(get)?.ok_or_else(|| ConfigError::Unset {
                path: path.to_string(),
                account: self.name.clone(),
                key: "the standard variables".into(),
                variable: "VOLC_ACCESSKEY and VOLC_SECRETKEY (or VOLCENGINE_ACCESS_KEY and VOLCENGINE_SECRET_KEY)".into(),
            });
        };
        let i = self.index.unwrap_or_default();
        let read = |key: &str, variable: &str| {
            get(variable)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| ConfigError::Unset {
                    path: path.to_string(),
                    account: self.name.clone(),
                    key: format!("accounts[{i}].{key}"),
                    variable: variable.to_string(),
                })
        };
        let access_key = read("access_key_env", &env.access_key)?;
        let secret_key = read("secret_key_env", &env.secret_key)?;
        let token = match &env.session_token {
            Some(variable) => Some(read("session_token_env", variable)?),
            None => None,
        };
        Ok(Credentials::new(&access_key, &secret_key, token.as_deref()))
    }
}

/// Validates `[[accounts]]` over the validated `[source]` (their defaults); none gives the
/// implicit account.
pub(super) fn validate(
    raw: Vec<RawAccount>,
    base: &SourceSettings,
    invalid: &dyn Fn(&str, &dyn fmt::Display, &str) -> ConfigError,
    endpoint: &dyn Fn(&str, &str) -> Result<url::Url, ConfigError>,
) -> Result<Vec<Account>, ConfigError> {
    if raw.is_empty() {
        return Ok(vec![Account::implicit(base)]);
    }
    let mut accounts: Vec<Account> = Vec::with_capacity(raw.len());
    for (i, a) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("accounts[{i}].{k}");
        let name = a.name.trim().to_string();
        if name.is_empty() || name.chars().any(char::is_control) || name.len() > 64 {
            return Err(invalid(
                &key("name"),
                &format!("{:?}", a.name),
                "a name of 1 to 64 printable characters is expected; blocks name it with account = \"...\"",
            ));
        }
        if accounts.iter().any(|o| o.name == name) {
            return Err(invalid(
                &key("name"),
                &format!("{name:?}"),
                "account names must be unique",
            ));
        }
        let variable = |k: &str, v: &str| -> Result<String, ConfigError> {
            let v = v.trim();
            let well_formed = v
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && v.len() <= 128;
            if !well_formed {
                // Never echo it: a key pasted where its variable's name belongs is a secret.
                return Err(invalid(
                    &key(k),
                    &"(not shown)",
                    "the NAME of an environment variable is expected (letters, digits and _, e.g. VOLC_SECRETKEY_CN), never a key itself",
                ));
            }
            Ok(v.to_string())
        };
        let access_key = variable("access_key_env", &a.access_key_env)?;
        let secret_key = variable("secret_key_env", &a.secret_key_env)?;
        let session_token = match a.session_token_env.trim() {
            "" => None,
            v => Some(variable("session_token_env", v)?),
        };
        let mut source = base.clone();
        if let Some(e) = &a.endpoint {
            source.endpoint = endpoint(&key("endpoint"), e)?;
        }
        if let Some(r) = &a.region {
            let r = r.trim();
            if r.is_empty() || r.chars().any(char::is_control) {
                return Err(invalid(
                    &key("region"),
                    &format!("{r:?}"),
                    "a region is expected, e.g. cn-north-1 or ap-singapore-1",
                ));
            }
            source.region = r.to_string();
        }
        let mut per_day = BTreeMap::new();
        for (action, limit) in a.limits {
            let Some(&(action, _)) = ACTIONS.iter().find(|(n, _)| *n == action) else {
                let known: Vec<&str> = ACTIONS.iter().map(|(n, _)| *n).collect();
                return Err(invalid(
                    &key("limits"),
                    &action,
                    &format!("an action is expected: {}", known.join(", ")),
                ));
            };
            if let Some(rate) = limit.per_second {
                if !(0.001..=100.0).contains(&rate) {
                    return Err(invalid(
                        &key(&format!("limits.{action}.per_second")),
                        &rate,
                        "calls per second from 0.001 to 100 are expected (BytePlus's 10 a minute is 0.167)",
                    ));
                }
                match action {
                    "ListQuality" => source.requests_per_second = rate,
                    "ListQualityDistribution" => source.distribution_requests_per_second = rate,
                    _ => source.room_list_requests_per_second = rate,
                }
            }
            match limit.per_day {
                None | Some(0) => {}
                Some(n) if (1..=10_000_000).contains(&n) => {
                    per_day.insert(action.to_string(), n as u32);
                }
                Some(n) => {
                    return Err(invalid(
                        &key(&format!("limits.{action}.per_day")),
                        &n,
                        "a whole number of calls from 0 (no budget) to 10000000 is expected",
                    ));
                }
            }
        }
        accounts.push(Account {
            name,
            env: Some(KeyVariables {
                access_key,
                secret_key,
                session_token,
            }),
            source,
            per_day,
            index: Some(i),
        });
    }
    Ok(accounts)
}

/// The account a block names: `named`, or the only one when it names none. `block` is its key in
/// the file (`jobs[2]`), for messages.
pub(super) fn owner(
    accounts: &[Account],
    block: &str,
    named: Option<&str>,
    invalid: &dyn Fn(&str, &dyn fmt::Display, &str) -> ConfigError,
) -> Result<String, ConfigError> {
    let names = || {
        accounts
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    match named.map(str::trim) {
        Some(n) => match accounts.iter().find(|a| a.name == n) {
            Some(a) => Ok(a.name.clone()),
            None => Err(invalid(
                &format!("{block}.account"),
                &format!("{n:?}"),
                &format!(
                    "no [[accounts]] entry has this name; the accounts are: {}",
                    names()
                ),
            )),
        },
        None if accounts.len() == 1 => Ok(accounts[0].name.clone()),
        None => Err(invalid(
            &format!("{block}.account"),
            &"(not set)",
            &format!(
                "with several [[accounts]] each block names its account, one of: {}",
                names()
            ),
        )),
    }
}

/// Two accounts whose keys are the same access key: one quota counted twice would exceed it.
pub fn same_access_key(
    path: &str,
    resolved: &[(&Account, &Credentials)],
) -> Result<(), ConfigError> {
    for (i, (a, ca)) in resolved.iter().enumerate() {
        if let Some((b, _)) = resolved[..i]
            .iter()
            .find(|(_, cb)| cb.access_key_id == ca.access_key_id)
        {
            return Err(ConfigError::SameAccessKey {
                path: path.to_string(),
                first: b.name.clone(),
                second: a.name.clone(),
                masked: crate::redact::mask_access_key(&ca.access_key_id),
            });
        }
    }
    Ok(())
}
