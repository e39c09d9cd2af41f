//! Benchmarks of the inbound pipeline (see BENCHMARKS.md).
#![allow(missing_docs)]
fn main() {}
