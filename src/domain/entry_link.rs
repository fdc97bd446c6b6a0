//! The token in a one-time webview link. Unguessable (256 random bits); stored only as a hash.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use rand::RngCore;
use sha2::{Digest, Sha256};

pub struct EntryLinkToken(String);

impl EntryLinkToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A token from a URL; anything that cannot be one of ours is refused before any lookup.
    pub fn parse(value: &str) -> Option<Self> {
        (value.len() == 43
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        .then(|| Self(value.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What the database keeps: a dump cannot be turned back into a working link.
    pub fn hash(&self) -> String {
        Sha256::digest(self.0.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_and_hash_stably() {
        let token = EntryLinkToken::generate();
        let parsed = EntryLinkToken::parse(token.as_str()).unwrap();
        assert_eq!(parsed.hash(), token.hash());
        assert_eq!(token.hash().len(), 64);
        assert_ne!(EntryLinkToken::generate().as_str(), token.as_str());
        assert!(EntryLinkToken::parse("short").is_none());
        assert!(EntryLinkToken::parse(&"a/".repeat(22)[..43]).is_none());
    }
}
