//! [`Db`]: the store handle the daemon's tasks share. Cheap to clone, `Send + Sync`, no lock
//! around the application.
//!
//! - **Writes** ([`Db::write`]) are closures over a synchronous [`Store`] run one after
//!   another on a dedicated writer thread; the caller `.await`s the result. The pipeline,
//!   the lifecycle and the timers keep their synchronous code (`store.write()` →
//!   [`WriteTx`](super::WriteTx)), and a batch commit (or, on PostgreSQL, a wait for another
//!   instance's writer lock) never blocks a runtime thread.
//! - **Everything else** ([`Db::read`]) runs on a pooled connection on a blocking-pool
//!   thread, and never queues behind the writer: reads, and the short self-contained writes
//!   that must not wait for a batch (lease renewals, outbox claims and marks). Connections
//!   are opened when first needed and kept up to [`IDLE_CONNECTIONS`].
//! - [`Db::conn`] checks a pooled connection out synchronously, for the command line and
//!   tests.
//!
//! A panic inside a closure is caught: the caller gets an error, the writer thread lives on.

use super::{Result, Store, StoreError};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, mpsc};

/// How long the last handle's drop waits for the writer thread to close its connection.
pub const WRITER_CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Pooled connections kept open when idle.
pub const IDLE_CONNECTIONS: usize = 4;

type Job = Box<dyn FnOnce(&mut dyn Store) + Send>;
type Opener = Box<dyn Fn() -> Result<Box<dyn Store>> + Send + Sync>;

/// The shared store handle: one writer thread and a pool of connections.
#[derive(Clone)]
pub struct Db {
    inner: Arc<Inner>,
}

struct Inner {
    /// `None` once dropped: the writer thread's loop then ends.
    writer: Option<mpsc::Sender<Job>>,
    /// Waited for when the last handle goes, so that the writer's connection is closed (on
    /// SQLite: its close work done) before the process can exit: the thread drops its end
    /// of this channel when it ends.
    done: Option<(std::thread::ThreadId, Mutex<mpsc::Receiver<()>>)>,
    idle: Mutex<Vec<Box<dyn Store>>>,
    open: Opener,
}

impl Drop for Inner {
    /// Closes the writer's channel and waits for the thread to drop its connection. Without
    /// this a short process (`ticketgate ingest`) could exit in the middle of SQLite's close
    /// (its checkpoint), leaving the WAL behind unbounded (ADR 0018). Not joined from the
    /// writer thread itself (a job that held the last handle).
    ///
    /// The wait is bounded by [`WRITER_CLOSE_WAIT`]: a writer still inside a long job (a
    /// batch waiting on an unreachable server) must not hold a process past its shutdown
    /// deadline; that job's transaction is never committed, so nothing is lost by leaving.
    fn drop(&mut self) {
        drop(self.writer.take());
        if let Some((id, done)) = self.done.take()
            && id != std::thread::current().id()
            && let Ok(done) = done.into_inner()
            && done.recv_timeout(WRITER_CLOSE_WAIT) == Err(mpsc::RecvTimeoutError::Timeout)
        {
            tracing::warn!(
                "the database writer was still busy {}s after the last handle went; leaving it",
                WRITER_CLOSE_WAIT.as_secs()
            );
        }
    }
}

impl Db {
    /// A handle over connections made by `open` (already migrated): one is made now for the
    /// writer thread, the others when first needed.
    pub fn new(open: impl Fn() -> Result<Box<dyn Store>> + Send + Sync + 'static) -> Result<Db> {
        let store = open()?;
        let (tx, rx) = mpsc::channel::<Job>();
        let (done_tx, done_rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("ticketgate-db-writer".into())
            .spawn(move || {
                // Locals drop in reverse order: `store` (its connection closed) before
                // `_done`, which tells the last handle's drop that the close is finished.
                let _done = done_tx;
                let mut store = store;
                // Ends when every `Db` is dropped (the channel closes).
                for job in rx {
                    let s: &mut dyn Store = store.as_mut();
                    if std::panic::catch_unwind(AssertUnwindSafe(|| job(s))).is_err() {
                        tracing::error!(
                            "a database write panicked; it was rolled back and reported to its caller"
                        );
                    }
                }
            })
            .map_err(|e| StoreError::Other(format!("cannot start the database writer thread: {e}")))?;
        Ok(Db {
            inner: Arc::new(Inner {
                writer: Some(tx),
                done: Some((thread.thread().id(), Mutex::new(done_rx))),
                idle: Mutex::new(Vec::new()),
                open: Box::new(open),
            }),
        })
    }

    /// Opens the database named by `url` (see [`super::open`]), migrated once.
    pub fn open(url: &str) -> Result<Db> {
        Db::open_as(url, super::Role::Service)
    }

    /// [`Db::open`] for a process that makes one transaction and exits (`ticketgate ingest`):
    /// see [`super::Role::OneShot`].
    pub fn open_one_shot(url: &str) -> Result<Db> {
        Db::open_as(url, super::Role::OneShot)
    }

    fn open_as(url: &str, role: super::Role) -> Result<Db> {
        if let Some(("postgres" | "postgresql", _)) = url.split_once(':') {
            // One pool for the process: every handle is a clone sharing it.
            let mut pg = super::PgStore::open(url)?;
            pg.migrate()?;
            return Db::new(move || Ok(Box::new(pg.clone()) as Box<dyn Store>));
        }
        // SQLite: the first connection migrates; the others only connect.
        let first = Mutex::new(Some(super::open_as(url, role, true)?));
        let url = url.to_string();
        Db::new(move || {
            let taken = first.lock().map(|mut f| f.take()).unwrap_or(None);
            match taken {
                Some(s) => Ok(s),
                None => super::open_as(&url, role, false),
            }
        })
    }

    /// Runs `f` on the writer thread (after the writes queued before it) and returns its
    /// result. A dropped caller does not cancel it: a batch it started still commits.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner
            .writer
            .as_ref()
            .ok_or_else(writer_gone)?
            .send(Box::new(move |s| {
                let _ = tx.send(f(s));
            }))
            .map_err(|_| writer_gone())?;
        rx.await.map_err(|_| writer_gone())?
    }

    /// [`Db::write`] for synchronous callers (the command line); blocks this thread.
    pub fn write_blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (tx, rx) = mpsc::sync_channel(1);
        self.inner
            .writer
            .as_ref()
            .ok_or_else(writer_gone)?
            .send(Box::new(move |s| {
                let _ = tx.send(f(s));
            }))
            .map_err(|_| writer_gone())?;
        rx.recv().map_err(|_| writer_gone())?
    }

    /// Runs `f` on a pooled connection on a blocking-pool thread: reads, and short writes
    /// that must not wait behind the writer's queue (leases, outbox claims and marks).
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut dyn Store) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let db = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = db.conn()?;
            f(&mut *c)
        })
        .await
        .map_err(|e| StoreError::Other(format!("a database call failed: {e}")))?
    }

    /// A pooled connection for synchronous use; back in the pool when dropped.
    pub fn conn(&self) -> Result<Conn> {
        let idle = self.inner.idle.lock().ok().and_then(|mut v| v.pop());
        let store = match idle {
            Some(s) => s,
            None => (self.inner.open)()?,
        };
        Ok(Conn {
            store: Some(store),
            inner: self.inner.clone(),
        })
    }
}

fn writer_gone() -> StoreError {
    StoreError::Other(
        "the database write did not finish (it panicked, or the writer stopped): see the log"
            .into(),
    )
}

/// A connection checked out of the [`Db`] pool.
pub struct Conn {
    store: Option<Box<dyn Store>>,
    inner: Arc<Inner>,
}

impl std::ops::Deref for Conn {
    type Target = dyn Store;
    fn deref(&self) -> &(dyn Store + 'static) {
        // Set at creation, taken only in `drop`.
        self.store.as_deref().expect("a checked-out connection")
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut (dyn Store + 'static) {
        self.store.as_deref_mut().expect("a checked-out connection")
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let (Some(s), Ok(mut idle)) = (self.store.take(), self.inner.idle.lock())
            && idle.len() < IDLE_CONNECTIONS
        {
            idle.push(s);
        }
    }
}
