//! Core errors to JavaScript `Error`s with a stable `code` (`COURIER_TIMEOUT`, ...).
//!
//! The error object is built here, with `code`, `kind` and (for config errors) `field`
//! and `reason` as properties, and handed to napi as the value to throw or reject
//! with, so callers branch on `err.code` instead of parsing messages.

use napi::bindgen_prelude::*;

/// The `err.code` for a core error kind.
pub(crate) fn code(kind: courierkit::ErrorKind) -> String {
    let code = match kind {
        courierkit::ErrorKind::BudgetExhausted => "budget",
        other => other.code(),
    };
    format!("COURIER_{}", code.to_ascii_uppercase())
}

/// Builds the JavaScript error for `err`; falls back to a plain error if the engine
/// refuses to allocate (napi is then failing anyway).
pub(crate) fn to_js(env: &Env, err: courierkit::Error) -> Error {
    build(env, &err).unwrap_or_else(|e| e)
}

fn build(env: &Env, err: &courierkit::Error) -> Result<Error> {
    let mut obj = env.create_error(Error::new(Status::GenericFailure, err.to_string()))?;
    obj.set_named_property("code", code(err.kind()))?;
    obj.set_named_property("kind", err.kind().code())?;
    match err {
        courierkit::Error::Config { field, reason } => {
            obj.set_named_property("field", field.as_str())?;
            obj.set_named_property("reason", reason.as_str())?;
        }
        courierkit::Error::CircuitOpen { retry_after, .. } => {
            obj.set_named_property("retryAfterMs", retry_after.as_millis() as f64)?;
        }
        courierkit::Error::LimitExceeded { limit, max, .. } => {
            obj.set_named_property("limit", *limit)?;
            obj.set_named_property("max", *max as f64)?;
        }
        courierkit::Error::BudgetExhausted { attempts, last, .. } => {
            obj.set_named_property("attempts", *attempts)?;
            // The failure the budget would not retry, as the standard `cause`.
            let mut cause =
                env.create_error(Error::new(Status::GenericFailure, last.to_string()))?;
            cause.set_named_property("code", code(last.kind()))?;
            cause.set_named_property("kind", last.kind().code())?;
            obj.set_named_property("cause", cause)?;
        }
        _ => {}
    }
    Ok(Error::from(obj.to_unknown()))
}

/// `map_err` for synchronous methods, which throw.
pub(crate) trait OrThrow<T> {
    fn or_throw(self, env: &Env) -> Result<T>;
}

impl<T> OrThrow<T> for courierkit::Result<T> {
    fn or_throw(self, env: &Env) -> Result<T> {
        self.map_err(|e| to_js(env, e))
    }
}
