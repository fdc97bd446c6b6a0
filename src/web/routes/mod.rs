pub mod broadcast;
pub mod compose;
pub mod consent;
pub mod divar;
pub mod health;
pub mod messages;
pub mod templates;
pub mod webview;
