//! How background tasks stop — the OTP source's watcher, the latency-log ticker, the progress line,
//! the open model's pacer and the abort watchdog all the same way: each is handed a
//! `CancellationToken` and ends soon after it is cancelled; its owner cancels the token and waits a
//! bounded time (`finish`), aborting a task that has not ended by then.

use std::time::Duration;

use tokio::task::JoinHandle;
pub use tokio_util::sync::CancellationToken;

/// Cancels `stop` and waits up to `grace` for `task` to end; aborts it after that. The task's output,
/// if it ended in time.
pub async fn finish<T>(stop: &CancellationToken, mut task: JoinHandle<T>, grace: Duration) -> Option<T> {
    stop.cancel();
    match tokio::time::timeout(grace, &mut task).await {
        Ok(joined) => joined.ok(),
        Err(_) => {
            task.abort();
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_listens_ends_and_one_that_does_not_is_aborted() {
        let stop = CancellationToken::new();
        let listening = tokio::spawn({
            let stop = stop.clone();
            async move {
                stop.cancelled().await;
                7
            }
        });
        assert_eq!(finish(&stop, listening, Duration::from_secs(5)).await, Some(7));
        let deaf = tokio::spawn(async { tokio::time::sleep(Duration::from_secs(3600)).await });
        assert_eq!(finish(&CancellationToken::new(), deaf, Duration::from_millis(20)).await, None);
    }
}
