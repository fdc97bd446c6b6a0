//! Forgetting a person. Every table that holds a column naming a Divar user declares it as a
//! [`UserTable`] (the core's below, a feature's in its module); erasure walks the declarations,
//! so a new table is covered by declaring it, and the revocation test fails on one that is not.

use super::Db;
use crate::domain::UserId;

/// A table with a column that names a Divar user (`user_id` or `<role>_user_id`).
#[derive(Debug)]
pub struct UserTable {
    pub table: &'static str,
    pub user_column: &'static str,
    pub on_erase: OnErase,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnErase {
    /// The rows are the person's: delete them.
    DeleteRow,
    /// The rows are shared with someone else (a conversation has two sides): clear the column.
    ClearColumn,
}

/// The core's tables. Queue rows go with their message or broadcast, and a spent link names no
/// one.
pub const CORE_TABLES: &[UserTable] = &[
    UserTable {
        table: "grants",
        user_column: "user_id",
        on_erase: OnErase::DeleteRow,
    },
    UserTable {
        table: "messages",
        user_column: "user_id",
        on_erase: OnErase::DeleteRow,
    },
    UserTable {
        table: "broadcasts",
        user_column: "user_id",
        on_erase: OnErase::DeleteRow,
    },
    UserTable {
        table: "session_inits",
        user_column: "user_id",
        on_erase: OnErase::DeleteRow,
    },
    UserTable {
        table: "templates",
        user_column: "user_id",
        on_erase: OnErase::DeleteRow,
    },
    UserTable {
        table: "conversations",
        user_column: "seller_id",
        on_erase: OnErase::ClearColumn,
    },
    UserTable {
        table: "conversations",
        user_column: "buyer_id",
        on_erase: OnErase::ClearColumn,
    },
];

/// Rows deleted or cleared, per `table.column`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased(pub Vec<(String, u64)>);

/// Deletes (or clears) every row of `tables` that names `user`, in one transaction. Running it
/// again changes nothing.
pub async fn erase(db: &Db, tables: &[&UserTable], user: &UserId) -> anyhow::Result<Erased> {
    let mut tx = db.pool().begin().await?;
    let mut erased = Erased::default();
    // Queue rows and spent-link records of what is deleted go first (they reference it).
    for sql in [
        "delete from outbox where message_id in (select message_id from messages where user_id = $1)",
        "delete from outbox where broadcast_id in (select broadcast_id from broadcasts where user_id = $1)",
        "delete from entry_links where session_init_id in
             (select session_init_id from session_inits where user_id = $1)",
    ] {
        sqlx::query(sql).bind(user).execute(&mut *tx).await?;
    }
    for t in tables {
        // Identifiers come from `UserTable` declarations in code, never from input.
        let sql = match t.on_erase {
            OnErase::DeleteRow => format!("delete from {} where {} = $1", t.table, t.user_column),
            OnErase::ClearColumn => format!(
                "update {0} set {1} = null where {1} = $1",
                t.table, t.user_column
            ),
        };
        let n = sqlx::query(&sql)
            .bind(user)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        erased.0.push((format!("{}.{}", t.table, t.user_column), n));
    }
    // A web session names its visitor inside its JSON (`"user_id":"…"`, written by serde).
    let needle = format!("\"user_id\":{}", serde_json::to_string(user.as_str())?);
    let pattern = format!("%{}%", escape_like(&needle));
    let n = sqlx::query("delete from web_sessions where data like $1 escape '\\'")
        .bind(pattern)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    erased.0.push(("web_sessions".into(), n));
    tx.commit().await?;
    Ok(erased)
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_")
}
