//! Long-running tasks that outlive a panic: a panicking task is logged and started again, so
//! one bug met by one input never ends the daemon (the release profile unwinds; see the
//! workspace's Cargo.toml).

use std::any::Any;
use std::future::Future;
use std::time::Duration;

/// How long a panicked task waits before it starts again: a panic that recurs at once is then
/// logged once a second, not in a tight loop.
pub const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Runs the task `start` makes, in a task of its own, until it ends without panicking; each
/// panic is logged (naming `name`) and the task started again after `delay` (the daemon's
/// tasks: [`RESTART_DELAY`]). Returns how many times it panicked.
pub async fn supervise<F, Fut>(name: &str, delay: Duration, mut start: F) -> u32
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut panics = 0u32;
    loop {
        match tokio::spawn(start()).await {
            Err(e) if e.is_panic() => {
                panics = panics.saturating_add(1);
                let why = message(&*e.into_panic());
                eprintln!(
                    "mini-sched: the {name} task panicked ({why}); starting it again in {delay:?}"
                );
                tokio::time::sleep(delay).await;
            }
            _ => return panics,
        }
    }
}

/// A panic's message, when it has one.
fn message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    #[tokio::test]
    async fn a_panicking_task_is_started_again() {
        let starts = Arc::new(AtomicU32::new(0));
        let counted = starts.clone();
        let panics = supervise("test", Duration::ZERO, move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    panic!("injected failure {n}");
                }
            }
        })
        .await;
        assert_eq!(panics, 2);
        assert_eq!(starts.load(Ordering::SeqCst), 3);
    }
}
