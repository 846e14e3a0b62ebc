//! The HTTP suite: the real application on port 0, a real HTTP client, every backend.

#[macro_use]
#[path = "../support/mod.rs"]
mod support;

mod auth;
mod batch;
mod changes;
mod changes_support;
mod conditional;
mod console;
mod errors;
mod events;
mod hardening;
mod hostile;
mod http2;
mod lifecycle_ends;
mod lifecycle_erasure;
mod lifecycle_export;
mod lifecycle_list_filters;
mod lifecycle_listing;
mod lifecycle_support;
mod lifecycle_timers;
mod operability;
mod outage;
mod patch;
mod races;
mod reads;
mod redact;
mod search;
mod sessions;
mod stats;
mod storage_full;
mod stream_basics;
mod stream_batch;
mod stream_instances;
mod stream_limits;
mod stream_resume;
mod stream_support;
mod webhooks;
mod webhooks_support;
