//! [`TraceContext`]: the W3C context a call or message carries.

use std::collections::BTreeMap;

use rand::RngExt;

use super::baggage::Baggage;
use super::traceparent::{self, RANDOM, SAMPLED, TraceParent};
use super::tracestate::TraceState;
use crate::error::{Error, Result};

/// A position in a distributed trace: trace-id, this span's id, flags, the vendors'
/// `tracestate` and the application's `baggage`.
///
/// # Examples
/// ```
/// use courierkit::TraceContext;
/// let parent = TraceContext::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", None).unwrap();
/// let child = parent.child();
/// assert_eq!(child.trace_id(), parent.trace_id());
/// assert_ne!(child.span_id(), parent.span_id());
/// assert_eq!(child.to_carrier()["traceparent"].len(), 55);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    parent: TraceParent,
    tracestate: TraceState,
    baggage: Baggage,
}

impl TraceContext {
    /// A new trace: random ids, sampled as the [`Sampler`](super::Sampler)
    /// decides (every trace by default), and the Level 2 random flag set (the
    /// trace-id is random, so downstream samplers may rely on it).
    pub fn new_root() -> TraceContext {
        let mut rng = rand::rng();
        let trace_id: [u8; 16] = loop {
            let id: [u8; 16] = rng.random();
            if id != [0; 16] {
                break id;
            }
        };
        let sampled = if super::sampler::sampler().samples(&trace_id) {
            SAMPLED
        } else {
            0
        };
        TraceContext {
            parent: TraceParent {
                trace_id,
                parent_id: new_span_id(),
                flags: sampled | RANDOM,
            },
            tracestate: TraceState::default(),
            baggage: Baggage::default(),
        }
    }

    /// Parses a `traceparent` (and optional `tracestate`). An invalid tracestate is
    /// dropped, the context kept.
    ///
    /// # Errors
    /// [`Error::Config`] naming `traceparent` when it is not a valid W3C traceparent.
    pub fn parse(traceparent: &str, tracestate: Option<&str>) -> Result<TraceContext> {
        let parent = traceparent::parse(traceparent).ok_or_else(|| {
            Error::config(
                "traceparent",
                format!("not a valid W3C traceparent: {traceparent:?}"),
            )
        })?;
        Ok(TraceContext {
            parent,
            tracestate: tracestate
                .and_then(|ts| TraceState::parse([ts]))
                .unwrap_or_default(),
            baggage: Baggage::default(),
        })
    }

    /// Extracts from header values as received (each header may repeat). A missing,
    /// repeated or invalid traceparent starts a new trace and drops the tracestate
    /// (Trace Context section 4.3); baggage is independent and always kept.
    pub fn extract<'a>(
        traceparents: &[&'a str],
        tracestates: &[&'a str],
        baggages: &[&'a str],
    ) -> TraceContext {
        let baggage = Baggage::parse(baggages.iter().copied());
        let parent = match traceparents {
            [one] => traceparent::parse(one),
            _ => None,
        };
        match parent {
            Some(parent) => TraceContext {
                parent,
                tracestate: TraceState::parse(tracestates.iter().copied()).unwrap_or_default(),
                baggage,
            },
            None => TraceContext {
                baggage,
                ..TraceContext::new_root()
            },
        }
    }

    /// Extracts from a carrier (`traceparent`, `tracestate`, `baggage`; keys compared
    /// case-insensitively, as HTTP header names are): any map or list of string pairs,
    /// which is what every binding and AMQP header table hands over.
    pub fn from_carrier<K: AsRef<str>, V: AsRef<str>>(
        carrier: impl IntoIterator<Item = (K, V)>,
    ) -> TraceContext {
        let pairs: Vec<(K, V)> = carrier.into_iter().collect();
        let (mut tp, mut ts, mut bg) = (Vec::new(), Vec::new(), Vec::new());
        for (k, v) in &pairs {
            let (k, v) = (k.as_ref(), v.as_ref());
            if k.eq_ignore_ascii_case("traceparent") {
                tp.push(v);
            } else if k.eq_ignore_ascii_case("tracestate") {
                ts.push(v);
            } else if k.eq_ignore_ascii_case("baggage") {
                bg.push(v);
            }
        }
        TraceContext::extract(&tp, &ts, &bg)
    }

    /// The same trace with a new span id: what one hop (an HTTP attempt, a publish)
    /// sends downstream.
    pub fn child(&self) -> TraceContext {
        TraceContext {
            parent: TraceParent {
                parent_id: new_span_id(),
                ..self.parent
            },
            ..self.clone()
        }
    }

    /// The trace-id, 32 lowercase hex digits.
    pub fn trace_id(&self) -> String {
        hex(&self.parent.trace_id)
    }

    /// This span's id, 16 lowercase hex digits.
    pub fn span_id(&self) -> String {
        hex(&self.parent.parent_id)
    }

    /// Whether the trace is sampled.
    pub fn sampled(&self) -> bool {
        self.parent.flags & SAMPLED != 0
    }

    /// The `traceparent` header value (version 00).
    pub fn traceparent(&self) -> String {
        traceparent::format(&self.parent)
    }

    /// The vendors' `tracestate`.
    pub fn tracestate(&self) -> &TraceState {
        &self.tracestate
    }

    /// The application's `baggage`.
    pub fn baggage(&self) -> &Baggage {
        &self.baggage
    }

    /// Mutable baggage, to add entries before a call.
    pub fn baggage_mut(&mut self) -> &mut Baggage {
        &mut self.baggage
    }

    /// The headers to send: `traceparent`, and `tracestate` / `baggage` when non-empty.
    pub fn to_carrier(&self) -> BTreeMap<String, String> {
        let mut carrier = BTreeMap::from([("traceparent".to_owned(), self.traceparent())]);
        if !self.tracestate.is_empty() {
            carrier.insert("tracestate".to_owned(), self.tracestate.header());
        }
        if !self.baggage.is_empty() {
            carrier.insert("baggage".to_owned(), self.baggage.header());
        }
        carrier
    }
}

fn new_span_id() -> [u8; 8] {
    let mut rng = rand::rng();
    loop {
        let id: [u8; 8] = rng.random();
        if id != [0; 8] {
            return id;
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    traceparent::push_hex(&mut out, bytes);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn an_invalid_traceparent_is_a_config_error_naming_it() {
        let e = TraceContext::parse("00-bad", None).unwrap_err();
        assert_eq!(e.kind(), crate::error::ErrorKind::Config);
        assert_eq!(
            e.to_string(),
            "traceparent: not a valid W3C traceparent: \"00-bad\""
        );
        assert!(TraceContext::parse(TP, Some("not a tracestate")).is_ok());
    }

    #[test]
    fn a_new_root_is_valid_sampled_and_random() {
        let root = TraceContext::new_root();
        let reparsed = TraceContext::parse(&root.traceparent(), None).unwrap();
        assert_eq!(reparsed, root);
        assert!(root.traceparent().ends_with("-03"), "sampled and random");
    }

    #[test]
    fn invalid_or_repeated_traceparent_starts_a_new_trace_and_drops_tracestate() {
        let fresh = TraceContext::extract(&["00-bad"], &["a=1"], &["k=v"]);
        assert!(fresh.tracestate().is_empty());
        assert_eq!(
            fresh.baggage().get("k"),
            Some("v"),
            "baggage is independent"
        );
        let twice = TraceContext::extract(&[TP, TP], &["a=1"], &[]);
        assert_ne!(
            twice.trace_id(),
            "4bf92f3577b34da6a3ce929d0e0e4736",
            "repeated headers are invalid"
        );
        let ok = TraceContext::extract(&[TP], &["a=1", "b=2"], &[]);
        assert_eq!(ok.trace_id(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ok.tracestate().header(), "a=1,b=2");
    }

    #[test]
    fn children_keep_trace_and_flags_with_new_span_ids() {
        let parent = TraceContext::from_carrier([("TraceParent", TP), ("tracestate", "v=1")]);
        let (a, b) = (parent.child(), parent.child());
        assert_eq!((a.trace_id(), a.sampled()), (parent.trace_id(), true));
        assert_ne!(a.span_id(), b.span_id());
        assert_eq!(
            a.to_carrier().get("tracestate").map(String::as_str),
            Some("v=1")
        );
    }

    /// The W3C Trace Context test suite's tracestate cases (github.com/w3c/trace-context,
    /// test/test.py, SPEC_LEVEL=2 STRICT_LEVEL=2), as its harness drives a service: these
    /// headers in, the carrier of the next hop out. Repeated headers stay separate pairs.
    mod w3c_suite {
        use super::*;

        const SUITE_TP: &str = "00-12345678901234567890123456789012-1234567890123456-00";
        const SUITE_TRACE_ID: &str = "12345678901234567890123456789012";

        /// The `tracestate` the next hop sends (None when it sends none), after checking
        /// that the trace continued.
        fn hop(tracestates: &[&str]) -> Option<String> {
            let mut headers = vec![("traceparent", SUITE_TP)];
            headers.extend(tracestates.iter().map(|ts| ("tracestate", *ts)));
            let out = TraceContext::from_carrier(headers).child();
            assert_eq!(out.trace_id(), SUITE_TRACE_ID, "{tracestates:?}");
            out.to_carrier().remove("tracestate")
        }

        #[test]
        fn test_tracestate_duplicated_keys() {
            // The suite: 'foo=1' in the output, or for different values 'foo=1' or
            // 'foo=2'. Courier keeps the first member of a repeated key.
            assert_eq!(hop(&["foo=1,foo=1"]).as_deref(), Some("foo=1"));
            assert_eq!(hop(&["foo=1,foo=2"]).as_deref(), Some("foo=1"));
            assert_eq!(hop(&["foo=1", "foo=1"]).as_deref(), Some("foo=1"));
            assert_eq!(hop(&["foo=1", "foo=2"]).as_deref(), Some("foo=1"));
        }

        #[test]
        fn test_tracestate_key_illegal_vendor_format() {
            // Keys that follow the key grammar are inherited, with the other members.
            for ts in ["foo@=1,bar=2", "foo@@bar=1,bar=2", "foo@bar@baz=1,bar=2"] {
                assert_eq!(hop(&[ts]).as_deref(), Some(ts));
            }
            // A key that starts with an at sign discards the tracestate ('bar' absent).
            assert_eq!(hop(&["@foo=1,bar=2"]), None);
        }

        #[test]
        fn test_tracestate_key_length_limit() {
            // Keys of at most 256 characters, at signs anywhere after the first, are inherited
            // with 'foo'.
            for key in [
                "z".repeat(256),
                format!("{}@{}", "t".repeat(241), "v".repeat(14)),
                format!("{}@v", "t".repeat(242)),
                format!("t@{}", "v".repeat(15)),
            ] {
                let second = format!("{key}=1");
                assert_eq!(
                    hop(&["foo=1", &second]),
                    Some(format!("foo=1,{key}=1")),
                    "{} characters",
                    key.len()
                );
            }
            // A key of 257 characters discards the tracestate ('foo' absent).
            assert_eq!(hop(&["foo=1", &format!("{}=1", "z".repeat(257))]), None);
        }
    }
}
