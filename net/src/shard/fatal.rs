//! Shard panics abort the process: [`AbortOnUnwind`], [`Fatal`] and [`spawn_fatal`].

use std::{future::Future, task::Poll};

/// Aborts the process when dropped during a panic (see [`Fatal`]).
pub(super) struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("warppool-net: panic on a shard thread (see above); aborting");
            std::process::abort();
        }
    }
}

/// A future whose panics abort the process. compio catches a panic inside a spawned task
/// and drops the task, which would leave the shard running with a connection slot that is
/// never freed and a violated assertion unnoticed; a shard panic is a programmer error, so
/// it crashes instead (STYLE rules 8 and 9).
pub(super) struct Fatal<F>(std::pin::Pin<Box<F>>);

impl<F: Future> Future for Fatal<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<F::Output> {
        let guard = AbortOnUnwind;
        let result = self.0.as_mut().poll(cx);
        std::mem::forget(guard);
        result
    }
}

/// Spawns a task on the shard's runtime; a panic in it aborts the process (see [`Fatal`]).
pub(super) fn spawn_fatal<F: Future + 'static>(
    future: F,
) -> compio::runtime::JoinHandle<F::Output> {
    compio::runtime::spawn(Fatal(Box::pin(future)))
}
