//! The one stream driver: runs a stateful [`Translate`] over an upstream's items (SSE events,
//! Bedrock event-stream frames, Gemini JSON chunks) and yields OpenAI stream events as they come.
//! Shared by every adapter that translates a stream; imports no adapter.

use crate::error::ProviderError;
use crate::types::{ChunkStream, StreamEvent};
use futures::{Stream, StreamExt};
use std::collections::VecDeque;

/// A stateful translation from upstream stream items to OpenAI stream events.
pub trait Translate: Send + 'static {
    type Item: Send + 'static;
    /// The events one upstream item turns into; an `Err` ends the stream.
    fn item(&mut self, item: Self::Item) -> Vec<Result<StreamEvent, ProviderError>>;
    /// Called once when the upstream ends cleanly (flush usage; complain about a truncated stream).
    fn end(&mut self) -> Vec<Result<StreamEvent, ProviderError>>;
    /// Whether the protocol's last event has been seen (Anthropic's `message_stop`): the stream
    /// ends there, without waiting for the upstream to close (and [`Translate::end`] is not called).
    fn is_complete(&self) -> bool {
        false
    }
}

struct Run<S, T> {
    source: S,
    t: T,
    pending: VecDeque<Result<StreamEvent, ProviderError>>,
    done: bool,
}

/// Drives `t` over `source`, yielding translated events as they arrive; stops after the first error.
pub fn translate<S, T>(source: S, t: T) -> ChunkStream
where
    S: Stream<Item = Result<T::Item, ProviderError>> + Send + Unpin + 'static,
    T: Translate,
{
    let run = Run { source, t, pending: VecDeque::new(), done: false };
    Box::pin(futures::stream::unfold(run, |mut run| async move {
        loop {
            if let Some(ev) = run.pending.pop_front() {
                if ev.is_err() {
                    run.pending.clear();
                    run.done = true;
                }
                return Some((ev, run));
            }
            if run.done {
                return None;
            }
            match run.source.next().await {
                Some(Ok(item)) => {
                    run.pending.extend(run.t.item(item));
                    run.done = run.t.is_complete();
                }
                Some(Err(e)) => {
                    run.done = true;
                    run.pending.push_back(Err(e));
                }
                None => {
                    run.done = true;
                    run.pending.extend(run.t.end());
                }
            }
        }
    }))
}
