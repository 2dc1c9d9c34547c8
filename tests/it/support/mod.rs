//! Real servers for integration tests.

pub mod dovecot;
pub mod smtp_sink;
