//! Deadlines that travel with a call or a message, so the work a caller gave up on is
//! not done.
//!
//! Over HTTP the budget goes as *remaining* milliseconds (`x-courier-deadline-ms`, sent
//! by the client on every attempt): a request is handled at once, and a relative value
//! does not depend on the two machines' clocks agreeing (gRPC's `grpc-timeout` works the
//! same way). A message waits in a queue for an unknown time, so it carries the
//! *absolute* deadline (`x-courier-deadline`, Unix time in milliseconds) beside its
//! AMQP `expiration`; consumer and publisher clocks must then agree to within the
//! precision the application needs (NTP keeps them within milliseconds).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};
use crate::limits::{MAX_DURATION_MS, check_duration_ms};

/// The HTTP request header with the caller's remaining budget in whole milliseconds.
pub const DEADLINE_HEADER: &str = "x-courier-deadline-ms";

/// The message header with the absolute deadline, in milliseconds since the Unix epoch.
pub(crate) const MESSAGE_DEADLINE_HEADER: &str = "x-courier-deadline";

/// The caller's remaining budget from an incoming HTTP request's headers (names match
/// case-insensitively), for a server to pass on to its own calls and publishes:
/// `None` when the caller sent none.
///
/// # Errors
/// [`Error::Config`] naming the header when its value is not whole milliseconds
/// within 0..=30 days: a server answers 400 rather than guess.
///
/// # Examples
/// ```
/// use std::time::Duration;
/// let headers = [("Content-Type", "text/plain"), ("X-Courier-Deadline-Ms", "1500")];
/// let budget = courierkit::deadline_from_headers(headers).unwrap();
/// assert_eq!(budget, Some(Duration::from_millis(1500)));
/// ```
pub fn deadline_from_headers<'a, I>(headers: I) -> Result<Option<Duration>>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    let Some((_, value)) = headers
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(DEADLINE_HEADER))
    else {
        return Ok(None);
    };
    let value = value.trim();
    // Digits only: `+5`, `5.0` and `-1` are not what a courier client sends.
    let ms = if !value.is_empty() && value.len() <= 20 && value.bytes().all(|b| b.is_ascii_digit())
    {
        value.parse::<u64>().unwrap_or(u64::MAX)
    } else {
        return Err(Error::config(
            DEADLINE_HEADER,
            "must be whole milliseconds (digits only)",
        ));
    };
    check_duration_ms(DEADLINE_HEADER, ms, true)?;
    Ok(Some(Duration::from_millis(ms)))
}

/// `ttl` from now as a message deadline header value (Unix milliseconds).
pub(crate) fn message_deadline_after(ttl: Duration) -> (SystemTime, String) {
    let at = SystemTime::now() + ttl;
    (at, unix_millis(at).to_string())
}

/// The deadline a message carries, if it carries a valid one. A value that is not a
/// Unix time in milliseconds (another client's header, a hand-written one) counts as
/// none: the broker's `expiration` still applies.
pub(crate) fn message_deadline(value: Option<&String>) -> Option<SystemTime> {
    let value = value?;
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let ms: u64 = value.parse().ok()?;
    // Past 2^53 ms (year 287,396) is a wrapped or hostile number, not a deadline.
    if ms > (1 << 53) {
        return None;
    }
    Some(UNIX_EPOCH + Duration::from_millis(ms))
}

/// What is left until `deadline`, zero when it has passed, capped at the longest
/// duration courier accepts so it can be passed on as a deadline.
pub(crate) fn remaining(deadline: SystemTime) -> Duration {
    deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .min(Duration::from_millis(MAX_DURATION_MS))
}

fn unix_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_budget_is_read_case_insensitively_and_checked() {
        let read = |v: &str| deadline_from_headers([("X-COURIER-DEADLINE-MS", v)]);
        assert_eq!(read("0").unwrap(), Some(Duration::ZERO));
        assert_eq!(read(" 250 ").unwrap(), Some(Duration::from_millis(250)));
        assert_eq!(deadline_from_headers([("accept", "*/*")]).unwrap(), None);
        for bad in [
            "",
            "-1",
            "1.5",
            "+3",
            "ten",
            "99999999999999999999999",
            "2592000001",
        ] {
            let err = read(bad).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Config, "{bad}");
            assert!(err.to_string().contains(DEADLINE_HEADER), "{err}");
        }
    }

    #[test]
    fn a_message_deadline_round_trips_and_junk_is_none() {
        let (at, header) = message_deadline_after(Duration::from_secs(2));
        let read = message_deadline(Some(&header)).unwrap();
        assert!(read <= at && at.duration_since(read).unwrap() < Duration::from_millis(1));
        let left = remaining(read);
        assert!(left <= Duration::from_secs(2) && left > Duration::from_secs(1));
        for junk in [
            "",
            "x",
            "-5",
            "1e9",
            "9007199254740993",
            "123456789012345678901",
        ] {
            assert_eq!(message_deadline(Some(&junk.to_owned())), None, "{junk}");
        }
        assert_eq!(remaining(UNIX_EPOCH), Duration::ZERO);
    }
}
