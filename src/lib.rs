//! `rtc-quality-sync`: copies Volcengine RTC offline call-quality metrics into SQL tables for BI.
//!
//! The pipeline's stages are modules: `config` (settings), `planner` (what to fetch, pure), `api`
//! (signed calls), `fetcher` (pacing and retries), `batch` (a response to what is committed, pure),
//! `store` (the tables) and `pipeline` (the run that joins them); `domain` holds the types they speak.
//! Around them: `app` (the commands), `error` (how a command ends, and its exit code), `shutdown`
//! (signals), `progress`, `report`, `redact`, `text` (API text made safe to print), `telemetry`, and
//! `simulator` (a local stand-in for the API). See ARCHITECTURE.md for the codemap.

pub mod api;
pub mod app;
pub mod budget;
pub mod cli;
pub mod clock;
pub mod config;
pub mod discovery;
pub mod domain;
pub mod error;
pub mod fetcher;
pub mod health;
pub mod metrics;
pub mod pipeline;
pub mod planner;
pub mod progress;
pub mod prune;
pub mod redact;
pub mod report;
pub mod shutdown;
pub mod simulator;
pub mod store;
pub mod telemetry;
pub mod text;
