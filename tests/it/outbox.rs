//! Delivery through the `.eml` file transport: sent, retried with backoff when the folder
//! cannot be written, a dead letter after the last attempt, and sent again once retried.

use crate::common;

use common::{env_with, mail};
use ticketgate::clock::Clock;

#[tokio::test]
async fn delivery_writes_one_file_per_message_and_marks_it_sent() {
    let mut e = env_with("");
    e.ingest(&mail("jane@acme.example", "x", "ACME-0000-0000-0001").build());
    let r = e.app.deliver().await.unwrap();
    assert_eq!((r.sent, r.retried, r.failed), (1, 0, 0));
    let row = &e.outbox()[0];
    assert_eq!(row.state, "sent");
    assert_eq!(row.attempts, 1);
    let file = e
        .path("outbox")
        .join(format!("{:08}-acknowledgement.eml", row.id));
    let bytes = std::fs::read(file).unwrap();
    assert_eq!(
        bytes,
        e.app.store().unwrap().outbox_body(row.id).unwrap().unwrap()
    );
    // Nothing is due any more: a second pass sends nothing twice.
    let r = e.app.deliver().await.unwrap();
    assert_eq!(r.sent, 0);
}

#[tokio::test]
async fn a_transient_failure_is_retried_after_backoff_and_then_given_up() {
    let mut e =
        env_with("[outbound]\nmax_attempts = 3\nretry_base = \"1m\"\nretry_max = \"10m\"\n");
    e.ingest(&mail("jane@acme.example", "x", "ACME-0000-0000-0001").build());
    // The outbound folder becomes a file: every write fails.
    let out = e.path("outbox");
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::write(&out, b"not a folder").unwrap();

    let r = e.app.deliver().await.unwrap();
    assert_eq!(r.retried, 1);
    let row = e.outbox().remove(0);
    assert_eq!((row.state.as_str(), row.attempts), ("retry", 1));
    assert!(row.last_error.as_deref().unwrap().contains("cannot write"));
    let wait = row.next_attempt_at - e.clock.now();
    assert!(
        wait >= chrono::Duration::seconds(48) && wait <= chrono::Duration::seconds(72),
        "1m ±20 %: {wait}"
    );

    // Not due yet: nothing happens until the clock moves.
    assert_eq!(e.app.deliver().await.unwrap().retried, 0);
    e.clock.advance(chrono::Duration::minutes(2));
    assert_eq!(e.app.deliver().await.unwrap().retried, 1);
    let row = e.outbox().remove(0);
    assert_eq!(row.attempts, 2);
    let wait = row.next_attempt_at - e.clock.now();
    assert!(
        wait >= chrono::Duration::seconds(96),
        "backoff grows: {wait}"
    );

    e.clock.advance(chrono::Duration::minutes(10));
    let r = e.app.deliver().await.unwrap();
    assert_eq!(r.failed, 1);
    let row = e.outbox().remove(0);
    assert_eq!((row.state.as_str(), row.attempts), ("dead", 3));
    assert!(row.last_error.unwrap().contains("gave up after 3 attempts"));

    // A dead letter stays put, however long one waits.
    e.clock.advance(chrono::Duration::days(7));
    assert_eq!(e.app.deliver().await.unwrap(), Default::default());

    // The folder is back and the operator retries it: attempts start over and it is sent.
    std::fs::remove_file(&out).unwrap();
    std::fs::create_dir(&out).unwrap();
    let now = e.clock.now();
    assert!(e.app.store().unwrap().retry_outbox(row.id, now).unwrap());
    let again = e.outbox().remove(0);
    assert_eq!((again.state.as_str(), again.attempts), ("pending", 0));
    assert!(
        !e.app.store().unwrap().retry_outbox(row.id, now).unwrap(),
        "only failed or dead"
    );
    assert_eq!(e.app.deliver().await.unwrap().sent, 1);
    let row = e.outbox().remove(0);
    assert_eq!((row.state.as_str(), row.attempts), ("sent", 1));
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
}

#[tokio::test]
async fn the_folder_coming_back_delivers_what_waited() {
    let mut e = env_with("");
    e.ingest(&mail("jane@acme.example", "x", "ACME-0000-0000-0001").build());
    let out = e.path("outbox");
    std::fs::remove_dir_all(&out).unwrap();
    std::fs::write(&out, b"x").unwrap();
    assert_eq!(e.app.deliver().await.unwrap().retried, 1);
    std::fs::remove_file(&out).unwrap();
    std::fs::create_dir(&out).unwrap();
    e.clock.advance(chrono::Duration::hours(1));
    assert_eq!(e.app.deliver().await.unwrap().sent, 1);
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 1);
}

#[tokio::test]
async fn a_message_whose_sender_died_on_the_last_attempt_is_dead_not_retried_forever() {
    let mut e = env_with("[outbound]\nmax_attempts = 1\n");
    e.ingest(&mail("jane@acme.example", "x", "ACME-0000-0000-0001").build());
    // A sender claims it and dies before recording anything.
    let now = e.clock.now();
    let claimed = e
        .app
        .store()
        .unwrap()
        .claim_due(now, now + chrono::Duration::seconds(1), 10, 1)
        .unwrap();
    assert_eq!(claimed.len(), 1);
    // Its claim lapses: on PostgreSQL on the server's clock (B7), which only real time moves.
    if common::on_postgres() {
        std::thread::sleep(std::time::Duration::from_millis(1150));
    }
    e.clock.advance(chrono::Duration::seconds(2));
    let r = e.app.deliver().await.unwrap();
    assert_eq!(r.sent, 0);
    let row = e.outbox().remove(0);
    assert_eq!((row.state.as_str(), row.attempts), ("dead", 1));
    assert!(row.last_error.unwrap().contains("sender stopped"));
}
