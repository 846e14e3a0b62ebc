//! JSON ⇄ BSON, written out so that every value the API accepts is stored as its natural BSON type
//! and read back as the same JSON: integers as Int64, fractions as Double, key order kept.

use bson::{Bson, Document};
use serde_json::{Map, Number, Value};

use crate::domain::JsonObject;
use crate::repo::RepoError;

pub fn to_document(object: &JsonObject) -> Document {
    object
        .as_map()
        .iter()
        .map(|(k, v)| (k.clone(), to_bson(v)))
        .collect()
}

fn to_bson(value: &Value) -> Bson {
    match value {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Bson::Int64(i),
            // JsonObject refuses integers beyond i64, so what is left is a float.
            (None, Some(f)) => Bson::Double(f),
            (None, None) => Bson::Null,
        },
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(items) => Bson::Array(items.iter().map(to_bson).collect()),
        Value::Object(map) => {
            Bson::Document(map.iter().map(|(k, v)| (k.clone(), to_bson(v))).collect())
        }
    }
}

pub fn from_document(doc: &Document) -> Result<JsonObject, RepoError> {
    let mut map = Map::with_capacity(doc.len());
    for (k, v) in doc {
        map.insert(k.clone(), from_bson(v)?);
    }
    Ok(JsonObject::from_stored(map))
}

fn from_bson(value: &Bson) -> Result<Value, RepoError> {
    Ok(match value {
        Bson::Null => Value::Null,
        Bson::Boolean(b) => Value::Bool(*b),
        Bson::Int32(i) => Value::Number((*i).into()),
        Bson::Int64(i) => Value::Number((*i).into()),
        Bson::Double(f) => Value::Number(
            Number::from_f64(*f).ok_or_else(|| corrupt("a stored number is not finite"))?,
        ),
        Bson::String(s) => Value::String(s.clone()),
        Bson::Array(items) => Value::Array(items.iter().map(from_bson).collect::<Result<_, _>>()?),
        Bson::Document(doc) => Value::Object(from_document(doc)?.into_map()),
        other => {
            return Err(corrupt(format!(
                "unexpected BSON type {:?}",
                other.element_type()
            )));
        }
    })
}

pub fn corrupt(what: impl Into<String>) -> RepoError {
    RepoError::Backend(format!("stored document does not parse: {}", what.into()).into())
}
