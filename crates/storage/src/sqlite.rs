//! SQLite backend: one table of (key BLOB, value BLOB), WAL mode, `synchronous=FULL`.
//!
//! The process holds the file exclusively (the `unix-excl` VFS, see `VFS`), so WAL
//! locking stays in its memory.
//! Reads run on a small pool of `query_only` connections and never wait for writers (WAL). A
//! point read follows the key's row hint when it has one (see `hints`): one B-tree instead
//! of two. A reader keeps its read transaction open from one read to the next until the
//! store's generation moves (every commit and every checkpoint moves it; see [`Readers`]),
//! so a read sees every commit acknowledged before it began, and reads between two
//! commits do not each begin and end a transaction.
//! All writes go to one writer thread that *group-commits*: it takes every transaction
//! queued while the previous commit was syncing, runs each one's checks before any of its
//! writes (so a failed check aborts only its own transaction, having written nothing) and
//! commits them with a single fsync. A write is acknowledged only after its commit is durable, so an acknowledged
//! write survives `kill -9` and power loss. Commit hooks ([`Storage::transact_then`]) run
//! on the writer thread after each commit, in the order of the transactions in it, before
//! any later commit.
//! Once the writer has had nothing to commit for [`SqliteOptions::idle_checkpoint`], it
//! copies the WAL into the main file (a passive checkpoint): while the WAL holds frames not
//! copied, every page a read fetches is first looked up in the WAL's index, and SQLite's
//! own automatic checkpoint waits for 8192 pages of writes.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::{ffi, params, Connection, OpenFlags, OptionalExtension};
use tokio::sync::oneshot;

use crate::hints::{Insert, RowHints};
use crate::{prefix_end, CommitHook, Op, Result, Storage, StorageError};

/// Tuning for [`SqliteStorage`].
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// At most this many transactions share one commit.
    pub max_batch: usize,
    /// After this long with nothing to commit, the writer checkpoints the WAL.
    pub idle_checkpoint: std::time::Duration,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions {
            max_batch: 256,
            idle_checkpoint: std::time::Duration::from_secs(1),
        }
    }
}

type Reply = oneshot::Sender<Result<()>>;

/// A transaction for the writer: its ops, where to answer, what to run once committed.
struct Txn(Vec<Op>, Reply, Option<CommitHook>);

enum WriterMsg {
    Txn(Txn),
    Close(oneshot::Sender<()>),
}

pub struct SqliteStorage {
    /// Distinguishes this store's connections in each thread's reader cache.
    id: u64,
    path: PathBuf,
    writer: Mutex<Option<mpsc::Sender<WriterMsg>>>,
    /// Every thread's reader of this store, and the generation their transactions follow.
    readers: std::sync::Arc<Readers>,
    /// Row ids of keys, so a point read can skip the key index (see `hints`).
    hints: std::sync::Arc<RowHints>,
    /// Reads answered through a hint (tests check the hinted statement finds rows).
    #[cfg(test)]
    hinted_reads: std::sync::atomic::AtomicU64,
    /// Read transactions begun (tests check reads between commits share one).
    #[cfg(test)]
    began: std::sync::atomic::AtomicU64,
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

thread_local! {
    /// One read-only connection per (thread, store): reads never wait on another thread's
    /// lock (the writer takes a reader's lock only to end a transaction it left open).
    static READERS: std::cell::RefCell<std::collections::HashMap<u64, Slot>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// A thread's reader of one store: its connection and, while a read transaction is open on
/// it, the store's generation when that transaction began.
struct Reader {
    /// The hinted point read, once prepared. Declared before `conn`, so it is finalized
    /// before the connection closes.
    by_id: Option<Prepared>,
    conn: Connection,
    began: Option<u64>,
}

/// A statement prepared once on its connection and kept, stepped through SQLite's C API:
/// the hinted point read of every reader, and the writer's upsert, delete and check.
/// rusqlite's statement cache would add, on every execution, the cache's lookup by SQL
/// text and its return of the statement on drop, the row wrappers and the dynamic
/// binding.
struct Prepared(std::ptr::NonNull<ffi::sqlite3_stmt>);

// SAFETY: a statement belongs to one connection, opened without SQLite's mutex (one thread
// at a time); like that connection it is only used by whoever holds the connection (the
// writer thread, or a reader's lock).
#[allow(unsafe_code)]
unsafe impl Send for Prepared {}

/// A parameter of a [`Prepared`] statement.
enum Param<'a> {
    Int(i64),
    Blob(&'a [u8]),
}

const POINT_READ_SQL: &str = "SELECT value FROM kv WHERE id = ?1 AND key = ?2";
const CHECK_SQL: &str = "SELECT value FROM kv WHERE key = ?1";
const UPSERT_SQL: &str = "INSERT INTO kv (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value";
const DELETE_SQL: &str = "DELETE FROM kv WHERE key = ?1";

#[allow(unsafe_code)] // SQLite's C API, each call with its SAFETY comment
impl Prepared {
    fn new(conn: &Connection, sql: &str) -> rusqlite::Result<Prepared> {
        let mut stmt = std::ptr::null_mut();
        // SAFETY: the handle is the live connection's; the SQL's length is passed, so it
        // needs no terminating NUL; `stmt` is written by SQLite.
        let rc = unsafe {
            ffi::sqlite3_prepare_v3(
                conn.handle(),
                sql.as_ptr().cast(),
                sql.len() as i32,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                std::ptr::null_mut(),
            )
        };
        if rc != ffi::SQLITE_OK {
            return Err(sqlite_failure(conn, rc));
        }
        std::ptr::NonNull::new(stmt)
            .map(Prepared)
            .ok_or_else(|| sqlite_failure(conn, ffi::SQLITE_MISUSE))
    }

    /// Run the statement with `params` to its first row or its end: the first row's first
    /// column (a BLOB), or `None` when it returns no row. The statement is reset and its
    /// parameters cleared before this returns, so between calls it holds no read and no
    /// pointer to a parameter. `conn` must be the connection it was prepared on.
    fn run(&mut self, conn: &Connection, params: &[Param]) -> rusqlite::Result<Option<Vec<u8>>> {
        let st = self.0.as_ptr();
        // SAFETY: `st` is a statement of `conn`, used by one thread at a time. Blobs are
        // bound SQLITE_STATIC: they outlive the step, and the bindings are cleared before
        // this returns. A column's pointer is read before the reset that frees it.
        unsafe {
            let mut rc = ffi::SQLITE_OK;
            for (i, p) in params.iter().enumerate() {
                let at = i as i32 + 1;
                rc = match p {
                    Param::Int(v) => ffi::sqlite3_bind_int64(st, at, *v),
                    // As rusqlite binds them: an empty blob as a zero-length blob (a
                    // null pointer would bind NULL), one over 2 GiB refused.
                    Param::Blob([]) => ffi::sqlite3_bind_zeroblob(st, at, 0),
                    Param::Blob(b) => match i32::try_from(b.len()) {
                        Ok(n) => ffi::sqlite3_bind_blob(
                            st,
                            at,
                            b.as_ptr().cast(),
                            n,
                            ffi::SQLITE_STATIC(),
                        ),
                        Err(_) => ffi::SQLITE_TOOBIG,
                    },
                };
                if rc != ffi::SQLITE_OK {
                    break;
                }
            }
            let out = if rc != ffi::SQLITE_OK {
                Err(sqlite_failure(conn, rc))
            } else {
                match ffi::sqlite3_step(st) {
                    ffi::SQLITE_ROW if ffi::sqlite3_column_type(st, 0) == ffi::SQLITE_BLOB => {
                        let p = ffi::sqlite3_column_blob(st, 0).cast::<u8>();
                        let n = ffi::sqlite3_column_bytes(st, 0) as usize;
                        Ok(Some(if n == 0 || p.is_null() {
                            Vec::new()
                        } else {
                            std::slice::from_raw_parts(p, n).to_vec()
                        }))
                    }
                    ffi::SQLITE_ROW => Err(rusqlite::Error::InvalidColumnType(
                        0,
                        "value".into(),
                        rusqlite::types::Type::Text,
                    )),
                    ffi::SQLITE_DONE => Ok(None),
                    rc => Err(sqlite_failure(conn, rc)),
                }
            };
            ffi::sqlite3_reset(st);
            ffi::sqlite3_clear_bindings(st);
            out
        }
    }
}

#[allow(unsafe_code)]
impl Drop for Prepared {
    fn drop(&mut self) {
        // SAFETY: finalized once, before its connection closes (a reader's is declared
        // before its connection; the writer drops its statements before its connection).
        unsafe {
            ffi::sqlite3_finalize(self.0.as_ptr());
        }
    }
}

/// The writer's statements, prepared on its connection.
struct WriteStmts {
    check: Prepared,
    upsert: Prepared,
    delete: Prepared,
}

impl WriteStmts {
    fn new(conn: &Connection) -> rusqlite::Result<WriteStmts> {
        Ok(WriteStmts {
            check: Prepared::new(conn, CHECK_SQL)?,
            upsert: Prepared::new(conn, UPSERT_SQL)?,
            delete: Prepared::new(conn, DELETE_SQL)?,
        })
    }
}

/// The error SQLite reported for `rc` on `conn`.
#[cold]
#[allow(unsafe_code)]
fn sqlite_failure(conn: &Connection, rc: i32) -> rusqlite::Error {
    // SAFETY: the handle is the live connection's; the message is copied at once.
    // The connection's message is this error's only if its code is `rc` (a bind refused
    // here, not by SQLite, has none).
    let msg = unsafe {
        let db = conn.handle();
        let m = if ffi::sqlite3_errcode(db) == rc {
            ffi::sqlite3_errmsg(db)
        } else {
            ffi::sqlite3_errstr(rc)
        };
        (!m.is_null()).then(|| std::ffi::CStr::from_ptr(m).to_string_lossy().into_owned())
    };
    rusqlite::Error::SqliteFailure(ffi::Error::new(rc), msg)
}

type Slot = std::sync::Arc<Mutex<Reader>>;

impl Reader {
    /// The value of row `id` if its key is `key`, through the kept hinted statement
    /// (prepared on first use).
    fn point_read(&mut self, id: i64, key: &[u8]) -> rusqlite::Result<Option<Vec<u8>>> {
        let point = match &mut self.by_id {
            Some(p) => p,
            slot @ None => slot.insert(Prepared::new(&self.conn, POINT_READ_SQL)?),
        };
        point.run(&self.conn, &[Param::Int(id), Param::Blob(key)])
    }

    /// End the open read transaction, if any.
    fn end(&mut self) {
        if self.began.take().is_some() {
            if let Err(e) = self
                .conn
                .prepare_cached("COMMIT")
                .and_then(|mut s| s.execute([]))
            {
                // Not expected of a read transaction; the connection's state is unknown,
                // so the next read begins from a rolled-back one.
                tracing::warn!("ending a read transaction failed: {e}");
                let _ = self.conn.execute_batch("ROLLBACK");
            }
        }
    }
}

/// The store's readers, as the writer thread sees them. A read transaction left open holds
/// its snapshot's frames in the WAL: a checkpoint cannot copy the frames committed after it,
/// nor the WAL restart from its beginning, so a thread that read once and then idled would
/// let the WAL grow without bound. The writer ends such transactions: the stale ones after
/// every commit, every idle one before a checkpoint and before the last one at close.
struct Readers {
    /// Moves after every commit and every completed checkpoint (reads begun after one skip
    /// the WAL): a read transaction begun at an earlier generation is ended by the next read
    /// on its thread rather than reused.
    generation: std::sync::atomic::AtomicU64,
    slots: Mutex<Vec<std::sync::Weak<Mutex<Reader>>>>,
}

impl Readers {
    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }
    /// After a commit or a checkpoint, before anyone is told of it.
    fn advance(&self) {
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
    fn register(&self, slot: &Slot) {
        let mut slots = self.slots.lock();
        slots.retain(|w| w.strong_count() > 0);
        slots.push(std::sync::Arc::downgrade(slot));
    }
    /// End the read transactions of readers not reading now: those begun before the
    /// current generation, or (`all`) every one. `wait`: also those reading now, once their
    /// read is done.
    fn release(&self, all: bool, wait: bool) {
        let now = self.generation();
        let slots: Vec<Slot> = self
            .slots
            .lock()
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .collect();
        for slot in slots {
            let reader = if wait {
                Some(slot.lock())
            } else {
                slot.try_lock()
            };
            if let Some(mut r) = reader {
                if r.began.is_some_and(|g| all || g != now) {
                    r.end();
                }
            }
        }
    }
}

fn backend(e: rusqlite::Error) -> StorageError {
    StorageError::Backend(e.to_string())
}

impl SqliteStorage {
    /// Open (creating if needed) the database file at `path`.
    pub fn open(path: impl AsRef<Path>, opts: SqliteOptions) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StorageError::Unavailable(format!("creating {}: {e}", dir.display()))
                })?;
            }
        }
        let opening = |e: rusqlite::Error| {
            if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) {
                StorageError::Unavailable(format!(
                    "{} is in use by another process (is a server running on it?)",
                    path.display()
                ))
            } else {
                StorageError::Unavailable(format!("opening {}: {e}", path.display()))
            }
        };
        let conn = Connection::open_with_flags_and_vfs(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            VFS,
        )
        .map_err(opening)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(opening)?;
        // The first statement reads the file, which takes the process's exclusive lock.
        // The writer's page cache stays small: at the end of every commit SQLite truncates
        // the cache, scanning its whole hash table, which with 32 MiB took 12 % of the
        // writer thread for no gain in hits.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             PRAGMA wal_autocheckpoint=8192;
             PRAGMA journal_size_limit=67108864;
             PRAGMA cache_size=-4096;",
        )
        .map_err(opening)?;
        migrate_schema(&conn)?;
        let stmts = WriteStmts::new(&conn).map_err(opening)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600));
        }
        let (tx, rx) = mpsc::channel();
        let max_batch = opts.max_batch.max(1);
        let readers = std::sync::Arc::new(Readers {
            generation: 0.into(),
            slots: Mutex::new(Vec::new()),
        });
        let writer_readers = readers.clone();
        thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                writer_loop(
                    conn,
                    stmts,
                    rx,
                    max_batch,
                    opts.idle_checkpoint,
                    &writer_readers,
                )
            })
            .map_err(|e| StorageError::Backend(e.to_string()))?;
        let store = SqliteStorage {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            path,
            writer: Mutex::new(Some(tx)),
            readers,
            hints: std::sync::Arc::new(RowHints::new()),
            #[cfg(test)]
            hinted_reads: Default::default(),
            #[cfg(test)]
            began: Default::default(),
        };
        store.rebuild_hints();
        Ok(store)
    }

    /// Read every key's row id into a new hint table, on a thread of its own, unless a
    /// rebuild is under way. Reads go on meanwhile, through the key index where no hint
    /// helps. About a second per million keys, once at open and again whenever the table
    /// fills up (with hints of keys since deleted, or with new keys).
    fn rebuild_hints(&self) {
        if !self.hints.start_rebuild() {
            return;
        }
        let (path, hints) = (self.path.clone(), self.hints.clone());
        let spawned = thread::Builder::new()
            .name("sqlite-hints".into())
            .spawn(move || {
                let t0 = std::time::Instant::now();
                match read_hints(&path, &hints) {
                    Ok(all) => {
                        let bytes = hints.install(&all);
                        tracing::info!(
                            keys = all.len(),
                            bytes,
                            ms = t0.elapsed().as_millis() as u64,
                            "row hints built"
                        );
                    }
                    Err(e) => {
                        tracing::warn!(
                            "reading row hints failed (reads stay correct, slower): {e}"
                        );
                        hints.abandon_rebuild();
                    }
                }
            });
        if spawned.is_err() {
            self.hints.abandon_rebuild();
        }
    }

    /// How many hint tables were built: 1 once the build at open is done (tests wait on it).
    #[cfg(test)]
    fn hint_builds(&self) -> u64 {
        self.hints.builds()
    }

    /// Queue a transaction for the writer and wait until it is durable (or failed).
    async fn send(&self, ops: Vec<Op>, hook: Option<CommitHook>) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        {
            let writer = self.writer.lock();
            let w = writer
                .as_ref()
                .ok_or_else(|| StorageError::Unavailable("storage is closed".into()))?;
            w.send(WriterMsg::Txn(Txn(ops, tx, hook)))
                .map_err(|_| StorageError::Unavailable("storage writer stopped".into()))?;
        }
        rx.await
            .map_err(|_| StorageError::Unavailable("storage writer stopped".into()))?
    }

    /// `f` on this thread's reader, in a read transaction begun at the current generation.
    fn with_reader<T>(&self, f: impl FnOnce(&mut Reader) -> rusqlite::Result<T>) -> Result<T> {
        READERS.with(|cell| {
            let mut map = cell.borrow_mut();
            let slot = match map.entry(self.id) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => {
                    let conn = open_reader(&self.path)
                        .map_err(|e| StorageError::Unavailable(e.to_string()))?;
                    let slot = std::sync::Arc::new(Mutex::new(Reader {
                        by_id: None,
                        conn,
                        began: None,
                    }));
                    self.readers.register(&slot);
                    e.insert(slot)
                }
            };
            let mut r = slot.lock();
            // Read before the transaction begins: a commit acknowledged before this read
            // moved it, so the snapshot taken below includes that commit.
            let now = self.readers.generation();
            if r.began.is_some_and(|g| g != now) {
                r.end();
            }
            if r.began.is_none() {
                r.conn
                    .prepare_cached("BEGIN")
                    .and_then(|mut s| s.execute([]))
                    .map_err(backend)?;
                r.began = Some(now);
                #[cfg(test)]
                self.began
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let out = f(&mut r);
            if out.is_err() {
                r.end();
            }
            out.map_err(backend)
        })
    }
}

/// SQLite's VFS for every connection. "unix-excl" takes an exclusive lock on the database
/// file when this process first reads it and holds it while any connection of the process
/// has the file open: connections of this process share the file as usual, while another
/// process (a second server, an `operator` command) is refused, where it would otherwise
/// write behind this one's caches. And it keeps the WAL index in this process's memory,
/// so a read transaction takes its WAL read lock without a system call; with the default
/// VFS that was up to two `fcntl`s per read.
const VFS: &str = "unix-excl";
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A connection for reads. It is opened read-write but `query_only`: under "unix-excl" a
/// read-only connection still passes its file locks to `fcntl`, and a read lock of this
/// process on the file would replace the exclusive one it holds.
fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let c = Connection::open_with_flags_and_vfs(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        VFS,
    )?;
    c.busy_timeout(BUSY_TIMEOUT)?;
    c.execute_batch("PRAGMA query_only=ON;")?;
    Ok(c)
}

const HINTS_SQL: &str = "SELECT id, key FROM kv";

/// Every key's hint ([`RowHints::word`]), read from the key index through a connection of
/// its own.
fn read_hints(path: &Path, hints: &RowHints) -> rusqlite::Result<Vec<u64>> {
    let c = open_reader(path)?;
    // The key index holds the row ids too, so SQLite reads the index alone (a test checks).
    let mut st = c.prepare(HINTS_SQL)?;
    let mut rows = st.query([])?;
    let mut all = Vec::new();
    while let Some(r) = rows.next()? {
        let key = r.get_ref(1)?.as_blob()?;
        all.extend(RowHints::word(hints.tag(key), r.get(0)?));
    }
    Ok(all)
}

fn writer_loop(
    mut conn: Connection,
    mut stmts: WriteStmts,
    rx: mpsc::Receiver<WriterMsg>,
    max_batch: usize,
    idle_checkpoint: std::time::Duration,
    readers: &Readers,
) {
    let mut close_reply = None;
    // Whether the WAL may hold frames not yet copied into the main file (at open: those of
    // a run that did not stop cleanly, or of the schema).
    let mut dirty = true;
    loop {
        let next = if dirty {
            rx.recv_timeout(idle_checkpoint)
        } else {
            rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
        };
        let first = match next {
            Ok(m) => m,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Tried again after the next idle period if a read held the old frames.
                readers.release(true, false);
                dirty = !checkpoint(&conn);
                if !dirty {
                    // Reads begun from now on skip the WAL.
                    readers.advance();
                }
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        dirty = true;
        let mut batch: Vec<Txn> = Vec::new();
        match first {
            WriterMsg::Txn(t) => batch.push(t),
            WriterMsg::Close(r) => {
                close_reply = Some(r);
                break;
            }
        }
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(WriterMsg::Txn(t)) => batch.push(t),
                Ok(WriterMsg::Close(r)) => {
                    close_reply = Some(r);
                    break;
                }
                Err(_) => break,
            }
        }
        commit_batch(&mut conn, &mut stmts, batch, readers);
        // The transactions the commit made stale are ended now, not when (or if) their
        // threads read again.
        readers.release(false, false);
        if close_reply.is_some() {
            break;
        }
    }
    // Fold the WAL back into the main file so a clean stop leaves one file.
    drop(stmts);
    readers.release(true, true);
    let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
    drop(conn);
    if let Some(r) = close_reply {
        let _ = r.send(());
    }
}

/// Copy the WAL's frames into the main file without waiting for readers (a passive
/// checkpoint); whether every frame was copied, after which new reads skip the WAL's index
/// until the next commit.
fn checkpoint(conn: &Connection) -> bool {
    let r = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
        ))
    });
    match r {
        Ok((busy, frames, copied)) => busy == 0 && frames == copied,
        Err(e) => {
            tracing::warn!("checkpointing the WAL failed (retried when idle): {e}");
            false
        }
    }
}

fn commit_batch(conn: &mut Connection, st: &mut WriteStmts, batch: Vec<Txn>, readers: &Readers) {
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            for Txn(_, reply, _) in batch {
                let _ = reply.send(Err(StorageError::Unavailable(e.to_string())));
            }
            return;
        }
    };
    let mut results = Vec::with_capacity(batch.len());
    let mut replies = Vec::with_capacity(batch.len());
    let mut hooks = Vec::with_capacity(batch.len());
    for Txn(ops, reply, hook) in batch {
        // Checks first: a transaction whose check fails writes nothing, so no savepoint
        // is needed to undo it.
        let r = check(&tx, st, &ops);
        if r.is_ok() {
            if let Err(e) = write(&tx, st, &ops) {
                // A failed insert or delete is the database's failure, not this
                // transaction's (full disk, I/O error): it may be half applied, so the
                // whole batch is rolled back and every caller told.
                drop(tx);
                let msg = format!("write failed: {e}");
                for reply in replies.into_iter().chain(std::iter::once(reply)) {
                    let _ = reply.send(Err(StorageError::Unavailable(msg.clone())));
                }
                return;
            }
        }
        if r.is_ok() {
            hooks.extend(hook);
        }
        results.push(r);
        replies.push(reply);
    }
    let committed = tx.commit();
    if committed.is_ok() {
        readers.advance();
        for hook in hooks {
            hook();
        }
    }
    for (reply, r) in replies.into_iter().zip(results) {
        let r = match &committed {
            Ok(()) => r,
            Err(e) => Err(StorageError::Unavailable(format!("commit failed: {e}"))),
        };
        let _ = reply.send(r);
    }
}

/// The table: keys in a unique index, values in a rowid table. (Until 0.1 it was one
/// `WITHOUT ROWID` table; there a value over ~1 KB spills to overflow pages *inside the
/// key's B-tree*, and every seek that compares against such a cell reads all its overflow
/// pages — mount tables, token entries and kv metadata with many versions made point
/// reads and writes several times dearer. Here a seek touches keys only.)
const SCHEMA: &str =
    "CREATE TABLE kv (id INTEGER PRIMARY KEY, key BLOB NOT NULL UNIQUE, value BLOB NOT NULL)";

/// Create the table, or convert the old `WITHOUT ROWID` one in a single transaction
/// (all or nothing: a crash midway leaves the old table as it was).
fn migrate_schema(conn: &Connection) -> Result<()> {
    let sql: Option<String> = conn
        .query_row(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'kv'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(backend)?;
    match sql {
        None => conn.execute_batch(SCHEMA).map_err(backend),
        Some(sql) if sql.to_ascii_uppercase().contains("WITHOUT ROWID") => {
            tracing::info!("converting the SQLite table to the rowid layout (one transaction)");
            conn.execute_batch(&format!(
                "BEGIN IMMEDIATE;
                 {};
                 INSERT INTO kv_new (key, value) SELECT key, value FROM kv ORDER BY key;
                 DROP TABLE kv;
                 ALTER TABLE kv_new RENAME TO kv;
                 COMMIT;",
                SCHEMA.replacen("TABLE kv", "TABLE kv_new", 1)
            ))
            .map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                StorageError::Unavailable(format!("converting the table: {e}"))
            })
        }
        Some(_) => Ok(()),
    }
}

fn check(conn: &Connection, st: &mut WriteStmts, ops: &[Op]) -> Result<()> {
    for op in ops {
        if let Op::Check(k, expect) = op {
            let cur = st
                .check
                .run(conn, &[Param::Blob(k.as_bytes())])
                .map_err(backend)?;
            if cur.as_ref() != expect.as_ref() {
                return Err(StorageError::Conflict(k.clone()));
            }
        }
    }
    Ok(())
}

fn write(conn: &Connection, st: &mut WriteStmts, ops: &[Op]) -> Result<()> {
    for op in ops {
        match op {
            Op::Put(k, v) => {
                st.upsert
                    .run(conn, &[Param::Blob(k.as_bytes()), Param::Blob(v)])
                    .map_err(backend)?;
            }
            Op::Delete(k) => {
                st.delete
                    .run(conn, &[Param::Blob(k.as_bytes())])
                    .map_err(backend)?;
            }
            Op::DeletePrefix(p) => {
                match prefix_end(p.as_bytes()) {
                    Some(end) => conn.execute(
                        "DELETE FROM kv WHERE key >= ?1 AND key < ?2",
                        params![p.as_bytes(), end],
                    ),
                    None => conn.execute("DELETE FROM kv WHERE key >= ?1", [p.as_bytes()]),
                }
                .map_err(backend)?;
            }
            Op::Check(..) => {}
        }
    }
    Ok(())
}

/// The first key `>= from` (or `> from` when `exclusive`) that is still below `end`.
fn next_key(
    conn: &Connection,
    from: &[u8],
    exclusive: bool,
    end: Option<&[u8]>,
) -> rusqlite::Result<Option<Vec<u8>>> {
    let op = if exclusive { ">" } else { ">=" };
    match end {
        Some(end) => conn
            .prepare_cached(&format!(
                "SELECT key FROM kv WHERE key {op} ?1 AND key < ?2 ORDER BY key LIMIT 1"
            ))?
            .query_row(params![from, end], |r| r.get(0))
            .optional(),
        None => conn
            .prepare_cached(&format!(
                "SELECT key FROM kv WHERE key {op} ?1 ORDER BY key LIMIT 1"
            ))?
            .query_row([from], |r| r.get(0))
            .optional(),
    }
}

#[async_trait]
impl Storage for SqliteStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = key.as_bytes();
        let tag = self.hints.tag(key);
        let (value, found) = self.with_reader(|r| {
            // A hinted read descends the table alone; the key is checked in the same
            // statement, so a stale hint reads nothing rather than another key's row.
            if let Some(id) = self.hints.find(tag) {
                let v = r.point_read(id, key)?;
                if v.is_some() {
                    #[cfg(test)]
                    self.hinted_reads
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    return Ok((v, None));
                }
            }
            let row: Option<(i64, Vec<u8>)> = r
                .conn
                .prepare_cached("SELECT id, value FROM kv WHERE key = ?1")?
                .query_row([key], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            Ok(match row {
                Some((id, v)) => (Some(v), Some(id)),
                None => (None, None),
            })
        })?;
        if let Some(id) = found {
            if self.hints.record(tag, id) == Insert::Full {
                self.rebuild_hints();
            }
        }
        Ok(value)
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>> {
        crate::skip_scan(prefix, after, limit, |from, exclusive, end| {
            let r = self.with_reader(|r| next_key(&r.conn, &from, exclusive, end.as_deref()));
            std::future::ready(r)
        })
        .await
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        self.with_reader(|r| {
            let c = &r.conn;
            let end = prefix_end(prefix.as_bytes());
            let (from, op) = match after {
                Some(a) => (a.as_bytes(), ">"),
                None => (prefix.as_bytes(), ">="),
            };
            let sql = match end {
                Some(_) => format!("SELECT key, value FROM kv WHERE key {op} ?1 AND key < ?2 ORDER BY key LIMIT ?3"),
                None => format!("SELECT key, value FROM kv WHERE key {op} ?1 AND ?2 IS NULL ORDER BY key LIMIT ?3"),
            };
            let mut stmt = c.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![from, end, limit as i64], |r| {
                let k: Vec<u8> = r.get(0)?;
                Ok((String::from_utf8_lossy(&k).into_owned(), r.get::<_, Vec<u8>>(1)?))
            })?;
            rows.collect()
        })
    }

    async fn transact(&self, ops: Vec<Op>) -> Result<()> {
        self.send(ops, None).await
    }

    async fn transact_then(&self, ops: Vec<Op>, on_commit: CommitHook) -> Result<()> {
        self.send(ops, Some(on_commit)).await
    }

    async fn close(&self) {
        let w = self.writer.lock().take();
        if let Some(w) = w {
            let (tx, rx) = oneshot::channel();
            if w.send(WriterMsg::Close(tx)).is_ok() {
                let _ = rx.await;
            }
        }
        READERS.with(|cell| cell.borrow_mut().remove(&self.id));
    }

    fn kind(&self) -> &'static str {
        "sqlite"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn tmp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("strongroom-sqlite-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("db.sqlite")
    }

    #[tokio::test]
    async fn conformance() {
        let p = tmp("conf");
        let s = SqliteStorage::open(&p, SqliteOptions::default()).unwrap();
        crate::conformance::run(&s).await;
        s.close().await;
        assert!(s.get("x").await.is_ok(), "reads after close reopen lazily");
        assert!(matches!(
            s.put("x", vec![]).await,
            Err(StorageError::Unavailable(_))
        ));
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }

    #[tokio::test]
    async fn an_idle_writer_copies_the_wal_into_the_main_file() {
        let p = tmp("idle");
        let opts = SqliteOptions {
            idle_checkpoint: std::time::Duration::from_millis(300),
            ..SqliteOptions::default()
        };
        let s = SqliteStorage::open(&p, opts).unwrap();
        let main_len = || std::fs::metadata(&p).unwrap().len();
        let grown = |to: u64| async move {
            for _ in 0..100 {
                if main_len() >= to {
                    return true;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            false
        };
        // The schema's pages first.
        assert!(grown(4096).await, "the schema was never checkpointed");
        let before = main_len();
        let ops = (0..64)
            .map(|i| Op::Put(format!("k{i}"), vec![7u8; 2048]))
            .collect();
        s.transact(ops).await.unwrap();
        assert!(
            main_len() < before + 64 * 2048,
            "a commit alone writes the WAL, not the main file"
        );
        assert!(grown(before + 64 * 2048).await, "never checkpointed");
        assert_eq!(s.get("k63").await.unwrap().unwrap(), vec![7u8; 2048]);
        s.close().await;
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }

    #[tokio::test]
    async fn reads_between_commits_share_one_transaction_and_see_every_commit() {
        let p = tmp("snapshot");
        let s = SqliteStorage::open(&p, SqliteOptions::default()).unwrap();
        let began = || s.began.load(std::sync::atomic::Ordering::Relaxed);
        s.put("k", b"1".to_vec()).await.unwrap();
        let before = began();
        for _ in 0..50 {
            assert_eq!(s.get("k").await.unwrap().unwrap(), b"1");
            assert_eq!(s.get("absent").await.unwrap(), None);
        }
        assert_eq!(s.list("", None, None).await.unwrap(), vec!["k".to_owned()]);
        assert_eq!(began(), before + 1, "one read transaction for 101 reads");
        // A commit moves the generation: the next read begins afresh and sees it.
        s.put("k", b"2".to_vec()).await.unwrap();
        assert_eq!(s.get("k").await.unwrap().unwrap(), b"2");
        assert_eq!(began(), before + 2);
        // So does a commit made on another thread while this one's transaction is open.
        let s = Arc::new(s);
        let other = s.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            rt.block_on(other.put("k", b"3".to_vec())).unwrap();
        })
        .join()
        .unwrap();
        assert_eq!(s.get("k").await.unwrap().unwrap(), b"3");
        s.close().await;
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }

    #[tokio::test]
    async fn a_read_transaction_left_open_by_an_idle_thread_does_not_hold_the_wal() {
        let p = tmp("idle-reader");
        let opts = SqliteOptions {
            idle_checkpoint: std::time::Duration::from_millis(200),
            ..SqliteOptions::default()
        };
        let s = Arc::new(SqliteStorage::open(&p, opts).unwrap());
        s.put("k", b"1".to_vec()).await.unwrap();
        // A thread reads once, leaving its read transaction open, and then idles.
        let (read_tx, read_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let reader = s.clone();
        let idler = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            assert!(rt.block_on(reader.get("k")).unwrap().is_some());
            read_tx.send(()).unwrap();
            let _ = stop_rx.recv();
        });
        read_rx.recv().unwrap();
        let main_len = || std::fs::metadata(&p).unwrap().len();
        let before = main_len();
        let ops = (0..64)
            .map(|i| Op::Put(format!("w{i}"), vec![7u8; 2048]))
            .collect();
        s.transact(ops).await.unwrap();
        // The frames committed after the idle reader's snapshot reach the main file.
        let mut copied = false;
        for _ in 0..100 {
            if main_len() >= before + 64 * 2048 {
                copied = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(copied, "the idle reader's transaction held the WAL");
        // And the next read on that thread would see the writes: this one does.
        assert_eq!(s.get("w63").await.unwrap().unwrap(), vec![7u8; 2048]);
        stop_tx.send(()).unwrap();
        idler.join().unwrap();
        s.close().await;
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_cas() {
        let p = tmp("cas");
        let s = Arc::new(SqliteStorage::open(&p, SqliteOptions::default()).unwrap());
        crate::conformance::concurrent_cas(s.clone()).await;
        s.close().await;
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }

    #[tokio::test]
    async fn converts_the_old_without_rowid_table() {
        let p = tmp("convert");
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        {
            let c = Connection::open(&p).unwrap();
            c.execute_batch(
                "PRAGMA journal_mode=WAL;
                 CREATE TABLE kv (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;",
            )
            .unwrap();
            for i in 0..500u32 {
                // Values large enough to spill to overflow pages, as the layout change is for.
                let v = vec![(i % 251) as u8; 1500 + i as usize];
                c.execute(
                    "INSERT INTO kv VALUES (?1, ?2)",
                    params![format!("k/{i:04}").as_bytes(), v],
                )
                .unwrap();
            }
        }
        let s = SqliteStorage::open(&p, SqliteOptions::default()).unwrap();
        for i in [0u32, 1, 250, 499] {
            let v = s.get(&format!("k/{i:04}")).await.unwrap().unwrap();
            assert_eq!(v, vec![(i % 251) as u8; 1500 + i as usize]);
        }
        assert_eq!(s.scan("k/", None, 1000).await.unwrap().len(), 500);
        s.put("k/0000", b"new".to_vec()).await.unwrap();
        s.close().await;
        let c = Connection::open(&p).unwrap();
        let sql: String = c
            .query_row("SELECT sql FROM sqlite_master WHERE name = 'kv'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert!(!sql.contains("WITHOUT ROWID"), "{sql}");
        // Opening again leaves the converted table alone.
        let s = SqliteStorage::open(&p, SqliteOptions::default()).unwrap();
        assert_eq!(s.get("k/0000").await.unwrap().as_deref(), Some(&b"new"[..]));
        assert_eq!(s.scan("k/", None, 1000).await.unwrap().len(), 500);
        s.close().await;
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }

    async fn hints_built(s: &SqliteStorage, n: u64) {
        for _ in 0..500 {
            if s.hint_builds() >= n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("row hints not built");
    }

    fn row_id(p: &Path, key: &str) -> i64 {
        Connection::open(p)
            .unwrap()
            .query_row("SELECT id FROM kv WHERE key = ?1", [key.as_bytes()], |r| {
                r.get(0)
            })
            .unwrap()
    }

    #[tokio::test]
    async fn point_reads_follow_row_hints_and_never_a_wrong_one() {
        let p = tmp("hints");
        let s = SqliteStorage::open(&p, SqliteOptions::default()).unwrap();
        for i in 0..300u32 {
            s.put(&format!("k/{i:04}"), format!("v{i}").into_bytes())
                .await
                .unwrap();
        }
        s.close().await;
        let s = SqliteStorage::open(&p, SqliteOptions::default()).unwrap();
        hints_built(&s, 1).await;
        let hint = |k: &str| s.hints.find(s.hints.tag(k.as_bytes()));
        let hinted = || s.hinted_reads.load(std::sync::atomic::Ordering::Relaxed);
        // the build at open read every key's row id, and reads follow them
        for i in [0u32, 17, 299] {
            let k = format!("k/{i:04}");
            assert_eq!(hint(&k), Some(row_id(&p, &k)));
            assert_eq!(s.get(&k).await.unwrap(), Some(format!("v{i}").into_bytes()));
        }
        assert_eq!(hinted(), 3);
        // A hint naming another key's row, or a row that is gone, reads the right value
        // (or none) and is replaced by the key's own row id.
        let (a, b) = ("k/0001", "k/0002");
        s.hints.record(s.hints.tag(a.as_bytes()), row_id(&p, b));
        assert_eq!(s.get(a).await.unwrap().as_deref(), Some(&b"v1"[..]));
        assert_eq!(hinted(), 3, "the wrong row was not used");
        assert_eq!(hint(a), Some(row_id(&p, a)));
        assert_eq!(s.get(a).await.unwrap().as_deref(), Some(&b"v1"[..]));
        assert_eq!(hinted(), 4, "the learned hint is used");
        s.hints.record(s.hints.tag(a.as_bytes()), 1_000_000);
        assert_eq!(s.get(a).await.unwrap().as_deref(), Some(&b"v1"[..]));
        // a key deleted and written again lives in a new row: its old hint is stale
        let old = row_id(&p, "k/0000");
        s.delete("k/0000").await.unwrap();
        assert_eq!(s.get("k/0000").await.unwrap(), None);
        s.put("k/0000", b"again".to_vec()).await.unwrap();
        assert_ne!(row_id(&p, "k/0000"), old);
        assert_eq!(hint("k/0000"), Some(old));
        assert_eq!(
            s.get("k/0000").await.unwrap().as_deref(),
            Some(&b"again"[..])
        );
        assert_eq!(hint("k/0000"), Some(row_id(&p, "k/0000")));
        // the highest row deleted, its id is taken by the next new key: the hint of the
        // deleted key now names a live row of another key
        let last = row_id(&p, "k/0000");
        s.delete("k/0000").await.unwrap();
        s.put("other", b"o".to_vec()).await.unwrap();
        assert_eq!(row_id(&p, "other"), last);
        assert_eq!(s.get("k/0000").await.unwrap(), None);
        assert_eq!(s.get("other").await.unwrap().as_deref(), Some(&b"o"[..]));
        // the two statements a read can use take the paths the hints are for
        let c = Connection::open(&p).unwrap();
        let plan = |sql: &str| -> String {
            let mut st = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
            let rows = st.query_map([], |r| r.get::<_, String>(3)).unwrap();
            rows.map(Result::unwrap).collect::<Vec<_>>().join("; ")
        };
        let hinted = plan("SELECT value FROM kv WHERE id = 1 AND key = x'00'");
        assert!(hinted.contains("INTEGER PRIMARY KEY"), "{hinted}");
        let build = plan(HINTS_SQL);
        assert!(build.contains("COVERING INDEX"), "{build}");
        s.close().await;
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }

    #[tokio::test]
    async fn kept_statements_read_and_check_empty_and_binary_values_exactly() {
        let p = tmp("kept-statements");
        let s = SqliteStorage::open(&p, SqliteOptions::default()).unwrap();
        let binary = vec![0u8, 255, 0, 1, b'\'', 0];
        s.put("empty", Vec::new()).await.unwrap();
        s.put("binary", binary.clone()).await.unwrap();
        s.close().await;
        let s = SqliteStorage::open(&p, SqliteOptions::default()).unwrap();
        hints_built(&s, 1).await;
        let hinted = || s.hinted_reads.load(std::sync::atomic::Ordering::Relaxed);
        // twice each: the second read reuses the statement the first prepared
        for _ in 0..2 {
            assert_eq!(s.get("empty").await.unwrap(), Some(Vec::new()));
            assert_eq!(s.get("binary").await.unwrap(), Some(binary.clone()));
        }
        assert_eq!(hinted(), 4, "every read took the kept hinted statement");
        // an empty value is a value, not an absent key, to a check too
        let absent = s
            .transact(vec![
                Op::Check("empty".into(), None),
                Op::put("x", b"1".to_vec()),
            ])
            .await;
        assert!(
            matches!(absent, Err(StorageError::Conflict(_))),
            "{absent:?}"
        );
        s.transact(vec![
            Op::Check("empty".into(), Some(Vec::new())),
            Op::Check("binary".into(), Some(binary.clone())),
            Op::Check("nothing".into(), None),
            Op::put("x", b"1".to_vec()),
            Op::Delete("binary".into()),
        ])
        .await
        .unwrap();
        assert_eq!(s.get("x").await.unwrap(), Some(b"1".to_vec()));
        assert_eq!(s.get("binary").await.unwrap(), None);
        s.close().await;
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }

    #[tokio::test]
    async fn a_full_hint_table_is_rebuilt_from_the_database() {
        let p = tmp("hints-full");
        let s = SqliteStorage::open(&p, SqliteOptions::default()).unwrap();
        hints_built(&s, 1).await;
        // the table built for an empty file has 4096 slots: reads of 5000 keys fill it
        let ops: Vec<Op> = (0..5000u32)
            .map(|i| Op::put(format!("k/{i:05}"), i.to_le_bytes()))
            .collect();
        s.transact(ops).await.unwrap();
        for i in 0..5000u32 {
            let v = s.get(&format!("k/{i:05}")).await.unwrap();
            assert_eq!(v.as_deref(), Some(&i.to_le_bytes()[..]));
        }
        hints_built(&s, 2).await;
        assert!(s.hints.bytes() > 8 * 4096, "rebuilt for 5000 keys");
        let hinted = (0..5000u32)
            .filter(|i| {
                let k = format!("k/{i:05}");
                s.hints.find(s.hints.tag(k.as_bytes())) == Some(row_id(&p, &k))
            })
            .count();
        assert!(hinted >= 4990, "{hinted}");
        s.close().await;
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }

    #[tokio::test]
    async fn reopen_keeps_data() {
        let p = tmp("reopen");
        let s = SqliteStorage::open(&p, SqliteOptions::default()).unwrap();
        s.put("k", b"v".to_vec()).await.unwrap();
        s.close().await;
        let s = SqliteStorage::open(&p, SqliteOptions::default()).unwrap();
        assert_eq!(s.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
        s.close().await;
        let _ = std::fs::remove_dir_all(p.parent().unwrap());
    }
}
