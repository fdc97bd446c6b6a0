//! Seals OAuth tokens before they are stored: AES-256-GCM, a fresh random nonce per value, and
//! associated data naming the row and column, so a ciphertext copied into another row (or
//! column) no longer opens.

use aes_gcm::{
    Aes256Gcm, Key, Nonce,
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use secrecy::{ExposeSecret, SecretBox, SecretString};

/// The 32-byte key that seals tokens (`TOKEN_ENCRYPTION_KEY`).
#[derive(Clone)]
pub struct TokenKey(std::sync::Arc<SecretBox<[u8; 32]>>);

impl TokenKey {
    pub fn parse_base64(value: &str) -> Result<Self, String> {
        let bytes = B64
            .decode(value.trim())
            .map_err(|_| "is not valid base64".to_string())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("decodes to {} bytes; it must be exactly 32", b.len()))?;
        Ok(Self(std::sync::Arc::new(SecretBox::new(Box::new(key)))))
    }

    pub fn generate() -> Self {
        use rand::RngCore;
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        Self(std::sync::Arc::new(SecretBox::new(Box::new(key))))
    }

    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey([REDACTED])")
    }
}

/// Version of the key that sealed a value, stored beside it so keys can be rotated later.
pub const KEY_VERSION: i64 = 1;

const NONCE_LEN: usize = 12;

#[derive(Clone)]
pub struct TokenCipher {
    aead: Aes256Gcm,
}

impl std::fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCipher([REDACTED])")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a stored token could not be decrypted (wrong key, or the value was moved or altered)")]
pub struct OpenError;

impl TokenCipher {
    pub fn new(key: &TokenKey) -> Self {
        Self {
            aead: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.expose())),
        }
    }

    /// `base64(nonce || ciphertext+tag)`; `context` must be given again to open it.
    pub fn seal(&self, plaintext: &str, context: &str) -> String {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let ciphertext = self
            .aead
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            // Encryption only fails for inputs of many gigabytes.
            .expect("AES-GCM encryption of a token");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        B64.encode(out)
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<SecretString, OpenError> {
        let bytes = B64.decode(sealed).map_err(|_| OpenError)?;
        if bytes.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plaintext = self
            .aead
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| OpenError)?;
        String::from_utf8(plaintext)
            .map(SecretString::from)
            .map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn cipher() -> TokenCipher {
        TokenCipher::new(&TokenKey::generate())
    }

    #[test]
    fn a_sealed_token_opens_with_the_same_context() {
        let cipher = cipher();
        let sealed = cipher.seal("ory_at_secret", "grant:1:access");
        assert!(!sealed.contains("ory_at_secret"));
        assert_eq!(
            cipher
                .open(&sealed, "grant:1:access")
                .unwrap()
                .expose_secret(),
            "ory_at_secret"
        );
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let cipher = cipher();
        assert_ne!(cipher.seal("same", "ctx"), cipher.seal("same", "ctx"));
    }

    #[test]
    fn moved_altered_or_foreign_ciphertexts_do_not_open() {
        let cipher = cipher();
        let sealed = cipher.seal("token", "grant:1:access");
        assert_eq!(
            cipher.open(&sealed, "grant:2:access").err(),
            Some(OpenError)
        );
        assert_eq!(
            cipher.open(&sealed, "grant:1:refresh").err(),
            Some(OpenError)
        );
        let mut bytes = B64.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert_eq!(
            cipher.open(&B64.encode(bytes), "grant:1:access").err(),
            Some(OpenError)
        );
        assert_eq!(
            TokenCipher::new(&TokenKey::generate())
                .open(&sealed, "grant:1:access")
                .err(),
            Some(OpenError)
        );
        assert_eq!(
            cipher.open("not base64!", "grant:1:access").err(),
            Some(OpenError)
        );
        assert_eq!(cipher.open("AAAA", "grant:1:access").err(), Some(OpenError));
    }
}
