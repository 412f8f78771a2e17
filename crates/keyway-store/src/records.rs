//! Rows as the rest of Keyway sees them. None of these holds a provider secret.

use keyway_core::credential::ModelMapping;
use keyway_core::ProviderSlug;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Workspace {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    Inference,
    Management,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Inference => "inference",
            KeyKind::Management => "management",
        }
    }
}

/// What a key may do. Management keys are `Admin`, `Owner` or `Viewer`; the rest are `Inference`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Calls models; reads its own key, generations and credits. No management route.
    Inference,
    /// Reads its workspace's credential metadata, keys, usage and generations; changes nothing.
    Viewer,
    /// Manages its workspace's BYOK credentials and API keys.
    Owner,
    /// The whole instance: system-wide (global) credentials, workspaces, credits, the keyring, admin keys.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Owner, Role::Viewer, Role::Inference];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Inference => "inference",
            Role::Viewer => "viewer",
            Role::Owner => "owner",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }

    pub fn kind(self) -> KeyKind {
        if self == Role::Inference {
            KeyKind::Inference
        } else {
            KeyKind::Management
        }
    }

    pub fn is_management(self) -> bool {
        self != Role::Inference
    }
}

/// Per-key limits; absent means unlimited.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_per_minute: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_daily_micros: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_monthly_micros: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub workspace_id: String,
    /// Hex SHA-256 of the raw key: its public handle.
    pub hash: String,
    pub name: String,
    /// `kw-...abcd`: enough to recognise a key, not to use it.
    pub label: String,
    pub kind: KeyKind,
    /// An admin management key may act in every workspace (`role == Role::Admin`).
    pub admin: bool,
    pub role: Role,
    pub disabled: bool,
    pub limits: Limits,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ApiKeyRecord {
    /// The workspace this key reads and writes in; `None` for an admin key (every workspace).
    pub fn workspace_scope(&self) -> Option<&str> {
        (self.role != Role::Admin).then_some(self.workspace_id.as_str())
    }
}

/// A stored BYOK credential's metadata (the sealed secret stays inside the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ByokRecord {
    pub id: String,
    /// `None`: a global credential, usable in every workspace (OpenRouter's `workspace_id: null`).
    pub workspace_id: Option<String>,
    pub provider: ProviderSlug,
    pub name: String,
    pub label: String,
    pub disabled: bool,
    pub is_fallback: bool,
    pub always_use: bool,
    pub is_byok_only: bool,
    pub sort_order: i64,
    pub allowed_models: Vec<String>,
    pub allowed_api_key_hashes: Vec<String>,
    pub allowed_user_ids: Vec<String>,
    pub model_mappings: Vec<ModelMapping>,
    pub declared_region: Option<String>,
    pub declared_zdr: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

impl ByokRecord {
    /// Shared by every workspace (only an admin management key may change it).
    pub fn is_global(&self) -> bool {
        self.workspace_id.is_none()
    }

    /// Whether routing in `workspace_id` may use it: its own workspace's, or a global one.
    pub fn usable_in(&self, workspace_id: &str) -> bool {
        self.workspace_id.as_deref().is_none_or(|ws| ws == workspace_id)
    }
}

/// Fields of a new credential besides its secret.
#[derive(Debug, Clone, Default)]
pub struct ByokFields {
    pub name: String,
    pub disabled: bool,
    pub is_fallback: bool,
    pub always_use: bool,
    pub is_byok_only: bool,
    pub sort_order: i64,
    pub allowed_models: Vec<String>,
    pub allowed_api_key_hashes: Vec<String>,
    pub allowed_user_ids: Vec<String>,
    pub model_mappings: Vec<ModelMapping>,
    pub declared_region: Option<String>,
    pub declared_zdr: bool,
}

/// A partial update; `None` keeps the stored value.
#[derive(Debug, Clone, Default)]
pub struct ByokPatch {
    pub name: Option<String>,
    pub disabled: Option<bool>,
    pub is_fallback: Option<bool>,
    pub always_use: Option<bool>,
    pub is_byok_only: Option<bool>,
    pub sort_order: Option<i64>,
    pub allowed_models: Option<Vec<String>>,
    pub allowed_api_key_hashes: Option<Vec<String>>,
    pub allowed_user_ids: Option<Vec<String>>,
    pub model_mappings: Option<Vec<ModelMapping>>,
    pub declared_region: Option<Option<String>>,
    pub declared_zdr: Option<bool>,
}

#[derive(Debug, Clone, Default)]
pub struct KeyPatch {
    pub name: Option<String>,
    pub disabled: Option<bool>,
    pub limits: Option<Limits>,
}

/// A page request: `offset` rows skipped, at most `limit` returned.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub offset: i64,
    pub limit: i64,
}
