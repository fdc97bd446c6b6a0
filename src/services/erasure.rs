//! Forgetting a person: every table the core and the features declared with a column naming a
//! Divar user (`Catalog::tables`) gives up that user's rows, in one transaction.

use crate::{db, domain::UserId};

use super::Deps;

/// Deletes (or clears) everything kept about `user`. Running it again changes nothing.
pub async fn erase_user(deps: &Deps, user: &UserId) -> anyhow::Result<db::erasure::Erased> {
    db::erasure::erase(&deps.db, &deps.catalog.tables, user).await
}
