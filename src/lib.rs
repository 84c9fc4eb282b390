//! `rtc-quality-sync`: copies Volcengine RTC offline call-quality metrics into SQL tables for BI.
//!
//! The pipeline's stages are modules: `config` (settings), `api` (signed calls), `fetcher` (pacing and
//! retries), `planner` (what to fetch, pure), `store` (the tables), `pipeline` (the run that joins
//! them), and `simulator` (a local stand-in for the API). See ARCHITECTURE.md for the codemap.

pub mod api;
pub mod app;
pub mod batch;
pub mod cli;
pub mod config;
pub mod domain;
pub mod error;
pub mod fetcher;
pub mod pipeline;
pub mod planner;
pub mod progress;
pub mod redact;
pub mod report;
pub mod shutdown;
pub mod simulator;
pub mod store;
pub mod telemetry;
