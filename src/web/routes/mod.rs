pub mod divar;
pub mod health;
pub mod webview;
