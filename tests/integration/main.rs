//! The integration tests: one binary, one module per area, shared helpers beside them.

mod answer_boundary;
mod api;
mod api_helpers;
mod bad_answers;
mod bi;
mod cli;
mod compose;
mod config_cli;
mod discovery;
mod distribution;
mod distribution_sync;
mod first_week;
mod helpers;
mod kill;
mod pipeline;
mod recipes;
mod rooms_store;
mod run_state;
mod schema;
mod sim_helpers;
mod simulator;
mod simulator_rooms;
mod state;
mod store;
mod trust;
mod upgrade;
