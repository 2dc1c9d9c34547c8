//! Real servers for integration tests.

pub mod dovecot;
pub mod postfix;
pub mod slow_server;
pub mod smtp_sink;
