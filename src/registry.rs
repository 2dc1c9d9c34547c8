//! The customer registry: support keys → customer → plan. Read from a TOML file named by the
//! configuration and re-read when the file changes, so keys can be added, revoked or expired
//! without a restart. A registry that fails to load at start stops the start; one that fails
//! on a later reload is logged and the last good one stays in force.

pub use crate::announce::{ListDef, ListType};
use crate::calendar::{Calendar, CalendarSpec};
use crate::workflow::Profile;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

/// What a support key entitles a customer to.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub language: String,
    pub profile: Profile,
    pub default_severity: u8,
    /// Response targets per severity 1–4, as written (e.g. "2h", "1d"); counted by the SLA clock.
    pub response_targets: [Option<String>; 4],
    /// The same targets as working time in the plan's calendar (`None`: as soon as possible).
    pub targets: [Option<chrono::Duration>; 4],
    /// Business calendar the targets and reminder intervals are counted in.
    pub calendar: Arc<Calendar>,
    pub calendar_name: String,
    /// Receive escalations and close confirmations.
    pub managers: Vec<String>,
    /// Required-information checklist (SPEC §3).
    pub required: Vec<RequiredItem>,
    pub reminders: ReminderPolicy,
    /// Resolution and closure notices ask for a 1–5 score.
    pub survey: bool,
    /// Offered for severity 1–2 in the acknowledgement when set.
    pub phone: Option<String>,
    /// Copies of new tickets and customer updates go here when set.
    pub agent_team: Option<String>,
    /// What an unauthenticated customer mail may do (`authentication`, default `prefer`).
    pub authentication: Authentication,
    /// The platform (`eu`, `us`, …) its customers are on, unless a customer names its own.
    pub platform: Option<String>,
}

/// A plan's `authentication`: how much an unauthenticated customer mail may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Authentication {
    /// It opens tickets and adds articles, but changes no status unless it carries a reply
    /// token.
    #[default]
    Prefer,
    /// It is quarantined, with a reply saying why.
    Require,
}

impl Plan {
    /// The defaults of a plan the registry does not define.
    pub fn fallback(name: &str) -> Plan {
        Plan {
            name: name.to_string(),
            language: "en".into(),
            profile: Profile::Exo,
            default_severity: 3,
            response_targets: Default::default(),
            targets: Default::default(),
            calendar: Arc::new(Calendar::Always),
            calendar_name: "24/7".into(),
            managers: Vec::new(),
            required: Vec::new(),
            reminders: ReminderPolicy {
                interval: chrono::Duration::days(3),
                interval_text: "3d".into(),
                count: 3,
                closure_warning: None,
                closure_warning_text: None,
                confirm_close: false,
            },
            survey: true,
            phone: None,
            agent_team: None,
            authentication: Authentication::Prefer,
            platform: None,
        }
    }

    /// The response target of a severity, in working seconds.
    pub fn target_secs(&self, severity: u8) -> Option<i64> {
        self.targets
            .get(usize::from(severity.clamp(1, 4)) - 1)
            .copied()
            .flatten()
            .map(|d| d.num_seconds())
    }
}

/// One item of the required-information checklist: present when the customer writes a line
/// `LABEL: value` with one of its labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredItem {
    pub name: String,
    labels: Vec<String>,
}

impl RequiredItem {
    /// Whether `text` has a line `label: something` for this item (case and accents ignored).
    pub fn present_in(&self, text: &str) -> bool {
        let lines: Vec<&str> = text.lines().collect();
        lines.iter().enumerate().any(|(i, line)| {
            let l = fold(line.trim_start_matches(|c: char| {
                c.is_whitespace() || matches!(c, '-' | '*' | '•' | '>')
            }));
            self.labels.iter().any(|label| {
                let Some(value) = l
                    .strip_prefix(label.as_str())
                    .map(|rest| rest.trim_start())
                    .and_then(|rest| rest.strip_prefix(':'))
                else {
                    return false;
                };
                // "Environment:" with the answer on the lines below it counts too.
                !value.trim().is_empty()
                    || lines.get(i + 1).is_some_and(|next| !next.trim().is_empty())
            })
        })
    }
}

fn fold(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'é' | 'è' | 'ê' | 'ë' | 'É' | 'È' => 'e',
            'à' | 'â' => 'a',
            'ô' => 'o',
            'î' | 'ï' => 'i',
            'û' | 'ù' => 'u',
            'ç' => 'c',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// Reminders while a ticket waits on the customer or for acceptance (SPEC §6).
#[derive(Debug, Clone, PartialEq)]
pub struct ReminderPolicy {
    /// Working time between reminders (and after the last one, before the next step).
    pub interval: chrono::Duration,
    pub interval_text: String,
    pub count: i64,
    /// XMPro: after the last reminder, warn "closed within PERIOD", then close after it.
    pub closure_warning: Option<chrono::Duration>,
    pub closure_warning_text: Option<String>,
    /// Ask a manager to confirm instead of closing automatically.
    pub confirm_close: bool,
}

#[derive(Debug, Clone)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub plan: Arc<Plan>,
    /// Lower-case addresses (`jane@acme.example`) or domains (`@acme.example`). Empty: any
    /// sender holding a valid key may open tickets.
    pub allowed_senders: Vec<String>,
    /// The customer's `platform`, or its plan's (`None`: neither names one).
    pub platform: Option<String>,
}

impl Customer {
    pub fn allows(&self, sender: &str) -> bool {
        let sender = sender.to_ascii_lowercase();
        self.allowed_senders.is_empty()
            || self.allowed_senders.iter().any(|a| {
                if a.starts_with('@') {
                    sender.ends_with(a.as_str())
                } else {
                    *a == sender
                }
            })
    }
}

#[derive(Debug, Clone)]
struct KeyEntry {
    customer: Arc<Customer>,
    expires: Option<DateTime<Utc>>,
    revoked: Option<DateTime<Utc>>,
}

/// The state of a support key at one instant.
#[derive(Debug, Clone)]
pub enum KeyStatus {
    Active(Arc<Customer>),
    Revoked(Arc<Customer>),
    Expired(Arc<Customer>),
    Unknown,
}

#[derive(Debug, Clone, Default)]
pub struct Registry {
    keys: HashMap<String, KeyEntry>,
    customers: HashMap<String, Arc<Customer>>,
    plans: HashMap<String, Arc<Plan>>,
    /// Support staff: addresses or `@domains` whose mail about a ticket is an agent's.
    agents: Vec<String>,
    /// Distribution lists (`[lists.NAME]`), by name.
    lists: std::collections::BTreeMap<String, Arc<ListDef>>,
}

impl Registry {
    pub fn key_status(&self, key: &str, now: DateTime<Utc>) -> KeyStatus {
        match self.keys.get(&key.to_ascii_uppercase()) {
            None => KeyStatus::Unknown,
            Some(e) if e.revoked.is_some_and(|r| r <= now) => {
                KeyStatus::Revoked(e.customer.clone())
            }
            Some(e) if e.expires.is_some_and(|x| x <= now) => {
                KeyStatus::Expired(e.customer.clone())
            }
            Some(e) => KeyStatus::Active(e.customer.clone()),
        }
    }

    pub fn customer(&self, id: &str) -> Option<&Arc<Customer>> {
        self.customers.get(id)
    }

    pub fn customer_count(&self) -> usize {
        self.customers.len()
    }

    /// The plan of that name, or the defaults (24/7, eXo, English) when the registry no longer
    /// has it: a ticket outlives registry edits.
    pub fn plan(&self, name: &str) -> Arc<Plan> {
        self.plans
            .get(name)
            .cloned()
            .unwrap_or_else(|| Arc::new(Plan::fallback(name)))
    }

    /// The first plan's agent team (plans in name order), for alerts that concern no ticket.
    pub fn any_agent_team(&self) -> Option<String> {
        let mut plans: Vec<&Arc<Plan>> = self.plans.values().collect();
        plans.sort_by(|a, b| a.name.cmp(&b.name));
        plans.iter().find_map(|p| p.agent_team.clone())
    }

    pub fn is_agent(&self, address: &str) -> bool {
        let a = address.to_ascii_lowercase();
        self.agents.iter().any(|x| {
            if x.starts_with('@') {
                a.ends_with(x.as_str())
            } else {
                *x == a
            }
        })
    }

    /// The list of that name.
    pub fn list(&self, name: &str) -> Option<&Arc<ListDef>> {
        self.lists.get(name)
    }

    /// Every list, in name order.
    pub fn lists(&self) -> impl Iterator<Item = &Arc<ListDef>> {
        self.lists.values()
    }

    /// The lists of one platform and type, in name order.
    pub fn lists_of(&self, platform: &str, list_type: ListType) -> Vec<Arc<ListDef>> {
        self.lists
            .values()
            .filter(|l| l.platform == platform && l.list_type == list_type)
            .cloned()
            .collect()
    }

    /// The list whose own address this is (compared in lower case).
    pub fn list_by_address(&self, address: &str) -> Option<&Arc<ListDef>> {
        let a = address.trim().to_ascii_lowercase();
        self.lists.values().find(|l| l.address == a)
    }

    /// The platforms the lists name, sorted, once each.
    pub fn platforms(&self) -> Vec<String> {
        let mut p: Vec<String> = self.lists.values().map(|l| l.platform.clone()).collect();
        p.sort();
        p.dedup();
        p
    }

    /// A customer's platform (its own, or its plan's).
    pub fn customer_platform(&self, id: &str) -> Option<&str> {
        self.customers.get(id)?.platform.as_deref()
    }

    /// The customers of one platform, in id order.
    pub fn customers_of(&self, platform: &str) -> Vec<Arc<Customer>> {
        let mut v: Vec<Arc<Customer>> = self
            .customers
            .values()
            .filter(|c| c.platform.as_deref() == Some(platform))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    pub fn parse(text: &str) -> Result<Registry, RegistryError> {
        let raw: RawRegistry = toml::from_str(text).map_err(|e| RegistryError {
            key: "(file)".into(),
            problem: e.to_string(),
        })?;
        let mut calendars: HashMap<String, Arc<Calendar>> = HashMap::new();
        calendars.insert("24/7".into(), Arc::new(Calendar::Always));
        for (name, spec) in &raw.calendars {
            let cal = Calendar::from_spec(spec).map_err(|e| {
                RegistryError::new(format!("calendars.{name}.{}", e.field), e.problem)
            })?;
            calendars.insert(name.clone(), Arc::new(cal));
        }
        let mut plans = HashMap::new();
        for (name, p) in raw.plans {
            let key = |k: &str| format!("plans.{name}.{k}");
            let platform = platform_name(&key("platform"), p.platform.clone())?;
            let language = p.language.unwrap_or_else(|| "en".into());
            if !crate::lang::LANGUAGES.contains(&language.as_str()) {
                return Err(RegistryError::new(
                    key("language"),
                    format!(
                        "`{language}` has no templates: use one of {:?}",
                        crate::lang::LANGUAGES
                    ),
                ));
            }
            let profile_name = p.profile.unwrap_or_else(|| "exo".into());
            let profile = Profile::parse(&profile_name).ok_or_else(|| {
                RegistryError::new(
                    key("profile"),
                    format!("`{profile_name}` is not a workflow profile: use \"exo\" or \"wso2\""),
                )
            })?;
            let default_severity = p.default_severity.unwrap_or(3);
            if !(1..=4).contains(&default_severity) {
                return Err(RegistryError::new(
                    key("default_severity"),
                    "must be 1, 2, 3 or 4",
                ));
            }
            let calendar_name = p.calendar.unwrap_or_else(|| "24/7".into());
            let calendar = calendars.get(&calendar_name).cloned().ok_or_else(|| {
                RegistryError::new(
                    key("calendar"),
                    format!("names calendar `{calendar_name}`, which no [calendars.{calendar_name}] table defines (or write \"24/7\")"),
                )
            })?;
            let mut texts: [Option<String>; 4] = Default::default();
            let mut targets: [Option<chrono::Duration>; 4] = Default::default();
            for (sev, t) in p.response_targets {
                let i = match sev.trim_start_matches("sev").parse::<usize>() {
                    Ok(n @ 1..=4) => n - 1,
                    _ => {
                        return Err(RegistryError::new(
                            key("response_targets"),
                            format!("`{sev}` is not a severity: use keys 1 to 4"),
                        ));
                    }
                };
                if t.trim().eq_ignore_ascii_case("asap") {
                    continue;
                }
                targets[i] = Some(calendar.parse_target(&t).map_err(|e| {
                    RegistryError::new(format!("{}.{sev}", key("response_targets")), e)
                })?);
                texts[i] = Some(t);
            }
            if let Some(a) = &p.agent_team
                && a.parse::<lettre::Address>().is_err()
            {
                return Err(RegistryError::new(
                    key("agent_team"),
                    format!("`{a}` is not a mail address"),
                ));
            }
            for (i, m) in p.managers.iter().enumerate() {
                if m.parse::<lettre::Address>().is_err() {
                    return Err(RegistryError::new(
                        format!("{}[{i}]", key("managers")),
                        format!("`{m}` is not a mail address"),
                    ));
                }
            }
            let authentication = match p.authentication.as_deref() {
                None | Some("prefer") => Authentication::Prefer,
                Some("require") => Authentication::Require,
                Some(other) => {
                    return Err(RegistryError::new(
                        key("authentication"),
                        format!("`{other}` is not a choice: use \"require\" or \"prefer\""),
                    ));
                }
            };
            let r = p.reminders.unwrap_or_default();
            let interval_text = r.interval.unwrap_or_else(|| "3d".into());
            let interval = calendar
                .parse_target(&interval_text)
                .map_err(|e| RegistryError::new(key("reminders.interval"), e))?;
            let closure_warning = r
                .closure_warning
                .as_deref()
                .map(|w| calendar.parse_target(w))
                .transpose()
                .map_err(|e| RegistryError::new(key("reminders.closure_warning"), e))?;
            let count = r.count.unwrap_or(3);
            if !(1..=20).contains(&count) {
                return Err(RegistryError::new(
                    key("reminders.count"),
                    "must be from 1 to 20",
                ));
            }
            plans.insert(
                name.clone(),
                Arc::new(Plan {
                    name,
                    language,
                    profile,
                    default_severity,
                    response_targets: texts,
                    targets,
                    calendar,
                    calendar_name,
                    managers: p.managers.iter().map(|m| m.to_ascii_lowercase()).collect(),
                    required: p
                        .required_information
                        .iter()
                        .map(|item| {
                            let labels: Vec<String> = item
                                .split('|')
                                .map(|l| fold(l.trim()))
                                .filter(|l| !l.is_empty())
                                .collect();
                            RequiredItem {
                                name: item.split('|').next().unwrap_or(item).trim().to_string(),
                                labels,
                            }
                        })
                        .filter(|i| !i.labels.is_empty())
                        .collect(),
                    reminders: ReminderPolicy {
                        interval,
                        interval_text,
                        count,
                        closure_warning,
                        closure_warning_text: r.closure_warning,
                        confirm_close: r.confirm_close.unwrap_or(false),
                    },
                    survey: p.survey.unwrap_or(true),
                    phone: p.phone.filter(|s| !s.trim().is_empty()),
                    agent_team: p.agent_team,
                    authentication,
                    platform,
                }),
            );
        }
        let mut reg = Registry {
            agents: raw
                .agents
                .iter()
                .map(|a| a.trim().to_ascii_lowercase())
                .collect(),
            plans: plans.clone(),
            ..Registry::default()
        };
        reg.lists = parse_lists(raw.lists, &calendars)?;
        for (i, c) in raw.customers.into_iter().enumerate() {
            let at = |k: &str| format!("customers[{i}].{k}");
            let own_platform = platform_name(&at("platform"), c.platform)?;
            if c.id.trim().is_empty() {
                return Err(RegistryError::new(at("id"), "must not be empty"));
            }
            let plan = plans.get(&c.plan).cloned().ok_or_else(|| {
                RegistryError::new(
                    at("plan"),
                    format!(
                        "names plan `{}`, which no [plans.{}] table defines",
                        c.plan, c.plan
                    ),
                )
            })?;
            let customer = Arc::new(Customer {
                name: c.name.unwrap_or_else(|| c.id.clone()),
                id: c.id.clone(),
                platform: own_platform.or_else(|| plan.platform.clone()),
                plan,
                allowed_senders: c
                    .allowed_senders
                    .into_iter()
                    .map(|s| s.trim().to_ascii_lowercase())
                    .collect(),
            });
            if reg
                .customers
                .insert(c.id.clone(), customer.clone())
                .is_some()
            {
                return Err(RegistryError::new(
                    at("id"),
                    format!("`{}` is used by two customers", c.id),
                ));
            }
            for (j, k) in c.keys.into_iter().enumerate() {
                let kat = |f: &str| at(&format!("keys[{j}].{f}"));
                let norm = k.key.trim().to_ascii_uppercase();
                if norm.is_empty() {
                    return Err(RegistryError::new(kat("key"), "must not be empty"));
                }
                let entry = KeyEntry {
                    customer: customer.clone(),
                    expires: k
                        .expires
                        .as_deref()
                        .map(|t| instant(&kat("expires"), t))
                        .transpose()?,
                    revoked: k
                        .revoked
                        .as_deref()
                        .map(|t| instant(&kat("revoked"), t))
                        .transpose()?,
                };
                if reg.keys.insert(norm.clone(), entry).is_some() {
                    return Err(RegistryError::new(
                        kat("key"),
                        format!("`{norm}` is listed twice"),
                    ));
                }
            }
        }
        Ok(reg)
    }
}

/// A `platform` value: trimmed, lower-case, letters, digits, `-` and `_`.
fn platform_name(key: &str, p: Option<String>) -> Result<Option<String>, RegistryError> {
    let Some(p) = p else { return Ok(None) };
    let p = p.trim().to_ascii_lowercase();
    if p.is_empty()
        || !p
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(RegistryError::new(
            key,
            format!("`{p}` is not a platform name: use letters, digits, `-` or `_` (e.g. \"eu\")"),
        ));
    }
    Ok(Some(p))
}

/// The `[lists.NAME]` tables, checked: a known type, a platform, an address with a domain
/// used by one list only, a language with templates, a calendar the registry defines.
fn parse_lists(
    raw: HashMap<String, RawList>,
    calendars: &HashMap<String, Arc<Calendar>>,
) -> Result<std::collections::BTreeMap<String, Arc<ListDef>>, RegistryError> {
    let mut lists = std::collections::BTreeMap::new();
    let mut addresses: HashMap<String, String> = HashMap::new();
    for (name, l) in raw {
        let key = |k: &str| format!("lists.{name}.{k}");
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        {
            return Err(RegistryError::new(
                format!("lists.{name}"),
                "a list name is letters, digits, `-`, `_` or `.` (it is part of List-Id)",
            ));
        }
        let list_type = ListType::parse(l.list_type.trim()).ok_or_else(|| {
            RegistryError::new(
                key("type"),
                format!(
                    "`{}` is not a list type: use informational, incident, maintenance or release",
                    l.list_type
                ),
            )
        })?;
        let platform = platform_name(&key("platform"), Some(l.platform))?.unwrap_or_default();
        let address = l.address.trim().to_ascii_lowercase();
        match address.split_once('@') {
            Some((local, domain)) if !local.is_empty() && domain.contains('.') => {}
            _ => {
                return Err(RegistryError::new(
                    key("address"),
                    format!("`{address}` is not an address (write name@domain)"),
                ));
            }
        }
        if let Some(other) = addresses.insert(address.clone(), name.clone()) {
            return Err(RegistryError::new(
                key("address"),
                format!("`{address}` is also the address of list `{other}`"),
            ));
        }
        let language = l.language.unwrap_or_else(|| "en".into());
        if !crate::lang::LANGUAGES.contains(&language.as_str()) {
            return Err(RegistryError::new(
                key("language"),
                format!(
                    "`{language}` has no templates: use one of {:?}",
                    crate::lang::LANGUAGES
                ),
            ));
        }
        let calendar_name = l.calendar.unwrap_or_else(|| "24/7".into());
        let calendar = calendars.get(&calendar_name).cloned().ok_or_else(|| {
            RegistryError::new(
                key("calendar"),
                format!("names calendar `{calendar_name}`, which no [calendars.{calendar_name}] table defines (or write \"24/7\")"),
            )
        })?;
        lists.insert(
            name.clone(),
            Arc::new(ListDef {
                name,
                list_type,
                platform,
                address,
                language,
                calendar_name,
                calendar,
            }),
        );
    }
    Ok(lists)
}

/// `2027-01-31` (the key counts through that whole day, UTC) or an RFC 3339 instant.
fn instant(key: &str, text: &str) -> Result<DateTime<Utc>, RegistryError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        // A key valid "until 2027-01-31" still works all that day (UTC).
        let next = d.succ_opt().unwrap_or(d);
        return Ok(next.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    Err(RegistryError::new(
        key,
        format!("`{text}` is not a date: write 2027-01-31 or an RFC 3339 instant"),
    ))
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("customer registry error at `{key}`: {problem}")]
pub struct RegistryError {
    pub key: String,
    pub problem: String,
}

impl RegistryError {
    fn new(key: impl Into<String>, problem: impl Into<String>) -> Self {
        RegistryError {
            key: key.into(),
            problem: problem.into(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegistry {
    #[serde(default)]
    agents: Vec<String>,
    #[serde(default)]
    calendars: HashMap<String, CalendarSpec>,
    #[serde(default)]
    plans: HashMap<String, RawPlan>,
    #[serde(default)]
    customers: Vec<RawCustomer>,
    #[serde(default)]
    lists: HashMap<String, RawList>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawList {
    #[serde(rename = "type")]
    list_type: String,
    platform: String,
    address: String,
    language: Option<String>,
    calendar: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlan {
    language: Option<String>,
    profile: Option<String>,
    default_severity: Option<u8>,
    #[serde(default)]
    response_targets: HashMap<String, String>,
    phone: Option<String>,
    agent_team: Option<String>,
    calendar: Option<String>,
    #[serde(default)]
    managers: Vec<String>,
    #[serde(default)]
    required_information: Vec<String>,
    reminders: Option<RawReminders>,
    survey: Option<bool>,
    authentication: Option<String>,
    platform: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReminders {
    interval: Option<String>,
    count: Option<i64>,
    closure_warning: Option<String>,
    confirm_close: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCustomer {
    id: String,
    name: Option<String>,
    plan: String,
    platform: Option<String>,
    #[serde(default)]
    allowed_senders: Vec<String>,
    #[serde(default)]
    keys: Vec<RawKey>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    key: String,
    expires: Option<String>,
    revoked: Option<String>,
}

/// The registry file and the last good registry read from it. `current()` re-reads the file
/// when its modification time or size changed; a broken or vanished file keeps the last good
/// registry.
pub struct RegistryFile {
    path: PathBuf,
    state: RwLock<(Option<Stamp>, Arc<Registry>)>,
}

impl RegistryFile {
    /// Loads the file; a file missing at start is an empty registry (no customers yet).
    pub fn open(path: &Path) -> Result<RegistryFile, RegistryError> {
        let stamp = stamp(path);
        let reg = load(path)?.unwrap_or_default();
        Ok(RegistryFile {
            path: path.to_path_buf(),
            state: RwLock::new((stamp, Arc::new(reg))),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The registry in force, re-read first if the file changed since the last read.
    pub fn current(&self) -> Arc<Registry> {
        let now_stamp = stamp(&self.path);
        {
            let st = self.state.read().unwrap_or_else(|p| p.into_inner());
            if st.0 == now_stamp {
                return st.1.clone();
            }
        }
        let mut st = self.state.write().unwrap_or_else(|p| p.into_inner());
        if st.0 != now_stamp {
            match load(&self.path) {
                Ok(Some(reg)) => {
                    tracing::info!(
                        path = %self.path.display(),
                        customers = reg.customer_count(),
                        "customer registry reloaded"
                    );
                    st.1 = Arc::new(reg);
                }
                // Gone while running (deleted, or a deployment that removes before it
                // writes): emptying the registry would answer every new request with an
                // unknown-key rejection, so the last good one stays until the file is back.
                Ok(None) => tracing::error!(
                    path = %self.path.display(),
                    "customer registry file is missing: put it back; the previous registry stays in force"
                ),
                Err(e) => tracing::error!(
                    path = %self.path.display(),
                    error = %e,
                    "customer registry not reloaded: fix the file; the previous registry stays in force"
                ),
            }
            st.0 = now_stamp;
        }
        st.1.clone()
    }
}

/// Modification time and size: what tells that the file changed.
type Stamp = (SystemTime, u64);

fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// The registry in the file; `None` when there is no file.
fn load(path: &Path) -> Result<Option<Registry>, RegistryError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Registry::parse(&text).map(Some).map_err(|e| RegistryError {
            key: e.key,
            problem: format!("{} (in {})", e.problem, path.display()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(RegistryError::new(
            "registry.path",
            format!("cannot read {}: {e}", path.display()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTS: &str = r#"
[plans.eu]
platform = "EU"

[[customers]]
id = "acme"
plan = "eu"

[[customers]]
id = "globex"
plan = "eu"
platform = "us"

[lists.eu-incidents]
type = "incident"
platform = "eu"
address = "EU-Incidents@Lists.example.com"

[lists.us-incidents]
type = "incident"
platform = "us"
address = "us-incidents@lists.example.com"
language = "fr"
"#;

    #[test]
    fn lists_and_platforms_are_read_and_a_customer_overrides_its_plan() {
        let r = Registry::parse(LISTS).unwrap();
        let eu = r.list("eu-incidents").unwrap();
        assert_eq!(eu.list_type, ListType::Incident);
        assert_eq!(eu.address, "eu-incidents@lists.example.com");
        assert_eq!(eu.list_id(), "<eu-incidents.lists.example.com>");
        assert_eq!(eu.language, "en");
        assert_eq!(eu.calendar_name, "24/7");
        assert_eq!(r.lists_of("eu", ListType::Incident).len(), 1);
        assert!(r.lists_of("eu", ListType::Release).is_empty());
        assert_eq!(r.customer_platform("acme"), Some("eu"));
        assert_eq!(r.customer_platform("globex"), Some("us"));
        assert_eq!(r.platforms(), vec!["eu", "us"]);
        assert_eq!(
            r.list_by_address("US-INCIDENTS@lists.example.com")
                .unwrap()
                .name,
            "us-incidents"
        );
    }

    #[test]
    fn a_wrong_list_names_its_key() {
        let cases = [
            (
                "type = \"incident\"",
                "type = \"outages\"",
                "lists.eu-incidents.type",
            ),
            (
                "address = \"EU-Incidents@Lists.example.com\"",
                "address = \"us-incidents@lists.example.com\"",
                "address",
            ),
            (
                "address = \"EU-Incidents@Lists.example.com\"",
                "address = \"not-an-address\"",
                "lists.eu-incidents.address",
            ),
            (
                "language = \"fr\"",
                "language = \"de\"",
                "lists.us-incidents.language",
            ),
            (
                "language = \"fr\"",
                "calendar = \"nowhere\"",
                "lists.us-incidents.calendar",
            ),
            (
                "platform = \"EU\"",
                "platform = \"e u\"",
                "plans.eu.platform",
            ),
        ];
        for (from, to, key) in cases {
            let text = LISTS.replacen(from, to, 1);
            let e = Registry::parse(&text).unwrap_err();
            assert!(e.key.ends_with(key) || e.key.contains(key), "{to}: {e}");
        }
    }

    const SAMPLE: &str = r#"
[plans.standard]
language = "en"
response_targets = { 1 = "2h", 2 = "1d" }

[plans.fr]
language = "fr"
phone = "+33 1 00 00 00 00"

[[customers]]
id = "acme"
name = "ACME"
plan = "standard"
allowed_senders = ["@acme.example", "boss@partner.example"]
keys = [
  { key = "ACME-0000-0000-0001" },
  { key = "acme-0000-0000-0002", revoked = "2026-06-01" },
  { key = "ACME-0000-0000-0003", expires = "2026-10-31" },
]
"#;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn key_states_follow_dates() {
        let r = Registry::parse(SAMPLE).unwrap();
        let now = at("2026-11-22T12:00:00Z");
        assert!(
            matches!(r.key_status("acme-0000-0000-0001", now), KeyStatus::Active(c) if c.id == "acme")
        );
        assert!(matches!(
            r.key_status("ACME-0000-0000-0002", now),
            KeyStatus::Revoked(_)
        ));
        assert!(matches!(
            r.key_status("ACME-0000-0000-0002", at("2026-05-31T23:00:00Z")),
            KeyStatus::Active(_)
        ));
        assert!(matches!(
            r.key_status("ACME-0000-0000-0003", now),
            KeyStatus::Expired(_)
        ));
        // valid through the whole expiry day
        assert!(matches!(
            r.key_status("ACME-0000-0000-0003", at("2026-10-31T23:59:00Z")),
            KeyStatus::Active(_)
        ));
        assert!(matches!(
            r.key_status("ZZZZ-0000-0000-0009", now),
            KeyStatus::Unknown
        ));
    }

    #[test]
    fn allowed_senders_by_address_and_domain() {
        let r = Registry::parse(SAMPLE).unwrap();
        let c = r.customer("acme").unwrap();
        assert!(c.allows("Jane@ACME.example"));
        assert!(c.allows("boss@partner.example"));
        assert!(!c.allows("intern@partner.example"));
        assert!(!c.allows("x@notacme.example"));
    }

    #[test]
    fn errors_name_the_key() {
        let e = Registry::parse("[[customers]]\nid = \"a\"\nplan = \"gold\"").unwrap_err();
        assert_eq!(e.key, "customers[0].plan");
        let e = Registry::parse("[plans.p]\nlanguage = \"de\"").unwrap_err();
        assert_eq!(e.key, "plans.p.language");
        let e = Registry::parse("[plans.p]\n[[customers]]\nid = \"a\"\nplan = \"p\"\nkeys = [{ key = \"K\", expires = \"someday\" }]").unwrap_err();
        assert_eq!(e.key, "customers[0].keys[0].expires");
    }

    #[test]
    fn a_file_that_vanishes_keeps_the_last_good_registry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("customers.toml");
        std::fs::write(&path, SAMPLE).unwrap();
        let file = RegistryFile::open(&path).unwrap();
        assert_eq!(file.current().customer_count(), 1);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            file.current().customer_count(),
            1,
            "a vanished file must not empty the registry"
        );
        assert_eq!(file.current().customer_count(), 1, "nor on a later look");
        // Back with an edit: read again.
        let two = format!("{SAMPLE}\n[[customers]]\nid = \"globex\"\nplan = \"fr\"\n");
        std::fs::write(&path, two).unwrap();
        assert_eq!(file.current().customer_count(), 2);

        // Missing at start (no customers yet), then written, then gone: the written one stays.
        let later = dir.path().join("later.toml");
        let file = RegistryFile::open(&later).unwrap();
        assert_eq!(file.current().customer_count(), 0);
        std::fs::write(&later, SAMPLE).unwrap();
        assert_eq!(file.current().customer_count(), 1);
        std::fs::remove_file(&later).unwrap();
        assert_eq!(file.current().customer_count(), 1);
    }

    #[test]
    fn file_edits_are_picked_up_and_bad_edits_keep_the_last_good_registry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("customers.toml");
        let file = RegistryFile::open(&path).unwrap();
        assert_eq!(
            file.current().customer_count(),
            0,
            "missing file means no customers"
        );
        std::fs::write(&path, SAMPLE).unwrap();
        assert_eq!(file.current().customer_count(), 1);
        std::fs::write(&path, "this is = = not toml, and longer than before").unwrap();
        assert_eq!(
            file.current().customer_count(),
            1,
            "last good registry stays"
        );
    }

    #[test]
    fn plans_choose_how_much_unauthenticated_mail_may_do() {
        let r = Registry::parse(
            "[plans.a]\n[plans.b]\nauthentication = \"require\"\n[plans.c]\nauthentication = \"prefer\"\n",
        )
        .unwrap();
        assert_eq!(r.plan("a").authentication, Authentication::Prefer);
        assert_eq!(r.plan("b").authentication, Authentication::Require);
        assert_eq!(r.plan("c").authentication, Authentication::Prefer);
        let e = Registry::parse("[plans.a]\nauthentication = \"always\"\n").unwrap_err();
        assert_eq!(e.key, "plans.a.authentication");
    }
}
