//! Core errors to JavaScript `Error`s with a stable `code` (`COURIER_TIMEOUT`, ...).
//!
//! The error object is built here, with `code`, `kind` and (for config errors) `field`
//! and `reason` as properties, and handed to napi as the value to throw or reject
//! with, so callers branch on `err.code` instead of parsing messages.

use napi::bindgen_prelude::*;

/// The `err.code` for a core error kind: `COURIER_` and core's code in upper case, for
/// every kind (`budget_exhausted` → `COURIER_BUDGET_EXHAUSTED`).
pub(crate) fn code(kind: courierkit::ErrorKind) -> String {
    format!("COURIER_{}", kind.code().to_ascii_uppercase())
}

/// Builds the JavaScript error for `err`; falls back to a plain error if the engine
/// refuses to allocate (napi is then failing anyway).
pub(crate) fn to_js(env: &Env, err: courierkit::Error) -> Error {
    build(env, &err).unwrap_or_else(|e| e)
}

fn build(env: &Env, err: &courierkit::Error) -> Result<Error> {
    Ok(Error::from(error_object(env, err)?.to_unknown()))
}

/// The JavaScript error object for `err`, as a value: thrown by [`to_js`], or kept in a
/// result (`publishMany`'s rejected entries).
pub(crate) fn error_object<'env>(env: &'env Env, err: &courierkit::Error) -> Result<Object<'env>> {
    let mut obj = env.create_error(Error::new(Status::GenericFailure, err.to_string()))?;
    obj.set_named_property("code", code(err.kind()))?;
    obj.set_named_property("kind", err.kind().code())?;
    // Every field of core's table, in camelCase: the same fields in every language.
    for (name, detail) in err.details() {
        let name = camel_case(name);
        match detail {
            courierkit::Detail::Text(text) => obj.set_named_property(&name, text)?,
            // Counts are at most a u64 of bytes or milliseconds; JavaScript numbers
            // are exact to 2^53, far above any limit courier accepts.
            courierkit::Detail::Count(count) => obj.set_named_property(&name, count as f64)?,
        }
    }
    if let Some(last) = err.cause() {
        // The failure the budget would not retry, as the standard `cause`.
        let cause = error_object(env, last)?;
        obj.set_named_property("cause", cause)?;
    }
    Ok(obj)
}

/// `retry_after_ms` → `retryAfterMs`.
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
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
