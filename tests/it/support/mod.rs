//! Real servers for integration tests.

pub mod dovecot;
pub mod postfix;
pub mod smtp_sink;
pub mod web_server;
