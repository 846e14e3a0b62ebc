//! Versioned, declarative index specs from `migrations/mongodb/`, applied at startup and recorded
//! in `schema_migrations`. `createIndexes` with an identical spec is a no-op, and the record is an
//! upsert, so several instances starting at once are safe.

use bson::{DateTime, Document, doc};
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};
use serde::Deserialize;

/// `(version, name, spec)`; append new files here, never edit an applied one.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "create_indexes",
        include_str!("../../../migrations/mongodb/0001_create_indexes.json"),
    ),
    (
        2,
        "session_lifecycle",
        include_str!("../../../migrations/mongodb/0002_session_lifecycle.json"),
    ),
    (
        3,
        "search",
        include_str!("../../../migrations/mongodb/0003_search.json"),
    ),
    (
        4,
        "webhooks",
        include_str!("../../../migrations/mongodb/0004_webhooks.json"),
    ),
];

#[derive(Deserialize)]
struct Spec {
    indexes: Vec<IndexSpec>,
}

#[derive(Deserialize)]
struct IndexSpec {
    collection: String,
    name: String,
    key: Document,
    #[serde(default)]
    unique: bool,
    /// Only documents matching this are indexed; queries must imply it (and hint the index).
    #[serde(default, rename = "partialFilterExpression")]
    partial_filter_expression: Option<Document>,
}

pub async fn migrate(db: &Database) -> Result<Vec<String>, mongodb::error::Error> {
    let records = db.collection::<Document>("schema_migrations");
    let mut applied = Vec::new();
    for &(version, name, spec) in MIGRATIONS {
        let spec: Spec = serde_json::from_str(spec).map_err(|e| {
            mongodb::error::Error::custom(format!("migration {version} does not parse: {e}"))
        })?;
        for index in spec.indexes {
            let model = IndexModel::builder()
                .keys(index.key)
                .options(
                    IndexOptions::builder()
                        .name(index.name)
                        .unique(index.unique)
                        .partial_filter_expression(index.partial_filter_expression)
                        .build(),
                )
                .build();
            db.collection::<Document>(&index.collection)
                .create_index(model)
                .await?;
        }
        let recorded = records
            .update_one(
                doc! { "_id": version },
                doc! { "$setOnInsert": { "name": name, "appliedAt": DateTime::now() } },
            )
            .upsert(true)
            .await;
        match recorded {
            Ok(result) if result.upserted_id.is_some() => {
                applied.push(format!("{version:04}_{name}"));
            }
            Ok(_) => {}
            // Another instance recorded it at the same moment.
            Err(e) if super::is_duplicate_key(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(applied)
}
