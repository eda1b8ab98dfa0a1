//! Dashboard users, their membership (with a role) in projects, and their login sessions.

use crate::Conn;
use crate::sql::Row;

use crate::Db;
use crate::query::col;

/// A person who can log in.
#[derive(Debug, Clone)]
pub struct User {
    /// User id.
    pub id: String,
    /// Email address, lowercased.
    pub email: String,
    /// Display name.
    pub name: String,
    /// Created (ms).
    pub created_at: i64,
}

/// A user as a member of one project.
#[derive(Debug, Clone)]
pub struct Member {
    /// Membership id.
    pub id: String,
    /// The project.
    pub project_id: String,
    /// The user.
    pub user_id: String,
    /// The user's email.
    pub email: String,
    /// The user's name.
    pub name: String,
    /// `owner`, `admin` or `member`.
    pub role: String,
    /// When the user joined the project (ms).
    pub created_at: i64,
}

/// A login session, found by the hash of its cookie.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user.
    pub user_id: String,
    /// The token that unsafe requests must echo in `X-CSRF-Token`.
    pub csrf_token: String,
    /// When it stops working (ms).
    pub expires_at: i64,
}

fn user(r: &Row) -> crate::Result<User> {
    Ok(User {
        id: col(r, "id")?,
        email: col(r, "email")?,
        name: col(r, "name")?,
        created_at: col(r, "created_at")?,
    })
}

const MEMBER_COLS: &str = "m.id, m.project_id, m.user_id, u.email, u.name, m.role, m.created_at";
const MEMBER_FROM: &str = "memberships m JOIN users u ON u.id = m.user_id";

fn member_row(r: &Row) -> crate::Result<Member> {
    Ok(Member {
        id: col(r, "id")?,
        project_id: col(r, "project_id")?,
        user_id: col(r, "user_id")?,
        email: col(r, "email")?,
        name: col(r, "name")?,
        role: col(r, "role")?,
        created_at: col(r, "created_at")?,
    })
}

/// Creates a user and makes it a member of a project, atomically.
pub async fn create_with_membership(
    db: &Db,
    u: &User,
    password_hash: &str,
    membership_id: &str,
    project_id: &str,
    role: &str,
) -> crate::Result<()> {
    let mut conn = db.writer().acquire().await?;
    let mut tx = conn.begin().await?;
    crate::sql::query(
        "INSERT INTO users (id, email, name, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)",
    )
    .bind(&u.id)
    .bind(&u.email)
    .bind(&u.name)
    .bind(password_hash)
    .bind(u.created_at)
    .execute(&mut *tx)
    .await?;
    insert_membership(
        &mut tx,
        membership_id,
        project_id,
        &u.id,
        role,
        u.created_at,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn insert_membership(
    conn: &mut Conn,
    id: &str,
    project_id: &str,
    user_id: &str,
    role: &str,
    now: i64,
) -> crate::Result<()> {
    crate::sql::query(
        "INSERT INTO memberships (id, project_id, user_id, role, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(project_id)
    .bind(user_id)
    .bind(role)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes an existing user a member of a project (a unique violation if already one).
pub async fn add_membership(
    db: &Db,
    id: &str,
    project_id: &str,
    user_id: &str,
    role: &str,
    now: i64,
) -> crate::Result<()> {
    let mut conn = db.writer().acquire().await?;
    insert_membership(&mut conn, id, project_id, user_id, role, now).await
}

/// A user and its password hash, by email (lowercased by the caller).
pub async fn by_email(db: &Db, email: &str) -> crate::Result<Option<(User, String)>> {
    let row = crate::sql::query(
        "SELECT id, email, name, created_at, password_hash FROM users WHERE email = $1",
    )
    .bind(email)
    .fetch_optional(db.reader())
    .await?;
    row.map(|r| Ok((user(&r)?, col(&r, "password_hash")?)))
        .transpose()
}

/// A user by id.
pub async fn find(db: &Db, id: &str) -> crate::Result<Option<User>> {
    let row = crate::sql::query("SELECT id, email, name, created_at FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(user).transpose()
}

/// Replaces a user's password hash and ends every session of the user.
pub async fn set_password(db: &Db, user_id: &str, hash: &str, now: i64) -> crate::Result<bool> {
    let mut conn = db.writer().acquire().await?;
    let mut tx = conn.begin().await?;
    let done =
        crate::sql::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(hash)
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1;
    crate::sql::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done)
}

/// A project's members, oldest first, and their total.
pub async fn members(
    db: &Db,
    project_id: &str,
    limit: i64,
    offset: i64,
) -> crate::Result<(Vec<Member>, i64)> {
    let sql = format!(
        "SELECT {MEMBER_COLS} FROM {MEMBER_FROM} WHERE m.project_id = $1 ORDER BY m.created_at, m.id LIMIT $2 OFFSET $3"
    );
    let rows = crate::sql::query(sql)
        .bind(project_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(db.reader())
        .await?;
    let total: i64 =
        crate::sql::query_scalar("SELECT COUNT(*) FROM memberships WHERE project_id = $1")
            .bind(project_id)
            .fetch_one(db.reader())
            .await?;
    Ok((
        rows.iter().map(member_row).collect::<crate::Result<_>>()?,
        total,
    ))
}

/// How many owners a project has.
pub async fn owner_count(db: &Db, project_id: &str) -> crate::Result<i64> {
    crate::sql::query_scalar(
        "SELECT COUNT(*) FROM memberships WHERE project_id = $1 AND role = 'owner'",
    )
    .bind(project_id)
    .fetch_one(db.reader())
    .await
}

/// A user's membership in a project, by user id.
pub async fn member(db: &Db, project_id: &str, user_id: &str) -> crate::Result<Option<Member>> {
    let sql = format!(
        "SELECT {MEMBER_COLS} FROM {MEMBER_FROM} WHERE m.project_id = $1 AND m.user_id = $2"
    );
    let row = crate::sql::query(sql)
        .bind(project_id)
        .bind(user_id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(member_row).transpose()
}

/// A membership by its own id.
pub async fn membership(db: &Db, project_id: &str, id: &str) -> crate::Result<Option<Member>> {
    let sql =
        format!("SELECT {MEMBER_COLS} FROM {MEMBER_FROM} WHERE m.project_id = $1 AND m.id = $2");
    let row = crate::sql::query(sql)
        .bind(project_id)
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(member_row).transpose()
}

/// Every membership of a user, oldest first (the first is the default project).
pub async fn memberships_of(db: &Db, user_id: &str) -> crate::Result<Vec<Member>> {
    let sql = format!(
        "SELECT {MEMBER_COLS} FROM {MEMBER_FROM} WHERE m.user_id = $1 ORDER BY m.created_at, m.id"
    );
    let rows = crate::sql::query(sql)
        .bind(user_id)
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(member_row).collect()
}

/// Changes a member's role.
pub async fn set_role(db: &Db, project_id: &str, id: &str, role: &str) -> crate::Result<bool> {
    Ok(
        crate::sql::query("UPDATE memberships SET role = $1 WHERE project_id = $2 AND id = $3")
            .bind(role)
            .bind(project_id)
            .bind(id)
            .execute(db.writer())
            .await?
            .rows_affected()
            == 1,
    )
}

/// Removes a membership; the member's active assignments in the project end with it.
pub async fn remove_membership(
    db: &Db,
    project_id: &str,
    id: &str,
    now: i64,
) -> crate::Result<bool> {
    let mut conn = db.writer().acquire().await?;
    let mut tx = conn.begin().await?;
    let user_id: Option<String> = crate::sql::query_scalar(
        "DELETE FROM memberships WHERE project_id = $1 AND id = $2 RETURNING user_id",
    )
    .bind(project_id)
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(user_id) = user_id else {
        return Ok(false);
    };
    crate::sql::query(
        "UPDATE conversation_assignments SET active = 0, updated_at = $1 WHERE project_id = $2 AND user_id = $3 AND active = 1",
    )
    .bind(now)
    .bind(project_id)
    .bind(&user_id)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(true)
}

/// The email addresses of a project's members, for notices.
pub async fn emails(db: &Db, project_id: &str) -> crate::Result<Vec<String>> {
    crate::sql::query_scalar(
        "SELECT u.email FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.project_id = $1 ORDER BY m.created_at, m.id",
    )
    .bind(project_id)
    .fetch_all(db.reader())
    .await
}

/// Stores a new session.
pub async fn insert_session(db: &Db, token_hash: &str, s: &Session, now: i64) -> crate::Result<()> {
    crate::sql::query(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token_hash)
    .bind(&s.user_id)
    .bind(&s.csrf_token)
    .bind(now)
    .bind(s.expires_at)
    .execute(db.writer())
    .await?;
    Ok(())
}

/// The unexpired session with this token hash.
pub async fn session(db: &Db, token_hash: &str, now: i64) -> crate::Result<Option<Session>> {
    let row = crate::sql::query(
        "SELECT user_id, csrf_token, expires_at FROM sessions WHERE token_hash = $1 AND expires_at > $2",
    )
    .bind(token_hash)
    .bind(now)
    .fetch_optional(db.reader())
    .await?;
    row.map(|r| {
        Ok(Session {
            user_id: col(&r, "user_id")?,
            csrf_token: col(&r, "csrf_token")?,
            expires_at: col(&r, "expires_at")?,
        })
    })
    .transpose()
}

/// Ends a session.
pub async fn delete_session(db: &Db, token_hash: &str) -> crate::Result<()> {
    crate::sql::query("DELETE FROM sessions WHERE token_hash = $1")
        .bind(token_hash)
        .execute(db.writer())
        .await?;
    Ok(())
}

/// Deletes sessions that expired before `now`; returns how many.
pub async fn delete_expired_sessions(db: &Db, now: i64) -> crate::Result<u64> {
    Ok(
        crate::sql::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(db.writer())
            .await?
            .rows_affected(),
    )
}
