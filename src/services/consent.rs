//! Asking Divar for a person's permission (docs/divar-platform.md, "OAuth 2.0"): the start, the
//! callback that files the grant under the account Divar says consented, and disconnecting.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use url::Url;

use kenar::oauth::{IssuedTokens, TokenError};

use crate::{
    config::ConsentExtras,
    db::{self, grants::Subject},
    domain::{ConversationId, PostToken, UserId, compose::Writer},
};

use super::{Deps, delivery, send};

/// What a consent is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Sending in one conversation.
    Conversation(ConversationId),
    /// Messaging every conversation of a post and hearing of new ones (its owner only).
    Post(PostToken),
}

impl Target {
    fn subject(&self) -> Subject {
        match self {
            Self::Conversation(id) => Subject::Conversation(id.clone()),
            Self::Post(post) => Subject::Post(post.clone()),
        }
    }

    fn scopes(&self, extras: ConsentExtras) -> Vec<String> {
        let mut scopes = match self {
            Self::Conversation(id) => vec![format!("CONVERSATION_SEND_MESSAGE.{id}")],
            Self::Post(post) => [
                format!("CHAT_POST_CONVERSATIONS_MESSAGE_SEND.{post}"),
                format!("CHAT_POST_CONVERSATIONS_READ.{post}"),
            ]
            .into_iter()
            .chain(extras.post_scopes().map(str::to_string))
            .collect(),
        };
        scopes.extend(extras.scopes().map(str::to_string));
        scopes.push("offline_access".into());
        scopes
    }
}

/// Kept (in the person's session) between sending them to Divar's consent page and their return.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PendingConsent {
    pub state: String,
    pub pkce_verifier: String,
    pub conversation_id: Option<ConversationId>,
    pub post_token: Option<PostToken>,
    /// The user the click named, if it named one; the grant goes to whoever Divar says consented.
    pub user_id: Option<UserId>,
    pub scope: String,
}

impl PendingConsent {
    fn subject(&self) -> Option<Subject> {
        match (&self.post_token, &self.conversation_id) {
            (Some(post), _) => Some(Subject::Post(post.clone())),
            (None, Some(conversation)) => Some(Subject::Conversation(conversation.clone())),
            (None, None) => None,
        }
    }
}

/// Why a consent that Divar granted is not kept (or not asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Divar says another account consented than the one the click named.
    AnotherAccount,
    /// Divar could not say who consented (unreachable, or the token lacks `USER_ID`).
    Unidentified,
    /// The click named nobody and the add-on is set not to ask (`KENAR_ASK_USER_ID=false`).
    NotAsked,
}

/// Where to send the person, and what to remember until they return.
pub struct Started {
    pub url: Url,
    pub pending: PendingConsent,
}

/// The consent page for `target`, asked for `claimed` (the click's user, if it named one).
pub fn start(deps: &Deps, target: Target, claimed: Option<UserId>) -> Result<Started, Refusal> {
    let extras = deps.settings.consent;
    if claimed.is_none() && !extras.user_id {
        // Divar would grant it, and the grant could not be filed under anyone.
        unidentifiable_click();
        return Err(Refusal::NotAsked);
    }
    let scopes = target.scopes(extras);
    let start = deps.oauth.authorize(&scopes);
    let (conversation_id, post_token) = match target {
        Target::Conversation(id) => (Some(id), None),
        Target::Post(post) => (None, Some(post)),
    };
    Ok(Started {
        url: start.url,
        pending: PendingConsent {
            state: start.state,
            pkce_verifier: start.pkce_verifier,
            conversation_id,
            post_token,
            user_id: claimed,
            scope: scopes.join(" "),
        },
    })
}

/// The operator's half of [`Refusal::NotAsked`].
fn unidentifiable_click() {
    tracing::error!(
        "a click that named no user cannot be connected while KENAR_ASK_USER_ID is off; turn it on and grant USER_ID to the app in the Kenar panel"
    );
}

/// What Divar's redirect back carried: `code` and `state`; on refusal `error=access_denied`
/// (Divar's OAuth server) or `state` alone (older docs). RFC 6749 §4.1.2.1: any other `error`
/// means the app's request itself was refused.
#[derive(Debug, Default, Deserialize)]
pub struct Reply {
    pub code: Option<String>,
    pub state: Option<String>,
    pub error: Option<String>,
    pub error_description: Option<String>,
}

/// How the callback ended. Only [`Finished::NoPending`] and [`Finished::StateMismatch`] leave
/// the pending consent in place.
#[derive(Debug, PartialEq, Eq)]
pub enum Finished {
    /// Nothing was asked from this browser (or it expired).
    NoPending,
    /// Not the answer to this browser's request: left alone, so a forged callback cannot use up
    /// the person's real one.
    StateMismatch,
    /// The person said no.
    Declined,
    /// Divar refused the app's request (a scope the app does not hold): the operator's to fix.
    AppRefused,
    /// The code could not be exchanged: `unavailable` when Divar could not be reached.
    ExchangeFailed {
        unavailable: bool,
    },
    Refused(Refusal),
    Connected {
        user: UserId,
        target: Target,
        /// The click named nobody: the visit now knows who it is.
        identified: bool,
    },
}

impl Finished {
    pub fn keeps_pending(&self) -> bool {
        matches!(self, Self::NoPending | Self::StateMismatch)
    }
}

/// Logs Divar's refusal of a consent request. Anyone can send a browser to the callback with
/// an `error` of their choosing, so the line is said once a minute per kind, and only RFC 6749's
/// codes that the operator can act on (the app's scopes or client in the Kenar panel) are ERROR;
/// the rest are WARN and named `other` when unknown.
fn refused_request_logged(error: &str, description: Option<&str>, scope: &impl std::fmt::Display) {
    let kind = match error {
        "invalid_scope" => "invalid_scope",
        "unauthorized_client" => "unauthorized_client",
        "invalid_client" => "invalid_client",
        "invalid_request" => "invalid_request",
        "unsupported_response_type" => "unsupported_response_type",
        "server_error" => "server_error",
        "temporarily_unavailable" => "temporarily_unavailable",
        _ => "other",
    };
    if !crate::observe::throttle::once_a_minute(kind) {
        return;
    }
    let description: String = description.unwrap_or_default().chars().take(200).collect();
    let operator_fixes = !matches!(kind, "server_error" | "temporarily_unavailable" | "other");
    if operator_fixes {
        tracing::error!(
            error = kind,
            description,
            requested_scopes = %scope,
            "Divar refused the consent request; make sure the app holds every requested scope in the Kenar panel (said once a minute)"
        );
    } else {
        tracing::warn!(
            error = kind,
            description,
            "the consent callback carried an error (said once a minute)"
        );
    }
}

/// Finishes a consent: checks the answer belongs to `pending`, exchanges the code, learns who
/// consented, stores the grant, and resumes what waited for it. `click` is the visit's recorded
/// click, which learns its user when the click named nobody.
pub async fn finish(
    deps: &Deps,
    pending: Option<&PendingConsent>,
    reply: Reply,
    click: Option<&str>,
) -> anyhow::Result<Finished> {
    let Some(pending) = pending else {
        return Ok(Finished::NoPending);
    };
    let state_matches = reply
        .state
        .as_deref()
        .is_some_and(|s| bool::from(s.as_bytes().ct_eq(pending.state.as_bytes())));
    if !state_matches {
        tracing::warn!("OAuth callback with a state that does not match the session");
        return Ok(Finished::StateMismatch);
    }
    match reply.error.as_deref() {
        None | Some("access_denied") => {}
        Some(error) => {
            refused_request_logged(error, reply.error_description.as_deref(), &pending.scope);
            return Ok(Finished::AppRefused);
        }
    }
    let Some(code) = reply.code.filter(|c| !c.is_empty()) else {
        return Ok(Finished::Declined);
    };
    let exchanged = deps.oauth.exchange(&code, &pending.pkce_verifier).await;
    count_call("token_exchange", exchanged.is_ok());
    let issued = match exchanged {
        Ok(issued) => issued,
        Err(error) => {
            // The error names no secret (see `kenar::oauth::classify`).
            tracing::error!(%error, "exchanging the OAuth code failed");
            let unavailable = matches!(error, TokenError::Unavailable(_));
            return Ok(Finished::ExchangeFailed { unavailable });
        }
    };
    let user = match consenting_user(deps, &issued, pending.user_id.as_ref()).await {
        Ok(user) => user,
        Err(refusal) => return Ok(Finished::Refused(refusal)),
    };
    let identified = pending.user_id.is_none();
    if let (true, Some(click)) = (identified, click) {
        db::conversations::identify_click(&deps.db, click, &user, deps.now()).await?;
    }
    let subject = pending.subject().ok_or_else(|| {
        anyhow::anyhow!("a pending consent names neither a conversation nor a post")
    })?;
    deps.vault
        .store(subject.clone(), &user, &pending.scope, &issued)
        .await?;
    let target = match subject {
        Subject::Post(post) => {
            // New conversations of the post reach us as NEW_MESSAGE webhooks from now on.
            delivery::subscribe_post_events(&deps.api, &issued.access_token, &post, &pending.scope)
                .await;
            db::broadcasts::resume_for_grant(&deps.db, &post, &user, deps.now()).await?;
            tracing::info!("a seller connected a post");
            Target::Post(post)
        }
        Subject::Conversation(conversation) => {
            tracing::info!("a user connected a conversation");
            // Messages that failed for want of consent go out now.
            send::resume_after_consent(deps, &conversation, &user).await?;
            Target::Conversation(conversation)
        }
    };
    Ok(Finished::Connected {
        user,
        target,
        identified,
    })
}

fn count_call(operation: &'static str, ok: bool) {
    let status = if ok { "ok" } else { "error" };
    metrics::counter!(crate::observe::API_CALLS, "operation" => operation, "status" => status)
        .increment(1);
}

/// The account the grant belongs to: the one Divar says consented (with `USER_ID`), which must
/// be the one the click named if it named one. With the `USER_ID` switch off, the click's word
/// is taken, and a click that named nobody cannot be connected.
async fn consenting_user(
    deps: &Deps,
    issued: &IssuedTokens,
    claimed: Option<&UserId>,
) -> Result<UserId, Refusal> {
    if !deps.settings.consent.user_id {
        return claimed.cloned().ok_or_else(|| {
            unidentifiable_click();
            Refusal::NotAsked
        });
    }
    let asked = deps.api.user_id(&issued.access_token).await;
    count_call("users", asked.is_ok());
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

/// Whether `user` has a grant for `target` this process can use (a person not yet known by id
/// has none).
pub async fn connected(
    deps: &Deps,
    target: &Target,
    user: Option<&UserId>,
) -> anyhow::Result<bool> {
    match user {
        Some(user) => deps.vault.has_grant(&target.subject(), user).await,
        None => Ok(false),
    }
}

/// Deletes this person's tokens for the conversation, or for the post when writing to all its
/// conversations. Divar documents no endpoint to revoke a grant (docs/divar-platform.md, "OAuth
/// 2.0"): the pages say how to withdraw it in Divar.
pub async fn disconnect(deps: &Deps, writer: &Writer) -> anyhow::Result<()> {
    match (&writer.conversation, &writer.post) {
        (Some(conversation), _) => {
            deps.vault
                .forget(&Subject::Conversation(conversation.clone()), &writer.user)
                .await?;
            tracing::info!("a user disconnected a conversation");
        }
        // The post's grant: its running broadcasts and auto-reply stop with it, as when the
        // token stops working (they go on if the seller connects again, else the purge ends them).
        (None, Some(post)) => {
            deps.vault
                .forget(&Subject::Post(post.clone()), &writer.user)
                .await?;
            db::broadcasts::pause_for_grant(
                &deps.db,
                post,
                &writer.user,
                crate::domain::broadcast::STOPPED_FOR_RECONSENT,
                deps.now(),
            )
            .await?;
            tracing::info!("a seller disconnected a post");
        }
        (None, None) => {}
    }
    Ok(())
}
