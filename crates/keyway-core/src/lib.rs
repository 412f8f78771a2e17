//! Keyway's domain core: what a provider is, the credential shapes each accepts (and their
//! validation), the model catalog with prices, usage and money arithmetic, and the route-plan
//! rules. Nothing here does I/O, so every rule can be tested exhaustively without a network.

pub mod catalog;
pub mod credential;
pub mod pricing;
pub mod provider;
pub mod route;
mod rsa_pem;
pub mod usage;

pub use credential::{Credential, CredentialError};
pub use provider::{Protocol, ProviderSlug};
pub use usage::Usage;
