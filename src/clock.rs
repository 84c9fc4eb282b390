//! The one wall clock that the tool and the simulator read.
//!
//! It is the system clock, deliberately without an override of its own: no environment variable
//! or configuration key moves it, so no user moves it by accident. Tests and reproducible runs fix
//! the time by passing it in (the planner and `pipeline::run` take `now` as an argument, the
//! simulator takes `SimulatorConfig::data_now`, the binary a hidden `--now` that `--help` does not
//! show), or shift this clock for a whole process tree with libfaketime
//! (`cargo test --tests --no-run && .ci/at-hour 18:00 cargo test --tests`: built first, since rustc
//! hangs under libfaketime; CI runs it at three hours of the day). Clippy refuses any
//! other reading of the wall clock (`clippy.toml`); monotonic `Instant`s measure durations.
#![allow(clippy::disallowed_methods)]

use std::time::SystemTime;

use chrono::{DateTime, Utc};

/// The current instant.
pub fn now() -> DateTime<Utc> {
    Utc::now()
}

/// The current instant as a `SystemTime`, for `httpdate`.
pub fn system_now() -> SystemTime {
    SystemTime::now()
}
