//! The daemon loop: mail that arrives while it runs is processed and delivered without a
//! restart, and a shutdown request stops it cleanly.

mod common;

use common::{env, mail};
use std::time::Duration;
use ticketgate::ingest::Maildir;

#[tokio::test]
async fn mail_arriving_while_the_daemon_runs_is_answered_and_shutdown_stops_it() {
    let e = env();
    let inbox = Maildir::open(&e.path("inbox")).unwrap();
    let outbox_dir = e.path("outbox");
    let seen = e.path("inbox/cur/1700000000.M1.test:2,S");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let request = mail("jane@acme.example", "x", "ACME-0000-0000-0001").build();

    let driver = async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        inbox
            .deliver("1700000000.M1.test", request.as_bytes())
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let files = std::fs::read_dir(&outbox_dir)
                .map(|d| d.count())
                .unwrap_or(0);
            if files > 0 || tokio::time::Instant::now() > deadline {
                break files;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let shutdown = async {
        let _ = stop_rx.await;
    };
    let run = e.app.run(false, shutdown);
    tokio::pin!(run);
    let files = tokio::select! {
        r = &mut run => panic!("daemon stopped on its own: {r:?}"),
        files = driver => files,
    };
    assert_eq!(files, 1, "acknowledgement written while the daemon runs");
    stop_tx.send(()).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("stops on shutdown")
        .unwrap();
    assert_eq!(summary.inbound.created, 1);
    assert_eq!(summary.delivery.sent, 1);
    assert!(seen.exists(), "processed mail is moved to cur/ as Seen");
}

#[tokio::test]
async fn a_mail_that_cannot_be_moved_after_commit_does_not_stall_the_drain() {
    let e = env();
    let inbox = Maildir::open(&e.path("inbox")).unwrap();
    inbox
        .deliver(
            "1.a",
            mail("jane@acme.example", "x", "ACME-0000-0000-0001")
                .build()
                .as_bytes(),
        )
        .unwrap();
    // cur/ is a file: every move fails.
    std::fs::remove_dir(e.path("inbox/cur")).unwrap();
    std::fs::write(e.path("inbox/cur"), b"not a folder").unwrap();
    let r = e.app.drain_maildir(&inbox).await.unwrap();
    assert_eq!(r.created, 1);
    // The next drain sees a duplicate, not a second ticket, and returns.
    let r = e.app.drain_maildir(&inbox).await.unwrap();
    assert_eq!((r.created, r.duplicates), (0, 1));
    assert_eq!(e.app.store().unwrap().tickets(10).unwrap().len(), 1);
}
