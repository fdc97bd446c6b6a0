//! One askama struct per page, and the one place that turns a template into a response.

use askama::Template;
use axum::response::{Html, IntoResponse, Response};

use crate::web::ASSET_VERSION;

/// Renders a page; a template error becomes a plain 500 and is logged, never shown.
pub fn render_page(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering a page failed");
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "خطای غیرمنتظره",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub asset_version: &'static str,
    pub title: String,
    pub message: String,
}

impl ErrorPage {
    pub fn new(title: &str, message: &str) -> Self {
        Self {
            asset_version: ASSET_VERSION,
            title: title.into(),
            message: message.into(),
        }
    }
}

#[derive(Template)]
#[template(path = "pages/home.html")]
pub struct HomePage {
    pub asset_version: &'static str,
    pub post_token: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/welcome.html")]
pub struct WelcomePage {
    pub asset_version: &'static str,
    pub conversation_id: Option<String>,
    pub post_token: Option<String>,
    pub user_side: Option<String>,
    pub source: String,
}
