//! What an upstream does with each request, and the choice of that action.
//!
//! The same types are the control API's JSON and the Rust API's structs, so every
//! language's tests describe faults in one vocabulary.

use std::collections::{BTreeMap, VecDeque};

use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// How an upstream answers, replaced as a whole by `set_behavior` or `PUT .../behavior`.
///
/// Requests take the next `script` action while there is one, so a test can spell out
/// an exact sequence ("two 503s, then success"); after that, `failure_ratio` mixes
/// `failure` into `default` for soak-style tests, from a seeded generator so a failing
/// run can be replayed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Behavior {
    /// The answer when neither the script nor the failure ratio applies.
    pub default: Action,
    /// Actions used once each, in order, before anything else.
    pub script: Vec<Action>,
    /// Probability in `0.0..=1.0` that an unscripted request gets `failure`.
    pub failure_ratio: f64,
    /// The answer chosen by `failure_ratio`.
    pub failure: Action,
    /// Seed for the `failure_ratio` draws.
    pub seed: u64,
}

impl Default for Behavior {
    fn default() -> Self {
        Behavior {
            default: Action::default(),
            script: Vec::new(),
            failure_ratio: 0.0,
            failure: Action {
                status: 503,
                ..Action::default()
            },
            seed: 42,
        }
    }
}

impl Behavior {
    /// Rejects what would make the upstream write an unparseable response, so a typo
    /// in a test shows up as a 400 from the control API rather than as a baffling
    /// client error later.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.failure_ratio) {
            return Err(format!(
                "failure_ratio must be within 0.0..=1.0, got {}",
                self.failure_ratio
            ));
        }
        let actions = [("default", &self.default), ("failure", &self.failure)]
            .into_iter()
            .map(|(name, action)| (name.to_owned(), action))
            .chain(
                self.script
                    .iter()
                    .enumerate()
                    .map(|(i, action)| (format!("script[{i}]"), action)),
            );
        for (name, action) in actions {
            action.validate().map_err(|e| format!("{name}.{e}"))?;
        }
        Ok(())
    }
}

/// One response, or one way of failing to give it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Action {
    /// The response status, written verbatim into the status line.
    pub status: u16,
    /// Delay before anything else happens, to trigger client timeouts.
    pub latency_ms: u64,
    /// Drop the connection instead of (or while) answering.
    pub reset: Option<Reset>,
    /// A `Retry-After` value, seconds or an HTTP date, for backoff tests.
    pub retry_after: Option<String>,
    /// A plain-text body replacing the default JSON echo of the request.
    pub body: Option<String>,
    /// Extra response headers. `Content-Length`, `Transfer-Encoding` and `Connection`
    /// are ignored: the server owns framing, and a wrong one would hang the client.
    pub headers: BTreeMap<String, String>,
    /// Answer with a chunked body of this many filler bytes, sent in 64 KiB chunks
    /// without a `Content-Length`, then close: a huge or (with a large value) practically
    /// endless body, for the clients' response-size limits. Writing stops when the
    /// client hangs up, or after 60 s.
    pub stream_body_bytes: Option<u64>,
}

impl Default for Action {
    fn default() -> Self {
        Action {
            status: 200,
            latency_ms: 0,
            reset: None,
            retry_after: None,
            body: None,
            headers: BTreeMap::new(),
            stream_body_bytes: None,
        }
    }
}

impl Action {
    fn validate(&self) -> Result<(), String> {
        if !(100..=999).contains(&self.status) {
            return Err(format!(
                "status must have three digits, got {}",
                self.status
            ));
        }
        let header_ok = |name: &str, value: &str| {
            !name.is_empty()
                && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
                && !value.contains(['\r', '\n'])
        };
        for (name, value) in &self.headers {
            if !header_ok(name, value) {
                return Err(format!("headers: invalid header {name:?}: {value:?}"));
            }
        }
        if let Some(value) = &self.retry_after {
            if !header_ok("retry-after", value) {
                return Err(format!("retry_after: invalid value {value:?}"));
            }
        }
        Ok(())
    }
}

/// Where in the exchange the connection is reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reset {
    /// After the request was read, before any response byte: the client cannot know
    /// whether the request took effect, which is the case retries must get right.
    BeforeHeaders,
    /// After the headers and part of a body that declared more: a truncated download.
    MidResponse,
}

/// A behaviour plus the state its choices consume (remaining script, generator).
pub(crate) struct Selector {
    behavior: Behavior,
    script: VecDeque<Action>,
    rng: SmallRng,
}

impl Selector {
    pub(crate) fn new(behavior: Behavior) -> Selector {
        Selector {
            script: behavior.script.iter().cloned().collect(),
            rng: SmallRng::seed_from_u64(behavior.seed),
            behavior,
        }
    }

    /// The action for the next request.
    pub(crate) fn next_action(&mut self) -> Action {
        if let Some(action) = self.script.pop_front() {
            return action;
        }
        // `random_bool` would panic outside 0..=1; a comparison just saturates.
        if self.rng.random::<f64>() < self.behavior.failure_ratio {
            self.behavior.failure.clone()
        } else {
            self.behavior.default.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statuses(behavior: Behavior, n: usize) -> Vec<u16> {
        let mut selector = Selector::new(behavior);
        (0..n).map(|_| selector.next_action().status).collect()
    }

    #[test]
    fn script_runs_before_default() {
        let behavior = Behavior {
            script: vec![
                Action {
                    status: 503,
                    ..Action::default()
                },
                Action {
                    status: 429,
                    ..Action::default()
                },
            ],
            ..Behavior::default()
        };
        assert_eq!(statuses(behavior, 4), [503, 429, 200, 200]);
    }

    #[test]
    fn failure_ratio_is_reproducible_from_the_seed() {
        let behavior = Behavior {
            failure_ratio: 0.5,
            ..Behavior::default()
        };
        let first = statuses(behavior.clone(), 200);
        assert_eq!(first, statuses(behavior, 200));
        assert!(first.contains(&503) && first.contains(&200));
    }

    #[test]
    fn ratio_extremes_are_all_or_nothing() {
        let always = Behavior {
            failure_ratio: 1.0,
            ..Behavior::default()
        };
        assert!(statuses(always, 50).iter().all(|s| *s == 503));
        assert!(statuses(Behavior::default(), 50).iter().all(|s| *s == 200));
    }

    #[test]
    fn json_defaults_and_unknown_fields() {
        let parsed: Behavior =
            serde_json::from_str(r#"{"default":{"reset":"mid_response"}}"#).expect("valid");
        assert_eq!(parsed.default.status, 200);
        assert_eq!(parsed.default.reset, Some(Reset::MidResponse));
        assert_eq!(parsed.failure.status, 503);
        assert_eq!(parsed.seed, 42);

        let err = serde_json::from_str::<Behavior>(r#"{"default":{"stauts":500}}"#)
            .expect_err("unknown field");
        assert!(err.to_string().contains("stauts"), "{err}");
    }

    #[test]
    fn validation_names_the_action() {
        let mut behavior = Behavior::default();
        behavior.script.push(Action {
            status: 42,
            ..Action::default()
        });
        let err = behavior.validate().expect_err("bad status");
        assert!(err.starts_with("script[0].status"), "{err}");
        assert!(Behavior::default().validate().is_ok());
    }
}
