//! Features: the place to add to the add-on. Every other file in this folder (or folder with a
//! `mod.rs`) is a feature, and `build.rs` lists them in [`ALL`]: adding one edits no central
//! list. A feature is a slice through the layers (its routes and handlers, its use case, its
//! SQL, its pages) that declares, in its `FEATURE`, what the rest of the add-on must know:
//!
//! - its page routes, served behind the same session and forged-post layers as the core's;
//! - the page its buttons open (`kc_page=<key>`), which the entry link dispatches to and the
//!   composer offers as «… باز شود»;
//! - its presets (ready-made buttons, with their data and audience) for the composer;
//! - links the composer shows (e.g. to the feature's edit page);
//! - its tables with the column that names a Divar user, which erasure covers.
//!
//! `startup` collects the declarations ([`catalog`], [`page_routes`]); nothing below this module
//! imports it. See docs/fork.md for a walk-through.

use crate::{
    db::erasure::UserTable,
    domain::button_kit::Preset,
    services::catalog::{ButtonPage, Catalog, PageLink},
    web::routes::Routes,
};

/// What a feature adds.
pub struct Feature {
    /// Its page routes (empty: `Routes::new`).
    pub routes: fn() -> Routes,
    /// The page a tap on one of its buttons opens.
    pub page: Option<ButtonPage>,
    pub presets: &'static [Preset],
    pub links: &'static [PageLink],
    pub tables: &'static [UserTable],
}

include!(concat!(env!("OUT_DIR"), "/features.rs"));

/// The core's declarations and every feature's, for the use cases.
pub fn catalog() -> Catalog {
    let mut catalog = Catalog::core();
    for feature in ALL {
        catalog.pages.extend(feature.page);
        catalog.presets.extend(feature.presets);
        catalog.links.extend(feature.links);
        catalog.tables.extend(feature.tables);
    }
    catalog
}

/// Every page route: the core's and the features'.
pub fn page_routes() -> Routes {
    let extra = ALL.iter().fold(Routes::new(), |routes, feature| {
        routes.merge((feature.routes)())
    });
    crate::web::page_routes(extra)
}
