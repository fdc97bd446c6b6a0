//! The simulated Divar screens: posts, chats seen from either side, the add-on entry points
//! and the settings for faults and limits; the page helpers the consent page (`oauth`) shares.

use askama::Template;
use axum::{
    Form, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::Value;

use super::{
    PREFIX, Sandbox,
    outbound::{self, Click},
    world::{ChatMessage, Conversation, DynamicReply, KnobsUpdate, Revision, World, random_id},
};
use crate::tehran_time;
use kenar::{UserSide, scopes::ScopeKind};

const USER_COOKIE: &str = "sandbox_user";
const RETURN_COOKIE: &str = "sandbox_return";

pub fn router() -> Router<Sandbox> {
    Router::new()
        .route("/posts/{post_token}", get(show_post))
        .route("/posts/{post_token}/open-addon", post(open_from_post))
        .route("/posts/{post_token}/retire", post(retire_post))
        .route("/chats/{conversation_id}", get(show_chat))
        .route("/chats/{conversation_id}/messages", post(type_message))
        .route("/chats/{conversation_id}/open-addon", post(open_from_chat))
        .route("/chats/{conversation_id}/click", post(click_button))
        .route("/chats/{conversation_id}/block", post(set_blocked))
        .route("/settings", post(update_settings))
        .route("/users/{user_id}/revoke", post(revoke_user))
        .route("/completion", get(completion))
}

pub fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(error) => {
            tracing::error!(%error, "rendering a sandbox page failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "sandbox/error.html")]
struct ErrorPage {
    title: String,
    detail: String,
}

/// A Persian error page with the technical reason underneath, for the developer.
pub fn error_page(status: StatusCode, title: &str, detail: &str) -> Response {
    let page = ErrorPage {
        title: title.into(),
        detail: detail.into(),
    };
    (status, render(&page)).into_response()
}

/// The user the browser last viewed a chat as: the sandbox's stand-in for a Divar login.
pub fn current_user(headers: &HeaderMap) -> Option<String> {
    cookie(headers, USER_COOKIE)
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn set_cookie(response: &mut Response, name: &str, value: &str) {
    let text = format!("{name}={value}; Path={PREFIX}; SameSite=Lax; HttpOnly");
    if let Ok(value) = HeaderValue::from_str(&text) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

struct PostView {
    token: String,
    title: String,
    price: String,
    retired: bool,
    seller_name: String,
    conversations: Vec<ConversationView>,
}

struct ConversationView {
    id: String,
    buyer_name: String,
    blocked: bool,
    message_count: usize,
}

struct UserView {
    id: String,
    name: String,
    active_grants: usize,
}

#[derive(Template)]
#[template(path = "sandbox/index.html")]
struct IndexPage {
    app_title: String,
    posts: Vec<PostView>,
    users: Vec<UserView>,
    knobs: super::world::Knobs,
    revision: &'static str,
}

fn post_views(world: &World, only: Option<&str>) -> Vec<PostView> {
    world
        .posts
        .iter()
        .filter(|p| only.is_none_or(|t| t == p.token))
        .map(|p| PostView {
            token: p.token.clone(),
            title: p.title.clone(),
            price: p.price.clone(),
            retired: p.retired,
            seller_name: world.user_name(&p.seller_id),
            conversations: world
                .conversations
                .iter()
                .filter(|c| c.post_token == p.token)
                .map(|c| ConversationView {
                    id: c.id.clone(),
                    buyer_name: world.user_name(&c.buyer_id),
                    blocked: c.blocked,
                    message_count: world.messages_of(&c.id).count(),
                })
                .collect(),
        })
        .collect()
}

pub async fn show_index(State(sandbox): State<Sandbox>) -> Response {
    let world = sandbox.world();
    let users = world
        .users
        .iter()
        .map(|u| UserView {
            id: u.id.clone(),
            name: u.name.clone(),
            active_grants: world
                .access_tokens
                .values()
                .filter(|t| t.user_id == u.id && world.check_access_token(&t.token).is_ok())
                .count(),
        })
        .collect();
    render(&IndexPage {
        app_title: sandbox.app().title.clone(),
        posts: post_views(&world, None),
        users,
        knobs: world.knobs.clone(),
        revision: match world.knobs.session_init_revision {
            Revision::V2 => "v2",
            Revision::Original => "original",
            Revision::Touchpoints => "touchpoints",
        },
    })
}

#[derive(Template)]
#[template(path = "sandbox/post.html")]
struct PostPage {
    post: PostView,
    seller_id: String,
    users: Vec<(String, String)>,
}

async fn show_post(State(sandbox): State<Sandbox>, Path(post_token): Path<String>) -> Response {
    let world = sandbox.world();
    let Some(seller_id) = world.post(&post_token).map(|p| p.seller_id.clone()) else {
        return error_page(StatusCode::NOT_FOUND, "آگهی پیدا نشد", &post_token);
    };
    let Some(post) = post_views(&world, Some(&post_token)).pop() else {
        return error_page(StatusCode::NOT_FOUND, "آگهی پیدا نشد", &post_token);
    };
    let users = world
        .users
        .iter()
        .map(|u| (u.id.clone(), u.name.clone()))
        .collect();
    render(&PostPage {
        post,
        seller_id,
        users,
    })
}

/// The seller removes the post ("حذف آگهی"): subscribed apps hear of it.
async fn retire_post(State(sandbox): State<Sandbox>, Path(post_token): Path<String>) -> Response {
    match outbound::post_retired(&sandbox, &post_token).await {
        Some(_) => Redirect::to(&format!("/sandbox/posts/{post_token}")).into_response(),
        None => error_page(StatusCode::NOT_FOUND, "آگهی پیدا نشد", &post_token),
    }
}

#[derive(Deserialize)]
struct AsSide {
    #[serde(rename = "as")]
    side: Option<String>,
}

fn parse_side(value: Option<&str>) -> UserSide {
    value
        .and_then(|v| UserSide::parse(v).ok())
        .unwrap_or(UserSide::Buyer)
}

struct ButtonView {
    caption: String,
    icon: String,
    /// Set for `open_direct_link` with an http(s) URL.
    href: Option<String>,
    /// Set for actions the sandbox performs on a POST (server link, post pages).
    clickable: bool,
    row: usize,
    col: usize,
    note: Option<&'static str>,
}

struct MessageView {
    id: String,
    mine: bool,
    bot: bool,
    text: String,
    time: String,
    rows: Vec<Vec<ButtonView>>,
    media: Option<MediaView>,
}

/// A message's photo (shown) or file (its name and size), as Divar's chat shows them.
struct MediaView {
    id: String,
    image: bool,
    file_name: String,
    size: String,
}

impl MediaView {
    fn of(media: &crate::world::Media) -> Self {
        Self {
            id: media.id.clone(),
            image: media.bytes.is_some(),
            file_name: media.file_name.clone(),
            size: format!("{:.1} MB", media.size as f64 / 1_000_000.0),
        }
    }
}

#[derive(Template)]
#[template(path = "sandbox/chat.html")]
struct ChatPage {
    app_title: String,
    conversation_id: String,
    post_token: String,
    post_title: String,
    side: &'static str,
    me: String,
    other: String,
    blocked: bool,
    messages: Vec<MessageView>,
    /// What the app answered to this side's last dynamic-action tap, shown once.
    dynamic_reply: Option<DynamicReply>,
}

/// The grid a viewer on `side` sees under `message`: the sender's to the sender, the
/// receiver's to the receiver.
fn grid_for(message: &ChatMessage, side: UserSide) -> Option<&Value> {
    if message.sender_side == side {
        message.sender_buttons.as_ref()
    } else {
        message.receiver_buttons.as_ref()
    }
}

fn button_views(grid: Option<&Value>) -> Vec<Vec<ButtonView>> {
    let rows = grid.and_then(|g| g.get("rows")).and_then(Value::as_array);
    rows.into_iter()
        .flatten()
        .enumerate()
        .map(|(r, row)| {
            let buttons = row.get("buttons").and_then(Value::as_array);
            buttons
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(c, b)| {
                    let action = b.get("action").and_then(Value::as_object);
                    let key = action
                        .and_then(|a| a.keys().next().cloned())
                        .unwrap_or_default();
                    let href = action
                        .and_then(|a| a.get("open_direct_link"))
                        .and_then(Value::as_str)
                        .filter(|l| l.starts_with("https://") || l.starts_with("http://"))
                        .map(str::to_string);
                    let clickable = matches!(
                        key.as_str(),
                        "open_server_link"
                            | "open_post_page"
                            | "open_post_manage_page"
                            | "get_dynamic_action"
                    );
                    ButtonView {
                        caption: b
                            .get("caption")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        icon: b
                            .get("icon")
                            .or_else(|| b.get("icon_name"))
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_string(),
                        href,
                        clickable,
                        row: r,
                        col: c,
                        note: None,
                    }
                })
                .collect()
        })
        .collect()
}

async fn show_chat(
    State(sandbox): State<Sandbox>,
    Path(conversation_id): Path<String>,
    Query(query): Query<AsSide>,
) -> Response {
    let side = parse_side(query.side.as_deref());
    let mut world = sandbox.world();
    let Some(conversation) = world.conversation(&conversation_id).cloned() else {
        return error_page(StatusCode::NOT_FOUND, "گفت‌وگو پیدا نشد", &conversation_id);
    };
    let me = conversation.user_on(side).to_string();
    let dynamic_reply = world
        .dynamic_replies
        .remove(&(conversation.id.clone(), side));
    let messages = world
        .messages_of(&conversation.id)
        .map(|m| MessageView {
            id: m.id.clone(),
            mine: m.sender_side == side,
            bot: m.sender_type == "BOT",
            text: m.text.clone(),
            time: tehran_time(m.sent_at),
            rows: if m.sender_type == "BOT" {
                button_views(grid_for(m, side))
            } else {
                Vec::new()
            },
            media: m.media.as_ref().map(MediaView::of),
        })
        .collect();
    let post_title = world
        .post(&conversation.post_token)
        .map(|p| p.title.clone())
        .unwrap_or_default();
    let page = ChatPage {
        app_title: sandbox.app().title.clone(),
        conversation_id: conversation.id.clone(),
        post_token: conversation.post_token.clone(),
        post_title,
        side: side.as_str(),
        me: world.user_name(&me),
        other: world.user_name(conversation.user_on(side.other())),
        blocked: conversation.blocked,
        messages,
        dynamic_reply,
    };
    drop(world);
    let mut response = render(&page);
    set_cookie(&mut response, USER_COOKIE, &me);
    response
}

fn chat_url(conversation_id: &str, side: UserSide) -> String {
    format!("{PREFIX}/chats/{conversation_id}?as={}", side.as_str())
}

#[derive(Deserialize)]
struct TypeForm {
    #[serde(rename = "as")]
    side: String,
    text: String,
}

/// A person types in the chat; subscribed apps hear of it through a `NEW_MESSAGE` webhook.
async fn type_message(
    State(sandbox): State<Sandbox>,
    Path(conversation_id): Path<String>,
    Form(form): Form<TypeForm>,
) -> Response {
    let side = parse_side(Some(&form.side));
    let text = form.text.trim().to_string();
    let (conversation, message) = {
        let mut world = sandbox.world();
        let Some(conversation) = world.conversation(&conversation_id).cloned() else {
            return error_page(StatusCode::NOT_FOUND, "گفت‌وگو پیدا نشد", &conversation_id);
        };
        if text.is_empty() {
            return Redirect::to(&chat_url(&conversation_id, side)).into_response();
        }
        let message = ChatMessage {
            id: random_id(),
            conversation_id: conversation.id.clone(),
            sender_side: side,
            sender_id: conversation.user_on(side).to_string(),
            sender_type: "HUMAN",
            text: text.chars().take(4000).collect(),
            sender_buttons: None,
            receiver_buttons: None,
            idempotency_key: None,
            token_header: None,
            media: None,
            sent_at: world.now_ms(),
        };
        world.messages.push(message.clone());
        (conversation, message)
    };
    outbound::new_message(&sandbox, &conversation, &message).await;
    Redirect::to(&chat_url(&conversation_id, side)).into_response()
}

/// Performs the session-init call for `click` and sends the browser where the add-on says.
async fn go_to_addon(sandbox: &Sandbox, click: Click) -> Response {
    let return_to = click.return_to.clone();
    match outbound::session_init(sandbox, &click).await {
        Ok(url) => {
            let mut response = Redirect::to(&url).into_response();
            set_cookie(&mut response, USER_COOKIE, &click.user_id);
            set_cookie(&mut response, RETURN_COOKIE, &return_to);
            response
        }
        Err(reason) => error_page(StatusCode::BAD_GATEWAY, "افزونه پاسخ درستی نداد", &reason),
    }
}

async fn open_from_chat(
    State(sandbox): State<Sandbox>,
    Path(conversation_id): Path<String>,
    Form(form): Form<AsSide>,
) -> Response {
    let side = parse_side(form.side.as_deref());
    let Some(conversation) = sandbox.world().conversation(&conversation_id).cloned() else {
        return error_page(StatusCode::NOT_FOUND, "گفت‌وگو پیدا نشد", &conversation_id);
    };
    let click = chat_click(
        &sandbox,
        "CHAT",
        conversation,
        side,
        Value::Object(Default::default()),
    );
    go_to_addon(&sandbox, click).await
}

fn chat_click(
    sandbox: &Sandbox,
    source: &'static str,
    conversation: Conversation,
    side: UserSide,
    data: Value,
) -> Click {
    Click {
        source,
        post_token: conversation.post_token.clone(),
        user_id: conversation.user_on(side).to_string(),
        user_side: Some(side),
        extra_data: data,
        return_to: sandbox.url(&format!("/chats/{}?as={}", conversation.id, side.as_str())),
        conversation: Some(conversation),
    }
}

#[derive(Deserialize)]
struct PostAddonForm {
    user_id: String,
}

async fn open_from_post(
    State(sandbox): State<Sandbox>,
    Path(post_token): Path<String>,
    Form(form): Form<PostAddonForm>,
) -> Response {
    let (post, known_user) = {
        let world = sandbox.world();
        (
            world.post(&post_token).cloned(),
            world.user(&form.user_id).is_some(),
        )
    };
    let Some(post) = post else {
        return error_page(StatusCode::NOT_FOUND, "آگهی پیدا نشد", &post_token);
    };
    if !known_user {
        return error_page(StatusCode::BAD_REQUEST, "کاربر ناشناس", &form.user_id);
    }
    let click = Click {
        source: "POST_ADDON",
        post_token: post.token.clone(),
        conversation: None,
        user_side: Some(if form.user_id == post.seller_id {
            UserSide::Seller
        } else {
            UserSide::Buyer
        }),
        user_id: form.user_id,
        extra_data: Value::Object(Default::default()),
        return_to: sandbox.url(&format!("/posts/{}", post.token)),
    };
    go_to_addon(&sandbox, click).await
}

#[derive(Deserialize)]
struct ClickForm {
    #[serde(rename = "as")]
    side: String,
    message_id: String,
    row: usize,
    col: usize,
}

/// A click on a button under an app message, as Divar handles each action kind (docs/divar-platform.md, "Sending").
async fn click_button(
    State(sandbox): State<Sandbox>,
    Path(conversation_id): Path<String>,
    Form(form): Form<ClickForm>,
) -> Response {
    let side = parse_side(Some(&form.side));
    let found = {
        let world = sandbox.world();
        let conversation = world.conversation(&conversation_id).cloned();
        let button = world
            .messages_of(&conversation_id)
            .find(|m| m.id == form.message_id)
            .and_then(|m| grid_for(m, side))
            .and_then(|g| g.pointer(&format!("/rows/{}/buttons/{}/action", form.row, form.col)))
            .cloned();
        conversation.zip(button)
    };
    let Some((conversation, action)) = found else {
        return error_page(StatusCode::NOT_FOUND, "این دکمه پیدا نشد", &form.message_id);
    };
    if let Some(dynamic) = action.get("get_dynamic_action") {
        let data = dynamic
            .get("data")
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()));
        let tapper = conversation.user_on(side).to_string();
        let reply = outbound::dynamic_action(&sandbox, &conversation, side, &tapper, data).await;
        sandbox
            .world()
            .dynamic_replies
            .insert((conversation.id.clone(), side), reply);
        return Redirect::to(&chat_url(&conversation.id, side)).into_response();
    }
    if let Some(link) = action.get("open_server_link") {
        let data = link
            .get("data")
            .cloned()
            .unwrap_or_else(|| Value::Object(Default::default()));
        let click = chat_click(&sandbox, "CHAT_MESSAGE_ACTION", conversation, side, data);
        return go_to_addon(&sandbox, click).await;
    }
    let post = ["open_post_page", "open_post_manage_page"]
        .iter()
        .find_map(|k| {
            action
                .pointer(&format!("/{k}/post_token"))
                .and_then(Value::as_str)
        });
    if let Some(post_token) = post {
        return Redirect::to(&format!("{PREFIX}/posts/{post_token}")).into_response();
    }
    if let Some(link) = action.get("open_direct_link").and_then(Value::as_str)
        && (link.starts_with("https://") || link.starts_with("http://"))
    {
        return Redirect::to(link).into_response();
    }
    error_page(
        StatusCode::NOT_IMPLEMENTED,
        "این نوع دکمه در شبیه‌ساز اجرا نمی‌شود",
        &action.to_string(),
    )
}

#[derive(Deserialize)]
struct BlockForm {
    #[serde(rename = "as")]
    side: String,
    blocked: String,
}

async fn set_blocked(
    State(sandbox): State<Sandbox>,
    Path(conversation_id): Path<String>,
    Form(form): Form<BlockForm>,
) -> Response {
    let side = parse_side(Some(&form.side));
    match sandbox.world().conversation_mut(&conversation_id) {
        Some(conversation) => conversation.blocked = form.blocked == "true",
        None => return error_page(StatusCode::NOT_FOUND, "گفت‌وگو پیدا نشد", &conversation_id),
    }
    Redirect::to(&chat_url(&conversation_id, side)).into_response()
}

#[derive(Deserialize)]
struct SettingsForm {
    session_init_revision: String,
    access_token_ttl_secs: String,
    rate_limit_per_minute: String,
    fail_5xx_percent: String,
    fail_429_percent: String,
    slow_percent: String,
    slow_ms: String,
}

impl SettingsForm {
    fn parse(self) -> Result<KnobsUpdate, String> {
        fn number<T: std::str::FromStr>(name: &str, value: &str) -> Result<Option<T>, String> {
            value
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| format!("{name}: `{value}` is not a valid number"))
        }
        Ok(KnobsUpdate {
            session_init_revision: Some(match self.session_init_revision.as_str() {
                "original" => Revision::Original,
                "touchpoints" => Revision::Touchpoints,
                _ => Revision::V2,
            }),
            access_token_ttl_secs: number("access_token_ttl_secs", &self.access_token_ttl_secs)?,
            rate_limit_per_minute: number("rate_limit_per_minute", &self.rate_limit_per_minute)?,
            fail_5xx_percent: number("fail_5xx_percent", &self.fail_5xx_percent)?,
            fail_429_percent: number("fail_429_percent", &self.fail_429_percent)?,
            slow_percent: number("slow_percent", &self.slow_percent)?,
            slow_ms: number("slow_ms", &self.slow_ms)?,
            rotation_grace_secs: None,
            fail_next: Vec::new(),
            app_lacks_scopes: None,
            uploads_fail: None,
        })
    }
}

async fn update_settings(
    State(sandbox): State<Sandbox>,
    Form(form): Form<SettingsForm>,
) -> Response {
    let result = form
        .parse()
        .and_then(|update| sandbox.world().knobs.apply(update));
    match result {
        Ok(()) => Redirect::to(&format!("{PREFIX}/#settings")).into_response(),
        Err(reason) => error_page(StatusCode::BAD_REQUEST, "تنظیمات نامعتبر", &reason),
    }
}

/// The user withdraws every grant they gave the app, as from Divar's settings.
async fn revoke_user(State(sandbox): State<Sandbox>, Path(user_id): Path<String>) -> Response {
    let notify = {
        let mut world = sandbox.world();
        // Divar tells the app only when a token of the user holds both
        // NOTIFICATION_ACCESS_REVOCATION and USER_ID (`events/auth.md`).
        let notify = world.access_tokens.values().any(|t| {
            let holds = |kind: ScopeKind| t.scopes.iter().any(|s| s.kind == kind);
            t.user_id == user_id
                && holds(ScopeKind::NotificationAccessRevocation)
                && holds(ScopeKind::UserId)
        });
        world.revoke_user(&user_id);
        notify
    };
    if notify {
        outbound::access_revoked(&sandbox, &user_id).await;
    }
    Redirect::to(&format!("{PREFIX}/#users")).into_response()
}

/// Divar's completion URL: back to wherever the add-on was opened from.
async fn completion(headers: HeaderMap) -> Response {
    let target = cookie(&headers, RETURN_COOKIE)
        .filter(|t| t.contains(&format!("{PREFIX}/")))
        .unwrap_or_else(|| format!("{PREFIX}/"));
    Redirect::to(&target).into_response()
}
