//! Helpers shared by the HTTP integration tests.

use courier_testkit::{Action, Behavior, Testkit};
use courierkit::{Client, ClientConfig, Validate};

/// A client with one service, `name`, configured by `service` (JSON).
pub fn client(name: &str, service: serde_json::Value) -> Client {
    let config =
        ClientConfig::from_value(serde_json::json!({ "services": { name: service } })).unwrap();
    Client::new(config).unwrap()
}

/// A client with one service, `name`, at `urls`, plus `extra` service settings.
pub fn client_for(name: &str, urls: &[String], extra: serde_json::Value) -> Client {
    let mut service = serde_json::json!({ "endpoints": urls });
    if let (Some(base), Some(extra)) = (service.as_object_mut(), extra.as_object()) {
        base.extend(extra.clone());
    }
    client(name, service)
}

/// Upstream `upstream` answers with `script` in order, then `default`.
pub fn behave(kit: &Testkit, upstream: usize, script: Vec<Action>, default: Action) {
    kit.set_behavior(
        upstream,
        Behavior {
            script,
            default,
            ..Behavior::default()
        },
    );
}
