//! [`CancelToken`]: how a Swift task's cancellation reaches the core future.
//!
//! uniffi 0.32's Swift bindings do not forward `Task` cancellation: a cancelled task
//! would wait for its call to end. So the Swift wrappers (Cancellation.swift) make a
//! token per operation, pass it as `cancel`, and cancel it from
//! `withTaskCancellationHandler`; core then drops the operation's future, which releases
//! what it held. Kotlin needs none (a cancelled coroutine drops the future) but may pass
//! one, to cancel from a thread that is not the caller's.

use std::future::Future;
use std::sync::Arc;

use courierkit::runtime;

/// Cancels the operations it is passed to, when `cancel()` is called.
#[derive(Debug, Default, uniffi::Object)]
pub struct CancelToken {
    inner: runtime::CancelToken,
}

#[uniffi::export]
impl CancelToken {
    /// A token not cancelled yet.
    #[uniffi::constructor]
    pub fn new() -> Self {
        Self::default()
    }

    /// Cancels every operation given this token: each fails with `Closed`, and what it
    /// held is released (a call's concurrency slot, a request's reply correlation, a
    /// publish's unconfirmed slot; a `next` leaves its delivery for the next one).
    pub fn cancel(&self) {
        self.inner.cancel();
    }

    /// Whether `cancel()` was called.
    pub fn is_cancelled(&self) -> bool {
        self.inner.is_cancelled()
    }
}

/// `fut`, ended with `Closed` when `token` is cancelled.
pub(crate) async fn cancellable<T>(
    token: Option<Arc<CancelToken>>,
    fut: impl Future<Output = courierkit::Result<T>>,
) -> courierkit::Result<T> {
    let token = token.map(|t| t.inner.clone());
    runtime::cancellable(token, "operation (its task was cancelled)", fut).await
}
