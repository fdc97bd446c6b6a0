//! Erasure covers every table that names a Divar user: the check reads the schema itself, so a
//! table added without declaring it (`UserTable`, in its feature or in `db::erasure`) fails here.

use sqlx::Row;

use crate::helpers::*;

/// `(table, column)` of every column that names a Divar user, by the schema's convention: a
/// column called `user_id` or ending in `_user_id`.
async fn user_columns(app: &TestApp) -> Vec<(String, String)> {
    let rows = match app.test_db.postgres {
        Some(_) => sqlx::query(
            "select table_name::text as t, column_name::text as c from information_schema.columns
                 where table_schema = current_schema()",
        )
        .fetch_all(app.db.pool())
        .await,
        None => {
            sqlx::query(
                "select m.name as t, p.name as c from sqlite_master m, pragma_table_info(m.name) p
                 where m.type = 'table'",
            )
            .fetch_all(app.db.pool())
            .await
        }
    }
    .unwrap();
    let mut columns: Vec<(String, String)> = rows
        .iter()
        .map(|r| (r.try_get("t").unwrap(), r.try_get("c").unwrap()))
        .filter(|(_, c): &(String, String)| c == "user_id" || c.ends_with("_user_id"))
        .collect();
    columns.sort();
    columns
}

async fn every_table_naming_a_user_is_erased(engine: Engine) {
    let app = spawn_app(engine).await;
    let declared: Vec<(String, String)> = kenar_chat::features::catalog()
        .tables
        .iter()
        .map(|t| (t.table.to_string(), t.user_column.to_string()))
        .collect();
    let found = user_columns(&app).await;
    assert!(
        found.len() >= 8,
        "the schema names users in at least the core's tables: {found:?}"
    );
    let missed: Vec<_> = found.iter().filter(|c| !declared.contains(c)).collect();
    assert!(
        missed.is_empty(),
        "erasure does not cover {missed:?}: declare each as a UserTable (its feature's `tables`, or db::erasure::CORE_TABLES)"
    );
}
crate::both_engines!(user_tables, every_table_naming_a_user_is_erased);

/// A table kept for a number of days loses its older rows at each purge; others keep theirs.
async fn rows_kept_for_days_are_purged_after_them(engine: Engine) {
    use kenar_chat::db::erasure::{Keep, OnErase, UserTable, purge_expired};
    let app = spawn_app(engine).await;
    sqlx::query("create table notes (note_id text primary key, user_id text not null, created_at bigint not null)")
        .execute(app.db.pool())
        .await
        .unwrap();
    const DAY: i64 = 86_400_000;
    let now = 100 * DAY;
    for (id, age) in [("old", 8 * DAY), ("edge", 7 * DAY), ("new", DAY)] {
        sqlx::query("insert into notes (note_id, user_id, created_at) values ($1, 'u-1', $2)")
            .bind(id)
            .bind(now - age)
            .execute(app.db.pool())
            .await
            .unwrap();
    }
    let notes = UserTable {
        table: "notes",
        user_column: "user_id",
        on_erase: OnErase::DeleteRow,
        keep: Keep::Days {
            column: "created_at",
            days: 7,
        },
    };
    assert_eq!(purge_expired(&app.db, &[&notes], now).await.unwrap(), 1);
    assert_eq!(
        count(&app, "notes").await,
        2,
        "seven days old is not past seven days"
    );
    let forever = UserTable {
        keep: Keep::UntilErased,
        ..notes
    };
    assert_eq!(
        purge_expired(&app.db, &[&forever], now + 30 * DAY)
            .await
            .unwrap(),
        0
    );
}
crate::both_engines!(kept_days, rows_kept_for_days_are_purged_after_them);
