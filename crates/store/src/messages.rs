//! Messages and their status history. Statuses only move forward, enforced by the UPDATE
//! itself (invariant 8); every raw status is appended once to the history.

use crate::Conn;
use crate::sql::Row;

use crate::Db;
use crate::query::{Arg, Cursor, Filter, Page, col, keyset, page};

/// A message to store.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Row id.
    pub id: String,
    /// Owning project.
    pub project_id: String,
    /// Business number.
    pub phone_number_id: String,
    /// Conversation.
    pub conversation_id: Option<String>,
    /// Contact.
    pub contact_id: Option<String>,
    /// Meta's id.
    pub wamid: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// Meta type.
    pub message_type: String,
    /// Current status.
    pub status: String,
    /// Rank of that status.
    pub status_rank: i64,
    /// The Meta message object as JSON.
    pub body: String,
    /// Plain-text rendering.
    pub content: String,
    /// Whether it carries media.
    pub has_media: bool,
    /// Our media row, when it carries media.
    pub media_id: Option<String>,
    /// Message time (ms).
    pub sent_at: i64,
    /// Storage time (ms).
    pub created_at: i64,
}

/// Stores a message unless its wamid is already stored for that number; true if inserted.
pub async fn insert(conn: &mut Conn, m: &NewMessage) -> crate::Result<bool> {
    insert_row(conn, m, false).await
}

/// The one INSERT of messages. A duplicate wamid is ignored; any other unique violation
/// (a second in-flight send in a conversation) is an error.
async fn insert_row(conn: &mut Conn, m: &NewMessage, in_flight: bool) -> crate::Result<bool> {
    let done = crate::sql::query(
        "INSERT INTO messages (id, project_id, phone_number_id, conversation_id, contact_id, wamid, direction, message_type, status, status_rank, body, content, has_media, media_id, sent_at, created_at, updated_at, in_flight) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16, $17) \
         ON CONFLICT (phone_number_id, wamid) DO NOTHING",
    )
    .bind(&m.id)
    .bind(&m.project_id)
    .bind(&m.phone_number_id)
    .bind(&m.conversation_id)
    .bind(&m.contact_id)
    .bind(&m.wamid)
    .bind(&m.direction)
    .bind(&m.message_type)
    .bind(&m.status)
    .bind(m.status_rank)
    .bind(&m.body)
    .bind(&m.content)
    .bind(i64::from(m.has_media))
    .bind(&m.media_id)
    .bind(m.sent_at)
    .bind(m.created_at)
    .bind(i64::from(in_flight))
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Whether a message with this wamid is stored for the number.
pub async fn exists(conn: &mut Conn, phone_number_id: &str, wamid: &str) -> crate::Result<bool> {
    let n: i64 = crate::sql::query_scalar(
        "SELECT COUNT(*) FROM messages WHERE phone_number_id = $1 AND wamid = $2",
    )
    .bind(phone_number_id)
    .bind(wamid)
    .fetch_one(conn)
    .await?;
    Ok(n > 0)
}

/// One raw status as received.
#[derive(Debug, Clone, Copy)]
pub struct StatusRecord<'a> {
    /// Row id.
    pub id: &'a str,
    /// Business number.
    pub phone_number_id: &'a str,
    /// wamid.
    pub wamid: &'a str,
    /// Status name as Meta sent it.
    pub status: &'a str,
    /// Status time (ms).
    pub status_at: i64,
    /// The raw status object.
    pub raw: &'a str,
}

/// What [`append_status`] did with a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored in its message's history.
    Fresh,
    /// Its message has this status already (Meta delivered it again).
    Seen,
    /// No message has its wamid: nothing stored.
    NoMessage,
}

/// Appends a raw status to the history of the message with its wamid.
///
/// On PostgreSQL the message's row is locked (`FOR KEY SHARE`) while the status is added:
/// a send taking this wamid from a stub (`finish_send`) deletes the stub and moves its
/// history to the message, and must not miss a status added to the stub meanwhile.
pub async fn append_status(
    conn: &mut Conn,
    s: StatusRecord<'_>,
    now: i64,
) -> crate::Result<Appended> {
    let lock = if conn.is_postgres() {
        " FOR KEY SHARE"
    } else {
        ""
    };
    let done = crate::sql::query(format!(
        "INSERT INTO message_statuses (id, message_id, phone_number_id, wamid, status, status_at, raw, received_at) \
         SELECT $1, m.id, $2, $3, $4, $5, $6, $7 FROM messages m WHERE m.phone_number_id = $2 AND m.wamid = $3{lock} \
         ON CONFLICT (message_id, status) DO NOTHING"
    ))
    .bind(s.id)
    .bind(s.phone_number_id)
    .bind(s.wamid)
    .bind(s.status)
    .bind(s.status_at)
    .bind(s.raw)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(Appended::Fresh);
    }
    // Nothing added: a repeated status, no message, or (PostgreSQL) the stub it found was
    // being replaced by its send, which has committed since. Look again.
    let message: Option<String> = crate::sql::query_scalar(format!(
        "SELECT id FROM messages WHERE phone_number_id = $1 AND wamid = $2{lock}"
    ))
    .bind(s.phone_number_id)
    .bind(s.wamid)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(message) = message else {
        return Ok(Appended::NoMessage);
    };
    let done = crate::sql::query(
        "INSERT INTO message_statuses (id, message_id, phone_number_id, wamid, status, status_at, raw, received_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (message_id, status) DO NOTHING",
    )
    .bind(s.id)
    .bind(&message)
    .bind(s.phone_number_id)
    .bind(s.wamid)
    .bind(s.status)
    .bind(s.status_at)
    .bind(s.raw)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(if done.rows_affected() == 1 {
        Appended::Fresh
    } else {
        Appended::Seen
    })
}

/// Moves a message's status forward; a lower or equal rank changes nothing.
pub async fn advance_status(
    conn: &mut Conn,
    phone_number_id: &str,
    wamid: &str,
    status: &str,
    rank: i64,
    now: i64,
) -> crate::Result<bool> {
    let done = crate::sql::query(
        "UPDATE messages SET status = $1, status_rank = $2, updated_at = $3 \
         WHERE phone_number_id = $4 AND wamid = $5 AND status_rank < $2",
    )
    .bind(status)
    .bind(rank)
    .bind(now)
    .bind(phone_number_id)
    .bind(wamid)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A stored message with its contact's name and wa_id.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    /// Row id.
    pub id: String,
    /// Business number.
    pub phone_number_id: String,
    /// Conversation.
    pub conversation_id: Option<String>,
    /// wamid.
    pub wamid: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// Meta type.
    pub message_type: String,
    /// Current status.
    pub status: String,
    /// Meta message JSON.
    pub body: String,
    /// Plain-text rendering.
    pub content: String,
    /// Whether it carries media.
    pub has_media: bool,
    /// Our media row.
    pub media_id: Option<String>,
    /// Message time (ms).
    pub sent_at: i64,
    /// Contact's wa_id.
    pub wa_id: Option<String>,
    /// Contact's name.
    pub contact_name: Option<String>,
}

const COLS: &str = "m.id, m.phone_number_id, m.conversation_id, m.wamid, m.direction, m.message_type, m.status, m.body, m.content, m.has_media, m.media_id, m.sent_at, c.wa_id, c.profile_name";
const FROM: &str = "messages m LEFT JOIN contacts c ON c.id = m.contact_id";

fn message(r: &Row) -> crate::Result<StoredMessage> {
    Ok(StoredMessage {
        id: col(r, "id")?,
        phone_number_id: col(r, "phone_number_id")?,
        conversation_id: col(r, "conversation_id")?,
        wamid: col(r, "wamid")?,
        direction: col(r, "direction")?,
        message_type: col(r, "message_type")?,
        status: col(r, "status")?,
        body: col(r, "body")?,
        content: col(r, "content")?,
        has_media: col::<i64>(r, "has_media")? != 0,
        media_id: col(r, "media_id")?,
        sent_at: col(r, "sent_at")?,
        wa_id: col(r, "wa_id")?,
        contact_name: col(r, "profile_name")?,
    })
}

/// One message of the project by (number, wamid).
pub async fn get(
    db: &Db,
    project_id: &str,
    phone_number_id: &str,
    wamid: &str,
) -> crate::Result<Option<StoredMessage>> {
    let sql = format!(
        "SELECT {COLS} FROM {FROM} WHERE m.project_id = $1 AND m.phone_number_id = $2 AND m.wamid = $3"
    );
    let row = crate::sql::query(sql)
        .bind(project_id)
        .bind(phone_number_id)
        .bind(wamid)
        .fetch_optional(db.reader())
        .await?;
    row.as_ref().map(message).transpose()
}

/// Filters for listing messages.
#[derive(Debug, Clone, Default)]
pub struct MessageFilter {
    /// Only this number.
    pub phone_number_id: Option<String>,
    /// Only this conversation.
    pub conversation_id: Option<String>,
    /// `inbound` or `outbound`.
    pub direction: Option<String>,
    /// Current status.
    pub status: Option<String>,
    /// sent_at >= (ms).
    pub since: Option<i64>,
    /// sent_at <= (ms).
    pub until: Option<i64>,
}

/// Lists a project's messages, newest first.
pub async fn list(
    db: &Db,
    project_id: &str,
    filter: &MessageFilter,
    limit: i64,
    cursor: &Cursor,
) -> crate::Result<Page<StoredMessage>> {
    let mut f = Filter::default();
    f.push(Arg::Text(project_id.to_owned()), |p| {
        format!("m.project_id = {p}")
    });
    if let Some(v) = &filter.phone_number_id {
        f.push(Arg::Text(v.clone()), |p| format!("m.phone_number_id = {p}"));
    }
    if let Some(v) = &filter.conversation_id {
        f.push(Arg::Text(v.clone()), |p| format!("m.conversation_id = {p}"));
    }
    if let Some(v) = &filter.direction {
        f.push(Arg::Text(v.clone()), |p| format!("m.direction = {p}"));
    }
    if let Some(v) = &filter.status {
        f.push(Arg::Text(v.clone()), |p| format!("m.status = {p}"));
    }
    if let Some(v) = filter.since {
        f.push(Arg::Int(v), |p| format!("m.sent_at >= {p}"));
    }
    if let Some(v) = filter.until {
        f.push(Arg::Int(v), |p| format!("m.sent_at <= {p}"));
    }
    let order = keyset(&mut f, cursor, "m.sent_at", "m.id");
    let l = f.bind(Arg::Int(limit + 1));
    let sql = format!(
        "SELECT {COLS} FROM {FROM}{} ORDER BY m.sent_at {order}, m.id {order} LIMIT {l}",
        f.where_sql()
    );
    let rows = f.query(sql).fetch_all(db.reader()).await?;
    let items = rows
        .iter()
        .map(message)
        .collect::<crate::Result<Vec<_>>>()?;
    Ok(page(items, limit as usize, cursor, |m| {
        (m.sent_at, m.id.clone())
    }))
}

/// The raw status history of some messages of a number, in the order the statuses happened.
pub async fn statuses(
    db: &Db,
    phone_number_id: &str,
    wamids: &[String],
) -> crate::Result<Vec<(String, String)>> {
    if wamids.is_empty() {
        return Ok(Vec::new());
    }
    let mut f = Filter::default();
    f.push(Arg::Text(phone_number_id.to_owned()), |p| {
        format!("m.phone_number_id = {p}")
    });
    let placeholders: Vec<String> = wamids
        .iter()
        .map(|w| f.bind(Arg::Text(w.clone())))
        .collect();
    f.raw(format!("m.wamid IN ({})", placeholders.join(", ")));
    let sql = format!(
        "SELECT m.wamid, s.raw FROM message_statuses s JOIN messages m ON m.id = s.message_id{} \
         ORDER BY s.status_at, s.received_at, s.id",
        f.where_sql()
    );
    let rows = f.query(sql).fetch_all(db.reader()).await?;
    rows.iter()
        .map(|r| Ok((col(r, "wamid")?, col(r, "raw")?)))
        .collect()
}

/// Records an outbound message whose Graph call is about to run. Fails with a unique
/// violation when another message of the conversation is in flight.
pub async fn begin_send(db: &Db, m: &NewMessage) -> crate::Result<()> {
    let mut conn = db.writer().acquire().await?;
    start_send(&mut conn, m).await
}

/// [`begin_send`] on a connection (inside a caller's transaction).
pub async fn start_send(conn: &mut Conn, m: &NewMessage) -> crate::Result<()> {
    insert_row(conn, m, true).await?;
    Ok(())
}

/// Whether a send of the conversation is in flight.
pub async fn in_flight(conn: &mut Conn, conversation_id: &str) -> crate::Result<bool> {
    let n: i64 = crate::sql::query_scalar(
        "SELECT COUNT(*) FROM messages WHERE conversation_id = $1 AND in_flight = 1",
    )
    .bind(conversation_id)
    .fetch_one(conn)
    .await?;
    Ok(n > 0)
}

/// Ends an in-flight send that never finished (its node died mid-call) so the conversation
/// is not blocked forever; returns whether one was ended.
pub async fn expire_in_flight(
    db: &Db,
    conversation_id: &str,
    started_before: i64,
    now: i64,
) -> crate::Result<bool> {
    let done = crate::sql::query(
        "UPDATE messages SET in_flight = 0, status = 'failed', status_rank = 6, error = 'interrupted: the send did not complete', updated_at = $1 \
         WHERE conversation_id = $2 AND in_flight = 1 AND created_at < $3",
    )
    .bind(now)
    .bind(conversation_id)
    .bind(started_before)
    .execute(db.writer())
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Serialises, until the end of the caller's transaction, the writers that decide which row
/// holds `wamid`: a send taking Meta's answer and a status webhook that may make a stub for
/// it. On PostgreSQL two such transactions would otherwise both see no row, and one of them
/// fail on the unique (phone number, wamid) key; SQLite has a single writer already.
pub async fn lock_wamid(conn: &mut Conn, phone_number_id: &str, wamid: &str) -> crate::Result<()> {
    if conn.is_postgres() {
        crate::sql::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(format!("wamid:{phone_number_id}:{wamid}"))
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// Completes an accepted send: the message takes Meta's wamid. A status webhook that arrived
/// before this (and made a stub under that wamid) is folded in: the stub goes, its statuses
/// stay in the history and move the message forward.
pub async fn finish_send(
    tx: &mut Conn,
    id: &str,
    phone_number_id: &str,
    wamid: &str,
    now: i64,
) -> crate::Result<()> {
    lock_wamid(tx, phone_number_id, wamid).await?;
    let stubs: Vec<String> = crate::sql::query_scalar(
        "DELETE FROM messages WHERE phone_number_id = $1 AND wamid = $2 AND direction = 'outbound' AND message_type = 'unknown' AND id <> $3 \
         RETURNING id",
    )
    .bind(phone_number_id)
    .bind(wamid)
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    for stub in &stubs {
        // The stub's statuses become the message's (it has none: its wamid was `pending.`).
        crate::sql::query("UPDATE message_statuses SET message_id = $1 WHERE message_id = $2")
            .bind(id)
            .bind(stub)
            .execute(&mut *tx)
            .await?;
    }
    crate::sql::query(
        "UPDATE messages SET wamid = $1, in_flight = 0, updated_at = $2 WHERE id = $3",
    )
    .bind(wamid)
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    if stubs.is_empty() {
        // No status came before Meta's answer: the history is empty.
        return Ok(());
    }
    let seen: Vec<String> =
        crate::sql::query_scalar("SELECT status FROM message_statuses WHERE message_id = $1")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
    for status in seen {
        if let Ok(s) = status.parse::<chasqui_core::MessageStatus>() {
            advance_status(tx, phone_number_id, wamid, s.as_str(), s.rank(), now).await?;
        }
    }
    Ok(())
}

/// Records a send that Meta refused: `failed` with Meta's error.
pub async fn fail_send(conn: &mut Conn, id: &str, error: &str, now: i64) -> crate::Result<()> {
    crate::sql::query(
        "UPDATE messages SET in_flight = 0, status = 'failed', status_rank = 6, error = $1, updated_at = $2 WHERE id = $3",
    )
    .bind(error)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Where the send of message `id` stands: its wamid (`pending.<id>` until Meta's answer or a
/// status webhook names it), status and error.
pub async fn send_state(
    conn: &mut Conn,
    id: &str,
) -> crate::Result<Option<(String, String, Option<String>)>> {
    let row = crate::sql::query("SELECT wamid, status, error FROM messages WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.as_ref()
        .map(|r| Ok((col(r, "wamid")?, col(r, "status")?, col(r, "error")?)))
        .transpose()
}

/// Adopts Meta's wamid for a send whose answer was lost (its node died during the call):
/// the status webhook names our message in `biz_opaque_callback_data`. Returns whether the
/// pending message was found and took the wamid.
pub async fn adopt_wamid(
    conn: &mut Conn,
    id: &str,
    phone_number_id: &str,
    wamid: &str,
    now: i64,
) -> crate::Result<bool> {
    let pending = format!("pending.{id}");
    let found: Option<String> = crate::sql::query_scalar(
        "SELECT id FROM messages WHERE id = $1 AND phone_number_id = $2 AND wamid = $3",
    )
    .bind(id)
    .bind(phone_number_id)
    .bind(&pending)
    .fetch_optional(&mut *conn)
    .await?;
    if found.is_none() {
        return Ok(false);
    }
    finish_send(conn, id, phone_number_id, wamid, now).await?;
    Ok(true)
}

/// The stored request body of message `id`.
pub async fn body(conn: &mut Conn, id: &str) -> crate::Result<Option<String>> {
    crate::sql::query_scalar("SELECT body FROM messages WHERE id = $1")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Puts back in flight a send that a proxy request ended as `interrupted` (its node died
/// mid-call) while its workflow had not reconciled it yet; returns whether it did. A unique
/// violation means another send of the conversation is in flight.
pub async fn revive_interrupted(
    conn: &mut Conn,
    id: &str,
    pending_rank: i64,
    now: i64,
) -> crate::Result<bool> {
    let done = crate::sql::query(
        "UPDATE messages SET in_flight = 1, status = 'pending', status_rank = $1, error = NULL, updated_at = $2 \
         WHERE id = $3 AND status = 'failed' AND error LIKE 'interrupted%' AND wamid LIKE 'pending.%'",
    )
    .bind(pending_rank)
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Db;

    fn outbound(id: &str, wamid: &str, message_type: &str) -> NewMessage {
        NewMessage {
            id: id.into(),
            project_id: "p".into(),
            phone_number_id: "n".into(),
            conversation_id: None,
            contact_id: None,
            wamid: wamid.into(),
            direction: "outbound".into(),
            message_type: message_type.into(),
            status: "pending".into(),
            status_rank: 0,
            body: "{}".into(),
            content: String::new(),
            has_media: false,
            media_id: None,
            sent_at: 0,
            created_at: 0,
        }
    }

    /// Seen under load (1 send in ~2,500): a status webhook made a stub for a wamid while the
    /// send that owns it was recording Meta's answer; both saw no row, and the send failed
    /// on the unique key with a 500 although Meta had accepted the message.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_send_taking_its_wamid_waits_for_a_stub_being_made_postgres() {
        let Some(db) = crate::testing::postgres("chasqui_test_wamid").await else {
            return;
        };
        crate::testing::project(&db).await;
        let mut conn = db.writer().acquire().await.expect("conn");
        insert(&mut conn, &outbound("x", "pending.x", "text"))
            .await
            .expect("the send, in flight");
        drop(conn);

        // A status webhook for W is making its stub...
        let mut stub = db.writer().begin().await.expect("begin");
        lock_wamid(&mut stub, "n", "W").await.expect("lock");
        insert(&mut stub, &outbound("s", "W", "unknown"))
            .await
            .expect("stub");
        // ...when Meta's answer naming W reaches the send.
        let sender = db.clone();
        let send = tokio::spawn(async move {
            let mut tx = sender.writer().begin().await?;
            finish_send(&mut tx, "x", "n", "W", 1).await?;
            tx.commit().await?;
            Ok::<_, crate::StoreError>(())
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            !send.is_finished(),
            "the send waits for the stub's transaction"
        );
        stub.commit().await.expect("stub commits");
        send.await.expect("join").expect("the send takes its wamid");

        let holders: Vec<String> =
            crate::sql::query_scalar("SELECT id FROM messages WHERE wamid = 'W'")
                .fetch_all(db.reader())
                .await
                .expect("holders");
        assert_eq!(
            holders,
            vec!["x".to_owned()],
            "the stub folded into the send"
        );
        db.close().await;
    }

    fn status<'a>(id: &'a str, wamid: &'a str, name: &'a str) -> StatusRecord<'a> {
        StatusRecord {
            id,
            phone_number_id: "n",
            wamid,
            status: name,
            status_at: 0,
            raw: "{}",
        }
    }

    async fn history(db: &Db, message_id: &str) -> Vec<String> {
        crate::sql::query_scalar(
            "SELECT status FROM message_statuses WHERE message_id = $1 ORDER BY id",
        )
        .bind(message_id)
        .fetch_all(db.reader())
        .await
        .expect("history")
    }

    /// A status joins its message's history once; a status for an unknown wamid is not
    /// stored until a message holds it; a send taking a stub's wamid takes its history.
    #[tokio::test]
    async fn statuses_join_their_messages_history() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = crate::testing::sqlite(&dir).await;
        crate::testing::project(&db).await;
        let mut conn = db.writer().acquire().await.expect("conn");
        insert(&mut conn, &outbound("a", "A", "text"))
            .await
            .expect("a");
        insert(&mut conn, &outbound("x", "pending.x", "text"))
            .await
            .expect("x");
        for (id, wamid, name, want) in [
            ("1", "A", "sent", Appended::Fresh),
            ("2", "A", "sent", Appended::Seen),
            ("3", "A", "read", Appended::Fresh),
            ("4", "W", "sent", Appended::NoMessage),
        ] {
            let got = append_status(&mut conn, status(id, wamid, name), 5)
                .await
                .expect("append");
            assert_eq!(got, want, "{id}");
        }
        assert_eq!(history(&db, "a").await, ["sent", "read"]);

        // W's statuses came before its send finished: they live on a stub meanwhile.
        insert(&mut conn, &outbound("s", "W", "unknown"))
            .await
            .expect("stub");
        for (id, name) in [("5", "sent"), ("6", "delivered")] {
            let got = append_status(&mut conn, status(id, "W", name), 5)
                .await
                .expect("stub");
            assert_eq!(got, Appended::Fresh);
        }
        finish_send(&mut conn, "x", "n", "W", 9)
            .await
            .expect("finish");
        drop(conn);
        assert_eq!(history(&db, "x").await, ["sent", "delivered"]);
        assert!(history(&db, "s").await.is_empty());
        let (state, holders): (String, i64) = (
            crate::sql::query_scalar("SELECT status FROM messages WHERE id = 'x'")
                .fetch_one(db.reader())
                .await
                .expect("status"),
            crate::sql::query_scalar("SELECT COUNT(*) FROM messages WHERE wamid = 'W'")
                .fetch_one(db.reader())
                .await
                .expect("holders"),
        );
        assert_eq!((state.as_str(), holders), ("delivered", 1));
        let listed = statuses(&db, "n", &["W".into(), "A".into()])
            .await
            .expect("list");
        assert_eq!(listed.len(), 4, "{listed:?}");
    }

    /// A status added to a stub while the send that owns its wamid is taking it over is
    /// moved with the rest: the send waits for the status's transaction.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_status_added_to_a_stub_being_replaced_moves_with_it_postgres() {
        let Some(db) = crate::testing::postgres("chasqui_test_history").await else {
            return;
        };
        crate::testing::project(&db).await;
        let mut conn = db.writer().acquire().await.expect("conn");
        insert(&mut conn, &outbound("x", "pending.x", "text"))
            .await
            .expect("x");
        insert(&mut conn, &outbound("s", "W", "unknown"))
            .await
            .expect("stub");
        drop(conn);

        let mut webhook = db.writer().begin().await.expect("begin");
        let got = append_status(&mut webhook, status("1", "W", "delivered"), 5)
            .await
            .expect("append");
        assert_eq!(got, Appended::Fresh);
        let sender = db.clone();
        let send = tokio::spawn(async move {
            let mut tx = sender.writer().begin().await?;
            finish_send(&mut tx, "x", "n", "W", 9).await?;
            tx.commit().await?;
            Ok::<_, crate::StoreError>(())
        });
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(!send.is_finished(), "the send waits for the status");
        webhook.commit().await.expect("status commits");
        send.await.expect("join").expect("the send takes its wamid");
        assert_eq!(history(&db, "x").await, ["delivered"]);
        let state: String = crate::sql::query_scalar("SELECT status FROM messages WHERE id = 'x'")
            .fetch_one(db.reader())
            .await
            .expect("status");
        assert_eq!(state, "delivered");
        db.close().await;
    }
}
