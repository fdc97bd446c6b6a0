//! The handlers, one module per area, and [`Routes`]: the router together with a record of
//! every route it holds, so that tests walk the real routes (e.g. every state-changing page
//! route for the forged-post check) instead of a list kept by hand.

pub mod availability;
pub mod broadcast;
pub mod compose;
pub mod consent;
pub mod divar;
pub mod health;
pub mod messages;
pub mod templates;
pub mod webview;

use axum::{
    Router,
    handler::Handler,
    http::Method,
    routing::{MethodRouter, get, post},
};

use crate::state::AppState;

/// A router and the `(method, path)` of each route in it.
#[derive(Default)]
pub struct Routes {
    router: Router<AppState>,
    list: Vec<(Method, &'static str)>,
}

impl Routes {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add(Method::GET, path, get(h))
    }

    pub fn post<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add(Method::POST, path, post(h))
    }

    /// A route with its own method router (e.g. one with a layer of its own).
    pub fn add(
        mut self,
        method: Method,
        path: &'static str,
        route: MethodRouter<AppState>,
    ) -> Self {
        self.router = self.router.route(path, route);
        self.list.push((method, path));
        self
    }

    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.list.extend(other.list);
        self
    }

    /// Applies `f` (a layer, usually) to the routes so far.
    pub fn map(mut self, f: impl FnOnce(Router<AppState>) -> Router<AppState>) -> Self {
        self.router = f(self.router);
        self
    }

    pub fn list(&self) -> &[(Method, &'static str)] {
        &self.list
    }

    pub fn into_router(self) -> Router<AppState> {
        self.router
    }
}

/// The core's page routes (the webview), without their layers: `web::router` adds the session,
/// forged-post and page-header layers to these and the features' routes alike.
pub fn core_pages() -> Routes {
    Routes::new()
        .merge(webview::routes())
        .merge(consent::routes())
        .merge(compose::routes())
        .merge(templates::routes())
        .merge(messages::routes())
        .merge(broadcast::routes())
        .merge(availability::routes())
}
