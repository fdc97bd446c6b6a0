//! OAuth scopes Divar knows, their syntax (`NAME` or `NAME.IDENTIFIER`) and plain-words meaning.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScopeKind {
    ConversationSendMessage,
    ChatPostConversationsMessageSend,
    ChatPostConversationsRead,
    ChatSupplierAllConversationsMessageSend,
    ChatSupplierAllConversationsRead,
    NotificationAccessRevocation,
    UserId,
    UserPhone,
    UserPostsGet,
    PostAddonCreate,
    OfflineAccess,
}

/// (kind, name, whether it takes an identifier)
const KNOWN: [(ScopeKind, &str, bool); 11] = [
    (
        ScopeKind::ConversationSendMessage,
        "CONVERSATION_SEND_MESSAGE",
        true,
    ),
    (
        ScopeKind::ChatPostConversationsMessageSend,
        "CHAT_POST_CONVERSATIONS_MESSAGE_SEND",
        true,
    ),
    (
        ScopeKind::ChatPostConversationsRead,
        "CHAT_POST_CONVERSATIONS_READ",
        true,
    ),
    (
        ScopeKind::ChatSupplierAllConversationsMessageSend,
        "CHAT_SUPPLIER_ALL_CONVERSATIONS_MESSAGE_SEND",
        false,
    ),
    (
        ScopeKind::ChatSupplierAllConversationsRead,
        "CHAT_SUPPLIER_ALL_CONVERSATIONS_READ",
        false,
    ),
    (
        ScopeKind::NotificationAccessRevocation,
        "NOTIFICATION_ACCESS_REVOCATION",
        false,
    ),
    (ScopeKind::UserId, "USER_ID", false),
    (ScopeKind::UserPhone, "USER_PHONE", false),
    (ScopeKind::UserPostsGet, "USER_POSTS_GET", false),
    (ScopeKind::PostAddonCreate, "POST_ADDON_CREATE", true),
    (ScopeKind::OfflineAccess, "offline_access", false),
];

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub kind: ScopeKind,
    pub id: Option<String>,
}

impl Scope {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, id) = match text.split_once('.') {
            Some((name, id)) => (name, Some(id)),
            None => (text, None),
        };
        let Some(&(kind, _, needs_id)) = KNOWN.iter().find(|(_, n, _)| *n == name) else {
            return Err(format!("unknown scope `{name}`"));
        };
        match (needs_id, id) {
            (true, None) | (true, Some("")) => {
                Err(format!("scope `{name}` needs an identifier: `{name}.<id>`"))
            }
            (false, Some(_)) => Err(format!("scope `{name}` takes no identifier")),
            (true, Some(id)) if id.len() > 64 || !id.bytes().all(|b| b.is_ascii_graphic()) => {
                Err(format!("scope `{name}` has a malformed identifier"))
            }
            (_, id) => Ok(Self {
                kind,
                id: id.map(str::to_string),
            }),
        }
    }

    /// Parses a space-separated list (`+` arrives here already decoded to a space).
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        let scopes: Vec<Self> = text
            .split_whitespace()
            .map(Self::parse)
            .collect::<Result<_, _>>()?;
        if scopes.is_empty() {
            return Err("no scope was requested".into());
        }
        Ok(scopes)
    }

    pub fn name(&self) -> &'static str {
        KNOWN
            .iter()
            .find(|(k, _, _)| *k == self.kind)
            .map(|(_, n, _)| *n)
            .unwrap_or("")
    }

    pub fn is(&self, kind: ScopeKind, id: Option<&str>) -> bool {
        self.kind == kind && self.id.as_deref() == id
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.id {
            Some(id) => write!(f, "{}.{id}", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

pub fn join(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bound_and_general_scopes() {
        let scopes = Scope::parse_list("CONVERSATION_SEND_MESSAGE.abc offline_access").unwrap();
        assert!(scopes[0].is(ScopeKind::ConversationSendMessage, Some("abc")));
        assert!(scopes[1].is(ScopeKind::OfflineAccess, None));
        assert_eq!(
            join(&scopes),
            "CONVERSATION_SEND_MESSAGE.abc offline_access"
        );
    }

    #[test]
    fn rejects_bad_syntax() {
        assert!(Scope::parse("CONVERSATION_SEND_MESSAGE").is_err());
        assert!(Scope::parse("USER_PHONE.123").is_err());
        assert!(Scope::parse("MAKE_COFFEE").is_err());
        assert!(Scope::parse_list("  ").is_err());
    }
}
