//! Subscriptions by mail and by the subscriber's web pages (issue 10).
//!
//! - [`command`]: the subject commands `subscribe LIST [ADDRESS]` / `unsubscribe LIST
//!   [ADDRESS]` (and `abonner` / `désabonner`); pure.
//! - [`token`]: the confirmation tokens (double opt-in, and removals that need the address's
//!   own confirmation); pure.
//! - [`decide`] (here): what a mail asks, read with the registry: route calls it and writes
//!   nothing.
//! - [`apply`]: what the pipeline does with the decision in the batch's transaction, and the
//!   confirmations the web pages and one-click unsubscribe make (`services::subscriptions`).
//!
//! Rules (ADR 0011): subscribing needs an active support key of the customer, from a sender
//! the customer allows (and authenticated under a plan that requires it), and only lists of
//! the customer's platform; the confirmation goes to the address being subscribed. Removing
//! needs no key: the address itself confirms. A shared distribution address confirms a
//! one-click unsubscribe too. Automatic mail (RFC 3834 signals) never subscribes, confirms or
//! removes anything, and gets no answer.

pub mod apply;
pub mod command;
pub mod token;

use crate::parse::InboundMail;
use crate::registry::{Authentication, Customer, KeyStatus, Registry};
use chrono::{DateTime, Utc};
use std::sync::Arc;

pub use command::Action;

/// What a subscription mail asks for, as routed.
#[derive(Debug, Clone)]
pub enum Request {
    /// A reply carrying a confirmation token in its subject (checked against the store when
    /// applied).
    Confirm(token::Claimed),
    /// Subscribe `address` to `list` for `customer` (pending until the address confirms).
    Subscribe {
        customer: Arc<Customer>,
        list: String,
        address: String,
    },
    /// Remove `address` from `list` once the address confirms.
    Unsubscribe { list: String, address: String },
    /// Refused, with the reason the sender is told.
    Refused {
        reason: Refusal,
        action: Action,
        list: Option<String>,
        /// The key that was refused, when it is worth naming.
        key: Option<String>,
        /// The language of the reply (the customer's plan), when known.
        language: Option<String>,
    },
}

/// Why a subscription request was refused (the reply's branch; the inbound row's code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// No list named, and not written to a list's address.
    NoList,
    UnknownList,
    /// The list belongs to another platform than the customer's.
    WrongPlatform,
    NoKey,
    /// Unknown, revoked or expired.
    InvalidKey,
    SenderNotAllowed,
    Unauthenticated,
}

impl Refusal {
    pub const ALL: [Refusal; 7] = [
        Refusal::NoList,
        Refusal::UnknownList,
        Refusal::WrongPlatform,
        Refusal::NoKey,
        Refusal::InvalidKey,
        Refusal::SenderNotAllowed,
        Refusal::Unauthenticated,
    ];

    /// The inbound row's quarantine code.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::NoList => "subscription_no_list",
            Refusal::UnknownList => "subscription_unknown_list",
            Refusal::WrongPlatform => "subscription_wrong_platform",
            Refusal::NoKey => "subscription_no_key",
            Refusal::InvalidKey => "subscription_invalid_key",
            Refusal::SenderNotAllowed => "subscription_sender_not_allowed",
            Refusal::Unauthenticated => "subscription_unauthenticated",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NoList => "no_list",
            Refusal::UnknownList => "unknown_list",
            Refusal::WrongPlatform => "wrong_platform",
            Refusal::NoKey => "no_key",
            Refusal::InvalidKey => "invalid_key",
            Refusal::SenderNotAllowed => "sender_not_allowed",
            Refusal::Unauthenticated => "unauthenticated",
        }
    }
}

/// A confirmation reply (its subject carries a token): read before anything else about the
/// sender, since the token alone proves the mail answers our confirmation.
pub fn confirmation(mail: &InboundMail) -> Option<Request> {
    token::in_subject(&mail.subject).map(Request::Confirm)
}

/// A subject command, read with the registry: `None` when the subject is not one.
pub fn decide(
    mail: &InboundMail,
    from: &str,
    registry: &Registry,
    now: DateTime<Utc>,
) -> Option<Request> {
    let cmd = command::parse(&mail.subject, &mail.key_candidates)?;
    let refused = |reason, list: Option<String>, key: Option<String>, c: Option<&Customer>| {
        Request::Refused {
            reason,
            action: cmd.action,
            list,
            key,
            language: c.map(|c| c.plan.language.clone()),
        }
    };
    // The list named, else the list whose own address the mail was written to.
    let list = match &cmd.list {
        Some(name) => match registry.list(name) {
            Some(l) => l,
            None => return Some(refused(Refusal::UnknownList, cmd.list.clone(), None, None)),
        },
        None => match mail
            .recipients
            .iter()
            .find_map(|a| registry.list_by_address(a))
        {
            Some(l) => l,
            None => return Some(refused(Refusal::NoList, None, None, None)),
        },
    };
    let name = list.name.clone();
    let address = cmd.address.clone().unwrap_or_else(|| from.to_string());
    if cmd.action == Action::Unsubscribe {
        return Some(Request::Unsubscribe {
            list: name,
            address,
        });
    }
    let mut inactive = None;
    for key in &mail.key_candidates {
        match registry.key_status(key, now) {
            KeyStatus::Active(customer) => {
                let c = Some(customer.as_ref());
                if !customer.allows(from) {
                    return Some(refused(
                        Refusal::SenderNotAllowed,
                        Some(name),
                        Some(key.clone()),
                        c,
                    ));
                }
                if customer.plan.authentication == Authentication::Require && !mail.auth.passed() {
                    return Some(refused(Refusal::Unauthenticated, Some(name), None, c));
                }
                if customer.platform.as_deref() != Some(list.platform.as_str()) {
                    return Some(refused(
                        Refusal::WrongPlatform,
                        Some(name),
                        Some(key.clone()),
                        c,
                    ));
                }
                return Some(Request::Subscribe {
                    customer,
                    list: name,
                    address,
                });
            }
            KeyStatus::Revoked(c) | KeyStatus::Expired(c) if inactive.is_none() => {
                inactive = Some((key.clone(), c));
            }
            _ => {}
        }
    }
    Some(match (inactive, mail.key_candidates.first()) {
        (Some((key, c)), _) => refused(Refusal::InvalidKey, Some(name), Some(key), Some(&c)),
        (None, Some(key)) => refused(Refusal::InvalidKey, Some(name), Some(key.clone()), None),
        (None, None) => refused(Refusal::NoKey, Some(name), None, None),
    })
}

/// The key of confirmation tokens: `[announcements] key`, the key of the unsubscribe links
/// (the messages signed differ, so one kind of token is never the other).
pub fn confirm_key(cfg: &crate::config::Config) -> Option<token::ConfirmKey> {
    cfg.announcements
        .key
        .as_ref()
        .map(|k| token::ConfirmKey::new(k.expose().as_bytes()))
}
