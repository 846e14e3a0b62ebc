//! The HTTP suite: the real application on port 0, a real HTTP client, every backend.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod auth;
mod errors;
mod events;
mod hardening;
mod hostile;
mod operability;
mod outage;
mod races;
mod reads;
mod sessions;
mod storage_full;
