//! Wire types: the JSON that `ListQuality` (and the answers of `ListQualityDistribution` and
//! `ListRoomInfo`) speak, exactly as documented, kept apart from domain types.
//!
//! Field names follow the API (PascalCase). Both the client and the simulator use these types.

use serde::{Deserialize, Deserializer, Serialize};

pub const ACTION: &str = "ListQuality";
pub const VERSION: &str = "2020-12-01";
pub const SERVICE: &str = "rtc";

/// The body of a `ListQuality` call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListQualityRequest {
    pub app_id: String,
    /// RFC 3339 with offset, second precision.
    pub start_time: String,
    pub end_time: String,
    pub indicator: Vec<String>,
    pub aggregate_granularity: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_type: Option<String>,
    #[serde(rename = "OS", default, skip_serializing_if = "Vec::is_empty")]
    pub os: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub user_id: Vec<String>,
}

/// The envelope every OpenAPI response has. `Result` may be missing or `{}` on failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    #[serde(rename = "ResponseMetadata")]
    pub response_metadata: ResponseMetadata,
    #[serde(rename = "Result", default, skip_serializing_if = "Option::is_none")]
    pub result: Option<T>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResponseMetadata {
    #[serde(default)]
    pub request_id: String,
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// `ResponseMetadata.Error`: present when the call failed, whatever the HTTP status.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ErrorBody {
    #[serde(default)]
    pub code: String,
    #[serde(rename = "CodeN", default, skip_serializing_if = "Option::is_none")]
    pub code_n: Option<i64>,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListQualityResult {
    /// `''` when absent or `null`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub aggregate_granularity: String,
    /// `null` reads as absent: no series at all.
    #[serde(default, deserialize_with = "null_as_default")]
    pub indicators: Vec<Indicator>,
}

/// One returned series. `Name` is what the API returns, which is not always what was asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Indicator {
    pub name: String,
    /// `''` when absent or `null`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub unit: String,
    /// Empty when absent or `null`: no traffic.
    #[serde(default, deserialize_with = "null_as_default")]
    pub data: Vec<DataItem>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataItem {
    /// The bucket start, RFC 3339.
    #[serde(rename = "TimeStamp")]
    pub time_stamp: String,
    /// `null` when the bucket had no traffic.
    #[serde(rename = "Value")]
    pub value: Option<f64>,
}

/// The `Result` of a `ListQualityDistribution` call (volc-openapi.md section 5). Every field is optional
/// in the official model; there is no `Unit` and no `AggregateGranularity`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListQualityDistributionResult {
    /// `null` reads as absent: no series at all.
    #[serde(default, deserialize_with = "null_as_default")]
    pub indicators: Vec<DistributionIndicator>,
}

/// One returned series of a distribution: `Name` as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DistributionIndicator {
    pub name: String,
    /// Empty when absent or `null`: no traffic.
    #[serde(default, deserialize_with = "null_as_default")]
    pub data: Vec<DistributionItem>,
}

/// One (dimension value, time stamp) of a distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistributionItem {
    /// The dimension's value as returned, in any script: `广东`, `US`, `iOS`, `wifi`.
    #[serde(rename = "Dimension", default, skip_serializing_if = "Option::is_none")]
    pub dimension: Option<String>,
    /// RFC 3339; which grid it follows is not documented.
    #[serde(rename = "TimeStamp", default, skip_serializing_if = "Option::is_none")]
    pub time_stamp: Option<String>,
    /// `null` when that value had no traffic.
    #[serde(rename = "Value", default)]
    pub value: Option<f64>,
}

/// `ListRoomInfo` (volc-openapi.md section 6): a GET, its parameters in the query.
pub const ROOM_LIST_ACTION: &str = "ListRoomInfo";

/// The `Result` of a `ListRoomInfo` call: one page of the calls created in the asked range.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListRoomInfoResult {
    /// How many calls (not rooms) the range holds; needed to know when paging is done.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_num: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<i64>,
    /// "Too many matches; narrow the query": the range must be split. `null` reads as `false`.
    #[serde(default, deserialize_with = "null_as_default")]
    pub has_more: bool,
    /// `null` reads as absent: no call on this page.
    #[serde(default, deserialize_with = "null_as_default")]
    pub room_list: Vec<RoomInfo>,
}

/// One listed call. Every field is checked by `api::rooms`, which names what is wrong.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RoomInfo {
    #[serde(default, deserialize_with = "null_as_default")]
    pub call_id: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub room_id: String,
    /// RFC 3339, in any offset.
    #[serde(default, deserialize_with = "null_as_default")]
    pub created_time: String,
    /// RFC 3339; `""` while the call runs.
    #[serde(default, deserialize_with = "null_as_default")]
    pub destroy_time: String,
    /// Missing (or `null`) is an invalid answer, not zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active_user_num: Option<i64>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub is_finished: bool,
}

/// Reads `null` as the field's default. Every field of a result is optional in the official models
/// (volc-openapi.md section 4), and a `null` says what an absent field says: `Data: null` is no
/// traffic, `Unit: null` is `''`, `Indicators: null` is no series.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}
