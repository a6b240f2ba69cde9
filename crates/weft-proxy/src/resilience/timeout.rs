//! A future bounded by an optional time limit, holding the inner future once: awaiting it
//! bare in one branch and inside `tokio::time::Timeout` in another made the enclosing
//! async fn keep room for both, and moving that state cost a copy of kilobytes a request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

pin_project! {
    pub struct MaybeTimeout<F> {
        #[pin]
        inner: F,
        #[pin]
        limit: Option<Sleep>,
    }
}

/// `inner`, given up on at `at` (never, when `None`): `Err(())` means the time ran out.
pub fn maybe_timeout<F: Future>(at: Option<Instant>, inner: F) -> MaybeTimeout<F> {
    MaybeTimeout {
        inner,
        limit: at.map(tokio::time::sleep_until),
    }
}

impl<F: Future> Future for MaybeTimeout<F> {
    type Output = Result<F::Output, ()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(v) = this.inner.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match this.limit.as_pin_mut().map(|sleep| sleep.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(())),
            _ => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn without_a_limit_it_waits_and_with_one_it_gives_up() {
        let short = tokio::time::sleep(Duration::from_millis(30));
        assert_eq!(maybe_timeout(None, short).await, Ok(()));
        let slow = tokio::time::sleep(Duration::from_secs(30));
        let started = Instant::now();
        let at = started + Duration::from_millis(20);
        assert_eq!(maybe_timeout(Some(at), slow).await, Err(()));
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
