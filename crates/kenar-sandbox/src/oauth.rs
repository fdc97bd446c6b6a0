//! Divar's OAuth 2.0 authorization server (docs/divar-platform.md, "OAuth 2.0"): consent page, code grant with PKCE,
//! refresh with rotation and a two-minute grace for the old pair.

use askama::Template;
use axum::{
    Form, Json, Router,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{
    Sandbox, screens,
    world::{AuthCode, CODE_LIFETIME_MS, RefreshCall, World},
};
use kenar::scopes::{Scope, ScopeKind, join};

pub fn router() -> Router<Sandbox> {
    Router::new()
        .route("/oauth2/auth", get(show_consent).post(decide_consent))
        .route("/oauth2/token", post(token))
}

struct ScopeLine {
    text: String,
    code: String,
}

#[derive(Template)]
#[template(path = "sandbox/consent.html")]
struct ConsentPage {
    app_title: String,
    app_slug: String,
    scopes: Vec<ScopeLine>,
    /// (id, name), the preselected user first.
    users: Vec<(String, String)>,
    request: AuthRequest,
}

#[derive(Debug, Deserialize, Serialize, Default, Clone)]
pub struct AuthRequest {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
}

/// An authorization request that passed every check.
struct ValidAuthRequest {
    redirect_uri: String,
    scopes: Vec<Scope>,
    state: String,
    code_challenge: Option<String>,
}

impl AuthRequest {
    fn validate(&self, sandbox: &Sandbox) -> Result<ValidAuthRequest, String> {
        let app = sandbox.app();
        if self.response_type.as_deref() != Some("code") {
            return Err("response_type must be `code`".into());
        }
        if self.client_id.as_deref() != Some(app.slug.as_str()) {
            return Err("client_id is not a registered app slug".into());
        }
        let redirect_uri = self.redirect_uri.clone().unwrap_or_default();
        if !app.redirect_uris.contains(&redirect_uri) {
            return Err(format!(
                "redirect_uri `{redirect_uri}` is not registered for this app"
            ));
        }
        let scopes = Scope::parse_list(self.scope.as_deref().unwrap_or_default())?;
        // The SDK keeps a name it does not know; Divar's OAuth server refuses one.
        if let Some(unknown) = scopes
            .iter()
            .find(|s| matches!(s.kind, ScopeKind::Other(_)))
        {
            return Err(format!("unknown scope `{}`", unknown.name()));
        }
        let state = self
            .state
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or("state is missing")?;
        let code_challenge = match (
            self.code_challenge.as_deref(),
            self.code_challenge_method.as_deref(),
        ) {
            (None, None) => None,
            (Some(challenge), Some("S256")) if (43..=128).contains(&challenge.len()) => {
                Some(challenge.to_string())
            }
            (Some(_), Some("S256")) => {
                return Err("code_challenge must be 43 to 128 characters".into());
            }
            _ => return Err("PKCE needs code_challenge with code_challenge_method=S256".into()),
        };
        Ok(ValidAuthRequest {
            redirect_uri,
            scopes,
            state,
            code_challenge,
        })
    }
}

/// Where the person goes back to with an RFC 6749 §4.1.2.1 error, as Divar's OAuth server
/// (Ory Hydra) sends it: `error`, `error_description` and `state`.
fn redirect_with_error(valid: &ValidAuthRequest, error: &str, description: &str) -> Response {
    match url::Url::parse(&valid.redirect_uri) {
        Ok(mut target) => {
            target
                .query_pairs_mut()
                .append_pair("error", error)
                .append_pair("error_description", description)
                .append_pair("state", &valid.state);
            Redirect::to(target.as_str()).into_response()
        }
        Err(_) => screens::error_page(StatusCode::BAD_REQUEST, "نشانی بازگشت نامعتبر است", error),
    }
}

/// GET /oauth2/auth: the consent screen, or an error page (never a redirect) for a bad request;
/// a scope the app was not granted in its panel goes back with `error=invalid_scope`.
async fn show_consent(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    Query(request): Query<AuthRequest>,
) -> Response {
    let valid = match request.validate(&sandbox) {
        Ok(valid) => valid,
        Err(reason) => {
            return screens::error_page(
                StatusCode::BAD_REQUEST,
                "درخواست مجوز نامعتبر است",
                &reason,
            );
        }
    };
    let lacking: Vec<String> = {
        let world = sandbox.world();
        valid
            .scopes
            .iter()
            .map(|s| s.name().to_string())
            .filter(|name| world.knobs.app_lacks_scopes.contains(name))
            .collect()
    };
    if !lacking.is_empty() {
        return redirect_with_error(
            &valid,
            "invalid_scope",
            &format!(
                "The requested scope is invalid, unknown, or malformed. The OAuth 2.0 Client is not allowed to request scope '{}'.",
                lacking.join(" ")
            ),
        );
    }
    let current_user = screens::current_user(&headers);
    let world = sandbox.world();
    let lines = valid.scopes.iter().map(|s| describe(&world, s)).collect();
    // Offer the people the request is about first, the signed-in user selected.
    let mut users: Vec<(String, String)> = world
        .users
        .iter()
        .map(|u| (u.id.clone(), u.name.clone()))
        .collect();
    let default_user = current_user
        .filter(|id| world.user(id).is_some())
        .or_else(|| natural_grantor(&world, &valid.scopes))
        .unwrap_or_else(|| users[0].0.clone());
    users.sort_by_key(|(id, _)| *id != default_user);
    screens::render(&ConsentPage {
        app_title: sandbox.app().title.clone(),
        app_slug: sandbox.app().slug.clone(),
        scopes: lines,
        users,
        request,
    })
}

#[derive(Deserialize)]
struct Decision {
    #[serde(flatten)]
    request: AuthRequest,
    user_id: String,
    decision: String,
}

/// POST /oauth2/auth: approve → back with `code` and `state`; deny → back with
/// `error=access_denied`, `error_description` and `state`, as Divar's OAuth server does.
async fn decide_consent(State(sandbox): State<Sandbox>, Form(form): Form<Decision>) -> Response {
    let valid = match form.request.validate(&sandbox) {
        Ok(valid) => valid,
        Err(reason) => {
            return screens::error_page(
                StatusCode::BAD_REQUEST,
                "درخواست مجوز نامعتبر است",
                &reason,
            );
        }
    };
    let mut target = match url::Url::parse(&valid.redirect_uri) {
        Ok(url) => url,
        Err(_) => {
            return screens::error_page(
                StatusCode::BAD_REQUEST,
                "نشانی بازگشت نامعتبر است",
                "redirect_uri",
            );
        }
    };
    if form.decision != "approve" {
        return redirect_with_error(
            &valid,
            "access_denied",
            "The resource owner denied the request",
        );
    }
    let mut world = sandbox.world();
    if world.user(&form.user_id).is_none() {
        return screens::error_page(StatusCode::BAD_REQUEST, "کاربر ناشناس", "choose a user");
    }
    for scope in &valid.scopes {
        if let (ScopeKind::ConversationSendMessage | ScopeKind::ChatConversationRead, Some(id)) =
            (&scope.kind, &scope.id)
        {
            let party = world
                .conversation(id)
                .and_then(|c| c.side_of(&form.user_id));
            if party.is_none() {
                return screens::error_page(
                    StatusCode::FORBIDDEN,
                    "این گفت‌وگو مال شما نیست",
                    "only a party of the conversation can grant CONVERSATION_SEND_MESSAGE for it",
                );
            }
        }
    }
    let code = world.issue_code(AuthCode {
        client_id: sandbox.app().slug.clone(),
        redirect_uri: valid.redirect_uri.clone(),
        scopes: valid.scopes,
        user_id: form.user_id,
        code_challenge: valid.code_challenge,
        expires_at: sandbox.now_ms() + CODE_LIFETIME_MS,
        used: false,
    });
    target
        .query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &valid.state);
    Redirect::to(target.as_str()).into_response()
}

#[derive(Deserialize, Default)]
struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    code_verifier: Option<String>,
    refresh_token: Option<String>,
}

#[derive(Serialize)]
struct TokenReply {
    access_token: String,
    token_type: &'static str,
    expires_in: i64,
    scope: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
}

/// An RFC 6749 §5.2 error.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

/// POST /oauth2/token (form-encoded): `authorization_code` and `refresh_token` grants.
async fn token(
    State(sandbox): State<Sandbox>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Ok(mut form) = serde_urlencoded::from_bytes::<TokenForm>(&body) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the body must be form-encoded",
        );
    };
    // Client authentication in the body (as Divar documents) or, leniently, HTTP Basic.
    if form.client_id.is_none()
        && let Some((id, secret)) = basic_credentials(&headers)
    {
        form.client_id = Some(id);
        form.client_secret = Some(secret);
    }
    let app = sandbox.app();
    if form.client_id.as_deref() != Some(app.slug.as_str())
        || form.client_secret.as_deref() != Some(app.oauth_secret.as_str())
    {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client authentication failed",
        );
    }
    let mut world = sandbox.world();
    let result = match form.grant_type.as_deref() {
        Some("authorization_code") => exchange_code(&mut world, &form),
        Some("refresh_token") => refresh(&mut world, &form),
        _ => Err((
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token".into(),
        )),
    };
    match result {
        Ok(reply) => ([(header::CACHE_CONTROL, "no-store")], Json(reply)).into_response(),
        Err((error, description)) => oauth_error(StatusCode::BAD_REQUEST, error, &description),
    }
}

type GrantResult = Result<TokenReply, (&'static str, String)>;

fn exchange_code(world: &mut World, form: &TokenForm) -> GrantResult {
    let now = world.now_ms();
    let code_value = form.code.as_deref().unwrap_or_default();
    let code = world.codes.get_mut(code_value).ok_or((
        "invalid_grant",
        "the authorization code is unknown".to_string(),
    ))?;
    if code.used {
        return Err((
            "invalid_grant",
            "the authorization code was already used".into(),
        ));
    }
    if now > code.expires_at {
        return Err(("invalid_grant", "the authorization code has expired".into()));
    }
    if form.redirect_uri.as_deref() != Some(code.redirect_uri.as_str()) {
        return Err((
            "invalid_grant",
            "redirect_uri differs from the one authorized".into(),
        ));
    }
    if let Some(challenge) = &code.code_challenge {
        let verifier = form.code_verifier.as_deref().unwrap_or_default();
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        if computed != *challenge {
            return Err((
                "invalid_grant",
                "the PKCE code_verifier does not match the challenge".into(),
            ));
        }
    }
    code.used = true;
    let (user_id, scopes) = (code.user_id.clone(), code.scopes.clone());
    Ok(reply(world, &user_id, scopes))
}

fn refresh(world: &mut World, form: &TokenForm) -> GrantResult {
    let now = world.now_ms();
    let value = form.refresh_token.as_deref().unwrap_or_default();
    let outcome = match world.refresh_tokens.get(value) {
        None => Err("the refresh token is unknown"),
        Some(t) if t.revoked => Err("the refresh token was revoked"),
        Some(t) if now > t.expires_at => Err("the refresh token has expired"),
        Some(t) if t.rotated_at.is_some_and(|at| now > at + world.grace_ms()) => {
            Err("the refresh token was already rotated")
        }
        Some(t) => Ok((t.user_id.clone(), t.scopes.clone(), t.access_token.clone())),
    };
    let user_id = outcome.as_ref().ok().map(|(u, _, _)| u.clone());
    world.refresh_calls.push(RefreshCall {
        at: now,
        user_id,
        outcome: match &outcome {
            Ok(_) => "rotated".into(),
            Err(reason) => (*reason).to_string(),
        },
    });
    let (user_id, scopes, old_access) = outcome.map_err(|r| ("invalid_grant", r.to_string()))?;
    if let Some(old) = world.refresh_tokens.get_mut(value) {
        old.rotated_at.get_or_insert(now);
    }
    if let Some(old) = world.access_tokens.get_mut(&old_access) {
        old.rotated_at.get_or_insert(now);
    }
    Ok(reply(world, &user_id, scopes))
}

fn reply(world: &mut World, user_id: &str, scopes: Vec<Scope>) -> TokenReply {
    let scope = join(&scopes);
    let (access, refresh) = world.issue_tokens(user_id, scopes);
    TokenReply {
        expires_in: (access.expires_at - access.issued_at) / 1000,
        access_token: access.token,
        token_type: "bearer",
        scope,
        refresh_token: refresh.map(|r| r.token),
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    Some((decode(id)?, decode(secret)?))
}

/// Who would normally grant these scopes: the conversation's buyer or the post's seller.
fn natural_grantor(world: &World, scopes: &[Scope]) -> Option<String> {
    scopes
        .iter()
        .find_map(|scope| match (&scope.kind, scope.id.as_deref()) {
            (ScopeKind::ConversationSendMessage, Some(id)) => {
                world.conversation(id).map(|c| c.buyer_id.clone())
            }
            (
                ScopeKind::ChatPostConversationsMessageSend | ScopeKind::ChatPostConversationsRead,
                Some(token),
            ) => world.post(token).map(|p| p.seller_id.clone()),
            _ => None,
        })
}

/// A scope in plain Persian words, with the chat or post it is about.
fn describe(world: &World, scope: &Scope) -> ScopeLine {
    let post_title = |token: &str| {
        world
            .post(token)
            .map(|p| format!("«{}»", p.title))
            .unwrap_or_else(|| format!("با شناسهٔ {token}"))
    };
    let id = scope.id.as_deref().unwrap_or_default();
    let text = match &scope.kind {
        ScopeKind::ConversationSendMessage => match world.conversation(id) {
            Some(c) => format!(
                "ارسال پیام از طرف شما در این گفت‌وگو (آگهی {} بین {} و {})",
                post_title(&c.post_token),
                world.user_name(&c.seller_id),
                world.user_name(&c.buyer_id)
            ),
            None => format!("ارسال پیام از طرف شما در گفت‌وگوی {id}"),
        },
        ScopeKind::ChatPostConversationsMessageSend => {
            format!(
                "ارسال پیام از طرف شما در همهٔ گفت‌وگوهای آگهی {}",
                post_title(id)
            )
        }
        ScopeKind::ChatConversationRead => match world.conversation(id) {
            Some(c) => format!(
                "خواندن پیام‌های این گفت‌وگو (آگهی {})",
                post_title(&c.post_token)
            ),
            None => format!("خواندن پیام‌های گفت‌وگوی {id}"),
        },
        ScopeKind::ChatPostConversationsRead => {
            format!("خواندن پیام‌های همهٔ گفت‌وگوهای آگهی {}", post_title(id))
        }
        ScopeKind::ChatSupplierAllConversationsMessageSend => {
            "ارسال پیام از طرف شما در همهٔ گفت‌وگوهای آگهی‌هایتان".into()
        }
        ScopeKind::ChatSupplierAllConversationsRead => {
            "خواندن پیام‌های همهٔ گفت‌وگوهای آگهی‌هایتان".into()
        }
        ScopeKind::NotificationAccessRevocation => {
            "باخبر شدن برنامه وقتی دسترسی‌اش را لغو می‌کنید".into()
        }
        ScopeKind::UserId => "دیدن شناسهٔ کاربری شما".into(),
        ScopeKind::UserPhone => "دیدن شمارهٔ تلفن شما".into(),
        ScopeKind::UserPostsGet => "دیدن آگهی‌های شما و باخبر شدن از تغییر آن‌ها".into(),
        ScopeKind::PostAddonCreate => format!("افزودن افزونه به آگهی {}", post_title(id)),
        ScopeKind::OfflineAccess => "ماندن این دسترسی تا ۳۰ روز، بی‌آنکه دوباره بپرسد".into(),
        // The sandbox simulates the chat scopes; any other is granted under its code.
        _ => format!("دسترسی {}", scope.name()),
    };
    ScopeLine {
        text,
        code: scope.to_string(),
    }
}
