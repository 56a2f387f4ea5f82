//! `bulkedit` applies a spreadsheet of user-account changes to an RPA platform's user API:
//! read, validate, send through a rate-limited worker pool, and report every row.
//!
//! The flow is one pass in one direction: [`read`] turns a file into rows, [`check`] and the
//! [`platform`] dictionaries turn rows into edits or field errors, [`engine`] sends them, and
//! [`report`] writes one outcome per row. [`sandbox`] stands in for the vendors' servers.

pub mod check;
pub mod cli;
pub mod commands;
pub mod crash;
pub mod credential_store;
pub mod engine;
pub mod error;
pub mod platform;
pub mod profile;
pub mod read;
pub mod report;
pub mod rules;
pub mod sandbox;
pub mod secrets;
