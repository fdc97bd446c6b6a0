//! The «هنوز موجود است؟» button (a `get_dynamic_action`): what the add-on answers when a buyer
//! taps it, in the seller's words or ours.

use serde::Deserialize;

/// What a seller may write for one answer; Divar shows it as a short notice.
pub const MAX_ANSWER_CHARS: usize = 200;

/// Our words, until the seller writes their own.
pub const DEFAULT_AVAILABLE: &str = "بله، این آگهی هنوز موجود است. در همین گفت‌وگو پیام بدهید.";
pub const DEFAULT_REMOVED: &str = "متأسفیم، این آگهی دیگر موجود نیست.";
/// When Divar does not tell the add-on of this post's removal (its owner has not connected the
/// post with `USER_POSTS_GET`), we do not claim to know.
pub const UNKNOWN: &str =
    "این را از فروشنده در همین گفت‌وگو بپرسید؛ صفحهٔ آگهی را هم می‌توانید ببینید.";

/// The two answers: while the post is on Divar, and once Divar reported it removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wording {
    pub available: String,
    pub removed: String,
}

impl Default for Wording {
    fn default() -> Self {
        Self {
            available: DEFAULT_AVAILABLE.into(),
            removed: DEFAULT_REMOVED.into(),
        }
    }
}

/// The seller's form, as typed. An empty field means "use the add-on's words".
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WordingForm {
    #[serde(default)]
    pub available: String,
    #[serde(default)]
    pub removed: String,
}

/// What is wrong with one field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WordingProblem {
    TooLong,
}

/// The problem of each field, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordingErrors {
    pub available: Option<WordingProblem>,
    pub removed: Option<WordingProblem>,
}

impl WordingForm {
    /// The form of stored (or default) words, for editing them.
    pub fn of(wording: &Wording) -> Self {
        Self {
            available: wording.available.clone(),
            removed: wording.removed.clone(),
        }
    }
}

impl WordingForm {
    /// Both fields left empty: the seller takes back their own words.
    pub fn is_empty(&self) -> bool {
        self.available.trim().is_empty() && self.removed.trim().is_empty()
    }
}

impl TryFrom<&WordingForm> for Wording {
    type Error = WordingErrors;

    fn try_from(form: &WordingForm) -> Result<Self, WordingErrors> {
        let check = |text: &str| {
            (text.trim().chars().count() > MAX_ANSWER_CHARS).then_some(WordingProblem::TooLong)
        };
        let errors = WordingErrors {
            available: check(&form.available),
            removed: check(&form.removed),
        };
        if errors != WordingErrors::default() {
            return Err(errors);
        }
        let or = |text: &str, default: &str| match text.trim() {
            "" => default.to_string(),
            text => text.to_string(),
        };
        Ok(Self {
            available: or(&form.available, DEFAULT_AVAILABLE),
            removed: or(&form.removed, DEFAULT_REMOVED),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_fields_take_our_words_and_long_ones_are_refused() {
        let form = WordingForm {
            available: "  هست، بیایید  ".into(),
            removed: String::new(),
        };
        let wording = Wording::try_from(&form).unwrap();
        assert_eq!(wording.available, "هست، بیایید");
        assert_eq!(wording.removed, DEFAULT_REMOVED);
        let long = WordingForm {
            available: "ا".repeat(MAX_ANSWER_CHARS + 1),
            removed: "ب".into(),
        };
        let errors = Wording::try_from(&long).unwrap_err();
        assert_eq!(errors.available, Some(WordingProblem::TooLong));
        assert_eq!(errors.removed, None);
    }
}
