//! Background work on a timer that ends with what it works on.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Runs `work` every `every` (the first time one period from now) for as long as `owner` is
/// alive elsewhere: the task holds it only while a run is going. A late tick is delayed, not
/// bunched with the next.
pub fn every<T, F, Fut>(owner: &Arc<T>, every: Duration, work: F)
where
    T: Send + Sync + 'static,
    F: Fn(Arc<T>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let weak = Arc::downgrade(owner);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(owner) = weak.upgrade() else { return };
            work(owner).await;
        }
    });
}
