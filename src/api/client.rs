//! The OpenAPI transport: one signed call of any [`Action`], its body read under a size cap and
//! handed to the action's own answer check. The actions themselves are `api::quality` and
//! `api::distribution`.
//!
//! **Invariant:** one call of [`Client::call`] is one HTTP request; pacing and retries belong to the
//! fetcher. A POST's body is serialized once and the same bytes are hashed, signed and sent; the
//! URL's query is the canonical query string itself, so the server sees exactly what was signed.

use std::fmt;
use std::time::Duration;

use reqwest::header::{self, HeaderValue};

use crate::api::error::{ApiError, parse_retry_after};
use crate::api::sign::{self, SignInput};
use crate::api::wire;
use crate::api::{Action, Payload, Reply};
use crate::config::{Credentials, SourceSettings};
use crate::redact::{mask_access_key, redact_url};
use crate::text::escape_controls;

/// The largest response body read. A week of 5-minute buckets for a dozen indicators is well under 10 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024 * 1024;

/// Sent with every call, so the API's operators can tell this tool's traffic apart.
pub const USER_AGENT: &str = concat!("rtc-quality-sync/", env!("CARGO_PKG_VERSION"));

const CONTENT_TYPE: &str = "application/json";

/// A signing HTTP client for one endpoint and one pair of credentials. Cheap to clone: the connection
/// pool is shared.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    /// The endpoint as configured, without a query.
    endpoint: url::Url,
    /// The host as signed: with its port unless it is the scheme's default.
    host: String,
    path: String,
    region: String,
    timeout: Duration,
    credentials: Credentials,
    body_limit: usize,
}

// Credentials print masked; nothing else here is secret.
impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("endpoint", &self.endpoint.as_str())
            .field("region", &self.region)
            .field(
                "access_key",
                &mask_access_key(&self.credentials.access_key_id),
            )
            .field("body_limit", &self.body_limit)
            .finish_non_exhaustive()
    }
}

impl Client {
    pub fn new(source: &SourceSettings, credentials: Credentials) -> Result<Client, ApiError> {
        let endpoint = &source.endpoint;
        let Some(host) = endpoint
            .host_str()
            .filter(|_| matches!(endpoint.scheme(), "http" | "https"))
        else {
            return Err(ApiError::Setup {
                message: format!(
                    "source.endpoint = {endpoint}: an http(s) base URL is expected, e.g. https://rtc.volcengineapi.com"
                ),
            });
        };
        // `port()` is None for the scheme's default port, which is exactly what the server compares against.
        let host = match endpoint.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_string(),
        };
        let mut base = endpoint.clone();
        base.set_fragment(None);
        base.set_query(None);
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .timeout(source.timeout)
            .connect_timeout(source.timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            // A redirect is never followed (PRODUCT.md, the planner's rule 8): reqwest would forward
            // `X-Security-Token` to any origin, and store that origin's answers. `post` reports it.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ApiError::Setup {
                message: error_chain(&e),
            })?;
        Ok(Client {
            http,
            host,
            path: base.path().to_string(),
            endpoint: base,
            region: source.region.clone(),
            timeout: source.timeout,
            credentials,
            body_limit: DEFAULT_BODY_LIMIT,
        })
    }

    /// Sets the body size cap (tests use a small one).
    pub fn with_body_limit(mut self, bytes: usize) -> Client {
        self.body_limit = bytes;
        self
    }

    /// One attempt of `req`: sign, send, read at most the body cap, and check the answer as the
    /// action says. A failure is a non-2xx status or a `ResponseMetadata.Error`, whichever the server
    /// chose.
    pub async fn call<A: Action>(&self, req: &A) -> Result<A::Answer, ApiError> {
        let (status, retry_after, body) = self.send(A::NAME, req.payload()?).await?;
        req.answer(&Reply {
            status,
            retry_after,
            body: &body,
        })
    }

    /// Signs `payload` for `action`, sends exactly what was signed, and reads the answer under the
    /// cap: the HTTP status, the server's `Retry-After` and the body.
    async fn send(
        &self,
        action: &str,
        payload: Payload,
    ) -> Result<(u16, Option<Duration>, Vec<u8>), ApiError> {
        let mut query = action_query(action);
        let (method, body, content_type) = match payload {
            Payload::Json(body) => (reqwest::Method::POST, body, Some(CONTENT_TYPE)),
            Payload::Query(params) => {
                query.extend(params);
                (reqwest::Method::GET, Vec::new(), None)
            }
        };
        let mut url = self.endpoint.clone();
        url.set_query(Some(&sign::canonical_query(&query)));
        let x_date = crate::clock::now().format("%Y%m%dT%H%M%SZ").to_string();
        let token = self.credentials.token();
        let signature = sign::sign(
            &SignInput {
                method: method.as_str(),
                host: &self.host,
                path: &self.path,
                query: &query,
                body: &body,
                content_type,
                x_date: &x_date,
                region: &self.region,
                service: wire::SERVICE,
                session_token: token,
            },
            &self.credentials.access_key_id,
            self.credentials.secret(),
        );

        let mut request = self
            .http
            .request(method, url)
            .header(header::ACCEPT, CONTENT_TYPE)
            .header("X-Date", &x_date)
            .header("X-Content-Sha256", &signature.body_sha256)
            .header(
                header::AUTHORIZATION,
                sensitive(&signature.authorization, "the authorization header")?,
            );
        if let Some(content_type) = content_type {
            request = request
                .header(header::CONTENT_TYPE, content_type)
                .body(body);
        }
        if let Some(token) = token {
            request = request.header("X-Security-Token", sensitive(token, "the session token")?);
        }
        let response = request.send().await.map_err(|e| self.transport_error(&e))?;

        let status = response.status().as_u16();
        if response.status().is_redirection() {
            return Err(redirect_error(status, &response));
        }
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, crate::clock::system_now()));
        let bytes = self.read_capped(response).await?;
        Ok((status, retry_after, bytes))
    }

    /// Reads the body chunk by chunk and stops at the cap, so a runaway response cannot exhaust memory.
    async fn read_capped(&self, mut response: reqwest::Response) -> Result<Vec<u8>, ApiError> {
        let too_large = || ApiError::TooLarge {
            limit: self.body_limit,
            request_id: None,
        };
        if response
            .content_length()
            .is_some_and(|n| n > self.body_limit as u64)
        {
            return Err(too_large());
        }
        let mut body = Vec::with_capacity(
            response
                .content_length()
                .map_or(16 * 1024, |n| n as usize)
                .min(self.body_limit),
        );
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(&e))?
        {
            if body.len() + chunk.len() > self.body_limit {
                return Err(too_large());
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn transport_error(&self, e: &reqwest::Error) -> ApiError {
        if e.is_timeout() {
            ApiError::Timeout {
                after: self.timeout,
            }
        } else if e.is_connect() {
            ApiError::Unreachable {
                message: error_chain(e),
            }
        } else {
            ApiError::Network {
                message: error_chain(e),
            }
        }
    }
}

/// The longest `Location` a redirect error shows, in characters.
const LOCATION_SHOWN: usize = 256;

/// A 3xx answer as an error that names where it pointed: absolute (a relative `Location` is
/// resolved against the URL called), any password redacted, control characters escaped, cut.
fn redirect_error(status: u16, response: &reqwest::Response) -> ApiError {
    let location = response
        .headers()
        .get(header::LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .map(|raw| {
            let absolute = response
                .url()
                .join(raw.trim())
                .map_or(raw, |u| u.to_string());
            let shown = escape_controls(&redact_url(&absolute)).into_owned();
            match shown.char_indices().nth(LOCATION_SHOWN) {
                Some((cut, _)) => format!("{}…", &shown[..cut]),
                None => shown,
            }
        });
    ApiError::Redirect { status, location }
}

fn action_query(action: &str) -> Vec<(String, String)> {
    vec![
        ("Action".to_string(), action.to_string()),
        ("Version".to_string(), wire::VERSION.to_string()),
    ]
}

/// A header value that `Debug` output of the request never shows.
fn sensitive(value: &str, what: &str) -> Result<HeaderValue, ApiError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| ApiError::Setup {
        message: format!("{what} contains characters an HTTP header cannot carry"),
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// `error: cause: cause`, because reqwest's top-level message alone rarely says what went wrong.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}
