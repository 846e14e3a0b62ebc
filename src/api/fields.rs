//! A request body's fields: the members of the JSON object it must be, read strictly in one pass
//! ([`read_object`]), then asked for one by one, by name and kind. Every violation is collected,
//! so one answer names them all, and the members nobody asked for are refused.

use std::borrow::Cow;

use super::error::{AppError, FieldError};
use crate::domain::{Invalid, JsonObject, List, Member, Members, read_object};

/// The messages of the field rules, shared by every body.
pub const REQUIRED: &str = "is required";
pub const MUST_BE_STRING: &str = "must be a string";
pub const KNOWN_FIELD: &str = "is not a known field";

/// The members of a JSON object body, taken one by one, and the violations found so far.
pub struct Fields<'de> {
    /// Each member in body order; `None` once a field took it.
    members: Vec<(Cow<'de, str>, Option<Member<'de>>)>,
    errors: Vec<FieldError>,
}

impl<'de> Fields<'de> {
    /// Reads a body that must be one JSON object: malformed JSON anywhere in it is
    /// `malformed_json`, any other JSON `body_not_object`.
    pub fn read(body: &'de [u8]) -> Result<Self, AppError> {
        Self::read_with_list(body, None)
    }

    /// Like [`Self::read`], with the member `list` names read as a list of objects
    /// ([`Member::List`]).
    pub fn read_with_list(body: &'de [u8], list: Option<List>) -> Result<Self, AppError> {
        match read_object(body, list) {
            Ok(Some(members)) => Ok(Self::new(members)),
            Ok(None) => Err(AppError::bad_request(
                "body_not_object",
                "the body must be a JSON object",
            )),
            Err(why) => Err(AppError::bad_request(
                "malformed_json",
                format!("the body is not valid JSON: {why}"),
            )),
        }
    }

    /// The fields of an object already read (an item of a list).
    pub fn new(members: Members<'de>) -> Self {
        Self {
            members: members.into_iter().map(|(k, v)| (k, Some(v))).collect(),
            errors: Vec::new(),
        }
    }

    /// The same fields, owning their text.
    pub fn into_owned(self) -> Fields<'static> {
        Fields {
            members: self
                .members
                .into_iter()
                .map(|(key, value)| (Cow::Owned(key.into_owned()), value.map(Member::into_owned)))
                .collect(),
            errors: self.errors,
        }
    }

    /// Member `name`, taken; `None` if it is absent or `null`.
    pub fn take(&mut self, name: &str) -> Option<Member<'de>> {
        let (_, value) = self
            .members
            .iter_mut()
            .find(|(key, value)| key == name && value.is_some())?;
        value.take().filter(|v| !matches!(v, Member::Null))
    }

    /// Records that field `name` breaks a rule.
    pub fn invalid(&mut self, name: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError::new(name, message));
    }

    /// Keeps a parsed value, or records why `name` did not parse.
    pub fn check<T>(&mut self, name: &str, parsed: Result<T, Invalid>) -> Option<T> {
        parsed.map_err(|e| self.invalid(name, e.0)).ok()
    }

    /// A field that must be present and a string.
    pub fn required_string(&mut self, name: &str) -> Option<Cow<'de, str>> {
        let value = self.optional_string(name);
        if value.is_none() && !self.errors.iter().any(|e| e.field == name) {
            self.invalid(name, REQUIRED);
        }
        value
    }

    /// A field that may be absent or null, and otherwise must be a string.
    pub fn optional_string(&mut self, name: &str) -> Option<Cow<'de, str>> {
        match self.take(name)? {
            Member::Str(s) => Some(s),
            _ => {
                self.invalid(name, MUST_BE_STRING);
                None
            }
        }
    }

    /// A field that, if present and not null, must be a JSON object that [`JsonObject`]
    /// accepts: `Err` if it is not (recorded).
    pub fn optional_object(&mut self, name: &str) -> Option<Result<JsonObject, ()>> {
        let object = self.take(name)?.into_object();
        Some(object.map_err(|rule| self.invalid(name, rule.0)))
    }

    /// A field that must be present and a JSON object that [`JsonObject`] accepts.
    pub fn required_object(&mut self, name: &str) -> Option<JsonObject> {
        let object = self.optional_object(name);
        if object.is_none() {
            self.invalid(name, REQUIRED);
        }
        object?.ok()
    }

    /// Records the fields nobody asked for, then fails if anything was wrong, naming every
    /// violation in the order found.
    pub fn finish(mut self) -> Result<(), AppError> {
        for (key, value) in std::mem::take(&mut self.members) {
            if value.is_some() {
                self.invalid(key, KNOWN_FIELD);
            }
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(AppError::Validation(self.errors))
        }
    }
}
