//! Seals OAuth tokens before they are stored: AES-256-GCM, a fresh random nonce per value, and
//! associated data naming the row, the column, the subject and the user, so a ciphertext copied
//! into another row or column, or a row moved to another user, no longer opens. Keys rotate
//! through a ring: the first seals, the others still open what they sealed.

use aes_gcm::{
    Aes256Gcm, Key, Nonce,
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
};
use base64::{
    Engine,
    engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD},
};
use secrecy::{ExposeSecret, ExposeSecretMut, SecretBox, SecretString};

/// A 32-byte key that seals tokens (one of `TOKEN_ENCRYPTION_KEYS`).
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

const NONCE_LEN: usize = 12;

impl TokenKey {
    /// Names the key without revealing it: 47 bits of a SHA-256 of it (with bit 47 set, so no
    /// version is small). Stored beside each value it seals, so the right key is found after a
    /// rotation.
    pub fn version(&self) -> i64 {
        use sha2::{Digest, Sha256};
        let hash = Sha256::new()
            .chain_update(b"kenar-chat token key version\0")
            .chain_update(self.expose())
            .finalize();
        let bits = u64::from_be_bytes(hash[..8].try_into().expect("8 bytes")) >> 17;
        (bits | 1 << 47) as i64
    }
}

/// The keys tokens may be sealed under (`TOKEN_ENCRYPTION_KEYS`): the first seals, every one
/// opens what it sealed.
#[derive(Clone, Debug)]
pub struct KeyRing {
    keys: Vec<TokenKey>,
}

impl KeyRing {
    pub fn new(current: TokenKey, older: Vec<TokenKey>) -> Self {
        let mut keys = vec![current];
        keys.extend(older);
        Self { keys }
    }

    /// Comma-separated base64 keys, current first.
    pub fn parse_base64_list(value: &str) -> Result<Self, String> {
        let keys = value
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .enumerate()
            .map(|(i, k)| TokenKey::parse_base64(k).map_err(|e| format!("key {}: {e}", i + 1)))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err("names no key".into());
        }
        Ok(Self { keys })
    }

    pub fn current(&self) -> &TokenKey {
        &self.keys[0]
    }

    pub fn keys(&self) -> &[TokenKey] {
        &self.keys
    }
}

/// What a grant's sealed values are bound to: a ciphertext opens only in its own row and
/// column, for the same subject and user.
pub struct SealContext<'a> {
    pub grant_id: &'a str,
    pub column: &'a str,
    pub subject_kind: &'a str,
    pub subject_id: &'a str,
    pub user_id: &'a str,
}

impl SealContext<'_> {
    fn associated_data(&self) -> String {
        // Lengths first, so no two different contexts can write the same string.
        let parts = [
            self.grant_id,
            self.column,
            self.subject_kind,
            self.subject_id,
            self.user_id,
        ];
        let mut aad = String::from("kenar-chat:grants:v2");
        for part in parts {
            aad.push_str(&format!(":{}:{part}", part.len()));
        }
        aad
    }
}

#[derive(Clone)]
pub struct TokenCipher {
    /// Each key with its version, the current one first.
    keys: Vec<(i64, Aes256Gcm)>,
}

impl std::fmt::Debug for TokenCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCipher([REDACTED])")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "a stored token could not be decrypted (no configured key, or the value was moved or altered)"
)]
pub struct OpenError;

/// An opened value, and whether it should be sealed again under the current key.
pub struct Opened {
    pub secret: SecretString,
    pub stale: bool,
}

impl TokenCipher {
    pub fn new(ring: &KeyRing) -> Self {
        Self {
            keys: ring
                .keys()
                .iter()
                .map(|key| {
                    (
                        key.version(),
                        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.expose())),
                    )
                })
                .collect(),
        }
    }

    /// Whether the key that wrote `key_version` is in the ring.
    pub fn has_version(&self, key_version: i64) -> bool {
        self.keys.iter().any(|(version, _)| *version == key_version)
    }

    /// The version the current key writes in `key_version`.
    pub fn current_version(&self) -> i64 {
        self.keys[0].0
    }

    /// `base64(nonce || ciphertext+tag)` under the current key; the same context (and the
    /// current version) must be given again to open it.
    pub fn seal(&self, plaintext: &str, context: &SealContext<'_>) -> String {
        seal_with(&self.keys[0].1, plaintext, &context.associated_data())
    }

    /// Opens a value sealed under the key of `key_version`; it is stale when that key is no
    /// longer the current one.
    pub fn open(
        &self,
        sealed: &str,
        context: &SealContext<'_>,
        key_version: i64,
    ) -> Result<Opened, OpenError> {
        let (position, (_, aead)) = self
            .keys
            .iter()
            .enumerate()
            .find(|(_, (version, _))| *version == key_version)
            .ok_or(OpenError)?;
        Ok(Opened {
            secret: open_with(aead, sealed, &context.associated_data())?,
            stale: position > 0,
        })
    }
}

fn seal_with(aead: &Aes256Gcm, plaintext: &str, aad: &str) -> String {
    let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
    let ciphertext = aead
        .encrypt(
            &nonce,
            Payload {
                msg: plaintext.as_bytes(),
                aad: aad.as_bytes(),
            },
        )
        // Encryption only fails for inputs of many gigabytes.
        .expect("AES-GCM encryption of a token");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&ciphertext);
    B64.encode(out)
}

fn open_with(aead: &Aes256Gcm, sealed: &str, aad: &str) -> Result<SecretString, OpenError> {
    let bytes = B64.decode(sealed).map_err(|_| OpenError)?;
    if bytes.len() < NONCE_LEN {
        return Err(OpenError);
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let plaintext = aead
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| OpenError)?;
    String::from_utf8(plaintext)
        .map(SecretString::from)
        .map_err(|_| OpenError)
}

/// Seals one-time entry links: the click travels inside the link instead of a database row.
/// AES-256-GCM under a key of its own per ring key (HKDF-SHA256 of the token key, so a link
/// and a stored token never share a key), a fresh random nonce, and associated data that says
/// what the value is. The link opens under any configured key, so a rotation breaks no link.
#[derive(Clone)]
pub struct LinkSealer {
    keys: Vec<Aes256Gcm>,
}

impl std::fmt::Debug for LinkSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkSealer([REDACTED])")
    }
}

const LINK_AAD: &[u8] = b"kenar-chat:entry-link:v1";

impl LinkSealer {
    pub fn new(ring: &KeyRing) -> Self {
        Self {
            keys: ring
                .keys()
                .iter()
                .map(|key| {
                    // A secret box, so the derived bytes are wiped once the cipher holds them.
                    let mut derived = SecretBox::new(Box::new([0u8; 32]));
                    hkdf::Hkdf::<sha2::Sha256>::new(Some(b"kenar-chat"), key.expose())
                        .expand(b"entry links v1", derived.expose_secret_mut())
                        .expect("32 bytes is a valid HKDF-SHA256 length");
                    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(derived.expose_secret()))
                })
                .collect(),
        }
    }

    /// `base64url(nonce || ciphertext+tag)` under the current key, fit for a URL path.
    pub fn seal(&self, plaintext: &[u8]) -> String {
        // A random 96-bit nonce from a CSPRNG seeded from the OS (no system call per link).
        let nonce = Aes256Gcm::generate_nonce(&mut rand::thread_rng());
        let ciphertext = self.keys[0]
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: LINK_AAD,
                },
            )
            // Encryption only fails for inputs of many gigabytes.
            .expect("AES-GCM encryption of an entry link");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The plaintext, if `sealed` is a link one of the configured keys sealed, unaltered.
    pub fn open(&self, sealed: &str) -> Result<Vec<u8>, OpenError> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed).map_err(|_| OpenError)?;
        if bytes.len() < NONCE_LEN {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        self.keys
            .iter()
            .find_map(|aead| {
                aead.decrypt(
                    Nonce::from_slice(nonce),
                    Payload {
                        msg: ciphertext,
                        aad: LINK_AAD,
                    },
                )
                .ok()
            })
            .ok_or(OpenError)
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn context<'a>(grant: &'a str, column: &'a str, user: &'a str) -> SealContext<'a> {
        SealContext {
            grant_id: grant,
            column,
            subject_kind: "conversation",
            subject_id: "c-1",
            user_id: user,
        }
    }

    fn ring(keys: &[&TokenKey]) -> KeyRing {
        KeyRing::new(
            keys[0].clone(),
            keys[1..].iter().map(|k| (*k).clone()).collect(),
        )
    }

    #[test]
    fn a_sealed_token_opens_with_the_same_context() {
        let cipher = TokenCipher::new(&ring(&[&TokenKey::generate()]));
        let sealed = cipher.seal("ory_at_secret", &context("1", "access", "u"));
        assert!(!sealed.contains("ory_at_secret"));
        let opened = cipher
            .open(
                &sealed,
                &context("1", "access", "u"),
                cipher.current_version(),
            )
            .unwrap();
        assert_eq!(opened.secret.expose_secret(), "ory_at_secret");
        assert!(!opened.stale);
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let cipher = TokenCipher::new(&ring(&[&TokenKey::generate()]));
        let ctx = context("1", "access", "u");
        assert_ne!(cipher.seal("same", &ctx), cipher.seal("same", &ctx));
    }

    #[test]
    fn moved_altered_or_foreign_ciphertexts_do_not_open() {
        let cipher = TokenCipher::new(&ring(&[&TokenKey::generate()]));
        let v = cipher.current_version();
        let sealed = cipher.seal("token", &context("1", "access", "u"));
        for other in [
            context("2", "access", "u"),
            context("1", "refresh", "u"),
            // Another owner: a row moved to another user does not open.
            context("1", "access", "v"),
        ] {
            assert!(cipher.open(&sealed, &other, v).is_err());
        }
        let mut bytes = B64.decode(&sealed).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let ctx = context("1", "access", "u");
        assert!(cipher.open(&B64.encode(bytes), &ctx, v).is_err());
        let stranger = TokenCipher::new(&ring(&[&TokenKey::generate()]));
        assert!(stranger.open(&sealed, &ctx, v).is_err());
        assert!(cipher.open("not base64!", &ctx, v).is_err());
        assert!(cipher.open("AAAA", &ctx, v).is_err());
    }

    #[test]
    fn an_older_key_still_opens_and_asks_for_a_reseal() {
        let (a, b) = (TokenKey::generate(), TokenKey::generate());
        assert_ne!(a.version(), b.version());
        let ctx = context("1", "access", "u");
        let old = TokenCipher::new(&ring(&[&a]));
        let sealed = old.seal("token", &ctx);
        let rotated = TokenCipher::new(&ring(&[&b, &a]));
        let opened = rotated.open(&sealed, &ctx, a.version()).unwrap();
        assert_eq!(opened.secret.expose_secret(), "token");
        assert!(opened.stale, "sealed under an older key");
        assert!(
            TokenCipher::new(&ring(&[&b]))
                .open(&sealed, &ctx, a.version())
                .is_err()
        );
    }

    #[test]
    fn a_key_list_parses_in_order() {
        let (a, b) = (TokenKey::generate(), TokenKey::generate());
        let list = format!(" {} , {} ", B64.encode(b.expose()), B64.encode(a.expose()));
        let ring = KeyRing::parse_base64_list(&list).unwrap();
        assert_eq!(ring.current().version(), b.version());
        assert_eq!(ring.keys().len(), 2);
        assert!(KeyRing::parse_base64_list(" , ").is_err());
        let bad = KeyRing::parse_base64_list(&format!("{},c2hvcnQ=", B64.encode(a.expose())));
        assert!(bad.unwrap_err().starts_with("key 2"));
    }
    #[test]
    fn a_sealed_link_opens_only_unaltered_and_under_a_configured_key() {
        let (a, b) = (TokenKey::generate(), TokenKey::generate());
        let sealer = LinkSealer::new(&ring(&[&a]));
        let sealed = sealer.seal(b"the click");
        assert!(
            sealed
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_eq!(sealer.open(&sealed).unwrap(), b"the click");
        assert_ne!(sealer.seal(b"the click"), sealed, "a fresh nonce each time");
        // After a rotation the old key still opens it; a ring without it does not.
        assert!(LinkSealer::new(&ring(&[&b, &a])).open(&sealed).is_ok());
        assert!(LinkSealer::new(&ring(&[&b])).open(&sealed).is_err());
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).unwrap();
        bytes[20] ^= 1;
        assert!(sealer.open(&URL_SAFE_NO_PAD.encode(&bytes)).is_err());
        assert!(sealer.open("not base64!").is_err());
        assert!(sealer.open("AAAA").is_err());
        // The link key is not the token key: a token sealed with the same key does not open.
        let token = TokenCipher::new(&ring(&[&a])).seal("x", &context("1", "access", "u"));
        let token = URL_SAFE_NO_PAD.encode(B64.decode(token).unwrap());
        assert!(sealer.open(&token).is_err());
    }
}
