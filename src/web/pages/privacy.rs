//! The privacy page: what the add-on keeps about people, why, and for how long, with every
//! period read from the running settings, so the page cannot drift from what the purge does.
//! Divar's data policy asks for exactly this, publicly (docs/divar-platform.md, *Policies*).

use std::time::Duration;

use askama::Template;

use crate::{config::Settings, web::session::SESSION_IDLE};

use super::persian_digits;

/// What the page shows when the operator has not named themselves (only possible off a public
/// https address: `serve` refuses to start there without both).
const UNNAMED_OPERATOR: &str = "گردانندهٔ این افزونه (نامش هنوز تنظیم نشده)";

#[derive(Template)]
#[template(path = "pages/privacy.html")]
pub struct PrivacyPage {
    pub operator: String,
    pub contact: Option<String>,
    /// Each period in Persian digits, with its unit.
    pub clicks: String,
    pub message_bodies: String,
    pub finished_sends: String,
    pub conversations: String,
    pub session_idle: String,
    pub grants: String,
    /// How often the purge runs: every period above may run over by up to this.
    pub purge_every: String,
    /// Divar tells the add-on when someone withdraws its access (both consent extras on).
    pub erased_on_revocation: bool,
}

impl PrivacyPage {
    pub fn new(settings: &Settings) -> Self {
        let retention = &settings.retention;
        Self {
            operator: settings
                .operator
                .name
                .clone()
                .unwrap_or_else(|| UNNAMED_OPERATOR.into()),
            contact: settings.operator.contact.clone(),
            clicks: hours(retention.clicks),
            message_bodies: days(retention.message_bodies),
            finished_sends: days(retention.finished_sends),
            conversations: days(retention.conversations),
            session_idle: minutes(SESSION_IDLE),
            grants: days(kenar::oauth::REFRESH_TOKEN_LIFETIME),
            purge_every: every(retention.purge_every),
            erased_on_revocation: settings.consent.user_id && settings.consent.revocation_notice,
        }
    }
}

fn hours(period: Duration) -> String {
    persian_digits(&format!("{} ساعت", period.as_secs() / 3600))
}

fn days(period: Duration) -> String {
    persian_digits(&format!("{} روز", period.as_secs() / 86_400))
}

/// The purge interval in the largest whole unit.
fn every(period: Duration) -> String {
    let secs = period.as_secs();
    if secs.is_multiple_of(3600) {
        hours(period)
    } else if secs.is_multiple_of(60) {
        minutes(period)
    } else {
        persian_digits(&format!("{secs} ثانیه"))
    }
}

fn minutes(period: Duration) -> String {
    persian_digits(&format!("{} دقیقه", period.as_secs() / 60))
}

crate::pages!(PrivacyPage);
