//! A Redis channel subscription that survives Redis restarts: it reconnects by itself and says
//! so, since what was published while it was away is lost (the receiver resynchronises).

use futures::StreamExt;
use std::time::Duration;
use tokio::sync::mpsc;

/// What a subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Payload(String),
    /// (Re)subscribed: messages may have been missed before this one.
    Subscribed,
}

pub type Subscription = mpsc::Receiver<Message>;

pub(super) fn subscribe(client: redis::Client, channel: String) -> Subscription {
    let (tx, rx) = mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            if tx.is_closed() {
                return;
            }
            if let Ok(Ok(mut ps)) = tokio::time::timeout(Duration::from_secs(1), client.get_async_pubsub()).await {
                if ps.subscribe(&channel).await.is_ok() {
                    if tx.send(Message::Subscribed).await.is_err() {
                        return;
                    }
                    let mut stream = ps.on_message();
                    while let Some(msg) = stream.next().await {
                        let Ok(payload) = msg.get_payload::<String>() else { continue };
                        if tx.send(Message::Payload(payload)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
    rx
}
