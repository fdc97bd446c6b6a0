//! What the features declared (see `features`), collected once at start-up with the core's own
//! entries, so that the composer's presets, the entry link's page dispatch and erasure read one
//! list and no central list is edited when a feature is added.

use serde_json::{Map, Value};

use crate::{
    db::erasure::UserTable,
    domain::button_kit::{Audience, PRESETS, Preset},
};

/// A page one of our buttons can open: a tap on a button whose data says `kc_page=<key>`
/// leads there.
#[derive(Clone, Copy)]
pub struct ButtonPage {
    pub key: &'static str,
    /// How the composer names what tapping does («… باز شود»).
    pub title: &'static str,
    /// The path to open, from the tapped button's data (which carries `kc_message` and the
    /// button's own pairs); `None` when the data does not name one.
    pub open: fn(&Map<String, Value>) -> Option<String>,
}

/// A link the composer offers (e.g. a feature's edit page), to those it is for.
#[derive(Debug)]
pub struct PageLink {
    pub title: &'static str,
    pub path: &'static str,
    pub audience: Audience,
}

#[derive(Default)]
pub struct Catalog {
    pub presets: Vec<&'static Preset>,
    pub pages: Vec<ButtonPage>,
    pub links: Vec<&'static PageLink>,
    pub tables: Vec<&'static UserTable>,
}

impl Catalog {
    /// The core's own entries: its presets and its tables. (The core's message page is routed
    /// by `entry` itself.)
    pub fn core() -> Self {
        Self {
            presets: PRESETS.iter().collect(),
            pages: Vec::new(),
            links: Vec::new(),
            tables: crate::db::erasure::CORE_TABLES.iter().collect(),
        }
    }

    pub fn page(&self, key: &str) -> Option<&ButtonPage> {
        self.pages.iter().find(|p| p.key == key)
    }

    /// The page keys a composed button may name.
    pub fn page_keys(&self) -> Vec<&'static str> {
        self.pages.iter().map(|p| p.key).collect()
    }
}
