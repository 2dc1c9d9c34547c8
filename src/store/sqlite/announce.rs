//! [`AnnounceRead`] and [`AnnounceTx`] on SQLite: the same functions over the store's
//! connection and over a transaction's.

use super::*;

const SUBSCRIBER_COLUMNS: &str = "id, list, address, customer, state, shared, added_by, created_at, \
     confirmed_at, expires_at";

const ANNOUNCEMENT_COLUMNS: &str = "id, kind, state, platform, lists, services, title, impact, body, \
     source, emergency, starts_at, ends_at, restoration_eta, update_interval_secs, \
     reminder_before_secs, pending_text, created_at, scheduled_at, communicated_at, closed_at, \
     last_mail_at, next_due_at, thread_message_id";

/// A stored name this version must know, or an error naming the table and row.
fn named<T>(
    r: &Row<'_>,
    col: usize,
    table: &str,
    parse: fn(&str) -> Option<T>,
) -> rusqlite::Result<T> {
    let v: String = r.get(col)?;
    parse(&v).ok_or_else(|| {
        let id: i64 = r.get(0).unwrap_or_default();
        rusqlite::Error::FromSqlConversionFailure(
            col,
            rusqlite::types::Type::Text,
            format!("{table} #{id}: `{v}` is not a value this version knows (column {col})").into(),
        )
    })
}

fn subscriber_row(r: &Row<'_>) -> rusqlite::Result<SubscriberRow> {
    Ok(SubscriberRow {
        id: r.get(0)?,
        list: r.get(1)?,
        address: r.get(2)?,
        customer: r.get(3)?,
        state: named(r, 4, "subscribers", SubscriberState::parse)?,
        shared: r.get(5)?,
        added_by: r.get(6)?,
        created_at: parse_ts(&r.get::<_, String>(7)?)?,
        confirmed_at: parse_opt_ts(r.get(8)?)?,
        expires_at: parse_opt_ts(r.get(9)?)?,
    })
}

fn announcement_row(r: &Row<'_>) -> rusqlite::Result<AnnouncementRow> {
    let kind = named(r, 1, "announcements", AnnouncementKind::parse)?;
    let state = named(r, 2, "announcements", AnnouncementState::parse)?;
    Ok(AnnouncementRow {
        id: r.get(0)?,
        kind,
        state,
        platform: r.get(3)?,
        lists: split_lines(&r.get::<_, String>(4)?),
        services: split_lines(&r.get::<_, String>(5)?),
        title: r.get(6)?,
        impact: r.get(7)?,
        body: r.get(8)?,
        source: r.get(9)?,
        emergency: r.get(10)?,
        starts_at: parse_opt_ts(r.get(11)?)?,
        ends_at: parse_opt_ts(r.get(12)?)?,
        restoration_eta: parse_opt_ts(r.get(13)?)?,
        update_interval_secs: r.get(14)?,
        reminder_before_secs: r.get(15)?,
        pending_text: r.get(16)?,
        created_at: parse_ts(&r.get::<_, String>(17)?)?,
        scheduled_at: parse_opt_ts(r.get(18)?)?,
        communicated_at: parse_opt_ts(r.get(19)?)?,
        closed_at: parse_opt_ts(r.get(20)?)?,
        last_mail_at: parse_opt_ts(r.get(21)?)?,
        next_due_at: parse_opt_ts(r.get(22)?)?,
        thread_message_id: r.get(23)?,
    })
}

fn update_row(r: &Row<'_>) -> rusqlite::Result<AnnouncementUpdateRow> {
    Ok(AnnouncementUpdateRow {
        id: r.get(0)?,
        announcement_id: r.get(1)?,
        at: parse_ts(&r.get::<_, String>(2)?)?,
        kind: named(r, 3, "announcement_updates", UpdateKind::parse)?,
        text: r.get(4)?,
        recipients: r.get(5)?,
    })
}

/// The connection the queries run on: the store's, or a transaction's.
trait Conn {
    fn c(&self) -> &Connection;
}

impl Conn for SqliteStore {
    fn c(&self) -> &Connection {
        &self.conn
    }
}

impl Conn for SqliteTx<'_> {
    fn c(&self) -> &Connection {
        &self.tx
    }
}

/// One body for both connections (a blanket impl would overlap the other backend's).
macro_rules! announce_read {
    ($t:ty) => {
        impl AnnounceRead for $t {
    fn subscriber(&mut self, id: i64) -> Result<Option<SubscriberRow>> {
        Ok(self
            .c()
            .prepare_cached(&format!(
                "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE id = ?1"
            ))?
            .query_row(params![id], subscriber_row)
            .optional()?)
    }

    fn subscriber_by_address(
        &mut self,
        list: &str,
        address: &str,
    ) -> Result<Option<SubscriberRow>> {
        Ok(self
            .c()
            .prepare_cached(&format!(
                "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE list = ?1 AND address = ?2"
            ))?
            .query_row(
                params![list, address.trim().to_ascii_lowercase()],
                subscriber_row,
            )
            .optional()?)
    }

    fn subscribers(&mut self, list: &str) -> Result<Vec<SubscriberRow>> {
        let mut st = self.c().prepare_cached(&format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE list = ?1 ORDER BY address"
        ))?;
        let rows = st.query_map(params![list], subscriber_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn confirmed_subscribers(&mut self, lists: &[String]) -> Result<Vec<SubscriberRow>> {
        let mut out = Vec::new();
        let mut st = self.c().prepare_cached(&format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE list = ?1 AND state = 'confirmed' \
             ORDER BY address"
        ))?;
        let mut sorted: Vec<&String> = lists.iter().collect();
        sorted.sort();
        sorted.dedup();
        for list in sorted {
            let rows = st.query_map(params![list], subscriber_row)?;
            for r in rows {
                out.push(r?);
            }
        }
        Ok(out)
    }

    fn mailable_subscribers(&mut self, lists: &[String]) -> Result<Vec<SubscriberRow>> {
        let mut out = Vec::new();
        let mut st = self.c().prepare_cached(&format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE list = ?1 AND state = 'confirmed' \
             AND NOT EXISTS (SELECT 1 FROM suppressions x WHERE x.address = subscribers.address) \
             ORDER BY address"
        ))?;
        let mut sorted: Vec<&String> = lists.iter().collect();
        sorted.sort();
        sorted.dedup();
        for list in sorted {
            let rows = st.query_map(params![list], subscriber_row)?;
            for r in rows {
                out.push(r?);
            }
        }
        Ok(out)
    }

    fn subscriptions_of(&mut self, address: &str) -> Result<Vec<SubscriberRow>> {
        let mut st = self.c().prepare_cached(&format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE address = ?1 ORDER BY list"
        ))?;
        let rows = st.query_map(
            params![address.trim().to_ascii_lowercase()],
            subscriber_row,
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn announcement(&mut self, id: i64) -> Result<Option<AnnouncementRow>> {
        Ok(self
            .c()
            .prepare_cached(&format!(
                "SELECT {ANNOUNCEMENT_COLUMNS} FROM announcements WHERE id = ?1"
            ))?
            .query_row(params![id], announcement_row)
            .optional()?)
    }

    fn announcements(&mut self, q: &AnnouncementQuery) -> Result<Vec<AnnouncementRow>> {
        use rusqlite::types::Value;
        let mut clauses: Vec<String> = Vec::new();
        let mut values: Vec<Value> = Vec::new();
        // Each clause marks its parameters with `?#`, numbered here in order (a plain `?`
        // would also match the `?` of one already numbered).
        let mut add = |clause: String, v: Vec<Value>| {
            let mut c = clause;
            for v in v {
                values.push(v);
                c = c.replacen("?#", &format!("?{}", values.len()), 1);
            }
            clauses.push(c);
        };
        if let Some(p) = &q.platform {
            add("platform = ?#".into(), vec![Value::Text(p.clone())]);
        }
        if !q.kinds.is_empty() {
            let marks = vec!["?#"; q.kinds.len()].join(", ");
            add(
                format!("kind IN ({marks})"),
                q.kinds
                    .iter()
                    .map(|k| Value::Text(k.as_str().into()))
                    .collect(),
            );
        }
        if !q.states.is_empty() {
            let marks = vec!["?#"; q.states.len()].join(", ");
            add(
                format!("state IN ({marks})"),
                q.states
                    .iter()
                    .map(|k| Value::Text(k.as_str().into()))
                    .collect(),
            );
        }
        if let Some(s) = q.since {
            add("created_at >= ?#".into(), vec![Value::Text(ts(s))]);
        }
        if let Some(b) = q.before_id {
            add("id < ?#".into(), vec![Value::Integer(b)]);
        }
        let filter = if clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", clauses.join(" AND "))
        };
        let limit = if q.limit == 0 {
            String::new()
        } else {
            format!("LIMIT {}", q.limit)
        };
        let mut st = self.c().prepare(&format!(
            "SELECT {ANNOUNCEMENT_COLUMNS} FROM announcements {filter} ORDER BY id DESC {limit}"
        ))?;
        let rows = st.query_map(rusqlite::params_from_iter(values), announcement_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn announcement_updates(
        &mut self,
        announcement_id: i64,
    ) -> Result<Vec<AnnouncementUpdateRow>> {
        let mut st = self.c().prepare_cached(
            "SELECT id, announcement_id, at, kind, text, recipients FROM announcement_updates \
             WHERE announcement_id = ?1 ORDER BY id",
        )?;
        let rows = st.query_map(params![announcement_id], update_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn open_outages(&mut self, platform: &str) -> Result<Vec<AnnouncementRow>> {
        let mut st = self.c().prepare_cached(&format!(
            "SELECT {ANNOUNCEMENT_COLUMNS} FROM announcements \
             WHERE platform = ?1 AND kind = 'outage' AND state = 'open' ORDER BY id"
        ))?;
        let rows = st.query_map(params![platform], announcement_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn due_announcements(
        &mut self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AnnouncementRow>> {
        let mut st = self.c().prepare_cached(&format!(
            "SELECT {ANNOUNCEMENT_COLUMNS} FROM announcements \
             WHERE next_due_at IS NOT NULL AND next_due_at <= ?1 ORDER BY next_due_at, id LIMIT ?2"
        ))?;
        let rows = st.query_map(params![ts(now), limit as i64], announcement_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn next_announcement_due(&mut self) -> Result<Option<DateTime<Utc>>> {
        let v: Option<String> = self
            .c()
            .prepare_cached(
                "SELECT min(next_due_at) FROM announcements WHERE next_due_at IS NOT NULL",
            )?
            .query_row([], |r| r.get(0))?;
        Ok(parse_opt_ts(v)?)
    }
}
    };
}

announce_read!(SqliteStore);
announce_read!(SqliteTx<'_>);

impl AnnounceTx for SqliteTx<'_> {
    fn upsert_subscriber(&mut self, s: &NewSubscriber<'_>) -> Result<SubscriberRow> {
        let address = s.address.trim().to_ascii_lowercase();
        let confirmed = s.state == SubscriberState::Confirmed;
        self.tx
            .prepare_cached(
                "INSERT INTO subscribers (list, address, customer, state, shared, added_by, created_at, \
                 confirmed_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, CASE WHEN ?8 THEN ?7 END, ?9) \
                 ON CONFLICT (list, address) DO UPDATE SET customer = excluded.customer, \
                 shared = excluded.shared, added_by = excluded.added_by, \
                 state = CASE WHEN subscribers.state = 'confirmed' THEN 'confirmed' ELSE excluded.state END, \
                 confirmed_at = CASE WHEN subscribers.state = 'confirmed' THEN subscribers.confirmed_at \
                   ELSE excluded.confirmed_at END, \
                 expires_at = CASE WHEN subscribers.state = 'confirmed' OR excluded.state = 'confirmed' \
                   THEN NULL ELSE excluded.expires_at END",
            )?
            .execute(params![
                s.list,
                address,
                s.customer,
                s.state.as_str(),
                s.shared,
                s.added_by,
                ts(s.now),
                confirmed,
                if confirmed { None } else { opt_ts(s.expires_at) },
            ])?;
        self.subscriber_by_address(s.list, &address)?
            .ok_or_else(|| StoreError::Other("subscriber vanished after its upsert".into()))
    }

    fn confirm_subscriber(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        let n = self
            .tx
            .prepare_cached(
                "UPDATE subscribers SET state = 'confirmed', confirmed_at = ?2, expires_at = NULL \
                 WHERE id = ?1 AND state = 'pending'",
            )?
            .execute(params![id, ts(now)])?;
        Ok(n > 0)
    }

    fn remove_subscriber(&mut self, id: i64) -> Result<bool> {
        let n = self
            .tx
            .prepare_cached("DELETE FROM subscribers WHERE id = ?1")?
            .execute(params![id])?;
        Ok(n > 0)
    }

    fn expire_pending(&mut self, now: DateTime<Utc>) -> Result<usize> {
        Ok(self
            .tx
            .prepare_cached("DELETE FROM subscribers WHERE state = 'pending' AND expires_at <= ?1")?
            .execute(params![ts(now)])?)
    }

    fn insert_announcement(&mut self, a: &AnnouncementRow) -> Result<i64> {
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO announcements ({}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, \
                 ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23)",
                &ANNOUNCEMENT_COLUMNS["id, ".len()..]
            ))?
            .execute(rusqlite::params_from_iter(announcement_params(a)))?;
        Ok(self.tx.last_insert_rowid())
    }

    fn save_announcement(&mut self, a: &AnnouncementRow) -> Result<()> {
        let mut p = announcement_params(a);
        p.push(Box::new(a.id));
        let n = self
            .tx
            .prepare_cached(
                "UPDATE announcements SET kind = ?1, state = ?2, platform = ?3, lists = ?4, \
                 services = ?5, title = ?6, impact = ?7, body = ?8, source = ?9, emergency = ?10, \
                 starts_at = ?11, ends_at = ?12, restoration_eta = ?13, update_interval_secs = ?14, \
                 reminder_before_secs = ?15, pending_text = ?16, created_at = ?17, scheduled_at = ?18, \
                 communicated_at = ?19, closed_at = ?20, last_mail_at = ?21, next_due_at = ?22, \
                 thread_message_id = ?23 WHERE id = ?24",
            )?
            .execute(rusqlite::params_from_iter(p))?;
        if n == 0 {
            return Err(StoreError::Other(format!(
                "announcement #{} does not exist",
                a.id
            )));
        }
        Ok(())
    }

    fn insert_announcement_update(
        &mut self,
        announcement_id: i64,
        at: DateTime<Utc>,
        kind: UpdateKind,
        text: &str,
        recipients: i64,
    ) -> Result<i64> {
        self.tx
            .prepare_cached(
                "INSERT INTO announcement_updates (announcement_id, at, kind, text, recipients) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![
                announcement_id,
                ts(at),
                kind.as_str(),
                text,
                recipients
            ])?;
        Ok(self.tx.last_insert_rowid())
    }
}

/// The 23 columns after `id`, in [`ANNOUNCEMENT_COLUMNS`] order.
fn announcement_params(a: &AnnouncementRow) -> Vec<Box<dyn rusqlite::ToSql>> {
    vec![
        Box::new(a.kind.as_str()),
        Box::new(a.state.as_str()),
        Box::new(a.platform.clone()),
        Box::new(join_lines(&a.lists)),
        Box::new(join_lines(&a.services)),
        Box::new(a.title.clone()),
        Box::new(a.impact.clone()),
        Box::new(a.body.clone()),
        Box::new(a.source.clone()),
        Box::new(a.emergency),
        Box::new(opt_ts(a.starts_at)),
        Box::new(opt_ts(a.ends_at)),
        Box::new(opt_ts(a.restoration_eta)),
        Box::new(a.update_interval_secs),
        Box::new(a.reminder_before_secs),
        Box::new(a.pending_text.clone()),
        Box::new(ts(a.created_at)),
        Box::new(opt_ts(a.scheduled_at)),
        Box::new(opt_ts(a.communicated_at)),
        Box::new(opt_ts(a.closed_at)),
        Box::new(opt_ts(a.last_mail_at)),
        Box::new(opt_ts(a.next_due_at)),
        Box::new(a.thread_message_id.clone()),
    ]
}
