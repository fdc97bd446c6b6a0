//! The post owner's page for the «هنوز موجود است؟» button: the two answers buyers get when they
//! tap it, while the post is on Divar and once it is removed.

use askama::Template;

use crate::domain::{
    availability::{MAX_ANSWER_CHARS, WordingErrors, WordingForm, WordingProblem},
    persian_digits,
};

fn said(problem: Option<WordingProblem>) -> Option<String> {
    problem.map(|WordingProblem::TooLong| {
        persian_digits(&format!("پاسخ نباید بیشتر از {MAX_ANSWER_CHARS} حرف باشد."))
    })
}

#[derive(Template)]
#[template(path = "pages/availability.html")]
pub struct AvailabilityPage {
    pub available: String,
    pub removed: String,
    pub available_error: Option<String>,
    pub removed_error: Option<String>,
    pub max: usize,
    /// Just saved.
    pub saved: bool,
}

impl AvailabilityPage {
    /// The form as typed (or as stored), with what is wrong beside each field.
    pub fn new(form: WordingForm, errors: WordingErrors, saved: bool) -> Self {
        Self {
            available: form.available,
            removed: form.removed,
            available_error: said(errors.available),
            removed_error: said(errors.removed),
            max: MAX_ANSWER_CHARS,
            saved,
        }
    }
}

crate::pages!(AvailabilityPage);
