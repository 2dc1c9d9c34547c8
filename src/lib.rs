//! ticketgate: an email-driven support-ticket gateway.
//!
//! # Layout
//! Modules in the order a mail flows through them:
//! - [`config`]: typed settings, validated at start; errors name the key.
//! - [`registry`]: support keys → customers → plans, re-read when the file changes.
//! - [`ingest`]: where mail comes from (IMAP mailboxes with IDLE, a local Maildir); a mail
//!   leaves its inbox only after its effects are committed.
//! - [`parse`]: raw bytes → [`parse::InboundMail`]; never panics.
//! - [`auth`]: who really sent a mail (DKIM, trusted `Authentication-Results`, trusted
//!   sources), reply tokens, outbound DKIM signing.
//! - [`route`]: one mail + the store → a [`route::Decision`]; loop rules in [`route::loops`].
//! - [`pipeline`]: a batch in one transaction: parse, route, apply, render outbound mail.
//! - [`notify`]: templates (en, fr; overridable) and composing RFC 5322 messages.
//! - [`store`]: the only module with SQL; SQLite and PostgreSQL behind the [`store::Store`]
//!   trait, shared by the tasks through the [`store::Db`] handle (a writer thread, a pool).
//! - [`outbox`]: claims due messages, delivers them (SMTP or files), retries, records.
//! - [`tls`]: the rustls client configuration shared by IMAP and SMTP.
//! - [`app`]: opens the parts from the configuration.
//! - [`services`]: the operations the command line, the daemon and the HTTP API share.
//! - [`daemon`]: the spawned tasks (mailboxes, Maildir and timers, delivery) and shutdown.
//! - [`probes`]: service probes that declare outages from slow or failed checks.
//! - [`clock`]: the one source of "now".
//! - [`http`]: the web server inside the daemon (health, metrics, API, ticket pages, ops);
//!   [`telemetry`]: the mailbox states and counters it reports.
//! - [`ticket_ref`]: the reference format (`TKT-000123`); [`lang`]: the languages mail is
//!   written in, and how dates and periods read in each.
//! - [`sdnotify`]: systemd's readiness and watchdog notifications (`Type=notify`).
#![forbid(unsafe_code)]

pub mod announce;
pub mod app;
pub mod auth;
pub mod bounce;
pub mod calendar;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod incident_intake;
pub mod ingest;
pub mod lang;
pub mod lifecycle;
pub mod mailer;
pub mod notify;
pub mod outbox;
pub mod parse;
pub mod pipeline;
pub mod probes;
pub mod registry;
pub mod route;
pub mod samples;
pub mod sdnotify;
pub mod services;
pub mod sla;
pub mod store;
pub mod subscriptions;
pub mod ticket_ref;
pub mod timers;
pub mod tls;
pub mod watchers;
pub mod workflow;

pub mod http;
pub mod telemetry;
