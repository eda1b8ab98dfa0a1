//! Contacts: the customers a project talks to, keyed by wa_id or, for username-only
//! users, by business-scoped user id.

use crate::Conn;
use crate::sql::Row;

use crate::Db;
use crate::query::{Arg, Cursor, Filter, Page, col, keyset, page};

/// A stored contact.
#[derive(Debug, Clone)]
pub struct Contact {
    /// Contact id.
    pub id: String,
    /// WhatsApp id (phone number), when known.
    pub wa_id: Option<String>,
    /// Business-scoped user id, when known.
    pub user_id: Option<String>,
    /// Profile name.
    pub profile_name: Option<String>,
    /// Creation time (ms).
    pub created_at: i64,
    /// Last update (ms).
    pub updated_at: i64,
}

/// The identity Meta gave us for a customer.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// wa_id.
    pub wa_id: Option<String>,
    /// BSUID.
    pub user_id: Option<String>,
    /// Profile name.
    pub profile_name: Option<String>,
}

impl Identity {
    /// The unique key of the contact: its wa_id, else `bsuid:` + user id.
    pub fn key(&self) -> Option<String> {
        self.wa_id
            .clone()
            .or_else(|| self.user_id.as_ref().map(|u| format!("bsuid:{u}")))
    }
}

/// Creates or refreshes a contact and returns its id; known fields are never blanked.
pub async fn upsert(
    conn: &mut Conn,
    project_id: &str,
    identity: &Identity,
    new_id: &str,
    now: i64,
) -> crate::Result<String> {
    let key = identity
        .key()
        .ok_or_else(|| crate::StoreError::Corrupt("contact without wa_id or user_id".into()))?;
    let id: String = crate::sql::query_scalar(
        "INSERT INTO contacts (id, project_id, contact_key, wa_id, user_id, profile_name, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         ON CONFLICT (project_id, contact_key) DO UPDATE SET \
           wa_id = COALESCE(excluded.wa_id, contacts.wa_id), \
           user_id = COALESCE(excluded.user_id, contacts.user_id), \
           profile_name = COALESCE(excluded.profile_name, contacts.profile_name), \
           updated_at = excluded.updated_at \
         RETURNING id",
    )
    .bind(new_id)
    .bind(project_id)
    .bind(key)
    .bind(&identity.wa_id)
    .bind(&identity.user_id)
    .bind(&identity.profile_name)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

fn contact(r: &Row) -> crate::Result<Contact> {
    Ok(Contact {
        id: col(r, "id")?,
        wa_id: col(r, "wa_id")?,
        user_id: col(r, "user_id")?,
        profile_name: col(r, "profile_name")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
    })
}

/// Contacts that have talked with a phone number, most recently updated first.
pub async fn list_for_number(
    db: &Db,
    project_id: &str,
    phone_number_id: &str,
    wa_id: Option<&str>,
    limit: i64,
    cursor: &Cursor,
) -> crate::Result<Page<Contact>> {
    let mut f = Filter::default();
    f.push(Arg::Text(project_id.to_owned()), |p| {
        format!("c.project_id = {p}")
    });
    f.push(Arg::Text(phone_number_id.to_owned()), |p| {
        format!("EXISTS (SELECT 1 FROM conversations v WHERE v.contact_id = c.id AND v.phone_number_id = {p})")
    });
    if let Some(w) = wa_id {
        f.push(Arg::Text(w.to_owned()), |p| format!("c.wa_id = {p}"));
    }
    let order = keyset(&mut f, cursor, "c.updated_at", "c.id");
    let l = f.bind(Arg::Int(limit + 1));
    let sql = format!(
        "SELECT c.id, c.wa_id, c.user_id, c.profile_name, c.created_at, c.updated_at FROM contacts c{} \
         ORDER BY c.updated_at {order}, c.id {order} LIMIT {l}",
        f.where_sql()
    );
    let rows = f.query(sql).fetch_all(db.reader()).await?;
    let items = rows
        .iter()
        .map(contact)
        .collect::<crate::Result<Vec<_>>>()?;
    Ok(page(items, limit as usize, cursor, |c| {
        (c.updated_at, c.id.clone())
    }))
}
