//! What the add-on benchmarks set up in the simulated Divar: the seeded post and its seller,
//! new conversations about the post, and grants issued without the consent screen.

use std::time::Duration;

use kenar::{ConversationId, PostToken, UserId, oauth::IssuedTokens, scopes::Scope};
use kenar_chat::{db::grants::Subject, sandbox::Sandbox, services::vault::Vault};
use secrecy::SecretString;

pub const POST: &str = "gZd7omnS";
pub const SELLER: &str = "u-ali";

pub fn post() -> PostToken {
    PostToken::parse(POST).expect("a valid post token")
}

pub fn seller() -> UserId {
    UserId::parse(SELLER).expect("a valid user id")
}

/// `count` new buyers, each with a conversation about the post. Straight in the sandbox's world
/// (this process's): its HTTP control route makes at most 5,000 a call.
pub fn add_conversations(sandbox: &Sandbox, count: usize) -> anyhow::Result<Vec<ConversationId>> {
    let created = sandbox
        .world()
        .add_conversations(POST, count)
        .ok_or_else(|| anyhow::anyhow!("the seeded post {POST} is missing"))?;
    let ids = created
        .iter()
        .map(|(conversation, _)| ConversationId::parse(&conversation.id))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    anyhow::ensure!(
        ids.len() == count,
        "the sandbox made {} conversations, not {count}",
        ids.len()
    );
    Ok(ids)
}

/// The buyer of one of the post's conversations.
#[allow(dead_code)] // each bench compiles this module; the outbox bench alone uses it
pub fn buyer_of(sandbox: &Sandbox, conversation: &ConversationId) -> anyhow::Result<String> {
    sandbox
        .world()
        .conversation(conversation.as_str())
        .map(|c| c.buyer_id.clone())
        .ok_or_else(|| anyhow::anyhow!("no conversation {conversation} in the sandbox"))
}

/// A user's token issued by the simulated Divar without its consent screen, stored as the
/// consent flow stores it. Returns the access token.
pub async fn grant(
    sandbox: &Sandbox,
    vault: &Vault,
    subject: Subject,
    user: &str,
    scope: &str,
) -> anyhow::Result<String> {
    let (access, refresh) = sandbox
        .world()
        .issue_tokens(user, Scope::parse_list(scope).map_err(anyhow::Error::msg)?);
    let issued = IssuedTokens {
        access_token: SecretString::from(access.token.clone()),
        refresh_token: refresh.map(|r| SecretString::from(r.token)),
        expires_in: Duration::from_secs(3600),
        scope: Some(scope.to_string()),
    };
    let user = UserId::parse(user).map_err(anyhow::Error::msg)?;
    vault.store(subject, &user, scope, &issued).await?;
    Ok(access.token)
}
