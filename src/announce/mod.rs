//! Announcements to distribution lists (issue 10): the list definitions the registry reads
//! ([`list`]), the signed unsubscribe token ([`token`]), the announcement references
//! (`OUT-000001`, [`reference`]), outages in a transaction ([`outage`]) and the mail to
//! subscribers ([`fanout`]). The store rows are in `store::announce`; the operations the
//! CLI and the API share in `services::{lists, announce}`.

pub mod fanout;
pub mod list;
pub mod outage;
pub mod publish;
pub mod reference;
pub mod timers;
pub mod token;

pub use list::{ListDef, ListType};
