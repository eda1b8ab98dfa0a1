//! Projects, their API keys, their customers, and the instance-key check.

use crate::sql::Row;

use crate::Db;
use crate::query::{Arg, Filter, col};

/// A project: the unit of tenancy.
#[derive(Debug, Clone)]
pub struct Project {
    /// Project id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Creation time (ms).
    pub created_at: i64,
}

/// Creates a project.
pub async fn create(db: &Db, id: &str, name: &str, now: i64) -> crate::Result<Project> {
    crate::sql::query("INSERT INTO projects (id, name, created_at) VALUES ($1, $2, $3)")
        .bind(id)
        .bind(name)
        .bind(now)
        .execute(db.writer())
        .await?;
    Ok(Project {
        id: id.to_owned(),
        name: name.to_owned(),
        created_at: now,
    })
}

/// Number of projects on this instance.
pub async fn count(db: &Db) -> crate::Result<i64> {
    crate::sql::query_scalar("SELECT COUNT(*) FROM projects")
        .fetch_one(db.reader())
        .await
}

/// Every project, oldest first.
pub async fn list(db: &Db) -> crate::Result<Vec<Project>> {
    let rows =
        crate::sql::query("SELECT id, name, created_at FROM projects ORDER BY created_at, id")
            .fetch_all(db.reader())
            .await?;
    rows.iter()
        .map(|r| {
            Ok(Project {
                id: col(r, "id")?,
                name: col(r, "name")?,
                created_at: col(r, "created_at")?,
            })
        })
        .collect()
}

/// Finds a project by id.
pub async fn find(db: &Db, id: &str) -> crate::Result<Option<Project>> {
    let row = crate::sql::query("SELECT id, name, created_at FROM projects WHERE id = $1")
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    row.map(|r| {
        Ok(Project {
            id: col(&r, "id")?,
            name: col(&r, "name")?,
            created_at: col(&r, "created_at")?,
        })
    })
    .transpose()
}

/// An API key's metadata (the key itself is never stored).
#[derive(Debug, Clone)]
pub struct ApiKey {
    /// Key id.
    pub id: String,
    /// Owning project.
    pub project_id: String,
    /// Label.
    pub name: String,
    /// First characters of the key, to recognise it.
    pub prefix: String,
    /// Creation time (ms).
    pub created_at: i64,
    /// Revocation time (ms), if revoked.
    pub revoked_at: Option<i64>,
}

fn api_key(r: &Row) -> crate::Result<ApiKey> {
    Ok(ApiKey {
        id: col(r, "id")?,
        project_id: col(r, "project_id")?,
        name: col(r, "name")?,
        prefix: col(r, "prefix")?,
        created_at: col(r, "created_at")?,
        revoked_at: col(r, "revoked_at")?,
    })
}

/// Stores a new key by its hash.
pub async fn insert_key(db: &Db, key: &ApiKey, hash: &str) -> crate::Result<()> {
    crate::sql::query(
        "INSERT INTO api_keys (id, project_id, name, key_hash, prefix, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&key.id)
    .bind(&key.project_id)
    .bind(&key.name)
    .bind(hash)
    .bind(&key.prefix)
    .bind(key.created_at)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// The project of an unrevoked key with this hash.
pub async fn project_for_key(db: &Db, hash: &str) -> crate::Result<Option<String>> {
    crate::sql::query_scalar(
        "SELECT project_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
    )
    .bind(hash)
    .fetch_optional(db.reader())
    .await
}

/// Every key of a project, newest first.
pub async fn list_keys(db: &Db, project_id: &str) -> crate::Result<Vec<ApiKey>> {
    let rows = crate::sql::query(
        "SELECT id, project_id, name, prefix, created_at, revoked_at FROM api_keys WHERE project_id = $1 ORDER BY created_at DESC, id DESC",
    )
    .bind(project_id)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(api_key).collect()
}

/// Revokes a key of a project; false when no such active key exists.
pub async fn revoke_key(db: &Db, project_id: &str, key_id: &str, now: i64) -> crate::Result<bool> {
    let done = crate::sql::query(
        "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND project_id = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(key_id)
    .bind(project_id)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Records the instance key's check value on first use; afterwards tells whether `check`
/// matches the recorded one (a different instance key cannot decrypt stored secrets).
pub async fn check_instance_key(db: &Db, check: &str, now: i64) -> crate::Result<bool> {
    crate::sql::query("INSERT INTO instance (id, key_check, created_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING")
        .bind(check)
        .bind(now)
        .execute(db.writer())
        .await?;
    let stored: String = crate::sql::query_scalar("SELECT key_check FROM instance WHERE id = 1")
        .fetch_one(db.writer())
        .await?;
    Ok(stored == check)
}

/// A customer: one of the user's own tenants.
#[derive(Debug, Clone)]
pub struct Customer {
    /// Customer id.
    pub id: String,
    /// Owning project.
    pub project_id: String,
    /// Name.
    pub name: String,
    /// The user's own id for this customer.
    pub external_customer_id: Option<String>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Last update (ms).
    pub updated_at: i64,
}

const CUSTOMER_COLS: &str = "id, project_id, name, external_customer_id, created_at, updated_at";

fn customer(r: &Row) -> crate::Result<Customer> {
    Ok(Customer {
        id: col(r, "id")?,
        project_id: col(r, "project_id")?,
        name: col(r, "name")?,
        external_customer_id: col(r, "external_customer_id")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
    })
}

/// Whether a statement failed on a unique constraint.
pub fn is_unique_violation(err: &crate::StoreError) -> bool {
    err.is_unique_violation()
}

/// Inserts a customer.
pub async fn insert_customer(db: &Db, c: &Customer) -> crate::Result<()> {
    crate::sql::query(
        "INSERT INTO customers (id, project_id, name, external_customer_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&c.id)
    .bind(&c.project_id)
    .bind(&c.name)
    .bind(&c.external_customer_id)
    .bind(c.created_at)
    .bind(c.updated_at)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// Updates a customer's mutable fields.
pub async fn update_customer(db: &Db, c: &Customer) -> crate::Result<bool> {
    let done = crate::sql::query(
        "UPDATE customers SET name = $1, external_customer_id = $2, updated_at = $3 WHERE id = $4 AND project_id = $5",
    )
    .bind(&c.name)
    .bind(&c.external_customer_id)
    .bind(c.updated_at)
    .bind(&c.id)
    .bind(&c.project_id)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Finds a customer of a project.
pub async fn find_customer(db: &Db, project_id: &str, id: &str) -> crate::Result<Option<Customer>> {
    let sql = format!("SELECT {CUSTOMER_COLS} FROM customers WHERE id = $1 AND project_id = $2");
    let row = crate::sql::query(sql)
        .bind(id)
        .bind(project_id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(customer).transpose()
}

/// Lists customers, offset-paged; returns the page and the total count.
pub async fn list_customers(
    db: &Db,
    project_id: &str,
    name_contains: Option<&str>,
    external_id: Option<&str>,
    limit: i64,
    offset: i64,
) -> crate::Result<(Vec<Customer>, i64)> {
    let mut f = Filter::default();
    f.push(Arg::Text(project_id.to_owned()), |p| {
        format!("project_id = {p}")
    });
    if let Some(name) = name_contains {
        f.push(Arg::Text(format!("%{}%", name.to_lowercase())), |p| {
            format!("LOWER(name) LIKE {p}")
        });
    }
    if let Some(ext) = external_id {
        f.push(Arg::Text(ext.to_owned()), |p| {
            format!("external_customer_id = {p}")
        });
    }
    let total: i64 = {
        f.query(format!(
            "SELECT COUNT(*) AS n FROM customers{}",
            f.where_sql()
        ))
        .fetch_one(db.reader())
        .await?
        .get("n")?
    };
    let l = f.bind(Arg::Int(limit));
    let o = f.bind(Arg::Int(offset));
    let sql = format!(
        "SELECT {CUSTOMER_COLS} FROM customers{} ORDER BY created_at DESC, id DESC LIMIT {l} OFFSET {o}",
        f.where_sql()
    );
    let rows = f.query(sql).fetch_all(db.reader()).await?;
    Ok((
        rows.iter().map(customer).collect::<crate::Result<_>>()?,
        total,
    ))
}

/// Deletes a customer, detaching its phone numbers first; false when not found.
pub async fn delete_customer(db: &Db, project_id: &str, id: &str, now: i64) -> crate::Result<bool> {
    let mut tx = db.writer().begin().await?;
    crate::sql::query("UPDATE phone_numbers SET customer_id = NULL, updated_at = $1 WHERE customer_id = $2 AND project_id = $3")
        .bind(now)
        .bind(id)
        .bind(project_id)
        .execute(&mut *tx)
        .await?;
    let done = crate::sql::query("DELETE FROM customers WHERE id = $1 AND project_id = $2")
        .bind(id)
        .bind(project_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() == 1)
}
