//! Outage links on SQLite ([`crate::store::outage_links`]).

use super::*;

pub(super) fn intake_outages(conn: &Connection) -> Result<Vec<OpenOutage>> {
    let mut st = conn.prepare_cached(
        "SELECT a.id, a.platform, a.services, a.impact, COALESCE(a.starts_at, a.created_at), a.restoration_eta, \
         (SELECT u.at FROM announcement_updates u WHERE u.announcement_id = a.id \
          AND u.kind = 'update' ORDER BY u.id DESC LIMIT 1), \
         (SELECT u.text FROM announcement_updates u WHERE u.announcement_id = a.id \
          AND u.kind = 'update' ORDER BY u.id DESC LIMIT 1) \
         FROM announcements a WHERE a.kind = 'outage' AND a.state = 'open' ORDER BY a.id",
    )?;
    let rows = st.query_map([], |r| {
        let services: String = r.get(2)?;
        let eta: Option<String> = r.get(5)?;
        let at: Option<String> = r.get(6)?;
        let text: Option<String> = r.get(7)?;
        Ok(OpenOutage {
            id: r.get(0)?,
            platform: r.get(1)?,
            services: services
                .split('\n')
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            impact: r.get(3)?,
            since: parse_ts(&r.get::<_, String>(4)?)?,
            restoration_eta: eta.as_deref().map(parse_ts).transpose()?,
            last_update: match (at, text) {
                (Some(at), Some(text)) => Some((parse_ts(&at)?, text)),
                _ => None,
            },
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn link_outage(
    conn: &Connection,
    ticket_id: i64,
    outage_id: i64,
    now: DateTime<Utc>,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO ticket_outages (ticket_id, announcement_id, linked_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![ticket_id, outage_id, ts(now)])?;
    Ok(())
}

pub(super) fn outage_tickets(conn: &Connection, outage_id: i64) -> Result<Vec<i64>> {
    let mut st = conn.prepare_cached(
        "SELECT ticket_id FROM ticket_outages WHERE announcement_id = ?1 ORDER BY ticket_id",
    )?;
    let ids = st.query_map([outage_id], |r| r.get(0))?;
    Ok(ids.collect::<rusqlite::Result<_>>()?)
}

pub(super) fn ticket_outages(conn: &Connection, ticket_id: i64) -> Result<Vec<i64>> {
    let mut st = conn.prepare_cached(
        "SELECT announcement_id FROM ticket_outages WHERE ticket_id = ?1 ORDER BY announcement_id",
    )?;
    let ids = st.query_map([ticket_id], |r| r.get(0))?;
    Ok(ids.collect::<rusqlite::Result<_>>()?)
}
