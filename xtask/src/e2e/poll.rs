//! Waiting without fixed sleeps: ask again until a deadline, and keep what was seen last, so a
//! time-out can say what was there instead of what was expected.

use std::future::Future;
use std::time::{Duration, Instant};

/// How soon a check is asked again. Short: every backend answers a query in milliseconds here,
/// and the time-to-visible figures should not be rounded up to a long interval.
const INTERVAL: Duration = Duration::from_millis(250);
/// How often a progress line is printed while a check is still waiting.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// A check that did not pass before its deadline.
#[derive(Debug, Clone)]
pub struct TimedOut {
    /// What the last attempt saw (the `Err` it returned).
    pub last_seen: String,
}

/// Calls `probe` until it returns `Ok`, or until `deadline` has passed since `since`. An `Err`
/// from `probe` means "not yet" and describes what was seen. On success, returns the value and
/// the time from `since` to the first attempt that passed (the signal's time-to-visible).
pub async fn until<T, F, Fut>(
    label: &str,
    since: Instant,
    deadline: Duration,
    mut probe: F,
) -> Result<(T, Duration), TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut last_progress = Instant::now();
    loop {
        let last_seen = match probe().await {
            Ok(value) => return Ok((value, since.elapsed())),
            Err(err) => format!("{err:#}"),
        };
        if since.elapsed() >= deadline {
            return Err(TimedOut { last_seen });
        }
        if last_progress.elapsed() >= PROGRESS_EVERY {
            eprintln!(
                "  .. {label}: still waiting after {:.1}s; last seen: {last_seen}",
                since.elapsed().as_secs_f64()
            );
            last_progress = Instant::now();
        }
        tokio::time::sleep(INTERVAL).await;
    }
}
