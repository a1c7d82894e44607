//! W3C trace context: `traceparent`, `tracestate` and `baggage`, parsed and written by
//! courier itself.
//!
//! Stock propagators fail parts of the W3C conformance suite (future versions,
//! repeated headers, tracestate limits), so courier follows the specifications to the
//! letter here: Trace Context Level 2 (<https://www.w3.org/TR/trace-context-2/>) and
//! Baggage (<https://www.w3.org/TR/baggage/>). Each rule is cited where it is coded.

mod baggage;
mod context;
#[cfg(feature = "telemetry")]
pub(crate) mod export;
mod sampler;
mod traceparent;
mod tracestate;

pub use baggage::Baggage;
pub use context::TraceContext;
#[cfg(feature = "telemetry")]
pub use export::OtlpLayer;
pub use sampler::{Sampler, sampler, set_sampler};
pub use tracestate::TraceState;

#[cfg(test)]
mod properties {
    //! Randomized inputs from a seeded generator (reproducible): no input panics, and
    //! what courier writes parses back to the same thing.
    use rand::rngs::SmallRng;
    use rand::{RngExt, SeedableRng};

    use super::*;

    /// Strings biased toward the characters these grammars care about.
    fn arbitrary(rng: &mut SmallRng) -> String {
        const ALPHABET: &[char] = &[
            '0', '1', 'a', 'f', 'F', 'z', '-', '=', ',', ';', '%', ' ', '\t', '@', '*', '/', '_',
            '"', 'é', '\u{0}',
        ];
        let len = rng.random_range(0..80);
        (0..len)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
            .collect()
    }

    #[test]
    fn arbitrary_headers_never_panic_and_written_headers_round_trip() {
        let mut rng = SmallRng::seed_from_u64(0x5eed);
        for _ in 0..20_000 {
            let (a, b, c) = (
                arbitrary(&mut rng),
                arbitrary(&mut rng),
                arbitrary(&mut rng),
            );
            let ctx = TraceContext::extract(&[&a], &[&b], &[&c]);
            let carrier = ctx.to_carrier();
            let again = TraceContext::from_carrier(&carrier);
            assert_eq!(again, ctx, "round trip of {carrier:?}");
            if let Some(ts) = TraceState::parse([b.as_str()]) {
                assert_eq!(TraceState::parse([ts.header().as_str()]), Some(ts));
            }
        }
    }
}
