//! Announcement references: `OUT-000001` (outages), `MNT-000001` (maintenance),
//! `REL-000001` (releases), `INF-000001` (information). Pure; the only place that knows them.

use crate::store::AnnouncementKind;

pub fn prefix(kind: AnnouncementKind) -> &'static str {
    match kind {
        AnnouncementKind::Outage => "OUT",
        AnnouncementKind::Maintenance => "MNT",
        AnnouncementKind::Release => "REL",
        AnnouncementKind::Information => "INF",
    }
}

/// `OUT-000042` for outage 42.
pub fn reference(kind: AnnouncementKind, id: i64) -> String {
    format!("{}-{id:06}", prefix(kind))
}

/// The kind and id a reference names (`out-42` and `OUT-000042` alike), or a bare id.
pub fn parse(text: &str) -> Option<(Option<AnnouncementKind>, i64)> {
    let t = text.trim();
    if let Ok(id) = t.parse::<i64>() {
        return (id > 0).then_some((None, id));
    }
    let (p, n) = t.split_once('-')?;
    let kind = [
        AnnouncementKind::Outage,
        AnnouncementKind::Maintenance,
        AnnouncementKind::Release,
        AnnouncementKind::Information,
    ]
    .into_iter()
    .find(|k| prefix(*k).eq_ignore_ascii_case(p))?;
    let id = n.parse::<i64>().ok().filter(|id| *id > 0)?;
    Some((Some(kind), id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_round_trips_and_names_its_kind() {
        assert_eq!(reference(AnnouncementKind::Outage, 1), "OUT-000001");
        assert_eq!(
            reference(AnnouncementKind::Maintenance, 1234567),
            "MNT-1234567"
        );
        assert_eq!(
            parse("OUT-000001"),
            Some((Some(AnnouncementKind::Outage), 1))
        );
        assert_eq!(
            parse("mnt-7"),
            Some((Some(AnnouncementKind::Maintenance), 7))
        );
        assert_eq!(parse("12"), Some((None, 12)));
        assert_eq!(parse("TKT-000001"), None);
        assert_eq!(parse("OUT-0"), None);
    }
}
