//! API credentials from the environment, wrapped so that the secret never reaches `Debug` output.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};

use super::ConfigError;
use crate::redact::mask_access_key;

/// API credentials. The secret and the session token can only be read through `expose_secret`,
/// and `Debug` shows neither.
#[derive(Clone)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    pub session_token: Option<SecretString>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &mask_access_key(&self.access_key_id))
            .field("secret_access_key", &"***")
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl Credentials {
    pub fn new(access_key_id: &str, secret_access_key: &str, session_token: Option<&str>) -> Self {
        Credentials {
            access_key_id: access_key_id.to_string(),
            secret_access_key: SecretString::from(secret_access_key.to_string()),
            session_token: session_token.map(|t| SecretString::from(t.to_string())),
        }
    }

    pub fn secret(&self) -> &str {
        self.secret_access_key.expose_secret()
    }

    pub fn token(&self) -> Option<&str> {
        self.session_token.as_ref().map(|t| t.expose_secret())
    }

    /// How the database names the account: the first 16 hex digits of the SHA-256 of the access key
    /// id. It tells accounts apart without storing the key (PRODUCT.md, `prune`).
    pub fn account_id(&self) -> String {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(self.access_key_id.as_bytes());
        hex::encode(&digest[..8])
    }

    /// Reads `VOLC_ACCESSKEY`/`VOLC_SECRETKEY` or `VOLCENGINE_ACCESS_KEY`/`VOLCENGINE_SECRET_KEY`
    /// (+ `VOLCENGINE_SESSION_TOKEN`). `Ok(None)` when neither family is set.
    pub fn from_env() -> Result<Option<Credentials>, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty()))
    }

    /// As [`Credentials::from_env`], reading variables through `get` (tests pass a map).
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Credentials>, ConfigError> {
        let families = [
            ("VOLC_ACCESSKEY", "VOLC_SECRETKEY"),
            ("VOLCENGINE_ACCESS_KEY", "VOLCENGINE_SECRET_KEY"),
        ];
        for (ak_var, sk_var) in families {
            match (get(ak_var), get(sk_var)) {
                (Some(ak), Some(sk)) => {
                    let token = get("VOLCENGINE_SESSION_TOKEN");
                    return Ok(Some(Credentials::new(
                        ak.trim(),
                        sk.trim(),
                        token.as_deref().map(str::trim),
                    )));
                }
                (Some(_), None) => {
                    return Err(ConfigError::Credentials(format!(
                        "{ak_var} is set but {sk_var} is not"
                    )));
                }
                (None, Some(_)) => {
                    return Err(ConfigError::Credentials(format!(
                        "{sk_var} is set but {ak_var} is not"
                    )));
                }
                (None, None) => {}
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_come_from_either_family_and_never_print() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let c = Credentials::from_lookup(env(&[
            ("VOLC_ACCESSKEY", "AKLTabcdefgh1234"),
            ("VOLC_SECRETKEY", "s3cr3t"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.secret(), "s3cr3t");
        let dbg = format!("{c:?}");
        assert!(
            !dbg.contains("s3cr3t") && !dbg.contains("AKLTabcdefgh1234"),
            "{dbg}"
        );

        let c = Credentials::from_lookup(env(&[
            ("VOLCENGINE_ACCESS_KEY", "ak"),
            ("VOLCENGINE_SECRET_KEY", "sk"),
            ("VOLCENGINE_SESSION_TOKEN", "tok"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.token(), Some("tok"));

        let e = Credentials::from_lookup(env(&[("VOLC_ACCESSKEY", "ak")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("VOLC_SECRETKEY"), "{e}");
        assert!(Credentials::from_lookup(env(&[])).unwrap().is_none());
    }
}
