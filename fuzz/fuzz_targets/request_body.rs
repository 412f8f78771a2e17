//! Request-body splitting and routing-field removal: the raw split agrees with a full parse,
//! and taking the routing fields out of a raw body never panics.
#![no_main]

use keyway_core::route::RoutingOptions;
use keyway_providers::{RawObject, RequestBody};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = RawObject::parse(data) else { return };
    if let Ok(parsed) = serde_json::from_slice::<Map<String, Value>>(data) {
        // Duplicate keys: a parse keeps the last, as the body does once deduplicated.
        let mut body = RequestBody::from(raw);
        assert_eq!(body.map().ok(), Some(&parsed));
        let mut fields = Map::new();
        for f in RoutingOptions::FIELDS {
            if let Ok(Some(v)) = body.remove(f) {
                fields.insert(f.to_owned(), v);
            }
        }
        assert!(body.keys_set().all(|(k, _)| !RoutingOptions::FIELDS.contains(&k)));
        let _ = RoutingOptions::extract(&mut fields);
    }
});
