//! Real servers for integration tests.

pub mod daemon;
pub mod dovecot;
pub mod introspect;
pub mod postfix;
pub mod postgres;
pub mod slow_server;
pub mod smtp_sink;
pub mod web_server;
