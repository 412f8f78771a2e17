//! The deployment's routing rules (`[routing]`): the precedence of each workspace.

use keyway_core::route::Precedence;
use keyway_store::Store;
use std::collections::HashMap;

/// `routing.precedence`, and the workspaces that chose otherwise (by id).
#[derive(Debug, Clone, Default)]
pub struct RoutingPolicy {
    default: Precedence,
    by_workspace: HashMap<String, Precedence>,
}

impl RoutingPolicy {
    /// Workspaces may be named by id or slug; slugs are resolved here, once, as `[limits]` does.
    pub async fn from_config(cfg: &crate::config::RoutingConfig, store: &Store) -> Result<Self, keyway_store::StoreError> {
        let mut by_workspace = HashMap::new();
        if !cfg.workspaces.is_empty() {
            let all = store.list_workspaces().await?;
            for (name, precedence) in &cfg.workspaces {
                let id = match all.iter().find(|x| x.id == *name || x.slug == *name) {
                    Some(x) => x.id.clone(),
                    None => {
                        tracing::warn!(workspace = %name, "[routing.workspaces]: no workspace has this id or slug (yet); it applies to a workspace with this id");
                        name.clone()
                    }
                };
                by_workspace.insert(id, (*precedence).into());
            }
        }
        Ok(Self { default: cfg.precedence.into(), by_workspace })
    }

    /// The precedence a request plans with: its own `provider.byok_first` when it set one, else
    /// its workspace's.
    pub fn effective(&self, workspace_id: &str, byok_first: Option<bool>) -> Precedence {
        match byok_first {
            Some(true) => Precedence::ByokFirst,
            Some(false) => Precedence::ProviderOrder,
            None => self.precedence(workspace_id),
        }
    }

    /// The precedence a workspace's requests plan with (a request's `provider.byok_first` wins).
    pub fn precedence(&self, workspace_id: &str) -> Precedence {
        if self.by_workspace.is_empty() {
            return self.default;
        }
        self.by_workspace.get(workspace_id).copied().unwrap_or(self.default)
    }
}
