//! The composer's steps that a message to one conversation and one to every conversation of a
//! post share: a button edit, the check, the preview.

use crate::domain::{
    button_kit::{self, Edited},
    compose::{ComposeForm, FieldErrors, Intent, OutgoingMessage, Rules, Side, Writer},
};

use super::Catalog;

/// The composer as it goes back to the person.
#[derive(Debug, Clone, Default)]
pub struct Draft {
    pub form: ComposeForm,
    pub errors: FieldErrors,
    pub preview: Option<OutgoingMessage>,
    /// The field to focus when no field has a problem (e.g. the link of a button just added).
    pub focus: Option<String>,
    /// A grid that had no room for one more button.
    pub full: Option<Side>,
}

impl Draft {
    pub fn new(form: ComposeForm) -> Self {
        Self {
            form,
            ..Self::default()
        }
    }
}

/// A tap on «افزودن …» or «حذف این دکمه»: the form comes back with the change made
/// (`Err`), nothing checked or sent. Any other submit goes on (`Ok`).
pub fn apply_edit(
    catalog: &Catalog,
    writer: &Writer,
    mut form: ComposeForm,
) -> Result<ComposeForm, Box<Draft>> {
    let Some(edit) = form.edit.take() else {
        return Ok(form);
    };
    let mut draft = Draft::default();
    match button_kit::apply(&mut form, &edit, &catalog.presets, writer) {
        Edited::Done { focus } => draft.focus = Some(focus),
        Edited::Full(side) => draft.full = Some(side),
        Edited::Nothing => {}
    }
    draft.form = form;
    Err(Box::new(draft))
}

/// Checks the message. A form with problems comes back with each beside its field; a preview
/// (or an edit from the confirm step) comes back too; otherwise the message is ready.
pub fn check(
    rules: &Rules,
    writer: &Writer,
    form: ComposeForm,
) -> Result<(OutgoingMessage, ComposeForm), Box<Draft>> {
    match form.parse(writer, rules) {
        Err(errors) => Err(Box::new(Draft {
            errors,
            ..Draft::new(form)
        })),
        Ok(message) if matches!(form.intent, Intent::Preview | Intent::Edit) => {
            let preview = (form.intent == Intent::Preview).then_some(message);
            Err(Box::new(Draft {
                preview,
                ..Draft::new(form)
            }))
        }
        Ok(message) => Ok((message, form)),
    }
}
