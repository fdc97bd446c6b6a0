//! Asking Divar for the person's permission (docs/divar-platform.md, "OAuth 2.0"): start, and
//! the callback, which files the grant under the account Divar says consented.

use axum::{
    Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;

use axum::extract::FromRequestParts;

use kenar::oauth::{IssuedTokens, TokenError};

use crate::{
    config::ConsentExtras,
    db::{self, grants::Subject},
    domain::{ConversationId, PostToken, UserId},
    services::delivery,
    state::AppState,
    web::{
        error::{AppError, Result},
        pages::{NoticePage, PageAction, render_page},
        session::{ChatEntry, PendingConsent, PostEntry, TypedSession},
    },
};

pub fn router() -> Router<AppState> {
    Router::new().route("/oauth/start", post(oauth_start))
}

/// Divar's redirect back; `web::router` throttles it per client, like the entry links.
pub fn callback_router() -> Router<AppState> {
    Router::new().route("/oauth/callback", get(oauth_callback))
}

/// The scope that lets the add-on send in one conversation, then who consented and revocation
/// notices (as configured), renewable without asking again.
fn conversation_scopes(conversation_id: &ConversationId, extras: ConsentExtras) -> Vec<String> {
    with_extras(
        vec![format!("CONVERSATION_SEND_MESSAGE.{conversation_id}")],
        extras,
    )
}

/// The scopes that let the add-on message every conversation of a post and hear of new ones
/// (post owner only), with the same extras.
fn post_scopes(post_token: &PostToken, extras: ConsentExtras) -> Vec<String> {
    with_extras(
        vec![
            format!("CHAT_POST_CONVERSATIONS_MESSAGE_SEND.{post_token}"),
            format!("CHAT_POST_CONVERSATIONS_READ.{post_token}"),
        ],
        extras,
    )
}

fn with_extras(mut scopes: Vec<String>, extras: ConsentExtras) -> Vec<String> {
    scopes.extend(extras.scopes().map(str::to_string));
    scopes.push("offline_access".into());
    scopes
}

#[derive(Deserialize)]
struct StartQuery {
    #[serde(rename = "for")]
    target: Option<String>,
}

/// Sends the person to Divar's consent page; `state` and the PKCE verifier stay in the session.
/// `?for=post` asks for the post-wide scopes, which only the post's owner may grant.
async fn oauth_start(
    State(state): State<AppState>,
    session: TypedSession,
    Query(query): Query<StartQuery>,
    request: axum::extract::Request,
) -> Result<Response> {
    let (mut parts, _) = request.into_parts();
    let extras = state.settings.consent;
    let (scopes, conversation_id, post_token, user_id) = if query.target.as_deref() == Some("post")
    {
        let seller = PostEntry::from_request_parts(&mut parts, &state).await?;
        (
            post_scopes(&seller.post_token, extras),
            None,
            Some(seller.post_token),
            seller.visit.user_id,
        )
    } else {
        let chat = ChatEntry::from_request_parts(&mut parts, &state).await?;
        (
            conversation_scopes(&chat.conversation_id, extras),
            Some(chat.conversation_id),
            None,
            chat.visit.user_id,
        )
    };
    if user_id.is_none() && !extras.user_id {
        // Divar would grant it, and the grant could not be filed under anyone.
        unidentifiable_click();
        return Ok(Refusal::NotAsked.into_response());
    }
    let start = state.oauth.authorize(&scopes);
    session
        .set_pending_consent(PendingConsent {
            state: start.state,
            pkce_verifier: start.pkce_verifier,
            conversation_id,
            post_token,
            user_id,
            scope: scopes.join(" "),
        })
        .await?;
    Ok(Redirect::to(start.url.as_str()).into_response())
}

/// The operator's half of [`Refusal::Unidentified`] when the switch, not Divar, is the cause.
fn unidentifiable_click() {
    tracing::error!(
        "a click that named no user cannot be connected while KENAR_ASK_USER_ID is off; turn it on and grant USER_ID to the app in the Kenar panel"
    );
}

#[derive(Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    /// RFC 6749 §4.1.2.1: `access_denied` when the person refused; anything else (e.g.
    /// `invalid_scope`) means the app's request itself was refused.
    error: Option<String>,
    error_description: Option<String>,
}

fn notice(
    status: StatusCode,
    title: &str,
    message: &str,
    tone: &'static str,
    actions: Vec<PageAction>,
) -> Response {
    let page = NoticePage {
        title: title.into(),
        message: message.into(),
        tone,
        actions,
    };
    (status, render_page(&page)).into_response()
}

fn try_again_actions() -> Vec<PageAction> {
    vec![
        PageAction::post("دوباره امتحان کنید", "/oauth/start"),
        PageAction::link("بازگشت به دیوار", "/back"),
    ]
}

/// Divar sends the person back here with `code` and `state`; on refusal with
/// `error=access_denied` (Divar's OAuth server) or with `state` alone (older docs).
async fn oauth_callback(
    State(state): State<AppState>,
    session: TypedSession,
    Query(query): Query<CallbackQuery>,
) -> Result<Response> {
    let Some(pending) = session.pending_consent().await? else {
        return Ok(notice(
            StatusCode::BAD_REQUEST,
            "درخواست اجازه پیدا نشد",
            "این پاسخ به درخواستی از این مرورگر تعلق ندارد یا وقت این صفحه تمام شده است. «گفت‌وگو یار» را دوباره از دیوار باز کنید.",
            "error",
            vec![PageAction::link("بازگشت به دیوار", "/back")],
        ));
    };
    let state_matches = query.state.as_deref().is_some_and(|s| {
        use subtle::ConstantTimeEq;
        bool::from(s.as_bytes().ct_eq(pending.state.as_bytes()))
    });
    if !state_matches {
        // Left in place: a forged callback must not use up the person's real one.
        tracing::warn!("OAuth callback with a state that does not match the session");
        return Ok(notice(
            StatusCode::BAD_REQUEST,
            "پاسخ نامعتبر",
            "پاسخی که از دیوار رسید با درخواست شما جور نیست، پس آن را نپذیرفتیم. دوباره امتحان کنید.",
            "error",
            try_again_actions(),
        ));
    }
    session.clear_pending_consent().await?;
    match query.error.as_deref() {
        None | Some("access_denied") => {}
        Some(error) => {
            // The person can do nothing about it: the operator must, in the Kenar panel.
            tracing::error!(
                error,
                description = query.error_description.as_deref().unwrap_or_default(),
                requested_scopes = %pending.scope,
                "Divar refused the consent request; make sure the app holds every requested scope in the Kenar panel"
            );
            return Ok(notice(
                StatusCode::BAD_GATEWAY,
                "اتصال ممکن نشد",
                "دیوار درخواست اجازهٔ «گفت‌وگو یار» را نپذیرفت. این مشکل از تنظیمات «گفت‌وگو یار» است، نه از شما؛ به پشتیبانی «گفت‌وگو یار» خبر داده شد. کمی بعد دوباره امتحان کنید.",
                "error",
                try_again_actions(),
            ));
        }
    }
    let Some(code) = query.code.filter(|c| !c.is_empty()) else {
        return Ok(notice(
            StatusCode::OK,
            "اجازه داده نشد",
            "بدون اجازهٔ شما پیامی نمی‌فرستیم. اگر نظرتان عوض شد، دوباره امتحان کنید.",
            "",
            try_again_actions(),
        ));
    };
    let exchanged = state.oauth.exchange(&code, &pending.pkce_verifier).await;
    let status = if exchanged.is_ok() { "ok" } else { "error" };
    metrics::counter!(crate::observe::API_CALLS, "operation" => "token_exchange", "status" => status)
        .increment(1);
    let issued = match exchanged {
        Ok(issued) => issued,
        Err(error) => {
            // The error names no secret (see `kenar::oauth::classify`).
            tracing::error!(%error, "exchanging the OAuth code failed");
            let message = match error {
                TokenError::Refused(_) => "دیوار این اجازه را نپذیرفت. دوباره امتحان کنید.",
                TokenError::Unavailable(_) => {
                    "ارتباط با دیوار برقرار نشد. چند لحظهٔ دیگر دوباره امتحان کنید."
                }
            };
            return Ok(notice(
                StatusCode::BAD_GATEWAY,
                "اتصال ناموفق بود",
                message,
                "error",
                try_again_actions(),
            ));
        }
    };
    let user_id = match consenting_user(&state, &issued, pending.user_id.as_ref()).await {
        Ok(user_id) => user_id,
        Err(refusal) => {
            if matches!(refusal, Refusal::AnotherAccount) {
                // This browser is not the person the click named: it keeps nothing of theirs.
                session.end().await?;
            }
            return Ok(refusal.into_response());
        }
    };
    session.renew().await?;
    let visit = session.visit().await?;
    if pending.user_id.is_none() {
        session.identify(&user_id).await?;
        if let Some(visit) = &visit {
            db::conversations::identify_click(
                &state.db,
                &visit.session_init_id,
                &user_id,
                state.clock.now_ms(),
            )
            .await?;
        }
    }
    let Some(subject) = pending.subject() else {
        return Err(AppError::Unexpected(anyhow::anyhow!(
            "a pending consent names neither a conversation nor a post"
        )));
    };
    state
        .vault
        .store(subject.clone(), &user_id, &pending.scope, &issued)
        .await?;
    match subject {
        Subject::Post(post_token) => {
            // New conversations of the post reach us as NEW_MESSAGE webhooks from now on.
            delivery::subscribe_post_messages(&state.api, &issued.access_token, &post_token).await;
            db::broadcasts::resume_for_grant(
                &state.db,
                &post_token,
                &user_id,
                state.clock.now_ms(),
            )
            .await?;
            tracing::info!("a seller connected a post");
            Ok(Redirect::to("/post").into_response())
        }
        Subject::Conversation(conversation_id) => {
            tracing::info!("a user connected a conversation");
            // Messages that failed for want of consent go out now.
            state
                .messaging
                .resume_after_consent(&conversation_id, &user_id)
                .await?;
            Ok(Redirect::to("/compose").into_response())
        }
    }
}

/// Why a consent that Divar granted is not kept.
enum Refusal {
    /// Divar says another account consented than the one the click named.
    AnotherAccount,
    /// Divar could not say who consented (unreachable, or the token lacks `USER_ID`).
    Unidentified,
    /// The click named nobody and the add-on is set not to ask (`KENAR_ASK_USER_ID=false`).
    NotAsked,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::AnotherAccount => notice(
                StatusCode::FORBIDDEN,
                "این لینک مال حساب دیگری است",
                "این صفحه برای حساب دیگری از دیوار باز شده بود، ولی اجازه با حسابی که الان در آن هستید داده شد. چیزی ذخیره نشد. «گفت‌وگو یار» را از گفت‌وگوی خودتان در دیوار دوباره باز کنید.",
                "error",
                vec![PageAction::link("بازگشت به دیوار", "/back")],
            ),
            Self::Unidentified => notice(
                StatusCode::BAD_GATEWAY,
                "اتصال ناموفق بود",
                "دیوار نگفت این اجازه را چه کسی داده است، پس آن را نگه نداشتیم. چند لحظهٔ دیگر دوباره امتحان کنید.",
                "error",
                try_again_actions(),
            ),
            Self::NotAsked => notice(
                StatusCode::BAD_GATEWAY,
                "اتصال از این‌جا ممکن نیست",
                "«گفت‌وگو یار» طوری تنظیم شده که نمی‌تواند بفهمد شما کدام حساب دیوار هستید، پس از این مسیر وصل نمی‌شود. این مشکل از تنظیمات «گفت‌وگو یار» است، نه از شما؛ به پشتیبانی آن خبر داده شد.",
                "error",
                vec![PageAction::link("بازگشت به دیوار", "/back")],
            ),
        }
    }
}

/// The account the grant belongs to: the one Divar says consented (with `USER_ID`), which must be
/// the one the click named if it named one. With the `USER_ID` switch off, the click's word is
/// taken, and a click that named nobody cannot be connected.
async fn consenting_user(
    state: &AppState,
    issued: &IssuedTokens,
    claimed: Option<&UserId>,
) -> std::result::Result<UserId, Refusal> {
    if !state.settings.consent.user_id {
        return claimed.cloned().ok_or_else(|| {
            unidentifiable_click();
            Refusal::NotAsked
        });
    }
    let asked = state.api.user_id(&issued.access_token).await;
    let status = if asked.is_ok() { "ok" } else { "error" };
    metrics::counter!(crate::observe::API_CALLS, "operation" => "users", "status" => status)
        .increment(1);
    let verified = match asked {
        Ok(Some(verified)) => verified,
        Ok(None) => {
            tracing::error!(
                "Divar named no user for a fresh token: the token lacks USER_ID; make sure the app holds USER_ID in the Kenar panel"
            );
            return Err(Refusal::Unidentified);
        }
        Err(error) => {
            tracing::error!(%error, "could not learn who consented; nothing was stored");
            return Err(Refusal::Unidentified);
        }
    };
    match claimed {
        Some(claimed) if *claimed != verified => {
            tracing::warn!(
                "a consent came from another Divar account than the click named; nothing was stored"
            );
            Err(Refusal::AnotherAccount)
        }
        _ => Ok(verified),
    }
}
