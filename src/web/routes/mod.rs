pub mod broadcast;
pub mod compose;
pub mod consent;
pub mod divar;
pub mod health;
pub mod webview;
