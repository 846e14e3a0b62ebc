//! The repository contract, written once and run against every backend.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod cases;
