//! What a subscription request does, inside the caller's write transaction: the pipeline's
//! batch (a mail), or the web's confirmation and one-click writes. Every mail goes through
//! the [`Mailer`] (loop rules when answering a mail, the per-recipient cap, suppressions),
//! into the outbox in this same transaction.

use super::token::{Claimed, ConfirmKey, Purpose};
use super::{Action, Refusal, Request};
use crate::mailer::{Letter, MailError, Mailer, Sent};
use crate::notify::{self, Automatic, Notice};
use crate::parse::InboundMail;
use crate::registry::Registry;
use crate::store::{NewSubscriber, SubscriberRow, SubscriberState, WriteTx};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// Whether `claimed` was signed for subscriber `s` and its request has not lapsed (a
/// pending subscription past its expiry, before the tick removed it).
pub fn current(key: &ConfirmKey, claimed: &Claimed, s: &SubscriberRow, now: DateTime<Utc>) -> bool {
    let lapsed = claimed.purpose == Purpose::Subscribe
        && s.state == SubscriberState::Pending
        && s.expires_at.is_some_and(|e| e <= now);
    !lapsed && key.verify(claimed, &s.list, &s.address)
}

/// What a request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// A subscription waits for the address's confirmation (the mail is written).
    Pending,
    /// Already confirmed: nothing sent.
    AlreadySubscribed,
    /// A removal waits for the address's confirmation (the mail is written).
    RemovalPending,
    /// The address is not on the list: nothing sent (no mail says who is subscribed).
    NotSubscribed,
    Confirmed,
    Removed,
    /// The token names no current subscriber, was not signed by us, or its request lapsed.
    UnknownToken,
    /// Refused; the sender was told why (unless the loop rules forbade an answer).
    Refused,
    /// Automatic mail (RFC 3834): nothing done, nothing sent.
    Ignored,
}

impl Effect {
    /// The inbound row's quarantine code, for the effects that are not a subscription change.
    pub fn quarantine_code(self) -> Option<&'static str> {
        match self {
            Effect::UnknownToken => Some("subscription_unknown_token"),
            Effect::Ignored => Some("subscription_automatic_mail"),
            _ => None,
        }
    }
}

/// What was done, for the outcome and the log.
#[derive(Debug, Clone)]
pub struct Done {
    pub effect: Effect,
    pub list: Option<String>,
    pub address: Option<String>,
    /// The refusal, when refused (its code goes on the inbound row).
    pub refusal: Option<Refusal>,
    /// Mails written (or suppressed by the cap).
    pub sent: Vec<Sent>,
}

impl Done {
    fn of(effect: Effect, s: Option<&SubscriberRow>) -> Done {
        Done {
            effect,
            list: s.map(|s| s.list.clone()),
            address: s.map(|s| s.address.clone()),
            refusal: None,
            sent: Vec::new(),
        }
    }
}

/// What the writes need: the mailer, the registry (the list's language), the token key and
/// the public URL of the confirmation pages.
pub struct Ctx<'a> {
    pub mailer: &'a Mailer<'a>,
    pub registry: &'a Registry,
    pub key: &'a ConfirmKey,
    pub now: DateTime<Utc>,
}

impl Ctx<'_> {
    /// A request by mail (routed), recorded on the inbound row `inbound_id`.
    pub fn by_mail(
        &self,
        tx: &mut dyn WriteTx,
        mail: &InboundMail,
        req: Request,
        inbound_id: i64,
    ) -> Result<Done, MailError> {
        // Automatic mail never subscribes, confirms or removes anything, and gets nothing:
        // an out-of-office answering our confirmation keeps its subject and token.
        if crate::route::loops::no_auto_reply(mail, &self.mailer.cfg.loops).is_some() {
            return Ok(Done::of(Effect::Ignored, None));
        }
        let from = mail.from.as_deref().unwrap_or_default();
        match req {
            Request::Confirm(claimed) => self.confirm(tx, &claimed),
            Request::Subscribe {
                customer,
                list,
                address,
            } => {
                if let Some(s) = tx.announce().subscriber_by_address(&list, &address)?
                    && s.state == SubscriberState::Confirmed
                {
                    return Ok(Done::of(Effect::AlreadySubscribed, Some(&s)));
                }
                // Another address than the sender's is a distribution address the customer
                // maintains: removing it needs its own confirmation, even by one click.
                let shared = address != from;
                let s = tx.announce().upsert_subscriber(&NewSubscriber {
                    list: &list,
                    address: &address,
                    customer: &customer.id,
                    state: SubscriberState::Pending,
                    shared,
                    added_by: "mail",
                    now: self.now,
                    expires_at: Some(
                        self.now
                            + chrono::Duration::from_std(
                                self.mailer.cfg.announcements.pending_expiry,
                            )
                            .unwrap_or(chrono::Duration::days(3)),
                    ),
                })?;
                let requested_by = (from != address).then_some(from);
                let sent = self.send(
                    tx,
                    Purpose::Subscribe,
                    &s,
                    requested_by,
                    Some(&customer.name),
                    Some(mail),
                    Some(inbound_id),
                )?;
                Ok(Done {
                    sent: vec![sent],
                    ..Done::of(Effect::Pending, Some(&s))
                })
            }
            Request::Unsubscribe { list, address } => {
                match tx.announce().subscriber_by_address(&list, &address)? {
                    None => Ok(Done {
                        list: Some(list),
                        address: Some(address),
                        ..Done::of(Effect::NotSubscribed, None)
                    }),
                    Some(s) => {
                        let requested_by = (from != address).then_some(from);
                        let sent = self.send(
                            tx,
                            Purpose::Remove,
                            &s,
                            requested_by,
                            None,
                            Some(mail),
                            Some(inbound_id),
                        )?;
                        Ok(Done {
                            sent: vec![sent],
                            ..Done::of(Effect::RemovalPending, Some(&s))
                        })
                    }
                }
            }
            Request::Refused {
                reason,
                action,
                list,
                key,
                language,
            } => {
                let notice = Notice::SubscriptionRefused(notify::SubscriptionRefused {
                    reason,
                    action,
                    list: list.clone(),
                    key,
                    subject: mail.subject.clone(),
                    contact_name: mail.from_name.clone(),
                    support_name: self.mailer.support_name(),
                });
                let lang =
                    language.unwrap_or_else(|| self.mailer.cfg.tickets.default_language.clone());
                let sent = self.mailer.send(
                    tx,
                    Letter::reply(&notice, &lang, mail, None, Some(inbound_id)),
                    self.now,
                )?;
                Ok(Done {
                    effect: Effect::Refused,
                    list,
                    address: None,
                    refusal: Some(reason),
                    sent: vec![sent],
                })
            }
        }
    }

    /// A confirmation token used (a reply's subject, or a POST on its page): a pending
    /// subscription becomes confirmed, or the subscriber is removed.
    pub fn confirm(&self, tx: &mut dyn WriteTx, claimed: &Claimed) -> Result<Done, MailError> {
        let Some(s) = self.verified(tx, claimed)? else {
            return Ok(Done::of(Effect::UnknownToken, None));
        };
        match claimed.purpose {
            Purpose::Subscribe if s.state == SubscriberState::Confirmed => {
                Ok(Done::of(Effect::AlreadySubscribed, Some(&s)))
            }
            Purpose::Subscribe => {
                tx.announce().confirm_subscriber(s.id, self.now)?;
                tracing::info!(list = %s.list, subscriber = s.id, "subscription confirmed");
                Ok(Done::of(Effect::Confirmed, Some(&s)))
            }
            Purpose::Remove => {
                tx.announce().remove_subscriber(s.id)?;
                tracing::info!(list = %s.list, subscriber = s.id, "subscriber removed on its confirmation");
                Ok(Done::of(Effect::Removed, Some(&s)))
            }
        }
    }

    /// The subscriber a token names, when the token is ours and its request is current.
    pub fn verified(
        &self,
        tx: &mut dyn WriteTx,
        claimed: &Claimed,
    ) -> Result<Option<SubscriberRow>, MailError> {
        Ok(tx
            .announce()
            .subscriber(claimed.subscriber)?
            .filter(|s| current(self.key, claimed, s, self.now)))
    }

    /// The one-click unsubscribe (RFC 8058) of subscriber `id`: removed at once, or — a
    /// shared distribution address — asked to confirm, so one member cannot remove everyone.
    pub fn one_click(&self, tx: &mut dyn WriteTx, id: i64) -> Result<Done, MailError> {
        let Some(s) = tx.announce().subscriber(id)? else {
            return Ok(Done::of(Effect::UnknownToken, None));
        };
        if s.shared {
            let sent = self.send(tx, Purpose::Remove, &s, None, None, None, None)?;
            return Ok(Done {
                sent: vec![sent],
                ..Done::of(Effect::RemovalPending, Some(&s))
            });
        }
        tx.announce().remove_subscriber(s.id)?;
        tracing::info!(list = %s.list, subscriber = s.id, "subscriber removed by one-click unsubscribe");
        Ok(Done::of(Effect::Removed, Some(&s)))
    }

    /// The confirmation mail, to the subscriber's address, in its list's language.
    #[allow(clippy::too_many_arguments)]
    fn send(
        &self,
        tx: &mut dyn WriteTx,
        purpose: Purpose,
        s: &SubscriberRow,
        requested_by: Option<&str>,
        customer_name: Option<&str>,
        answers: Option<&InboundMail>,
        inbound_id: Option<i64>,
    ) -> Result<Sent, MailError> {
        let token = self.key.sign(purpose, s.id, &s.list, &s.address);
        let cfg = self.mailer.cfg;
        let lang = self
            .registry
            .list(&s.list)
            .map(|l| l.language.clone())
            .unwrap_or_else(|| cfg.tickets.default_language.clone());
        let notice = Notice::SubscriptionConfirm(notify::SubscriptionConfirm {
            action: match purpose {
                Purpose::Subscribe => Action::Subscribe,
                Purpose::Remove => Action::Unsubscribe,
            },
            list: s.list.clone(),
            address: s.address.clone(),
            requested_by: requested_by.map(str::to_string),
            customer_name: customer_name.map(str::to_string),
            confirm_url: cfg
                .http
                .public_url
                .as_ref()
                .map(|u| format!("{u}/s/{token}")),
            token,
            expires: match purpose {
                Purpose::Subscribe => s
                    .expires_at
                    .map(|e| e.format("%Y-%m-%d %H:%M UTC").to_string()),
                Purpose::Remove => None,
            },
            support_name: self.mailer.support_name(),
        });
        self.mailer.send(
            tx,
            Letter {
                notice: &notice,
                lang: &lang,
                to: &s.address,
                to_name: None,
                ticket: None,
                inbound_id,
                answers,
                automatic: Automatic::Generated,
                from_name: None,
                attachments: &[],
                to_staff: false,
            },
            self.now,
        )
    }
}
