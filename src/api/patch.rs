//! `PATCH /sessions/{sessionId}`: post-call pipelines attach results to a call (a summary id, a
//! disposition, a CRM ticket) by changing its metadata, with `If-Match` for a writer that must
//! not overwrite what it has not seen.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::error::{AppError, Problem};
use super::extract::{MergePatchBody, PathParams};
use super::preconditions::{IfMatch, with_etag};
use super::{AppState, dto, openapi};
use crate::domain::Timestamp;
use crate::repo::MetadataPatch;

#[utoipa::path(
    patch,
    path = "/sessions/{sessionId}",
    tag = "sessions",
    summary = "Update a session's metadata",
    description = "Applies a JSON Merge Patch (RFC 7396) to the session's metadata, while it is open or after it ended: a key set to null is removed, others are set (objects merged key by key). Only `metadata` may be patched. The result obeys the same limits as metadata at create (else 400, nothing changed). The same patch applied twice gives the same session (and the same ETag). With `If-Match`, the patch is applied only if the session is still at that ETag (else 412 `precondition_failed`, nothing changed). Concurrent patches each land: none is lost.",
    request_body(content = dto::SessionPatch, content_type = "application/merge-patch+json"),
    params(dto::SessionPath, ("If-Match" = Option<String>, Header, nullable = false, description = "Apply only if the session's ETag is one of these (`*`: any). Compared strongly: a weak tag never matches.")),
    responses(
        (status = 200, description = "The session with its metadata patched (or unchanged, if the patch changed nothing)", body = dto::SessionBody, headers(("ETag" = String, description = "The session's version: any change to it gives another"))),
        (status = 400, description = "A field other than `metadata`, metadata that is not an object, or patched metadata beyond the limits (`validation_failed`); malformed JSON (`malformed_json`) or a body that is not an object (`body_not_object`); a malformed `If-Match`", body = Problem, content_type = "application/problem+json"),
        openapi::PayloadTooLarge,
        (status = 415, description = "The body is not sent as `application/merge-patch+json` (`unsupported_media_type`)", body = Problem, content_type = "application/problem+json"),
        openapi::SessionNotFound,
        openapi::SessionDeleted,
        (status = 412, description = "`If-Match` names no version the session is at (`precondition_failed`); nothing changed", body = Problem, content_type = "application/problem+json"),
        openapi::Unavailable,
    )
)]
pub async fn patch_session(
    State(state): State<AppState>,
    PathParams(path): PathParams<dto::SessionPath>,
    IfMatch(if_match): IfMatch,
    MergePatchBody(body): MergePatchBody,
) -> Result<Response, AppError> {
    let (session_id, patch) = super::in_session(path, dto::SessionPatch::parse(body))?;
    let patch = MetadataPatch {
        patch: patch.metadata.into_map(),
        if_match,
        at: Timestamp::now(),
    };
    let session = state.service.patch_metadata(&session_id, patch).await?;
    Ok(with_etag(
        Json(dto::SessionBody::from(&session)).into_response(),
        &session,
    ))
}
