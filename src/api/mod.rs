//! The Volcengine OpenAPI: request signing, wire types, and the `ListQuality` client.

pub mod client;
pub mod error;
pub mod sign;
pub mod wire;
