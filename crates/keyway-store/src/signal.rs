//! Change signals between nodes sharing one PostgreSQL database: a node that changes a key, a
//! credential or a balance says so with `NOTIFY`, and every node `LISTEN`ing drops what it
//! cached about it. PostgreSQL delivers a notification when the change commits, to every
//! listening session, so there is no separate server to keep in step. (A single SQLite node has
//! no one to tell: [`Store::notify`] does nothing there.)

use crate::{Engine, Store};
use sqlx::postgres::PgListener;
use std::time::Duration;
use tokio::sync::mpsc;

const CHANNEL: &str = "keyway_changes";

/// What changed. Payloads are ids the gateway issued, never secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An API key (by hash): created, changed, disabled or deleted.
    Key(String),
    /// The credentials of a workspace; `None`: a global credential, so every workspace.
    Credentials(Option<String>),
    /// A top-up of a workspace's credits: (workspace, micro-units added).
    Credits(String, i64),
    /// The listener (re)connected: anything may have changed while it was away.
    Resync,
}

impl Change {
    fn encode(&self) -> Option<String> {
        Some(match self {
            Change::Key(h) => format!("k:{h}"),
            Change::Credentials(Some(ws)) => format!("c:{ws}"),
            Change::Credentials(None) => "c*".to_owned(),
            Change::Credits(ws, amount) => format!("b:{ws}:{amount}"),
            Change::Resync => return None,
        })
    }

    fn decode(s: &str) -> Option<Self> {
        if s == "c*" {
            return Some(Change::Credentials(None));
        }
        let (tag, id) = s.split_once(':')?;
        match tag {
            "k" => Some(Change::Key(id.to_owned())),
            "c" => Some(Change::Credentials(Some(id.to_owned()))),
            "b" => {
                let (ws, amount) = id.rsplit_once(':')?;
                Some(Change::Credits(ws.to_owned(), amount.parse().ok()?))
            }
            _ => None,
        }
    }
}

impl Store {
    /// Tells the other nodes on this PostgreSQL database that `change` happened (after it
    /// committed); `origin` names this node, whose own listener skips it. Best effort: a lost
    /// signal is caught by the caches' TTL.
    pub async fn notify(&self, origin: &str, change: &Change) {
        let (Engine::Postgres, Some(payload)) = (self.engine, change.encode()) else { return };
        let payload = format!("{origin}|{payload}");
        if let Err(e) = sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(payload).execute(&self.pool).await {
            tracing::warn!(error = %e, "could not signal a change to the other nodes; they see it when their caches expire");
        }
    }
}

/// Listens for other nodes' changes (not `origin`'s) on the PostgreSQL database at `url`,
/// reconnecting by itself; each (re)connection is announced as [`Change::Resync`].
pub fn listen(url: String, origin: String) -> mpsc::Receiver<Change> {
    let (tx, rx) = mpsc::channel(4096);
    tokio::spawn(async move {
        let mut was_connected = true;
        loop {
            if tx.is_closed() {
                return;
            }
            let mut listener = match PgListener::connect(&url).await {
                Ok(l) => l,
                Err(e) => {
                    if std::mem::take(&mut was_connected) {
                        tracing::warn!(error = %e, "cannot listen for changes from other nodes; retrying");
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            };
            if listener.listen(CHANNEL).await.is_err() {
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            was_connected = true;
            if tx.send(Change::Resync).await.is_err() {
                return;
            }
            // `try_recv` says when the connection dropped (`None`): start over and resync.
            while let Ok(Some(n)) = listener.try_recv().await {
                let Some((from, payload)) = n.payload().split_once('|') else { continue };
                if from == origin {
                    continue;
                }
                if let Some(c) = Change::decode(payload) {
                    if tx.send(c).await.is_err() {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for c in [Change::Key("abc".into()), Change::Credentials(Some("ws".into())), Change::Credentials(None), Change::Credits("w".into(), -5)] {
            assert_eq!(Change::decode(&c.encode().unwrap()), Some(c));
        }
        assert_eq!(Change::decode("x:y"), None);
        assert_eq!(Change::Resync.encode(), None);
    }
}
