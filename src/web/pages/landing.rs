//! The landing page of a chat visit: connect, or carry on.

use askama::Template;

use crate::domain::{ConversationId, PostToken, UserSide};

#[derive(Template)]
#[template(path = "pages/landing.html")]
pub struct LandingPage {
    pub conversation_id: ConversationId,
    pub post_token: Option<PostToken>,
    /// `seller` or `buyer`.
    pub side: Option<&'static str>,
    pub connected: bool,
    /// The post's owner may also message every conversation of the post.
    pub seller: bool,
}

impl LandingPage {
    pub fn new(
        conversation_id: ConversationId,
        post_token: Option<PostToken>,
        side: Option<UserSide>,
        connected: bool,
    ) -> Self {
        Self {
            seller: side == Some(UserSide::Seller) && post_token.is_some(),
            side: side.map(UserSide::as_str),
            conversation_id,
            post_token,
            connected,
        }
    }
}

crate::pages!(LandingPage);
