//! What every action's answer shares: the envelope check (an error wins over a malformed `Result`),
//! deserialization that names the offending field, and the rule that the requested indicators came back.
//! Every action's module (`api::quality`, `api::distribution`) opens its answers with [`open`].

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::time::Duration;

use serde::de::IgnoredAny;

use crate::api::error::ApiError;
use crate::api::wire::Envelope;
use crate::text::escape_controls;

/// A successful answer, opened: its request id (escaped, empty if none), its `Result`, and how to
/// say that a field of it is invalid.
pub struct Opened<R> {
    pub request_id: String,
    pub result: R,
    pub invalid: Invalid,
}

/// Builds one answer's `invalid response` errors, each with the answer's request id.
#[derive(Debug, Clone)]
pub struct Invalid {
    request_id: Option<String>,
}

impl Invalid {
    /// The answer is invalid at `path` (e.g. `Result.Indicators[2].Name`) for the reason `what`.
    pub fn at(&self, path: String, what: String) -> ApiError {
        ApiError::InvalidResponse {
            path,
            what,
            request_id: self.request_id.clone(),
            not_json: false,
        }
    }
}

/// What every action does first with an answer: [`check_envelope`], then its `Result` read as `R`
/// (naming the offending field) and required.
pub fn open<R: serde::de::DeserializeOwned + Default>(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<Opened<R>, ApiError> {
    let request_id = check_envelope(status, retry_after, body)?;
    let invalid = Invalid {
        request_id: Some(request_id.clone()).filter(|id| !id.is_empty()),
    };
    let envelope = parse::<Envelope<R>>(body, invalid.request_id.as_deref())?;
    let result = envelope
        .result
        .ok_or_else(|| invalid.at("Result".into(), "missing from a successful response".into()))?;
    Ok(Opened {
        request_id,
        result,
        invalid,
    })
}

/// The part of every action's answer check that comes first: the envelope alone. An error (a non-2xx status or a
/// `ResponseMetadata.Error`) is returned as such even when `Result` is malformed; on success, the
/// `RequestId` (empty if none).
///
/// The API's own text (`Code`, `Message`, `RequestId`) leaves here with its control characters
/// escaped, so every message, log field and ledger row built from it is clean.
pub fn check_envelope(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
) -> Result<String, ApiError> {
    let success = (200..300).contains(&status);
    let meta = match parse::<Envelope<IgnoredAny>>(body, None) {
        Ok(envelope) => envelope.response_metadata,
        Err(_) if !success => {
            return Err(ApiError::Status {
                status,
                request_id: None,
                retry_after,
            });
        }
        Err(e) => return Err(e),
    };
    let request_id = escape_controls(&meta.request_id).into_owned();
    let rid = Some(request_id.clone()).filter(|id| !id.is_empty());
    if let Some(error) = meta.error {
        return Err(ApiError::Api {
            status,
            code: escape_controls(&error.code).into_owned(),
            code_n: error.code_n,
            message: escape_controls(&error.message).into_owned(),
            request_id: rid,
            retry_after,
        });
    }
    if !success {
        return Err(ApiError::Status {
            status,
            request_id: rid,
            retry_after,
        });
    }
    Ok(request_id)
}

/// `client::require_requested`'s rule over the returned names alone, for every action: a
/// [`ApiError::MissingIndicators`] unless each requested indicator is contained in some returned name.
pub fn require_names(
    returned: &[&str],
    requested: &[String],
    request_id: &str,
) -> Result<(), ApiError> {
    let missing: Vec<String> = requested
        .iter()
        .filter(|r| !returned.iter().any(|name| name.contains(r.as_str())))
        .cloned()
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::MissingIndicators {
        missing,
        returned: returned
            .iter()
            .map(|n| escape_controls(n).into_owned())
            .collect(),
        request_id: Some(request_id.to_string()).filter(|id| !id.is_empty()),
    })
}

/// The longest `Name`, `Unit` or dimension value an answer may carry, in bytes. The documented names
/// are a few dozen bytes; anything far longer is not a name, and PostgreSQL refuses what SQLite
/// would keep (PRODUCT.md, the planner's rule 7: both backends behave alike).
pub const MAX_TEXT_BYTES: usize = 256;

/// How many characters of a refused value a message shows.
const SHOWN_CHARS: usize = 48;

/// Checks a returned `Name`, `Unit` or dimension value: no control character (NUL included; no
/// database column should hold one, and PostgreSQL refuses a NUL outright) and at most
/// [`MAX_TEXT_BYTES`]. The error says what is wrong, showing the value escaped and cut, never raw.
pub fn check_text(value: &str) -> Result<(), String> {
    const AFTER: &str = "the window fails and the next run asks again";
    if value.chars().any(char::is_control) {
        return Err(format!(
            "{} holds a control character, which no returned name, unit or dimension value may hold; {AFTER}",
            shown(value)
        ));
    }
    if value.len() > MAX_TEXT_BYTES {
        return Err(format!(
            "{} is {} bytes long, more than the {MAX_TEXT_BYTES} a returned name, unit or dimension value may have; {AFTER}",
            shown(value),
            value.len()
        ));
    }
    Ok(())
}

/// A value from the answer as a message shows it: quoted, its control characters escaped, cut after
/// [`SHOWN_CHARS`] characters (with `…`), so neither a terminal nor a log line gets it raw.
pub fn shown(value: &str) -> String {
    let head: String = value.chars().take(SHOWN_CHARS).collect();
    let cut = if head.len() < value.len() { "…" } else { "" };
    format!("\"{}{cut}\"", escape_controls(&head))
}

/// The values an answer gives, one per key (a series and an instant, and for a distribution its
/// dimension value too): two different values for one key make the answer invalid, the same value
/// twice is kept once (PRODUCT.md, the planner's rule 7). A `null` counts as a value: no traffic.
pub struct OneValuePerKey<K> {
    /// Per key: the first value given, and the item that gave it (`Result.Indicators[0].Data[3]`).
    first: HashMap<K, (Option<f64>, String)>,
}

impl<K: Eq + Hash> OneValuePerKey<K> {
    pub fn new() -> Self {
        OneValuePerKey {
            first: HashMap::new(),
        }
    }

    /// Notes that the item at `item` gives `value` for `key`: `Ok(true)` when it is the first to,
    /// `Ok(false)` when an earlier item gave the same value, and otherwise what a message says of the
    /// two (`98.5 differs from 97, given at Result.Indicators[0].Data[3],`).
    pub fn note(&mut self, key: K, value: Option<f64>, item: &str) -> Result<bool, String> {
        match self.first.entry(key) {
            Entry::Vacant(v) => {
                v.insert((value, item.to_string()));
                Ok(true)
            }
            Entry::Occupied(o) if o.get().0 == value => Ok(false),
            Entry::Occupied(o) => Err(format!(
                "{} differs from {}, given at {},",
                value_text(value),
                value_text(o.get().0),
                o.get().1
            )),
        }
    }
}

impl<K: Eq + Hash> Default for OneValuePerKey<K> {
    fn default() -> Self {
        Self::new()
    }
}

/// A returned value as a message shows it: the number, or `null` (no traffic).
pub fn value_text(value: Option<f64>) -> String {
    value.map_or_else(|| "null".to_string(), |v| v.to_string())
}

/// Deserializes with the path of the offending field in the error.
pub fn parse<T: serde::de::DeserializeOwned>(
    body: &[u8],
    request_id: Option<&str>,
) -> Result<T, ApiError> {
    // serde's message may quote the answer's own text (an unknown variant, a key in the path).
    let error = |path: String, e: serde_json::Error| {
        let not_json = !e.is_data();
        ApiError::InvalidResponse {
            path: if not_json || path == "." {
                "body".to_string()
            } else {
                escape_controls(&path).into_owned()
            },
            what: if not_json {
                format!("not JSON ({})", escape_controls(&e.to_string()))
            } else {
                escape_controls(&e.to_string()).into_owned()
            },
            request_id: request_id.map(str::to_string),
            not_json,
        }
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut de)
        .map_err(|e| error(e.path().to_string(), e.into_inner()))?;
    de.end().map_err(|e| error(String::new(), e))?;
    Ok(value)
}
