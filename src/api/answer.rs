//! What every action's answer shares: the envelope check (an error wins over a malformed `Result`),
//! deserialization that names the offending field, and the rule that the requested indicators came back.
//! Both `api::client` (`ListQuality`) and `api::distribution` build on it.

use std::time::Duration;

use serde::de::IgnoredAny;

use crate::api::error::ApiError;
use crate::api::wire::Envelope;
use crate::text::escape_controls;

/// The part of `client::interpret` every action shares: the envelope alone. An error (a non-2xx status or a
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
