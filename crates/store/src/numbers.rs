//! Phone numbers (Meta's `phone_number_id` is the public id) and their encrypted secrets.

use crate::Conn;
use crate::sql::Row;
use chasqui_core::NumberKind;

use crate::Db;
use crate::query::{Arg, Filter, col};

/// A stored phone number. Secret fields hold ciphertext from the instance key.
#[derive(Debug, Clone)]
pub struct PhoneNumber {
    /// Internal id.
    pub id: String,
    /// Owning project.
    pub project_id: String,
    /// Customer it belongs to, if any.
    pub customer_id: Option<String>,
    /// Meta's phone number id.
    pub phone_number_id: String,
    /// Meta's WhatsApp Business Account id.
    pub business_account_id: String,
    /// How it reaches WhatsApp.
    pub kind: NumberKind,
    /// Label.
    pub name: Option<String>,
    /// The number as displayed.
    pub display_phone_number: Option<String>,
    /// Encrypted Meta access token.
    pub access_token_enc: String,
    /// Encrypted Meta app secret.
    pub app_secret_enc: String,
    /// Keyed digest of the webhook verify token.
    pub verify_token_digest: Option<String>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Last update (ms).
    pub updated_at: i64,
}

const COLS: &str = "id, project_id, customer_id, phone_number_id, business_account_id, kind, name, display_phone_number, access_token_enc, app_secret_enc, verify_token_digest, created_at, updated_at";

fn number(r: &Row) -> crate::Result<PhoneNumber> {
    Ok(PhoneNumber {
        id: col(r, "id")?,
        project_id: col(r, "project_id")?,
        customer_id: col(r, "customer_id")?,
        phone_number_id: col(r, "phone_number_id")?,
        business_account_id: col(r, "business_account_id")?,
        kind: col::<String>(r, "kind")?
            .parse()
            .map_err(|e| crate::StoreError::Corrupt(format!("phone number kind: {e}")))?,
        name: col(r, "name")?,
        display_phone_number: col(r, "display_phone_number")?,
        access_token_enc: col(r, "access_token_enc")?,
        app_secret_enc: col(r, "app_secret_enc")?,
        verify_token_digest: col(r, "verify_token_digest")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
    })
}

/// Inserts a number (fails with a unique violation when the phone_number_id exists).
pub async fn insert(conn: &mut Conn, n: &PhoneNumber) -> crate::Result<()> {
    crate::sql::query(
        "INSERT INTO phone_numbers (id, project_id, customer_id, phone_number_id, business_account_id, kind, name, display_phone_number, access_token_enc, app_secret_enc, verify_token_digest, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(&n.id)
    .bind(&n.project_id)
    .bind(&n.customer_id)
    .bind(&n.phone_number_id)
    .bind(&n.business_account_id)
    .bind(n.kind.as_str())
    .bind(&n.name)
    .bind(&n.display_phone_number)
    .bind(&n.access_token_enc)
    .bind(&n.app_secret_enc)
    .bind(&n.verify_token_digest)
    .bind(n.created_at)
    .bind(n.updated_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Writes every mutable field of a number of the project.
pub async fn update(db: &Db, n: &PhoneNumber) -> crate::Result<bool> {
    let done = crate::sql::query(
        "UPDATE phone_numbers SET customer_id = $1, business_account_id = $2, name = $3, display_phone_number = $4, access_token_enc = $5, app_secret_enc = $6, verify_token_digest = $7, updated_at = $8 \
         WHERE phone_number_id = $9 AND project_id = $10",
    )
    .bind(&n.customer_id)
    .bind(&n.business_account_id)
    .bind(&n.name)
    .bind(&n.display_phone_number)
    .bind(&n.access_token_enc)
    .bind(&n.app_secret_enc)
    .bind(&n.verify_token_digest)
    .bind(n.updated_at)
    .bind(&n.phone_number_id)
    .bind(&n.project_id)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Deletes a number of the project. Its stored history stays (it is addressed by
/// phone_number_id and becomes unreachable through the API).
pub async fn delete(
    conn: &mut Conn,
    project_id: &str,
    phone_number_id: &str,
) -> crate::Result<bool> {
    let done = crate::sql::query(
        "DELETE FROM phone_numbers WHERE phone_number_id = $1 AND project_id = $2",
    )
    .bind(phone_number_id)
    .bind(project_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A number of the project by Meta id.
pub async fn find(
    db: &Db,
    project_id: &str,
    phone_number_id: &str,
) -> crate::Result<Option<PhoneNumber>> {
    let sql =
        format!("SELECT {COLS} FROM phone_numbers WHERE phone_number_id = $1 AND project_id = $2");
    let row = crate::sql::query(sql)
        .bind(phone_number_id)
        .bind(project_id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(number).transpose()
}

/// Any project's number by Meta id (inbound routing only).
pub async fn find_any(db: &Db, phone_number_id: &str) -> crate::Result<Option<PhoneNumber>> {
    let sql = format!("SELECT {COLS} FROM phone_numbers WHERE phone_number_id = $1");
    let row = crate::sql::query(sql)
        .bind(phone_number_id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(number).transpose()
}

/// Every number of a WhatsApp Business Account (inbound routing only).
pub async fn by_waba(db: &Db, business_account_id: &str) -> crate::Result<Vec<PhoneNumber>> {
    let sql = format!(
        "SELECT {COLS} FROM phone_numbers WHERE business_account_id = $1 ORDER BY created_at"
    );
    let rows = crate::sql::query(sql)
        .bind(business_account_id)
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(number).collect()
}

/// Whether any number has this verify-token digest.
pub async fn verify_token_exists(db: &Db, digest: &str) -> crate::Result<bool> {
    let n: i64 = crate::sql::query_scalar(
        "SELECT COUNT(*) FROM phone_numbers WHERE verify_token_digest = $1",
    )
    .bind(digest)
    .fetch_one(db.reader())
    .await?;
    Ok(n > 0)
}

/// Every number on the instance (for the routing cache).
pub async fn all(db: &Db) -> crate::Result<Vec<PhoneNumber>> {
    let sql = format!("SELECT {COLS} FROM phone_numbers ORDER BY created_at");
    let rows = crate::sql::query(sql).fetch_all(db.reader()).await?;
    rows.iter().map(number).collect()
}

/// One number of each WhatsApp Business Account of a project (the oldest), for calls made on
/// the account's behalf.
pub async fn one_per_waba(db: &Db, project_id: &str) -> crate::Result<Vec<PhoneNumber>> {
    let sql =
        format!("SELECT {COLS} FROM phone_numbers WHERE project_id = $1 ORDER BY created_at, id");
    let rows = crate::sql::query(sql)
        .bind(project_id)
        .fetch_all(db.reader())
        .await?;
    let mut found: Vec<PhoneNumber> = Vec::new();
    for n in rows.iter().map(number) {
        let n = n?;
        if !found
            .iter()
            .any(|f| f.business_account_id == n.business_account_id)
        {
            found.push(n);
        }
    }
    Ok(found)
}

/// Lists a project's numbers, offset-paged, with the total count.
pub async fn list(
    db: &Db,
    project_id: &str,
    customer_id: Option<&str>,
    limit: i64,
    offset: i64,
) -> crate::Result<(Vec<PhoneNumber>, i64)> {
    let mut f = Filter::default();
    f.push(Arg::Text(project_id.to_owned()), |p| {
        format!("project_id = {p}")
    });
    if let Some(c) = customer_id {
        f.push(Arg::Text(c.to_owned()), |p| format!("customer_id = {p}"));
    }
    let total: i64 = {
        f.query(format!(
            "SELECT COUNT(*) AS n FROM phone_numbers{}",
            f.where_sql()
        ))
        .fetch_one(db.reader())
        .await?
        .get("n")?
    };
    let l = f.bind(Arg::Int(limit));
    let o = f.bind(Arg::Int(offset));
    let sql = format!(
        "SELECT {COLS} FROM phone_numbers{} ORDER BY created_at DESC, id DESC LIMIT {l} OFFSET {o}",
        f.where_sql()
    );
    let rows = f.query(sql).fetch_all(db.reader()).await?;
    Ok((
        rows.iter().map(number).collect::<crate::Result<_>>()?,
        total,
    ))
}
