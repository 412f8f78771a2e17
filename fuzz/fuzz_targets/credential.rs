//! Credential JSON of any shape, for every provider: a credential or an error, never a panic.
#![no_main]

use keyway_core::{Credential, ProviderSlug};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let as_string = Value::String(text.to_owned());
    let parsed = serde_json::from_str::<Value>(text).ok();
    for p in ProviderSlug::ALL {
        let _ = Credential::parse(p, &as_string);
        if let Some(v) = &parsed {
            let _ = Credential::parse(p, v);
        }
    }
});
