//! The Volcengine OpenAPI: request signing, wire types, and the `ListQuality` and
//! `ListQualityDistribution` client.

pub mod answer;
pub mod client;
pub mod distribution;
pub mod error;
pub mod sign;
pub mod wire;
