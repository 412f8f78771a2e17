//! The slow readers the fast ones replaced, for `bench/` to measure the two side by side; built
//! only with the `bench` feature (they are fallbacks inside the crate, not an API).

use crate::body::Body;
use crate::error::ProviderError;
use crate::types::StreamEvent;
use keyway_core::Usage;

/// [`crate::openai_compat::chunk_items`] read through a parsed `Value`.
pub fn chunk_items_by_value(data: String) -> (Vec<Result<StreamEvent, ProviderError>>, bool) {
    crate::openai_compat::chunk_items_by_value(data)
}

/// [`crate::openai_compat::read_answer`] by splitting the object at its top level.
pub fn read_raw(bytes: &[u8]) -> Result<(Body, Option<Usage>), ProviderError> {
    crate::openai_compat::read_raw(bytes)
}
