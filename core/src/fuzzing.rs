//! Entry points for the cargo-fuzz targets in `fuzz/` (feature `fuzzing`): thin wrappers
//! over crate-private parsers, so the fuzzers reach exactly the code the library runs.
//! Not an API; nothing else uses it.

use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};

/// `Retry-After` as the client reads it, at a fixed "now".
pub fn retry_after(value: &str) -> Option<Duration> {
    crate::resilience::parse_retry_after(value, UNIX_EPOCH + Duration::from_secs(1_700_000_000))
}

/// The URL a request for `path` goes to on the endpoint `base`, or `None` when the path
/// is refused before sending.
pub fn request_url(base: &url::Url, path: &str) -> Option<url::Url> {
    crate::http::request::check_path(path).ok()?;
    Some(crate::http::request::join(base, path, &[]))
}

/// An AMQP field table from raw bytes (as a broker would send it), read into courier's
/// message model: the headers as text and the delivery count. `None` when the bytes are
/// not a field table.
pub fn amqp_headers(bytes: &[u8]) -> Option<(BTreeMap<String, String>, Option<u32>)> {
    let (_, table) = amq_protocol_types::parsing::parse_field_table(bytes).ok()?;
    Some((
        crate::messaging::amqp::convert::from_table(Some(&table)),
        crate::messaging::amqp::convert::delivery_count(Some(&table)),
    ))
}
