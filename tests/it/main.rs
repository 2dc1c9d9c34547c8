//! Every integration test in one binary (one link instead of one per file), a module per
//! area. `common` gives each test a fresh store (SQLite, or a PostgreSQL database of its own
//! when `TICKETGATE_TEST_DATABASE_URL` is set); `support` starts real servers (Dovecot,
//! Postfix's smtp-sink) on free loopback ports. Filter by module: `cargo test --test it imap::`.

mod common;
mod support;

mod announce;
mod attachments;
mod auth;
mod bounce;
mod cli;
mod crash;
mod daemon;
mod fanout_crash;
mod fuzz;
mod golden;
mod imap;
mod instances;
mod lifecycle;
mod limits;
mod lmtp;
mod maintenance;
mod oauth;
mod outage_intake;
mod outbox;
mod pipeline;
mod postfix;
mod probes;
mod reports;
mod smtp;
mod smtp_tls;
mod soak;
mod store;
mod subscriptions;
mod systemd;
mod watchers;
mod web;
