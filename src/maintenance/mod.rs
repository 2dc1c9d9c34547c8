//! Maintenance announcements (issue 10, OX "Maintenance Communication"): the notice rule
//! ([`notice_rule`]) and the lifecycle with its timers ([`state`]), both pure.

pub mod notice_rule;
pub mod state;
