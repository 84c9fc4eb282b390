//! The answers the simulator gives: the documented error codes and the `ResponseMetadata` envelope.

use axum::http::StatusCode;

use crate::api::wire::{Envelope, ErrorBody, ListQualityResult, ResponseMetadata, SERVICE};

/// A refusal, as the gateway or the RTC service says it: HTTP status, `Code`, `CodeN` and `Message`.
///
/// `CodeN` is set for the gateway codes whose numbers are documented (volc-openapi.md section 2);
/// the RTC service's own `InvalidParameter.*` codes have no documented number, so it is left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub code_n: Option<i64>,
    pub message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, code_n: Option<i64>, message: String) -> Self {
        ApiError {
            status,
            code,
            code_n,
            message,
        }
    }

    pub fn missing_parameter(m: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MissingParameter",
            Some(100002),
            m.into(),
        )
    }
    pub fn missing_request_info(m: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MissingRequestInfo",
            Some(100004),
            m.into(),
        )
    }
    pub fn invalid_timestamp(m: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidTimestamp",
            Some(100006),
            m.into(),
        )
    }
    pub fn invalid_action_or_version(m: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "InvalidActionOrVersion",
            Some(100008),
            m.into(),
        )
    }
    pub fn invalid_access_key(m: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAccessKey",
            Some(100009),
            m.into(),
        )
    }
    pub fn signature_does_not_match(m: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "SignatureDoesNotMatch",
            Some(100010),
            m.into(),
        )
    }
    pub fn internal_error(m: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            Some(100014),
            m.into(),
        )
    }
    /// The service timed out behind the gateway: the RTC docs' "a 200 can still carry an error".
    pub fn internal_service_timeout(m: impl Into<String>) -> Self {
        Self::new(
            StatusCode::OK,
            "InternalServiceTimeout",
            Some(100016),
            m.into(),
        )
    }
    pub fn flow_limit_exceeded(m: impl Into<String>) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "FlowLimitExceeded",
            Some(100018),
            m.into(),
        )
    }
    /// `InvalidParameter` or one of its `InvalidParameter.*` refinements, HTTP 400.
    pub fn invalid_parameter(code: &'static str, m: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, None, m.into())
    }
}

/// What every response's `ResponseMetadata` echoes.
#[derive(Debug, Clone)]
pub struct Meta {
    pub request_id: String,
    pub action: String,
    pub version: String,
    pub region: String,
}

impl Meta {
    fn metadata(&self, error: Option<ErrorBody>) -> ResponseMetadata {
        ResponseMetadata {
            request_id: self.request_id.clone(),
            action: self.action.clone(),
            version: self.version.clone(),
            service: SERVICE.to_string(),
            region: self.region.clone(),
            error,
        }
    }

    /// The JSON of a failed call: the envelope with `Error` and no `Result`.
    pub fn error_body(&self, e: &ApiError) -> Vec<u8> {
        let env: Envelope<ListQualityResult> = Envelope {
            response_metadata: self.metadata(Some(ErrorBody {
                code: e.code.to_string(),
                code_n: e.code_n,
                message: e.message.clone(),
            })),
            result: None,
        };
        serde_json::to_vec(&env).expect("the envelope serializes")
    }

    /// The JSON of a successful call whose `Result` is `{}` (the `empty` fault).
    pub fn empty_result_body(&self) -> Vec<u8> {
        let env = Envelope {
            response_metadata: self.metadata(None),
            result: Some(serde_json::json!({})),
        };
        serde_json::to_vec(&env).expect("the envelope serializes")
    }

    /// The JSON of a successful call.
    pub fn result_body<T: serde::Serialize>(&self, result: T) -> Vec<u8> {
        let env = Envelope {
            response_metadata: self.metadata(None),
            result: Some(result),
        };
        serde_json::to_vec(&env).expect("the envelope serializes")
    }
}
