//! Prints courier's config schema (`courierkit::config_schema`) as pretty JSON:
//! `cargo run -q -p courierkit --features schema --example config-schema`.
//! scripts/config-types.py runs it to write docs/config.schema.json.

fn main() {
    let schema = courierkit::config_schema();
    println!(
        "{}",
        serde_json::to_string_pretty(&schema).expect("a JSON value always serializes")
    );
}
