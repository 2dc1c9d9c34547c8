//! Sample mail for the embedded default: a first `ticketgate run` without a config file, in a
//! folder with no inbox yet, finds these in its new inbox and shows the whole pipeline.

use crate::ingest::Maildir;

pub const MAIL: &[(&str, &[u8])] = &[
    (
        "01-acme-new-request.eml",
        include_bytes!("../samples/mail/01-acme-new-request.eml"),
    ),
    (
        "02-globex-outage.eml",
        include_bytes!("../samples/mail/02-globex-outage.eml"),
    ),
    (
        "03-initech-fr.eml",
        include_bytes!("../samples/mail/03-initech-fr.eml"),
    ),
    (
        "04-acme-followup.eml",
        include_bytes!("../samples/mail/04-acme-followup.eml"),
    ),
    (
        "05-no-key.eml",
        include_bytes!("../samples/mail/05-no-key.eml"),
    ),
    (
        "06-revoked-key.eml",
        include_bytes!("../samples/mail/06-revoked-key.eml"),
    ),
    (
        "07-out-of-office.eml",
        include_bytes!("../samples/mail/07-out-of-office.eml"),
    ),
    (
        "08-globex-html-attachment.eml",
        include_bytes!("../samples/mail/08-globex-html-attachment.eml"),
    ),
    (
        "09-agent-reply.eml",
        include_bytes!("../samples/mail/09-agent-reply.eml"),
    ),
];

/// Delivers the sample mail into `md` as `sample-NN-NAME` files, oldest first.
pub fn seed(md: &Maildir) -> std::io::Result<usize> {
    for (name, bytes) in MAIL {
        md.deliver(&format!("sample-{name}"), bytes)?;
    }
    Ok(MAIL.len())
}
