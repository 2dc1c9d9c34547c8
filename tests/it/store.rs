//! The store contract itself, on SQLite and, with `TICKETGATE_TEST_DATABASE_URL` set, on a
//! fresh PostgreSQL database per test: outbox claims by concurrent senders, leases, mailbox
//! state, operator retries, the writer lock, rollback on drop, savepoints. The tests marked
//! "PostgreSQL only" check what only a server can show (row locks held by another session,
//! a connection killed under the store) and pass trivially on SQLite.

use crate::common;

use chrono::{DateTime, Duration, Utc};
use common::{DATABASE_URL_VAR, TestDatabase, database_url, on_postgres, start};
use sqlx::Connection;
use std::sync::mpsc;
use std::time::Instant;
use ticketgate::store::{self, Claim, MailboxState, NewArticle, NewInbound, NewOutbound, Store};

struct Db {
    _dir: tempfile::TempDir,
    url: String,
    pg: Option<TestDatabase>,
}

fn db() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let (url, pg) = database_url(dir.path());
    Db { _dir: dir, url, pg }
}

impl Db {
    fn open(&self) -> Box<dyn Store> {
        store::open(&self.url).unwrap()
    }
}

fn now() -> DateTime<Utc> {
    start()
}

fn outbound<'a>(recipient: &'a str, message_id: &'a str, at: DateTime<Utc>) -> NewOutbound<'a> {
    NewOutbound {
        ticket_id: None,
        inbound_id: None,
        kind: "test",
        recipient,
        subject: "s",
        message_id,
        automatic: false,
        body: b"Subject: s\r\n\r\nbody\r\n",
        state: ticketgate::store::OutboxState::Pending,
        note: None,
        now: at,
    }
}

/// Enqueues `n` pending messages due at `at`, in one transaction; returns their ids.
fn enqueue(s: &mut dyn Store, n: usize, at: DateTime<Utc>) -> Vec<i64> {
    let mut tx = s.write().unwrap();
    let ids = (0..n)
        .map(|i| {
            let r = format!("r{i}@example.test");
            let m = format!("<{i}@tg.example.test>");
            tx.enqueue(&outbound(&r, &m, at)).unwrap()
        })
        .collect();
    tx.commit().unwrap();
    ids
}

fn inbound<'a>(key: &'a str, outcome: &'a str) -> NewInbound<'a> {
    NewInbound {
        dedup_key: key,
        message_id: None,
        source: "test",
        received_at: now(),
        from: Some("a@example.test"),
        subject: "x",
        raw: b"raw bytes",
        declared_size: None,
        outcome,
        reason_code: None,
        reason: None,
        ticket_id: None,
        auth: None,
    }
}

/// Runs `sql` (one row, one BIGINT column) on the PostgreSQL database at `url` through a
/// connection of its own.
fn pg_scalar(url: &str, sql: &str) -> i64 {
    let (url, sql) = (url.to_string(), sql.to_string());
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut c = common::plumbing_connection(&url).await;
            let v: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                .fetch_one(&mut c)
                .await
                .unwrap();
            let _ = c.close().await;
            v
        })
    })
    .join()
    .unwrap()
}

/// Lets a claim or lease of `d` lapse. On PostgreSQL they run on the server's clock, which
/// only real time moves (B7); on SQLite the `now` the test passes decides, so nothing waits.
fn let_lapse(d: Duration) {
    if on_postgres() {
        std::thread::sleep((d + Duration::milliseconds(150)).to_std().unwrap());
    }
}

/// Another session holding `SELECT ... FOR UPDATE` locks on outbox rows until dropped.
struct RowLocks {
    release: Option<mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RowLocks {
    fn take(url: &str, ids: &[i64]) -> RowLocks {
        let expected = ids.len();
        let (url, ids) = (url.to_string(), ids.to_vec());
        let (locked_tx, locked_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let mut c = common::plumbing_connection(&url).await;
                let mut tx = c.begin().await.unwrap();
                let n = sqlx::query("SELECT id FROM outbox WHERE id = ANY($1) FOR UPDATE")
                    .bind(&ids)
                    .fetch_all(&mut *tx)
                    .await
                    .unwrap()
                    .len();
                locked_tx.send(n).unwrap();
                let _ = tokio::task::spawn_blocking(move || release_rx.recv()).await;
                tx.rollback().await.unwrap();
            });
        });
        assert_eq!(locked_rx.recv().unwrap(), expected, "rows locked");
        RowLocks {
            release: Some(release_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for RowLocks {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn two_stores_claiming_concurrently_never_get_the_same_row() {
    let d = db();
    let mut a = d.open();
    let all = enqueue(a.as_mut(), 300, now());
    let b = d.open();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let claim_all = |mut s: Box<dyn Store>, barrier: std::sync::Arc<std::sync::Barrier>| {
        std::thread::spawn(move || {
            barrier.wait();
            let mut mine = Vec::new();
            loop {
                let got = s
                    .claim_due(now(), now() + Duration::minutes(5), 7, 5)
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|m| m.id));
            }
        })
    };
    let ta = claim_all(a, barrier.clone());
    let tb = claim_all(b, barrier);
    let (mine_a, mine_b) = (ta.join().unwrap(), tb.join().unwrap());

    let set_a: std::collections::BTreeSet<i64> = mine_a.iter().copied().collect();
    let set_b: std::collections::BTreeSet<i64> = mine_b.iter().copied().collect();
    assert_eq!(set_a.len(), mine_a.len(), "a store claimed a row twice");
    assert_eq!(set_b.len(), mine_b.len(), "a store claimed a row twice");
    assert!(
        set_a.is_disjoint(&set_b),
        "rows claimed by both stores: {:?}",
        set_a.intersection(&set_b).collect::<Vec<_>>()
    );
    let union: Vec<i64> = set_a.union(&set_b).copied().collect();
    assert_eq!(union, all, "every row is claimed");
    let rows = d.open().outbox(1000).unwrap();
    assert!(rows.iter().all(|r| r.state == "sending" && r.attempts == 1));
}

#[test]
fn claim_due_skips_rows_another_sender_has_locked_postgres_only() {
    let d = db();
    let Some(pg) = &d.pg else { return };
    let mut s = d.open();
    let ids = enqueue(s.as_mut(), 4, now());
    let locks = RowLocks::take(&pg.url, &ids[..2]);
    // On another thread: a claim that waited for the locks would never return (they are
    // released below, on this thread), so it fails on the timeout instead of hanging.
    let (done_tx, done_rx) = mpsc::channel();
    let claimer = std::thread::spawn(move || {
        let got: Vec<i64> = s
            .claim_due(now(), now() + Duration::minutes(5), 10, 5)
            .unwrap()
            .into_iter()
            .map(|m| m.id)
            .collect();
        done_tx.send(got).unwrap();
        s
    });
    let got = done_rx
        .recv_timeout(std::time::Duration::from_secs(5))
        .expect("claim waited for the locks");
    let mut s = claimer.join().unwrap();
    assert_eq!(
        got,
        ids[2..].to_vec(),
        "the locked rows are skipped, not waited for"
    );
    drop(locks);
    let got: Vec<i64> = s
        .claim_due(now(), now() + Duration::minutes(5), 10, 5)
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(got, ids[..2].to_vec(), "released rows are claimed next");
}

#[test]
fn claim_due_does_not_wait_for_the_writer_lock_postgres_only() {
    let d = db();
    if d.pg.is_none() {
        return;
    }
    let mut a = d.open();
    let ids = enqueue(a.as_mut(), 2, now());
    let mut b = d.open();
    let tx = a.write().unwrap();
    let (done_tx, done_rx) = mpsc::channel();
    let sender = std::thread::spawn(move || {
        let got = b
            .claim_due(now(), now() + Duration::minutes(5), 10, 5)
            .unwrap();
        done_tx.send(got.len()).unwrap();
    });
    let n = done_rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("claim_due waited for the write transaction");
    assert_eq!(n, ids.len());
    drop(tx);
    sender.join().unwrap();
}

#[test]
fn lapsed_claim_that_used_its_last_attempt_is_dead_not_claimed_again() {
    let d = db();
    let mut s = d.open();
    let ids = enqueue(s.as_mut(), 1, now());
    // max_attempts 1: the one attempt is taken by this claim, then the sender "dies".
    assert_eq!(
        s.claim_due(now(), now() + Duration::seconds(1), 10, 1)
            .unwrap()
            .len(),
        1
    );
    let_lapse(Duration::seconds(1));
    let later = now() + Duration::seconds(2);
    assert!(
        s.claim_due(later, later + Duration::minutes(5), 10, 1)
            .unwrap()
            .is_empty()
    );
    let row = &s.outbox(10).unwrap()[0];
    assert_eq!(
        (row.id, row.state.as_str(), row.attempts),
        (ids[0], "dead", 1)
    );
    assert!(
        row.last_error
            .as_deref()
            .unwrap()
            .contains("gave up after 1 attempts")
    );
}

#[test]
fn leases_take_renew_refuse_lapse_and_release() {
    let d = db();
    let mut s = d.open();
    let t = now();
    let sec = Duration::seconds;
    let ms = Duration::milliseconds;
    assert!(
        s.try_lease("imap:INBOX", "a", t, t + sec(1)).unwrap(),
        "free: taken"
    );
    assert!(
        s.try_lease("imap:INBOX", "a", t + ms(500), t + ms(1500))
            .unwrap(),
        "renewed by its holder"
    );
    assert!(
        !s.try_lease("imap:INBOX", "b", t + sec(1), t + sec(3))
            .unwrap(),
        "refused to another holder while it runs"
    );
    assert!(
        s.try_lease("other", "b", t + sec(1), t + sec(3)).unwrap(),
        "leases are per name"
    );
    let_lapse(sec(1));
    assert!(
        s.try_lease("imap:INBOX", "b", t + sec(2), t + sec(4))
            .unwrap(),
        "lapsed (until <= now): taken over"
    );
    assert!(
        !s.try_lease("imap:INBOX", "a", t + sec(3), t + sec(5))
            .unwrap(),
        "the old holder lost it"
    );
    s.release_lease("imap:INBOX", "a").unwrap(); // not a's: no effect
    assert!(
        !s.try_lease("imap:INBOX", "a", t + sec(3), t + sec(5))
            .unwrap()
    );
    s.release_lease("imap:INBOX", "b").unwrap();
    assert!(
        s.try_lease("imap:INBOX", "a", t + sec(3), t + sec(5))
            .unwrap(),
        "released: free at once"
    );
    // Seen from another instance of the same database.
    let mut other = d.open();
    assert!(
        !other
            .try_lease("imap:INBOX", "c", t + sec(4), t + sec(6))
            .unwrap()
    );
}

/// B7: on PostgreSQL a claim or a lease runs on the database's clock. A host whose clock is
/// an hour ahead (or behind) neither takes over what is still running nor keeps what lapsed.
#[test]
fn claims_and_leases_run_on_the_database_clock_not_the_callers_postgres_only() {
    let d = db();
    let Some(pg) = &d.pg else { return };
    let mut a = d.open();
    let mut b = d.open();
    let ids = enqueue(a.as_mut(), 1, now());
    let t = now();
    let ahead = t + Duration::hours(1);
    let got = a.claim_due(t, t + Duration::minutes(5), 10, 5).unwrap();
    assert_eq!(got.len(), 1);
    assert!(
        b.claim_due(ahead, ahead + Duration::minutes(5), 10, 5)
            .unwrap()
            .is_empty(),
        "a claim still running on the server's clock is not taken over by a host ahead"
    );
    // The claim lasts what the caller asked for, from the server's clock.
    let left = pg_scalar(
        &pg.url,
        "SELECT extract(epoch FROM next_attempt_at - clock_timestamp())::bigint FROM outbox",
    );
    assert!((290..=300).contains(&left), "claim runs {left} s more");

    assert!(
        a.try_lease("imap:INBOX", "a", t, t + Duration::minutes(1))
            .unwrap()
    );
    assert!(
        !b.try_lease("imap:INBOX", "b", ahead, ahead + Duration::minutes(1))
            .unwrap(),
        "a lease still running on the server's clock is not taken over by a host ahead"
    );
    let left = pg_scalar(
        &pg.url,
        "SELECT extract(epoch FROM until - clock_timestamp())::bigint FROM leases",
    );
    assert!((55..=60).contains(&left), "lease runs {left} s more");

    // A short claim and lease lapse on the server's clock while the callers' clocks stand
    // still (or lag an hour behind): they are taken over.
    let behind = t - Duration::hours(1);
    assert!(
        a.try_lease("short", "a", t, t + Duration::milliseconds(300))
            .unwrap()
    );
    let ids2 = enqueue(a.as_mut(), 1, behind);
    assert_eq!(
        a.claim_due(behind, behind + Duration::milliseconds(300), 10, 5)
            .unwrap()
            .iter()
            .map(|m| m.id)
            .collect::<Vec<_>>(),
        ids2
    );
    let_lapse(Duration::milliseconds(300));
    assert!(
        b.try_lease("short", "b", behind, behind + Duration::minutes(1))
            .unwrap()
    );
    let again = b
        .claim_due(behind, behind + Duration::minutes(1), 10, 5)
        .unwrap();
    assert_eq!(
        again.iter().map(|m| (m.id, m.attempts)).collect::<Vec<_>>(),
        [(ids2[0], 2)]
    );
    assert_ne!(ids, ids2);
}

#[test]
fn mailbox_state_round_trips_and_follows_the_transaction() {
    let d = db();
    let mut s = d.open();
    assert_eq!(s.mailbox_state("INBOX").unwrap(), None);
    let first = MailboxState {
        uid_validity: 1_700_000_000,
        last_uid: 42,
    };
    let mut tx = s.write().unwrap();
    tx.set_mailbox_state("INBOX", first).unwrap();
    tx.commit().unwrap();
    assert_eq!(s.mailbox_state("INBOX").unwrap(), Some(first));

    let top = MailboxState {
        uid_validity: u32::MAX,
        last_uid: u32::MAX,
    };
    let mut tx = s.write().unwrap();
    tx.set_mailbox_state("INBOX", top).unwrap();
    drop(tx); // not committed
    assert_eq!(s.mailbox_state("INBOX").unwrap(), Some(first));
    let mut tx = s.write().unwrap();
    tx.set_mailbox_state("INBOX", top).unwrap();
    tx.commit().unwrap();
    assert_eq!(d.open().mailbox_state("INBOX").unwrap(), Some(top));
    assert_eq!(s.mailbox_state("Other").unwrap(), None);
}

#[test]
fn mailbox_position_never_moves_back_under_the_same_uidvalidity() {
    let d = db();
    let mut s = d.open();
    let set = |s: &mut Box<dyn Store>, uid_validity, last_uid| {
        let mut tx = s.write().unwrap();
        tx.set_mailbox_state(
            "INBOX",
            MailboxState {
                uid_validity,
                last_uid,
            },
        )
        .unwrap();
        tx.commit().unwrap();
        s.mailbox_state("INBOX").unwrap().unwrap()
    };
    assert_eq!(set(&mut s, 7, 50).last_uid, 50);
    // An older writer (a lapsed lease holder) commits a lower position: it is kept at 50.
    let st = set(&mut s, 7, 20);
    assert_eq!((st.uid_validity, st.last_uid), (7, 50));
    assert_eq!(set(&mut s, 7, 60).last_uid, 60);
    // A new UIDVALIDITY starts over: the lower position is taken.
    let st = set(&mut s, 8, 3);
    assert_eq!((st.uid_validity, st.last_uid), (8, 3));
    assert_eq!(
        d.open().mailbox_state("INBOX").unwrap().unwrap().last_uid,
        3
    );
}

#[test]
fn retry_outbox_puts_back_failed_and_dead_only() {
    let d = db();
    let mut s = d.open();
    let ids = enqueue(s.as_mut(), 5, now());
    assert_eq!(
        s.claim_due(now(), now() + Duration::minutes(5), 10, 5)
            .unwrap()
            .len(),
        5
    );
    let c = |id: i64| Claim { id, attempts: 1 };
    assert!(s.mark_failed(c(ids[0]), "550 no such user").unwrap());
    assert!(s.mark_dead(c(ids[1]), "gave up").unwrap());
    assert!(s.mark_sent(c(ids[2]), now()).unwrap());
    assert!(
        s.mark_retry(c(ids[3]), now() + Duration::minutes(1), "421 busy")
            .unwrap()
    );
    // ids[4] stays `sending`.
    let later = now() + Duration::hours(1);
    let retried: Vec<bool> = ids
        .iter()
        .map(|&id| s.retry_outbox(id, later).unwrap())
        .collect();
    assert_eq!(retried, [true, true, false, false, false]);
    assert!(!s.retry_outbox(999_999, later).unwrap(), "unknown row");
    let rows = s.outbox(10).unwrap();
    let state: Vec<(&str, i64)> = rows
        .iter()
        .map(|r| (r.state.as_str(), r.attempts))
        .collect();
    assert_eq!(
        state,
        [
            ("pending", 0),
            ("pending", 0),
            ("sent", 1),
            ("retry", 1),
            ("sending", 1)
        ]
    );
    assert_eq!(rows[0].next_attempt_at, later);
    assert_eq!(rows[1].next_attempt_at, later);
    assert_eq!(s.next_due().unwrap(), Some(now() + Duration::minutes(1)));
}

#[test]
fn the_write_lock_serializes_two_stores_and_the_second_sees_the_first_commit() {
    let d = db();
    let mut a = d.open();
    let mut b = d.open();
    let mut tx = a.write().unwrap();
    tx.insert_inbound(&inbound("k1", "created")).unwrap();

    let (got_lock_tx, got_lock_rx) = mpsc::channel();
    let second = std::thread::spawn(move || {
        let mut tx = b.write().unwrap();
        got_lock_tx.send(()).unwrap();
        let seen = tx.inbound_exists("k1").unwrap();
        tx.insert_inbound(&inbound("k2", "created")).unwrap();
        tx.commit().unwrap();
        seen
    });
    assert!(
        got_lock_rx
            .recv_timeout(std::time::Duration::from_millis(700))
            .is_err(),
        "the second write() must wait while the first transaction is open"
    );
    tx.commit().unwrap();
    got_lock_rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("the second write() proceeds once the first commits");
    assert!(
        second.join().unwrap(),
        "the second writer sees the first's commit"
    );
    let mut tx = a.write().unwrap();
    assert!(tx.inbound_exists("k2").unwrap());
}

#[test]
fn a_transaction_dropped_without_commit_rolls_back() {
    let d = db();
    let mut s = d.open();
    {
        let mut tx = s.write().unwrap();
        tx.insert_inbound(&inbound("gone", "created")).unwrap();
        tx.enqueue(&outbound("x@example.test", "<x@tg>", now()))
            .unwrap();
        tx.set_mailbox_state(
            "INBOX",
            MailboxState {
                uid_validity: 1,
                last_uid: 1,
            },
        )
        .unwrap();
    }
    assert!(s.outbox(10).unwrap().is_empty());
    assert_eq!(s.mailbox_state("INBOX").unwrap(), None);
    let mut tx = s.write().unwrap();
    assert!(!tx.inbound_exists("gone").unwrap());
    tx.insert_inbound(&inbound("kept", "created")).unwrap();
    tx.commit().unwrap();
    // Another instance is not blocked by the dropped transaction's lock.
    let mut other = d.open();
    let mut tx = other.write().unwrap();
    assert!(tx.inbound_exists("kept").unwrap());
    assert!(!tx.inbound_exists("gone").unwrap());
}

#[test]
fn rollback_to_savepoint_undoes_a_failed_statement_and_the_rest_commits() {
    let d = db();
    let mut s = d.open();
    let mut tx = s.write().unwrap();
    tx.insert_inbound(&inbound("before", "created")).unwrap();
    tx.savepoint().unwrap();
    tx.insert_inbound(&inbound("undone", "created")).unwrap();
    let err = tx
        .insert_article(&NewArticle {
            ticket_id: 999_999, // no such ticket: foreign key violation
            inbound_id: None,
            kind: "customer",
            author: "a",
            body: "b",
            quoted: "",
            now: now(),
        })
        .unwrap_err();
    if on_postgres() {
        let msg = err.to_string();
        assert!(msg.contains("foreign key"), "server message shown: {msg}");
    }
    tx.rollback_to_savepoint().unwrap();
    tx.savepoint().unwrap();
    tx.insert_inbound(&inbound("after", "quarantined")).unwrap();
    tx.release_savepoint().unwrap();
    tx.commit().unwrap();
    let mut tx = s.write().unwrap();
    assert!(tx.inbound_exists("before").unwrap());
    assert!(!tx.inbound_exists("undone").unwrap());
    assert!(tx.inbound_exists("after").unwrap());
}

#[test]
fn commit_after_a_failed_statement_is_an_error_not_a_silent_rollback_postgres_only() {
    let d = db();
    if d.pg.is_none() {
        return;
    }
    let mut s = d.open();
    let mut tx = s.write().unwrap();
    tx.insert_inbound(&inbound("k", "created")).unwrap();
    assert!(
        tx.insert_attachment(999_999, "f", "text/plain", 1, None)
            .is_err()
    );
    assert!(tx.commit().is_err());
    let mut tx = s.write().unwrap();
    assert!(!tx.inbound_exists("k").unwrap());
}

#[test]
fn a_replayed_mail_no_longer_counts_for_deduplication() {
    let d = db();
    let mut s = d.open();
    let mut tx = s.write().unwrap();
    let id = tx
        .insert_inbound(&inbound("mid:q@x", "quarantined"))
        .unwrap();
    assert!(tx.inbound_exists("mid:q@x").unwrap());
    let (raw, source) = tx.take_for_replay(id).unwrap().unwrap();
    assert_eq!(
        (raw.as_slice(), source.as_str()),
        (&b"raw bytes"[..], "test")
    );
    assert!(!tx.inbound_exists("mid:q@x").unwrap());
    assert!(
        tx.take_for_replay(id).unwrap().is_none(),
        "no longer quarantined"
    );
    // The same key can be recorded again.
    tx.insert_inbound(&inbound("mid:q@x", "created")).unwrap();
    tx.commit().unwrap();
    assert!(s.quarantine(10).unwrap().is_empty());
    assert_eq!(s.inbound_raw(id).unwrap().unwrap(), b"raw bytes");
}

#[test]
fn a_header_only_mail_keeps_its_declared_size() {
    let d = db();
    let mut s = d.open();
    let mut tx = s.write().unwrap();
    let whole = tx
        .insert_inbound(&inbound("mid:whole@x", "quarantined"))
        .unwrap();
    let head = tx
        .insert_inbound(&NewInbound {
            declared_size: Some(30_000_000),
            ..inbound("mid:head@x", "quarantined")
        })
        .unwrap();
    assert_eq!(tx.inbound_declared_size(whole).unwrap(), None);
    assert_eq!(tx.inbound_declared_size(head).unwrap(), Some(30_000_000));
    tx.commit().unwrap();
    let sizes: Vec<_> = s
        .quarantine(10)
        .unwrap()
        .iter()
        .map(|q| (q.id, q.size))
        .collect();
    assert_eq!(sizes, [(whole, 9), (head, 30_000_000)]);
}

/// The daemon's situation: the synchronous store used from inside a runtime's `block_on`.
#[tokio::test]
async fn the_store_works_inside_a_current_thread_runtime() {
    let d = db();
    let mut s = d.open();
    let ids = enqueue(s.as_mut(), 3, now());
    tokio::task::yield_now().await;
    let got = s
        .claim_due(now(), now() + Duration::minutes(5), 10, 5)
        .unwrap();
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
    s.mark_sent(
        Claim {
            id: ids[0],
            attempts: 1,
        },
        now(),
    )
    .unwrap();
    assert_eq!(s.outbox(10).unwrap()[0].state, "sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_works_inside_a_multi_thread_runtime() {
    let d = db();
    let mut s = d.open();
    let handle = tokio::spawn(async move {
        enqueue(s.as_mut(), 2, now());
        s.outbox(10).unwrap().len()
    });
    assert_eq!(handle.await.unwrap(), 2);
}

#[test]
fn a_killed_connection_gives_errors_then_reconnects_never_hangs_postgres_only() {
    let d = db();
    let Some(pg) = &d.pg else { return };
    let admin = std::env::var(DATABASE_URL_VAR).unwrap();
    // Every connection of the store's pool to the test database (how many it has open at
    // a given moment is the pool's business).
    let kill = || {
        pg_scalar(
            &admin,
            &format!(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                 WHERE datname = '{}' AND pid <> pg_backend_pid()",
                pg.name
            ),
        )
    };
    let mut s = d.open();
    enqueue(s.as_mut(), 1, now());

    // At least the store's own connection (a backend terminated a moment ago may still be listed).
    assert!(kill() >= 1);
    let t = Instant::now();
    let first = s.outbox(10);
    let second = s.outbox(10);
    assert!(t.elapsed() < std::time::Duration::from_secs(15));
    assert!(
        first.is_ok() || second.is_ok(),
        "reconnected by the second call: {first:?} / {second:?}"
    );
    assert_eq!(second.unwrap().len(), 1);

    // Killed while idle: write() begins on a new connection at once.
    // At least the store's own connection (a backend terminated a moment ago may still be listed).
    assert!(kill() >= 1);
    let mut tx = s
        .write()
        .expect("write() reconnects when the idle connection died");
    tx.insert_inbound(&inbound("idle", "created")).unwrap();
    tx.commit().unwrap();

    // Killed inside a write transaction: the statement fails, dropping the transaction does
    // not hang, and the next transaction works on a new connection.
    let mut tx = s.write().unwrap();
    // At least the store's own connection (a backend terminated a moment ago may still be listed).
    assert!(kill() >= 1);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(tx.insert_inbound(&inbound("k", "created")).is_err());
    drop(tx);
    let mut tx = s.write().unwrap();
    tx.insert_inbound(&inbound("k", "created")).unwrap();
    tx.commit().unwrap();

    // The database goes away: an error naming it, not a panic or a hang.
    let name = pg.name.clone();
    drop(d);
    let _ = s.outbox(10); // may only find the connection closed
    let err = s.outbox(10).unwrap_err().to_string();
    assert!(err.contains(&name), "{err}");
}

#[test]
fn an_unreachable_server_is_an_error_naming_it_without_the_password() {
    let err = match store::open("postgres://someone:s3cret-pw@127.0.0.1:1/nodb") {
        Ok(_) => panic!("connected to port 1"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("someone@127.0.0.1:1/nodb"), "{err}");
    assert!(
        err.contains("Check that the PostgreSQL server is running"),
        "{err}"
    );
    assert!(!err.contains("s3cret-pw"), "{err}");
}

#[test]
fn a_missing_database_is_an_error_with_the_servers_message_postgres_only() {
    if !on_postgres() {
        return;
    }
    let admin = std::env::var(DATABASE_URL_VAR).unwrap();
    let (base, _) = admin.rsplit_once('/').unwrap();
    let err = match store::open(&format!("{base}/tg_no_such_database")) {
        Ok(_) => panic!("opened a database that does not exist"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("database \"tg_no_such_database\" does not exist"),
        "{err}"
    );
    assert!(err.contains("/tg_no_such_database"), "{err}");
}

#[test]
fn instances_starting_together_migrate_once_postgres_only() {
    let d = db();
    let Some(pg) = &d.pg else { return };
    let opened: Vec<_> = (0..3)
        .map(|_| {
            let url = pg.url.clone();
            std::thread::spawn(move || store::open(&url).map(|_| ()))
        })
        .collect();
    for t in opened {
        t.join().unwrap().unwrap();
    }
    // Each migration recorded once.
    let migrations = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres"),
    )
    .unwrap()
    .filter(|e| {
        e.as_ref()
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "sql")
    })
    .count() as i64;
    assert!(migrations >= 2);
    assert_eq!(
        pg_scalar(&pg.url, "SELECT count(*) FROM schema_migrations"),
        migrations
    );
    d.open(); // and again: nothing to do
    assert_eq!(
        pg_scalar(&pg.url, "SELECT count(*) FROM schema_migrations"),
        migrations
    );
}

#[test]
fn an_outcome_is_recorded_only_under_the_current_claim() {
    let d = db();
    let mut s = d.open();
    let ids = enqueue(s.as_mut(), 1, now());
    let first = s
        .claim_due(now(), now() + Duration::seconds(1), 10, 5)
        .unwrap();
    assert_eq!(
        first[0].claim(),
        Claim {
            id: ids[0],
            attempts: 1
        }
    );
    // The first sender stalls; its claim lapses and a second sender takes the row over.
    let_lapse(Duration::seconds(1));
    let later = now() + Duration::seconds(2);
    let second = s
        .claim_due(later, later + Duration::seconds(10), 10, 5)
        .unwrap();
    assert_eq!(
        second[0].claim(),
        Claim {
            id: ids[0],
            attempts: 2
        }
    );
    // The first sender's outcome comes in late: it must not overwrite the second's claim.
    assert!(!s.mark_retry(first[0].claim(), later, "421 late").unwrap());
    assert!(!s.mark_failed(first[0].claim(), "550 late").unwrap());
    assert!(!s.mark_dead(first[0].claim(), "late").unwrap());
    assert_eq!(
        s.mark_outcomes(&[(first[0].claim(), store::Outcome::Sent)], later)
            .unwrap(),
        vec![false]
    );
    let row = &s.outbox(10).unwrap()[0];
    assert_eq!((row.state.as_str(), row.attempts), ("sending", 2));
    assert!(s.mark_sent(second[0].claim(), later).unwrap());
    assert_eq!(s.outbox(10).unwrap()[0].state, "sent");
}

/// Every kind of outcome in one call (one commit; one statement on PostgreSQL), each under
/// its own claim's fence: a lapsed claim among them changes nothing of its row.
#[test]
fn outcomes_of_every_kind_are_recorded_in_one_call_each_under_its_claim() {
    use store::Outcome;
    let d = db();
    let mut s = d.open();
    let ids = enqueue(s.as_mut(), 5, now());
    let got = s
        .claim_due(now(), now() + Duration::minutes(5), 10, 5)
        .unwrap();
    assert_eq!(got.len(), 5);
    let claim = |id: i64| got.iter().find(|m| m.id == id).unwrap().claim();
    let later = now() + Duration::seconds(3);
    let retry_at = now() + Duration::minutes(7);
    // The last one's claim is stale (an attempt count it no longer has).
    let stale = Claim {
        id: ids[4],
        attempts: claim(ids[4]).attempts + 1,
    };
    let marks = [
        (claim(ids[0]), Outcome::Sent),
        (
            claim(ids[1]),
            Outcome::Retry {
                next_at: retry_at,
                error: "421 busy".into(),
            },
        ),
        (claim(ids[2]), Outcome::Failed("550 no such user".into())),
        (claim(ids[3]), Outcome::Dead("gave up".into())),
        (stale, Outcome::Sent),
    ];
    assert_eq!(
        s.mark_outcomes(&marks, later).unwrap(),
        [true, true, true, true, false]
    );
    let rows = s.outbox(10).unwrap();
    let row = |id: i64| rows.iter().find(|r| r.id == id).unwrap();
    assert_eq!(row(ids[0]).state, store::OutboxState::Sent);
    assert_eq!(row(ids[0]).last_error, None);
    assert_eq!(
        (row(ids[1]).state, row(ids[1]).next_attempt_at),
        (store::OutboxState::Retry, retry_at)
    );
    assert_eq!(row(ids[1]).last_error.as_deref(), Some("421 busy"));
    assert_eq!(row(ids[2]).state, store::OutboxState::Failed);
    assert_eq!(row(ids[2]).last_error.as_deref(), Some("550 no such user"));
    assert_eq!(row(ids[3]).state, store::OutboxState::Dead);
    assert_eq!(row(ids[4]).state, store::OutboxState::Sending);
    assert!(s.mark_outcomes(&[], later).unwrap().is_empty());
}

#[test]
fn released_claims_are_due_again_with_their_attempt_taken_back() {
    let d = db();
    let mut s = d.open();
    let ids = enqueue(s.as_mut(), 3, now());
    let got = s
        .claim_due(now(), now() + Duration::minutes(5), 10, 5)
        .unwrap();
    assert_eq!(got.len(), 3);
    // One of them was already finished by someone: releasing must not touch it.
    assert!(s.mark_sent(got[2].claim(), now()).unwrap());
    let claims: Vec<Claim> = got.iter().map(|m| m.claim()).collect();
    let at = now() + Duration::seconds(1);
    s.release_claims(&claims, at).unwrap();
    let rows = s.outbox(10).unwrap();
    let state = |id: i64| {
        let r = rows.iter().find(|r| r.id == id).unwrap();
        (r.state, r.attempts, r.next_attempt_at)
    };
    assert_eq!(state(ids[0]), (store::OutboxState::Pending, 0, at));
    assert_eq!(state(ids[1]), (store::OutboxState::Pending, 0, at));
    assert_eq!(state(ids[2]).0, "sent");
    // Due again at once: claimed afresh, as first attempts.
    let again = s.claim_due(at, at + Duration::minutes(5), 10, 5).unwrap();
    assert_eq!(
        again.iter().map(|m| (m.id, m.attempts)).collect::<Vec<_>>(),
        [(ids[0], 1), (ids[1], 1)]
    );
}

/// What became of IMAP UIDs: written in the batch's transaction (gone with a rollback),
/// read back per UIDVALIDITY, finished records dropped while given-up ones stay, and failure
/// counts that never overwrite a stored or given-up record.
#[test]
fn uid_dispositions_are_transactional_and_given_up_ones_are_kept() {
    use ticketgate::store::UidDisposition::{Failing, GivenUp, HeaderOnly, Stored};
    let db = db();
    let mut s = db.open();
    let rows = |s: &mut dyn Store, v: u32| -> Vec<(u32, ticketgate::store::UidDisposition, u32)> {
        s.uid_states("support", v)
            .unwrap()
            .iter()
            .map(|r| (r.uid, r.disposition, r.failures))
            .collect()
    };
    {
        let mut tx = s.write().unwrap();
        tx.set_uid_dispositions("support", 7, &[(1, Stored)])
            .unwrap();
        // Dropped: rolled back.
    }
    assert!(rows(s.as_mut(), 7).is_empty());
    s.set_uid_failures("support", 7, 3, 2).unwrap();
    let mut tx = s.write().unwrap();
    tx.set_uid_dispositions("support", 7, &[(1, Stored), (2, HeaderOnly), (3, GivenUp)])
        .unwrap();
    tx.set_uid_dispositions("support", 6, &[(9, Stored)])
        .unwrap();
    tx.commit().unwrap();
    s.set_uid_failures("support", 7, 1, 5).unwrap();
    s.set_uid_failures("support", 7, 4, 1).unwrap();
    assert_eq!(
        rows(s.as_mut(), 7),
        vec![
            (1, Stored, 0),
            (2, HeaderOnly, 0),
            (3, GivenUp, 2),
            (4, Failing, 1)
        ]
    );
    s.forget_uids("support", 7, 1, 3).unwrap();
    assert_eq!(rows(s.as_mut(), 7), vec![(3, GivenUp, 2), (4, Failing, 1)]);
    assert!(
        rows(s.as_mut(), 6).is_empty(),
        "another UIDVALIDITY's rows go too"
    );
}

#[test]
fn listing_everything_takes_usize_max_as_the_limit() {
    let d = db();
    let mut s = d.open();
    enqueue(s.as_mut(), 2, now());
    assert_eq!(s.outbox(usize::MAX).unwrap().len(), 2);
    assert!(s.tickets(usize::MAX).unwrap().is_empty());
    assert!(s.quarantine(usize::MAX).unwrap().is_empty());
    let mut tx = s.write().unwrap();
    assert!(tx.due_timers(now(), usize::MAX).unwrap().is_empty());
}

/// TLS to a real server, when it has it: Debian's cluster serves its `snakeoil` certificate
/// (self-signed, for `localhost`). `verify-full` with that certificate as the CA connects
/// (and the session is encrypted); the wrong CA or the wrong host name is refused.
#[test]
fn tls_verify_full_with_the_servers_ca_postgres_only() {
    const CA: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
    let d = db();
    let Some(pg) = &d.pg else { return };
    if pg_scalar(
        &pg.url,
        "SELECT (current_setting('ssl') = 'on')::int::bigint",
    ) != 1
        || !std::path::Path::new(CA).exists()
        || !pg.url.contains("@127.0.0.1:")
    {
        eprintln!("skipped: the server has no TLS with {CA}");
        return;
    }
    let url = |host: &str, ca: &str| {
        let sep = if pg.url.contains('?') { '&' } else { '?' };
        format!(
            "{}{sep}sslmode=verify-full&sslrootcert={ca}",
            pg.url.replace("@127.0.0.1:", &format!("@{host}:"))
        )
    };
    let mut s = store::open(&url("localhost", CA)).unwrap();
    enqueue(s.as_mut(), 1, now());
    assert_eq!(s.outbox(10).unwrap().len(), 1);
    let encrypted = pg_scalar(
        &pg.url,
        &format!(
            "SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE datname = '{}' AND ssl AND application_name = 'ticketgate'",
            pg.name
        ),
    );
    assert!(encrypted >= 1, "the store's connections use TLS");

    let wrong_ca = "/etc/ssl/certs/ca-certificates.crt";
    for (host, ca) in [("localhost", wrong_ca), ("127.0.0.1", CA)] {
        let err = match store::open(&url(host, ca)) {
            Ok(_) => panic!("verify-full accepted host {host} with CA {ca}"),
            Err(e) => e.to_string(),
        };
        eprintln!("verify-full, host {host}, CA {ca}: {err}");
        assert!(!err.contains(":ticketgate@"), "no password: {err}");
        assert!(err.contains(&pg.name), "{err}");
        assert!(err.contains("certificate"), "{err}");
        assert!(err.contains("Check sslmode and sslrootcert"), "{err}");
    }
}

/// A PostgreSQL store handle is a cheap clone sharing one pool: while one clone's write
/// transaction is open, other clones read at once (from other threads and from
/// `spawn_blocking`) without seeing its uncommitted rows, and all of them together stay
/// within the pool's connections.
#[test]
fn clones_share_one_pool_and_read_while_one_writes_postgres_only() {
    let d = db();
    let Some(pg) = &d.pg else { return };
    let mut writer = store::PgStore::open(&pg.url).unwrap();
    writer.migrate().unwrap();
    let reader = writer.clone();
    let mut tx = writer.write().unwrap();
    tx.insert_inbound(&inbound("k", "quarantined")).unwrap();
    let t = Instant::now();
    let readers: Vec<_> = (0..12)
        .map(|_| {
            let mut r = reader.clone();
            std::thread::spawn(move || r.quarantine(10).unwrap().len())
        })
        .collect();
    for h in readers {
        assert_eq!(h.join().unwrap(), 0, "uncommitted rows are not seen");
    }
    assert!(t.elapsed() < std::time::Duration::from_secs(10));
    tx.commit().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut r = reader.clone();
    let seen = rt.block_on(async {
        tokio::task::spawn_blocking(move || r.quarantine(10).unwrap().len())
            .await
            .unwrap()
    });
    assert_eq!(seen, 1);
    let connections = pg_scalar(
        &pg.url,
        &format!(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = '{}' \
             AND application_name = 'ticketgate'",
            pg.name
        ),
    );
    assert!(
        (1..=i64::from(store::PgStore::POOL_SIZE)).contains(&connections),
        "{connections} connections"
    );
}

// ---------------------------------------------------------------------------------------
// Batch transactions (`Store::write_batch`, ADR 0009).

fn a_ticket(subject: &str) -> store::TicketRow {
    store::TicketRow {
        id: 0,
        customer: "acme".into(),
        support_key: "ACME-1".into(),
        plan: "gold".into(),
        language: "en".into(),
        profile: ticketgate::workflow::Profile::Exo,
        issue_type: "incident".into(),
        status: ticketgate::workflow::Status::New,
        severity: 3,
        stated_severity: None,
        subject: subject.into(),
        requester: "c@example.test".into(),
        requester_name: None,
        reason: None,
        parent_id: None,
        missing_info: vec!["version".into()],
        followup_base_at: None,
        followup_stage: 0,
        survey_score: None,
        sla: store::SlaState::default(),
        created_at: now(),
        updated_at: now(),
    }
}

#[test]
fn a_batch_reads_its_own_writes_before_they_reach_the_tables() {
    let d = db();
    let mut s = d.open();
    let since = now() - Duration::hours(1);
    let mut tx = s.write_batch().unwrap();
    tx.prefetch(&store::Prefetch {
        mails: vec![store::PrefetchMail {
            dedup_key: "mid:req@x".into(),
            message_ids: vec!["req@x".into()],
            ticket_ids: vec![1],
            from: Some("c@example.test".into()),
            may_open: true,
        }],
        since: Some(since),
        auto_reply_limit: Some(5),
    })
    .unwrap();
    assert!(!tx.inbound_exists("mid:req@x").unwrap());
    assert_eq!(tx.ticket_for_message_id("req@x").unwrap(), None);
    let id = tx.insert_ticket(&a_ticket("printer on fire")).unwrap();
    let inbound_id = tx
        .insert_inbound(&NewInbound {
            ticket_id: Some(id),
            ..inbound("mid:req@x", "created")
        })
        .unwrap();
    // The same mail again, a reply to it, and the ticket: answered from the batch's writes.
    assert!(tx.inbound_exists("mid:req@x").unwrap());
    assert_eq!(tx.ticket_for_message_id("req@x").unwrap(), Some(id));
    let mut t = tx.ticket(id).unwrap().expect("the new ticket");
    assert_eq!(t.subject, "printer on fire");
    t.status = ticketgate::workflow::Status::Open;
    tx.save_ticket(&t).unwrap();
    assert_eq!(
        tx.ticket(id).unwrap().unwrap().status,
        ticketgate::workflow::Status::Open
    );
    // The cap counts the batch's own automatic mail, not the suppressed one.
    assert_eq!(tx.automatic_sent_since("c@example.test", since).unwrap(), 0);
    let auto = NewOutbound {
        ticket_id: Some(id),
        inbound_id: Some(inbound_id),
        automatic: true,
        ..outbound("c@example.test", "<ack@tg.example.test>", now())
    };
    tx.enqueue(&auto).unwrap();
    tx.enqueue(&NewOutbound {
        state: store::OutboxState::Suppressed,
        note: Some("over the cap"),
        message_id: "<ack2@tg.example.test>",
        ..auto
    })
    .unwrap();
    assert_eq!(tx.automatic_sent_since("c@example.test", since).unwrap(), 1);
    tx.link_message_id("ack@tg.example.test", id).unwrap();
    assert_eq!(
        tx.ticket_for_message_id("ack@tg.example.test").unwrap(),
        Some(id)
    );
    let article = tx
        .insert_article(&NewArticle {
            ticket_id: id,
            inbound_id: Some(inbound_id),
            kind: "customer",
            author: "c@example.test",
            body: "it burns",
            quoted: "",
            now: now(),
        })
        .unwrap();
    tx.insert_attachment(article, "smoke.txt", "text/plain", 5, Some(b"smoke"))
        .unwrap();
    tx.set_timer(id, "sla", now() + Duration::hours(2)).unwrap();
    tx.set_timer(id, "followup", now()).unwrap();
    tx.clear_timer(id, "followup").unwrap();
    tx.commit().unwrap();

    // All of it reached the tables, references between the rows intact.
    let (t, articles) = s.ticket_with_articles(id).unwrap().unwrap();
    assert_eq!(t.status, ticketgate::workflow::Status::Open);
    assert_eq!(t.missing_info, vec!["version".to_string()]);
    assert_eq!(articles.len(), 1);
    assert_eq!(articles[0].attachments.len(), 1);
    let timers = s.timers(id).unwrap();
    assert_eq!(timers.len(), 1);
    assert_eq!(timers[0].kind, "sla");
    let outbox = s.outbox(10).unwrap();
    assert_eq!(outbox.len(), 2);
    assert!(outbox.iter().all(|o| o.ticket_id == Some(id)));
    let mut tx = s.write().unwrap();
    assert!(tx.inbound_exists("mid:req@x").unwrap());
    assert_eq!(tx.ticket_for_message_id("req@x").unwrap(), Some(id));
    assert_eq!(
        tx.ticket_for_message_id("ack@tg.example.test").unwrap(),
        Some(id)
    );
    assert_eq!(tx.automatic_sent_since("c@example.test", since).unwrap(), 1);
}

#[test]
fn a_batch_reads_without_the_writer_lock_postgres_only() {
    let d = db();
    if d.pg.is_none() {
        return;
    }
    let mut s = d.open();
    let mut tx = s.write_batch().unwrap();
    assert!(!tx.inbound_exists("mid:mine@x").unwrap());
    tx.insert_inbound(&inbound("mid:mine@x", "created"))
        .unwrap();
    // Another writer is not held up by a batch that is still reading and rendering.
    let url = d.url.clone();
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut other = store::open(&url).unwrap();
        let mut w = other.write().unwrap();
        w.insert_inbound(&inbound("mid:theirs@x", "created"))
            .unwrap();
        w.commit().unwrap();
        let _ = done_tx.send(());
    });
    done_rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the other writer committed while the batch was open");
    tx.commit().unwrap();
    let mut tx = s.write().unwrap();
    assert!(tx.inbound_exists("mid:mine@x").unwrap());
    assert!(tx.inbound_exists("mid:theirs@x").unwrap());
}

#[test]
fn a_batch_commits_nothing_when_another_writer_changed_what_it_read_postgres_only() {
    let d = db();
    if d.pg.is_none() {
        return;
    }
    let mut s = d.open();
    let mut other = d.open();
    let count = |key: &str| {
        pg_scalar(
            &d.url,
            &format!("SELECT count(*) FROM inbound WHERE dedup_key = '{key}'"),
        )
    };

    // The same mail, read by two instances: the second to commit writes nothing.
    let mut tx = s.write_batch().unwrap();
    assert!(!tx.inbound_exists("mid:twice@x").unwrap());
    tx.insert_inbound(&inbound("mid:twice@x", "created"))
        .unwrap();
    let mut w = other.write().unwrap();
    w.insert_inbound(&inbound("mid:twice@x", "created"))
        .unwrap();
    w.commit().unwrap();
    let err = tx.commit().unwrap_err().to_string();
    assert!(err.contains("write conflict"), "{err}");
    assert_eq!(count("mid:twice@x"), 1);

    // A ticket changed by another writer after the batch read it: no lost update.
    let mut w = other.write().unwrap();
    let id = w.insert_ticket(&a_ticket("shared")).unwrap();
    w.commit().unwrap();
    let mut tx = s.write_batch().unwrap();
    let mut mine = tx.ticket(id).unwrap().unwrap();
    tx.insert_inbound(&inbound("mid:mine@x", "created"))
        .unwrap();
    let mut w = other.write().unwrap();
    let mut theirs = w.ticket(id).unwrap().unwrap();
    theirs.status = ticketgate::workflow::Status::Closed;
    w.save_ticket(&theirs).unwrap();
    w.commit().unwrap();
    mine.status = ticketgate::workflow::Status::Open;
    tx.save_ticket(&mine).unwrap();
    let err = tx.commit().unwrap_err().to_string();
    assert!(err.contains("write conflict"), "{err}");
    assert_eq!(count("mid:mine@x"), 0, "nothing of the batch was written");
    let (t, _) = s.ticket_with_articles(id).unwrap().unwrap();
    assert_eq!(t.status, ticketgate::workflow::Status::Closed);

    // Another writer's automatic mail to the same sender conflicts only when it changes
    // what the cap decided.
    let since = now() - Duration::hours(1);
    for (limit, conflict) in [(3, false), (1, true)] {
        let to = format!("cap{limit}@example.test");
        let mut tx = s.write_batch().unwrap();
        tx.prefetch(&store::Prefetch {
            mails: vec![store::PrefetchMail {
                dedup_key: format!("mid:cap{limit}@x"),
                from: Some(to.clone()),
                ..Default::default()
            }],
            since: Some(since),
            auto_reply_limit: Some(limit),
        })
        .unwrap();
        assert_eq!(tx.automatic_sent_since(&to, since).unwrap(), 0);
        tx.insert_inbound(&inbound(&format!("mid:cap{limit}@x"), "created"))
            .unwrap();
        let mut w = other.write().unwrap();
        let mid = format!("<cap{limit}@tg.example.test>");
        w.enqueue(&NewOutbound {
            automatic: true,
            ..outbound(&to, &mid, now())
        })
        .unwrap();
        w.commit().unwrap();
        let r = tx.commit();
        assert_eq!(r.is_err(), conflict, "limit {limit}: {r:?}");
    }
}

/// A batch on its own store, in a thread: reads `ticket`, sets its reason to `reason`, records a
/// mail `key`, commits; the outcome comes on the channel.
fn batch_in_thread(
    url: &str,
    ticket: i64,
    reason: &str,
    key: &str,
) -> mpsc::Receiver<store::Result<()>> {
    let (url, reason, key) = (url.to_string(), reason.to_string(), key.to_string());
    let (done_tx, done_rx) = mpsc::channel();
    let (read_tx, read_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = store::open(&url).unwrap();
        let r = (|| {
            let mut tx = s.write_batch()?;
            let mut t = tx.ticket(ticket)?.expect("the ticket exists");
            assert!(!tx.inbound_exists(&key)?);
            let _ = read_tx.send(());
            t.reason = Some(reason);
            tx.save_ticket(&t)?;
            tx.insert_inbound(&inbound(&key, "appended"))?;
            tx.commit()
        })();
        let _ = done_tx.send(r);
    });
    // Its reads are made before this returns.
    read_rx
        .recv_timeout(std::time::Duration::from_secs(20))
        .expect("the batch read its ticket");
    done_rx
}

/// Batches lock what they write, not the whole store (ADR 0023): while one batch's commit
/// is held up, a batch that writes another ticket commits; one that writes the same ticket
/// waits for it, then finds the change and writes nothing; a plain writer waits for it.
#[test]
fn a_batch_waits_only_for_batches_that_write_what_it_writes_postgres_only() {
    let d = db();
    if d.pg.is_none() {
        return;
    }
    let mut s = d.open();
    let mut w = s.write().unwrap();
    let one = w.insert_ticket(&a_ticket("one")).unwrap();
    let two = w.insert_ticket(&a_ticket("two")).unwrap();
    w.commit().unwrap();
    let wait = std::time::Duration::from_secs(20);
    let a_while = std::time::Duration::from_millis(700);

    // Another session holds ticket one's row, so batch A stops in its flush, after it took
    // its locks.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut holder = rt.block_on(common::plumbing_connection(&d.url));
    rt.block_on(
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "BEGIN; SELECT id FROM tickets WHERE id = {one} FOR UPDATE"
        )))
        .execute(&mut holder),
    )
    .unwrap();
    let a = batch_in_thread(&d.url, one, "one, by A", "mid:a@x");
    let shared_writers = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                          AND mode = 'ShareLock' AND granted";
    let held_since = Instant::now();
    while pg_scalar(&d.url, shared_writers) == 0 {
        assert!(held_since.elapsed() < wait, "batch A never took its locks");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    // B writes ticket two: it commits while A is held.
    let b = batch_in_thread(&d.url, two, "two, by B", "mid:b@x");
    b.recv_timeout(wait)
        .expect("batch B committed beside A")
        .unwrap();
    assert!(a.try_recv().is_err(), "A is still held");

    // C writes ticket one, which A is writing; a plain writer takes the writers' lock.
    let c = batch_in_thread(&d.url, one, "one, by C", "mid:c@x");
    let url = d.url.clone();
    let (plain_tx, plain_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = store::open(&url).unwrap();
        let r = (|| {
            let mut w = s.write()?;
            w.insert_inbound(&inbound("mid:plain@x", "created"))?;
            w.commit()
        })();
        let _ = plain_tx.send(r);
    });
    assert!(c.recv_timeout(a_while).is_err(), "C waits for A");
    assert!(
        plain_rx.recv_timeout(a_while).is_err(),
        "the plain writer waits for A"
    );

    rt.block_on(sqlx::raw_sql("ROLLBACK").execute(&mut holder))
        .unwrap();
    a.recv_timeout(wait).expect("A committed").unwrap();
    let err = c
        .recv_timeout(wait)
        .expect("C ended")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("write conflict: ticket #{one}")),
        "{err}"
    );
    plain_rx
        .recv_timeout(wait)
        .expect("the plain writer committed")
        .unwrap();

    assert_eq!(
        s.ticket_with_articles(one)
            .unwrap()
            .unwrap()
            .0
            .reason
            .as_deref(),
        Some("one, by A")
    );
    assert_eq!(
        s.ticket_with_articles(two)
            .unwrap()
            .unwrap()
            .0
            .reason
            .as_deref(),
        Some("two, by B")
    );
    let mut r = s.write().unwrap();
    for (key, written) in [
        ("mid:a@x", true),
        ("mid:b@x", true),
        ("mid:c@x", false),
        ("mid:plain@x", true),
    ] {
        assert_eq!(r.inbound_exists(key).unwrap(), written, "{key}");
    }
}

#[test]
fn a_row_that_refers_to_a_missing_ticket_or_inbound_mail_is_refused() {
    // SQLite: its foreign keys; PostgreSQL: the flush's own check of the references
    // (migration 0011, ADR 0016). Both in a plain and in a batch transaction.
    let d = db();
    let mut s = d.open();
    let mut tx = s.write().unwrap();
    let ticket = tx.insert_ticket(&a_ticket("exists")).unwrap();
    let mail = tx
        .insert_inbound(&inbound("mid:exists@x", "created"))
        .unwrap();
    tx.commit().unwrap();
    type Write = fn(&mut dyn store::WriteTx, i64, i64) -> store::Result<()>;
    let writes: [(&str, Write); 7] = [
        ("article of a missing ticket", |tx, _, m| {
            article(tx, 4242, Some(m)).map(drop)
        }),
        ("article of a missing inbound mail", |tx, t, _| {
            article(tx, t, Some(4243)).map(drop)
        }),
        ("inbound mail of a missing ticket", |tx, _, _| {
            tx.insert_inbound(&NewInbound {
                ticket_id: Some(4244),
                ..inbound("mid:dangling@x", "appended")
            })
            .map(drop)
        }),
        ("outbox row of a missing ticket", |tx, _, _| {
            tx.enqueue(&NewOutbound {
                ticket_id: Some(4245),
                ..outbound("c@example.test", "<dangling@tg.example.test>", now())
            })
            .map(drop)
        }),
        ("timer of a missing ticket", |tx, _, _| {
            tx.set_timer(4246, "sla", now())
        }),
        ("Message-ID of a missing ticket", |tx, _, _| {
            tx.link_message_id("dangling@tg.example.test", 4247)
        }),
        ("escalation of a missing ticket", |tx, _, _| {
            tx.insert_escalation(4248, now(), 2, now(), 3600)
        }),
    ];
    for (what, write) in writes {
        for batch in [false, true] {
            let mut tx = if batch {
                s.write_batch().unwrap()
            } else {
                s.write().unwrap()
            };
            // The same transaction's good rows go with the bad one.
            article(tx.as_mut(), ticket, Some(mail)).unwrap();
            let refused = match write(tx.as_mut(), ticket, mail) {
                Err(_) => true,
                Ok(()) => tx.commit().is_err(),
            };
            assert!(refused, "{what} (batch: {batch}) was committed");
        }
    }
    // Rows that refer to what exists, and to what the same batch writes, commit.
    let mut tx = s.write_batch().unwrap();
    let new = tx.insert_ticket(&a_ticket("new")).unwrap();
    let new_mail = tx
        .insert_inbound(&NewInbound {
            ticket_id: Some(new),
            ..inbound("mid:new@x", "created")
        })
        .unwrap();
    article(tx.as_mut(), new, Some(new_mail)).unwrap();
    article(tx.as_mut(), ticket, Some(new_mail)).unwrap();
    article(tx.as_mut(), new, Some(mail)).unwrap();
    tx.set_timer(ticket, "sla", now()).unwrap();
    tx.link_message_id("new@tg.example.test", new).unwrap();
    tx.insert_escalation(new, now(), 2, now(), 3600).unwrap();
    tx.insert_escalation(ticket, now(), 2, now(), 3600).unwrap();
    tx.commit().unwrap();
    assert_eq!(s.escalations(new).unwrap().len(), 1);
    assert_eq!(s.escalations(ticket).unwrap().len(), 1);
    let (_, articles) = s.ticket_with_articles(new).unwrap().unwrap();
    assert_eq!(articles.len(), 2);
    let (_, articles) = s.ticket_with_articles(ticket).unwrap().unwrap();
    assert_eq!(articles.len(), 1, "only the committed batch's article");
}

fn article(
    tx: &mut dyn store::WriteTx,
    ticket_id: i64,
    inbound_id: Option<i64>,
) -> store::Result<i64> {
    tx.insert_article(&NewArticle {
        ticket_id,
        inbound_id,
        kind: "customer",
        author: "c@example.test",
        body: "text",
        quoted: "",
        now: now(),
    })
}

#[test]
fn a_batch_reads_each_suppression_once_and_sees_its_own_changes() {
    let d = db();
    let mut s = d.open();
    let suppression = |address: &str| store::Suppression {
        address: address.into(),
        kind: ticketgate::bounce::Verdict::Hard,
        reason: "5.1.1 user unknown".into(),
        status: Some("5.1.1".into()),
        outbox_id: None,
        ticket_id: None,
        created_at: now(),
    };
    let mut tx = s.write().unwrap();
    assert!(
        tx.insert_suppression(&suppression("gone@example.test"))
            .unwrap()
    );
    tx.commit().unwrap();
    let mut tx = s.write_batch().unwrap();
    // The senders' suppressions come with the prefetch (a sender's address in any case).
    tx.prefetch(&store::Prefetch {
        mails: vec![
            store::PrefetchMail {
                dedup_key: "mid:a@x".into(),
                from: Some("Gone@Example.test".into()),
                ..Default::default()
            },
            store::PrefetchMail {
                dedup_key: "mid:b@x".into(),
                from: Some("here@example.test".into()),
                ..Default::default()
            },
        ],
        since: None,
        auto_reply_limit: None,
    })
    .unwrap();
    let got = tx.suppression("gone@example.test").unwrap();
    assert_eq!(got, Some(suppression("gone@example.test")));
    assert_eq!(tx.suppression("here@example.test").unwrap(), None);
    assert_eq!(tx.suppression("other@example.test").unwrap(), None);
    // Its own writes: seen at once.
    assert!(
        tx.insert_suppression(&suppression("here@example.test"))
            .unwrap()
    );
    assert_eq!(
        tx.suppression("here@example.test").unwrap(),
        Some(suppression("here@example.test"))
    );
    assert!(tx.remove_suppression("gone@example.test").unwrap());
    assert_eq!(tx.suppression("gone@example.test").unwrap(), None);
    tx.commit().unwrap();
    let mut tx = s.write_batch().unwrap();
    assert_eq!(tx.suppression("gone@example.test").unwrap(), None);
    assert!(tx.suppression("here@example.test").unwrap().is_some());
}
