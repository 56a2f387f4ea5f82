//! The end-to-end tests, as one binary with a module per area, so the crate and the test
//! dependencies are linked once rather than once per file (as ripgrep and xsv do).
//!
//! Tests of different modules now share a process and run beside one another; the few whose
//! assertions measure time keep clear of the scale tests (`common::timed`, `common::heavy`).
//! The files they read are in `tests/data/`. proptest finds its regressions file from this
//! `main.rs`: `tests/proptest-regressions/properties.txt`.

mod common;

mod apply;
mod columns;
mod dialect;
mod export;
mod files;
mod home;
mod hostile;
mod joiners;
mod keyring;
mod messages;
mod plans;
mod properties;
mod races;
mod read_corpus;
mod reports;
mod resume;
mod sandbox_api;
mod scale;
mod secrets;
mod transport;
mod trust;
mod undo;
mod validate;
mod wire;
mod workbook;
