//! Dynamic `WHERE` clauses with `$N` placeholders, and opaque keyset cursors.

pub(crate) use crate::sql::Arg;
use crate::sql::{Col, Query, Row};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

/// A conjunction of conditions and their arguments.
#[derive(Debug, Default)]
pub(crate) struct Filter {
    clauses: Vec<String>,
    args: Vec<Arg>,
}

impl Filter {
    /// Adds a bound value and returns its placeholder.
    pub(crate) fn bind(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    /// Adds a condition; `clause` receives the placeholder of `arg`.
    pub(crate) fn push(&mut self, arg: Arg, clause: impl FnOnce(&str) -> String) {
        let placeholder = self.bind(arg);
        self.clauses.push(clause(&placeholder));
    }

    /// Adds a condition with no argument or with placeholders already bound.
    pub(crate) fn raw(&mut self, clause: String) {
        self.clauses.push(clause);
    }

    /// ` WHERE a AND b` (or nothing).
    pub(crate) fn where_sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// Binds every argument to a query built from `sql`.
    pub(crate) fn query(&self, sql: String) -> Query {
        let mut query = crate::sql::query(sql);
        for arg in &self.args {
            query = query.bind(arg.clone());
        }
        query
    }
}

/// A page of rows from a keyset-paged list, newest first.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The rows.
    pub items: Vec<T>,
    /// Cursor of the first row (for `before`).
    pub before: Option<String>,
    /// Cursor of the last row when more rows follow (for `after`).
    pub after: Option<String>,
    /// Whether a previous page exists (the request had a cursor).
    pub has_previous: bool,
}

/// Encodes a keyset position.
pub fn encode_cursor(sort: i64, id: &str) -> String {
    B64.encode(format!("{sort}|{id}"))
}

/// Decodes a keyset position; `None` when the cursor is not one of ours.
pub fn decode_cursor(cursor: &str) -> Option<(i64, String)> {
    let raw = String::from_utf8(B64.decode(cursor).ok()?).ok()?;
    let (sort, id) = raw.split_once('|')?;
    Some((sort.parse().ok()?, id.to_owned()))
}

/// Direction of a keyset page request.
#[derive(Debug, Clone)]
pub enum Cursor {
    /// First page.
    Start,
    /// Rows after (older than) this position.
    After(i64, String),
    /// Rows before (newer than) this position.
    Before(i64, String),
}

/// Builds a page from rows fetched with `limit + 1`, where `key` gives each row's position.
pub(crate) fn page<T>(
    mut items: Vec<T>,
    limit: usize,
    cursor: &Cursor,
    key: impl Fn(&T) -> (i64, String),
) -> Page<T> {
    let more = items.len() > limit;
    items.truncate(limit);
    let (has_next, has_previous) = match cursor {
        Cursor::Start => (more, false),
        Cursor::After(..) => (more, true),
        // Rows newer than the cursor were fetched oldest first; the cursor's row follows them.
        Cursor::Before(..) => {
            items.reverse();
            (true, more)
        }
    };
    let encode = |row: &T| {
        let (sort, id) = key(row);
        encode_cursor(sort, &id)
    };
    Page {
        before: items.first().map(encode),
        after: if has_next {
            items.last().map(encode)
        } else {
            None
        },
        has_previous,
        items,
    }
}

/// Adds the keyset condition for a newest-first list ordered by (`sort_col`, `id_col`).
pub(crate) fn keyset(
    filter: &mut Filter,
    cursor: &Cursor,
    sort_col: &str,
    id_col: &str,
) -> &'static str {
    match cursor {
        Cursor::Start => "DESC",
        Cursor::After(sort, id) => {
            let s = filter.bind(Arg::Int(*sort));
            let i = filter.bind(Arg::Text(id.clone()));
            filter.raw(format!(
                "({sort_col} < {s} OR ({sort_col} = {s} AND {id_col} < {i}))"
            ));
            "DESC"
        }
        Cursor::Before(sort, id) => {
            let s = filter.bind(Arg::Int(*sort));
            let i = filter.bind(Arg::Text(id.clone()));
            filter.raw(format!(
                "({sort_col} > {s} OR ({sort_col} = {s} AND {id_col} > {i}))"
            ));
            "ASC"
        }
    }
}

/// Reads a column, turning a type mismatch into a storage error.
pub(crate) fn col<T: Col>(row: &Row, name: &str) -> crate::Result<T> {
    row.get(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode_cursor(1_780_000_000_000, "0194-abc");
        assert_eq!(
            decode_cursor(&c),
            Some((1_780_000_000_000, "0194-abc".to_owned()))
        );
        assert_eq!(decode_cursor("!!"), None);
        assert_eq!(decode_cursor(&B64.encode("x|y")), None);
    }
}
