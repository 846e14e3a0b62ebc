//! The wire format: request bodies and paths parsed into domain types ([`request`]), and
//! response bodies as the API writes them ([`response`]). The OpenAPI schemas are derived on
//! these very types.

mod request;
mod response;
mod schema;

pub use request::{
    AddEvent, AddEvents, CompleteSession, CreateSession, EventPath, SessionPatch, SessionPath,
    path_event_id, path_session_id,
};
pub use response::{
    EventBatchBody, EventBody, EventKind, EventPageBody, SessionBody, SessionListBody,
    SessionPageBody, StatusBody,
};
