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
