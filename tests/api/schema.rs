//! The migrations bring both engines to one schema: a fresh SQLite database and a fresh
//! PostgreSQL one have the same tables, columns (name, nullability, type) and indexes.

use std::collections::BTreeSet;

use kenar_chat::db::{Backend, Db};
use sqlx::Row;

use crate::helpers::*;

/// One column as both engines describe it: table, name, `not null`, type.
type Column = (String, String, bool, String);

/// The declared type, as both engines name it (PostgreSQL spells out what SQLite keeps as
/// written).
fn normalized(data_type: &str) -> String {
    match data_type.to_ascii_lowercase().as_str() {
        "int8" | "bigint" => "bigint".into(),
        "int4" | "int" | "integer" => "integer".into(),
        "bool" | "boolean" => "boolean".into(),
        "character varying" | "varchar" => "varchar".into(),
        other => other.into(),
    }
}

async fn columns(db: &Db) -> BTreeSet<Column> {
    let sql = match db.backend() {
        Backend::Postgres => {
            "select table_name::text as table_name, column_name::text as column_name,
                 cast(case when is_nullable = 'NO' then 1 else 0 end as bigint) as not_null,
                 data_type::text as data_type
             from information_schema.columns
             where table_schema = current_schema() and table_name <> '_sqlx_migrations'"
        }
        Backend::Sqlite => {
            "select m.name as table_name, c.name as column_name, c.\"notnull\" as not_null,
                 c.type as data_type
             from sqlite_master m join pragma_table_info(m.name) c
             where m.type = 'table' and m.name not like 'sqlite_%' and m.name <> '_sqlx_migrations'"
        }
    };
    sqlx::query(sql)
        .fetch_all(db.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (
                row.try_get("table_name").unwrap(),
                row.try_get("column_name").unwrap(),
                row.try_get::<i64, _>("not_null").unwrap() == 1,
                normalized(&row.try_get::<String, _>("data_type").unwrap()),
            )
        })
        .collect()
}

/// The indexes the migrations create by name (not those behind a primary key or `unique`,
/// which each engine names its own way), with their tables.
async fn indexes(db: &Db) -> BTreeSet<(String, String)> {
    let sql = match db.backend() {
        Backend::Postgres => {
            "select i.indexname::text as name, i.tablename::text as table_name
             from pg_indexes i
             where i.schemaname = current_schema() and i.tablename <> '_sqlx_migrations'
               and not exists (select 1 from pg_constraint c where c.conname = i.indexname)"
        }
        Backend::Sqlite => {
            "select name, tbl_name as table_name from sqlite_master
             where type = 'index' and sql is not null"
        }
    };
    sqlx::query(sql)
        .fetch_all(db.pool())
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (
                row.try_get("name").unwrap(),
                row.try_get("table_name").unwrap(),
            )
        })
        .collect()
}

async fn migrated(engine: Engine) -> (Db, TestDb) {
    let test_db = test_db(engine).await;
    let db = Db::connect(&test_db.url).await.unwrap();
    db.migrate().await.unwrap();
    (db, test_db)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_engines_reach_the_same_schema() {
    let (sqlite, _sqlite_db) = migrated(Engine::Sqlite).await;
    let (postgres, _postgres_db) = migrated(Engine::Postgres).await;
    let sqlite_columns = columns(&sqlite).await;
    assert!(
        sqlite_columns.len() > 50,
        "the query sees the schema: {sqlite_columns:?}"
    );
    let postgres_columns = columns(&postgres).await;
    assert_eq!(
        sqlite_columns
            .difference(&postgres_columns)
            .collect::<Vec<_>>(),
        Vec::<&Column>::new(),
        "columns only SQLite has (or has otherwise)"
    );
    assert_eq!(
        postgres_columns
            .difference(&sqlite_columns)
            .collect::<Vec<_>>(),
        Vec::<&Column>::new(),
        "columns only PostgreSQL has (or has otherwise)"
    );
    let sqlite_indexes = indexes(&sqlite).await;
    assert!(!sqlite_indexes.is_empty());
    assert_eq!(sqlite_indexes, indexes(&postgres).await);
}

/// PostgreSQL's outbox keeps room on its pages (`Db::migrate`, `tune_storage`): set on a fresh
/// database beside an option of its own, and a second start, which finds it set, alters nothing
/// (the table's catalogue row keeps its version).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_outbox_keeps_room_for_leases() {
    let (db, _guard) = migrated(Engine::Postgres).await;
    let options = || async {
        sqlx::query_as::<_, (Option<String>, String)>(
            "select array_to_string(reloptions, ','), xmin::text from pg_class
             where oid = 'outbox'::regclass",
        )
        .fetch_one(db.pool())
        .await
        .unwrap()
    };
    assert_eq!(options().await.0.as_deref(), Some("fillfactor=50"));
    sqlx::query("alter table outbox set (autovacuum_vacuum_scale_factor = 0.1)")
        .execute(db.pool())
        .await
        .unwrap();
    let (before, version) = options().await;
    db.migrate().await.unwrap();
    assert_eq!(options().await, (before, version));
}
