//! The store's own small query layer: one way to write a statement (`$N` placeholders,
//! values bound in order) that runs on either of two engines.
//!
//! - **sqlx** for PostgreSQL.
//! - **Direct SQLite** (rusqlite) for every SQLite connection (the writer, the readers, the
//!   inbox file's writer): the statement runs on the calling thread while it holds the
//!   connection. Through sqlx each SQLite statement was a hand-off to the connection's own
//!   thread, about ten times the cost of the statement itself (`docs/benchmarks.md`), and
//!   the writer's work is long chains of small statements (group-commit batches, inbound
//!   processing). Holding a connection is holding a lock: a transaction keeps it until it
//!   ends, exactly as a one-connection pool did before.
//!
//! Store code sees only [`Pool`], [`Conn`], [`Tx`], [`query`] and [`Row`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::types::{ToSqlOutput, Value as LiteValue, ValueRef};
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyPool, AssertSqlSafe};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::StoreError;
use crate::webhooks::Subscriber;
use crate::write_stats::{Counting, WriteStats};

/// How long a caller waits for a direct SQLite connection before giving up (as sqlx's
/// pool did).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);
/// Prepared statements kept per direct SQLite connection.
const STATEMENT_CACHE: usize = 512;

/// The declared type of a bound NULL (PostgreSQL types its parameters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// BIGINT.
    Int,
    /// DOUBLE PRECISION.
    Real,
    /// BOOLEAN.
    Bool,
    /// TEXT.
    Text,
    /// BYTEA / BLOB.
    Blob,
}

/// One bound value.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// NULL of a type.
    Null(Kind),
    /// An integer.
    Int(i64),
    /// A float.
    Real(f64),
    /// A boolean (an integer 0/1 on SQLite).
    Bool(bool),
    /// Text.
    Text(String),
    /// Bytes.
    Blob(Vec<u8>),
}

/// A value that can be bound to a placeholder.
pub trait Bind {
    /// The bound value.
    fn arg(self) -> Arg;
}

/// A bindable type's SQL type, for its NULL.
pub trait Typed {
    /// The SQL type.
    const KIND: Kind;
}

macro_rules! bind_as {
    ($($t:ty => $kind:ident, $v:ident => $e:expr;)*) => {$(
        impl Bind for $t {
            fn arg(self) -> Arg {
                let $v = self;
                $e
            }
        }
        impl Typed for $t {
            const KIND: Kind = Kind::$kind;
        }
    )*};
}

bind_as! {
    i64 => Int, v => Arg::Int(v);
    i32 => Int, v => Arg::Int(i64::from(v));
    u32 => Int, v => Arg::Int(i64::from(v));
    f64 => Real, v => Arg::Real(v);
    bool => Bool, v => Arg::Bool(v);
    String => Text, v => Arg::Text(v);
    &str => Text, v => Arg::Text(v.to_owned());
    &String => Text, v => Arg::Text(v.clone());
    Vec<u8> => Blob, v => Arg::Blob(v);
    &[u8] => Blob, v => Arg::Blob(v.to_vec());
    &Vec<u8> => Blob, v => Arg::Blob(v.clone());
}

impl<T: Bind + Typed> Bind for Option<T> {
    fn arg(self) -> Arg {
        match self {
            Some(v) => v.arg(),
            None => Arg::Null(T::KIND),
        }
    }
}

impl<T: Bind + Typed + Clone> Bind for &Option<T> {
    fn arg(self) -> Arg {
        self.clone().arg()
    }
}

impl Bind for Arg {
    fn arg(self) -> Arg {
        self
    }
}

impl rusqlite::ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Arg::Null(_) => ValueRef::Null,
            Arg::Int(i) => ValueRef::Integer(*i),
            Arg::Real(f) => ValueRef::Real(*f),
            Arg::Bool(b) => ValueRef::Integer(i64::from(*b)),
            Arg::Text(s) => ValueRef::Text(s.as_bytes()),
            Arg::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// A statement and its bound values.
#[derive(Debug, Clone)]
#[must_use = "a query does nothing until it is executed"]
pub struct Query {
    sql: Cow<'static, str>,
    args: Vec<Arg>,
}

/// Starts a statement.
pub fn query(sql: impl Into<Cow<'static, str>>) -> Query {
    Query {
        sql: sql.into(),
        args: Vec::new(),
    }
}

/// Starts a statement whose first column of each row is the result.
pub fn query_scalar<T: Col>(sql: impl Into<Cow<'static, str>>) -> Scalar<T> {
    Scalar {
        query: query(sql),
        _t: std::marker::PhantomData,
    }
}

/// The outcome of a statement that returns no rows.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    rows_affected: u64,
}

impl Done {
    /// Rows inserted, updated or deleted.
    pub fn rows_affected(&self) -> u64 {
        self.rows_affected
    }
}

/// What the caller wants back.
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// The count of changed rows.
    Nothing,
    /// Every row.
    All,
    /// The first row.
    First,
}

/// What a statement gave back.
#[doc(hidden)]
#[derive(Debug)]
pub enum Output {
    /// Changed rows.
    Done(u64),
    /// Returned rows.
    Rows(Vec<Row>),
}

impl Query {
    /// Binds the next placeholder.
    pub fn bind(mut self, value: impl Bind) -> Self {
        self.args.push(value.arg());
        self
    }

    /// Runs the statement.
    pub async fn execute<E: Exec>(self, on: E) -> crate::Result<Done> {
        match on.run(self, Want::Nothing).await? {
            Output::Done(n) => Ok(Done { rows_affected: n }),
            Output::Rows(_) => Ok(Done { rows_affected: 0 }),
        }
    }

    /// Every row.
    pub async fn fetch_all<E: Exec>(self, on: E) -> crate::Result<Vec<Row>> {
        match on.run(self, Want::All).await? {
            Output::Rows(rows) => Ok(rows),
            Output::Done(_) => Ok(Vec::new()),
        }
    }

    /// The first row, if any.
    pub async fn fetch_optional<E: Exec>(self, on: E) -> crate::Result<Option<Row>> {
        match on.run(self, Want::First).await? {
            Output::Rows(rows) => Ok(rows.into_iter().next()),
            Output::Done(_) => Ok(None),
        }
    }

    /// The first row; an error when there is none.
    pub async fn fetch_one<E: Exec>(self, on: E) -> crate::Result<Row> {
        self.fetch_optional(on)
            .await?
            .ok_or(StoreError::Db(sqlx::Error::RowNotFound))
    }

    fn into_sqlx(self) -> sqlx::query::Query<'static, Any, AnyArguments> {
        let mut q = match self.sql {
            Cow::Borrowed(s) => sqlx::query(s),
            Cow::Owned(s) => sqlx::query(AssertSqlSafe(s)),
        };
        for arg in self.args {
            q = match arg {
                Arg::Null(Kind::Int) => q.bind(None::<i64>),
                Arg::Null(Kind::Real) => q.bind(None::<f64>),
                Arg::Null(Kind::Bool) => q.bind(None::<bool>),
                Arg::Null(Kind::Text) => q.bind(None::<String>),
                Arg::Null(Kind::Blob) => q.bind(None::<Vec<u8>>),
                Arg::Int(i) => q.bind(i),
                Arg::Real(f) => q.bind(f),
                Arg::Bool(b) => q.bind(b),
                Arg::Text(s) => q.bind(s),
                Arg::Blob(b) => q.bind(b),
            };
        }
        q
    }
}

/// A statement whose result is the first column.
#[derive(Debug, Clone)]
#[must_use = "a query does nothing until it is executed"]
pub struct Scalar<T> {
    query: Query,
    _t: std::marker::PhantomData<fn() -> T>,
}

impl<T: Col> Scalar<T> {
    /// Binds the next placeholder.
    pub fn bind(mut self, value: impl Bind) -> Self {
        self.query = self.query.bind(value);
        self
    }

    /// The first column of every row.
    pub async fn fetch_all<E: Exec>(self, on: E) -> crate::Result<Vec<T>> {
        self.query
            .fetch_all(on)
            .await?
            .iter()
            .map(|r| r.get_at(0))
            .collect()
    }

    /// The first column of the first row, if any.
    pub async fn fetch_optional<E: Exec>(self, on: E) -> crate::Result<Option<T>> {
        self.query
            .fetch_optional(on)
            .await?
            .map(|r| r.get_at(0))
            .transpose()
    }

    /// The first column of the first row; an error when there is none.
    pub async fn fetch_one<E: Exec>(self, on: E) -> crate::Result<T> {
        self.query.fetch_one(on).await?.get_at(0)
    }
}

/// A returned row.
pub struct Row(RowInner);

impl std::fmt::Debug for Row {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            RowInner::Sqlx(_) => f.write_str("Row(sqlx)"),
            RowInner::Lite { names, values } => f
                .debug_map()
                .entries(names.iter().zip(values.iter()))
                .finish(),
        }
    }
}

enum RowInner {
    Sqlx(AnyRow),
    Lite {
        names: Arc<[String]>,
        values: Vec<LiteValue>,
    },
}

impl Row {
    /// The column `name`, as `T`.
    pub fn get<T: Col>(&self, name: &str) -> crate::Result<T> {
        match &self.0 {
            RowInner::Sqlx(row) => T::from_sqlx(row, name),
            RowInner::Lite { names, values } => {
                let i = names
                    .iter()
                    .position(|n| n == name)
                    .ok_or_else(|| StoreError::Corrupt(format!("no column {name:?} in the row")))?;
                T::from_lite(&values[i]).map_err(|e| StoreError::Corrupt(format!("{name}: {e}")))
            }
        }
    }

    fn get_at<T: Col>(&self, i: usize) -> crate::Result<T> {
        match &self.0 {
            RowInner::Sqlx(row) => T::from_sqlx(row, i),
            RowInner::Lite { values, .. } => values
                .get(i)
                .ok_or_else(|| StoreError::Corrupt(format!("no column {i} in the row")))
                .and_then(|v| {
                    T::from_lite(v).map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
                }),
        }
    }
}

/// A type a column can be read as.
pub trait Col: Sized + Send + 'static {
    /// From a sqlx row.
    fn from_sqlx<I: sqlx::ColumnIndex<AnyRow> + std::fmt::Display>(
        row: &AnyRow,
        at: I,
    ) -> crate::Result<Self>;
    /// From a direct SQLite value.
    fn from_lite(v: &LiteValue) -> Result<Self, String>;
}

fn mismatch(want: &str, got: &LiteValue) -> String {
    format!("expected {want}, found {:?}", got.data_type())
}

macro_rules! col {
    ($($t:ty, $v:ident => $e:expr;)*) => {$(
        impl Col for $t {
            fn from_sqlx<I: sqlx::ColumnIndex<AnyRow> + std::fmt::Display>(
                row: &AnyRow,
                at: I,
            ) -> crate::Result<Self> {
                use sqlx::Row as _;
                Ok(row.try_get::<$t, I>(at)?)
            }
            fn from_lite($v: &LiteValue) -> Result<Self, String> {
                $e
            }
        }
        impl Col for Option<$t> {
            fn from_sqlx<I: sqlx::ColumnIndex<AnyRow> + std::fmt::Display>(
                row: &AnyRow,
                at: I,
            ) -> crate::Result<Self> {
                use sqlx::Row as _;
                Ok(row.try_get::<Option<$t>, I>(at)?)
            }
            fn from_lite(v: &LiteValue) -> Result<Self, String> {
                match v {
                    LiteValue::Null => Ok(None),
                    v => <$t as Col>::from_lite(v).map(Some),
                }
            }
        }
    )*};
}

col! {
    i64, v => match v {
        LiteValue::Integer(i) => Ok(*i),
        other => Err(mismatch("an integer", other)),
    };
    i32, v => match v {
        LiteValue::Integer(i) => i32::try_from(*i).map_err(|e| e.to_string()),
        other => Err(mismatch("an integer", other)),
    };
    bool, v => match v {
        LiteValue::Integer(i) => Ok(*i != 0),
        other => Err(mismatch("a boolean", other)),
    };
    f64, v => match v {
        LiteValue::Real(f) => Ok(*f),
        LiteValue::Integer(i) => Ok(*i as f64),
        other => Err(mismatch("a number", other)),
    };
    String, v => match v {
        LiteValue::Text(s) => Ok(s.clone()),
        other => Err(mismatch("text", other)),
    };
    Vec<u8>, v => match v {
        LiteValue::Blob(b) => Ok(b.clone()),
        LiteValue::Text(s) => Ok(s.clone().into_bytes()),
        other => Err(mismatch("bytes", other)),
    };
}

/// Something a statement runs on: a [`Pool`] (one statement, its own connection), a
/// [`Conn`] or a [`Tx`].
pub trait Exec: Send {
    /// Runs `query`.
    #[doc(hidden)]
    fn run(self, query: Query, want: Want) -> impl Future<Output = crate::Result<Output>> + Send;
}

impl Exec for &Pool {
    async fn run(self, query: Query, want: Want) -> crate::Result<Output> {
        match &self.0 {
            PoolInner::Sqlx(pool) => run_sqlx(pool, query, want).await,
            PoolInner::Lite(lite) => {
                let mut conn = lite.take().await?;
                conn.run(&query, want)
            }
        }
    }
}

impl Exec for &mut Conn {
    async fn run(self, query: Query, want: Want) -> crate::Result<Output> {
        self.flush_rollback().await?;
        match &mut self.inner {
            ConnInner::Sqlx(conn) => run_sqlx(&mut **conn, query, want).await,
            ConnInner::Lite(conn) => conn.run(&query, want),
            ConnInner::Gone => Err(gone()),
        }
    }
}

impl Exec for &mut Tx<'_> {
    async fn run(self, query: Query, want: Want) -> crate::Result<Output> {
        (&mut **self).run(query, want).await
    }
}

async fn run_sqlx<'e, E>(on: E, query: Query, want: Want) -> crate::Result<Output>
where
    E: sqlx::Executor<'e, Database = Any>,
{
    let q = query.into_sqlx();
    Ok(match want {
        Want::Nothing => Output::Done(q.execute(on).await?.rows_affected()),
        Want::All => Output::Rows(
            q.fetch_all(on)
                .await?
                .into_iter()
                .map(|r| Row(RowInner::Sqlx(r)))
                .collect(),
        ),
        Want::First => Output::Rows(
            q.fetch_optional(on)
                .await?
                .map(|r| Row(RowInner::Sqlx(r)))
                .into_iter()
                .collect(),
        ),
    })
}

/// What a direct SQLite connection is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The file's only writer: switches the file to WAL; every commit is synced.
    Writer,
    /// The only writer of the inbox file: commits are synced only when a caller asks
    /// (`PRAGMA synchronous = FULL` around a statement), so leases and processed marks,
    /// which a crash may lose without harm, cost no fsync.
    LazyWriter,
    /// Reads only (`query_only`), beside the writer.
    Reader,
}

/// A direct SQLite connection with its column-name cache.
pub(crate) struct LiteConn {
    conn: rusqlite::Connection,
    role: Role,
    names: HashMap<String, Arc<[String]>>,
    /// A writer whose commits are not synced right now (`synchronous = NORMAL`), for the
    /// relaxed transaction it holds; restored before anything else writes.
    relaxed: bool,
    /// Set by the checkpoint thread when this writer's WAL should start over
    /// (`crate::checkpoint`); the writer does it between two transactions.
    restart_wal: Option<Arc<AtomicBool>>,
    /// Where a writer counts its work (`crate::write_stats`).
    counting: Option<Counting>,
    /// The writer's copy of the webhooks table (`crate::webhooks::Subscriber`), if it
    /// keeps one.
    webhooks: Option<WebhooksWatch>,
    /// Where a writer announces committed webhook deliveries, and whether the open
    /// transaction has made some.
    deliveries: Option<(Arc<tokio::sync::Notify>, bool)>,
}

/// A writer's copy of the webhooks table and how it knows the copy is stale.
struct WebhooksWatch {
    /// Bumped by SQLite's hooks whenever a row of `webhooks` changes on this connection and
    /// whenever a transaction rolls back (a copy read inside it may hold undone changes).
    changes: Arc<AtomicU64>,
    /// The copy, with the value of `changes` it was read at.
    copy: Option<(u64, Arc<[Subscriber]>)>,
}

impl LiteConn {
    /// Opens `path` (created if missing): WAL, full sync, a busy timeout, foreign keys.
    pub(crate) fn open(path: &str, role: Role) -> rusqlite::Result<Self> {
        let conn = rusqlite::Connection::open(path)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.busy_timeout(Duration::from_secs(10))?;
        // Plans do not depend on bound values: without this SQLite prepares a statement
        // again whenever a new value is bound to a `LIMIT $n`, a LIKE pattern or a column
        // a partial index filters on, which is most of the claim and routing statements.
        conn.set_db_config(
            rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
            true,
        )?;
        if role != Role::Reader {
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(mode, "SQLite did not switch to WAL");
            }
        }
        conn.execute_batch(if role == Role::LazyWriter {
            "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;"
        } else {
            "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;"
        })?;
        if role != Role::Reader {
            // Copying the WAL back is the checkpoint thread's work (`crate::checkpoint`),
            // not a commit's. Statement and savepoint journals (every group-commit unit
            // runs in a savepoint) stay in memory: SQLite's default spills them to a temp
            // file, one `pwrite` per page a unit first touches.
            conn.execute_batch("PRAGMA wal_autocheckpoint = 0; PRAGMA temp_store = MEMORY;")?;
        }
        if role == Role::Reader {
            conn.execute_batch("PRAGMA query_only = ON;")?;
        }
        Ok(Self {
            conn,
            role,
            names: HashMap::new(),
            relaxed: false,
            restart_wal: None,
            counting: None,
            webhooks: None,
            deliveries: None,
        })
    }

    /// Announces on `notify` every commit that made webhook deliveries
    /// ([`Conn::note_deliveries`]).
    pub(crate) fn announce_deliveries(&mut self, notify: Arc<tokio::sync::Notify>) {
        self.deliveries = Some((notify, false));
    }

    /// Keeps a copy of the webhooks table for [`Conn::webhook_subscribers`], valid as long as
    /// every write to the table goes through this connection (an SQLite file's only writer).
    pub(crate) fn watch_webhooks(&mut self) {
        let changes = Arc::new(AtomicU64::new(0));
        let on_change = changes.clone();
        self.conn.update_hook(Some(
            move |_: rusqlite::hooks::Action, _: &str, table: &str, _: i64| {
                if table == "webhooks" {
                    on_change.fetch_add(1, Ordering::Relaxed);
                }
            },
        ));
        let on_rollback = changes.clone();
        self.conn.rollback_hook(Some(move || {
            on_rollback.fetch_add(1, Ordering::Relaxed);
        }));
        self.webhooks = Some(WebhooksWatch {
            changes,
            copy: None,
        });
    }

    /// After `sql` ran: a rollback to a savepoint (which SQLite's rollback hook does not
    /// report) makes the webhooks copy stale.
    fn after(&mut self, sql: &str) {
        if let Some(watch) = &self.webhooks
            && sql.starts_with("ROLLBACK")
        {
            watch.changes.fetch_add(1, Ordering::Relaxed);
        }
        // Out of the transaction that made deliveries: committed (or, rarely, rolled back,
        // which wakes the delivery loops for nothing).
        if let Some((notify, made @ true)) = &mut self.deliveries
            && self.conn.is_autocommit()
        {
            *made = false;
            notify.notify_waiters();
        }
    }

    /// Counts this writer's statements, commits, changed rows and WAL frames into `stats`.
    pub(crate) fn count_into(&mut self, stats: Arc<WriteStats>) {
        self.counting = Some(Counting::start(&self.conn, stats));
    }

    /// Lets the checkpoint thread ask this writer to restart its WAL through `flag`.
    pub(crate) fn restart_wal_on(&mut self, flag: Arc<AtomicBool>) {
        self.restart_wal = Some(flag);
    }

    /// Between transactions: restarts the WAL if the checkpoint thread asked. The thread
    /// has copied nearly all of it back already; this copies the rest, waits for the
    /// readers of older snapshots (statements: milliseconds) and makes the next commit
    /// write from the WAL's start, which the thread cannot do itself without starving
    /// behind a writer that is almost never idle.
    fn restart_wal_if_asked(&mut self) {
        let asked = self
            .restart_wal
            .as_ref()
            .is_some_and(|flag| flag.swap(false, Ordering::AcqRel));
        if !asked || !self.conn.is_autocommit() {
            return;
        }
        let started = std::time::Instant::now();
        match crate::checkpoint::checkpoint(&self.conn, "RESTART") {
            Ok((busy, frames, copied)) => tracing::debug!(
                target: "chasqui_store::checkpoint",
                busy,
                frames,
                copied,
                micros = started.elapsed().as_micros() as u64,
                "WAL restarted"
            ),
            Err(e) => {
                tracing::warn!(target: "chasqui_store::checkpoint", error = %e, "WAL restart failed")
            }
        }
    }

    /// Whether the next transaction's commit is synced (`Writer` only: the inbox's writer
    /// chooses per statement, readers never commit).
    fn relax(&mut self, relaxed: bool) -> crate::Result<()> {
        if self.role != Role::Writer || self.relaxed == relaxed {
            return Ok(());
        }
        self.conn.execute_batch(if relaxed {
            "PRAGMA synchronous = NORMAL"
        } else {
            "PRAGMA synchronous = FULL"
        })?;
        self.relaxed = relaxed;
        Ok(())
    }

    fn run(&mut self, query: &Query, want: Want) -> crate::Result<Output> {
        if self.conn.is_autocommit() {
            self.restart_wal_if_asked();
            if self.relaxed {
                // A statement of its own after a relaxed transaction is synced again.
                self.relax(false)?;
            }
        }
        let started = tracing::enabled!(target: "chasqui_store::sql", tracing::Level::DEBUG)
            .then(std::time::Instant::now);
        let result = self.run_statement(query, want);
        self.counted();
        self.after(&query.sql);
        if let Some(started) = started {
            tracing::debug!(
                target: "chasqui_store::sql",
                micros = started.elapsed().as_micros() as u64,
                ok = result.is_ok(),
                conn = ?self.role,
                "{}",
                query.sql
            );
        }
        result
    }

    /// Counts the statement just run, if this connection counts its work.
    fn counted(&mut self) {
        if let Some(counting) = &mut self.counting {
            counting.ran(&self.conn, 1);
        }
    }

    fn run_statement(&mut self, query: &Query, want: Want) -> crate::Result<Output> {
        let sql: &str = &query.sql;
        if crate::plans::wanted(sql) {
            let plan = self.plan(query)?;
            crate::plans::store(sql, plan);
        }
        let mut stmt = self.conn.prepare_cached(sql)?;
        bind_all(&mut stmt, query)?;
        let columns = stmt.column_count();
        if want == Want::Nothing || columns == 0 {
            let mut rows = stmt.raw_query();
            while rows.next()?.is_some() {}
            drop(rows);
            drop(stmt);
            return Ok(Output::Done(self.conn.changes()));
        }
        let names = match self.names.get(sql) {
            Some(names) => names.clone(),
            None => {
                let names: Arc<[String]> =
                    stmt.column_names().into_iter().map(str::to_owned).collect();
                if self.names.len() >= STATEMENT_CACHE {
                    self.names.clear();
                }
                self.names.insert(sql.to_owned(), names.clone());
                names
            }
        };
        let mut out = Vec::new();
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns);
            for c in 0..columns {
                values.push(LiteValue::from(row.get_ref(c)?));
            }
            out.push(Row(RowInner::Lite {
                names: names.clone(),
                values,
            }));
            if want == Want::First {
                break;
            }
        }
        Ok(Output::Rows(out))
    }

    /// SQLite's plan for `query` (`EXPLAIN QUERY PLAN`, one line per step).
    fn plan(&mut self, query: &Query) -> crate::Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", query.sql))?;
        bind_all(&mut stmt, query)?;
        let mut lines = Vec::new();
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next()? {
            lines.push(row.get::<_, String>(3)?);
        }
        Ok(lines)
    }

    fn batch(&mut self, sql: &str) -> crate::Result<()> {
        let started = std::time::Instant::now();
        let result = self.conn.execute_batch(sql);
        self.counted();
        self.after(sql);
        tracing::debug!(
            target: "chasqui_store::sql",
            micros = started.elapsed().as_micros() as u64,
            ok = result.is_ok(),
            conn = ?self.role,
            "{sql}"
        );
        Ok(result?)
    }
}

/// Binds `query`'s values to `stmt`'s `$N` placeholders.
fn bind_all(stmt: &mut rusqlite::Statement<'_>, query: &Query) -> crate::Result<()> {
    let sql: &str = &query.sql;
    for i in 1..=stmt.parameter_count() {
        // `$N` placeholders are named parameters to SQLite, numbered by first use.
        let n = stmt
            .parameter_name(i)
            .and_then(|name| name.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .ok_or_else(|| StoreError::Corrupt(format!("placeholder {i} is not $N in {sql}")))?;
        let arg = query
            .args
            .get(n - 1)
            .ok_or_else(|| StoreError::Corrupt(format!("${n} has no bound value in {sql}")))?;
        stmt.raw_bind_parameter(i, arg)?;
    }
    Ok(())
}

/// Direct SQLite connections to one file, each used by one holder at a time.
#[derive(Clone)]
pub(crate) struct SharedLite {
    conns: Arc<[Arc<Mutex<LiteConn>>]>,
    next: Arc<std::sync::atomic::AtomicUsize>,
}

impl SharedLite {
    pub(crate) fn new(conns: Vec<LiteConn>) -> Self {
        Self {
            conns: conns.into_iter().map(|c| Arc::new(Mutex::new(c))).collect(),
            next: Arc::default(),
        }
    }

    /// A free connection, else the next in turn once it is free.
    async fn take(&self) -> crate::Result<OwnedMutexGuard<LiteConn>> {
        for conn in self.conns.iter() {
            if let Ok(guard) = conn.clone().try_lock_owned() {
                return Ok(guard);
            }
        }
        let turn = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let conn = self.conns[turn % self.conns.len()].clone();
        tokio::time::timeout(ACQUIRE_TIMEOUT, conn.lock_owned())
            .await
            .map_err(|_| StoreError::Db(sqlx::Error::PoolTimedOut))
    }
}

/// A set of connections to one database.
#[derive(Clone)]
pub struct Pool(PoolInner);

#[derive(Clone)]
enum PoolInner {
    Sqlx(AnyPool),
    Lite(SharedLite),
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            PoolInner::Sqlx(p) => f.debug_tuple("Pool").field(p).finish(),
            PoolInner::Lite(l) => write!(f, "Pool(direct SQLite, {} connections)", l.conns.len()),
        }
    }
}

impl Pool {
    pub(crate) fn sqlx(pool: AnyPool) -> Self {
        Self(PoolInner::Sqlx(pool))
    }

    pub(crate) fn lite(conn: SharedLite) -> Self {
        Self(PoolInner::Lite(conn))
    }

    /// Takes a connection (on SQLite, waits while others hold every connection).
    pub async fn acquire(&self) -> crate::Result<Conn> {
        let inner = match &self.0 {
            PoolInner::Sqlx(pool) => ConnInner::Sqlx(pool.acquire().await?),
            PoolInner::Lite(lite) => ConnInner::Lite(lite.take().await?),
        };
        Ok(Conn {
            inner,
            depth: 0,
            rollback_to: None,
        })
    }

    /// Takes a connection and begins a transaction on it.
    pub async fn begin(&self) -> crate::Result<Tx<'static>> {
        let mut conn = self.acquire().await?;
        conn.start(false).await?;
        Ok(Tx {
            conn: Some(Held::Owned(conn)),
        })
    }

    /// Begins a transaction whose commit need not survive a power cut: it is atomic and
    /// ordered before every later commit, but not synced to disk before it returns (SQLite
    /// `synchronous = NORMAL` for this transaction, PostgreSQL `synchronous_commit = off`).
    /// Only for writes whose loss repeats work that is safe to repeat (a lease, a delivery
    /// outcome that makes a webhook be delivered again); never for what was acknowledged.
    pub async fn begin_relaxed(&self) -> crate::Result<Tx<'static>> {
        let mut conn = self.acquire().await?;
        conn.start(true).await?;
        Ok(Tx {
            conn: Some(Held::Owned(conn)),
        })
    }

    /// Closes the pool's connections (sqlx) once they are returned.
    pub async fn close(&self) {
        if let PoolInner::Sqlx(pool) = &self.0 {
            pool.close().await;
        }
    }
}

/// One connection, held until dropped.
pub struct Conn {
    inner: ConnInner,
    /// Open transactions and savepoints.
    depth: usize,
    /// sqlx: a transaction dropped unfinished, to roll back before the next statement.
    rollback_to: Option<usize>,
}

enum ConnInner {
    Sqlx(PoolConnection<Any>),
    Lite(OwnedMutexGuard<LiteConn>),
    /// Taken by `drop`.
    Gone,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("depth", &self.depth).finish()
    }
}

fn gone() -> StoreError {
    StoreError::Corrupt("a connection was used after it was released".into())
}

/// The statement that ends level `depth` (1 = the transaction itself).
fn end_sql(depth: usize, commit: bool) -> Cow<'static, str> {
    match (depth, commit) {
        (1, true) => "COMMIT".into(),
        (1, false) => "ROLLBACK".into(),
        (d, true) => format!("RELEASE SAVEPOINT sp{}", d.saturating_sub(1)).into(),
        (d, false) => format!(
            "ROLLBACK TO SAVEPOINT sp{0}; RELEASE SAVEPOINT sp{0}",
            d.saturating_sub(1)
        )
        .into(),
    }
}

impl Conn {
    /// The writer's copy of the webhooks table: `None` when this connection keeps none
    /// (PostgreSQL, where other nodes write too; SQLite readers), `Some(None)` when it must
    /// be read again ([`Conn::keep_webhook_subscribers`]).
    pub(crate) fn webhook_subscribers(&self) -> Option<Option<Arc<[Subscriber]>>> {
        let ConnInner::Lite(c) = &self.inner else {
            return None;
        };
        let watch = c.webhooks.as_ref()?;
        let now = watch.changes.load(Ordering::Relaxed);
        Some(match &watch.copy {
            Some((at, copy)) if *at == now => Some(copy.clone()),
            _ => None,
        })
    }

    /// The change count to read a new copy of the webhooks table at (before reading it).
    pub(crate) fn webhook_changes(&self) -> Option<u64> {
        match &self.inner {
            ConnInner::Lite(c) => c
                .webhooks
                .as_ref()
                .map(|w| w.changes.load(Ordering::Relaxed)),
            _ => None,
        }
    }

    /// Keeps `copy` of the webhooks table, read when the change count was `at`.
    pub(crate) fn keep_webhook_subscribers(&mut self, at: u64, copy: Arc<[Subscriber]>) {
        if let ConnInner::Lite(c) = &mut self.inner
            && let Some(watch) = &mut c.webhooks
        {
            watch.copy = Some((at, copy));
        }
    }

    /// Records that the open transaction made webhook deliveries: its commit wakes the
    /// delivery loops (SQLite's writer; elsewhere nothing).
    pub(crate) fn note_deliveries(&mut self) {
        if let ConnInner::Lite(c) = &mut self.inner {
            let committed = c.conn.is_autocommit();
            let Some((notify, made)) = &mut c.deliveries else {
                return;
            };
            if committed {
                // A statement of its own: already committed.
                notify.notify_waiters();
            } else {
                *made = true;
            }
        }
    }

    /// Drops the writer's copy of the webhooks table (after another connection changed it:
    /// migrations).
    pub(crate) fn forget_webhook_subscribers(&mut self) {
        if let ConnInner::Lite(c) = &mut self.inner
            && let Some(watch) = &mut c.webhooks
        {
            watch.copy = None;
        }
    }

    /// Whether this is a PostgreSQL connection.
    pub fn is_postgres(&self) -> bool {
        match &self.inner {
            ConnInner::Sqlx(c) => c.backend_name() == "PostgreSQL",
            _ => false,
        }
    }

    /// The sqlx connection under this one (PostgreSQL), for sqlx's own tools (migrations).
    pub(crate) fn sqlx_mut(&mut self) -> crate::Result<&mut sqlx::AnyConnection> {
        match &mut self.inner {
            ConnInner::Sqlx(c) => Ok(&mut **c),
            _ => Err(StoreError::Corrupt("not a sqlx connection".into())),
        }
    }

    /// Begins a transaction (a savepoint inside one).
    pub async fn begin(&mut self) -> crate::Result<Tx<'_>> {
        self.start(false).await?;
        Ok(Tx {
            conn: Some(Held::Borrowed(self)),
        })
    }

    async fn start(&mut self, relaxed: bool) -> crate::Result<()> {
        self.flush_rollback().await?;
        if let (0, ConnInner::Lite(c)) = (self.depth, &mut self.inner) {
            c.restart_wal_if_asked();
            c.relax(relaxed)?;
        }
        let sql: Cow<'static, str> = match (self.depth, &self.inner) {
            // A file's only writer takes the write lock at once: it never waits on a reader,
            // and no read inside the transaction can find the lock taken later.
            (0, ConnInner::Lite(c)) if c.role != Role::Reader => "BEGIN IMMEDIATE".into(),
            (0, _) => "BEGIN".into(),
            (d, _) => format!("SAVEPOINT sp{d}").into(),
        };
        // Counted before the statement runs: if the caller is cancelled mid-way, the
        // connection's drop rolls the level back rather than returning it half-open.
        self.depth += 1;
        if let Err(e) = self.raw(&sql).await {
            self.depth -= 1;
            return Err(e);
        }
        if relaxed && self.depth == 1 && matches!(self.inner, ConnInner::Sqlx(_)) {
            // PostgreSQL's own form: this transaction's commit does not wait for its WAL.
            self.raw("SET LOCAL synchronous_commit = off").await?;
        }
        Ok(())
    }

    /// Ends the innermost level.
    async fn end(&mut self, commit: bool) -> crate::Result<()> {
        let depth = self.depth;
        let sql = end_sql(depth, commit);
        let result = self.raw(&sql).await;
        // Only once the statement has run: cancelled before that, the level is still open
        // and the transaction's drop rolls it back.
        self.depth = depth - 1;
        if result.is_err() && commit && depth == 1 {
            // A failed COMMIT leaves nothing half-open for the next holder.
            let _ = self.raw("ROLLBACK").await;
        }
        result
    }

    async fn raw(&mut self, sql: &str) -> crate::Result<()> {
        match &mut self.inner {
            ConnInner::Sqlx(conn) => {
                sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
                    .execute(&mut **conn)
                    .await?;
                Ok(())
            }
            ConnInner::Lite(conn) => conn.batch(sql),
            ConnInner::Gone => Err(gone()),
        }
    }

    async fn flush_rollback(&mut self) -> crate::Result<()> {
        if let Some(depth) = self.rollback_to.take() {
            self.raw(&end_sql(depth, false)).await?;
        }
        Ok(())
    }

    /// A level dropped unfinished: roll it back now (SQLite) or before the next statement.
    fn abandon(&mut self) {
        let depth = self.depth;
        if depth == 0 {
            return;
        }
        self.depth -= 1;
        match &mut self.inner {
            ConnInner::Lite(conn) => {
                if let Err(e) = conn.batch(&end_sql(depth, false)) {
                    tracing::error!(error = %e, "rolling back an abandoned transaction failed");
                }
            }
            ConnInner::Sqlx(_) | ConnInner::Gone => {
                self.rollback_to = Some(self.rollback_to.map_or(depth, |d| d.min(depth)));
            }
        }
    }
}

enum Held<'c> {
    Owned(Conn),
    Borrowed(&'c mut Conn),
}

/// An open transaction (or savepoint); rolled back when dropped unfinished.
pub struct Tx<'c> {
    conn: Option<Held<'c>>,
}

impl std::fmt::Debug for Tx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tx")
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Conn;

    fn deref(&self) -> &Conn {
        match self.conn.as_ref() {
            Some(Held::Owned(c)) => c,
            Some(Held::Borrowed(c)) => c,
            None => unreachable!("a finished transaction is consumed"),
        }
    }
}

impl std::ops::DerefMut for Tx<'_> {
    fn deref_mut(&mut self) -> &mut Conn {
        match self.conn.as_mut() {
            Some(Held::Owned(c)) => c,
            Some(Held::Borrowed(c)) => c,
            None => unreachable!("a finished transaction is consumed"),
        }
    }
}

impl Tx<'_> {
    /// Commits (releases the savepoint).
    pub async fn commit(mut self) -> crate::Result<()> {
        self.finish(true).await
    }

    /// Rolls back (to the savepoint).
    pub async fn rollback(mut self) -> crate::Result<()> {
        self.finish(false).await
    }

    async fn finish(&mut self, commit: bool) -> crate::Result<()> {
        let result = (**self).end(commit).await;
        self.conn = None;
        result
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        match self.conn.take() {
            None => {}
            Some(Held::Borrowed(conn)) => conn.abandon(),
            // The connection's own drop finishes what is left.
            Some(Held::Owned(mut conn)) => conn.abandon(),
        }
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        while self.depth > 0 {
            self.abandon();
        }
        if self.rollback_to.is_none() {
            return;
        }
        // sqlx: roll back before the connection goes back to its pool.
        if let ConnInner::Sqlx(mut conn) = std::mem::replace(&mut self.inner, ConnInner::Gone) {
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(async move {
                        if let Err(e) = sqlx::raw_sql("ROLLBACK").execute(&mut *conn).await {
                            tracing::warn!(error = %e, "rolling back an abandoned transaction failed");
                            // Closed rather than returned mid-transaction.
                            drop(conn.detach());
                        }
                    });
                }
                Err(_) => drop(conn.detach()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Db;

    /// The same checks on a fresh SQLite file (direct connections) and, when configured, a
    /// fresh PostgreSQL database (sqlx).
    async fn databases() -> Vec<(tempfile::TempDir, Db)> {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite:{}", dir.path().join("s.db").display());
        let mut out = vec![(dir, Db::connect(&url).await.expect("sqlite"))];
        match crate::testing::postgres_admin_url() {
            Some(admin) => {
                let url = crate::testing::create_postgres_database(&admin, "chasqui_test_sql")
                    .await
                    .expect("database");
                let dir = tempfile::tempdir().expect("tempdir");
                out.push((dir, Db::connect(&url).await.expect("postgres")));
            }
            None => assert!(
                std::env::var("CHASQUI_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "CHASQUI_TEST_POSTGRES_URL is required"
            ),
        }
        for (_, db) in &out {
            db.migrate().await.expect("migrate");
        }
        out
    }

    async fn names(db: &Db) -> Vec<String> {
        query_scalar("SELECT name FROM projects ORDER BY id")
            .fetch_all(db.reader())
            .await
            .expect("names")
    }

    fn insert(id: &str, name: &str) -> Query {
        // Placeholders out of order: bound by number, not by position in the text.
        query("INSERT INTO projects (name, id, created_at) VALUES ($2, $1, $3)")
            .bind(id)
            .bind(name)
            .bind(7_i64)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn placeholders_types_and_nulls_round_trip() {
        for (_dir, db) in databases().await {
            insert("p1", "first")
                .execute(db.writer())
                .await
                .expect("insert");
            let row = query("SELECT id, name, created_at, CAST($1 AS TEXT) AS none, $2 = $2 AS same FROM projects WHERE id = $3")
                .bind(None::<String>)
                .bind(3_i64)
                .bind("p1")
                .fetch_one(db.reader())
                .await
                .expect("row");
            assert_eq!(row.get::<String>("name").expect("name"), "first");
            assert_eq!(row.get::<i64>("created_at").expect("created_at"), 7);
            assert_eq!(row.get::<Option<String>>("none").expect("none"), None);
            assert!(row.get::<bool>("same").expect("same"));
            assert!(row.get::<i64>("name").is_err(), "text is not an integer");
            assert!(row.get::<String>("missing").is_err());
            let none = query("SELECT id FROM projects WHERE id = $1")
                .bind("nope")
                .fetch_optional(db.reader())
                .await
                .expect("query");
            assert!(none.is_none());
            let done = query("UPDATE projects SET name = $1 WHERE id LIKE $2")
                .bind("renamed")
                .bind("p%")
                .execute(db.writer())
                .await
                .expect("update");
            assert_eq!(done.rows_affected(), 1);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn savepoints_commit_and_roll_back_by_level() {
        for (_dir, db) in databases().await {
            let mut tx = db.writer().begin().await.expect("begin");
            insert("a", "kept").execute(&mut *tx).await.expect("a");
            {
                let mut inner = tx.begin().await.expect("savepoint");
                insert("b", "undone").execute(&mut *inner).await.expect("b");
                inner.rollback().await.expect("rollback to savepoint");
            }
            {
                let mut inner = tx.begin().await.expect("savepoint");
                insert("c", "released")
                    .execute(&mut *inner)
                    .await
                    .expect("c");
                inner.commit().await.expect("release");
            }
            {
                // Dropped unfinished: rolled back, the outer transaction goes on.
                let mut inner = tx.begin().await.expect("savepoint");
                insert("d", "dropped")
                    .execute(&mut *inner)
                    .await
                    .expect("d");
            }
            insert("e", "after").execute(&mut *tx).await.expect("e");
            tx.commit().await.expect("commit");
            assert_eq!(names(&db).await, ["kept", "released", "after"]);
        }
    }

    /// The writer's durability setting as the database reports it: SQLite's `synchronous`
    /// (2 = FULL, 1 = NORMAL), PostgreSQL's `synchronous_commit`.
    fn durability(db: &Db) -> Query {
        query(match db.backend() {
            crate::db::Backend::Sqlite => {
                "SELECT CAST(synchronous AS TEXT) AS v FROM pragma_synchronous"
            }
            crate::db::Backend::Postgres => "SELECT current_setting('synchronous_commit') AS v",
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_relaxed_transaction_commits_and_only_it_skips_the_sync() {
        for (_dir, db) in databases().await {
            let (synced, relaxed) = match db.backend() {
                crate::db::Backend::Sqlite => ("2", "1"),
                crate::db::Backend::Postgres => ("on", "off"),
            };
            let read = |row: Row| row.get::<String>("v").expect("v");
            let mut tx = db.writer().begin_relaxed().await.expect("begin relaxed");
            insert("r", "relaxed").execute(&mut *tx).await.expect("r");
            let inside = durability(&db).fetch_one(&mut *tx).await.expect("inside");
            assert_eq!(read(inside), relaxed);
            tx.commit().await.expect("commit");
            assert_eq!(names(&db).await, ["relaxed"]);
            // A statement of its own right after is synced again ...
            insert("s", "single").execute(db.writer()).await.expect("s");
            let alone = durability(&db).fetch_one(db.writer()).await.expect("alone");
            assert_eq!(read(alone), synced);
            // ... and so is a plain transaction after another relaxed one.
            db.writer()
                .begin_relaxed()
                .await
                .expect("begin relaxed")
                .commit()
                .await
                .expect("commit");
            let mut tx = db.writer().begin().await.expect("begin");
            let plain = durability(&db).fetch_one(&mut *tx).await.expect("plain");
            assert_eq!(read(plain), synced);
            tx.commit().await.expect("commit");
        }
    }

    #[test]
    fn a_writer_asked_to_restart_its_wal_writes_from_its_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.db").to_string_lossy().into_owned();
        let mut writer = LiteConn::open(&path, Role::Writer).expect("writer");
        let flag = Arc::new(AtomicBool::new(false));
        writer.restart_wal_on(flag.clone());
        let write = |w: &mut LiteConn, sql: &str| {
            w.run(&query(sql.to_owned()), Want::Nothing).expect(sql);
        };
        write(&mut writer, "CREATE TABLE t (v TEXT)");
        let frames = || {
            // What a passive checkpoint from another connection sees: the WAL's frames.
            let other = rusqlite::Connection::open(&path).expect("open");
            crate::checkpoint::checkpoint(&other, "PASSIVE")
                .expect("checkpoint")
                .1
        };
        let file_size = || std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        for _ in 0..500 {
            write(
                &mut writer,
                "INSERT INTO t (v) VALUES (hex(randomblob(2000)))",
            );
        }
        // The writer never copies its WAL back on its own: the rows are only in the WAL.
        assert!(file_size() < 100_000, "{} bytes", file_size());
        flag.store(true, Ordering::Release);
        write(
            &mut writer,
            "INSERT INTO t (v) VALUES ('after the restart')",
        );
        assert!(!flag.load(Ordering::Acquire), "the writer took the request");
        assert!(
            file_size() > 2_000_000,
            "copied back: {} bytes",
            file_size()
        );
        let after = frames();
        assert!(
            after < 10,
            "the next commit wrote from the start: {after} frames"
        );
        // Nothing was lost on the way.
        let Output::Rows(rows) = writer
            .run(&query("SELECT COUNT(*) AS n FROM t"), Want::First)
            .expect("count")
        else {
            panic!("rows expected");
        };
        assert_eq!(rows[0].get::<i64>("n").expect("n"), 501);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_transaction_leaves_nothing_and_frees_the_writer() {
        for (_dir, db) in databases().await {
            {
                let mut tx = db.writer().begin().await.expect("begin");
                insert("x", "never").execute(&mut *tx).await.expect("x");
            }
            // The writer is free again at once, and the dropped work is gone.
            insert("y", "later").execute(db.writer()).await.expect("y");
            let failed = {
                let mut tx = db.writer().begin().await.expect("begin");
                insert("z", "half").execute(&mut *tx).await.expect("z");
                insert("y", "duplicate").execute(&mut *tx).await
            };
            let err = failed.expect_err("duplicate key");
            assert!(err.is_unique_violation(), "{err}");
            // Give sqlx's background rollback its turn before reading.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            assert_eq!(names(&db).await, ["later"]);
        }
    }
}
