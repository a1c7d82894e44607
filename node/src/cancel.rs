//! `CancelToken`: how an `AbortSignal` reaches the Rust future.
//!
//! index.js creates a token per operation that has a `signal` (a call, a publish, a
//! request, a consumer's `next`...), and cancels it when the signal aborts; the
//! operation's future is then dropped on core's runtime, which releases what it held (a
//! call's concurrency slot and breaker probe, a request's reply correlation, a publish's
//! unconfirmed slot) and leaves a consumer's delivery for its next `next`: nothing keeps
//! running for a caller that gave up.

use std::future::Future;

use courierkit::runtime;
use napi_derive::napi;

#[napi]
#[derive(Default)]
pub struct CancelToken {
    inner: runtime::CancelToken,
}

#[napi]
impl CancelToken {
    #[napi(constructor)]
    pub fn new() -> Self {
        CancelToken::default()
    }

    #[napi]
    pub fn cancel(&self) {
        self.inner.cancel();
    }
}

/// `fut`, or an error as soon as `token` is cancelled (dropping `fut`). The JavaScript
/// caller has already rejected with the signal's reason by then; this error is ignored.
pub(crate) fn cancellable<T, F>(
    token: Option<&CancelToken>,
    fut: F,
) -> impl Future<Output = courierkit::Result<T>> + Send + 'static
where
    F: Future<Output = courierkit::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    runtime::cancellable(
        token.map(|t| t.inner.clone()),
        "operation (aborted by its AbortSignal)",
        fut,
    )
}
