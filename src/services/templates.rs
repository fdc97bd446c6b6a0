//! A person's saved drafts of the composer, to start a message from.

use std::collections::HashMap;

use crate::domain::{
    UserId,
    compose::{ComposeForm, FieldErrors, Problem, Writer},
};

use super::Deps;

/// A person's saved templates at most, and the size of one: drafts of short chat messages.
pub const MAX_TEMPLATES_PER_USER: i64 = 50;
pub const MAX_TEMPLATE_BYTES: usize = 16 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSummary {
    pub id: String,
    pub name: String,
}

pub async fn list(deps: &Deps, user: &UserId) -> anyhow::Result<Vec<TemplateSummary>> {
    Ok(crate::db::templates::list(&deps.db, user)
        .await?
        .into_iter()
        .map(|t| TemplateSummary {
            id: t.template_id,
            name: t.name,
        })
        .collect())
}

/// The person's own template as a composer form; `None` for anyone else's or a missing one.
pub async fn load(deps: &Deps, user: &UserId, id: &str) -> anyhow::Result<Option<ComposeForm>> {
    let Some(template) = crate::db::templates::find(&deps.db, id, user).await? else {
        return Ok(None);
    };
    let fields: HashMap<String, String> = serde_json::from_str(&template.draft)?;
    Ok(Some(ComposeForm::from_fields(&fields)))
}

/// Saves the composer's draft under its name. The composer's own checks apply, so a template
/// always makes a message; problems come back beside their fields.
pub async fn save(
    deps: &Deps,
    writer: &Writer,
    form: &ComposeForm,
) -> anyhow::Result<Result<(), FieldErrors>> {
    let mut errors = FieldErrors::new();
    let name = form
        .template_name()
        .map_err(|problem| errors.insert("template_name".into(), problem))
        .ok();
    if let Err(problems) = form.parse(writer, &deps.form_rules()) {
        errors.extend(problems);
    }
    let draft = serde_json::to_string(&form.fields().into_iter().collect::<HashMap<_, _>>())?;
    if errors.is_empty() && draft.len() > MAX_TEMPLATE_BYTES {
        errors.insert("template_name".into(), Problem::TemplateTooLarge);
    }
    let (Some(name), true) = (name, errors.is_empty()) else {
        return Ok(Err(errors));
    };
    let saved = crate::db::templates::create(
        &deps.db,
        &writer.user,
        &name,
        &draft,
        MAX_TEMPLATES_PER_USER,
        deps.now(),
    )
    .await?;
    if saved.is_none() {
        errors.insert("template_name".into(), Problem::TemplatesFull);
        return Ok(Err(errors));
    }
    Ok(Ok(()))
}

/// Deletes the person's own template; false when there was none of theirs.
pub async fn delete(deps: &Deps, user: &UserId, id: &str) -> anyhow::Result<bool> {
    crate::db::templates::delete(&deps.db, id, user).await
}
