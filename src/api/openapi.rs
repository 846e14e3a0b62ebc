//! The OpenAPI 3.1 description, generated from the handlers' annotations and the wire types
//! themselves (`dto`, `query`, `error`). `openapi.json` in the repository is this document; a
//! test fails when the two differ (regenerate with `cargo run -- --openapi > openapi.json`).

use utoipa::{IntoResponses, OpenApi};

use super::error::Problem;

/// A problem answer that several routes share, described once: a response type whose doc comment
/// is its description.
macro_rules! problem_response {
    ($(#[doc = $doc:literal])+ $name:ident: $status:literal) => {
        $(#[doc = $doc])+
        #[derive(IntoResponses)]
        #[response(status = $status, content_type = "application/problem+json")]
        pub struct $name(pub Problem<'static>);
    };
}

problem_response! {
    /// Invalid fields (`validation_failed`, with every violation in `errors`), malformed JSON
    /// (`malformed_json`) or a body that is not an object (`body_not_object`)
    InvalidBody: 400
}
problem_response! {
    /// No such session (`session_not_found`)
    SessionNotFound: 404
}
problem_response! {
    /// The session was erased (`session_deleted`); its id answers so until the tombstone expires
    SessionDeleted: 410
}
problem_response! {
    /// No such endpoint (`webhook_not_found`)
    WebhookNotFound: 404
}
problem_response! {
    /// The endpoint kept changing under this request (`webhook_contended`); retry it
    WebhookContended: 409
}
problem_response! {
    /// The endpoint is disabled (`webhook_disabled`): enable it first
    WebhookDisabled: 409
}
problem_response! {
    /// The endpoint is disabled (`webhook_disabled`: enable it first) or kept changing under this
    /// request (`webhook_contended`: retry it)
    WebhookDisabledOrContended: 409
}
problem_response! {
    /// The body is larger than MAX_BODY_BYTES (`payload_too_large`)
    PayloadTooLarge: 413
}
problem_response! {
    /// The body is not sent as application/json (`unsupported_media_type`)
    NotJson: 415
}
problem_response! {
    /// Storage is unavailable (`storage_unavailable`) or full (`storage_full`), both with
    /// Retry-After, or the request timed out (`request_timeout`)
    Unavailable: 503
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Conversation Session Service",
        description = "Records phone-call sessions and their events for a Voice AI platform. \
            Every write is idempotent; every error is RFC 9457 problem JSON \
            (application/problem+json). Unknown routes answer 404 `route_not_found`, wrong \
            methods 405 `method_not_allowed` with an `Allow` header, and any request may answer \
            503 `request_timeout` or 500 `internal_error`. Every response carries `x-request-id`."
    ),
    servers((url = "/", description = "This service (by default `cargo run` listens on http://127.0.0.1:3000)")),
    paths(
        super::create_session,
        super::list_sessions,
        super::delete_session,
        super::list_events,
        super::add_event,
        super::add_events,
        super::get_session,
        super::patch::patch_session,
        super::get_event,
        super::complete_session,
        super::changes::list_changes,
        super::search::search,
        super::stats::stats,
        super::webhooks::create,
        super::webhooks::list,
        super::webhooks::get_one,
        super::webhooks::patch,
        super::webhooks::delete,
        super::webhooks::secret,
        super::webhooks::rotate,
        super::webhooks::deliveries,
        super::webhooks::recover,
        super::webhooks::test,
        super::health,
        super::ready,
        super::metrics,
        super::openapi_json,
    ),
    // Schemas reached only through parameters are not collected by themselves.
    components(schemas(super::query::SortOrder)),
    modifiers(
        &OptionalApiKeys,
        &PublicRoutes,
        &ClosedRequestBodies,
        &OptionalBodies,
        &WrongMethods,
        &RateLimits
    ),
    tags(
        (name = "sessions", description = "Calls and their events"),
        (name = "changes", description = "The change feed: every change to every call, in order"),
        (name = "search", description = "Find calls by what was said"),
        (name = "stats", description = "Count calls and measure their durations"),
        (name = "webhooks", description = "Push the change feed to receivers, signed (Standard Webhooks), with retries, a delivery log and replay; every route needs the `admin` scope"),
        (name = "operations", description = "Health, readiness, metrics and this description"),
    )
)]
pub struct ApiDoc;

/// A problem-JSON response with `description`, as the modifiers below add them.
fn problem(description: impl Into<String>) -> utoipa::openapi::ResponseBuilder {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    ResponseBuilder::new().description(description).content(
        "application/problem+json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("Problem")))
            .build(),
    )
}

/// Every operation of the document (this API serves GET, POST, PATCH and DELETE), with its path.
fn operations(
    openapi: &mut utoipa::openapi::OpenApi,
) -> impl Iterator<Item = (&str, &mut utoipa::openapi::path::Operation)> {
    openapi.paths.paths.iter_mut().flat_map(|(path, item)| {
        [
            &mut item.get,
            &mut item.post,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        .map(move |op| (path.as_str(), op))
    })
}

/// Whether the route at `path` needs a key when keys are configured.
fn guarded(path: &str) -> bool {
    path.starts_with("/sessions")
        || path == "/changes"
        || path == "/search"
        || path == "/stats"
        || path.starts_with("/webhooks")
        || path == "/metrics"
}

/// Documents the optional API keys: a bearer scheme, the 401 that `/sessions` routes (and
/// `/metrics`, unless METRICS_REQUIRE_KEY=false) answer when keys are configured, and the 403
/// of the writes (POST needs `write`, DELETE `admin`) for a key without that scope.
struct OptionalApiKeys;

impl utoipa::Modify for OptionalApiKeys {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "apiKey",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "Required when the service runs with API_KEYS or API_KEYS_FILE set. \
                         A key has a scope: `read` (every GET), `write` (also POST: create, \
                         append, complete; the default) or `admin` (also DELETE)",
                    ))
                    .build(),
            ),
        );
        let unauthorized = problem(
            "API keys are configured and the request has no valid `Authorization: Bearer` key \
             (`unauthorized`, with `WWW-Authenticate`)",
        )
        .build();
        let forbidden = |scope: &str| {
            problem(format!(
                "The API key is valid but its scope does not allow this request; it needs \
                 `{scope}` (`forbidden`)"
            ))
            .build()
        };
        for (path, item) in openapi
            .paths
            .paths
            .iter_mut()
            .filter(|(path, _)| guarded(path))
        {
            // Webhooks hold secrets and send data out: every route needs `admin`.
            let webhooks = path.starts_with("/webhooks");
            for (op, scope) in [
                (&mut item.get, if webhooks { "admin" } else { "" }),
                (&mut item.post, if webhooks { "admin" } else { "write" }),
                (&mut item.patch, if webhooks { "admin" } else { "write" }),
                (&mut item.delete, "admin"),
            ] {
                if scope.is_empty() {
                    continue;
                }
                if let Some(op) = op {
                    op.responses
                        .responses
                        .insert("403".into(), forbidden(scope).into());
                }
            }
        }
        for (_, op) in operations(openapi).filter(|(path, _)| guarded(path)) {
            op.responses
                .responses
                .insert("401".into(), unauthorized.clone().into());
            op.security = Some(vec![
                SecurityRequirement::default(),
                SecurityRequirement::new("apiKey", Vec::<String>::new()),
            ]);
        }
    }
}

/// Marks the routes that never need a key with an empty security requirement.
struct PublicRoutes;

impl utoipa::Modify for PublicRoutes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::SecurityRequirement;
        for (_, op) in operations(openapi) {
            op.security
                .get_or_insert_with(|| vec![SecurityRequirement::default()]);
        }
    }
}

/// Every route answers a method it does not serve with 405 `method_not_allowed` and an `Allow`
/// header; the document says so on every operation, in one place.
struct WrongMethods;

impl utoipa::Modify for WrongMethods {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let response =
            problem("This path does not serve that method (`method_not_allowed`, with `Allow`)")
                .build();
        for (_, op) in operations(openapi) {
            op.responses
                .responses
                .insert("405".into(), response.clone().into());
        }
    }
}

/// With RATE_LIMIT_PER_SECOND set, every route but `/health` and `/ready` answers a client over
/// its limit with 429 `rate_limited` and `Retry-After`.
struct RateLimits;

impl utoipa::Modify for RateLimits {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let response = problem(
            "Rate limits are configured (RATE_LIMIT_PER_SECOND) and this client (its API key, or \
             its IP address without keys) is over its limit (`rate_limited`)",
        )
        .header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some("Seconds until a retry may succeed (rounded up)"))
                .build(),
        )
        .build();
        for (_, op) in
            operations(openapi).filter(|(path, _)| !matches!(*path, "/health" | "/ready"))
        {
            op.responses
                .responses
                .insert("429".into(), response.clone().into());
        }
    }
}

/// Request bodies refuse unknown fields (`Fields::finish`); the document says so. (The bodies are
/// read field by field, not by serde, so `deny_unknown_fields` cannot say it for them.)
struct ClosedRequestBodies;

impl utoipa::Modify for ClosedRequestBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::ToSchema;
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{AdditionalProperties, Schema};
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for name in [
            super::dto::CreateSession::name(),
            super::dto::AddEvent::name(),
            super::dto::AddEvents::name(),
            super::dto::CompleteSession::name(),
            super::dto::SessionPatch::name(),
            super::webhooks::CreateWebhook::name(),
            super::webhooks::PatchWebhook::name(),
            super::webhooks::RecoverWebhook::name(),
        ] {
            if let Some(RefOr::T(Schema::Object(object))) =
                components.schemas.get_mut(name.as_ref())
            {
                object.additional_properties =
                    Some(Box::new(AdditionalProperties::FreeForm(false)));
            }
        }
    }
}

/// An optional request body (`complete` may have none) is written by utoipa as "the schema, or
/// JSON `null`", which generators then offer to send, and the service refuses (a body must be
/// an object). No body is said by the body not being required; its schema is the object's alone.
struct OptionalBodies;

impl utoipa::Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::RefOr;
        use utoipa::openapi::schema::{Schema, SchemaType, Type};
        let is_null = |s: &RefOr<Schema>| match s {
            RefOr::T(Schema::Object(o)) => o.schema_type == SchemaType::Type(Type::Null),
            _ => false,
        };
        for (_, op) in operations(openapi) {
            let Some(body) = op.request_body.as_mut() else {
                continue;
            };
            for content in body.content.values_mut() {
                let Some(RefOr::T(Schema::OneOf(one_of))) = content.schema.as_ref() else {
                    continue;
                };
                if let [first, second] = one_of.items.as_slice() {
                    let object = match (is_null(first), is_null(second)) {
                        (true, false) => second.clone(),
                        (false, true) => first.clone(),
                        _ => continue,
                    };
                    content.schema = Some(object);
                }
            }
        }
    }
}

/// The document as served at `/openapi.json` and kept in `openapi.json`.
pub fn document() -> String {
    ApiDoc::openapi()
        .to_pretty_json()
        .unwrap_or_else(|_| "{}".to_owned())
}
