//! The timers that hold requests to their deadlines, kept for reuse. Nearly every request
//! has a deadline and nearly none reaches it, and a fresh tokio timer is a locked
//! timer-wheel insertion at its first poll and a removal at its drop. A kept timer is still
//! registered: moving it to a later deadline is one atomic exchange, and the wheel re-files
//! it only when its old deadline comes round.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Instant;

use pin_project_lite::pin_project;
use tokio::time::Sleep;

/// Timers kept at most. A kept timer may still hold the waker of the last task that waited
/// on it (a few hundred bytes of finished task); more than the requests usually in flight
/// at once would keep memory for nothing.
const KEEP: usize = 256;

/// One proxy's spare timers; they belong to its runtime, so no other may take them.
#[derive(Default)]
pub struct Timers {
    spare: Mutex<Vec<Pin<Box<Sleep>>>>,
}

impl Timers {
    /// `work`, bounded by `at` (when there is one): it yields `None` if `at` passes first.
    pub fn bound<F: Future>(&self, at: Option<Instant>, work: F) -> WithDeadline<'_, F> {
        WithDeadline {
            work,
            at,
            timer: None,
            timers: self,
        }
    }

    fn take(&self, at: tokio::time::Instant) -> Pin<Box<Sleep>> {
        let spare = self.spare.lock().ok().and_then(|mut s| s.pop());
        match spare {
            Some(mut timer) => {
                timer.as_mut().reset(at);
                timer
            }
            None => Box::pin(tokio::time::sleep_until(at)),
        }
    }

    fn give_back(&self, timer: Pin<Box<Sleep>>) {
        if let Ok(mut spare) = self.spare.lock() {
            if spare.len() < KEEP {
                spare.push(timer);
            }
        }
    }
}

pin_project! {
    /// A request's work and its deadline. The timer is taken at the first poll that finds
    /// the work waiting (most requests wait for their answer at least once), and given back
    /// when this is dropped.
    pub struct WithDeadline<'a, F> {
        #[pin]
        work: F,
        at: Option<Instant>,
        timer: Option<Pin<Box<Sleep>>>,
        timers: &'a Timers,
    }

    impl<'a, F> PinnedDrop for WithDeadline<'a, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(timer) = this.timer.take() {
                this.timers.give_back(timer);
            }
        }
    }
}

impl<F: Future> Future for WithDeadline<'_, F> {
    type Output = Option<F::Output>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(out) = this.work.poll(cx) {
            return Poll::Ready(Some(out));
        }
        let Some(at) = *this.at else {
            return Poll::Pending;
        };
        let timers = *this.timers;
        let timer = this.timer.get_or_insert_with(|| timers.take(at.into()));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Waits on a request that never answers, bounded by `timers` to `left` from now, and
    /// says how long it took.
    async fn stall(timers: &Timers, left: Duration) -> Duration {
        let started = Instant::now();
        let ended = timers
            .bound(Some(started + left), std::future::pending::<()>())
            .await;
        assert_eq!(ended, None);
        started.elapsed()
    }

    #[tokio::test]
    async fn a_kept_timer_ends_each_request_at_that_requests_deadline() {
        let timers = Timers::default();
        // A request answered in time leaves its timer, still set for 40 ms ahead.
        let answered = timers
            .bound(Some(Instant::now() + Duration::from_millis(40)), async {
                tokio::task::yield_now().await;
                7
            })
            .await;
        assert_eq!(answered, Some(7));
        assert_eq!(timers.spare.lock().unwrap().len(), 1);
        // The next request's later deadline moves it on: the old one must not end it.
        let took = stall(&timers, Duration::from_millis(80)).await;
        assert!(took >= Duration::from_millis(79), "{took:?}");
        // A timer that has gone off is set again.
        let took = stall(&timers, Duration::from_millis(30)).await;
        assert!(took >= Duration::from_millis(29), "{took:?}");
        // A timer kept while set far ahead still ends a nearer deadline on time.
        let far = Instant::now() + Duration::from_secs(60);
        let answered = timers
            .bound(Some(far), async {
                tokio::task::yield_now().await;
                1
            })
            .await;
        assert_eq!(answered, Some(1));
        let took = stall(&timers, Duration::from_millis(30)).await;
        assert!(
            took >= Duration::from_millis(29) && took < Duration::from_secs(10),
            "{took:?}"
        );
        assert_eq!(timers.spare.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn no_more_than_the_limit_are_kept() {
        let timers = Timers::default();
        let far = Instant::now() + Duration::from_secs(60);
        let mut waiting: Vec<_> = (0..KEEP + 10)
            .map(|_| Box::pin(timers.bound(Some(far), std::future::pending::<()>())))
            .collect();
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        for w in &mut waiting {
            assert!(w.as_mut().poll(&mut cx).is_pending());
        }
        drop(waiting);
        assert_eq!(timers.spare.lock().unwrap().len(), KEEP);
    }
}
