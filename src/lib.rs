//! Conversation Session Service: records the sessions (phone calls) and events of a Voice AI platform.

pub mod api;
pub mod app;
pub mod config;
pub mod domain;
pub mod repo;
pub mod service;
pub mod telemetry;
