//! Rows: decoding what PostgreSQL returns into the store's types, and a ticket's columns
//! as values to bind.

use super::*;

pub(super) fn small(v: i16) -> std::result::Result<u8, StoreError> {
    u8::try_from(v).map_err(|_| StoreError::Other(format!("value {v} out of range for u8")))
}

/// A stored name this version must know (a status, a profile): an unknown one is an error
/// naming the ticket, never a silent fallback.
fn known<T>(r: &PgRow, col: usize, parse: fn(&str) -> Option<T>) -> Result<T> {
    let v: String = r.try_get(col)?;
    parse(&v).ok_or_else(|| {
        let id: i64 = r.try_get(0).unwrap_or_default();
        StoreError::Other(format!(
            "ticket #{id}: `{v}` is not a value this version knows (column {col})"
        ))
    })
}

pub(super) fn ticket_row(r: &PgRow) -> Result<TicketRow> {
    let missing: String = r.try_get(15)?;
    Ok(TicketRow {
        id: r.try_get(0)?,
        customer: r.try_get(1)?,
        support_key: r.try_get(2)?,
        plan: r.try_get(3)?,
        language: r.try_get(4)?,
        profile: known(r, 5, Profile::parse)?,
        issue_type: r.try_get(6)?,
        status: known(r, 7, Status::parse)?,
        severity: small(r.try_get(8)?)?,
        stated_severity: r.try_get(9)?,
        subject: r.try_get(10)?,
        requester: r.try_get(11)?,
        requester_name: r.try_get(12)?,
        reason: r.try_get(13)?,
        parent_id: r.try_get(14)?,
        missing_info: missing
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        followup_base_at: r.try_get(16)?,
        followup_stage: r.try_get(17)?,
        survey_score: r.try_get::<Option<i16>, _>(18)?.map(small).transpose()?,
        sla: SlaState {
            target_secs: r.try_get(19)?,
            started_at: r.try_get(20)?,
            running_since: r.try_get(21)?,
            elapsed_secs: r.try_get(22)?,
            due_at: r.try_get(23)?,
            responded_at: r.try_get(24)?,
            breached_at: r.try_get(25)?,
        },
        created_at: r.try_get(26)?,
        updated_at: r.try_get(27)?,
    })
}

pub(super) fn timer_row(r: &PgRow) -> Result<Timer> {
    Ok(Timer {
        ticket_id: r.try_get(0)?,
        kind: r.try_get(1)?,
        due_at: r.try_get(2)?,
    })
}

pub(super) fn u32_col(r: &PgRow, i: usize) -> Result<u32> {
    let v: i64 = r.try_get(i)?;
    u32::try_from(v).map_err(|_| StoreError::Other(format!("value {v} out of range for u32")))
}

pub(super) async fn ticket(c: &mut PgConnection, id: i64) -> Result<Option<TicketRow>> {
    sqlx::query(concat!(
        "SELECT id, ",
        ticket_columns!(),
        " FROM tickets WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *c)
    .await?
    .map(|r| ticket_row(&r))
    .transpose()
}

/// The tickets of a KPI report ([`Store::report_tickets`]): one range scan of
/// `tickets_customer_created`, with per-ticket lookups answered from the indexes
/// `status_history_report` and `escalations_ticket` alone. No ORDER BY: the figures do not
/// depend on the order.
pub(super) async fn report_tickets(
    c: &mut PgConnection,
    customer: String,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<ReportTicket>> {
    sqlx::query(
        "SELECT t.id, t.plan, t.severity, t.issue_type, t.created_at, t.sla_target_secs, \
         t.responded_at, t.breached_at, t.survey_score, t.sla_elapsed_secs, \
         (SELECT min(h.at) FROM status_history h WHERE h.ticket_id = t.id \
            AND h.to_status IN ('resolved', 'closed')), \
         EXISTS (SELECT 1 FROM status_history h WHERE h.ticket_id = t.id \
            AND h.from_status IN ('resolved', 'closed') \
            AND h.to_status NOT IN ('resolved', 'closed')), \
         (SELECT count(*) FROM escalations e WHERE e.ticket_id = t.id) \
         FROM tickets t WHERE t.customer = $1 AND t.created_at >= $2 AND t.created_at < $3",
    )
    .bind(&customer)
    .bind(from)
    .bind(until)
    .fetch_all(&mut *c)
    .await?
    .iter()
    .map(|r| {
        Ok(ReportTicket {
            id: r.try_get(0)?,
            plan: r.try_get(1)?,
            severity: small(r.try_get(2)?)?,
            issue_type: r.try_get(3)?,
            created_at: r.try_get(4)?,
            sla_target_secs: r.try_get(5)?,
            responded_at: r.try_get(6)?,
            breached_at: r.try_get(7)?,
            survey_score: r.try_get::<Option<i16>, _>(8)?.map(small).transpose()?,
            sla_elapsed_secs: r.try_get(9)?,
            resolved_at: r.try_get(10)?,
            reopened: r.try_get(11)?,
            escalations: r.try_get(12)?,
        })
    })
    .collect()
}

pub(super) fn suppression_row(r: &PgRow) -> Result<Suppression> {
    let v: String = r.try_get(1)?;
    Ok(Suppression {
        kind: crate::bounce::Verdict::parse(&v).ok_or_else(|| {
            let address: String = r.try_get(0).unwrap_or_default();
            StoreError::Other(format!(
                "suppression of {address}: `{v}` is not a kind this version knows"
            ))
        })?,
        address: r.try_get(0)?,
        reason: r.try_get(2)?,
        status: r.try_get(3)?,
        outbox_id: r.try_get(4)?,
        ticket_id: r.try_get(5)?,
        created_at: r.try_get(6)?,
    })
}

pub(super) fn outbox_target(r: &PgRow) -> Result<OutboxTarget> {
    Ok(OutboxTarget {
        id: r.try_get(0)?,
        ticket_id: r.try_get(1)?,
        recipient: r.try_get(2)?,
        kind: r.try_get(3)?,
        message_id: r.try_get(4)?,
    })
}
