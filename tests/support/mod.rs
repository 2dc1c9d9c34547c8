//! Real servers for integration tests.

pub mod smtp_sink;
