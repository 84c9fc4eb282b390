//! The one integration-test binary: every test module shares `helpers` (fresh databases per test).

mod helpers;
mod store;
