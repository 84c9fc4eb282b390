//! The integration tests: one binary, one module per area, sharing helper modules.

mod sim_helpers;
mod simulator;
