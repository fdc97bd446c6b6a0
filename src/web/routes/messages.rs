//! Messages a person sent: their history, each one's status (with resend), and the page one of
//! our buttons leads back to.

use axum::{
    Json,
    extract::{Path, Query, State},
    response::Redirect,
};
use serde::Deserialize;

use crate::{
    services::send::{self, Tap},
    state::AppState,
    web::{
        error::Result,
        extract::{ChatVisitor, Known},
        pages::{
            message::MessagePage,
            message_status::{HistoryPage, MessageProgress, MessageStatusPage},
        },
    },
};

use super::Routes;

pub fn routes() -> Routes {
    Routes::new()
        .get("/history", show_history)
        .get("/messages/{message_id}", show_message)
        .get("/messages/{message_id}/status", show_status)
        .get("/messages/{message_id}/progress", message_progress)
        .post("/messages/{message_id}/resend", resend_message)
}

async fn show_history(
    State(app): State<AppState>,
    chat: Known<ChatVisitor>,
) -> Result<HistoryPage> {
    let messages = send::history(&app.deps, &chat.writer()).await?;
    Ok(HistoryPage::new(messages))
}

#[derive(Deserialize)]
struct StatusQuery {
    /// Set when the same form was submitted again.
    again: Option<String>,
}

/// Where a send leads: the message's live status.
async fn show_status(
    State(app): State<AppState>,
    chat: Known<ChatVisitor>,
    Path(id): Path<String>,
    Query(query): Query<StatusQuery>,
) -> Result<MessageStatusPage> {
    let writer = chat.writer();
    let message = send::status(&app.deps, &writer, &id).await?;
    Ok(MessageStatusPage::new(
        message,
        writer.side,
        query.again.is_some(),
    ))
}

/// Polled by the status page's script.
async fn message_progress(
    State(app): State<AppState>,
    chat: Known<ChatVisitor>,
    Path(id): Path<String>,
) -> Result<Json<MessageProgress>> {
    let message = send::status(&app.deps, &chat.writer(), &id).await?;
    Ok(Json(MessageProgress::from(&message)))
}

/// Queues a failed message again; either way the person lands on its status.
async fn resend_message(
    State(app): State<AppState>,
    chat: Known<ChatVisitor>,
    Path(id): Path<String>,
) -> Result<Redirect> {
    send::resend(&app.deps, &chat.writer(), &id).await?;
    Ok(Redirect::to(&format!("/messages/{id}/status")))
}

/// Where one of our `open_server_link` buttons leads: both sides of the conversation may open
/// it, and the page speaks to whoever tapped.
async fn show_message(
    State(app): State<AppState>,
    chat: ChatVisitor,
    Path(id): Path<String>,
) -> Result<MessagePage> {
    let tap = Tap {
        conversation: &chat.conversation,
        user: chat.visit.user_id.as_ref(),
        data: &chat.visit.extra_data,
    };
    Ok(send::tapped(&app.deps, &tap, &id).await?.into())
}
