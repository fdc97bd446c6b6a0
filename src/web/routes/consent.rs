//! Asking Divar for the person's permission: start, and the callback (the use case is
//! `services::consent`; the session keeps what is pending in between).

use axum::{
    extract::{FromRequestParts, Query, Request, State},
    response::{IntoResponse, Redirect, Response},
};
use serde::Deserialize;

use crate::{
    services::consent::{self, Finished, Reply, Target},
    state::AppState,
    web::{
        error::Result,
        extract::{ChatVisitor, PostOwner},
        pages::consent::NoticePage,
        session::TypedSession,
    },
};

use super::Routes;

pub fn routes() -> Routes {
    Routes::new().post("/oauth/start", oauth_start)
}

/// Divar's redirect back; `web::router` throttles it per client, like the entry links.
pub fn callback_routes() -> Routes {
    Routes::new().get("/oauth/callback", oauth_callback)
}

#[derive(Deserialize)]
struct StartQuery {
    #[serde(rename = "for")]
    target: Option<String>,
}

/// Sends the person to Divar's consent page; `?for=post` asks for the post-wide scopes, which
/// only the post's owner may grant.
async fn oauth_start(
    State(app): State<AppState>,
    session: TypedSession,
    Query(query): Query<StartQuery>,
    request: Request,
) -> Result<Response> {
    let (mut parts, _) = request.into_parts();
    let (target, claimed) = if query.target.as_deref() == Some("post") {
        let owner = PostOwner::from_request_parts(&mut parts, &app).await?;
        (Target::Post(owner.post), owner.visit.user_id)
    } else {
        let chat = ChatVisitor::from_request_parts(&mut parts, &app).await?;
        (Target::Conversation(chat.conversation), chat.visit.user_id)
    };
    match consent::start(&app.deps, target, claimed) {
        Ok(started) => {
            session.set_pending_consent(started.pending).await?;
            Ok(Redirect::to(started.url.as_str()).into_response())
        }
        Err(refusal) => Ok(NoticePage::refused(refusal).into_response()),
    }
}

/// Divar sends the person back here; the grant is filed under whoever Divar says consented.
async fn oauth_callback(
    State(app): State<AppState>,
    session: TypedSession,
    Query(reply): Query<Reply>,
) -> Result<Response> {
    let pending = session.pending_consent().await?;
    let visit = session.visit().await?;
    let click = visit.as_ref().map(|v| v.session_init_id.as_str());
    let finished = consent::finish(&app.deps, pending.as_ref(), reply, click).await?;
    if !finished.keeps_pending() {
        session.clear_pending_consent().await?;
    }
    if let Some(page) = NoticePage::for_outcome(&finished) {
        // This browser is not the person the click named: it keeps nothing of theirs.
        if finished == Finished::Refused(consent::Refusal::AnotherAccount) {
            session.end().await?;
        }
        return Ok(page.into_response());
    }
    match finished {
        Finished::Connected {
            user,
            target,
            identified,
        } => {
            session.renew().await?;
            if identified {
                session.identify(&user).await?;
            }
            let to = match target {
                Target::Post(_) => "/post",
                Target::Conversation(_) => "/compose",
            };
            Ok(Redirect::to(to).into_response())
        }
        _ => unreachable!("every other outcome has its notice page"),
    }
}
