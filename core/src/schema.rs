//! The JSON Schema of courier's configuration, the one description every binding's
//! typed config is generated from (scripts/config-types.py writes Python `TypedDict`s,
//! TypeScript interfaces, Kotlin data classes and Swift structs from it) and that
//! editors can validate config files against (docs/config.schema.json).
//!
//! It is derived from the same serde types that read a config, so a field added to core
//! reaches every language by regenerating; `tests/scripts/test-all.sh` fails when the
//! committed schema or a generated file is stale.

/// The schema document: `$defs` holds `ClientConfig`, `BusConfig` and every type they
/// use, each with core's doc comment as its description and serde's defaults.
pub fn config_schema() -> serde_json::Value {
    let mut generator = schemars::generate::SchemaSettings::draft2020_12().into_generator();
    generator.subschema_for::<crate::http::ClientConfig>();
    generator.subschema_for::<crate::messaging::BusConfig>();
    let definitions = generator.take_definitions(true);
    serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/courierkit/courierkit/docs/config.schema.json",
        "title": "courier configuration",
        "description": "A Client's config is $defs/ClientConfig, a Bus's is $defs/BusConfig. Durations are whole milliseconds (*_ms).",
        "$defs": definitions,
    })
}
