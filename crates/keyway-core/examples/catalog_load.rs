//! How long the built-in catalog takes to load: `cargo run --release -p keyway-core --example catalog_load`.
//! (The criterion version is `catalog/parse_builtin` in bench/benches/hot_path.rs.)

#![allow(clippy::print_stdout, clippy::unwrap_used)] // a measuring tool: its output is the point

use keyway_core::catalog::{Catalog, BUILTIN};
use std::time::Instant;

fn main() {
    let t0 = Instant::now();
    let first = Catalog::builtin().unwrap();
    let first_ms = t0.elapsed().as_secs_f64() * 1e3;
    let runs = 50;
    let t1 = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(Catalog::from_json(BUILTIN).unwrap());
    }
    let parse_ms = t1.elapsed().as_secs_f64() * 1e3 / f64::from(runs);
    let t2 = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(Catalog::builtin().unwrap());
    }
    let cached_us = t2.elapsed().as_secs_f64() * 1e6 / f64::from(runs);
    println!(
        "catalog: {} models, {} KiB JSON; first load {first_ms:.2} ms; parse {parse_ms:.2} ms (mean of {runs}); cached {cached_us:.3} us",
        first.models().len(),
        BUILTIN.len() / 1024
    );
}
