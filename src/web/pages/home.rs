//! The panel's fallback page: Divar opens it directly, with at most a post token and no user.

use askama::Template;

use crate::domain::PostToken;

#[derive(Template)]
#[template(path = "pages/home.html")]
pub struct HomePage {
    pub post_token: Option<PostToken>,
}

crate::pages!(HomePage);
