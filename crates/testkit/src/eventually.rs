//! Waiting without fixed sleeps: ask again until a deadline, and keep what was seen last, so a
//! time-out says what was there instead of what was expected.
//!
//! ```no_run
//! # async fn demo() -> Result<(), otel_testkit::eventually::TimedOut> {
//! use std::time::{Duration, Instant};
//! let sent = Instant::now();
//! let visible = otel_testkit::eventually("span stored", sent, Duration::from_secs(30), || async {
//!     anyhow::ensure!(false, "trace not found yet");
//!     Ok(())
//! })
//! .await?;
//! println!("visible after {:?}", visible.after);
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::{Duration, Instant};

use backon::Retryable as _;

/// How soon a probe is asked again. Short: a backend answers a query in milliseconds, and
/// time-to-visible figures should not be rounded up to a long interval.
pub const INTERVAL: Duration = Duration::from_millis(250);
/// How often a progress line goes to stderr while a probe is still failing.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// A probe that passed: its value and the time from `since` to the attempt that passed.
#[derive(Debug, Clone, PartialEq)]
pub struct Visible<T> {
    pub value: T,
    /// Time to visible: from `since` to the end of the first attempt that passed.
    pub after: Duration,
}

/// A probe that did not pass before its deadline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what}: not seen within {:.1}s; last seen: {last_seen}", waited.as_secs_f64())]
pub struct TimedOut {
    pub what: String,
    /// From `since` to the last attempt.
    pub waited: Duration,
    /// What the last attempt saw: the `Err` it returned, formatted with `{:#}` (with its causes).
    pub last_seen: String,
}

/// Calls `probe` until it returns `Ok`, or until `deadline` has passed since `since`; an `Err`
/// means "not yet" and says what was seen. The first attempt runs at once, the next ones
/// [`INTERVAL`] apart, and at least one runs even when the deadline has passed already.
///
/// Time already spent before the call is read from the system clock; from the call on, time is
/// Tokio's, so tests under `tokio::time::pause()` run without waiting.
pub async fn eventually<T, F, Fut>(
    what: &str,
    since: Instant,
    deadline: Duration,
    probe: F,
) -> Result<Visible<T>, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    eventually_every(INTERVAL, what, since, deadline, probe).await
}

/// [`eventually`] with attempts `interval` apart: for measurements finer than [`INTERVAL`].
pub async fn eventually_every<T, F, Fut>(
    interval: Duration,
    what: &str,
    since: Instant,
    deadline: Duration,
    probe: F,
) -> Result<Visible<T>, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let before = since.elapsed();
    let called = tokio::time::Instant::now();
    let elapsed = move || before + called.elapsed();
    let mut last_progress = Duration::ZERO;
    let backoff = backon::ConstantBuilder::new()
        .with_delay(interval)
        .without_max_times();
    match probe
        .retry(backoff)
        .when(|_| elapsed() < deadline)
        .notify(|err, _| {
            if elapsed() - last_progress >= PROGRESS_EVERY {
                last_progress = elapsed();
                eprintln!(
                    "  .. {what}: still waiting after {:.1}s; last seen: {err:#}",
                    elapsed().as_secs_f64()
                );
            }
        })
        .await
    {
        Ok(value) => Ok(Visible {
            value,
            after: elapsed(),
        }),
        Err(err) => Err(TimedOut {
            what: what.to_owned(),
            waited: elapsed(),
            last_seen: format!("{err:#}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// Equal up to the real time the test itself takes before the call (the clock is paused).
    fn about(measured: Duration, expected: Duration) -> bool {
        measured >= expected && measured - expected < Duration::from_millis(50)
    }

    /// A probe that passes on its third attempt is visible after two intervals.
    #[tokio::test(start_paused = true)]
    async fn passes_once_the_probe_does() {
        let attempts = AtomicU32::new(0);
        let visible = eventually(
            "third time",
            Instant::now(),
            Duration::from_secs(5),
            || async {
                let attempt = attempts.fetch_add(1, Ordering::Relaxed) + 1;
                anyhow::ensure!(attempt >= 3, "attempt {attempt}");
                Ok(attempt)
            },
        )
        .await
        .unwrap();
        assert_eq!(visible.value, 3);
        assert!(about(visible.after, 2 * INTERVAL), "{:?}", visible.after);
    }

    /// A probe that never passes times out at the deadline with its last error, causes included.
    #[tokio::test(start_paused = true)]
    async fn times_out_with_what_was_seen_last() {
        let attempts = AtomicU32::new(0);
        let deadline = Duration::from_secs(2);
        let timed_out = eventually("never", Instant::now(), deadline, || async {
            let attempt = attempts.fetch_add(1, Ordering::Relaxed) + 1;
            Err::<(), _>(anyhow::anyhow!("attempt {attempt}").context("not found"))
        })
        .await
        .unwrap_err();
        let attempts = attempts.load(Ordering::Relaxed);
        assert_eq!(attempts, 9, "one at once, then one every 250 ms up to 2 s");
        assert_eq!(timed_out.what, "never");
        assert!(about(timed_out.waited, deadline), "{:?}", timed_out.waited);
        assert_eq!(
            timed_out.last_seen,
            format!("not found: attempt {attempts}")
        );
        assert_eq!(
            timed_out.to_string(),
            "never: not seen within 2.0s; last seen: not found: attempt 9"
        );
    }

    /// A finer interval means more attempts in the same time.
    #[tokio::test(start_paused = true)]
    async fn attempts_follow_the_interval() {
        let attempts = AtomicU32::new(0);
        let interval = Duration::from_millis(25);
        let deadline = Duration::from_millis(100);
        eventually_every(interval, "fine", Instant::now(), deadline, || async {
            attempts.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(anyhow::anyhow!("no"))
        })
        .await
        .unwrap_err();
        assert_eq!(attempts.load(Ordering::Relaxed), 5);
    }

    /// Time spent before the call counts: a deadline already passed still gets one attempt.
    #[tokio::test(start_paused = true)]
    async fn a_passed_deadline_still_gets_one_attempt() {
        let attempts = AtomicU32::new(0);
        let since = Instant::now() - Duration::from_secs(60);
        let timed_out = eventually("late", since, Duration::from_secs(1), || async {
            attempts.fetch_add(1, Ordering::Relaxed);
            Err::<(), _>(anyhow::anyhow!("no"))
        })
        .await
        .unwrap_err();
        assert_eq!(attempts.load(Ordering::Relaxed), 1);
        assert!(timed_out.waited >= Duration::from_secs(60));
    }
}
