//! Which new traces are sampled: `OTEL_TRACES_SAMPLER` (+ `OTEL_TRACES_SAMPLER_ARG`) as
//! the OpenTelemetry SDK environment specification defines them, or [`set_sampler`].
//!
//! Part of `trace` (the root context's flag is decided here); public as
//! `courierkit::telemetry::Sampler`. courier only decides for the traces it starts (a call without a parent); a context
//! handed in keeps its sampled flag, so every sampler acts as its `parentbased_` form:
//! courier's spans are always children of the caller's, and a flag courier flipped
//! mid-trace would split what the caller's SDK decided. The decision rides on the wire
//! (the `traceparent` flags), and only sampled spans are exported.

use std::sync::RwLock;
use std::sync::{OnceLock, PoisonError};

use crate::error::{Error, Result};

/// How the traces courier starts are sampled.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampler {
    /// Every new trace (the default, as `parentbased_always_on`).
    AlwaysOn,
    /// None.
    AlwaysOff,
    /// A fraction in 0..=1, decided from the trace id so every service agrees.
    TraceIdRatio(f64),
}

impl Sampler {
    /// The sampler the standard variables name; `AlwaysOn` when unset.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable for an unknown sampler or a ratio outside
    /// 0..=1.
    pub fn from_env() -> Result<Sampler> {
        let name = std::env::var("OTEL_TRACES_SAMPLER").unwrap_or_default();
        let arg = std::env::var("OTEL_TRACES_SAMPLER_ARG").ok();
        Sampler::parse(&name, arg.as_deref())
    }

    /// Parses a sampler name and argument as the variables spell them.
    ///
    /// # Errors
    /// As [`Sampler::from_env`].
    pub fn parse(name: &str, arg: Option<&str>) -> Result<Sampler> {
        Sampler::parse_as(
            name,
            arg,
            ["OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG"],
        )
    }

    /// Parses a sampler name and argument, an error naming `fields` (the name's, the
    /// argument's): the variables' names, or the settings' that stand in for them.
    pub(crate) fn parse_as(name: &str, arg: Option<&str>, fields: [&str; 2]) -> Result<Sampler> {
        let [name_field, arg_field] = fields;
        let ratio = || -> Result<f64> {
            let Some(arg) = arg.map(str::trim).filter(|a| !a.is_empty()) else {
                return Ok(1.0);
            };
            match arg.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(Error::config(
                    arg_field,
                    format!("{arg:?} is not a ratio between 0 and 1"),
                )),
            }
        };
        Ok(match name.trim() {
            "" | "always_on" | "parentbased_always_on" => Sampler::AlwaysOn,
            "always_off" | "parentbased_always_off" => Sampler::AlwaysOff,
            "traceidratio" | "parentbased_traceidratio" => Sampler::TraceIdRatio(ratio()?),
            other => {
                return Err(Error::config(
                    name_field,
                    format!(
                        "{other:?} is not one of always_on, always_off, traceidratio and \
                         their parentbased_ forms"
                    ),
                ));
            }
        })
    }

    /// Whether a new trace with this id is sampled. The ratio compares the id's last 8
    /// bytes (random in every W3C trace id) with the ratio's share of `u64`, as the
    /// OpenTelemetry SDKs' TraceIdRatioBased does, so services with the same ratio agree.
    pub fn samples(self, trace_id: &[u8; 16]) -> bool {
        match self {
            Sampler::AlwaysOn => true,
            Sampler::AlwaysOff => false,
            Sampler::TraceIdRatio(ratio) => {
                let mut low = [0u8; 8];
                low.copy_from_slice(&trace_id[8..]);
                let value = u64::from_be_bytes(low) >> 1;
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let bound = (ratio * (1u64 << 63) as f64) as u64;
                value < bound
            }
        }
    }
}

static SAMPLER: OnceLock<RwLock<Sampler>> = OnceLock::new();

fn cell() -> &'static RwLock<Sampler> {
    // An unreadable variable falls back to always_on here; `telemetry::install` and
    // `Settings::from_env` report it as a config error.
    SAMPLER.get_or_init(|| RwLock::new(Sampler::from_env().unwrap_or(Sampler::AlwaysOn)))
}

/// The sampler for traces courier starts.
pub fn sampler() -> Sampler {
    *cell().read().unwrap_or_else(PoisonError::into_inner)
}

/// Replaces the sampler for traces courier starts from now on.
pub fn set_sampler(sampler: Sampler) {
    *cell().write().unwrap_or_else(PoisonError::into_inner) = sampler;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_ratios_parse_and_bad_ones_name_the_variable() {
        assert_eq!(Sampler::parse("", None).unwrap(), Sampler::AlwaysOn);
        assert_eq!(
            Sampler::parse("parentbased_always_off", None).unwrap(),
            Sampler::AlwaysOff
        );
        assert_eq!(
            Sampler::parse("traceidratio", Some("0.25")).unwrap(),
            Sampler::TraceIdRatio(0.25)
        );
        let e = Sampler::parse("jaeger_remote", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("OTEL_TRACES_SAMPLER"), "{e}");
        let e = Sampler::parse("traceidratio", Some("2"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("OTEL_TRACES_SAMPLER_ARG"), "{e}");
    }

    #[test]
    fn a_ratio_samples_about_its_share_of_random_ids() {
        let sampler = Sampler::TraceIdRatio(0.25);
        let sampled = (0..4000)
            .filter(|_| sampler.samples(&rand::random()))
            .count();
        assert!((800..1200).contains(&sampled), "{sampled} of 4000");
        assert!(!Sampler::AlwaysOff.samples(&[7; 16]));
        assert!(Sampler::TraceIdRatio(1.0).samples(&[0xff; 16]));
    }
}
