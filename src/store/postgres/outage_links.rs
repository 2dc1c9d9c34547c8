//! Outage links on PostgreSQL ([`crate::store::outage_links`]). A batch transaction reads
//! the open outages once (and checks the set again under the writers' lock) and buffers its
//! links, written by the batch's one flush statement ([`super::batch`]).

use super::*;

/// The outages open now, with their last update with text.
pub(super) async fn intake_outages(c: &mut PgConnection) -> Result<Vec<OpenOutage>> {
    let rows = sqlx::query(
        "SELECT a.id, a.platform, a.services, a.impact, COALESCE(a.starts_at, a.created_at), a.restoration_eta, \
         u.at, u.text FROM announcements a \
         LEFT JOIN LATERAL (SELECT x.at, x.text FROM announcement_updates x WHERE x.announcement_id = a.id \
                            AND x.kind = 'update' ORDER BY x.id DESC LIMIT 1) u ON true \
         WHERE a.kind = 'outage' AND a.state = 'open' ORDER BY a.id",
    )
    .fetch_all(&mut *c)
    .await?;
    rows.iter()
        .map(|r| {
            let services: String = r.try_get(2)?;
            let at: Option<DateTime<Utc>> = r.try_get(6)?;
            let text: Option<String> = r.try_get(7)?;
            Ok(OpenOutage {
                id: r.try_get(0)?,
                platform: r.try_get(1)?,
                services: services
                    .split('\n')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect(),
                impact: r.try_get(3)?,
                since: r.try_get(4)?,
                restoration_eta: r.try_get(5)?,
                last_update: at.zip(text),
            })
        })
        .collect()
}

pub(super) async fn outage_tickets(c: &mut PgConnection, outage_id: i64) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT ticket_id FROM ticket_outages WHERE announcement_id = $1 ORDER BY ticket_id",
    )
    .bind(outage_id)
    .fetch_all(&mut *c)
    .await?)
}

pub(super) async fn ticket_outages(c: &mut PgConnection, ticket_id: i64) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT announcement_id FROM ticket_outages WHERE ticket_id = $1 ORDER BY announcement_id",
    )
    .bind(ticket_id)
    .fetch_all(&mut *c)
    .await?)
}
