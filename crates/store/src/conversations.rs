//! Conversations: one active per (phone number, contact); they end when closed or after
//! 24 hours without messages, and carry Kapso's summary of their last message.

use crate::Conn;
use crate::sql::Row;

use crate::Db;
use crate::query::{Arg, Cursor, Filter, Page, col, keyset, page};

/// A stored conversation with its contact.
#[derive(Debug, Clone)]
pub struct Conversation {
    /// Conversation id.
    pub id: String,
    /// Owning project.
    pub project_id: String,
    /// Business number.
    pub phone_number_id: String,
    /// Contact id.
    pub contact_id: String,
    /// Contact's wa_id.
    pub wa_id: Option<String>,
    /// Contact's BSUID.
    pub user_id: Option<String>,
    /// Contact's profile name.
    pub contact_name: Option<String>,
    /// `active` or `ended`.
    pub status: String,
    /// Creation (ms).
    pub created_at: i64,
    /// Last update (ms).
    pub updated_at: i64,
    /// Last message time (ms).
    pub last_active_at: i64,
    /// End time (ms).
    pub ended_at: Option<i64>,
    /// Messages stored in it.
    pub messages_count: i64,
    /// wamid of the latest message.
    pub last_message_id: Option<String>,
    /// Type of the latest message.
    pub last_message_type: Option<String>,
    /// Time of the latest message (ms).
    pub last_message_at: Option<i64>,
    /// Plain-text rendering of the latest message.
    pub last_message_text: Option<String>,
    /// Latest inbound message (ms).
    pub last_inbound_at: Option<i64>,
    /// Latest outbound message (ms).
    pub last_outbound_at: Option<i64>,
    /// The member of the active assignment, if any.
    pub assigned_user_id: Option<String>,
    /// Status of the conversation's latest workflow execution, if any.
    pub workflow_status: Option<String>,
    /// Customer messages the listing user has not read (at most [`UNREAD_CAP`]); `None`
    /// when no user asked.
    pub unread_count: Option<i64>,
}

/// Unread means "arrived after the user last read the conversation" (`created_at`, our
/// clock), not "sent after": a message Meta delivers late was sent before a read that it
/// arrived after. The index is on `sent_at`, so the scan starts this long before the read.
const UNREAD_LATE_MILLIS: i64 = 3_600_000;

/// Unread counts stop at this number (the inbox shows "99+").
pub const UNREAD_CAP: i64 = 100;

const COLS: &str = "v.id, v.project_id, v.phone_number_id, v.contact_id, c.wa_id, c.user_id, c.profile_name, v.status, v.created_at, v.updated_at, v.last_active_at, v.ended_at, v.messages_count, v.last_message_id, v.last_message_type, v.last_message_at, v.last_message_text, v.last_inbound_at, v.last_outbound_at, (SELECT a.user_id FROM conversation_assignments a WHERE a.conversation_id = v.id AND a.active = 1) AS assigned_user_id, (SELECT x.status FROM workflow_executions x WHERE x.conversation_id = v.id ORDER BY x.started_at DESC, x.id DESC LIMIT 1) AS workflow_status";
const FROM: &str = "conversations v JOIN contacts c ON c.id = v.contact_id";

fn conversation(r: &Row) -> crate::Result<Conversation> {
    Ok(Conversation {
        id: col(r, "id")?,
        project_id: col(r, "project_id")?,
        phone_number_id: col(r, "phone_number_id")?,
        contact_id: col(r, "contact_id")?,
        wa_id: col(r, "wa_id")?,
        user_id: col(r, "user_id")?,
        contact_name: col(r, "profile_name")?,
        status: col(r, "status")?,
        created_at: col(r, "created_at")?,
        updated_at: col(r, "updated_at")?,
        last_active_at: col(r, "last_active_at")?,
        ended_at: col(r, "ended_at")?,
        messages_count: col(r, "messages_count")?,
        last_message_id: col(r, "last_message_id")?,
        last_message_type: col(r, "last_message_type")?,
        last_message_at: col(r, "last_message_at")?,
        last_message_text: col(r, "last_message_text")?,
        last_inbound_at: col(r, "last_inbound_at")?,
        last_outbound_at: col(r, "last_outbound_at")?,
        assigned_user_id: col(r, "assigned_user_id")?,
        workflow_status: col(r, "workflow_status")?,
        unread_count: col(r, "unread_count")?,
    })
}

/// Identifies the conversation a message belongs to.
#[derive(Debug, Clone, Copy)]
pub struct Thread<'a> {
    /// Owning project.
    pub project_id: &'a str,
    /// Business number.
    pub phone_number_id: &'a str,
    /// Contact.
    pub contact_id: &'a str,
}

/// Returns the active conversation of `thread`, opening one (with `new_id`) when there is
/// none or when the active one had been idle longer than `idle_millis` before `at` (it is
/// ended first). The boolean is true when a conversation was opened.
pub async fn current(
    conn: &mut Conn,
    thread: Thread<'_>,
    new_id: &str,
    at: i64,
    idle_millis: i64,
    now: i64,
) -> crate::Result<(String, bool)> {
    let Thread {
        project_id,
        phone_number_id,
        contact_id,
    } = thread;
    // Usually the thread has a conversation still within its idle window: one statement.
    let active = crate::sql::query(
        "SELECT id, last_active_at FROM conversations WHERE phone_number_id = $1 AND contact_id = $2 AND status = 'active'",
    )
    .bind(phone_number_id)
    .bind(contact_id)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = active {
        let last_active_at: i64 = col(&row, "last_active_at")?;
        if last_active_at.saturating_add(idle_millis) >= at {
            return Ok((col(&row, "id")?, false));
        }
    }
    // Close an idle one first, so the new message opens a fresh conversation.
    crate::sql::query(
        "UPDATE conversations SET status = 'ended', ended_at = last_active_at + $1, updated_at = $2 \
         WHERE phone_number_id = $3 AND contact_id = $4 AND status = 'active' AND last_active_at + $1 < $5",
    )
    .bind(idle_millis)
    .bind(now)
    .bind(phone_number_id)
    .bind(contact_id)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    let opened = crate::sql::query(
        "INSERT INTO conversations (id, project_id, phone_number_id, contact_id, status, created_at, updated_at, last_active_at) \
         VALUES ($1, $2, $3, $4, 'active', $5, $5, $6) \
         ON CONFLICT (phone_number_id, contact_id) WHERE status = 'active' DO NOTHING",
    )
    .bind(new_id)
    .bind(project_id)
    .bind(phone_number_id)
    .bind(contact_id)
    .bind(now)
    .bind(at)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    let id: String = crate::sql::query_scalar(
        "SELECT id FROM conversations WHERE phone_number_id = $1 AND contact_id = $2 AND status = 'active'",
    )
    .bind(phone_number_id)
    .bind(contact_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok((id, opened))
}

/// The summary a new message leaves on its conversation.
#[derive(Debug, Clone)]
pub struct Activity<'a> {
    /// wamid.
    pub wamid: &'a str,
    /// Meta type.
    pub message_type: &'a str,
    /// Plain-text rendering.
    pub text: &'a str,
    /// Message time (ms).
    pub at: i64,
    /// True for inbound.
    pub inbound: bool,
    /// Order among messages of the same millisecond: the place in Meta's stream (inbound
    /// delivery id and position) or the send's time-ordered id.
    pub order: &'a str,
}

/// Counts a new message and, when it is the latest, updates the summary.
pub async fn record_activity(
    conn: &mut Conn,
    id: &str,
    a: &Activity<'_>,
    now: i64,
) -> crate::Result<()> {
    let inbound = i64::from(a.inbound);
    crate::sql::query(
        "UPDATE conversations SET messages_count = messages_count + 1, updated_at = $1, \
           last_active_at = CASE WHEN $2 > last_active_at THEN $2 ELSE last_active_at END, \
           last_message_id = CASE WHEN (last_message_at IS NULL OR $2 > last_message_at OR ($2 = last_message_at AND (last_message_order IS NULL OR $8 >= last_message_order))) THEN $3 ELSE last_message_id END, \
           last_message_type = CASE WHEN (last_message_at IS NULL OR $2 > last_message_at OR ($2 = last_message_at AND (last_message_order IS NULL OR $8 >= last_message_order))) THEN $4 ELSE last_message_type END, \
           last_message_text = CASE WHEN (last_message_at IS NULL OR $2 > last_message_at OR ($2 = last_message_at AND (last_message_order IS NULL OR $8 >= last_message_order))) THEN $5 ELSE last_message_text END, \
           last_message_order = CASE WHEN (last_message_at IS NULL OR $2 > last_message_at OR ($2 = last_message_at AND (last_message_order IS NULL OR $8 >= last_message_order))) THEN $8 ELSE last_message_order END, \
           last_message_at = CASE WHEN (last_message_at IS NULL OR $2 > last_message_at OR ($2 = last_message_at AND (last_message_order IS NULL OR $8 >= last_message_order))) THEN $2 ELSE last_message_at END, \
           last_inbound_at = CASE WHEN $6 = 1 AND (last_inbound_at IS NULL OR $2 > last_inbound_at) THEN $2 ELSE last_inbound_at END, \
           last_outbound_at = CASE WHEN $6 = 0 AND (last_outbound_at IS NULL OR $2 > last_outbound_at) THEN $2 ELSE last_outbound_at END \
         WHERE id = $7",
    )
    .bind(now)
    .bind(a.at)
    .bind(a.wamid)
    .bind(a.message_type)
    .bind(a.text)
    .bind(inbound)
    .bind(id)
    .bind(a.order)
    .execute(conn)
    .await?;
    Ok(())
}

/// A conversation that was just ended.
#[derive(Debug, Clone)]
pub struct Ended {
    /// Conversation id.
    pub id: String,
    /// Project.
    pub project_id: String,
    /// Number.
    pub phone_number_id: String,
}

/// Ends up to `limit` active conversations idle for `idle_millis` (their end is their last
/// activity plus the idle time), in the caller's transaction.
pub async fn end_idle(
    conn: &mut Conn,
    backend: crate::Backend,
    idle_millis: i64,
    now: i64,
    limit: i64,
) -> crate::Result<Vec<Ended>> {
    let lock = backend.skip_locked();
    let sql = format!(
        "SELECT id, project_id, phone_number_id FROM conversations WHERE status = 'active' AND last_active_at < $2 - $1 ORDER BY last_active_at, id LIMIT $3{lock}"
    );
    let rows = crate::sql::query(sql)
        .bind(idle_millis)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *conn)
        .await?;
    let mut ended = Vec::with_capacity(rows.len());
    for r in &rows {
        let e = Ended {
            id: col(r, "id")?,
            project_id: col(r, "project_id")?,
            phone_number_id: col(r, "phone_number_id")?,
        };
        crate::sql::query(
            "UPDATE conversations SET status = 'ended', ended_at = last_active_at + $1, updated_at = $2 WHERE id = $3 AND status = 'active'",
        )
        .bind(idle_millis)
        .bind(now)
        .bind(&e.id)
        .execute(&mut *conn)
        .await?;
        ended.push(e);
    }
    Ok(ended)
}

/// Sets a conversation's status (`active` or `ended`) in the caller's transaction.
/// Re-activating fails with a unique violation when another conversation with that contact
/// is active.
pub async fn set_status(
    conn: &mut Conn,
    project_id: &str,
    id: &str,
    status: &str,
    now: i64,
) -> crate::Result<bool> {
    let ended_at = (status == "ended").then_some(now);
    let done = crate::sql::query(
        "UPDATE conversations SET status = $1, ended_at = $2, updated_at = $3 WHERE id = $4 AND project_id = $5",
    )
    .bind(status)
    .bind(ended_at)
    .bind(now)
    .bind(id)
    .bind(project_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// When the customer `wa_id` last wrote in its active conversation with a number.
pub async fn last_inbound_at<E: crate::sql::Exec>(
    on: E,
    project_id: &str,
    phone_number_id: &str,
    wa_id: &str,
) -> crate::Result<Option<i64>> {
    let found: Option<Option<i64>> = crate::sql::query_scalar(
        // From the contact (contacts_wa_id) to its one active conversation with the number
        // (conversations_one_active). CROSS JOIN fixes that order for SQLite, whose planner
        // otherwise starts from the status index and walks every active conversation
        // (7.5 ms a send with 10,000 of them); PostgreSQL treats it as a plain join.
        "SELECT v.last_inbound_at FROM contacts c CROSS JOIN conversations v \
         WHERE c.project_id = $1 AND c.wa_id = $3 AND v.contact_id = c.id \
           AND v.phone_number_id = $2 AND v.status = 'active' AND v.project_id = c.project_id",
    )
    .bind(project_id)
    .bind(phone_number_id)
    .bind(wa_id)
    .fetch_optional(on)
    .await?;
    Ok(found.flatten())
}

/// A conversation of the project.
pub async fn get(db: &Db, project_id: &str, id: &str) -> crate::Result<Option<Conversation>> {
    let sql = format!(
        "SELECT {COLS}, CAST(NULL AS BIGINT) AS unread_count FROM {FROM} WHERE v.id = $1 AND v.project_id = $2"
    );
    let row = crate::sql::query(sql)
        .bind(id)
        .bind(project_id)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(conversation).transpose()
}

/// Filters for listing conversations.
#[derive(Debug, Clone, Default)]
pub struct ConversationFilter {
    /// Only this business number.
    pub phone_number_id: Option<String>,
    /// `active` or `ended`.
    pub status: Option<String>,
    /// Digits contained in the contact's wa_id.
    pub phone_number: Option<String>,
    /// last_active_at >= (ms).
    pub last_active_since: Option<i64>,
    /// last_active_at <= (ms).
    pub last_active_until: Option<i64>,
    /// Who the conversation is assigned to.
    pub assignment: AssignedTo,
    /// Only these business numbers (an embed's scope); `Some(empty)` matches nothing.
    pub phone_number_ids: Option<Vec<String>>,
    /// Only conversations a workflow handed to a person (an execution in `handoff`).
    pub handoff: bool,
    /// Text in the contact's name or digits in its number (case-insensitive).
    pub search: Option<String>,
    /// The user whose unread counts to include.
    pub reader: Option<String>,
}

/// The assignment filter of a conversation list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AssignedTo {
    /// Assigned or not.
    #[default]
    Anyone,
    /// Actively assigned to this user.
    User(String),
    /// Without an active assignment.
    Nobody,
}

/// Lists a project's conversations, latest activity first.
pub async fn list(
    db: &Db,
    project_id: &str,
    filter: &ConversationFilter,
    limit: i64,
    cursor: &Cursor,
) -> crate::Result<Page<Conversation>> {
    let mut f = Filter::default();
    f.push(Arg::Text(project_id.to_owned()), |p| {
        format!("v.project_id = {p}")
    });
    if let Some(v) = &filter.phone_number_id {
        f.push(Arg::Text(v.clone()), |p| format!("v.phone_number_id = {p}"));
    }
    if let Some(v) = &filter.status {
        f.push(Arg::Text(v.clone()), |p| format!("v.status = {p}"));
    }
    if let Some(v) = &filter.phone_number {
        f.push(Arg::Text(format!("%{v}%")), |p| format!("c.wa_id LIKE {p}"));
    }
    if let Some(v) = filter.last_active_since {
        f.push(Arg::Int(v), |p| format!("v.last_active_at >= {p}"));
    }
    if let Some(v) = filter.last_active_until {
        f.push(Arg::Int(v), |p| format!("v.last_active_at <= {p}"));
    }
    if let Some(ids) = &filter.phone_number_ids {
        if ids.is_empty() {
            f.raw("1 = 0".into());
        } else {
            let placeholders: Vec<String> =
                ids.iter().map(|id| f.bind(Arg::Text(id.clone()))).collect();
            f.raw(format!(
                "v.phone_number_id IN ({})",
                placeholders.join(", ")
            ));
        }
    }
    if let Some(q) = &filter.search {
        let words = f.bind(Arg::Text(format!("%{}%", q.to_lowercase())));
        let digits: String = q.chars().filter(char::is_ascii_digit).collect();
        if digits.is_empty() {
            f.raw(format!("LOWER(c.profile_name) LIKE {words}"));
        } else {
            let d = f.bind(Arg::Text(format!("%{digits}%")));
            f.raw(format!(
                "(LOWER(c.profile_name) LIKE {words} OR c.wa_id LIKE {d})"
            ));
        }
    }
    if filter.handoff {
        // The status shown as `workflow_status` (its latest execution's), found through the
        // conversation's own executions rather than every execution in handoff.
        f.raw(
            "(SELECT x.status FROM workflow_executions x WHERE x.conversation_id = v.id ORDER BY x.started_at DESC, x.id DESC LIMIT 1) = 'handoff'".into(),
        );
    }
    match &filter.assignment {
        AssignedTo::Anyone => {}
        AssignedTo::User(user_id) => f.push(Arg::Text(user_id.clone()), |p| {
            format!("EXISTS (SELECT 1 FROM conversation_assignments a WHERE a.conversation_id = v.id AND a.active = 1 AND a.user_id = {p})")
        }),
        AssignedTo::Nobody => f.raw(
            "NOT EXISTS (SELECT 1 FROM conversation_assignments a WHERE a.conversation_id = v.id AND a.active = 1)".into(),
        ),
    }
    // Bound before the conditions' placeholders are used in the select list: one argument
    // list serves both.
    let unread = match &filter.reader {
        Some(user_id) => {
            let u = f.bind(Arg::Text(user_id.clone()));
            let cap = f.bind(Arg::Int(UNREAD_CAP));
            format!(
                "(SELECT COUNT(*) FROM (SELECT 1 FROM messages m CROSS JOIN (SELECT COALESCE((SELECT r.last_read_at FROM conversation_reads r \
                   WHERE r.user_id = {u} AND r.conversation_id = v.id), 0) AS at) AS read_up_to \
                 WHERE m.conversation_id = v.id AND m.direction = 'inbound' \
                   AND m.sent_at > read_up_to.at - {UNREAD_LATE_MILLIS} AND m.created_at > read_up_to.at \
                 LIMIT {cap}) AS unread)"
            )
        }
        None => "CAST(NULL AS BIGINT)".to_owned(),
    };
    let order = keyset(&mut f, cursor, "v.last_active_at", "v.id");
    let l = f.bind(Arg::Int(limit + 1));
    let sql = format!(
        "SELECT {COLS}, {unread} AS unread_count FROM {FROM}{} ORDER BY v.last_active_at {order}, v.id {order} LIMIT {l}",
        f.where_sql()
    );
    let rows = f.query(sql).fetch_all(db.reader()).await?;
    let items = rows
        .iter()
        .map(conversation)
        .collect::<crate::Result<Vec<_>>>()?;
    Ok(page(items, limit as usize, cursor, |c| {
        (c.last_active_at, c.id.clone())
    }))
}

/// Records that a user has read a conversation up to `at` (ms); never moves backwards.
pub async fn mark_read(
    db: &Db,
    user_id: &str,
    conversation_id: &str,
    at: i64,
) -> crate::Result<()> {
    crate::sql::query(
        "INSERT INTO conversation_reads (user_id, conversation_id, last_read_at) VALUES ($1, $2, $3) \
         ON CONFLICT (user_id, conversation_id) DO UPDATE SET last_read_at = $3 \
         WHERE conversation_reads.last_read_at < $3",
    )
    .bind(user_id)
    .bind(conversation_id)
    .bind(at)
    .execute(db.writer())
    .await?;
    Ok(())
}
