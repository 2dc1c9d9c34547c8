//! [`AnnounceRead`] and [`AnnounceTx`] on PostgreSQL: the same queries as SQLite's, over a
//! pooled connection ([`PgStore`]) or the transaction's ([`PgTx`]). The tables are never
//! buffered (ADR 0009): in a batch transaction a write first takes the writer lock and
//! flushes the buffer (`sync`); the reads a write follows (an announcement by id, the due
//! timers, listings) take the lock first, so two instances never fire one timer twice; the
//! per-mail reads (subscribers, open outages) take nothing.

use super::tx::PgTx;
use super::*;

const SUBSCRIBER_COLUMNS: &str = "id, list, address, customer, state, shared, added_by, created_at, \
     confirmed_at, expires_at";

const ANNOUNCEMENT_COLUMNS: &str = "id, kind, state, platform, lists, services, title, impact, body, \
     source, emergency, starts_at, ends_at, restoration_eta, update_interval_secs, \
     reminder_before_secs, pending_text, created_at, scheduled_at, communicated_at, closed_at, \
     last_mail_at, next_due_at, thread_message_id";

/// Binds the 23 columns after `id`, in [`ANNOUNCEMENT_COLUMNS`] order.
macro_rules! bind_announcement {
    ($q:expr, $a:expr) => {
        $q.bind($a.kind.as_str())
            .bind($a.state.as_str())
            .bind($a.platform.clone())
            .bind(join_lines(&$a.lists))
            .bind(join_lines(&$a.services))
            .bind($a.title.clone())
            .bind($a.impact.clone())
            .bind($a.body.clone())
            .bind($a.source.clone())
            .bind($a.emergency)
            .bind($a.starts_at)
            .bind($a.ends_at)
            .bind($a.restoration_eta)
            .bind($a.update_interval_secs)
            .bind($a.reminder_before_secs)
            .bind($a.pending_text.clone())
            .bind($a.created_at)
            .bind($a.scheduled_at)
            .bind($a.communicated_at)
            .bind($a.closed_at)
            .bind($a.last_mail_at)
            .bind($a.next_due_at)
            .bind($a.thread_message_id.clone())
    };
}

fn named<T>(r: &PgRow, col: usize, table: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    let v: String = r.try_get(col)?;
    parse(&v).ok_or_else(|| {
        let id: i64 = r.try_get(0).unwrap_or_default();
        StoreError::Other(format!(
            "{table} #{id}: `{v}` is not a value this version knows (column {col})"
        ))
    })
}

fn subscriber_row(r: &PgRow) -> Result<SubscriberRow> {
    Ok(SubscriberRow {
        id: r.try_get(0)?,
        list: r.try_get(1)?,
        address: r.try_get(2)?,
        customer: r.try_get(3)?,
        state: named(r, 4, "subscribers", SubscriberState::parse)?,
        shared: r.try_get(5)?,
        added_by: r.try_get(6)?,
        created_at: r.try_get(7)?,
        confirmed_at: r.try_get(8)?,
        expires_at: r.try_get(9)?,
    })
}

fn announcement_row(r: &PgRow) -> Result<AnnouncementRow> {
    Ok(AnnouncementRow {
        id: r.try_get(0)?,
        kind: named(r, 1, "announcements", AnnouncementKind::parse)?,
        state: named(r, 2, "announcements", AnnouncementState::parse)?,
        platform: r.try_get(3)?,
        lists: split_lines(&r.try_get::<String, _>(4)?),
        services: split_lines(&r.try_get::<String, _>(5)?),
        title: r.try_get(6)?,
        impact: r.try_get(7)?,
        body: r.try_get(8)?,
        source: r.try_get(9)?,
        emergency: r.try_get(10)?,
        starts_at: r.try_get(11)?,
        ends_at: r.try_get(12)?,
        restoration_eta: r.try_get(13)?,
        update_interval_secs: r.try_get(14)?,
        reminder_before_secs: r.try_get(15)?,
        pending_text: r.try_get(16)?,
        created_at: r.try_get(17)?,
        scheduled_at: r.try_get(18)?,
        communicated_at: r.try_get(19)?,
        closed_at: r.try_get(20)?,
        last_mail_at: r.try_get(21)?,
        next_due_at: r.try_get(22)?,
        thread_message_id: r.try_get(23)?,
    })
}

fn update_row(r: &PgRow) -> Result<AnnouncementUpdateRow> {
    Ok(AnnouncementUpdateRow {
        id: r.try_get(0)?,
        announcement_id: r.try_get(1)?,
        at: r.try_get(2)?,
        kind: named(r, 3, "announcement_updates", UpdateKind::parse)?,
        text: r.try_get(4)?,
        recipients: r.try_get(5)?,
    })
}

/// Where the queries run: a pooled connection, or the transaction's.
trait Go {
    fn go<T: Send + 'static>(&mut self, f: impl Call<T>) -> Result<T>;
    /// Before a read that a write may follow: in a transaction, the writer lock.
    fn guard(&mut self) -> Result<()>;
}

impl Go for PgStore {
    fn go<T: Send + 'static>(&mut self, f: impl Call<T>) -> Result<T> {
        self.call(f)
    }

    fn guard(&mut self) -> Result<()> {
        Ok(())
    }
}

impl Go for PgTx {
    fn go<T: Send + 'static>(&mut self, f: impl Call<T>) -> Result<T> {
        self.call(f)
    }

    fn guard(&mut self) -> Result<()> {
        self.lock()
    }
}

fn rows<T: Send + 'static>(
    sql: String,
    bind: impl for<'q> FnOnce(
        sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>
    + Send
    + 'static,
    map: fn(&PgRow) -> Result<T>,
) -> impl Call<Vec<T>> {
    move |c: &mut PgConnection| -> BoxFuture<'_, Result<Vec<T>>> {
        Box::pin(async move {
            let q = bind(sqlx::query(sqlx::AssertSqlSafe(sql)));
            q.fetch_all(&mut *c).await?.iter().map(map).collect()
        })
    }
}

/// One body for both connections (a blanket impl would overlap the other backend's).
macro_rules! announce_read {
    ($t:ty) => {
        impl AnnounceRead for $t {
    fn subscriber(&mut self, id: i64) -> Result<Option<SubscriberRow>> {
        let v = self.go(rows(
            format!("SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE id = $1"),
            move |q| q.bind(id),
            subscriber_row,
        ))?;
        Ok(v.into_iter().next())
    }

    fn subscriber_by_address(
        &mut self,
        list: &str,
        address: &str,
    ) -> Result<Option<SubscriberRow>> {
        let (list, address) = (list.to_string(), address.trim().to_ascii_lowercase());
        let v = self.go(rows(
            format!("SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE list = $1 AND address = $2"),
            move |q| q.bind(list).bind(address),
            subscriber_row,
        ))?;
        Ok(v.into_iter().next())
    }

    fn subscribers(&mut self, list: &str) -> Result<Vec<SubscriberRow>> {
        let list = list.to_string();
        self.go(rows(
            format!(
                "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE list = $1 ORDER BY address"
            ),
            move |q| q.bind(list),
            subscriber_row,
        ))
    }

    fn confirmed_subscribers(&mut self, lists: &[String]) -> Result<Vec<SubscriberRow>> {
        let lists = lists.to_vec();
        self.go(rows(
            format!(
                "SELECT {SUBSCRIBER_COLUMNS} FROM subscribers \
                 WHERE list = ANY($1) AND state = 'confirmed' ORDER BY list, address"
            ),
            move |q| q.bind(lists),
            subscriber_row,
        ))
    }

    fn subscriptions_of(&mut self, address: &str) -> Result<Vec<SubscriberRow>> {
        let address = address.trim().to_ascii_lowercase();
        self.go(rows(
            format!("SELECT {SUBSCRIBER_COLUMNS} FROM subscribers WHERE address = $1 ORDER BY list"),
            move |q| q.bind(address),
            subscriber_row,
        ))
    }

    fn announcement(&mut self, id: i64) -> Result<Option<AnnouncementRow>> {
        self.guard()?;
        let v = self.go(rows(
            format!("SELECT {ANNOUNCEMENT_COLUMNS} FROM announcements WHERE id = $1"),
            move |q| q.bind(id),
            announcement_row,
        ))?;
        Ok(v.into_iter().next())
    }

    fn announcements(&mut self, q: &AnnouncementQuery) -> Result<Vec<AnnouncementRow>> {
        self.guard()?;
        let platform = q.platform.clone();
        let kinds: Vec<String> = q.kinds.iter().map(|k| k.as_str().to_string()).collect();
        let states: Vec<String> = q.states.iter().map(|k| k.as_str().to_string()).collect();
        let (since, before, limit) = (
            q.since,
            q.before_id,
            if q.limit == 0 { i64::MAX } else { q.limit as i64 },
        );
        // Each filter is `($n IS NULL OR …)`: one statement for every shape (the table is
        // small next to tickets and outbox).
        self.go(rows(
            format!(
                "SELECT {ANNOUNCEMENT_COLUMNS} FROM announcements \
                 WHERE ($1::text IS NULL OR platform = $1) \
                 AND (cardinality($2::text[]) = 0 OR kind = ANY($2)) \
                 AND (cardinality($3::text[]) = 0 OR state = ANY($3)) \
                 AND ($4::timestamptz IS NULL OR created_at >= $4) \
                 AND ($5::bigint IS NULL OR id < $5) \
                 ORDER BY id DESC LIMIT $6"
            ),
            move |q| {
                q.bind(platform)
                    .bind(kinds)
                    .bind(states)
                    .bind(since)
                    .bind(before)
                    .bind(limit)
            },
            announcement_row,
        ))
    }

    fn announcement_updates(
        &mut self,
        announcement_id: i64,
    ) -> Result<Vec<AnnouncementUpdateRow>> {
        self.go(rows(
            "SELECT id, announcement_id, at, kind, text, recipients FROM announcement_updates \
             WHERE announcement_id = $1 ORDER BY id"
                .to_string(),
            move |q| q.bind(announcement_id),
            update_row,
        ))
    }

    fn open_outages(&mut self, platform: &str) -> Result<Vec<AnnouncementRow>> {
        let platform = platform.to_string();
        self.go(rows(
            format!(
                "SELECT {ANNOUNCEMENT_COLUMNS} FROM announcements \
                 WHERE platform = $1 AND kind = 'outage' AND state = 'open' ORDER BY id"
            ),
            move |q| q.bind(platform),
            announcement_row,
        ))
    }

    fn due_announcements(
        &mut self,
        now: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AnnouncementRow>> {
        self.guard()?;
        self.go(rows(
            format!(
                "SELECT {ANNOUNCEMENT_COLUMNS} FROM announcements \
                 WHERE next_due_at IS NOT NULL AND next_due_at <= $1 ORDER BY next_due_at, id LIMIT $2"
            ),
            move |q| q.bind(now).bind(limit as i64),
            announcement_row,
        ))
    }

    fn next_announcement_due(&mut self) -> Result<Option<DateTime<Utc>>> {
        self.go(|c| {
            Box::pin(async move {
                Ok(sqlx::query_scalar(
                    "SELECT min(next_due_at) FROM announcements WHERE next_due_at IS NOT NULL",
                )
                .fetch_one(&mut *c)
                .await?)
            })
        })
    }
}
    };
}

announce_read!(PgStore);
announce_read!(PgTx);

impl AnnounceTx for PgTx {
    fn upsert_subscriber(&mut self, s: &NewSubscriber<'_>) -> Result<SubscriberRow> {
        self.sync()?;
        let confirmed = s.state == SubscriberState::Confirmed;
        let (list, address, customer, added_by) = (
            s.list.to_string(),
            s.address.trim().to_ascii_lowercase(),
            s.customer.to_string(),
            s.added_by.to_string(),
        );
        let (state, shared, now) = (s.state.as_str(), s.shared, s.now);
        let expires = if confirmed { None } else { s.expires_at };
        let v = self.call(rows(
            format!(
                "INSERT INTO subscribers (list, address, customer, state, shared, added_by, created_at, \
                 confirmed_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $8 THEN $7 END, $9) \
                 ON CONFLICT (list, address) DO UPDATE SET customer = excluded.customer, \
                 shared = excluded.shared, added_by = excluded.added_by, \
                 state = CASE WHEN subscribers.state = 'confirmed' THEN 'confirmed' ELSE excluded.state END, \
                 confirmed_at = CASE WHEN subscribers.state = 'confirmed' THEN subscribers.confirmed_at \
                   ELSE excluded.confirmed_at END, \
                 expires_at = CASE WHEN subscribers.state = 'confirmed' OR excluded.state = 'confirmed' \
                   THEN NULL ELSE excluded.expires_at END \
                 RETURNING {SUBSCRIBER_COLUMNS}"
            ),
            move |q| {
                q.bind(list)
                    .bind(address)
                    .bind(customer)
                    .bind(state)
                    .bind(shared)
                    .bind(added_by)
                    .bind(now)
                    .bind(confirmed)
                    .bind(expires)
            },
            subscriber_row,
        ))?;
        v.into_iter()
            .next()
            .ok_or_else(|| StoreError::Other("subscriber upsert returned no row".into()))
    }

    fn confirm_subscriber(&mut self, id: i64, now: DateTime<Utc>) -> Result<bool> {
        self.sync()?;
        self.call(move |c| {
            Box::pin(async move {
                let n = sqlx::query(
                    "UPDATE subscribers SET state = 'confirmed', confirmed_at = $2, expires_at = NULL \
                     WHERE id = $1 AND state = 'pending'",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *c)
                .await?
                .rows_affected();
                Ok(n > 0)
            })
        })
    }

    fn remove_subscriber(&mut self, id: i64) -> Result<bool> {
        self.sync()?;
        self.call(move |c| {
            Box::pin(async move {
                let n = sqlx::query("DELETE FROM subscribers WHERE id = $1")
                    .bind(id)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                Ok(n > 0)
            })
        })
    }

    fn expire_pending(&mut self, now: DateTime<Utc>) -> Result<usize> {
        self.sync()?;
        self.call(move |c| {
            Box::pin(async move {
                let n = sqlx::query(
                    "DELETE FROM subscribers WHERE state = 'pending' AND expires_at <= $1",
                )
                .bind(now)
                .execute(&mut *c)
                .await?
                .rows_affected();
                Ok(n as usize)
            })
        })
    }

    fn insert_announcement(&mut self, a: &AnnouncementRow) -> Result<i64> {
        self.sync()?;
        let a = a.clone();
        self.call(move |c| {
            Box::pin(async move {
                let q = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO announcements ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
                     $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23) RETURNING id",
                    &ANNOUNCEMENT_COLUMNS["id, ".len()..]
                )));
                Ok(bind_announcement!(q, a).fetch_one(&mut *c).await?)
            })
        })
    }

    fn save_announcement(&mut self, a: &AnnouncementRow) -> Result<()> {
        self.sync()?;
        let a = a.clone();
        self.call(move |c| {
            Box::pin(async move {
                let id = a.id;
                let q = sqlx::query(
                    "UPDATE announcements SET kind = $1, state = $2, platform = $3, lists = $4, \
                     services = $5, title = $6, impact = $7, body = $8, source = $9, emergency = $10, \
                     starts_at = $11, ends_at = $12, restoration_eta = $13, update_interval_secs = $14, \
                     reminder_before_secs = $15, pending_text = $16, created_at = $17, scheduled_at = $18, \
                     communicated_at = $19, closed_at = $20, last_mail_at = $21, next_due_at = $22, \
                     thread_message_id = $23 WHERE id = $24",
                );
                let n = bind_announcement!(q, a)
                    .bind(id)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                if n == 0 {
                    return Err(StoreError::Other(format!(
                        "announcement #{id} does not exist"
                    )));
                }
                Ok(())
            })
        })
    }

    fn insert_announcement_update(
        &mut self,
        announcement_id: i64,
        at: DateTime<Utc>,
        kind: UpdateKind,
        text: &str,
        recipients: i64,
    ) -> Result<i64> {
        self.sync()?;
        let text = text.to_string();
        self.call(move |c| {
            Box::pin(async move {
                Ok(sqlx::query_scalar(
                    "INSERT INTO announcement_updates (announcement_id, at, kind, text, recipients) \
                     VALUES ($1, $2, $3, $4, $5) RETURNING id",
                )
                .bind(announcement_id)
                .bind(at)
                .bind(kind.as_str())
                .bind(text)
                .bind(recipients)
                .fetch_one(&mut *c)
                .await?)
            })
        })
    }
}
