//! Schemas the document needs that no Rust type derives.

/// How the document describes a free-form JSON object (a session's `metadata`, an event's
/// `payload`): an object whose members may be any JSON value. A bare `{"type": "object"}` says
/// "an object" but generators read it differently: openapi-typescript's defaults make it an
/// object with no members (`Record<string, never>`), so nothing could be sent in it.
/// `additionalProperties: true` is read as "any members" by every generator we test with
/// (tools/openapi/clients). One named schema, `JsonObject`, referenced wherever one appears.
pub struct FreeFormObject;

impl utoipa::PartialSchema for FreeFormObject {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .additional_properties(Some(AdditionalProperties::FreeForm(true)))
            .description(Some(
                "A JSON object with members of any JSON type: nested at most 32 deep, at most \
                 1,000 keys per object, at most 1 MiB as JSON; no key may contain NUL or start \
                 with `$`; integers must fit in 64 signed bits. Stored and returned exactly.",
            ))
            .into()
    }
}

impl utoipa::ToSchema for FreeFormObject {
    fn name() -> std::borrow::Cow<'static, str> {
        "JsonObject".into()
    }
}
