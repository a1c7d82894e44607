//! JavaScript numbers to the integers core takes.
//!
//! napi's `u32` conversion wraps silently (2^32 + 5000 became 5000, -1 became ~49.7
//! days, NaN and Infinity became 0), so every duration and count arrives as an `f64`
//! and is checked here: an integer, finite, not negative and not above the maximum
//! core allows, else a COURIER_CONFIG error naming the argument. Core then applies its
//! own rules (a deadline of 0 is refused there, as in every language).

use std::time::Duration;

/// A count in `0..=max`.
pub(crate) fn integer(field: &str, value: f64, max: u64) -> courierkit::Result<u64> {
    // `max as f64` is exact for every max used here (all below 2^53).
    if !value.is_finite() || value.fract() != 0.0 || value < 0.0 || value > max as f64 {
        return Err(courierkit::Error::config(
            field,
            format!("must be an integer in 0..={max}, got {value}"),
        ));
    }
    Ok(value as u64)
}

/// A duration argument in milliseconds, up to core's [`courierkit::MAX_DURATION_MS`].
pub(crate) fn millis(field: &str, value: Option<f64>) -> courierkit::Result<Option<Duration>> {
    value.map(|v| duration(field, v)).transpose()
}

/// A duration given in whole milliseconds, up to core's 30 days.
pub(crate) fn duration(field: &str, value: f64) -> courierkit::Result<Duration> {
    integer(field, value, courierkit::MAX_DURATION_MS).map(Duration::from_millis)
}
