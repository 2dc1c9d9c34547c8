//! A distribution list as the registry declares it (`[lists.NAME]`).

use crate::calendar::Calendar;
use serde::Serialize;
use std::sync::Arc;

/// What a list carries: `type` in `[lists.NAME]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ListType {
    Informational,
    Incident,
    Maintenance,
    Release,
}

impl ListType {
    pub const ALL: [ListType; 4] = [
        ListType::Informational,
        ListType::Incident,
        ListType::Maintenance,
        ListType::Release,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ListType::Informational => "informational",
            ListType::Incident => "incident",
            ListType::Maintenance => "maintenance",
            ListType::Release => "release",
        }
    }

    pub fn parse(s: &str) -> Option<ListType> {
        ListType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl std::fmt::Display for ListType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `[lists.NAME]` table, checked at load.
#[derive(Debug, Clone, Serialize)]
pub struct ListDef {
    pub name: String,
    #[serde(rename = "type")]
    pub list_type: ListType,
    /// `eu`, `us`, …: the customers (or plans) of the same `platform` may subscribe.
    pub platform: String,
    /// The list's own address, lower-cased: `From`, `List-Id`, where mail commands go.
    pub address: String,
    /// The language its mail is written in (`en`, `fr`; default `en`).
    pub language: String,
    /// The business calendar of notice rules (a `[calendars.NAME]` or `24/7`, the default).
    pub calendar_name: String,
    #[serde(skip)]
    pub calendar: Arc<Calendar>,
}

impl ListDef {
    /// `List-Id` value: `<NAME.DOMAIN>` where DOMAIN is the list address's domain
    /// (RFC 2919), e.g. `<eu-incidents.lists.example.com>`.
    pub fn list_id(&self) -> String {
        let domain = self
            .address
            .rsplit_once('@')
            .map_or("localhost", |(_, d)| d);
        format!("<{}.{}>", self.name, domain)
    }
}
