//! PostgreSQL backend: one table `(key bytea primary key, value bytea)` in a schema of its
//! own, shared by any number of Strongroom nodes.
//!
//! - Transactions with checks run `SERIALIZABLE`: a concurrent change to a checked key
//!   makes one of them fail, which is reported as [`StorageError::Conflict`] (callers
//!   re-read and retry), so compare-and-swap is exact across nodes. Plain writes retry
//!   serialization failures and deadlocks themselves.
//! - Every committed write sends `NOTIFY` with the keys it touched; each node `LISTEN`s
//!   and hands them to [`Storage::invalidations`], so caches stay coherent.
//! - Leases (`leases` table) pick the one node that runs background work.
//! - Connections are pooled; a broken one is replaced on next use, so a node recovers by
//!   itself when the database comes back. While it is away requests fail fast with
//!   [`StorageError::Unavailable`] (statement and connect timeouts bound the wait).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::{broadcast, Mutex};
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, IsolationLevel, NoTls};

use crate::{prefix_end, Op, Result, Storage, StorageError};

/// Settings for [`PostgresStorage`].
#[derive(Clone)]
pub struct PostgresOptions {
    /// libpq-style URL, e.g. `postgres://user@127.0.0.1:5432/db`. Never logged.
    pub url: String,
    /// Schema holding Strongroom's tables (created if missing).
    pub schema: String,
    pub pool: usize,
    pub statement_timeout: Duration,
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresOptions")
            .field("schema", &self.schema)
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl PostgresOptions {
    pub fn new(url: impl Into<String>, schema: impl Into<String>) -> Self {
        PostgresOptions {
            url: url.into(),
            schema: schema.into(),
            pool: 8,
            statement_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

pub struct PostgresStorage {
    opts: PostgresOptions,
    clients: Vec<Mutex<Option<Client>>>,
    next: AtomicUsize,
    channel: String,
    events: broadcast::Sender<String>,
}

fn valid_schema(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Describe a database error without its connection details.
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.code().code(), db.message()),
        None => e.to_string(),
    }
}

fn classify(e: tokio_postgres::Error) -> StorageError {
    match e.code() {
        Some(c)
            if *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::UNIQUE_VIOLATION =>
        {
            StorageError::Conflict("concurrent transaction".into())
        }
        Some(c) if *c == SqlState::QUERY_CANCELED => {
            StorageError::Unavailable("database statement timed out".into())
        }
        Some(_) => StorageError::Backend(describe(&e)),
        None => StorageError::Unavailable(format!("database connection: {}", describe(&e))),
    }
}

impl PostgresStorage {
    /// Connect, apply migrations, and start listening for other nodes' writes.
    pub async fn open(opts: PostgresOptions) -> Result<Arc<PostgresStorage>> {
        if !valid_schema(&opts.schema) {
            return Err(StorageError::Backend(format!(
                "invalid schema name {:?}: use lower-case letters, digits and _",
                opts.schema
            )));
        }
        let (events, _) = broadcast::channel(4096);
        let s = Arc::new(PostgresStorage {
            channel: format!("strongroom_{}", opts.schema),
            clients: (0..opts.pool.max(1)).map(|_| Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            events,
            opts,
        });
        s.migrate().await?;
        let listener = Arc::downgrade(&s);
        tokio::spawn(async move { listen_loop(listener).await });
        Ok(s)
    }

    async fn connect(&self) -> Result<Client> {
        let fut = tokio_postgres::connect(&self.opts.url, NoTls);
        let (client, conn) = tokio::time::timeout(self.opts.connect_timeout, fut)
            .await
            .map_err(|_| StorageError::Unavailable("connecting to the database timed out".into()))?
            .map_err(|e| {
                StorageError::Unavailable(format!("connecting to the database: {}", describe(&e)))
            })?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        client
            .batch_execute(&format!(
                "SET statement_timeout = {}; SET search_path = {}",
                self.opts.statement_timeout.as_millis(),
                self.opts.schema
            ))
            .await
            .map_err(classify)?;
        Ok(client)
    }

    async fn migrate(&self) -> Result<()> {
        let c = self.connect().await?;
        let s = &self.opts.schema;
        // Nodes starting at once must not race on CREATE: the set-up is one transaction
        // holding a transaction-level advisory lock, released only by its commit. (A session
        // lock released inside the same transaction let the next node in before the commit:
        // its `IF NOT EXISTS` did not see the uncommitted schema and failed on the catalog's
        // unique index, and the node exited.)
        c.batch_execute(&format!(
            "BEGIN;
             SELECT pg_advisory_xact_lock(hashtext('strongroom-migrate:{s}'));
             CREATE SCHEMA IF NOT EXISTS {s};
             CREATE TABLE IF NOT EXISTS {s}.kv (key bytea PRIMARY KEY, value bytea NOT NULL);
             CREATE TABLE IF NOT EXISTS {s}.leases (name text PRIMARY KEY, holder text NOT NULL, expires_at timestamptz NOT NULL);
             CREATE TABLE IF NOT EXISTS {s}.schema_version (version integer NOT NULL);
             INSERT INTO {s}.schema_version (version) SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM {s}.schema_version);
             COMMIT;"
        ))
        .await
        .map_err(classify)?;
        Ok(())
    }

    /// A pooled connection, (re)connecting if it is missing or broken.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        let mut g = self.clients[i].lock().await;
        if g.as_ref().is_none_or(Client::is_closed) {
            *g = Some(self.connect().await?);
        }
        Ok(g)
    }

    /// Run a read with one retry on a fresh connection if the pooled one had died.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: for<'a> Fn(
            &'a Client,
        ) -> std::pin::Pin<
            Box<
                dyn std::future::Future<Output = std::result::Result<T, tokio_postgres::Error>>
                    + Send
                    + 'a,
            >,
        >,
    {
        for attempt in 0..2 {
            let mut g = self.client().await?;
            let c = g.as_ref().expect("connected");
            match f(c).await {
                Ok(v) => return Ok(v),
                Err(e) if e.code().is_none() && attempt == 0 => {
                    *g = None;
                }
                Err(e) => {
                    if e.code().is_none() {
                        *g = None;
                    }
                    return Err(classify(e));
                }
            }
        }
        Err(StorageError::Unavailable("database connection lost".into()))
    }
}

async fn listen_loop(weak: std::sync::Weak<PostgresStorage>) {
    let mut first = true;
    loop {
        let Some(s) = weak.upgrade() else { return };
        let conn = tokio::time::timeout(
            s.opts.connect_timeout,
            tokio_postgres::connect(&s.opts.url, NoTls),
        )
        .await;
        let (client, mut connection) = match conn {
            Ok(Ok(x)) => x,
            _ => {
                drop(s);
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        let channel = s.channel.clone();
        let events = s.events.clone();
        drop(s);
        let pump = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        let _ = events.send(n.payload().to_owned());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => return,
                }
            }
        });
        if client
            .batch_execute(&format!("LISTEN {channel}"))
            .await
            .is_err()
        {
            pump.abort();
            continue;
        }
        if !first {
            // Notifications sent while we were disconnected are lost: drop every cache.
            if let Some(s) = weak.upgrade() {
                let _ = s.events.send("*".into());
            }
        }
        first = false;
        let _ = pump.await;
        drop(client);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn notify_payloads(ops: &[Op]) -> Vec<String> {
    let mut out = Vec::new();
    for op in ops {
        match op {
            Op::Put(k, _) | Op::Delete(k) => out.push(format!("k:{k}")),
            Op::DeletePrefix(p) => out.push(format!("p:{p}")),
            Op::Check(..) => {}
        }
    }
    // NOTIFY payloads are limited to 8000 bytes; a huge transaction just says "everything".
    if out.iter().map(String::len).sum::<usize>() > 64 * 1024 {
        return vec!["*".into()];
    }
    out
}

#[async_trait]
impl Storage for PostgresStorage {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let k = key.as_bytes().to_vec();
        self.read(move |c| {
            let k = k.clone();
            Box::pin(async move {
                let row = c
                    .query_opt("SELECT value FROM kv WHERE key = $1", &[&k])
                    .await?;
                Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
            })
        })
        .await
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>> {
        crate::skip_scan(prefix, after, limit, |from, excl, end| async move {
            self.read(move |c| {
                let (from, end) = (from.clone(), end.clone());
                Box::pin(async move {
                    let op = if excl { ">" } else { ">=" };
                    let row = match &end {
                        Some(e) => c.query_opt(&format!("SELECT key FROM kv WHERE key {op} $1 AND key < $2 ORDER BY key LIMIT 1"), &[&from, e]).await?,
                        None => c.query_opt(&format!("SELECT key FROM kv WHERE key {op} $1 ORDER BY key LIMIT 1"), &[&from]).await?,
                    };
                    Ok(row.map(|r| r.get::<_, Vec<u8>>(0)))
                })
            })
            .await
        })
        .await
    }

    async fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let end = prefix_end(prefix.as_bytes());
        let (from, op) = match after {
            Some(a) => (a.as_bytes().to_vec(), ">"),
            None => (prefix.as_bytes().to_vec(), ">="),
        };
        let lim = limit.min(i64::MAX as usize) as i64;
        self.read(move |c| {
            let (from, end) = (from.clone(), end.clone());
            Box::pin(async move {
                let rows = match &end {
                    Some(e) => c.query(&format!("SELECT key, value FROM kv WHERE key {op} $1 AND key < $2 ORDER BY key LIMIT $3"), &[&from, e, &lim]).await?,
                    None => c.query(&format!("SELECT key, value FROM kv WHERE key {op} $1 ORDER BY key LIMIT $2"), &[&from, &lim]).await?,
                };
                Ok(rows.into_iter().map(|r| (String::from_utf8_lossy(&r.get::<_, Vec<u8>>(0)).into_owned(), r.get::<_, Vec<u8>>(1))).collect())
            })
        })
        .await
    }

    async fn transact(&self, ops: Vec<Op>) -> Result<()> {
        let checked = ops.iter().any(|o| matches!(o, Op::Check(..)));
        let notes = notify_payloads(&ops);
        let mut last = StorageError::Unavailable("database unavailable".into());
        for attempt in 0..5 {
            let mut g = self.client().await?;
            let c = g.as_mut().expect("connected");
            let r: std::result::Result<std::result::Result<(), StorageError>, tokio_postgres::Error> = async {
                let iso = if checked { IsolationLevel::Serializable } else { IsolationLevel::ReadCommitted };
                let tx = c.build_transaction().isolation_level(iso).start().await?;
                for op in &ops {
                    if let Op::Check(k, expect) = op {
                        let row = tx.query_opt("SELECT value FROM kv WHERE key = $1", &[&k.as_bytes()]).await?;
                        let cur: Option<Vec<u8>> = row.map(|r| r.get(0));
                        if cur.as_ref() != expect.as_ref() {
                            tx.rollback().await?;
                            return Ok(Err(StorageError::Conflict(k.clone())));
                        }
                    }
                }
                for op in &ops {
                    match op {
                        Op::Put(k, v) => {
                            tx.execute("INSERT INTO kv (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", &[&k.as_bytes(), v]).await?;
                        }
                        Op::Delete(k) => {
                            tx.execute("DELETE FROM kv WHERE key = $1", &[&k.as_bytes()]).await?;
                        }
                        Op::DeletePrefix(p) => match prefix_end(p.as_bytes()) {
                            Some(e) => {
                                tx.execute("DELETE FROM kv WHERE key >= $1 AND key < $2", &[&p.as_bytes(), &e]).await?;
                            }
                            None => {
                                tx.execute("DELETE FROM kv WHERE key >= $1", &[&p.as_bytes()]).await?;
                            }
                        },
                        Op::Check(..) => {}
                    }
                }
                for n in &notes {
                    tx.execute("SELECT pg_notify($1, $2)", &[&self.channel, n]).await?;
                }
                tx.commit().await?;
                Ok(Ok(()))
            }
            .await;
            match r {
                Ok(res) => return res,
                Err(e) => {
                    if e.code().is_none() {
                        *g = None; // broken connection: replace it next time
                    }
                    let err = classify(e);
                    match err {
                        // A checked transaction lost a race: the caller must re-read.
                        StorageError::Conflict(_) if checked => return Err(err),
                        StorageError::Conflict(_) => {
                            last = err;
                            tokio::time::sleep(Duration::from_millis(2 << attempt)).await;
                        }
                        other => return Err(other),
                    }
                }
            }
        }
        Err(last)
    }

    fn kind(&self) -> &'static str {
        "postgresql"
    }

    fn shared(&self) -> bool {
        true
    }

    fn invalidations(&self) -> Option<broadcast::Receiver<String>> {
        Some(self.events.subscribe())
    }

    async fn acquire_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let (name, holder, secs) = (name.to_owned(), holder.to_owned(), ttl.as_secs_f64());
        self.read(move |c| {
            let (name, holder) = (name.clone(), holder.clone());
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, now() + make_interval(secs => $3))
                         ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                         WHERE leases.holder = excluded.holder OR leases.expires_at < now()
                         RETURNING holder",
                        &[&name, &holder, &secs],
                    )
                    .await?;
                Ok(row.is_some())
            })
        })
        .await
    }

    async fn lease_holder(&self, name: &str) -> Result<Option<String>> {
        let name = name.to_owned();
        self.read(move |c| {
            let name = name.clone();
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "SELECT holder FROM leases WHERE name = $1 AND expires_at > now()",
                        &[&name],
                    )
                    .await?;
                Ok(row.map(|r| r.get::<_, String>(0)))
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The conformance suite on the local PostgreSQL, in a schema of its own.
    fn url() -> String {
        std::env::var("STRONGROOM_TEST_PG_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
    }

    async fn fresh(schema: &str) -> Arc<PostgresStorage> {
        let (c, conn) = tokio_postgres::connect(&url(), NoTls)
            .await
            .expect("PostgreSQL on 127.0.0.1:5432");
        tokio::spawn(conn);
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .unwrap();
        PostgresStorage::open(PostgresOptions::new(url(), schema))
            .await
            .unwrap()
    }

    async fn drop_schema(schema: &str) {
        let (c, conn) = tokio_postgres::connect(&url(), NoTls).await.unwrap();
        tokio::spawn(conn);
        c.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn conformance() {
        let schema = format!("sr_test_conf_{}", std::process::id());
        let s = fresh(&schema).await;
        crate::conformance::run(s.as_ref()).await;
        drop_schema(&schema).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_cas() {
        let schema = format!("sr_test_cas_{}", std::process::id());
        let s = fresh(&schema).await;
        crate::conformance::concurrent_cas(s).await;
        drop_schema(&schema).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn notifications_and_leases() {
        let schema = format!("sr_test_notify_{}", std::process::id());
        let a = fresh(&schema).await;
        let b = PostgresStorage::open(PostgresOptions::new(url(), schema.clone()))
            .await
            .unwrap();
        let mut rx = b.invalidations().unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await; // let LISTEN settle
        a.put("x/y", b"1".to_vec()).await.unwrap();
        let ev = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                let e = rx.recv().await.unwrap();
                if e == "k:x/y" {
                    return e;
                }
            }
        })
        .await
        .expect("notification from the other node");
        assert_eq!(ev, "k:x/y");
        assert!(a
            .acquire_lease("bg", "node-a", Duration::from_secs(30))
            .await
            .unwrap());
        assert!(
            !b.acquire_lease("bg", "node-b", Duration::from_secs(30))
                .await
                .unwrap(),
            "held by a"
        );
        assert!(
            a.acquire_lease("bg", "node-a", Duration::from_secs(30))
                .await
                .unwrap(),
            "renewal"
        );
        assert_eq!(
            b.lease_holder("bg").await.unwrap().as_deref(),
            Some("node-a")
        );
        assert!(a
            .acquire_lease("short", "node-a", Duration::from_millis(100))
            .await
            .unwrap());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            b.acquire_lease("short", "node-b", Duration::from_secs(30))
                .await
                .unwrap(),
            "expired lease moves"
        );
        drop_schema(&schema).await;
    }
}
