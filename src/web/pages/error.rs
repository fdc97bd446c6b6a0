//! The error page: a title and what to do, in Persian (the words are in `web::error`).

use askama::Template;

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub title: &'static str,
    pub message: String,
}

crate::pages!(ErrorPage);
