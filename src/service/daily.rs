//! A pass that runs at start-up and then once a day (the expiry and trigger passes).

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `pass` on a blocking thread at start and again after the wait it returns, until
/// `stop`. `pass` logs what it did; a panic in it is logged and the loop goes on.
pub async fn repeat(name: &'static str, stop: CancellationToken, pass: Arc<dyn Fn() -> Duration + Send + Sync>) {
    loop {
        let p = pass.clone();
        let wait = match tokio::task::spawn_blocking(move || p()).await {
            Ok(wait) => wait,
            Err(e) => {
                tracing::error!("{name}: {e}");
                Duration::from_secs(3600)
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.cancelled() => return,
        }
    }
}
