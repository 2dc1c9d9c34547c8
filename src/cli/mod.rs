//! Command groups of the `ticketgate` binary, each with its clap enums and handlers.

pub mod announce;
