//! [`Millis`]: how a duration crosses the FFI to Kotlin and Swift.
//!
//! Kotlin callers pass and get `kotlin.time.Duration` and Swift callers `Duration`
//! (uniffi.toml maps the custom type to each). Underneath it is a signed count of whole
//! milliseconds, the unit core and the config schema use: signed, so that a negative
//! Kotlin or Swift duration reaches core and is refused by name
//! ([`courierkit::duration_from_millis`]) instead of wrapping into an enormous unsigned
//! one. A finer part than a millisecond is dropped on the foreign side, as everywhere in
//! courier.

use std::time::Duration;

use crate::error::CourierError;

/// A duration in whole milliseconds; `kotlin.time.Duration` in Kotlin, `Duration` in
/// Swift.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millis(pub i64);
uniffi::custom_newtype!(Millis, i64);

impl Millis {
    /// Core's duration, or `Config` on `field` (the schema's name, `deadline_ms`, as in
    /// every language) when negative or beyond core's 30-day maximum.
    pub(crate) fn to_core(self, field: &str) -> Result<Duration, CourierError> {
        Ok(courierkit::duration_from_millis(field, self.0)?)
    }

    /// [`Millis::to_core`] for an optional argument.
    pub(crate) fn optional(
        value: Option<Millis>,
        field: &str,
    ) -> Result<Option<Duration>, CourierError> {
        value.map(|m| m.to_core(field)).transpose()
    }
}

impl From<Duration> for Millis {
    /// Saturating: no duration core hands out comes near `i64::MAX` milliseconds.
    fn from(d: Duration) -> Self {
        Millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_negative_or_too_long_duration_is_refused_by_its_schema_name() {
        assert_eq!(
            Millis(1_500).to_core("deadline_ms").unwrap(),
            Duration::from_millis(1_500)
        );
        assert_eq!(Millis(0).to_core("timeout_ms").unwrap(), Duration::ZERO);
        for (millis, reason) in [
            (-1, "must not be negative, got -1 ms"),
            (i64::MIN, "must not be negative"),
            (i64::MAX, "must be 0..=2592000000 ms (30 days)"),
        ] {
            let err = Millis(millis).to_core("ttl_ms").unwrap_err();
            let CourierError::Config { field, reason: got } = &err else {
                panic!("{err:?}");
            };
            assert_eq!(field, "ttl_ms");
            assert!(got.starts_with(reason), "{got}");
        }
    }

    #[test]
    fn durations_core_hands_out_saturate() {
        assert_eq!(Millis::from(Duration::from_micros(2_999)), Millis(2));
        assert_eq!(Millis::from(Duration::MAX), Millis(i64::MAX));
    }
}
