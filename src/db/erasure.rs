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
    /// How long a row is kept when nobody asks for it to be erased.
    pub keep: Keep,
}

/// How long rows are kept. Divar's policy: people's data no longer than needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Until the person is erased, or by the core's own rules (`db::purge`).
    UntilErased,
    /// `days` after the time in `column` (epoch ms); the purge task deletes older rows.
    Days { column: &'static str, days: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnErase {
    /// The rows are the person's: delete them.
    DeleteRow,
    /// The rows are shared with someone else (a conversation has two sides): clear the column.
    ClearColumn,
}

const fn delete(table: &'static str) -> UserTable {
    UserTable {
        table,
        user_column: "user_id",
        on_erase: OnErase::DeleteRow,
        keep: Keep::UntilErased,
    }
}

/// The core's tables. Queue rows also go with their message or broadcast (`on delete cascade`),
/// and a spent link names no one.
pub const CORE_TABLES: &[UserTable] = &[
    delete("grants"),
    delete("outbox"),
    delete("messages"),
    delete("broadcasts"),
    delete("session_inits"),
    delete("templates"),
    delete("web_sessions"),
    delete("availability_answers"),
    UserTable {
        table: "conversations",
        user_column: "seller_user_id",
        on_erase: OnErase::ClearColumn,
        keep: Keep::UntilErased,
    },
    UserTable {
        table: "conversations",
        user_column: "buyer_user_id",
        on_erase: OnErase::ClearColumn,
        keep: Keep::UntilErased,
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
    tx.commit().await?;
    Ok(erased)
}

/// Deletes the rows of `tables` kept for a number of days that are older than that at `now`;
/// returns how many. Safe to repeat, so every replica's purge may run it.
pub async fn purge_expired(db: &Db, tables: &[&UserTable], now: i64) -> anyhow::Result<u64> {
    let mut purged = 0;
    for t in tables {
        let Keep::Days { column, days } = t.keep else {
            continue;
        };
        let before = now - i64::from(days) * 86_400_000;
        // Identifiers come from `UserTable` declarations in code, never from input.
        let sql = format!("delete from {} where {column} < $1", t.table);
        let done = sqlx::query(&sql).bind(before).execute(db.pool()).await?;
        purged += done.rows_affected();
    }
    Ok(purged)
}
