//! Distribution lists and their subscribers, for operators (`ticketgate lists`,
//! `subscribers`, `subscribe`, `unsubscribe`; `/api/v1/lists`).

use super::{Result, ServiceError};
use crate::app::App;
use crate::store::{NewSubscriber, SubscriberRow, SubscriberState};
use serde::Serialize;

/// A list as `ticketgate lists --json` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ListInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub list_type: crate::registry::ListType,
    pub platform: String,
    pub address: String,
    pub language: String,
    pub calendar: String,
    pub confirmed: usize,
    pub pending: usize,
}

/// Every list of the registry, by name, with its subscriber counts.
pub async fn lists(app: &App) -> Result<Vec<ListInfo>> {
    let registry = app.pipeline.registry();
    let names: Vec<String> = registry.lists().map(|l| l.name.clone()).collect();
    let subs = app
        .db
        .read(move |s| {
            names
                .iter()
                .map(|n| s.announce().subscribers(n))
                .collect::<crate::store::Result<Vec<_>>>()
        })
        .await?;
    Ok(registry
        .lists()
        .zip(subs)
        .map(|(l, subs)| ListInfo {
            name: l.name.clone(),
            list_type: l.list_type,
            platform: l.platform.clone(),
            address: l.address.clone(),
            language: l.language.clone(),
            calendar: l.calendar_name.clone(),
            confirmed: subs
                .iter()
                .filter(|s| s.state == SubscriberState::Confirmed)
                .count(),
            pending: subs
                .iter()
                .filter(|s| s.state == SubscriberState::Pending)
                .count(),
        })
        .collect())
}

/// A list's subscribers (pending and confirmed), by address.
pub async fn subscribers(app: &App, list: &str) -> Result<Vec<SubscriberRow>> {
    known_list(app, list)?;
    let list = list.to_string();
    Ok(app
        .db
        .read(move |s| s.announce().subscribers(&list))
        .await?)
}

/// An operator subscribes `address` for `customer`: confirmed at once. The customer must
/// exist and be on the list's platform. `shared`: a distribution address the customer
/// maintains (unsubscribing it then needs a confirmation). Subscribing again updates the
/// row (a pending one becomes confirmed).
pub async fn subscribe(
    app: &App,
    list: &str,
    address: &str,
    customer: &str,
    shared: bool,
) -> Result<SubscriberRow> {
    let def = known_list(app, list)?;
    let address = valid_address(address)?;
    let registry = app.pipeline.registry();
    let Some(c) = registry.customer(customer) else {
        return Err(ServiceError::NotFound(format!(
            "no customer `{customer}` in the customer registry"
        )));
    };
    if c.platform.as_deref() != Some(def.platform.as_str()) {
        return Err(ServiceError::Invalid(format!(
            "customer `{customer}` is on platform {}, list `{list}` is for platform `{}`",
            c.platform
                .as_deref()
                .map_or("(none)".to_string(), |p| format!("`{p}`")),
            def.platform
        )));
    }
    let now = app.clock.now();
    let (list, customer) = (list.to_string(), customer.to_string());
    let row = app
        .db
        .write(move |s| {
            let mut tx = s.write()?;
            let row = tx.announce().upsert_subscriber(&NewSubscriber {
                list: &list,
                address: &address,
                customer: &customer,
                state: SubscriberState::Confirmed,
                shared,
                added_by: "operator",
                now,
                expires_at: None,
            })?;
            tx.commit()?;
            Ok(row)
        })
        .await?;
    tracing::info!(list = %row.list, subscriber = row.id, "subscribed by an operator");
    Ok(row)
}

/// An operator removes `address` from `list` (at once, shared or not). Returns the row removed.
pub async fn unsubscribe(app: &App, list: &str, address: &str) -> Result<SubscriberRow> {
    known_list(app, list)?;
    let address = valid_address(address)?;
    let (l, a) = (list.to_string(), address.clone());
    let removed = app
        .db
        .write(move |s| {
            let mut tx = s.write()?;
            let row = tx.announce().subscriber_by_address(&l, &a)?;
            if let Some(r) = &row {
                tx.announce().remove_subscriber(r.id)?;
            }
            tx.commit()?;
            Ok(row)
        })
        .await?;
    match removed {
        Some(r) => {
            tracing::info!(list = %r.list, subscriber = r.id, "unsubscribed by an operator");
            Ok(r)
        }
        None => Err(ServiceError::NotFound(format!(
            "{address} is not subscribed to `{list}`"
        ))),
    }
}

/// The list of that name, or [`ServiceError::NotFound`] naming the lists there are.
pub fn known_list(app: &App, list: &str) -> Result<std::sync::Arc<crate::registry::ListDef>> {
    let registry = app.pipeline.registry();
    registry.list(list).cloned().ok_or_else(|| {
        let names: Vec<&str> = registry.lists().map(|l| l.name.as_str()).collect();
        ServiceError::NotFound(format!(
            "no list `{list}` in the registry (lists: {})",
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        ))
    })
}

/// A plain `local@domain`, lower-cased.
pub fn valid_address(address: &str) -> Result<String> {
    let a = address.trim().to_ascii_lowercase();
    let ok = match a.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !a
                    .chars()
                    .any(|c| c.is_whitespace() || c == '<' || c == '>' || c == ',')
                && !domain.contains('@')
        }
        None => false,
    };
    if ok {
        Ok(a)
    } else {
        Err(ServiceError::Invalid(format!("`{a}` is not an address")))
    }
}
