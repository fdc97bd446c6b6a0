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
    clock::SharedClock,
    crypto::{OpenError, Opened, SealContext, TokenCipher},
    db::{
        Db,
        grants::{self, SealedGrant, Subject},
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
    /// The scopes the grant holds, space-separated, as consented.
    pub scope: String,
}

/// What `rekey` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rekeyed {
    pub resealed: u64,
    /// Sealed under a key no longer configured.
    pub unopenable: u64,
}

#[derive(Clone)]
pub struct Vault {
    db: Db,
    cipher: TokenCipher,
    oauth: KenarOAuth,
    clock: SharedClock,
    locks: Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>,
}

/// What a grant's `column` is sealed for: its row, subject and user.
fn context<'a>(
    grant_id: &'a str,
    subject: &'a Subject,
    user_id: &'a UserId,
    column: &'a str,
) -> SealContext<'a> {
    SealContext {
        grant_id,
        column,
        subject_kind: subject.kind(),
        subject_id: subject.id(),
        user_id: user_id.as_str(),
    }
}

/// When to treat a token issued at `now` as expired: a tenth of its life early, at most a
/// minute, so a send never starts with a token about to lapse.
fn usable_until(issued: &IssuedTokens, now: i64) -> i64 {
    let life = issued.expires_in.as_millis() as i64;
    now + life - (life / 10).min(60_000)
}

impl Vault {
    pub fn new(db: Db, cipher: TokenCipher, oauth: KenarOAuth, clock: SharedClock) -> Self {
        Self {
            db,
            cipher,
            oauth,
            clock,
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
        let now = self.clock.now_ms();
        let grant = SealedGrant {
            access_token: self.cipher.seal(
                issued.access_token.expose_secret(),
                &context(&grant_id, &subject, user_id, "access"),
            ),
            refresh_token: issued.refresh_token.as_ref().map(|r| {
                self.cipher.seal(
                    r.expose_secret(),
                    &context(&grant_id, &subject, user_id, "refresh"),
                )
            }),
            grant_id,
            subject,
            user_id: user_id.clone(),
            scope: issued.scope.clone().unwrap_or_else(|| scope.to_string()),
            access_expires_at: usable_until(issued, now),
            key_version: self.cipher.current_version(),
        };
        grants::save(&self.db, &grant, now).await
    }

    /// Whether the person has a grant this process can use: one whose token no configured key
    /// opens (a lost key, a ring that lacks the one that sealed it) counts as none, so the person
    /// is asked to connect instead of being told "connected" and failing.
    pub async fn has_grant(&self, subject: &Subject, user_id: &UserId) -> anyhow::Result<bool> {
        Ok(grants::find(&self.db, subject, user_id)
            .await?
            .is_some_and(|grant| {
                let ctx = context(&grant.grant_id, &grant.subject, &grant.user_id, "access");
                self.cipher
                    .open(&grant.access_token, &ctx, grant.key_version)
                    .is_ok()
            }))
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
            if grant.access_expires_at > self.clock.now_ms() {
                return self.usable(&grant).await;
            }
            let lock = self.lock_for(&grant.grant_id);
            let _guard = lock.lock().await;
            // Another task of this process may have refreshed while we waited for the lock.
            let grant = grants::find(&self.db, subject, user_id)
                .await?
                .ok_or(VaultError::NoGrant)?;
            if grant.access_expires_at > self.clock.now_ms() {
                return self.usable(&grant).await;
            }
            let Some(sealed_refresh) = grant.refresh_token.clone() else {
                return Err(VaultError::Reconsent);
            };
            let now = self.clock.now_ms();
            if !grants::take_refresh_lease(
                &self.db,
                &grant.grant_id,
                &sealed_refresh,
                now,
                now + REFRESH_LEASE_MS,
            )
            .await?
            {
                // Another replica is refreshing, or already has: read its result.
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
                    scope: grant.scope.clone(),
                });
        }
    }

    /// Usable access tokens for several grants, one answer per grant asked for, in order: one
    /// read for all of them, and a grant that must be refreshed first goes the way of
    /// [`Vault::access_token`]. The error is the read's, for the whole batch.
    pub async fn access_tokens(
        &self,
        wanted: &[(Subject, UserId)],
    ) -> anyhow::Result<Vec<Result<AccessToken, VaultError>>> {
        let found: HashMap<(Subject, UserId), SealedGrant> = grants::find_many(&self.db, wanted)
            .await?
            .into_iter()
            .map(|grant| ((grant.subject.clone(), grant.user_id.clone()), grant))
            .collect();
        let now = self.clock.now_ms();
        let mut tokens = Vec::with_capacity(wanted.len());
        for wanted @ (subject, user_id) in wanted {
            tokens.push(match found.get(wanted) {
                None => Err(VaultError::NoGrant),
                Some(grant) if grant.access_expires_at > now => self.usable(grant).await,
                Some(_) => self.access_token(subject, user_id).await,
            });
        }
        Ok(tokens)
    }

    /// The grant's access token; one sealed under an older key is sealed again under the current.
    async fn usable(&self, grant: &SealedGrant) -> Result<AccessToken, VaultError> {
        let access = self.open(grant, "access", &grant.access_token).await?;
        if access.stale {
            self.reseal(grant, &access.secret).await?;
        }
        Ok(AccessToken {
            secret: access.secret,
            refreshed: false,
            scope: grant.scope.clone(),
        })
    }

    async fn reseal(&self, grant: &SealedGrant, access: &SecretString) -> Result<(), VaultError> {
        let refresh = match &grant.refresh_token {
            Some(sealed) => Some(self.open(grant, "refresh", sealed).await?.secret),
            None => None,
        };
        if self.store_resealed(grant, access, refresh.as_ref()).await? {
            tracing::info!("a grant was sealed again under the current key");
        }
        Ok(())
    }

    /// Stores the grant's tokens sealed under the current key, unless the row changed since it
    /// was read (a refresh got there first, and sealed under the current key itself).
    async fn store_resealed(
        &self,
        grant: &SealedGrant,
        access: &SecretString,
        refresh: Option<&SecretString>,
    ) -> anyhow::Result<bool> {
        let (access, refresh) = self.seal_pair(grant, access, refresh);
        grants::reseal(
            &self.db,
            &grant.grant_id,
            &grant.access_token,
            &access,
            refresh.as_deref(),
            self.cipher.current_version(),
            self.clock.now_ms(),
        )
        .await
    }

    fn seal_pair(
        &self,
        grant: &SealedGrant,
        access: &SecretString,
        refresh: Option<&SecretString>,
    ) -> (String, Option<String>) {
        let seal = |secret: &SecretString, column| {
            self.cipher.seal(
                secret.expose_secret(),
                &context(&grant.grant_id, &grant.subject, &grant.user_id, column),
            )
        };
        (seal(access, "access"), refresh.map(|r| seal(r, "refresh")))
    }

    async fn refresh(
        &self,
        grant: &SealedGrant,
        sealed_refresh: &str,
    ) -> Result<SecretString, VaultError> {
        let refresh_token = self.open(grant, "refresh", sealed_refresh).await?.secret;
        let access_token = self
            .open(grant, "access", &grant.access_token)
            .await?
            .secret;
        match self.oauth.refresh(&refresh_token, &access_token).await {
            Ok(issued) => {
                // Persist both rotated tokens before anyone uses them: the old pair dies soon.
                // Without a new refresh token the old one stays, sealed again under the current
                // key like the access token (the row has one key version).
                let refresh = issued.refresh_token.as_ref().unwrap_or(&refresh_token);
                let (access, refresh) = self.seal_pair(grant, &issued.access_token, Some(refresh));
                let now = self.clock.now_ms();
                grants::store_refreshed(
                    &self.db,
                    &grant.grant_id,
                    &access,
                    refresh.as_deref(),
                    usable_until(&issued, now),
                    self.cipher.current_version(),
                    now,
                )
                .await?;
                tracing::info!("access token refreshed");
                metrics::counter!(crate::observe::TOKEN_REFRESHES, "outcome" => "refreshed")
                    .increment(1);
                Ok(issued.access_token)
            }
            Err(TokenError::Refused(reason)) => {
                tracing::warn!(%reason, "refresh refused; the grant is dropped");
                metrics::counter!(crate::observe::TOKEN_REFRESHES, "outcome" => "refused")
                    .increment(1);
                grants::delete_by_id(&self.db, &grant.grant_id).await?;
                Err(VaultError::Reconsent)
            }
            Err(TokenError::Unavailable(reason)) => {
                metrics::counter!(crate::observe::TOKEN_REFRESHES, "outcome" => "unavailable")
                    .increment(1);
                grants::release_lease(&self.db, &grant.grant_id).await?;
                Err(VaultError::Unavailable(reason))
            }
        }
    }

    /// Opens a sealed column. When it does not open, the person must connect again. The row is
    /// deleted only when the key that sealed it is here and still refuses it (the row was moved
    /// or altered). One sealed under a key this process lacks is kept: during a rolling key
    /// change another replica may have it, and `rekey` can still save it once the key is back.
    async fn open(
        &self,
        grant: &SealedGrant,
        column: &str,
        sealed: &str,
    ) -> Result<Opened, VaultError> {
        let ctx = context(&grant.grant_id, &grant.subject, &grant.user_id, column);
        match self.cipher.open(sealed, &ctx, grant.key_version) {
            Ok(opened) => Ok(opened),
            Err(OpenError) if self.cipher.has_version(grant.key_version) => {
                tracing::error!(
                    grant_id = %grant.grant_id,
                    "a stored token does not open under the key that sealed it (moved or altered); the grant is dropped"
                );
                grants::delete_by_id(&self.db, &grant.grant_id).await?;
                Err(VaultError::Reconsent)
            }
            Err(OpenError) => {
                tracing::error!(
                    grant_id = %grant.grant_id,
                    "a stored token was sealed under a key not in TOKEN_ENCRYPTION_KEYS; its user will be asked to connect again (the row is kept: add the key back and run `kenar-chat rekey` to save it)"
                );
                Err(VaultError::Reconsent)
            }
        }
    }

    /// Seals every grant not under the current key again under it (`kenar-chat rekey`). Grants
    /// no configured key opens are left as they are and counted: with the old key added back to
    /// the ring, a second run saves them.
    pub async fn rekey(&self) -> anyhow::Result<Rekeyed> {
        let mut report = Rekeyed::default();
        let current = self.cipher.current_version();
        for grant in grants::not_sealed_under(&self.db, current).await? {
            let open = |column, sealed: &str| {
                let ctx = context(&grant.grant_id, &grant.subject, &grant.user_id, column);
                self.cipher.open(sealed, &ctx, grant.key_version)
            };
            let access = open("access", &grant.access_token);
            let refresh = grant
                .refresh_token
                .as_deref()
                .map(|sealed| open("refresh", sealed))
                .transpose();
            let (Ok(access), Ok(refresh)) = (access, refresh) else {
                report.unopenable += 1;
                continue;
            };
            let refresh = refresh.map(|r| r.secret);
            if self
                .store_resealed(&grant, &access.secret, refresh.as_ref())
                .await?
            {
                report.resealed += 1;
            }
        }
        Ok(report)
    }

    fn lock_for(&self, grant_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.retain(|_, lock| Arc::strong_count(lock) > 1);
        locks.entry(grant_id.to_string()).or_default().clone()
    }
}
