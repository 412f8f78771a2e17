//! The price cap a request may set; shared by the options that read it and the error that
//! names it.

/// `provider.max_price`, converted from OpenRouter's USD per million tokens (and USD per
/// request) to micro-USD, the catalog's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MaxPrice {
    pub prompt_micros: Option<u64>,
    pub completion_micros: Option<u64>,
    pub request_micros: Option<u64>,
}
