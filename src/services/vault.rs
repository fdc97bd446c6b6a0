//! The token vault: grants sealed at rest, opened only here, refreshed before they expire.
//! Concurrent users of one grant cause exactly one refresh: an in-process lock per grant, and a
//! lease in the database for other replicas.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use secrecy::{ExposeSecret, SecretString};

use kenar::oauth::{IssuedTokens, KenarOAuth, TokenError};

use crate::{
    crypto::{KEY_VERSION, TokenCipher},
    db::{
        Db,
        grants::{self, SealedGrant, Subject},
        now_ms,
    },
    domain::UserId,
};

/// How long one process may hold the right to refresh a grant.
const REFRESH_LEASE_MS: i64 = 30_000;
/// How long to wait for another replica's refresh before giving up.
const REFRESH_WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    #[error("no grant is stored")]
    NoGrant,
    /// The grant cannot be used or renewed; the person must consent again.
    #[error("the grant must be renewed by consenting again")]
    Reconsent,
    #[error("Divar's OAuth server is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// A usable access token; `refreshed` says a refresh just replaced it (post subscriptions die
/// with the old token and must be made again).
pub struct AccessToken {
    pub secret: SecretString,
    pub refreshed: bool,
}

#[derive(Clone)]
pub struct Vault {
    db: Db,
    cipher: TokenCipher,
    oauth: KenarOAuth,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

fn context(grant_id: &str, column: &str) -> String {
    format!("kenar-chat:grants:{grant_id}:{column}")
}

/// When to treat a token as expired: a tenth of its life early, at most a minute, so a send
/// never starts with a token about to lapse.
fn usable_until(issued: &IssuedTokens) -> i64 {
    let life = issued.expires_in.as_millis() as i64;
    now_ms() + life - (life / 10).min(60_000)
}

impl Vault {
    pub fn new(db: Db, cipher: TokenCipher, oauth: KenarOAuth) -> Self {
        Self {
            db,
            cipher,
            oauth,
            locks: Arc::default(),
        }
    }

    /// Seals and stores a fresh grant, replacing the user's earlier one for `subject`.
    #[tracing::instrument(skip_all, fields(subject = subject.kind()))]
    pub async fn store(
        &self,
        subject: Subject,
        user_id: &UserId,
        scope: &str,
        issued: &IssuedTokens,
    ) -> anyhow::Result<()> {
        let grant_id = uuid::Uuid::new_v4().to_string();
        let grant = SealedGrant {
            access_token: self.cipher.seal(
                issued.access_token.expose_secret(),
                &context(&grant_id, "access"),
            ),
            refresh_token: issued.refresh_token.as_ref().map(|r| {
                self.cipher
                    .seal(r.expose_secret(), &context(&grant_id, "refresh"))
            }),
            grant_id,
            subject,
            user_id: user_id.clone(),
            scope: issued.scope.clone().unwrap_or_else(|| scope.to_string()),
            access_expires_at: usable_until(issued),
            key_version: KEY_VERSION,
        };
        grants::save(&self.db, &grant).await
    }

    pub async fn has_grant(&self, subject: &Subject, user_id: &UserId) -> anyhow::Result<bool> {
        Ok(grants::find(&self.db, subject, user_id).await?.is_some())
    }

    pub async fn forget(&self, subject: &Subject, user_id: &UserId) -> anyhow::Result<bool> {
        grants::delete(&self.db, subject, user_id).await
    }

    /// A usable access token, refreshed first when it has (nearly) expired.
    #[tracing::instrument(skip_all, fields(subject = subject.kind()))]
    pub async fn access_token(
        &self,
        subject: &Subject,
        user_id: &UserId,
    ) -> Result<AccessToken, VaultError> {
        let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
        loop {
            let grant = grants::find(&self.db, subject, user_id)
                .await?
                .ok_or(VaultError::NoGrant)?;
            if grant.access_expires_at > now_ms() {
                return self
                    .open(&grant, "access", &grant.access_token)
                    .map(|secret| AccessToken {
                        secret,
                        refreshed: false,
                    });
            }
            let lock = self.lock_for(&grant.grant_id);
            let _guard = lock.lock().await;
            // Another task of this process may have refreshed while we waited for the lock.
            let grant = grants::find(&self.db, subject, user_id)
                .await?
                .ok_or(VaultError::NoGrant)?;
            if grant.access_expires_at > now_ms() {
                return self
                    .open(&grant, "access", &grant.access_token)
                    .map(|secret| AccessToken {
                        secret,
                        refreshed: false,
                    });
            }
            let Some(sealed_refresh) = grant.refresh_token.clone() else {
                return Err(VaultError::Reconsent);
            };
            let now = now_ms();
            if !grants::take_refresh_lease(&self.db, &grant.grant_id, now, now + REFRESH_LEASE_MS)
                .await?
            {
                // Another replica is refreshing: wait for its result.
                if tokio::time::Instant::now() > deadline {
                    return Err(VaultError::Unavailable(
                        "waited too long for another refresh".into(),
                    ));
                }
                drop(_guard);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            return self
                .refresh(&grant, &sealed_refresh)
                .await
                .map(|secret| AccessToken {
                    secret,
                    refreshed: true,
                });
        }
    }

    async fn refresh(
        &self,
        grant: &SealedGrant,
        sealed_refresh: &str,
    ) -> Result<SecretString, VaultError> {
        let refresh_token = self.open(grant, "refresh", sealed_refresh)?;
        let access_token = self.open(grant, "access", &grant.access_token)?;
        match self.oauth.refresh(&refresh_token, &access_token).await {
            Ok(issued) => {
                // Persist both rotated tokens before anyone uses them: the old pair dies soon.
                let access = self.cipher.seal(
                    issued.access_token.expose_secret(),
                    &context(&grant.grant_id, "access"),
                );
                let refresh = issued.refresh_token.as_ref().map(|r| {
                    self.cipher
                        .seal(r.expose_secret(), &context(&grant.grant_id, "refresh"))
                });
                grants::store_refreshed(
                    &self.db,
                    &grant.grant_id,
                    &access,
                    refresh.as_deref(),
                    usable_until(&issued),
                    KEY_VERSION,
                )
                .await?;
                tracing::info!("access token refreshed");
                Ok(issued.access_token)
            }
            Err(TokenError::Refused(reason)) => {
                tracing::warn!(%reason, "refresh refused; the grant is dropped");
                grants::delete(&self.db, &grant.subject, &grant.user_id).await?;
                Err(VaultError::Reconsent)
            }
            Err(TokenError::Unavailable(reason)) => {
                grants::release_lease(&self.db, &grant.grant_id).await?;
                Err(VaultError::Unavailable(reason))
            }
        }
    }

    fn open(
        &self,
        grant: &SealedGrant,
        column: &str,
        sealed: &str,
    ) -> Result<SecretString, VaultError> {
        self.cipher.open(sealed, &context(&grant.grant_id, column)).map_err(|e| {
            tracing::error!(error = %e, grant_id = %grant.grant_id, "a stored token does not open");
            VaultError::Reconsent
        })
    }

    fn lock_for(&self, grant_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(grant_id.to_string()).or_default().clone()
    }
}
