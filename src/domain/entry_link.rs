//! One-time webview links. A link is sealed (see `crypto::LinkSealer`) and carries its click:
//! session initialization writes no row for it, and opening it spends it once.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{ConversationId, PostToken, SessionInit, UserId, UserSide};

/// What a sealed link carries: the click, its expiry and a random id. Only ever read after
/// the AEAD tag was checked, so every field is as session initialization wrote it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Click {
    /// 256 random bits: no two links share it, and a spent link is recorded under its hash.
    pub id: String,
    /// Unix ms after which the link is refused. Sealed with the rest, so it cannot be extended.
    pub expires_at: i64,
    pub revision: String,
    pub source: String,
    pub conversation_id: Option<ConversationId>,
    pub post_token: Option<PostToken>,
    pub user_id: Option<UserId>,
    pub user_side: Option<UserSide>,
    pub extra_data: Map<String, Value>,
    pub callback_url: Option<String>,
}

impl Click {
    pub fn new(init: &SessionInit, expires_at: i64) -> Self {
        let mut id = [0u8; 32];
        // A CSPRNG seeded from the OS, without a system call per click.
        rand::thread_rng().fill_bytes(&mut id);
        Self {
            id: URL_SAFE_NO_PAD.encode(id),
            expires_at,
            revision: init.revision.as_str().to_string(),
            source: init.source.clone(),
            conversation_id: init.conversation_id.clone(),
            post_token: init.post_token.clone(),
            user_id: init.user_id.clone(),
            user_side: init.user_side,
            extra_data: init.extra_data.clone(),
            callback_url: init.callback_url.clone(),
        }
    }

    /// What the database keeps of a spent link: its id cannot be read back from it.
    pub fn id_hash(&self) -> String {
        sha256_hex(&self.id)
    }
}

fn sha256_hex(value: &str) -> String {
    Sha256::digest(value.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_click_gets_its_own_256_bit_id() {
        let init = SessionInit::parse(
            br#"{"source":"CHAT","conversation_id":"c-1","user_side":"Demand","user_id":"u"}"#,
            Some("2"),
        )
        .unwrap();
        let (a, b) = (Click::new(&init, 1), Click::new(&init, 1));
        assert_eq!(URL_SAFE_NO_PAD.decode(&a.id).unwrap().len(), 32);
        assert_ne!(a.id, b.id);
        assert_ne!(a.id_hash(), b.id_hash());
        assert_eq!(a.id_hash().len(), 64);
        let back: Click = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert_eq!(back, a);
    }
}
